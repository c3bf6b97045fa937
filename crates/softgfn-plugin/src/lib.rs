//! # softgfn-plugin
//!
//! Run-time environment plugins for softgfn: write an [`Environment`](softgfn_core::Environment)
//! in your own crate, declare it with [`environments!`], build the crate as a `cdylib` with its
//! `dynamic` feature, and load it with `softgfn --plugin PATH` (or [`host::load`], feature
//! `host`).
//!
//! - [`environments!`]: the one registration of a crate's environments: the static registry
//!   entry (for binaries that link the crate) and, under the crate's `dynamic` feature, the C ABI
//!   exports (for `softgfn --plugin`);
//! - [`abi`]: the versioned C ABI ([`ABI_VERSION`]); only `repr(C)` data crosses;
//! - [`Manifest`]: the JSON self-description of a plugin (name, version, the softgfn version it
//!   was built against, its environments with summaries and default parameters);
//! - [`export_plugin!`] and [`export`]: the plugin side that [`environments!`] emits; every entry
//!   point catches panics;
//! - [`host`] (feature `host`): load a library, check the ABI version and the manifest, register
//!   the environments in `softgfn_core`'s registry as `<plugin>/<env>` and `<env>`, and call
//!   them through [`host::PluginEnv`].
//!
//! A plugin crate depends on `softgfn-core` and `softgfn-plugin`:
//!
//! ```toml
//! [lib]
//! crate-type = ["rlib", "cdylib"]
//!
//! [features]
//! dynamic = []
//! ```
//!
//! ```ignore
//! softgfn_plugin::environments!("sets" => Sets(SetsConfig): "subsets of {0..n-1}, additive log-reward");
//! ```
//!
//! The exported symbols sit behind the plugin crate's `dynamic` feature so that several plugin
//! crates linked statically into one binary do not clash.

// The C ABI needs `unsafe`: raw pointers and lengths from the other side, `extern "C"` entry
// points with `#[unsafe(no_mangle)]`, and loading shared libraries. This crate (and its test
// fixtures) is the only place of the workspace that overrides `unsafe_code = "deny"`; every
// unsafe block carries a `// SAFETY:` comment.
#![allow(unsafe_code)]

pub mod abi;
mod error;
pub mod export;
#[cfg(feature = "host")]
pub mod host;
mod manifest;

pub use abi::{ABI_VERSION, OLDEST_ABI_VERSION};
pub use error::PluginError;
pub use manifest::{Manifest, ManifestEnv, SOFTGFN_VERSION, compatible, parse_version};

#[doc(hidden)]
pub use serde_json;
#[doc(hidden)]
pub use softgfn_core;

/// Registers a crate's environments, once: the one line a plugin author writes.
///
/// ```ignore
/// softgfn_plugin::environments!("sets" => Sets(SetsConfig): "subsets of {0..n-1}, additive log-reward");
/// ```
///
/// Each entry is `"name" => Env(Config): "summary"`: the environment `Env` is built by
/// `Env::new(config)` (returning `Result<Env, E>` with `softgfn_core::CoreError: From<E>`) from
/// its parameters `Config` (`Default + Serialize + Deserialize`; the `[env]` keys of a run, parsed
/// with [`softgfn_core::parse_params`], missing keys taking their defaults). Several
/// environments are separated by commas. The macro emits
///
/// - always, a static registration of each environment (`softgfn_core::EnvRegistration` through
///   `inventory`), so that a binary linking the crate knows it by `name`;
/// - when the invoking crate is built with its own cargo feature `dynamic`, the C ABI of a
///   run-time plugin named after the crate (`CARGO_PKG_NAME`, `CARGO_PKG_VERSION`), as
///   [`export_plugin!`] writes it: build the crate (`crate-type = ["rlib", "cdylib"]`) with
///   `--features dynamic` and load it with `softgfn --plugin PATH`.
///
/// The crate must declare the feature (`[features] dynamic = []`), and invoke the macro once,
/// at most: a library has one plugin manifest. Without the feature, several crates using the
/// macro link into one binary without clashing symbols.
#[macro_export]
macro_rules! environments {
    ( $( $name:expr => $env:ident ( $config:ty ) : $summary:expr ),+ $(,)? ) => {
        $(
            $crate::softgfn_core::inventory::submit! {
                $crate::softgfn_core::EnvRegistration {
                    name: $name,
                    summary: $summary,
                    source: ::core::env!("CARGO_PKG_NAME"),
                    default_params: $crate::export::default_params::<$config>,
                    build: |params| $crate::export::build_env::<$config, _, _>($name, params, $env::new),
                }
            }
        )+

        #[cfg(feature = "dynamic")]
        $crate::export_plugin! {
            plugin: ::core::env!("CARGO_PKG_NAME"),
            version: ::core::env!("CARGO_PKG_VERSION"),
            environments: [ $( {
                name: $name,
                summary: $summary,
                default_params: $crate::export::default_params::<$config>,
                build: |params| $crate::export::build_env::<$config, _, _>($name, params, $env::new),
            } ),+ ]
        }
    };
}

/// Exports environments as a softgfn plugin (the C ABI symbols of [`abi`]): the lower level of
/// [`environments!`], which plugin crates use instead (it also registers the environments
/// statically and takes the plugin's name and version from the crate).
///
/// ```ignore
/// #[cfg(feature = "dynamic")]
/// softgfn_plugin::export_plugin! {
///     plugin: "softgfn-sets",
///     version: env!("CARGO_PKG_VERSION"),
///     environments: [
///         {
///             name: "sets",
///             summary: "one line",
///             default_params: || serde_json::json!({ "n": 6 }),
///             build: |params| Ok(Box::new(Sets::from_params(params)?)),
///         },
///     ]
/// }
/// ```
///
/// `default_params` is a `fn() -> serde_json::Value` giving the complete defaults (a JSON
/// object); `build` a `fn(&serde_json::Value) -> softgfn_core::Result<Box<dyn Environment>>`
/// receiving (possibly partial) parameters. Closures must not capture anything. Use it once per
/// library, behind a cargo feature (`dynamic`), in a crate of `crate-type = ["rlib", "cdylib"]`.
#[macro_export]
macro_rules! export_plugin {
    (
        plugin: $plugin:expr,
        version: $version:expr,
        environments: [
            $( {
                name: $name:expr,
                summary: $summary:expr,
                default_params: $defaults:expr,
                build: $build:expr $(,)?
            } ),+ $(,)?
        ] $(,)?
    ) => {
        $crate::__export_plugin_v1_symbols! {
            abi_version: $crate::abi::ABI_VERSION,
            plugin: $plugin,
            version: $version,
            environments: [ $( {
                name: $name,
                summary: $summary,
                default_params: $defaults,
                build: $build,
            } ),+ ]
        }
        $crate::__export_plugin_v2_symbols! {}
    };
}

/// The entry points of ABI version 1 (with `softgfn_plugin_abi_version` returning
/// `abi_version`): the first half of [`export_plugin!`]. Not for plugin authors: it exists so
/// that a test fixture can be built exactly as a version-1 plugin was.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_plugin_v1_symbols {
    (
        abi_version: $abi:expr,
        plugin: $plugin:expr,
        version: $version:expr,
        environments: [
            $( {
                name: $name:expr,
                summary: $summary:expr,
                default_params: $defaults:expr,
                build: $build:expr $(,)?
            } ),+ $(,)?
        ] $(,)?
    ) => {
        // An anonymous block: the expressions above resolve in the caller's module and nothing
        // is added to its namespace; the `no_mangle` functions are exported from the cdylib.
        #[allow(unsafe_code)] // `no_mangle` and the raw-pointer ABI (see softgfn-plugin)
        const _: () = {
            use ::std::ffi::c_char;
            use $crate::abi::{SgEnv, SgEnvSpec};
            use $crate::export as ex;

            static PLUGIN: ex::PluginDef = ex::PluginDef {
                name: $plugin,
                version: $version,
                environments: &[$(ex::EnvDef {
                    name: $name,
                    summary: $summary,
                    default_params: $defaults,
                    build: $build,
                }),+],
            };

            #[unsafe(no_mangle)]
            extern "C" fn softgfn_plugin_abi_version() -> u32 {
                $abi
            }

            #[unsafe(no_mangle)]
            unsafe extern "C" fn softgfn_plugin_manifest(
                json: *mut *mut c_char,
                err: *mut *mut c_char,
            ) -> i32 {
                // SAFETY: forwarded unchanged under the ABI's pointer contract.
                unsafe { ex::manifest(&PLUGIN, json, err) }
            }

            #[unsafe(no_mangle)]
            unsafe extern "C" fn softgfn_plugin_free_string(s: *mut c_char) {
                // SAFETY: forwarded unchanged under the ABI's pointer contract.
                unsafe { ex::free_string(s) }
            }

            #[unsafe(no_mangle)]
            unsafe extern "C" fn softgfn_plugin_create(
                env: *const c_char,
                params: *const c_char,
                out: *mut *mut SgEnv,
                err: *mut *mut c_char,
            ) -> i32 {
                // SAFETY: forwarded unchanged under the ABI's pointer contract.
                unsafe { ex::create(&PLUGIN, env, params, out, err) }
            }

            #[unsafe(no_mangle)]
            unsafe extern "C" fn softgfn_plugin_destroy(h: *mut SgEnv) {
                // SAFETY: forwarded unchanged under the ABI's pointer contract.
                unsafe { ex::destroy(h) }
            }

            #[unsafe(no_mangle)]
            unsafe extern "C" fn softgfn_plugin_spec(
                h: *const SgEnv,
                out: *mut SgEnvSpec,
                name: *mut *mut c_char,
                err: *mut *mut c_char,
            ) -> i32 {
                // SAFETY: forwarded unchanged under the ABI's pointer contract.
                unsafe { ex::spec(h, out, name, err) }
            }

            #[unsafe(no_mangle)]
            unsafe extern "C" fn softgfn_plugin_params(
                h: *const SgEnv,
                json: *mut *mut c_char,
                err: *mut *mut c_char,
            ) -> i32 {
                // SAFETY: forwarded unchanged under the ABI's pointer contract.
                unsafe { ex::params(h, json, err) }
            }

            #[unsafe(no_mangle)]
            unsafe extern "C" fn softgfn_plugin_initial_state(
                h: *const SgEnv,
                out: *mut i32,
                out_len: usize,
                err: *mut *mut c_char,
            ) -> i32 {
                // SAFETY: forwarded unchanged under the ABI's pointer contract.
                unsafe { ex::initial_state(h, out, out_len, err) }
            }

            #[unsafe(no_mangle)]
            unsafe extern "C" fn softgfn_plugin_forward_masks(
                h: *const SgEnv,
                states: *const i32,
                states_len: usize,
                out: *mut bool,
                out_len: usize,
                err: *mut *mut c_char,
            ) -> i32 {
                // SAFETY: forwarded unchanged under the ABI's pointer contract.
                unsafe { ex::masks(false, h, states, states_len, out, out_len, err) }
            }

            #[unsafe(no_mangle)]
            unsafe extern "C" fn softgfn_plugin_backward_masks(
                h: *const SgEnv,
                states: *const i32,
                states_len: usize,
                out: *mut bool,
                out_len: usize,
                err: *mut *mut c_char,
            ) -> i32 {
                // SAFETY: forwarded unchanged under the ABI's pointer contract.
                unsafe { ex::masks(true, h, states, states_len, out, out_len, err) }
            }

            #[unsafe(no_mangle)]
            unsafe extern "C" fn softgfn_plugin_step(
                h: *const SgEnv,
                states: *const i32,
                states_len: usize,
                actions: *const u32,
                actions_len: usize,
                next: *mut i32,
                next_len: usize,
                backward_actions: *mut u32,
                backward_actions_len: usize,
                err: *mut *mut c_char,
            ) -> i32 {
                // SAFETY: forwarded unchanged under the ABI's pointer contract.
                unsafe {
                    ex::step(
                        false,
                        h,
                        states,
                        states_len,
                        actions,
                        actions_len,
                        next,
                        next_len,
                        backward_actions,
                        backward_actions_len,
                        err,
                    )
                }
            }

            #[unsafe(no_mangle)]
            unsafe extern "C" fn softgfn_plugin_backward_step(
                h: *const SgEnv,
                states: *const i32,
                states_len: usize,
                backward_actions: *const u32,
                backward_actions_len: usize,
                prev: *mut i32,
                prev_len: usize,
                forward_actions: *mut u32,
                forward_actions_len: usize,
                err: *mut *mut c_char,
            ) -> i32 {
                // SAFETY: forwarded unchanged under the ABI's pointer contract.
                unsafe {
                    ex::step(
                        true,
                        h,
                        states,
                        states_len,
                        backward_actions,
                        backward_actions_len,
                        prev,
                        prev_len,
                        forward_actions,
                        forward_actions_len,
                        err,
                    )
                }
            }

            #[unsafe(no_mangle)]
            unsafe extern "C" fn softgfn_plugin_log_reward(
                h: *const SgEnv,
                states: *const i32,
                states_len: usize,
                out: *mut f64,
                out_len: usize,
                err: *mut *mut c_char,
            ) -> i32 {
                // SAFETY: forwarded unchanged under the ABI's pointer contract.
                unsafe { ex::log_reward(h, states, states_len, out, out_len, err) }
            }

            #[unsafe(no_mangle)]
            unsafe extern "C" fn softgfn_plugin_encode(
                h: *const SgEnv,
                states: *const i32,
                states_len: usize,
                out: *mut f32,
                out_len: usize,
                err: *mut *mut c_char,
            ) -> i32 {
                // SAFETY: forwarded unchanged under the ABI's pointer contract.
                unsafe { ex::encode(h, states, states_len, out, out_len, err) }
            }

            #[unsafe(no_mangle)]
            unsafe extern "C" fn softgfn_plugin_num_states(
                h: *const SgEnv,
                enumerable: *mut bool,
                out: *mut u64,
                err: *mut *mut c_char,
            ) -> i32 {
                // SAFETY: forwarded unchanged under the ABI's pointer contract.
                unsafe { ex::num_states(h, enumerable, out, err) }
            }

            #[unsafe(no_mangle)]
            unsafe extern "C" fn softgfn_plugin_state_index(
                h: *const SgEnv,
                states: *const i32,
                states_len: usize,
                out: *mut u64,
                out_len: usize,
                err: *mut *mut c_char,
            ) -> i32 {
                // SAFETY: forwarded unchanged under the ABI's pointer contract.
                unsafe { ex::state_index(h, states, states_len, out, out_len, err) }
            }

            #[unsafe(no_mangle)]
            unsafe extern "C" fn softgfn_plugin_states_from_index(
                h: *const SgEnv,
                indices: *const u64,
                indices_len: usize,
                out: *mut i32,
                out_len: usize,
                err: *mut *mut c_char,
            ) -> i32 {
                // SAFETY: forwarded unchanged under the ABI's pointer contract.
                unsafe { ex::states_from_index(h, indices, indices_len, out, out_len, err) }
            }
        };
    };
}

/// The entry points ABI version 2 added (the optional capabilities): the second half of
/// [`export_plugin!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __export_plugin_v2_symbols {
    () => {
        #[allow(unsafe_code)] // `no_mangle` and the raw-pointer ABI (see softgfn-plugin)
        const _: () = {
            use ::std::ffi::c_char;
            use $crate::abi::SgEnv;
            use $crate::export as ex;

            #[unsafe(no_mangle)]
            unsafe extern "C" fn softgfn_plugin_capabilities(
                h: *const SgEnv,
                out: *mut u64,
                err: *mut *mut c_char,
            ) -> i32 {
                // SAFETY: forwarded unchanged under the ABI's pointer contract.
                unsafe { ex::capabilities(h, out, err) }
            }

            #[unsafe(no_mangle)]
            unsafe extern "C" fn softgfn_plugin_readable(
                h: *const SgEnv,
                state: *const i32,
                state_len: usize,
                text: *mut *mut c_char,
                err: *mut *mut c_char,
            ) -> i32 {
                // SAFETY: forwarded unchanged under the ABI's pointer contract.
                unsafe { ex::readable(h, state, state_len, text, err) }
            }

            #[unsafe(no_mangle)]
            unsafe extern "C" fn softgfn_plugin_canonical_key(
                h: *const SgEnv,
                state: *const i32,
                state_len: usize,
                out: *mut i32,
                out_cap: usize,
                out_len: *mut usize,
                err: *mut *mut c_char,
            ) -> i32 {
                // SAFETY: forwarded unchanged under the ABI's pointer contract.
                unsafe { ex::canonical_key(h, state, state_len, out, out_cap, out_len, err) }
            }
        };
    };
}

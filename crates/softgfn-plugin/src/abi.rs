//! The C ABI between a host (the `softgfn` binary) and a plugin library, version [`ABI_VERSION`].
//!
//! Only `repr(C)` data crosses: integers, floats, `bool` (C `_Bool`), pointers to caller-allocated
//! buffers with their lengths, NUL-terminated UTF-8 strings and the opaque [`SgEnv`] handle.
//!
//! Protocol:
//! 1. the host reads [`SYM_ABI_VERSION`] (a library without it is not a softgfn plugin) and
//!    compares it with [`ABI_VERSION`]; a plugin of version [`OLDEST_ABI_VERSION`]..=
//!    [`ABI_VERSION`] loads (the symbols of its version are resolved, see [`symbols_of`]), any
//!    other number is refused and nothing else is touched;
//! 2. it reads the manifest ([`SYM_MANIFEST`], JSON text, see [`crate::Manifest`]);
//! 3. it creates environment instances from JSON parameter text ([`SYM_CREATE`]) and calls the
//!    batched entry points on them; [`SYM_DESTROY`] frees an instance.
//!
//! Every fallible entry point returns a status ([`STATUS_OK`], [`STATUS_ERROR`],
//! [`STATUS_PANIC`], [`STATUS_INVALID_ARGUMENT`]); on any status but `STATUS_OK` it stores a
//! plugin-owned message in `*err` (or leaves it null), which the host copies and frees with
//! [`SYM_FREE_STRING`]. Strings returned through other out-pointers (manifest, parameters, spec
//! name) are freed the same way. No entry point lets a panic unwind into the host. Libraries are
//! never unloaded.
//!
//! | symbol | signature (C) |
//! |---|---|
//! | `softgfn_plugin_abi_version` | `uint32_t (void)` |
//! | `softgfn_plugin_manifest` | `int32_t (char **json, char **err)` |
//! | `softgfn_plugin_free_string` | `void (char *s)` |
//! | `softgfn_plugin_create` | `int32_t (const char *env, const char *params_json, SgEnv **out, char **err)` |
//! | `softgfn_plugin_destroy` | `void (SgEnv *h)` |
//! | `softgfn_plugin_spec` | `int32_t (const SgEnv *h, SgEnvSpec *out, char **name, char **err)` |
//! | `softgfn_plugin_params` | `int32_t (const SgEnv *h, char **json, char **err)` |
//! | `softgfn_plugin_initial_state` | `int32_t (const SgEnv *h, int32_t *out, size_t out_len, char **err)` |
//! | `softgfn_plugin_forward_masks` | `int32_t (const SgEnv *h, const int32_t *s, size_t s_len, bool *out, size_t out_len, char **err)` |
//! | `softgfn_plugin_backward_masks` | same as `forward_masks` |
//! | `softgfn_plugin_step` | `int32_t (const SgEnv *h, const int32_t *s, size_t s_len, const uint32_t *a, size_t a_len, int32_t *next, size_t next_len, uint32_t *b, size_t b_len, char **err)` |
//! | `softgfn_plugin_backward_step` | same as `step` (backward actions in, parents and forward actions out) |
//! | `softgfn_plugin_log_reward` | `int32_t (const SgEnv *h, const int32_t *s, size_t s_len, double *out, size_t out_len, char **err)` |
//! | `softgfn_plugin_encode` | `int32_t (const SgEnv *h, const int32_t *s, size_t s_len, float *out, size_t out_len, char **err)` |
//! | `softgfn_plugin_num_states` | `int32_t (const SgEnv *h, bool *enumerable, uint64_t *out, char **err)` |
//! | `softgfn_plugin_state_index` | `int32_t (const SgEnv *h, const int32_t *s, size_t s_len, uint64_t *out, size_t out_len, char **err)` |
//! | `softgfn_plugin_states_from_index` | `int32_t (const SgEnv *h, const uint64_t *i, size_t i_len, int32_t *out, size_t out_len, char **err)` |
//! | *version 2:* | |
//! | `softgfn_plugin_capabilities` | `int32_t (const SgEnv *h, uint64_t *out, char **err)` |
//! | `softgfn_plugin_readable` | `int32_t (const SgEnv *h, const int32_t *s, size_t s_len, char **text, char **err)` |
//! | `softgfn_plugin_canonical_key` | `int32_t (const SgEnv *h, const int32_t *s, size_t s_len, int32_t *out, size_t out_cap, size_t *out_len, char **err)` |
//!
//! Version 2 adds the optional capabilities of an environment. `capabilities` returns a bit set
//! ([`CAP_READABLE`], [`CAP_STATE_EQUIVALENCE`]); `readable` returns the readable form of one
//! state (a plugin-owned string); `canonical_key` writes the canonical key of one state into
//! `out` when it fits in `out_cap` values and always stores its length in `*out_len` (the host
//! calls again with a larger buffer when it did not fit). A version-1 plugin has none of the
//! three: the host treats it as having no optional capability (the integer row is shown for a
//! state; states are equal only when their rows are).

use std::ffi::c_char;

/// The version of this ABI (what [`crate::export_plugin!`] exports).
pub const ABI_VERSION: u32 = 2;

/// The oldest ABI version a host still loads (without the entry points added since).
pub const OLDEST_ABI_VERSION: u32 = 1;

/// Capability bit: the environment has a readable form of its states (`softgfn_plugin_readable`).
pub const CAP_READABLE: u64 = 1 << 0;
/// Capability bit: the environment declares a state equivalence (`softgfn_plugin_canonical_key`).
pub const CAP_STATE_EQUIVALENCE: u64 = 1 << 1;

/// The call succeeded.
pub const STATUS_OK: i32 = 0;
/// The environment returned an error (the message is the error's text).
pub const STATUS_ERROR: i32 = 1;
/// The plugin panicked; the panic was caught (the message is the panic message and location).
pub const STATUS_PANIC: i32 = 2;
/// The call itself was malformed: a null pointer, a buffer of the wrong length, text that is not
/// UTF-8 or JSON, an unknown environment name.
pub const STATUS_INVALID_ARGUMENT: i32 = 3;

/// An environment instance inside a plugin (opaque to the host).
#[repr(C)]
pub struct SgEnv {
    _opaque: [u8; 0],
}

/// The shapes of an environment ([`softgfn_core::EnvSpec`] without its name).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SgEnvSpec {
    /// Number of `i32` values in a state row.
    pub state_width: u64,
    /// Number of forward actions, the exit action included.
    pub num_actions: u64,
    /// Number of backward actions.
    pub num_backward_actions: u64,
    /// Length of the `f32` feature vector of a state.
    pub feature_dim: u64,
    /// Upper bound on the number of forward actions of a complete trajectory.
    pub max_trajectory_length: u64,
    /// Whether the DAG has an exit action.
    pub has_exit_action: bool,
    /// The exit action (meaningful when `has_exit_action`).
    pub exit_action: u32,
}

/// `softgfn_plugin_abi_version`.
pub type AbiVersionFn = unsafe extern "C" fn() -> u32;
/// `softgfn_plugin_manifest`.
pub type ManifestFn = unsafe extern "C" fn(json: *mut *mut c_char, err: *mut *mut c_char) -> i32;
/// `softgfn_plugin_free_string`.
pub type FreeStringFn = unsafe extern "C" fn(s: *mut c_char);
/// `softgfn_plugin_create`.
pub type CreateFn = unsafe extern "C" fn(
    env: *const c_char,
    params_json: *const c_char,
    out: *mut *mut SgEnv,
    err: *mut *mut c_char,
) -> i32;
/// `softgfn_plugin_destroy`.
pub type DestroyFn = unsafe extern "C" fn(handle: *mut SgEnv);
/// `softgfn_plugin_spec`.
pub type SpecFn = unsafe extern "C" fn(
    handle: *const SgEnv,
    out: *mut SgEnvSpec,
    name: *mut *mut c_char,
    err: *mut *mut c_char,
) -> i32;
/// `softgfn_plugin_params`.
pub type ParamsFn = unsafe extern "C" fn(
    handle: *const SgEnv,
    json: *mut *mut c_char,
    err: *mut *mut c_char,
) -> i32;
/// `softgfn_plugin_initial_state`.
pub type InitialStateFn = unsafe extern "C" fn(
    handle: *const SgEnv,
    out: *mut i32,
    out_len: usize,
    err: *mut *mut c_char,
) -> i32;
/// `softgfn_plugin_forward_masks` and `softgfn_plugin_backward_masks`.
pub type MasksFn = unsafe extern "C" fn(
    handle: *const SgEnv,
    states: *const i32,
    states_len: usize,
    out: *mut bool,
    out_len: usize,
    err: *mut *mut c_char,
) -> i32;
/// `softgfn_plugin_step` and `softgfn_plugin_backward_step`.
pub type StepFn = unsafe extern "C" fn(
    handle: *const SgEnv,
    states: *const i32,
    states_len: usize,
    actions: *const u32,
    actions_len: usize,
    out_states: *mut i32,
    out_states_len: usize,
    out_actions: *mut u32,
    out_actions_len: usize,
    err: *mut *mut c_char,
) -> i32;
/// `softgfn_plugin_log_reward`.
pub type LogRewardFn = unsafe extern "C" fn(
    handle: *const SgEnv,
    states: *const i32,
    states_len: usize,
    out: *mut f64,
    out_len: usize,
    err: *mut *mut c_char,
) -> i32;
/// `softgfn_plugin_encode`.
pub type EncodeFn = unsafe extern "C" fn(
    handle: *const SgEnv,
    states: *const i32,
    states_len: usize,
    out: *mut f32,
    out_len: usize,
    err: *mut *mut c_char,
) -> i32;
/// `softgfn_plugin_num_states`.
pub type NumStatesFn = unsafe extern "C" fn(
    handle: *const SgEnv,
    enumerable: *mut bool,
    out: *mut u64,
    err: *mut *mut c_char,
) -> i32;
/// `softgfn_plugin_state_index`.
pub type StateIndexFn = unsafe extern "C" fn(
    handle: *const SgEnv,
    states: *const i32,
    states_len: usize,
    out: *mut u64,
    out_len: usize,
    err: *mut *mut c_char,
) -> i32;
/// `softgfn_plugin_states_from_index`.
pub type StatesFromIndexFn = unsafe extern "C" fn(
    handle: *const SgEnv,
    indices: *const u64,
    indices_len: usize,
    out: *mut i32,
    out_len: usize,
    err: *mut *mut c_char,
) -> i32;

/// `softgfn_plugin_capabilities` (version 2).
pub type CapabilitiesFn =
    unsafe extern "C" fn(handle: *const SgEnv, out: *mut u64, err: *mut *mut c_char) -> i32;
/// `softgfn_plugin_readable` (version 2).
pub type ReadableFn = unsafe extern "C" fn(
    handle: *const SgEnv,
    state: *const i32,
    state_len: usize,
    text: *mut *mut c_char,
    err: *mut *mut c_char,
) -> i32;
/// `softgfn_plugin_canonical_key` (version 2).
pub type CanonicalKeyFn = unsafe extern "C" fn(
    handle: *const SgEnv,
    state: *const i32,
    state_len: usize,
    out: *mut i32,
    out_cap: usize,
    out_len: *mut usize,
    err: *mut *mut c_char,
) -> i32;

/// Symbol name of the ABI version (read first).
pub const SYM_ABI_VERSION: &str = "softgfn_plugin_abi_version";
/// Symbol name of the manifest.
pub const SYM_MANIFEST: &str = "softgfn_plugin_manifest";
/// Symbol name of the string deallocator.
pub const SYM_FREE_STRING: &str = "softgfn_plugin_free_string";
/// Symbol name of the constructor.
pub const SYM_CREATE: &str = "softgfn_plugin_create";
/// Symbol name of the destructor.
pub const SYM_DESTROY: &str = "softgfn_plugin_destroy";
/// Symbol name of `spec`.
pub const SYM_SPEC: &str = "softgfn_plugin_spec";
/// Symbol name of `params`.
pub const SYM_PARAMS: &str = "softgfn_plugin_params";
/// Symbol name of `initial_state`.
pub const SYM_INITIAL_STATE: &str = "softgfn_plugin_initial_state";
/// Symbol name of `forward_masks`.
pub const SYM_FORWARD_MASKS: &str = "softgfn_plugin_forward_masks";
/// Symbol name of `backward_masks`.
pub const SYM_BACKWARD_MASKS: &str = "softgfn_plugin_backward_masks";
/// Symbol name of `step`.
pub const SYM_STEP: &str = "softgfn_plugin_step";
/// Symbol name of `backward_step`.
pub const SYM_BACKWARD_STEP: &str = "softgfn_plugin_backward_step";
/// Symbol name of `log_reward`.
pub const SYM_LOG_REWARD: &str = "softgfn_plugin_log_reward";
/// Symbol name of `encode`.
pub const SYM_ENCODE: &str = "softgfn_plugin_encode";
/// Symbol name of `num_states` (with the enumerability flag).
pub const SYM_NUM_STATES: &str = "softgfn_plugin_num_states";
/// Symbol name of `state_index`.
pub const SYM_STATE_INDEX: &str = "softgfn_plugin_state_index";
/// Symbol name of `states_from_index`.
pub const SYM_STATES_FROM_INDEX: &str = "softgfn_plugin_states_from_index";

/// Symbol name of `capabilities` (version 2).
pub const SYM_CAPABILITIES: &str = "softgfn_plugin_capabilities";
/// Symbol name of `readable` (version 2).
pub const SYM_READABLE: &str = "softgfn_plugin_readable";
/// Symbol name of `canonical_key` (version 2).
pub const SYM_CANONICAL_KEY: &str = "softgfn_plugin_canonical_key";

/// The symbols version 2 added to version 1.
pub const SYMBOLS_ADDED_IN_V2: &[&str] = &[SYM_CAPABILITIES, SYM_READABLE, SYM_CANONICAL_KEY];

/// Every symbol of ABI version `version` (empty for a version this host does not know).
pub fn symbols_of(version: u32) -> Vec<&'static str> {
    match version {
        1 => SYMBOLS_V1.to_vec(),
        2 => SYMBOLS_V1
            .iter()
            .chain(SYMBOLS_ADDED_IN_V2)
            .copied()
            .collect(),
        _ => Vec::new(),
    }
}

/// Every symbol of ABI version 1, in the order the host resolves them.
pub const SYMBOLS_V1: &[&str] = &[
    SYM_ABI_VERSION,
    SYM_MANIFEST,
    SYM_FREE_STRING,
    SYM_CREATE,
    SYM_DESTROY,
    SYM_SPEC,
    SYM_PARAMS,
    SYM_INITIAL_STATE,
    SYM_FORWARD_MASKS,
    SYM_BACKWARD_MASKS,
    SYM_STEP,
    SYM_BACKWARD_STEP,
    SYM_LOG_REWARD,
    SYM_ENCODE,
    SYM_NUM_STATES,
    SYM_STATE_INDEX,
    SYM_STATES_FROM_INDEX,
];

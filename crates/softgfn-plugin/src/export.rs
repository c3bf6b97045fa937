//! The plugin side of the ABI: what [`crate::export_plugin!`] expands to calls these functions.
//!
//! Every function catches panics (`catch_unwind`) and turns them, and the environment's `Err`s,
//! into a status code plus a plugin-owned message. While an entry point runs, a panic hook
//! (installed once, chained to the previous one) records the panic message and location instead
//! of printing it, so the host can show it in one error.
//!
//! A plugin must be built with `panic = "unwind"` (the default); with `panic = "abort"` a panic
//! ends the host process.

use std::cell::{Cell, RefCell};
use std::ffi::{CStr, CString, c_char};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use softgfn_core::{CoreError, EnvSpec, Environment, registry::EnvBuilder};

use crate::abi::{
    ABI_VERSION, CAP_READABLE, CAP_STATE_EQUIVALENCE, STATUS_ERROR, STATUS_INVALID_ARGUMENT,
    STATUS_OK, STATUS_PANIC, SgEnv, SgEnvSpec,
};
use crate::manifest::{Manifest, ManifestEnv, SOFTGFN_VERSION};

/// A plugin: its name, version and environments (built by [`crate::export_plugin!`]).
pub struct PluginDef {
    /// Plugin name (the qualifier of `<plugin>/<env>`).
    pub name: &'static str,
    /// Plugin version.
    pub version: &'static str,
    /// Its environments.
    pub environments: &'static [EnvDef],
}

/// One environment of a [`PluginDef`].
pub struct EnvDef {
    /// Bare name.
    pub name: &'static str,
    /// One-line summary.
    pub summary: &'static str,
    /// The complete default parameters.
    pub default_params: fn() -> serde_json::Value,
    /// Constructor from (possibly partial) JSON parameters.
    pub build: EnvBuilder,
}

impl PluginDef {
    /// The manifest of this plugin.
    pub fn manifest(&self) -> Manifest {
        Manifest {
            name: self.name.into(),
            version: self.version.into(),
            softgfn_version: SOFTGFN_VERSION.into(),
            environments: self
                .environments
                .iter()
                .map(|e| ManifestEnv {
                    name: e.name.into(),
                    summary: e.summary.into(),
                    default_params: (e.default_params)(),
                })
                .collect(),
        }
    }
}

/// The complete default parameters of an environment whose parameters are the config struct `C`:
/// `C::default()` as JSON (the `default_params` that [`crate::environments!`] registers).
pub fn default_params<C: Default + serde::Serialize>() -> serde_json::Value {
    serde_json::to_value(C::default()).unwrap_or(serde_json::Value::Null)
}

/// Builds the environment `name` from (possibly partial) JSON parameters: they are parsed into
/// its config struct `C` with [`softgfn_core::parse_params`] (missing keys take their defaults,
/// an unknown or mistyped key is an error naming it) and handed to its constructor `new` (the
/// `build` that [`crate::environments!`] registers).
pub fn build_env<C, E, Er>(
    name: &str,
    params: &serde_json::Value,
    new: impl FnOnce(C) -> Result<E, Er>,
) -> softgfn_core::Result<Box<dyn Environment>>
where
    C: serde::de::DeserializeOwned,
    E: Environment + 'static,
    CoreError: From<Er>,
{
    let config: C = softgfn_core::parse_params(name, params)?;
    Ok(Box::new(new(config)?))
}

const MAGIC: u64 = 0x736f_6674_6766_6e31; // "softgfn1"

/// What an [`SgEnv`] handle points to.
struct Instance {
    magic: u64,
    env: Box<dyn Environment>,
}

enum Failure {
    Env(CoreError),
    Invalid(String),
}

impl From<CoreError> for Failure {
    fn from(e: CoreError) -> Self {
        Failure::Env(e)
    }
}

type Outcome<T = ()> = Result<T, Failure>;

thread_local! {
    /// Depth of entry points on this thread (the panic hook records only inside them).
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// The message and location of the last panic inside an entry point.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let inside = DEPTH.try_with(|d| d.get() > 0).unwrap_or(false);
            if !inside {
                return previous(info);
            }
            let msg = info
                .payload_as_str()
                .unwrap_or("(a panic without a message)");
            let text = match info.location() {
                Some(l) => format!("{msg} (at {}:{}:{})", l.file(), l.line(), l.column()),
                None => msg.to_string(),
            };
            let _ = LAST_PANIC.try_with(|p| *p.borrow_mut() = Some(text));
        }));
    });
}

/// Stores `msg` as a plugin-owned string in `*err` (when `err` is not null).
///
/// # Safety
/// `err` is null or valid for writing one pointer.
unsafe fn set_message(err: *mut *mut c_char, msg: &str) {
    if err.is_null() {
        return;
    }
    let c = CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
    // SAFETY: `err` is not null and valid for writes (the caller's contract).
    unsafe { err.write(c.into_raw()) };
}

/// Runs `f`, turning panics and failures into a status and a message in `*err`.
///
/// # Safety
/// `err` is null or valid for writing one pointer.
unsafe fn guarded(err: *mut *mut c_char, f: impl FnOnce() -> Outcome) -> i32 {
    install_panic_hook();
    DEPTH.with(|d| d.set(d.get() + 1));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    DEPTH.with(|d| d.set(d.get() - 1));
    let (status, msg) = match result {
        Ok(Ok(())) => return STATUS_OK,
        Ok(Err(Failure::Env(e))) => (STATUS_ERROR, e.to_string()),
        Ok(Err(Failure::Invalid(m))) => (STATUS_INVALID_ARGUMENT, m),
        Err(payload) => {
            let recorded = LAST_PANIC.with(|p| p.borrow_mut().take());
            let msg = recorded.unwrap_or_else(|| {
                payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(a panic without a message)".into())
            });
            (STATUS_PANIC, msg)
        }
    };
    // SAFETY: forwarded from the caller's contract.
    unsafe { set_message(err, &msg) };
    status
}

/// A caller's input buffer as a slice.
///
/// # Safety
/// When `len > 0` and `p` is not null, `p` points to `len` initialized values that stay
/// unchanged during the call.
unsafe fn input<'a, T>(p: *const T, len: usize, what: &str) -> Outcome<&'a [T]> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() || !p.is_aligned() || len > isize::MAX as usize / size_of::<T>().max(1) {
        return Err(Failure::Invalid(format!(
            "{what}: null, misaligned or oversized buffer of {len} values"
        )));
    }
    // SAFETY: non-null, aligned, and valid for `len` reads by the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// A caller's output buffer as a slice.
///
/// # Safety
/// When `len > 0` and `p` is not null, `p` points to `len` values of `T` that nothing else
/// accesses during the call, and any bit pattern written by [`zeroed_output`] callers is valid.
unsafe fn output<'a, T>(p: *mut T, len: usize, what: &str) -> Outcome<&'a mut [T]> {
    if len == 0 {
        return Ok(&mut []);
    }
    if p.is_null() || !p.is_aligned() || len > isize::MAX as usize / size_of::<T>().max(1) {
        return Err(Failure::Invalid(format!(
            "{what}: null, misaligned or oversized buffer of {len} values"
        )));
    }
    // SAFETY: non-null, aligned, valid for `len` reads and writes and not aliased (the caller's
    // contract); the values are initialized (zeroed first for types with invalid bit patterns).
    Ok(unsafe { std::slice::from_raw_parts_mut(p, len) })
}

/// A `bool` output buffer, zeroed first so that whatever bytes the caller left there are valid.
///
/// # Safety
/// As [`output`], without the initialization requirement.
unsafe fn zeroed_output<'a>(p: *mut bool, len: usize, what: &str) -> Outcome<&'a mut [bool]> {
    if len > 0 && !p.is_null() && p.is_aligned() && len <= isize::MAX as usize {
        // SAFETY: valid for `len` byte writes by the caller's contract; 0 is `false`.
        unsafe { p.write_bytes(0, len) };
    }
    // SAFETY: forwarded; the bytes are now valid `bool`s.
    unsafe { output(p, len, what) }
}

/// The instance behind a handle.
///
/// # Safety
/// `h` is null or a handle returned by [`create`] and not yet destroyed.
unsafe fn instance<'a>(h: *const SgEnv) -> Outcome<&'a Instance> {
    if h.is_null() {
        return Err(Failure::Invalid("the environment handle is null".into()));
    }
    // SAFETY: `h` came from `Box::into_raw` of an `Instance` in `create` (the caller's contract).
    let inst = unsafe { &*(h as *const Instance) };
    if inst.magic != MAGIC {
        return Err(Failure::Invalid(
            "the environment handle was not created by this plugin or was destroyed".into(),
        ));
    }
    Ok(inst)
}

/// Text of a NUL-terminated UTF-8 string.
///
/// # Safety
/// `p` is null or a valid NUL-terminated string.
unsafe fn text<'a>(p: *const c_char, what: &str) -> Outcome<&'a str> {
    if p.is_null() {
        return Err(Failure::Invalid(format!("{what} is null")));
    }
    // SAFETY: a valid NUL-terminated string (the caller's contract).
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str()
        .map_err(|e| Failure::Invalid(format!("{what} is not UTF-8: {e}")))
}

/// Writes a plugin-owned string into `*out`.
///
/// # Safety
/// `out` is valid for writing one pointer (checked for null).
unsafe fn put_string(out: *mut *mut c_char, s: &str, what: &str) -> Outcome {
    if out.is_null() {
        return Err(Failure::Invalid(format!("{what} out-pointer is null")));
    }
    let c = CString::new(s).map_err(|_| Failure::Invalid(format!("{what} contains NUL")))?;
    // SAFETY: not null and valid for writes (the caller's contract).
    unsafe { out.write(c.into_raw()) };
    Ok(())
}

/// `softgfn_plugin_abi_version`.
pub fn abi_version() -> u32 {
    ABI_VERSION
}

/// `softgfn_plugin_manifest`.
///
/// # Safety
/// `json` and `err` are null or valid for writing one pointer.
pub unsafe fn manifest(def: &PluginDef, json: *mut *mut c_char, err: *mut *mut c_char) -> i32 {
    // SAFETY: the pointers are forwarded under the caller's contract.
    unsafe {
        guarded(err, || {
            put_string(json, &def.manifest().to_json(), "manifest")
        })
    }
}

/// `softgfn_plugin_free_string`: frees a string this plugin returned.
///
/// # Safety
/// `s` is null or a string returned by this plugin and not yet freed.
pub unsafe fn free_string(s: *mut c_char) {
    if !s.is_null() {
        // SAFETY: `s` came from `CString::into_raw` in this plugin (the caller's contract).
        drop(unsafe { CString::from_raw(s) });
    }
}

/// `softgfn_plugin_create`.
///
/// # Safety
/// `env` and `params_json` are null or NUL-terminated strings; `out` and `err` are null or valid
/// for writing one pointer.
pub unsafe fn create(
    def: &PluginDef,
    env: *const c_char,
    params_json: *const c_char,
    out: *mut *mut SgEnv,
    err: *mut *mut c_char,
) -> i32 {
    let run = || -> Outcome {
        // SAFETY: the caller's contract.
        let name = unsafe { text(env, "environment name") }?;
        // SAFETY: the caller's contract.
        let params = unsafe { text(params_json, "parameters") }?;
        if out.is_null() {
            return Err(Failure::Invalid("the handle out-pointer is null".into()));
        }
        let def = def
            .environments
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| {
                Failure::Invalid(format!(
                    "plugin `{}` has no environment `{name}`; it has: {}",
                    def.name,
                    def.environments
                        .iter()
                        .map(|e| e.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
        let params: serde_json::Value = serde_json::from_str(params)
            .map_err(|e| Failure::Invalid(format!("parameters are not JSON: {e}")))?;
        let env = (def.build)(&params)?;
        let h = Box::into_raw(Box::new(Instance { magic: MAGIC, env }));
        // SAFETY: `out` is not null and valid for writes (the caller's contract).
        unsafe { out.write(h as *mut SgEnv) };
        Ok(())
    };
    // SAFETY: `err` is forwarded under the caller's contract.
    unsafe { guarded(err, run) }
}

/// `softgfn_plugin_destroy`.
///
/// # Safety
/// `h` is null or a handle returned by [`create`] and not yet destroyed; no call on it runs or
/// follows.
pub unsafe fn destroy(h: *mut SgEnv) {
    if h.is_null() {
        return;
    }
    let _ = panic::catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `h` came from `Box::into_raw` in `create` and is destroyed once (the
        // caller's contract).
        let mut inst = unsafe { Box::from_raw(h as *mut Instance) };
        inst.magic = 0;
        drop(inst);
    }));
}

fn c_spec(s: &EnvSpec) -> SgEnvSpec {
    SgEnvSpec {
        state_width: s.state_width as u64,
        num_actions: s.num_actions as u64,
        num_backward_actions: s.num_backward_actions as u64,
        feature_dim: s.feature_dim as u64,
        max_trajectory_length: s.max_trajectory_length as u64,
        has_exit_action: s.exit_action.is_some(),
        exit_action: s.exit_action.unwrap_or(0),
    }
}

/// `softgfn_plugin_spec`.
///
/// # Safety
/// `h` as in [`destroy`] (not destroyed); `out` is null or valid for writing an [`SgEnvSpec`];
/// `name` and `err` are null or valid for writing one pointer.
pub unsafe fn spec(
    h: *const SgEnv,
    out: *mut SgEnvSpec,
    name: *mut *mut c_char,
    err: *mut *mut c_char,
) -> i32 {
    let run = || -> Outcome {
        // SAFETY: the caller's contract.
        let inst = unsafe { instance(h) }?;
        if out.is_null() {
            return Err(Failure::Invalid("the spec out-pointer is null".into()));
        }
        let s = inst.env.spec();
        // SAFETY: the caller's contract.
        unsafe { put_string(name, &s.name, "spec name") }?;
        // SAFETY: not null and valid for writes (the caller's contract).
        unsafe { out.write(c_spec(s)) };
        Ok(())
    };
    // SAFETY: forwarded.
    unsafe { guarded(err, run) }
}

/// `softgfn_plugin_params`.
///
/// # Safety
/// As [`spec`].
pub unsafe fn params(h: *const SgEnv, json: *mut *mut c_char, err: *mut *mut c_char) -> i32 {
    let run = || -> Outcome {
        // SAFETY: the caller's contract.
        let inst = unsafe { instance(h) }?;
        let text = inst.env.params().to_string();
        // SAFETY: the caller's contract.
        unsafe { put_string(json, &text, "params") }
    };
    // SAFETY: forwarded.
    unsafe { guarded(err, run) }
}

/// `softgfn_plugin_initial_state`.
///
/// # Safety
/// `h` as in [`spec`]; `out` points to `out_len` writable values; `err` as in [`spec`].
pub unsafe fn initial_state(
    h: *const SgEnv,
    out: *mut i32,
    out_len: usize,
    err: *mut *mut c_char,
) -> i32 {
    let run = || -> Outcome {
        // SAFETY: the caller's contract.
        let inst = unsafe { instance(h) }?;
        let width = inst.env.spec().state_width;
        if out_len != width {
            return Err(Failure::Invalid(format!(
                "initial_state: the output buffer has {out_len} values, the state width is {width}"
            )));
        }
        // SAFETY: the caller's contract.
        let out = unsafe { output(out, out_len, "initial_state output") }?;
        inst.env.initial_state(out);
        Ok(())
    };
    // SAFETY: forwarded.
    unsafe { guarded(err, run) }
}

/// `softgfn_plugin_forward_masks` (`backward = false`) and `softgfn_plugin_backward_masks`.
///
/// # Safety
/// `h` as in [`spec`]; `states` points to `states_len` readable values and `out` to `out_len`
/// writable ones, not overlapping; `err` as in [`spec`].
pub unsafe fn masks(
    backward: bool,
    h: *const SgEnv,
    states: *const i32,
    states_len: usize,
    out: *mut bool,
    out_len: usize,
    err: *mut *mut c_char,
) -> i32 {
    let run = || -> Outcome {
        // SAFETY: the caller's contract.
        let inst = unsafe { instance(h) }?;
        // SAFETY: the caller's contract.
        let states = unsafe { input(states, states_len, "states") }?;
        // SAFETY: the caller's contract.
        let out = unsafe { zeroed_output(out, out_len, "mask output") }?;
        if backward {
            inst.env.backward_masks(states, out)?;
        } else {
            inst.env.forward_masks(states, out)?;
        }
        Ok(())
    };
    // SAFETY: forwarded.
    unsafe { guarded(err, run) }
}

/// `softgfn_plugin_step` (`backward = false`) and `softgfn_plugin_backward_step`.
///
/// # Safety
/// `h` as in [`spec`]; each pointer points to its length of values (readable inputs, writable
/// outputs), no output overlapping anything else; `err` as in [`spec`].
#[allow(clippy::too_many_arguments)]
pub unsafe fn step(
    backward: bool,
    h: *const SgEnv,
    states: *const i32,
    states_len: usize,
    actions: *const u32,
    actions_len: usize,
    out_states: *mut i32,
    out_states_len: usize,
    out_actions: *mut u32,
    out_actions_len: usize,
    err: *mut *mut c_char,
) -> i32 {
    let run = || -> Outcome {
        // SAFETY (all four buffers and the handle): the caller's contract.
        let inst = unsafe { instance(h) }?;
        // SAFETY: the caller's contract.
        let states = unsafe { input(states, states_len, "states") }?;
        // SAFETY: the caller's contract.
        let actions = unsafe { input(actions, actions_len, "actions") }?;
        // SAFETY: the caller's contract.
        let out_states = unsafe { output(out_states, out_states_len, "state output") }?;
        // SAFETY: the caller's contract.
        let out_actions = unsafe { output(out_actions, out_actions_len, "action output") }?;
        if backward {
            inst.env
                .backward_step(states, actions, out_states, out_actions)?;
        } else {
            inst.env.step(states, actions, out_states, out_actions)?;
        }
        Ok(())
    };
    // SAFETY: forwarded.
    unsafe { guarded(err, run) }
}

/// `softgfn_plugin_log_reward`.
///
/// # Safety
/// As [`masks`].
pub unsafe fn log_reward(
    h: *const SgEnv,
    states: *const i32,
    states_len: usize,
    out: *mut f64,
    out_len: usize,
    err: *mut *mut c_char,
) -> i32 {
    let run = || -> Outcome {
        // SAFETY: the caller's contract.
        let inst = unsafe { instance(h) }?;
        // SAFETY: the caller's contract.
        let states = unsafe { input(states, states_len, "states") }?;
        // SAFETY: the caller's contract.
        let out = unsafe { output(out, out_len, "log-reward output") }?;
        Ok(inst.env.log_reward(states, out)?)
    };
    // SAFETY: forwarded.
    unsafe { guarded(err, run) }
}

/// `softgfn_plugin_encode`.
///
/// # Safety
/// As [`masks`].
pub unsafe fn encode(
    h: *const SgEnv,
    states: *const i32,
    states_len: usize,
    out: *mut f32,
    out_len: usize,
    err: *mut *mut c_char,
) -> i32 {
    let run = || -> Outcome {
        // SAFETY: the caller's contract.
        let inst = unsafe { instance(h) }?;
        // SAFETY: the caller's contract.
        let states = unsafe { input(states, states_len, "states") }?;
        // SAFETY: the caller's contract.
        let out = unsafe { output(out, out_len, "feature output") }?;
        Ok(inst.env.encode(states, out)?)
    };
    // SAFETY: forwarded.
    unsafe { guarded(err, run) }
}

/// `softgfn_plugin_num_states`: whether the instance is enumerable, and its number of states.
///
/// # Safety
/// `h` as in [`spec`]; `enumerable` and `out` are null or valid for one write; `err` as in
/// [`spec`].
pub unsafe fn num_states(
    h: *const SgEnv,
    enumerable: *mut bool,
    out: *mut u64,
    err: *mut *mut c_char,
) -> i32 {
    let run = || -> Outcome {
        // SAFETY: the caller's contract.
        let inst = unsafe { instance(h) }?;
        if enumerable.is_null() || out.is_null() {
            return Err(Failure::Invalid("num_states: null out-pointer".into()));
        }
        let n = inst.env.as_enumerable().map(|e| e.num_states());
        // SAFETY: both are not null and valid for writes (the caller's contract).
        unsafe {
            enumerable.write(n.is_some());
            out.write(n.unwrap_or(0));
        }
        Ok(())
    };
    // SAFETY: forwarded.
    unsafe { guarded(err, run) }
}

fn enumerable(inst: &Instance) -> Outcome<&dyn softgfn_core::Enumerable> {
    inst.env.as_enumerable().ok_or_else(|| {
        Failure::Env(CoreError::Unsupported {
            env: inst.env.spec().name.clone(),
            capability: "enumeration".into(),
        })
    })
}

/// `softgfn_plugin_state_index`.
///
/// # Safety
/// As [`masks`].
pub unsafe fn state_index(
    h: *const SgEnv,
    states: *const i32,
    states_len: usize,
    out: *mut u64,
    out_len: usize,
    err: *mut *mut c_char,
) -> i32 {
    let run = || -> Outcome {
        // SAFETY: the caller's contract.
        let inst = unsafe { instance(h) }?;
        // SAFETY: the caller's contract.
        let states = unsafe { input(states, states_len, "states") }?;
        // SAFETY: the caller's contract.
        let out = unsafe { output(out, out_len, "index output") }?;
        Ok(enumerable(inst)?.state_index(states, out)?)
    };
    // SAFETY: forwarded.
    unsafe { guarded(err, run) }
}

/// `softgfn_plugin_states_from_index`.
///
/// # Safety
/// As [`masks`].
pub unsafe fn states_from_index(
    h: *const SgEnv,
    indices: *const u64,
    indices_len: usize,
    out: *mut i32,
    out_len: usize,
    err: *mut *mut c_char,
) -> i32 {
    let run = || -> Outcome {
        // SAFETY: the caller's contract.
        let inst = unsafe { instance(h) }?;
        // SAFETY: the caller's contract.
        let indices = unsafe { input(indices, indices_len, "indices") }?;
        // SAFETY: the caller's contract.
        let out = unsafe { output(out, out_len, "state output") }?;
        Ok(enumerable(inst)?.states_from_index(indices, out)?)
    };
    // SAFETY: forwarded.
    unsafe { guarded(err, run) }
}

/// `softgfn_plugin_capabilities` (version 2): the bit set of the instance's optional
/// capabilities ([`CAP_READABLE`], [`CAP_STATE_EQUIVALENCE`]).
///
/// # Safety
/// `h` as in [`spec`]; `out` is null or valid for one write; `err` as in [`spec`].
pub unsafe fn capabilities(h: *const SgEnv, out: *mut u64, err: *mut *mut c_char) -> i32 {
    let run = || -> Outcome {
        // SAFETY: the caller's contract.
        let inst = unsafe { instance(h) }?;
        if out.is_null() {
            return Err(Failure::Invalid("capabilities: null out-pointer".into()));
        }
        let mut caps = 0;
        if inst.env.as_readable().is_some() {
            caps |= CAP_READABLE;
        }
        if inst.env.as_state_equivalence().is_some() {
            caps |= CAP_STATE_EQUIVALENCE;
        }
        // SAFETY: not null and valid for writes (the caller's contract).
        unsafe { out.write(caps) };
        Ok(())
    };
    // SAFETY: forwarded.
    unsafe { guarded(err, run) }
}

fn unsupported(inst: &Instance, capability: &str) -> Failure {
    Failure::Env(CoreError::Unsupported {
        env: inst.env.spec().name.clone(),
        capability: capability.into(),
    })
}

/// `softgfn_plugin_readable` (version 2): the readable form of one state.
///
/// # Safety
/// `h` as in [`spec`]; `state` points to `state_len` readable values; `text` and `err` are null
/// or valid for writing one pointer.
pub unsafe fn readable(
    h: *const SgEnv,
    state: *const i32,
    state_len: usize,
    text: *mut *mut c_char,
    err: *mut *mut c_char,
) -> i32 {
    let run = || -> Outcome {
        // SAFETY: the caller's contract.
        let inst = unsafe { instance(h) }?;
        // SAFETY: the caller's contract.
        let state = unsafe { input(state, state_len, "state") }?;
        let r = inst
            .env
            .as_readable()
            .ok_or_else(|| unsupported(inst, "readable form"))?;
        let spec = inst.env.spec();
        spec.check_len("state", 1, spec.state_width, state.len())?;
        let shown = r.readable(state)?;
        // SAFETY: the caller's contract.
        unsafe { put_string(text, &shown.replace('\0', " "), "readable text") }
    };
    // SAFETY: forwarded.
    unsafe { guarded(err, run) }
}

/// `softgfn_plugin_canonical_key` (version 2): the canonical key of one state, written into
/// `out` when it fits in `out_cap` values; its length always goes to `*out_len`.
///
/// # Safety
/// `h` as in [`spec`]; `state` points to `state_len` readable values, `out` to `out_cap`
/// writable ones; `out_len` is null or valid for one write; `err` as in [`spec`].
pub unsafe fn canonical_key(
    h: *const SgEnv,
    state: *const i32,
    state_len: usize,
    out: *mut i32,
    out_cap: usize,
    out_len: *mut usize,
    err: *mut *mut c_char,
) -> i32 {
    let run = || -> Outcome {
        // SAFETY: the caller's contract.
        let inst = unsafe { instance(h) }?;
        // SAFETY: the caller's contract.
        let state = unsafe { input(state, state_len, "state") }?;
        // SAFETY: the caller's contract.
        let out = unsafe { output(out, out_cap, "key output") }?;
        if out_len.is_null() {
            return Err(Failure::Invalid(
                "canonical_key: null length out-pointer".into(),
            ));
        }
        let eq = inst
            .env
            .as_state_equivalence()
            .ok_or_else(|| unsupported(inst, "state equivalence"))?;
        let spec = inst.env.spec();
        spec.check_len("state", 1, spec.state_width, state.len())?;
        let key = eq.canonical_key(state)?;
        if key.len() <= out.len() {
            out[..key.len()].copy_from_slice(&key);
        }
        // SAFETY: not null and valid for writes (the caller's contract).
        unsafe { out_len.write(key.len()) };
        Ok(())
    };
    // SAFETY: forwarded.
    unsafe { guarded(err, run) }
}

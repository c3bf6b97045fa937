//! The host side (feature `host`): load plugin libraries and use their environments.
//!
//! [`load`] opens a library, reads `softgfn_plugin_abi_version` (missing: not a softgfn plugin),
//! checks it against [`ABI_VERSION`] (versions [`OLDEST_ABI_VERSION`]..=[`ABI_VERSION`] load; a
//! version-1 plugin has no optional capabilities), resolves the other symbols of its version, reads and validates the
//! manifest (the softgfn version it was built against must have the host's major.minor), and
//! registers each environment in `softgfn_core`'s registry as `<plugin>/<env>` and `<env>`.
//! Libraries are never unloaded. [`PluginEnv`] implements `Environment` (and `Enumerable`,
//! `Readable` and `StateEquivalence` when the instance has them) by calling through the ABI.

use std::ffi::{CStr, CString, c_char};
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::{Arc, Mutex};

use softgfn_core::registry::{RuntimeEnvRegistration, register_runtime_envs};
use softgfn_core::{
    CoreError, Enumerable, EnvSpec, Environment, Readable, StateEquivalence, StateValue,
};

use crate::abi::*;
use crate::error::PluginError;
use crate::manifest::{Manifest, SOFTGFN_VERSION, compatible};

/// The resolved entry points of a plugin (the library is leaked, so they stay valid).
#[derive(Clone, Copy)]
struct Api {
    free_string: FreeStringFn,
    create: CreateFn,
    destroy: DestroyFn,
    spec: SpecFn,
    params: ParamsFn,
    initial_state: InitialStateFn,
    forward_masks: MasksFn,
    backward_masks: MasksFn,
    step: StepFn,
    backward_step: StepFn,
    log_reward: LogRewardFn,
    encode: EncodeFn,
    num_states: NumStatesFn,
    state_index: StateIndexFn,
    states_from_index: StatesFromIndexFn,
    /// The entry points of version 2 (`None` for a version-1 plugin).
    v2: Option<ApiV2>,
}

/// The entry points ABI version 2 added.
#[derive(Clone, Copy)]
struct ApiV2 {
    capabilities: CapabilitiesFn,
    readable: ReadableFn,
    canonical_key: CanonicalKeyFn,
}

/// A loaded plugin library.
pub struct Plugin {
    path: PathBuf,
    manifest: Manifest,
    abi_version: u32,
    api: Api,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("path", &self.path)
            .field("manifest", &self.manifest)
            .finish_non_exhaustive()
    }
}

fn shown(path: &Path) -> String {
    path.display().to_string()
}

/// Takes a plugin-owned string: copies it and frees it with the plugin's deallocator.
fn take_string(free: FreeStringFn, s: *mut c_char) -> Option<String> {
    if s.is_null() {
        return None;
    }
    // SAFETY: a non-null string returned by the plugin is NUL-terminated and stays valid until
    // freed, which happens right after the copy, once.
    let text = unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned();
    // SAFETY: `s` was returned by this plugin and is freed once.
    unsafe { free(s) };
    Some(text)
}

/// Opens a library and checks it without registering anything (see [`load`]).
pub fn open(path: &Path) -> Result<Plugin, PluginError> {
    let canonical = std::fs::canonicalize(path).map_err(|e| PluginError::Open {
        path: shown(path),
        message: e.to_string(),
    })?;
    let p = shown(&canonical);
    // SAFETY: loading a library runs its initializers; a plugin is code the user chose to run,
    // as trusted as the softgfn binary itself. The library is never unloaded (leaked below), so
    // every symbol taken from it stays valid for the life of the process.
    let lib = unsafe { libloading::Library::new(&canonical) }.map_err(|e| PluginError::Open {
        path: p.clone(),
        message: e.to_string(),
    })?;
    let lib: &'static libloading::Library = Box::leak(Box::new(lib));

    /// Resolves a symbol as a function pointer of type `T`.
    ///
    /// # Safety
    /// `T` must be the function type the ABI gives the symbol.
    unsafe fn sym<T: Copy>(lib: &'static libloading::Library, name: &str) -> Option<T> {
        // SAFETY: the caller names the symbol's ABI type; the library is never unloaded.
        unsafe { lib.get::<T>(name.as_bytes()).ok().map(|s| *s) }
    }

    // SAFETY: `softgfn_plugin_abi_version` has type `AbiVersionFn` in every ABI version.
    let version: AbiVersionFn = unsafe { sym(lib, SYM_ABI_VERSION) }
        .ok_or_else(|| PluginError::NotAPlugin { path: p.clone() })?;
    // SAFETY: the ABI's first entry point: no arguments, returns a number.
    let found = unsafe { version() };
    if !(OLDEST_ABI_VERSION..=ABI_VERSION).contains(&found) {
        return Err(PluginError::AbiMismatch {
            path: p.clone(),
            found,
            expected: ABI_VERSION,
            oldest: OLDEST_ABI_VERSION,
            host_version: SOFTGFN_VERSION.into(),
        });
    }
    let missing = |symbol: &str| PluginError::MissingSymbol {
        path: p.clone(),
        symbol: symbol.into(),
        abi: found,
        host_version: SOFTGFN_VERSION.into(),
    };
    macro_rules! resolve {
        ($name:expr) => {
            // SAFETY: the plugin reported a version this host speaks, whose symbol types are the
            // aliases of `abi` the variables and fields are declared with.
            unsafe { sym(lib, $name) }.ok_or_else(|| missing($name))?
        };
    }

    // The manifest next (and the deallocator of the strings it returns).
    let manifest_fn: ManifestFn = resolve!(SYM_MANIFEST);
    let free_string: FreeStringFn = resolve!(SYM_FREE_STRING);
    let mut json: *mut c_char = ptr::null_mut();
    let mut err: *mut c_char = ptr::null_mut();
    // SAFETY: both out-pointers are valid for one write; returned strings are taken below.
    let status = unsafe { manifest_fn(&mut json, &mut err) };
    let message = take_string(free_string, err).unwrap_or_default();
    let text = take_string(free_string, json);
    let entry = SYM_MANIFEST.to_string();
    let text = match status {
        STATUS_OK => text.ok_or_else(|| PluginError::ManifestMalformed {
            path: p.clone(),
            reason: "softgfn_plugin_manifest returned no text".into(),
        })?,
        STATUS_PANIC => {
            return Err(PluginError::Panicked {
                path: p.clone(),
                entry,
                message,
            });
        }
        _ => {
            return Err(PluginError::Returned {
                path: p.clone(),
                entry,
                message,
            });
        }
    };
    let manifest = Manifest::parse(&text).map_err(|reason| PluginError::ManifestMalformed {
        path: p.clone(),
        reason,
    })?;
    if !compatible(&manifest.softgfn_version, SOFTGFN_VERSION) {
        return Err(PluginError::IncompatibleVersion {
            path: p.clone(),
            plugin: manifest.name,
            built_against: manifest.softgfn_version,
            host_version: SOFTGFN_VERSION.into(),
        });
    }
    let api = Api {
        free_string,
        create: resolve!(SYM_CREATE),
        destroy: resolve!(SYM_DESTROY),
        spec: resolve!(SYM_SPEC),
        params: resolve!(SYM_PARAMS),
        initial_state: resolve!(SYM_INITIAL_STATE),
        forward_masks: resolve!(SYM_FORWARD_MASKS),
        backward_masks: resolve!(SYM_BACKWARD_MASKS),
        step: resolve!(SYM_STEP),
        backward_step: resolve!(SYM_BACKWARD_STEP),
        log_reward: resolve!(SYM_LOG_REWARD),
        encode: resolve!(SYM_ENCODE),
        num_states: resolve!(SYM_NUM_STATES),
        state_index: resolve!(SYM_STATE_INDEX),
        states_from_index: resolve!(SYM_STATES_FROM_INDEX),
        v2: if found >= 2 {
            Some(ApiV2 {
                capabilities: resolve!(SYM_CAPABILITIES),
                readable: resolve!(SYM_READABLE),
                canonical_key: resolve!(SYM_CANONICAL_KEY),
            })
        } else {
            None
        },
    };
    Ok(Plugin {
        path: canonical,
        manifest,
        abi_version: found,
        api,
    })
}

/// The plugins loaded by [`load`], in load order.
static LOADED: Mutex<Vec<Arc<Plugin>>> = Mutex::new(Vec::new());

/// Loads a plugin and registers its environments in `softgfn_core`'s registry (as
/// `<plugin>/<env>` and `<env>`). Loading the same file again returns the loaded plugin; another
/// file with a plugin of the same name is an error.
pub fn load(path: &Path) -> Result<Arc<Plugin>, PluginError> {
    let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    if let Ok(c) = std::fs::canonicalize(path)
        && let Some(p) = loaded.iter().find(|p| p.path == c)
    {
        return Ok(Arc::clone(p));
    }
    let plugin = Arc::new(open(path)?);
    if let Some(other) = loaded.iter().find(|p| p.name() == plugin.name()) {
        return Err(PluginError::AlreadyLoaded {
            plugin: plugin.name().into(),
            first: shown(&other.path),
            second: shown(&plugin.path),
        });
    }
    let regs = plugin
        .manifest
        .environments
        .iter()
        .map(|e| {
            let p = Arc::clone(&plugin);
            let env = e.name.clone();
            RuntimeEnvRegistration {
                plugin: plugin.name().into(),
                name: e.name.clone(),
                summary: e.summary.clone(),
                source: plugin.source(),
                default_params: e.default_params.clone(),
                build: Arc::new(move |params: &serde_json::Value| {
                    Ok(Box::new(p.create(&env, params)?) as Box<dyn Environment>)
                }),
            }
        })
        .collect();
    register_runtime_envs(regs)?;
    loaded.push(Arc::clone(&plugin));
    Ok(plugin)
}

/// The plugins loaded so far, in load order.
pub fn loaded() -> Vec<Arc<Plugin>> {
    LOADED.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

impl Plugin {
    /// The plugin's name (the qualifier of its environments).
    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// The canonical path of the library.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The validated manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The ABI version the plugin was built against (`OLDEST_ABI_VERSION..=ABI_VERSION`).
    pub fn abi_version(&self) -> u32 {
        self.abi_version
    }

    /// How messages name it: `plugin NAME VERSION (PATH)`.
    pub fn source(&self) -> String {
        format!(
            "plugin {} {} ({})",
            self.manifest.name,
            self.manifest.version,
            self.path.display()
        )
    }

    /// Turns a status and message into a `CoreError` for environment `env` (qualified).
    fn failure(&self, env: &str, entry: &str, status: i32, message: String) -> CoreError {
        let (name, version) = (&self.manifest.name, &self.manifest.version);
        let message = match status {
            STATUS_PANIC => format!(
                "plugin {name} {version} panicked in {entry}: {message}; this is a bug in the plugin, loaded from {} (softgfn caught the panic)",
                self.path.display()
            ),
            STATUS_ERROR => {
                format!("plugin {name} {version} returned an error from {entry}: {message}")
            }
            STATUS_INVALID_ARGUMENT => {
                format!("plugin {name} {version} rejected the call to {entry}: {message}")
            }
            other => format!(
                "plugin {name} {version} returned the unknown status {other} from {entry}: {message}"
            ),
        };
        CoreError::Environment {
            env: env.into(),
            message,
        }
    }

    /// Creates an instance of environment `env` (bare name) from JSON parameters.
    pub fn create(
        self: &Arc<Self>,
        env: &str,
        params: &serde_json::Value,
    ) -> softgfn_core::Result<PluginEnv> {
        let qualified = format!("{}/{env}", self.manifest.name);
        let bad = |message: String| CoreError::Environment {
            env: qualified.clone(),
            message,
        };
        let c_env = CString::new(env).map_err(|_| bad("the name contains NUL".into()))?;
        let c_params =
            CString::new(params.to_string()).map_err(|_| bad("parameters contain NUL".into()))?;
        let mut handle: *mut SgEnv = ptr::null_mut();
        let mut err: *mut c_char = ptr::null_mut();
        // SAFETY: NUL-terminated strings that outlive the call; valid out-pointers.
        let status =
            unsafe { (self.api.create)(c_env.as_ptr(), c_params.as_ptr(), &mut handle, &mut err) };
        let message = take_string(self.api.free_string, err).unwrap_or_default();
        if status != STATUS_OK {
            return Err(self.failure(&qualified, "create", status, message));
        }
        if handle.is_null() {
            return Err(bad("create returned no instance".into()));
        }
        // From here on the handle is owned by `env` and destroyed when it drops.
        let mut env = PluginEnv {
            plugin: Arc::clone(self),
            handle,
            qualified,
            spec: EnvSpec {
                name: String::new(),
                state_width: 0,
                num_actions: 0,
                num_backward_actions: 0,
                feature_dim: 0,
                max_trajectory_length: 0,
                exit_action: None,
            },
            params: serde_json::Value::Null,
            initial: Vec::new(),
            num_states: None,
            capabilities: 0,
        };
        env.fill()?;
        Ok(env)
    }
}

/// An environment instance inside a loaded plugin, used through the ABI.
///
/// The ABI carries the batched calls, enumeration, and (from version 2) the readable form and
/// the state equivalence: a plugin environment keeps the defaults of the optional
/// `Environment::sequence_layout`, `Environment::graph_layout` and `Environment::monitor`
/// (`None`), so runs on it use neither the transformer nor the graph network and record no
/// environment-specific metrics such as `modes_found`. A version-1 plugin has no readable form
/// (the integer row is shown) and no state equivalence.
pub struct PluginEnv {
    plugin: Arc<Plugin>,
    handle: *mut SgEnv,
    qualified: String,
    spec: EnvSpec,
    params: serde_json::Value,
    initial: Vec<StateValue>,
    num_states: Option<u64>,
    /// The capability bits of the instance (`CAP_*`; 0 for a version-1 plugin).
    capabilities: u64,
}

// SAFETY: the instance behind `handle` is a `Box<dyn Environment>` inside the plugin, and
// `Environment: Send + Sync`; every entry point takes it by shared reference except `destroy`,
// which runs once, in `Drop`, when no other reference exists.
unsafe impl Send for PluginEnv {}
// SAFETY: as above; concurrent calls on one instance are calls on `&dyn Environment`.
unsafe impl Sync for PluginEnv {}

impl Drop for PluginEnv {
    fn drop(&mut self) {
        // SAFETY: the handle came from `create`, is destroyed once, and no call can follow.
        unsafe { (self.plugin.api.destroy)(self.handle) };
    }
}

impl std::fmt::Debug for PluginEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginEnv")
            .field("name", &self.qualified)
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl PluginEnv {
    /// The qualified name `<plugin>/<env>`.
    pub fn qualified_name(&self) -> &str {
        &self.qualified
    }

    /// The plugin it lives in.
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    #[inline]
    fn check(&self, entry: &str, status: i32, err: *mut c_char) -> softgfn_core::Result<()> {
        if status == STATUS_OK {
            // A plugin sets no message on success; free one if it did.
            take_string(self.plugin.api.free_string, err);
            return Ok(());
        }
        let message = take_string(self.plugin.api.free_string, err).unwrap_or_default();
        Err(self.plugin.failure(&self.qualified, entry, status, message))
    }

    /// Reads the spec, parameters, initial state and enumerability once.
    fn fill(&mut self) -> softgfn_core::Result<()> {
        let api = self.plugin.api;
        let mut c = SgEnvSpec::default();
        let mut name: *mut c_char = ptr::null_mut();
        let mut err: *mut c_char = ptr::null_mut();
        // SAFETY: a live handle and valid out-pointers.
        let status = unsafe { (api.spec)(self.handle, &mut c, &mut name, &mut err) };
        let name = take_string(api.free_string, name).unwrap_or_default();
        self.check("spec", status, err)?;
        let size = |v: u64, what: &str| {
            usize::try_from(v).map_err(|_| CoreError::Environment {
                env: self.qualified.clone(),
                message: format!("the plugin's spec has {what} = {v}, too large"),
            })
        };
        self.spec = EnvSpec {
            name,
            state_width: size(c.state_width, "state_width")?,
            num_actions: size(c.num_actions, "num_actions")?,
            num_backward_actions: size(c.num_backward_actions, "num_backward_actions")?,
            feature_dim: size(c.feature_dim, "feature_dim")?,
            max_trajectory_length: size(c.max_trajectory_length, "max_trajectory_length")?,
            exit_action: c.has_exit_action.then_some(c.exit_action),
        };

        let mut json: *mut c_char = ptr::null_mut();
        let mut err: *mut c_char = ptr::null_mut();
        // SAFETY: a live handle and valid out-pointers.
        let status = unsafe { (api.params)(self.handle, &mut json, &mut err) };
        let json = take_string(api.free_string, json).unwrap_or_default();
        self.check("params", status, err)?;
        self.params = serde_json::from_str(&json).map_err(|e| CoreError::Environment {
            env: self.qualified.clone(),
            message: format!("the plugin's params are not JSON: {e}"),
        })?;

        let mut s0 = vec![0; self.spec.state_width];
        let mut err: *mut c_char = ptr::null_mut();
        // SAFETY: a live handle; `s0` is valid for `len` writes.
        let status =
            unsafe { (api.initial_state)(self.handle, s0.as_mut_ptr(), s0.len(), &mut err) };
        self.check("initial_state", status, err)?;
        self.initial = s0;

        let mut enumerable = false;
        let mut n = 0u64;
        let mut err: *mut c_char = ptr::null_mut();
        // SAFETY: a live handle and valid out-pointers.
        let status = unsafe { (api.num_states)(self.handle, &mut enumerable, &mut n, &mut err) };
        self.check("num_states", status, err)?;
        self.num_states = enumerable.then_some(n);

        if let Some(v2) = api.v2 {
            let mut caps = 0u64;
            let mut err: *mut c_char = ptr::null_mut();
            // SAFETY: a live handle and valid out-pointers.
            let status = unsafe { (v2.capabilities)(self.handle, &mut caps, &mut err) };
            self.check("capabilities", status, err)?;
            self.capabilities = caps;
        }
        Ok(())
    }

    /// The version-2 entry points, when the instance has capability `cap`.
    fn v2_with(&self, cap: u64) -> Option<ApiV2> {
        self.plugin
            .api
            .v2
            .filter(|_| self.capabilities & cap == cap)
    }

    fn unsupported(&self, capability: &str) -> CoreError {
        CoreError::Unsupported {
            env: self.qualified.clone(),
            capability: capability.into(),
        }
    }
}

impl Environment for PluginEnv {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn params(&self) -> serde_json::Value {
        self.params.clone()
    }

    fn initial_state(&self, out: &mut [StateValue]) {
        let n = out.len().min(self.initial.len());
        out[..n].copy_from_slice(&self.initial[..n]);
    }

    fn forward_masks(&self, states: &[StateValue], out: &mut [bool]) -> softgfn_core::Result<()> {
        let mut err: *mut c_char = ptr::null_mut();
        // SAFETY: a live handle; each pointer is valid for its slice's length and the output
        // does not alias the input (distinct borrows).
        let status = unsafe {
            (self.plugin.api.forward_masks)(
                self.handle,
                states.as_ptr(),
                states.len(),
                out.as_mut_ptr(),
                out.len(),
                &mut err,
            )
        };
        self.check("forward_masks", status, err)
    }

    fn backward_masks(&self, states: &[StateValue], out: &mut [bool]) -> softgfn_core::Result<()> {
        let mut err: *mut c_char = ptr::null_mut();
        // SAFETY: as in `forward_masks`.
        let status = unsafe {
            (self.plugin.api.backward_masks)(
                self.handle,
                states.as_ptr(),
                states.len(),
                out.as_mut_ptr(),
                out.len(),
                &mut err,
            )
        };
        self.check("backward_masks", status, err)
    }

    fn step(
        &self,
        states: &[StateValue],
        actions: &[u32],
        next: &mut [StateValue],
        backward_actions: &mut [u32],
    ) -> softgfn_core::Result<()> {
        let mut err: *mut c_char = ptr::null_mut();
        // SAFETY: as in `forward_masks`, for all four buffers.
        let status = unsafe {
            (self.plugin.api.step)(
                self.handle,
                states.as_ptr(),
                states.len(),
                actions.as_ptr(),
                actions.len(),
                next.as_mut_ptr(),
                next.len(),
                backward_actions.as_mut_ptr(),
                backward_actions.len(),
                &mut err,
            )
        };
        self.check("step", status, err)
    }

    fn backward_step(
        &self,
        states: &[StateValue],
        backward_actions: &[u32],
        prev: &mut [StateValue],
        forward_actions: &mut [u32],
    ) -> softgfn_core::Result<()> {
        let mut err: *mut c_char = ptr::null_mut();
        // SAFETY: as in `forward_masks`, for all four buffers.
        let status = unsafe {
            (self.plugin.api.backward_step)(
                self.handle,
                states.as_ptr(),
                states.len(),
                backward_actions.as_ptr(),
                backward_actions.len(),
                prev.as_mut_ptr(),
                prev.len(),
                forward_actions.as_mut_ptr(),
                forward_actions.len(),
                &mut err,
            )
        };
        self.check("backward_step", status, err)
    }

    fn log_reward(&self, states: &[StateValue], out: &mut [f64]) -> softgfn_core::Result<()> {
        let mut err: *mut c_char = ptr::null_mut();
        // SAFETY: as in `forward_masks`.
        let status = unsafe {
            (self.plugin.api.log_reward)(
                self.handle,
                states.as_ptr(),
                states.len(),
                out.as_mut_ptr(),
                out.len(),
                &mut err,
            )
        };
        self.check("log_reward", status, err)
    }

    fn encode(&self, states: &[StateValue], out: &mut [f32]) -> softgfn_core::Result<()> {
        let mut err: *mut c_char = ptr::null_mut();
        // SAFETY: as in `forward_masks`.
        let status = unsafe {
            (self.plugin.api.encode)(
                self.handle,
                states.as_ptr(),
                states.len(),
                out.as_mut_ptr(),
                out.len(),
                &mut err,
            )
        };
        self.check("encode", status, err)
    }

    fn as_enumerable(&self) -> Option<&dyn Enumerable> {
        self.num_states.map(|_| self as &dyn Enumerable)
    }

    fn as_readable(&self) -> Option<&dyn Readable> {
        self.v2_with(CAP_READABLE).map(|_| self as &dyn Readable)
    }

    fn as_state_equivalence(&self) -> Option<&dyn StateEquivalence> {
        self.v2_with(CAP_STATE_EQUIVALENCE)
            .map(|_| self as &dyn StateEquivalence)
    }
}

impl Readable for PluginEnv {
    fn readable(&self, state: &[StateValue]) -> softgfn_core::Result<String> {
        let v2 = self
            .v2_with(CAP_READABLE)
            .ok_or_else(|| self.unsupported("readable form"))?;
        let mut text: *mut c_char = ptr::null_mut();
        let mut err: *mut c_char = ptr::null_mut();
        // SAFETY: a live handle; `state` is valid for its length; valid out-pointers.
        let status = unsafe {
            (v2.readable)(
                self.handle,
                state.as_ptr(),
                state.len(),
                &mut text,
                &mut err,
            )
        };
        let text = take_string(self.plugin.api.free_string, text);
        self.check("readable", status, err)?;
        text.ok_or_else(|| CoreError::Environment {
            env: self.qualified.clone(),
            message: "the plugin's readable returned no text".into(),
        })
    }
}

impl StateEquivalence for PluginEnv {
    fn canonical_key(&self, state: &[StateValue]) -> softgfn_core::Result<Vec<StateValue>> {
        let v2 = self
            .v2_with(CAP_STATE_EQUIVALENCE)
            .ok_or_else(|| self.unsupported("state equivalence"))?;
        // Most keys fit in a few state widths; a longer one is fetched again at its length.
        let mut key = vec![0; 4 * self.spec.state_width.max(1)];
        for _ in 0..2 {
            let mut len = 0usize;
            let mut err: *mut c_char = ptr::null_mut();
            // SAFETY: a live handle; `state` and `key` are valid for their lengths and do not
            // overlap; valid out-pointers.
            let status = unsafe {
                (v2.canonical_key)(
                    self.handle,
                    state.as_ptr(),
                    state.len(),
                    key.as_mut_ptr(),
                    key.len(),
                    &mut len,
                    &mut err,
                )
            };
            self.check("canonical_key", status, err)?;
            if len <= key.len() {
                key.truncate(len);
                return Ok(key);
            }
            key = vec![0; len];
        }
        Err(CoreError::Environment {
            env: self.qualified.clone(),
            message: "the plugin's canonical_key changed length between two calls".into(),
        })
    }
}

impl Enumerable for PluginEnv {
    fn num_states(&self) -> u64 {
        self.num_states.unwrap_or(0)
    }

    fn state_index(&self, states: &[StateValue], out: &mut [u64]) -> softgfn_core::Result<()> {
        let mut err: *mut c_char = ptr::null_mut();
        // SAFETY: as in `forward_masks`.
        let status = unsafe {
            (self.plugin.api.state_index)(
                self.handle,
                states.as_ptr(),
                states.len(),
                out.as_mut_ptr(),
                out.len(),
                &mut err,
            )
        };
        self.check("state_index", status, err)
    }

    fn states_from_index(
        &self,
        indices: &[u64],
        out: &mut [StateValue],
    ) -> softgfn_core::Result<()> {
        let mut err: *mut c_char = ptr::null_mut();
        // SAFETY: as in `forward_masks`.
        let status = unsafe {
            (self.plugin.api.states_from_index)(
                self.handle,
                indices.as_ptr(),
                indices.len(),
                out.as_mut_ptr(),
                out.len(),
                &mut err,
            )
        };
        self.check("states_from_index", status, err)
    }
}

/// The file name of a library called `name` on this platform (`libNAME.so`, `libNAME.dylib`,
/// `NAME.dll`), with `-` turned into `_` as cargo does.
pub fn library_file_name(name: &str) -> String {
    format!(
        "{}{}{}",
        std::env::consts::DLL_PREFIX,
        name.replace('-', "_"),
        std::env::consts::DLL_SUFFIX
    )
}

/// Whether a path looks like a shared library (`.so`, `.dylib` or `.dll`).
pub fn is_library(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("so" | "dylib" | "dll")
    )
}

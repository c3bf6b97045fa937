//! The registry of environments: built-ins registered through `inventory`, and run-time
//! registrations added by a plugin loader (`softgfn-plugin`'s host).
//!
//! An environment crate registers itself with one line of `softgfn_plugin::environments!`,
//! which expands (besides the plugin's C ABI under the crate's `dynamic` feature) to
//!
//! ```ignore
//! softgfn_core::inventory::submit! {
//!     softgfn_core::EnvRegistration {
//!         name: "hypergrid",
//!         summary: "D-dimensional grid of side H with an exit at every state",
//!         source: env!("CARGO_PKG_NAME"),
//!         default_params: || serde_json::to_value(HypergridConfig::default()).unwrap_or_default(),
//!         build: |params| Ok(Box::new(Hypergrid::from_params(params)?)),
//!     }
//! }
//! ```
//!
//! and a binary that links the crate (e.g. with `use softgfn_hypergrid as _;`) sees it.
//! Parameters travel as JSON so that the same path serves run-time plugins.
//!
//! A plugin loader adds [`RuntimeEnvRegistration`]s with [`register_runtime_envs`]. Each plugin
//! environment is known by its qualified name `<plugin>/<env>` and, while no other source
//! provides the same name, by its bare name `<env>`. [`find_env`], [`build_env`] and
//! [`registered_envs`] see built-ins and run-time registrations alike.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::env::Environment;
use crate::error::{CoreError, Result};

/// Builds an environment from (possibly partial) JSON parameters.
pub type EnvBuilder = fn(&serde_json::Value) -> Result<Box<dyn Environment>>;

/// Builds an environment of a run-time registration (it may capture a loaded plugin).
pub type DynEnvBuilder =
    Arc<dyn Fn(&serde_json::Value) -> Result<Box<dyn Environment>> + Send + Sync>;

/// One built-in environment, registered at link time through `inventory`.
pub struct EnvRegistration {
    /// Stable name used in configs (`env.name`).
    pub name: &'static str,
    /// One-line summary.
    pub summary: &'static str,
    /// Where it comes from (crate name), for collision messages.
    pub source: &'static str,
    /// The complete default parameters.
    pub default_params: fn() -> serde_json::Value,
    /// Constructor.
    pub build: EnvBuilder,
}

inventory::collect!(EnvRegistration);

/// One environment registered at run time (by a plugin loader).
#[derive(Clone)]
pub struct RuntimeEnvRegistration {
    /// The plugin's name: the qualifier of `<plugin>/<env>`.
    pub plugin: String,
    /// The environment's bare name.
    pub name: String,
    /// One-line summary.
    pub summary: String,
    /// Where it comes from, for messages (e.g. `plugin softgfn-sets 0.1.0 (/path/libsoftgfn_sets.so)`).
    pub source: String,
    /// The complete default parameters.
    pub default_params: serde_json::Value,
    /// Constructor.
    pub build: DynEnvBuilder,
}

impl RuntimeEnvRegistration {
    /// The qualified name `<plugin>/<env>`.
    pub fn qualified_name(&self) -> String {
        format!("{}/{}", self.plugin, self.name)
    }
}

impl std::fmt::Debug for RuntimeEnvRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeEnvRegistration")
            .field("plugin", &self.plugin)
            .field("name", &self.name)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
enum Origin {
    BuiltIn(&'static EnvRegistration),
    Runtime(Arc<RuntimeEnvRegistration>),
}

/// A registered environment as listings and lookups return it: built in or run time.
#[derive(Clone)]
pub struct EnvInfo {
    /// The name that always selects it: the bare name of a built-in, `<plugin>/<env>` of a
    /// run-time registration.
    pub name: String,
    /// The bare name (equal to `name` for built-ins).
    pub bare_name: String,
    /// The plugin that provides it (`None` for built-ins).
    pub plugin: Option<String>,
    /// One-line summary.
    pub summary: String,
    /// Where it comes from, for messages.
    pub source: String,
    origin: Origin,
}

impl EnvInfo {
    fn built_in(r: &'static EnvRegistration) -> Self {
        Self {
            name: r.name.into(),
            bare_name: r.name.into(),
            plugin: None,
            summary: r.summary.into(),
            source: r.source.into(),
            origin: Origin::BuiltIn(r),
        }
    }

    fn runtime(r: &Arc<RuntimeEnvRegistration>) -> Self {
        Self {
            name: r.qualified_name(),
            bare_name: r.name.clone(),
            plugin: Some(r.plugin.clone()),
            summary: r.summary.clone(),
            source: r.source.clone(),
            origin: Origin::Runtime(Arc::clone(r)),
        }
    }

    /// The complete default parameters.
    pub fn default_params(&self) -> serde_json::Value {
        match &self.origin {
            Origin::BuiltIn(r) => (r.default_params)(),
            Origin::Runtime(r) => r.default_params.clone(),
        }
    }

    /// Builds the environment from (possibly partial) JSON parameters.
    pub fn build(&self, params: &serde_json::Value) -> Result<Box<dyn Environment>> {
        match &self.origin {
            Origin::BuiltIn(r) => (r.build)(params),
            Origin::Runtime(r) => (r.build)(params),
        }
    }

    /// Whether it was registered at run time (by a plugin).
    pub fn is_runtime(&self) -> bool {
        matches!(self.origin, Origin::Runtime(_))
    }

    /// How messages name its source: `softgfn-hypergrid (built in)` or the plugin's source.
    fn described_source(&self) -> String {
        match &self.origin {
            Origin::BuiltIn(r) => format!("{} (built in)", r.source),
            Origin::Runtime(r) => r.source.clone(),
        }
    }
}

impl std::fmt::Debug for EnvInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvInfo")
            .field("name", &self.name)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// The process-wide list of run-time registrations.
static RUNTIME: Mutex<Vec<Arc<RuntimeEnvRegistration>>> = Mutex::new(Vec::new());

fn runtime() -> MutexGuard<'static, Vec<Arc<RuntimeEnvRegistration>>> {
    // A panic while holding the lock cannot leave the list half-updated (pushes only).
    RUNTIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Adds run-time registrations, all or none: a qualified name `<plugin>/<env>` that is already
/// registered (the same plugin loaded twice) is an error naming both sources.
pub fn register_runtime_envs(regs: Vec<RuntimeEnvRegistration>) -> Result<()> {
    let mut list = runtime();
    for (i, r) in regs.iter().enumerate() {
        let q = r.qualified_name();
        let clash = list
            .iter()
            .map(|x| x.as_ref())
            .chain(&regs[..i])
            .find(|x| x.qualified_name() == q);
        if let Some(x) = clash {
            return Err(CoreError::DuplicateEnvironment {
                name: q,
                first: x.source.clone(),
                second: format!("{}; a plugin can be loaded only once", r.source),
            });
        }
    }
    list.extend(regs.into_iter().map(Arc::new));
    Ok(())
}

/// The run-time registrations, in registration order.
pub fn runtime_envs() -> Vec<Arc<RuntimeEnvRegistration>> {
    runtime().clone()
}

/// Built-ins sorted by name; a name registered twice at link time is an error naming both.
fn built_ins() -> Result<Vec<&'static EnvRegistration>> {
    let mut all: Vec<&'static EnvRegistration> =
        inventory::iter::<EnvRegistration>.into_iter().collect();
    all.sort_by(|a, b| a.name.cmp(b.name).then(a.source.cmp(b.source)));
    for pair in all.windows(2) {
        if pair[0].name == pair[1].name {
            return Err(CoreError::DuplicateEnvironment {
                name: pair[0].name.into(),
                first: pair[0].source.into(),
                second: pair[1].source.into(),
            });
        }
    }
    Ok(all)
}

/// All registered environments sorted by name (built-ins by their name, run-time registrations
/// by `<plugin>/<env>`); two built-ins with one name are an error naming both.
pub fn registered_envs() -> Result<Vec<EnvInfo>> {
    let mut all: Vec<EnvInfo> = built_ins()?.into_iter().map(EnvInfo::built_in).collect();
    all.extend(runtime().iter().map(EnvInfo::runtime));
    all.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(all)
}

/// The environment selected by `name`: a qualified `<plugin>/<env>` selects that plugin's
/// environment; a bare name selects the one source that provides it. A bare name that several
/// sources provide is the "duplicate environment name" error naming them all and the qualified
/// names to use; an unknown name is an error listing the available ones.
pub fn find_env(name: &str) -> Result<EnvInfo> {
    let all = registered_envs()?;
    let found: Vec<&EnvInfo> = if name.contains('/') {
        all.iter().filter(|r| r.name == name).collect()
    } else {
        all.iter().filter(|r| r.bare_name == name).collect()
    };
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(CoreError::UnknownEnvironment {
            name: name.into(),
            available: if all.is_empty() {
                "(none linked)".into()
            } else {
                all.iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        }),
        [first, rest @ ..] => {
            let qualified: Vec<String> = found
                .iter()
                .filter(|r| r.is_runtime())
                .map(|r| format!("`{}`", r.name))
                .collect();
            let hint = if found.iter().any(|r| !r.is_runtime()) {
                format!(
                    "ask for {} to use the plugin's, or do not load the plugin to use the built-in",
                    qualified.join(" or ")
                )
            } else {
                format!("ask for the qualified name {}", qualified.join(" or "))
            };
            Err(CoreError::DuplicateEnvironment {
                name: name.into(),
                first: first.described_source(),
                second: format!(
                    "{}; {hint}",
                    rest.iter()
                        .map(|r| r.described_source())
                        .collect::<Vec<_>>()
                        .join(" and by ")
                ),
            })
        }
    }
}

/// Builds a registered environment by name (see [`find_env`] for how names resolve).
pub fn build_env(name: &str, params: &serde_json::Value) -> Result<Box<dyn Environment>> {
    find_env(name)?.build(params)
}

/// Parses environment parameters into a config struct, turning serde's message (which names the
/// unknown or mistyped key and lists the valid ones) into [`CoreError::BadParameters`].
pub fn parse_params<T: serde::de::DeserializeOwned>(
    env: &str,
    params: &serde_json::Value,
) -> Result<T> {
    let v = if params.is_null() {
        serde_json::Value::Object(Default::default())
    } else {
        params.clone()
    };
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        CoreError::BadParameters {
            env: env.into(),
            message: if path == "." {
                inner.to_string()
            } else {
                format!("`{path}`: {inner}")
            },
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::SetEnv;

    fn reg(plugin: &str, name: &str) -> RuntimeEnvRegistration {
        RuntimeEnvRegistration {
            plugin: plugin.into(),
            name: name.into(),
            summary: format!("{name} of {plugin}"),
            source: format!("plugin {plugin} 0.1.0 (/p/lib{plugin}.so)"),
            default_params: serde_json::json!({"k": 2}),
            build: Arc::new(|p| {
                let k = p["k"].as_u64().unwrap_or(2) as usize;
                Ok(Box::new(SetEnv::new(vec![0.5; k])))
            }),
        }
    }

    #[test]
    fn runtime_registrations_resolve_by_qualified_and_bare_names() {
        register_runtime_envs(vec![reg("reg-test-a", "reg-test-one")]).unwrap();
        let q = find_env("reg-test-a/reg-test-one").unwrap();
        assert_eq!(q.name, "reg-test-a/reg-test-one");
        assert_eq!(q.bare_name, "reg-test-one");
        assert_eq!(q.plugin.as_deref(), Some("reg-test-a"));
        assert_eq!(q.default_params(), serde_json::json!({"k": 2}));
        let b = find_env("reg-test-one").unwrap();
        assert_eq!(b.name, q.name);
        let env = build_env("reg-test-one", &serde_json::json!({"k": 3})).unwrap();
        assert_eq!(env.spec().state_width, 3);
        assert!(
            registered_envs()
                .unwrap()
                .iter()
                .any(|r| r.name == "reg-test-a/reg-test-one")
        );
        // The same plugin again is refused, atomically.
        let err = register_runtime_envs(vec![
            reg("reg-test-a", "reg-test-other"),
            reg("reg-test-a", "reg-test-one"),
        ])
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment name `reg-test-a/reg-test-one` is registered twice: by plugin reg-test-a 0.1.0 (/p/libreg-test-a.so) and by plugin reg-test-a 0.1.0 (/p/libreg-test-a.so); a plugin can be loaded only once"
        );
        assert!(find_env("reg-test-a/reg-test-other").is_err());
    }

    #[test]
    fn a_bare_name_from_two_plugins_is_the_duplicate_error() {
        register_runtime_envs(vec![reg("reg-test-b", "reg-test-two")]).unwrap();
        register_runtime_envs(vec![reg("reg-test-c", "reg-test-two")]).unwrap();
        let Err(err) = find_env("reg-test-two") else {
            panic!("an ambiguous bare name must not resolve");
        };
        assert_eq!(
            err.to_string(),
            "environment name `reg-test-two` is registered twice: by plugin reg-test-b 0.1.0 (/p/libreg-test-b.so) and by plugin reg-test-c 0.1.0 (/p/libreg-test-c.so); ask for the qualified name `reg-test-b/reg-test-two` or `reg-test-c/reg-test-two`"
        );
        assert!(find_env("reg-test-b/reg-test-two").is_ok());
        assert!(find_env("reg-test-c/reg-test-two").is_ok());
        let Err(err) = find_env("reg-test-d/reg-test-two") else {
            panic!("an unknown qualified name must not resolve");
        };
        assert!(
            err.to_string()
                .starts_with("unknown environment `reg-test-d/reg-test-two`; available: "),
            "{err}"
        );
    }
}

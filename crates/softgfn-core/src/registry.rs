//! The static registry of built-in environments (through `inventory`).
//!
//! An environment crate registers itself with
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

use crate::env::Environment;
use crate::error::{CoreError, Result};

/// Builds an environment from (possibly partial) JSON parameters.
pub type EnvBuilder = fn(&serde_json::Value) -> Result<Box<dyn Environment>>;

/// One registered environment.
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

/// All registered environments sorted by name; a name registered twice is an error naming both.
pub fn registered_envs() -> Result<Vec<&'static EnvRegistration>> {
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

/// The registration of `name`, or an error listing the available names.
pub fn find_env(name: &str) -> Result<&'static EnvRegistration> {
    let all = registered_envs()?;
    all.iter()
        .find(|r| r.name == name)
        .copied()
        .ok_or_else(|| CoreError::UnknownEnvironment {
            name: name.into(),
            available: if all.is_empty() {
                "(none linked)".into()
            } else {
                all.iter().map(|r| r.name).collect::<Vec<_>>().join(", ")
            },
        })
}

/// Builds a registered environment by name.
pub fn build_env(name: &str, params: &serde_json::Value) -> Result<Box<dyn Environment>> {
    (find_env(name)?.build)(params)
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
    serde_json::from_value(v).map_err(|e| CoreError::BadParameters {
        env: env.into(),
        message: e.to_string(),
    })
}

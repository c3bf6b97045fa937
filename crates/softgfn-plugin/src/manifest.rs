//! The manifest a plugin describes itself with (JSON text behind `softgfn_plugin_manifest`).
//!
//! ```json
//! {
//!   "name": "softgfn-sets",
//!   "version": "0.1.0",
//!   "softgfn_version": "0.1.0",
//!   "environments": [
//!     { "name": "sets", "summary": "one line", "default_params": { "n": 6, "max_size": 4 } }
//!   ]
//! }
//! ```
//!
//! `softgfn_version` is the version of `softgfn-plugin` the plugin was built against; a host
//! accepts it when major and minor equal its own. Unknown keys are ignored (later minor versions
//! may add some).

use serde::{Deserialize, Serialize};

/// The version of softgfn (of this crate) that plugins built now are built against.
pub const SOFTGFN_VERSION: &str = env!("CARGO_PKG_VERSION");

/// A plugin's self-description.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Plugin name: the qualifier of its environments (`<plugin>/<env>`).
    pub name: String,
    /// Plugin version (its own crate version).
    pub version: String,
    /// The softgfn-plugin version it was built against.
    pub softgfn_version: String,
    /// Its environments.
    pub environments: Vec<ManifestEnv>,
}

/// One environment of a [`Manifest`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManifestEnv {
    /// Bare environment name.
    pub name: String,
    /// One-line summary.
    pub summary: String,
    /// The complete default parameters (a JSON object).
    pub default_params: serde_json::Value,
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `(major, minor, patch)` of a `MAJOR.MINOR.PATCH[-pre][+build]` version.
pub fn parse_version(v: &str) -> Option<(u64, u64, u64)> {
    let core = v.split(['-', '+']).next()?;
    let mut parts = core.split('.');
    let mut num = || parts.next()?.parse::<u64>().ok();
    let out = (num()?, num()?, num()?);
    parts.next().is_none().then_some(out)
}

/// Whether a plugin built against `plugin_softgfn` may be loaded by a host of `host`: the same
/// major and minor version.
pub fn compatible(plugin_softgfn: &str, host: &str) -> bool {
    match (parse_version(plugin_softgfn), parse_version(host)) {
        (Some((a, b, _)), Some((c, d, _))) => (a, b) == (c, d),
        _ => false,
    }
}

impl Manifest {
    /// Parses and validates manifest text; the error says what is wrong (the reason of a
    /// "manifest malformed" error). The softgfn version is checked separately
    /// ([`compatible`]), since a mismatch there is a different error.
    pub fn parse(text: &str) -> Result<Self, String> {
        let m: Manifest = serde_json::from_str(text)
            .map_err(|e| format!("it is not valid manifest JSON: {e}"))?;
        m.validate()?;
        Ok(m)
    }

    /// Checks names, versions and default parameters.
    pub fn validate(&self) -> Result<(), String> {
        if !valid_name(&self.name) {
            return Err(format!(
                "plugin name {:?} must be 1 to 64 characters from A-Z a-z 0-9 - _ .",
                self.name
            ));
        }
        if self.version.trim().is_empty() {
            return Err("plugin version is empty".into());
        }
        if parse_version(&self.softgfn_version).is_none() {
            return Err(format!(
                "softgfn_version {:?} is not a version MAJOR.MINOR.PATCH",
                self.softgfn_version
            ));
        }
        if self.environments.is_empty() {
            return Err("it lists no environments".into());
        }
        for (i, e) in self.environments.iter().enumerate() {
            if !valid_name(&e.name) {
                return Err(format!(
                    "environment name {:?} must be 1 to 64 characters from A-Z a-z 0-9 - _ .",
                    e.name
                ));
            }
            if self.environments[..i].iter().any(|x| x.name == e.name) {
                return Err(format!("environment `{}` is listed twice", e.name));
            }
            if e.summary.contains('\n') {
                return Err(format!(
                    "the summary of environment `{}` is not one line",
                    e.name
                ));
            }
            if !e.default_params.is_object() {
                return Err(format!(
                    "default_params of environment `{}` must be a JSON object, found {}",
                    e.name, e.default_params
                ));
            }
        }
        Ok(())
    }

    /// The manifest as JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> Manifest {
        Manifest {
            name: "softgfn-sets".into(),
            version: "0.1.0".into(),
            softgfn_version: "0.1.0".into(),
            environments: vec![ManifestEnv {
                name: "sets".into(),
                summary: "sets".into(),
                default_params: serde_json::json!({"n": 6}),
            }],
        }
    }

    #[test]
    fn round_trip_and_validation() {
        let m = good();
        assert_eq!(Manifest::parse(&m.to_json()).unwrap(), m);
        let mut bad = good();
        bad.name = "a/b".into();
        assert!(bad.validate().unwrap_err().contains("plugin name"));
        let mut bad = good();
        bad.environments.push(bad.environments[0].clone());
        assert_eq!(
            bad.validate().unwrap_err(),
            "environment `sets` is listed twice"
        );
        let mut bad = good();
        bad.environments[0].default_params = serde_json::json!(3);
        assert!(bad.validate().unwrap_err().contains("JSON object"));
        assert!(
            Manifest::parse("{\"name\": \"x\"}")
                .unwrap_err()
                .starts_with("it is not valid manifest JSON: missing field `version`")
        );
        // Unknown keys are ignored.
        let mut v = serde_json::to_value(good()).unwrap();
        v["later"] = serde_json::json!(true);
        assert!(Manifest::parse(&v.to_string()).is_ok());
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("0.1.0"), Some((0, 1, 0)));
        assert_eq!(parse_version("1.22.3-rc.1+g"), Some((1, 22, 3)));
        assert_eq!(parse_version("1.2"), None);
        assert_eq!(parse_version("1.2.3.4"), None);
        assert!(compatible("0.1.7", "0.1.0"));
        assert!(!compatible("0.2.0", "0.1.0"));
        assert!(!compatible("1.1.0", "0.1.0"));
        assert!(!compatible("x", "0.1.0"));
    }
}

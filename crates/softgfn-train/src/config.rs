//! Run configuration: one TOML document with `[env]`, `[algo]`, `[eval]` and `[log]` sections.
//!
//! ```toml
//! seed = 1
//! iterations = 62500
//! device = "cpu"
//!
//! [env]
//! name = "hypergrid"
//! dim = 4
//! side = 20
//! reward = "standard"
//!
//! [algo]
//! name = "tb"
//! learning_rate = 0.001
//! # ... every field of the algorithm's config
//!
//! [eval]
//! interval = 100
//!
//! [log]
//! tensorboard = false
//! ```
//!
//! A config is **resolved** before use: the environment's and the algorithm's defaults are filled
//! in under the keys the user gave ([`resolve`]), so the resolved document lists every value in
//! force and reproduces the run exactly when passed back. `--set key=value` overrides address
//! dotted keys (`env.dim=2`, `algo.learning_rate=0.01`, `eval.interval=500`).

use serde::{Deserialize, Serialize};
use softgfn_core::{Environment, find_env};

use crate::algorithm::{AlgorithmConfig, find_algorithm};
use crate::error::{Result, TrainError};

/// Default environment when a config names none.
pub const DEFAULT_ENV: &str = "hypergrid";
/// Default algorithm when a config names none.
pub const DEFAULT_ALGO: &str = "tb";

/// The `[env]` section: the registered name plus the environment's own parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnvSection {
    /// Registered environment name.
    pub name: String,
    /// Environment parameters (validated by the environment itself).
    #[serde(flatten)]
    pub params: toml::Table,
}

impl EnvSection {
    /// The parameters as JSON (the form environments and plugins parse).
    pub fn params_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or(serde_json::Value::Null)
    }

    /// Builds the environment.
    pub fn build(&self) -> Result<Box<dyn Environment>> {
        Ok(softgfn_core::build_env(&self.name, &self.params_json())?)
    }
}

/// The `[eval]` section.
///
/// | Name | Default | Meaning | Range |
/// |---|---|---|---|
/// | `interval` | 100 | iterations between evaluations (one also at 0 and at the end) | >= 1 |
/// | `empirical_window` | 200000 | terminal states kept for `emp_l1_mean` / `emp_kl` | >= 1 |
/// | `exact` | true | compute the exact metrics when the environment is enumerable | |
/// | `max_exact_states` | 5000000 | skip exact metrics above this many states | >= 1 |
/// | `log_z_samples` | 128 | trajectories of the sampled `log Z` estimators (`log_z_elbo`, `log_z_iw`, `log_z_eubo`); 0 turns them off | 0 to 1048576 |
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// Iterations between evaluations.
    pub interval: u64,
    /// Size of the empirical window (the paper's last 200k training samples).
    pub empirical_window: usize,
    /// Whether to compute exact metrics on enumerable environments.
    pub exact: bool,
    /// Largest state space for which exact metrics are computed.
    pub max_exact_states: u64,
    /// Trajectories of the sampled `log Z` estimators per evaluation (0: none).
    pub log_z_samples: usize,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            interval: 100,
            empirical_window: 200_000,
            exact: true,
            max_exact_states: softgfn_core::exact::DEFAULT_MAX_STATES,
            log_z_samples: 128,
        }
    }
}

/// The `[log]` section: what a run writes besides its metrics files.
///
/// | Name | Default | Meaning | Range |
/// |---|---|---|---|
/// | `tensorboard` | false | also write every record as TensorBoard scalars into `RUN/tb/` ([`crate::tensorboard`]) | |
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Write TensorBoard event files.
    pub tensorboard: bool,
}

/// A complete, resolved run configuration.
///
/// | Name | Default | Meaning | Range |
/// |---|---|---|---|
/// | `seed` | 1 | seed of every random stream of the run | 0 to 2^63 - 1 (TOML integers) |
/// | `iterations` | 62500 | training iterations (the paper: 1e6 trajectories / 16) | >= 1 |
/// | `max_seconds` | unset | also stop once training (evaluation excluded) took this long | > 0 |
/// | `device` | `cpu` | where tensors live (`cpu`; `cuda[:N]` with the `cuda` feature) | |
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Seed of every random stream.
    pub seed: u64,
    /// Number of training iterations.
    pub iterations: u64,
    /// Optional wall-time budget of training in seconds (evaluation excluded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_seconds: Option<f64>,
    /// Device name.
    pub device: String,
    /// Environment section.
    pub env: EnvSection,
    /// Algorithm section (tagged by `name`).
    pub algo: Box<dyn AlgorithmConfig>,
    /// Evaluation section.
    pub eval: EvalConfig,
    /// Logging section (absent in configs written before it existed: the defaults).
    #[serde(default)]
    pub log: LogConfig,
}

impl RunConfig {
    /// Serializes to TOML (the resolved form written into run directories).
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| TrainError::Config {
            section: None,
            message: format!("cannot serialize the config: {e}"),
        })
    }

    /// Validates everything that can be checked without building.
    pub fn validate(&self) -> Result<()> {
        if self.iterations == 0 {
            return Err(TrainError::invalid("iterations", 0, "an integer >= 1"));
        }
        if let Some(t) = self.max_seconds.filter(|t| !(t.is_finite() && *t > 0.0)) {
            return Err(TrainError::invalid("max_seconds", t, "a finite number > 0"));
        }
        if self.eval.interval == 0 {
            return Err(TrainError::invalid("eval.interval", 0, "an integer >= 1"));
        }
        if self.eval.empirical_window == 0 {
            return Err(TrainError::invalid(
                "eval.empirical_window",
                0,
                "an integer >= 1",
            ));
        }
        if self.eval.log_z_samples > crate::algorithm::check::MAX_BATCH {
            return Err(TrainError::invalid(
                "eval.log_z_samples",
                self.eval.log_z_samples,
                &format!("an integer in 0..={}", crate::algorithm::check::MAX_BATCH),
            ));
        }
        softgfn_nn::Device::parse(&self.device)?;
        self.algo.validate()
    }
}

/// Parses TOML text into a table, naming the file in errors.
pub fn parse_toml(text: &str, origin: &str) -> Result<toml::Table> {
    text.parse::<toml::Table>().map_err(|e| TrainError::Config {
        section: None,
        message: format!("{origin}: {e}"),
    })
}

/// Applies one `--set key=value` override to a table. The value is parsed as a TOML value
/// (`2`, `0.5`, `true`, `"text"`, `[256, 256]`); anything that is not valid TOML is taken as a
/// string (so `env.reward=hard` works).
pub fn apply_override(table: &mut toml::Table, assignment: &str) -> Result<()> {
    let (key, raw) = assignment
        .split_once('=')
        .ok_or_else(|| TrainError::Config {
            section: None,
            message: format!("override `{assignment}` is not of the form key=value"),
        })?;
    let key = key.trim();
    if key.is_empty() || key.split('.').any(str::is_empty) {
        return Err(TrainError::Config {
            section: None,
            message: format!("override `{assignment}` has an empty key part"),
        });
    }
    let raw = raw.trim();
    let value = format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let parts: Vec<&str> = key.split('.').collect();
    let mut cur = table;
    for p in &parts[..parts.len() - 1] {
        let entry = cur
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(Default::default()));
        cur = match entry {
            toml::Value::Table(t) => t,
            other => {
                return Err(TrainError::Config {
                    section: None,
                    message: format!(
                        "override `{key}`: `{p}` is a {}, not a section",
                        other.type_str()
                    ),
                });
            }
        };
    }
    cur.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

fn section(table: &mut toml::Table, name: &str) -> Result<toml::Table> {
    match table.remove(name) {
        None => Ok(Default::default()),
        Some(toml::Value::Table(t)) => Ok(t),
        Some(other) => Err(TrainError::Config {
            section: None,
            message: format!(
                "`{name}` must be a section (table), found a {}",
                other.type_str()
            ),
        }),
    }
}

fn take_name(t: &mut toml::Table, sec: &str, default: &str) -> Result<String> {
    match t.remove("name") {
        None => Ok(default.to_string()),
        Some(toml::Value::String(s)) => Ok(s),
        Some(other) => Err(TrainError::Config {
            section: Some(sec.into()),
            message: format!("`name` must be a string, found {other}"),
        }),
    }
}

/// Checks the user's values against the types of the defaults they replace (so a wrong type is
/// reported with its key), converting integers to floats where a float is expected.
fn coerce_types(defaults: &toml::Table, user: &mut toml::Table, section: &str) -> Result<()> {
    for (k, v) in user.iter_mut() {
        let Some(d) = defaults.get(k) else { continue };
        match (d, &*v) {
            (toml::Value::Float(_), toml::Value::Integer(i)) => *v = toml::Value::Float(*i as f64),
            (toml::Value::Integer(di), toml::Value::Integer(i)) if *di >= 0 && *i < 0 => {
                return Err(TrainError::invalid(
                    &format!("{section}.{k}"),
                    i,
                    "a non-negative integer",
                ));
            }
            (toml::Value::Table(dt), toml::Value::Table(_)) => {
                if let toml::Value::Table(ut) = v {
                    coerce_types(dt, ut, &format!("{section}.{k}"))?;
                }
            }
            // `network` is a string or, for the graph network's sizes, a table.
            (toml::Value::String(_), toml::Value::Table(_)) if k == "network" => {}
            (d, v) if d.type_str() != v.type_str() => {
                return Err(TrainError::Config {
                    section: Some(section.into()),
                    message: format!(
                        "`{section}.{k}` must be {} (default {d}), found {} ({v})",
                        with_article(d.type_str()),
                        with_article(v.type_str())
                    ),
                });
            }
            _ => {}
        }
    }
    Ok(())
}

/// Environment parameters travel as JSON, which has no NaN or infinity: reject them here, by key.
fn reject_non_finite(t: &toml::Table, section: &str) -> Result<()> {
    for (k, v) in t {
        match v {
            toml::Value::Float(f) if !f.is_finite() => {
                return Err(TrainError::invalid(
                    &format!("{section}.{k}"),
                    f,
                    "a finite number",
                ));
            }
            toml::Value::Table(inner) => reject_non_finite(inner, &format!("{section}.{k}"))?,
            toml::Value::Array(items) => {
                if let Some(f) = items
                    .iter()
                    .filter_map(|x| x.as_float())
                    .find(|f| !f.is_finite())
                {
                    return Err(TrainError::invalid(
                        &format!("{section}.{k}"),
                        f,
                        "finite numbers",
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn with_article(noun: &str) -> String {
    let an = noun.starts_with(['a', 'e', 'i', 'o', 'u']);
    format!("{} {noun}", if an { "an" } else { "a" })
}

fn overlay(base: &mut toml::Table, user: toml::Table) {
    for (k, v) in user {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(u)) => overlay(b, u),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Resolves a user table (file plus overrides) into a complete [`RunConfig`], filling in the
/// environment's and algorithm's defaults, building the environment once to validate it.
/// Returns the config and the environment.
pub fn resolve(mut table: toml::Table) -> Result<(RunConfig, Box<dyn Environment>)> {
    let mut env_t = section(&mut table, "env")?;
    let mut algo_t = section(&mut table, "algo")?;
    let eval_t = section(&mut table, "eval")?;
    let mut log_t = section(&mut table, "log")?;

    // Environment: registered defaults, then the user's keys; the environment validates them.
    let env_name = take_name(&mut env_t, "env", DEFAULT_ENV)?;
    let reg = find_env(&env_name)?;
    let mut params: toml::Table =
        serde_json::from_value::<toml::Table>(reg.default_params()).unwrap_or_default();
    coerce_types(&params, &mut env_t, "env")?;
    reject_non_finite(&env_t, "env")?;
    overlay(&mut params, env_t);
    let mut env_section = EnvSection {
        name: env_name,
        params,
    };
    let env = env_section.build()?;
    // Record the environment's own view of its parameters (complete and normalised).
    if let Ok(t) = serde_json::from_value::<toml::Table>(env.params()) {
        env_section.params = t;
    }

    // Algorithm: registered defaults, then the user's keys; typetag + deny_unknown_fields.
    let algo_name = take_name(&mut algo_t, "algo", DEFAULT_ALGO)?;
    let reg = find_algorithm(&algo_name)?;
    let default_algo = (reg.default_config)();
    let mut algo_full = toml::Table::try_from(&default_algo).map_err(|e| TrainError::Config {
        section: Some("algo".into()),
        message: format!("cannot serialize the defaults of `{algo_name}`: {e}"),
    })?;
    coerce_types(&algo_full, &mut algo_t, "algo")?;
    overlay(&mut algo_full, algo_t);
    algo_full.insert("name".into(), toml::Value::String(algo_name.clone()));
    let algo: Box<dyn AlgorithmConfig> =
        toml::Value::Table(algo_full)
            .try_into()
            .map_err(|e: toml::de::Error| TrainError::Config {
                section: Some("algo".into()),
                message: format!("{} (algorithm `{algo_name}`)", e.message().trim()),
            })?;

    let mut eval_t = eval_t;
    if let Ok(defaults) = toml::Table::try_from(EvalConfig::default()) {
        coerce_types(&defaults, &mut eval_t, "eval")?;
    }
    let eval: EvalConfig =
        toml::Value::Table(eval_t)
            .try_into()
            .map_err(|e: toml::de::Error| TrainError::Config {
                section: Some("eval".into()),
                message: e.message().trim().to_string(),
            })?;

    if let Ok(defaults) = toml::Table::try_from(LogConfig::default()) {
        coerce_types(&defaults, &mut log_t, "log")?;
    }
    let log: LogConfig = toml::Value::Table(log_t)
        .try_into()
        .map_err(|e: toml::de::Error| TrainError::Config {
            section: Some("log".into()),
            message: e.message().trim().to_string(),
        })?;

    let get_u64 = |t: &mut toml::Table, key: &str, default: u64| -> Result<u64> {
        match t.remove(key) {
            None => Ok(default),
            Some(toml::Value::Integer(i)) if i >= 0 => Ok(i as u64),
            Some(other) => Err(TrainError::invalid(key, other, "a non-negative integer")),
        }
    };
    let seed = get_u64(&mut table, "seed", 1)?;
    let iterations = get_u64(&mut table, "iterations", 62_500)?;
    let max_seconds = match table.remove("max_seconds") {
        None => None,
        Some(toml::Value::Float(f)) => Some(f),
        Some(toml::Value::Integer(i)) => Some(i as f64),
        Some(other) => {
            return Err(TrainError::invalid(
                "max_seconds",
                other,
                "a number of seconds",
            ));
        }
    };
    let device = match table.remove("device") {
        None => "cpu".to_string(),
        Some(toml::Value::String(s)) => s,
        Some(other) => {
            return Err(TrainError::invalid(
                "device",
                other,
                "a string such as \"cpu\"",
            ));
        }
    };
    if let Some(k) = table.keys().next() {
        return Err(TrainError::Config {
            section: None,
            message: format!(
                "unknown top-level key `{k}`; expected one of `seed`, `iterations`, `max_seconds`, `device`, `env`, `algo`, `eval`, `log`"
            ),
        });
    }
    let config = RunConfig {
        seed,
        iterations,
        max_seconds,
        device,
        env: env_section,
        algo,
        eval,
        log,
    };
    config.validate()?;
    Ok((config, env))
}

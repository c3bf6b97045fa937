//! `qm9str`: strings of 5 out of 11 blocks, rewarded by a tabulated proxy HOMO-LUMO gap.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};
use softgfn_core::{CoreError, Result, StateValue, parse_params};

use crate::dag::{StringDag, string_environment};
use crate::data::{self, Block, files};
use crate::monitor::ModesMonitor;
use crate::reward::{PROXY_FLOOR, ProxyReward};

const NAME: &str = "qm9str";

/// Fraction of the strings that are modes (top 0.5% by reward: 805 of 161,051).
pub const QM9_MODE_FRACTION: f64 = 0.005;

/// `qm9str` parameters (the `[env]` table of a run config).
///
/// | Name | Default | Meaning | Range |
/// |---|---|---|---|
/// | `reward_exponent` | 5 | exponent `beta` of `R(x) = scale * (max(v, 1e-3) / max_x' max(v', 1e-3))^beta` | finite, > 0 |
/// | `reward_scale` | 100 | reward of the best string | finite, > 0 |
/// | `data_dir` | unset (embedded data) | directory holding `blocks.json` and `proxy_values.f64le.gz` or `proxy_values.csv` | an existing directory |
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Qm9StrConfig {
    /// Reward exponent (5 in the original experiments).
    pub reward_exponent: f64,
    /// Reward of the best string (100 in the original experiments).
    pub reward_scale: f64,
    /// Read the data from this directory instead of the copy embedded in the crate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
}

impl Default for Qm9StrConfig {
    fn default() -> Self {
        Self {
            reward_exponent: 5.0,
            reward_scale: 100.0,
            data_dir: None,
        }
    }
}

pub(crate) fn invalid(
    env: &str,
    field: &str,
    value: impl std::fmt::Display,
    expected: &str,
) -> CoreError {
    CoreError::InvalidParameter {
        env: env.into(),
        field: field.into(),
        value: value.to_string(),
        expected: expected.into(),
    }
}

/// Checks the reward exponent and scale of either environment.
pub(crate) fn validate_reward(env: &str, exponent: f64, scale: f64) -> Result<()> {
    if !(exponent.is_finite() && exponent > 0.0 && exponent <= 1e3) {
        return Err(invalid(
            env,
            "reward_exponent",
            exponent,
            "a finite number in (0, 1000]",
        ));
    }
    if !(scale.is_finite() && scale > 0.0) {
        return Err(invalid(env, "reward_scale", scale, "a finite number > 0"));
    }
    Ok(())
}

impl Qm9StrConfig {
    /// Checks every field; the error names the field, the value and the allowed range.
    pub fn validate(&self) -> Result<()> {
        validate_reward(NAME, self.reward_exponent, self.reward_scale)
    }
}

/// The data of qm9str: blocks and the proxy value of every complete string, in index order.
struct Qm9Data {
    blocks: Vec<Block>,
    values: Vec<f64>,
    length: usize,
}

impl std::fmt::Debug for Qm9Data {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qm9Data")
            .field("blocks", &self.blocks.len())
            .field("values", &self.values.len())
            .field("length", &self.length)
            .finish()
    }
}

fn build_data(blocks: Vec<Block>, values: Vec<f64>, source: &str) -> Result<Qm9Data> {
    let k = blocks.len();
    let length = data::exact_log(k, values.len()).ok_or_else(|| {
        data::data_error(
            NAME,
            source,
            format!(
                "{} proxy values, not K^L for the K = {k} blocks of blocks.json",
                values.len()
            ),
        )
    })?;
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(data::data_error(
            NAME,
            source,
            format!("proxy value {i} is {}; expected finite numbers", values[i]),
        ));
    }
    Ok(Qm9Data {
        blocks,
        values,
        length,
    })
}

fn embedded() -> Result<Arc<Qm9Data>> {
    static DATA: OnceLock<std::result::Result<Arc<Qm9Data>, String>> = OnceLock::new();
    DATA.get_or_init(|| {
        let source = "embedded qm9str/proxy_values.f64le.gz";
        let blocks = data::parse_blocks(NAME, "embedded qm9str/blocks.json", data::QM9_BLOCKS)
            .map_err(|e| e.to_string())?;
        let values =
            data::parse_qm9_gz(NAME, source, data::QM9_VALUES_GZ).map_err(|e| e.to_string())?;
        build_data(blocks, values, source)
            .map(Arc::new)
            .map_err(|e| e.to_string())
    })
    .clone()
    .map_err(|message| CoreError::Environment {
        env: NAME.into(),
        message,
    })
}

fn from_dir(dir: &std::path::Path) -> Result<Arc<Qm9Data>> {
    let blocks = data::load_blocks(NAME, dir)?;
    let vp = data::find_one(
        NAME,
        dir,
        &[files::QM9_VALUES_GZ, files::QM9_VALUES_CSV],
        "the proxy table (gzip of little-endian f64 values, or the sequence,proxy_value CSV)",
    )?;
    let source = vp.display().to_string();
    let bytes = data::read_file(NAME, &vp, "the proxy table")?;
    let values = if vp.extension().is_some_and(|e| e == "csv") {
        let text = String::from_utf8(bytes)
            .map_err(|e| data::data_error(NAME, &source, format!("is not UTF-8 text ({e})")))?;
        data::parse_qm9_csv(NAME, &source, &text, blocks.len())?
    } else {
        data::parse_qm9_gz(NAME, &source, &bytes)?
    };
    Ok(Arc::new(build_data(blocks, values, &source)?))
}

/// The qm9str environment: the prepend/append DAG over 11 blocks with `L = 5` (see the crate
/// docs) and the tabulated reward.
#[derive(Clone)]
pub struct Qm9Str {
    config: Qm9StrConfig,
    dag: StringDag,
    data: Arc<Qm9Data>,
    reward: ProxyReward,
    /// Log-reward of every complete string, in index order.
    log_rewards: Arc<Vec<f64>>,
    log_z: f64,
    log_mode_threshold: f64,
    num_modes: u64,
}

impl Qm9Str {
    /// Builds a validated instance (loading and checking the data).
    pub fn new(config: Qm9StrConfig) -> Result<Self> {
        config.validate()?;
        let data = match &config.data_dir {
            Some(dir) => from_dir(dir)?,
            None => embedded()?,
        };
        let dag = StringDag::new(NAME, data.blocks.len(), data.length)?;
        let normaliser = data
            .values
            .iter()
            .fold(PROXY_FLOOR, |m, &v| m.max(v.max(PROXY_FLOOR)));
        let reward = ProxyReward {
            exponent: config.reward_exponent,
            scale: config.reward_scale,
            floor: PROXY_FLOOR,
            normaliser,
        };
        let log_rewards: Vec<f64> = data.values.iter().map(|&v| reward.log_reward(v)).collect();
        let log_z = softgfn_core::math::logsumexp(&log_rewards);
        // Modes: the top `int(n * 0.005)` strings by reward, as in the original code.
        let num_top = (log_rewards.len() as f64 * QM9_MODE_FRACTION) as usize;
        let log_mode_threshold = if num_top == 0 {
            f64::INFINITY
        } else {
            let mut sorted = log_rewards.clone();
            let (_, kth, _) = sorted.select_nth_unstable_by(num_top - 1, |a, b| b.total_cmp(a));
            *kth
        };
        let num_modes = log_rewards
            .iter()
            .filter(|&&lr| lr >= log_mode_threshold)
            .count() as u64;
        Ok(Self {
            config,
            dag,
            data,
            reward,
            log_rewards: Arc::new(log_rewards),
            log_z,
            log_mode_threshold,
            num_modes,
        })
    }

    /// Builds from JSON parameters (missing keys take their defaults).
    pub fn from_params(params: &serde_json::Value) -> Result<Self> {
        Self::new(parse_params(NAME, params)?)
    }

    /// The configuration.
    pub fn config(&self) -> &Qm9StrConfig {
        &self.config
    }

    /// The building blocks.
    pub fn blocks(&self) -> &[Block] {
        &self.data.blocks
    }

    /// The string length `L` of the objects.
    pub fn length(&self) -> usize {
        self.dag.max_len()
    }

    /// The reward transform (its normaliser is the table's maximum of `max(v, 1e-3)`).
    pub fn proxy_reward(&self) -> &ProxyReward {
        &self.reward
    }

    /// The proxy value of every complete string, in index order (base `K`, first block most
    /// significant: `00000, 00001, ...`).
    pub fn proxy_values(&self) -> &[f64] {
        &self.data.values
    }

    /// The log-reward of every complete string, in the order of [`Qm9Str::proxy_values`].
    pub fn log_rewards(&self) -> &[f64] {
        &self.log_rewards
    }

    /// `log Z = log sum_x R(x)` over all complete strings (always known for qm9str).
    pub fn log_z(&self) -> Option<f64> {
        Some(self.log_z)
    }

    /// The proxy value of a complete string.
    pub fn proxy_value(&self, state: &[StateValue]) -> Result<f64> {
        let blocks = self.dag.complete_state(state, "proxy_value")?;
        Ok(self.data.values[self.dag.terminal_index(blocks)])
    }

    /// The reward threshold of the modes: the reward of the `int(0.005 n)`-th best string
    /// (the 805th of 161,051).
    pub fn mode_threshold(&self) -> f64 {
        self.log_mode_threshold.exp()
    }

    /// Number of modes (805 for the shipped data, which has no tie at the threshold).
    pub fn num_modes(&self) -> u64 {
        self.num_modes
    }

    /// Whether a complete string is a mode: its reward is at or above [`Qm9Str::mode_threshold`]
    /// (decided exactly, in log space on the same table). Incomplete strings are errors.
    pub fn is_mode(&self, state: &[StateValue]) -> Result<bool> {
        Ok(self.mode_index(state, "is_mode")?.is_some())
    }

    /// The printed form of a state (`"0a3"`; `""` for the empty string).
    pub fn string_of(&self, state: &[StateValue]) -> Result<String> {
        self.dag.string_of(state)
    }

    /// The state of a printed string (e.g. `"0a3"`).
    pub fn parse_state(&self, text: &str) -> Result<Vec<StateValue>> {
        self.dag.parse(text)
    }

    /// The terminal index of a complete string if it is a mode (`what` names the caller in
    /// errors).
    fn mode_index(&self, state: &[StateValue], what: &str) -> Result<Option<u64>> {
        let i = self
            .dag
            .terminal_index(self.dag.complete_state(state, what)?);
        Ok((self.log_rewards[i] >= self.log_mode_threshold).then_some(i as u64))
    }

    fn log_reward_of_blocks(&self, blocks: &[StateValue]) -> f64 {
        self.log_rewards[self.dag.terminal_index(blocks)]
    }

    /// The `modes_found` monitor of this instance (what `Environment::monitor` hands out): the
    /// number of distinct sampled strings for which [`Qm9Str::is_mode`] holds.
    pub fn modes_monitor(&self) -> ModesMonitor {
        let env = self.clone();
        ModesMonitor::new(
            NAME,
            self.dag.spec().state_width,
            self.num_modes,
            &[
                self.log_mode_threshold.to_bits().to_le_bytes(),
                (self.log_rewards.len() as u64).to_le_bytes(),
            ]
            .concat(),
            Box::new(move |row| env.mode_index(row, "modes_found")),
        )
    }
}

impl std::fmt::Debug for Qm9Str {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qm9Str")
            .field("config", &self.config)
            .field("data", &self.data)
            .field("reward", &self.reward)
            .field("log_z", &self.log_z)
            .field("num_modes", &self.num_modes)
            .finish_non_exhaustive()
    }
}

string_environment!(Qm9Str);

#[cfg(test)]
mod tests {
    use super::*;
    use softgfn_core::{Environment, EnvironmentExt};

    #[test]
    fn readable_form_is_the_string() {
        let env = Qm9Str::new(Qm9StrConfig::default()).unwrap();
        let s0 = env.initial_row();
        let s = env.step_one(&s0, 3).unwrap().0;
        let text = env.as_readable().unwrap().readable(&s).unwrap();
        assert_eq!(text, env.string_of(&s).unwrap());
        assert_eq!(text.len(), 1);
        assert_eq!(env.parse_state(&text).unwrap(), s);
    }

    #[test]
    fn defaults_and_rewards() {
        let env = Qm9Str::new(Qm9StrConfig::default()).unwrap();
        let spec = env.spec();
        assert_eq!(
            (
                spec.state_width,
                spec.num_actions,
                spec.num_backward_actions,
                spec.feature_dim
            ),
            (6, 23, 2, 60)
        );
        assert_eq!(spec.exit_action, Some(22));
        assert_eq!(env.length(), 5);
        assert_eq!(env.proxy_values().len(), 161_051);
        let s = env.parse_state("00000").unwrap();
        assert_eq!(env.proxy_value(&s).unwrap(), 8.592599868774414);
        let want = (8.592599868774414f64.powi(5) * 100.0 / 17.374774932861328f64.powi(5)).ln();
        assert!((env.log_reward_of(&s).unwrap() - want).abs() < 1e-12);
        let last = env.parse_state("aaaaa").unwrap();
        assert_eq!(env.proxy_value(&last).unwrap(), 8.529067993164062);
        // The best string has reward 100 exactly (up to rounding) and is a mode.
        let best = env
            .log_rewards()
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        assert!((best - 100f64.ln()).abs() < 1e-12);
        assert!(
            env.log_reward_of(&env.parse_state("0000").unwrap())
                .is_err()
        );
        assert!(env.is_mode(&env.parse_state("").unwrap()).is_err());
        assert_eq!(env.string_of(&last).unwrap(), "aaaaa");
        assert_eq!(env.blocks()[4].name, "C=O");
    }

    #[test]
    fn the_config_is_validated() {
        for (params, field) in [
            (
                serde_json::json!({"reward_exponent": 0.0}),
                "reward_exponent",
            ),
            (
                serde_json::json!({"reward_exponent": -1.0}),
                "reward_exponent",
            ),
            (serde_json::json!({"reward_scale": 0.0}), "reward_scale"),
        ] {
            let e = Qm9Str::from_params(&params).unwrap_err().to_string();
            assert!(e.contains(field) && e.contains("expected"), "{e}");
        }
        let e = Qm9Str::from_params(&serde_json::json!({"exponent": 2}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `exponent`"), "{e}");
        let env = Qm9Str::from_params(&serde_json::json!({"reward_exponent": 2.5})).unwrap();
        assert_eq!(
            env.params(),
            serde_json::json!({"reward_exponent": 2.5, "reward_scale": 100.0})
        );
        // The mode set does not depend on the exponent.
        assert_eq!(env.num_modes(), 805);
    }
}

//! `sehstr`: strings of 6 out of 18 blocks, rewarded by a tree-ensemble proxy of the sEH binding
//! score.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};
use softgfn_core::{CoreError, Result, StateValue, parse_params};

use crate::dag::{StringDag, string_environment};
use crate::data::{self, Block, files};
use crate::monitor::ModesMonitor;
use crate::qm9::validate_reward;
use crate::reward::{PROXY_FLOOR, ProxyReward};
use crate::stats::{SEH_MODE_PERCENTILE, SehStats};
use crate::trees::TreeEnsemble;

const NAME: &str = "sehstr";

/// The maximum of the sEH proxy over all 18^6 strings (computed with the original model; the
/// reward normaliser).
pub const SEH_PROXY_MAX: f64 = 7.033253064721926;

/// Custom trees with at most this many strings get their statistics computed at construction
/// when no `stats.json` is found.
const COMPUTE_ON_LOAD_MAX: u64 = 1 << 20;

/// `sehstr` parameters (the `[env]` table of a run config).
///
/// | Name | Default | Meaning | Range |
/// |---|---|---|---|
/// | `reward_exponent` | 6 | exponent `beta` of `R(x) = scale * (max(v, 1e-3) / 7.033253064721926)^beta` | finite, > 0 |
/// | `reward_scale` | 10 | reward of the best string | finite, > 0 |
/// | `data_dir` | unset (embedded data) | directory holding `blocks.json`, `gbr_proxy.json.gz` or `gbr_proxy.json`, and optionally `stats.json` | an existing directory |
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SehStrConfig {
    /// Reward exponent (6 in the original experiments).
    pub reward_exponent: f64,
    /// Reward of the best string (10 in the original experiments).
    pub reward_scale: f64,
    /// Read the data from this directory instead of the copy embedded in the crate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
}

impl Default for SehStrConfig {
    fn default() -> Self {
        Self {
            reward_exponent: 6.0,
            reward_scale: 10.0,
            data_dir: None,
        }
    }
}

impl SehStrConfig {
    /// Checks every field; the error names the field, the value and the allowed range.
    pub fn validate(&self) -> Result<()> {
        validate_reward(NAME, self.reward_exponent, self.reward_scale)
    }
}

#[derive(Debug)]
struct SehData {
    blocks: Vec<Block>,
    trees: TreeEnsemble,
    /// Statistics found with the data (checked against the trees later).
    stats: Option<(SehStats, String)>,
}

fn parse_embedded_trees() -> Result<(Vec<Block>, TreeEnsemble)> {
    let blocks = data::parse_blocks(NAME, "embedded sehstr/blocks.json", data::SEH_BLOCKS)?;
    let source = "embedded sehstr/gbr_proxy.json.gz";
    let json = data::gunzip(NAME, source, data::SEH_TREES_GZ, "the tree ensemble")?;
    let trees = TreeEnsemble::from_json(NAME, source, &json, blocks.len())?;
    Ok((blocks, trees))
}

/// The tree ensemble shipped with the crate (100 trees over 6 positions of 18 blocks).
pub fn shipped_trees() -> Result<TreeEnsemble> {
    Ok(parse_embedded_trees()?.1)
}

/// The reward transform of the default configuration:
/// `R(x) = 10 * (max(v, 1e-3) / 7.033253064721926)^6`.
pub fn default_reward() -> ProxyReward {
    let c = SehStrConfig::default();
    ProxyReward {
        exponent: c.reward_exponent,
        scale: c.reward_scale,
        floor: PROXY_FLOOR,
        normaliser: SEH_PROXY_MAX,
    }
}

fn embedded() -> Result<Arc<SehData>> {
    static DATA: OnceLock<std::result::Result<Arc<SehData>, String>> = OnceLock::new();
    DATA.get_or_init(|| {
        let (blocks, trees) = parse_embedded_trees().map_err(|e| e.to_string())?;
        let stats_source = "embedded sehstr/stats.json";
        let stats =
            SehStats::from_json(stats_source, data::SEH_STATS).map_err(|e| e.to_string())?;
        Ok(Arc::new(SehData {
            blocks,
            trees,
            stats: Some((stats, stats_source.into())),
        }))
    })
    .clone()
    .map_err(|message| CoreError::Environment {
        env: NAME.into(),
        message,
    })
}

fn from_dir(dir: &Path) -> Result<Arc<SehData>> {
    let blocks = data::load_blocks(NAME, dir)?;
    let tp = data::find_one(
        NAME,
        dir,
        &[files::SEH_TREES_GZ, files::SEH_TREES],
        "the tree ensemble (gbr_proxy.json, optionally gzip-compressed)",
    )?;
    let source = tp.display().to_string();
    let mut bytes = data::read_file(NAME, &tp, "the tree ensemble")?;
    if tp.extension().is_some_and(|e| e == "gz") {
        bytes = data::gunzip(NAME, &source, &bytes, "a gzip-compressed gbr_proxy.json")?;
    }
    let trees = TreeEnsemble::from_json(NAME, &source, &bytes, blocks.len())?;
    let sp = dir.join(files::SEH_STATS);
    let stats = if sp.is_file() {
        let source = sp.display().to_string();
        let bytes = data::read_file(NAME, &sp, "the statistics of the trees")?;
        Some((SehStats::from_json(&source, &bytes)?, source))
    } else {
        None
    };
    Ok(Arc::new(SehData {
        blocks,
        trees,
        stats,
    }))
}

/// The sehstr environment: the prepend/append DAG over 18 blocks with `L = 6` (see the crate
/// docs) and the tree-ensemble reward.
#[derive(Clone, Debug)]
pub struct SehStr {
    config: SehStrConfig,
    dag: StringDag,
    data: Arc<SehData>,
    reward: ProxyReward,
    stats: Arc<SehStats>,
    mode_threshold: f64,
    mode_proxy_cut: f64,
}

impl SehStr {
    /// Builds a validated instance (loading and checking the data and the statistics).
    pub fn new(config: SehStrConfig) -> Result<Self> {
        config.validate()?;
        let data = match &config.data_dir {
            Some(dir) => from_dir(dir)?,
            None => embedded()?,
        };
        let dag = StringDag::new(NAME, data.blocks.len(), data.trees.length())?;
        let reward = ProxyReward {
            exponent: config.reward_exponent,
            scale: config.reward_scale,
            floor: PROXY_FLOOR,
            normaliser: SEH_PROXY_MAX,
        };
        let stats = Arc::new(Self::find_stats(&data, &config, &reward)?);
        let (mode_threshold, mode_proxy_cut) = stats.mode_cut_for(&reward);
        Ok(Self {
            config,
            dag,
            data,
            reward,
            stats,
            mode_threshold,
            mode_proxy_cut,
        })
    }

    /// Statistics of the loaded trees: from the data, the embedded copy, or computed when small.
    fn find_stats(data: &SehData, config: &SehStrConfig, reward: &ProxyReward) -> Result<SehStats> {
        let fp = data.trees.fingerprint();
        if let Some((stats, source)) = &data.stats {
            if stats.fingerprint != fp || stats.mode_percentile != SEH_MODE_PERCENTILE {
                return Err(data::data_error(
                    NAME,
                    source,
                    format!(
                        "holds statistics of other trees (fingerprint {}, percentile {}); expected \
                         those of the trees loaded (fingerprint {fp}, percentile {SEH_MODE_PERCENTILE}): \
                         delete it or recreate it with SehStats::load_or_compute_for",
                        stats.fingerprint, stats.mode_percentile
                    ),
                ));
            }
            return Ok(stats.clone());
        }
        if config.data_dir.is_some()
            && let Ok(emb) = embedded()
            && let Some((stats, _)) = &emb.stats
            && stats.fingerprint == fp
        {
            return Ok(stats.clone());
        }
        let n = data.trees.num_blocks() as f64;
        if n.powi(data.trees.length() as i32) <= COMPUTE_ON_LOAD_MAX as f64 {
            return SehStats::compute(&data.trees, reward, &mut |_, _| {});
        }
        let dir = config.data_dir.clone().unwrap_or_default();
        Err(data::data_error(
            NAME,
            &dir.join(files::SEH_STATS).display().to_string(),
            format!(
                "missing: these trees (fingerprint {fp}) are not the shipped ones and have too many \
                 strings to compute their statistics on load; create the file with \
                 softgfn_molstr::SehStats::load_or_compute_for"
            ),
        ))
    }

    /// Builds from JSON parameters (missing keys take their defaults).
    pub fn from_params(params: &serde_json::Value) -> Result<Self> {
        Self::new(parse_params(NAME, params)?)
    }

    /// The configuration.
    pub fn config(&self) -> &SehStrConfig {
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

    /// The tree-ensemble proxy.
    pub fn ensemble(&self) -> &TreeEnsemble {
        &self.data.trees
    }

    /// The reward transform (normaliser [`SEH_PROXY_MAX`]).
    pub fn proxy_reward(&self) -> &ProxyReward {
        &self.reward
    }

    /// The exact statistics of the trees (computed for [`SehStats::reward`], which may differ
    /// from this instance's reward transform; the mode set does not).
    pub fn stats(&self) -> &SehStats {
        &self.stats
    }

    /// `log Z` over all complete strings when the statistics were computed with this instance's
    /// exponent (any scale); `None` otherwise (compute it with [`SehStats::load_or_compute_for`]).
    pub fn log_z(&self) -> Option<f64> {
        self.stats.log_z_for(&self.reward)
    }

    /// The proxy prediction of a complete string.
    pub fn proxy_value(&self, state: &[StateValue]) -> Result<f64> {
        let blocks = self.dag.complete_state(state, "proxy_value")?;
        Ok(self.data.trees.value_of(self.data.trees.fixed_sum(blocks)))
    }

    /// The reward threshold of the modes: NumPy's 99.9th percentile of all `18^6` rewards.
    pub fn mode_threshold(&self) -> f64 {
        self.mode_threshold
    }

    /// Number of modes (strings at or above the threshold).
    pub fn num_modes(&self) -> u64 {
        self.stats.num_modes
    }

    /// Whether a complete string is a mode: its reward is at or above
    /// [`SehStr::mode_threshold`] (decided exactly on the proxy value, see [`SehStats`]).
    /// Incomplete strings are errors.
    pub fn is_mode(&self, state: &[StateValue]) -> Result<bool> {
        Ok(self.mode_index(state, "proxy_value")?.is_some())
    }

    /// The printed form of a state (`"0ah3"`; `""` for the empty string).
    pub fn string_of(&self, state: &[StateValue]) -> Result<String> {
        self.dag.string_of(state)
    }

    /// The state of a printed string (e.g. `"0ah3"`).
    pub fn parse_state(&self, text: &str) -> Result<Vec<StateValue>> {
        self.dag.parse(text)
    }

    /// The terminal index of a complete string if it is a mode (`what` names the caller in
    /// errors).
    fn mode_index(&self, state: &[StateValue], what: &str) -> Result<Option<u64>> {
        let blocks = self.dag.complete_state(state, what)?;
        let value = self.data.trees.value_of(self.data.trees.fixed_sum(blocks));
        Ok((value >= self.mode_proxy_cut).then(|| self.dag.terminal_index(blocks) as u64))
    }

    fn log_reward_of_blocks(&self, blocks: &[StateValue]) -> f64 {
        self.reward
            .log_reward(self.data.trees.value_of(self.data.trees.fixed_sum(blocks)))
    }

    /// The `modes_found` monitor of this instance (what `Environment::monitor` hands out): the
    /// number of distinct sampled strings for which [`SehStr::is_mode`] holds.
    pub fn modes_monitor(&self) -> ModesMonitor {
        let env = self.clone();
        ModesMonitor::new(
            NAME,
            self.dag.spec().state_width,
            self.num_modes(),
            &[
                &self.mode_proxy_cut.to_bits().to_le_bytes()[..],
                self.data.trees.fingerprint().as_bytes(),
            ]
            .concat(),
            Box::new(move |row| env.mode_index(row, "modes_found")),
        )
    }
}

string_environment!(SehStr);

#[cfg(test)]
mod tests {
    use super::*;
    use softgfn_core::{Environment, EnvironmentExt};

    #[test]
    fn readable_form_is_the_string() {
        let env = SehStr::new(SehStrConfig::default()).unwrap();
        let s = env.parse_state("cd18gf").unwrap();
        let r = env.as_readable().unwrap();
        assert_eq!(r.readable(&s).unwrap(), "cd18gf");
        assert_eq!(r.readable(&env.initial_row()).unwrap(), "");
        assert!(r.readable(&s[1..]).is_err());
    }

    #[test]
    fn defaults_shapes_and_rewards() {
        let env = SehStr::new(SehStrConfig::default()).unwrap();
        let spec = env.spec();
        assert_eq!(
            (
                spec.state_width,
                spec.num_actions,
                spec.num_backward_actions,
                spec.feature_dim
            ),
            (7, 37, 2, 114)
        );
        assert_eq!(env.length(), 6);
        assert_eq!(env.ensemble().num_trees(), 100);
        let s = env.parse_state("cd18gf").unwrap();
        let v = env.proxy_value(&s).unwrap();
        assert!((v - 5.177528372013033).abs() < 1e-9, "{v}");
        let want = 10.0 * (v / SEH_PROXY_MAX).powi(6);
        assert!((env.log_reward_of(&s).unwrap() - want.ln()).abs() < 1e-12);
        assert!(
            env.log_reward_of(&env.parse_state("cd18g").unwrap())
                .is_err()
        );
        assert_eq!(
            env.as_enumerable().map(|e| e.num_states()),
            Some((18u64.pow(7) - 1) / 17)
        );
        let e = SehStr::from_params(&serde_json::json!({"reward_scale": -1}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("reward_scale"), "{e}");
    }
}

//! The `sehfrag` parameters and their validation.

use serde::{Deserialize, Serialize};
use softgfn_core::{CoreError, Result};

use crate::NAME;
use crate::state::MAX_BLOCKS_LIMIT;
use crate::table::NUM_BLOCKS;

/// `sehfrag` parameters (the `[env]` table of a run config). Defaults are the paper's
/// (`configs/environment/block_mol.yaml` of its code).
///
/// | Name | Default | Meaning | Range |
/// |---|---|---|---|
/// | `max_blocks` | 8 | a molecule ends by itself when it has this many blocks | `min_blocks..=16` |
/// | `min_blocks` | 2 | stop is allowed from this many blocks on | 2..=`max_blocks` |
/// | `reward_exp` | 10.0 | `R = (max(s, r_min) / reward_norm) ^ reward_exp` for proxy score `s` | finite, > 0 |
/// | `reward_norm` | 8.0 | see `reward_exp` | finite, > 0 |
/// | `r_min` | 0.1 | the proxy score is clamped below at `r_min` | finite, > 0 |
/// | `stale_parent_count` | false | quirk Q1: at an automatic end, `P_B` uses the parent count of the previous state, as the paper's soft-RL code does | bool |
/// | `blocks` | `[]` | the block library: block indices (0..105) to use; empty for all 105 | distinct, closed under the translation table |
/// | `table_path` | none | a `blocks_runtime.json` to use instead of the embedded one | readable file |
/// | `weights_path` | none | proxy weights (`.safetensors`, or gzip of one) instead of the embedded ones | readable file |
/// | `mode_threshold` | 7.0 | `modes_found`/`candidates`: a sample counts from this proxy score (`8 R^(1/10)`) | finite |
/// | `mode_similarity` | 0.7 | a candidate is a new mode when its Tanimoto similarity to every earlier mode is below this | 0..=1 |
/// | `pearson_lambda` | 1/0.85 | the temperature of the `pearson_lambda` metric (the paper's M-DQN `lambda`) | finite, > 0 |
/// | `score_cache` | 1048576 | proxy scores of this many distinct states are kept (0: no cache) | any |
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SehfragConfig {
    /// Blocks at which a molecule ends by itself.
    pub max_blocks: usize,
    /// Blocks from which stop is allowed.
    pub min_blocks: usize,
    /// Reward exponent.
    pub reward_exp: f64,
    /// Reward normaliser.
    pub reward_norm: f64,
    /// Lower clamp of the proxy score.
    pub r_min: f64,
    /// Quirk Q1: the previous state's parent count at an automatic end.
    pub stale_parent_count: bool,
    /// Block library (empty: all 105).
    pub blocks: Vec<usize>,
    /// Path of a block table replacing the embedded one.
    pub table_path: Option<String>,
    /// Path of proxy weights replacing the embedded ones.
    pub weights_path: Option<String>,
    /// Proxy score from which a sample is a mode candidate.
    pub mode_threshold: f64,
    /// Tanimoto similarity below which a candidate is a new mode.
    pub mode_similarity: f64,
    /// Temperature of the `pearson_lambda` metric.
    pub pearson_lambda: f64,
    /// Capacity of the proxy-score cache (distinct states).
    pub score_cache: usize,
}

impl Default for SehfragConfig {
    fn default() -> Self {
        Self {
            max_blocks: 8,
            min_blocks: 2,
            reward_exp: 10.0,
            reward_norm: 8.0,
            r_min: 0.1,
            stale_parent_count: false,
            blocks: Vec::new(),
            table_path: None,
            weights_path: None,
            mode_threshold: 7.0,
            mode_similarity: 0.7,
            pearson_lambda: 1.0 / 0.85,
            score_cache: 1 << 20,
        }
    }
}

pub(crate) fn invalid(field: &str, value: impl std::fmt::Display, expected: &str) -> CoreError {
    CoreError::InvalidParameter {
        env: NAME.into(),
        field: field.into(),
        value: value.to_string(),
        expected: expected.into(),
    }
}

fn positive(field: &str, v: f64) -> Result<()> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(invalid(field, v, "a finite number > 0"))
    }
}

impl SehfragConfig {
    /// Checks every field that needs no data; the error names the field, the value and the
    /// allowed range. (The closure of `blocks` under the translation table is checked when the
    /// table is loaded.)
    pub fn validate(&self) -> Result<()> {
        if self.min_blocks < 2 || self.min_blocks > MAX_BLOCKS_LIMIT {
            return Err(invalid(
                "min_blocks",
                self.min_blocks,
                &format!(
                    "an integer in 2..={MAX_BLOCKS_LIMIT} (the proxy scores molecules of at least 2 blocks)"
                ),
            ));
        }
        if self.max_blocks < self.min_blocks || self.max_blocks > MAX_BLOCKS_LIMIT {
            return Err(invalid(
                "max_blocks",
                self.max_blocks,
                &format!(
                    "an integer in min_blocks..={MAX_BLOCKS_LIMIT} (min_blocks = {})",
                    self.min_blocks
                ),
            ));
        }
        positive("reward_exp", self.reward_exp)?;
        positive("reward_norm", self.reward_norm)?;
        positive("r_min", self.r_min)?;
        positive("pearson_lambda", self.pearson_lambda)?;
        if !self.mode_threshold.is_finite() {
            return Err(invalid(
                "mode_threshold",
                self.mode_threshold,
                "a finite number",
            ));
        }
        if !(0.0..=1.0).contains(&self.mode_similarity) {
            return Err(invalid(
                "mode_similarity",
                self.mode_similarity,
                "a number in 0..=1",
            ));
        }
        let mut seen = [false; NUM_BLOCKS];
        for &b in &self.blocks {
            if b >= NUM_BLOCKS || seen[b] {
                return Err(invalid(
                    "blocks",
                    format!("{:?}", self.blocks),
                    &format!("distinct block indices in 0..{NUM_BLOCKS} (empty for all)"),
                ));
            }
            seen[b] = true;
        }
        Ok(())
    }

    /// The library as a membership table.
    pub(crate) fn library(&self) -> [bool; NUM_BLOCKS] {
        let mut lib = [self.blocks.is_empty(); NUM_BLOCKS];
        for &b in &self.blocks {
            lib[b] = true;
        }
        lib
    }
}

//! # softgfn-molstr
//!
//! The molecule-string environments of "Towards Understanding and Improving GFlowNet Training"
//! (Shen et al., ICML 2023), with their reference data embedded in the crate:
//!
//! | Name | Blocks `K` | Length `L` | Objects | Reward | Modes | States |
//! |---|---|---|---|---|---|---|
//! | `qm9str` | 11 | 5 | 161,051 | `100 * (max(v, 1e-3) / max)^5`, `v` a tabulated proxy HOMO-LUMO gap | top 0.5% (805) | 177,156 |
//! | `sehstr` | 18 | 6 | 34,012,224 | `10 * (max(v, 1e-3) / 7.033253064721926)^6`, `v` a 100-tree GBR proxy of sEH binding | reward >= 99.9th percentile | 36,012,943 |
//!
//! ## The prepend/append DAG
//!
//! A state is a string of at most `L` blocks; `s0` is the empty string. Forward actions:
//! `c` in `0..K` prepends block `c`, `K + c` appends block `c`, and `2K` is the stop (exit)
//! action, valid only at length `L`, where it is the only valid action: the objects are exactly
//! the strings of length `L`. At the empty string only prepend is valid, so each string of length
//! 1 has exactly one parent edge. Backward actions: `0` removes the first block, `1` the last one;
//! at length 1 only "remove first" is valid, at length `>= 2` both are, even when they lead to the
//! same parent (`aaa`): the uniform backward policy is uniform over these edges. `step` returns
//! the backward action undoing it (prepend -> remove first, append -> remove last) and
//! `backward_step` the forward action redoing it (removing the first block `c` -> prepend `c`,
//! removing the last block `c` -> append `c`). Complete trajectories have `L + 1` actions.
//!
//! **State row** (`L + 1` `i32` values): the length `n`, then the `L` slots; slot `j < n` holds
//! the block id of position `j`, the other slots hold `K` (the empty marker). `"0a3"` in qm9str is
//! `[3, 0, 10, 3, 11, 11]`.
//!
//! **Features** (`L * (K + 1)` floats): the one-hot code of every slot, the empty marker included
//! (slot `j` value `b` sets feature `j * (K + 1) + b`); the length is implied by the number of
//! empty slots.
//!
//! **Enumeration**: the index of a string of length `n` is `sum_{m < n} K^m` plus its base-`K`
//! number (first block most significant), in `u64` with checked arithmetic. Both environments are
//! enumerable; qm9str (177,156 states) is small enough for exact policy metrics, sehstr
//! (36,012,943 states) is above the default limit of exact metrics, and its exact target
//! statistics come from [`SehStats`] instead.
//!
//! ## Rewards, modes and exact statistics
//!
//! Both rewards are `R(x) = scale * (max(v(x), 1e-3) / normaliser)^exponent` ([`ProxyReward`]),
//! positive and finite by construction; `log_reward` is defined on complete strings only (other
//! lengths are errors). For qm9str `normaliser` is the table's maximum (computed once at
//! construction), `log Z` is a direct sum and the modes are the `int(0.005 * 161051) = 805` best
//! strings. For sehstr the proxy is a [`TreeEnsemble`]; `log Z`, the 99.9th-percentile mode
//! threshold and the proxy's range over all 34M strings are [`SehStats`], computed by a fast
//! exact enumeration (about 7 s on two cores in release mode) and shipped precomputed in
//! `data/sehstr/stats.json`. Both environments expose `is_mode(state)`, `mode_threshold()`,
//! `num_modes()` and `log_z()`.
//!
//! During `softgfn train` both report `modes_found` in every record of `metrics.jsonl`: the
//! number of **distinct** strings sampled so far (all training samples) that are modes, at most
//! `num_modes()` (805 for qm9str, about 34,000 for sehstr); see [`ModesMonitor`]. It needs no
//! policy evaluation and its state is part of checkpoints.
//!
//! ## Data
//!
//! The data (building blocks, the QM9 proxy table, the sEH trees and statistics) are embedded
//! with `include_bytes!`; see `data/README.md` for provenance and formats. The config key
//! `data_dir` reads the same files from a directory instead (a missing or malformed file is an
//! error naming the path and what was expected); for qm9str it may also hold the original
//! `proxy_values.csv`, so `data_dir` can point at the original data folder.
//!
//! ```
//! use softgfn_core::{Environment, EnvironmentExt};
//! use softgfn_molstr::{Qm9Str, Qm9StrConfig};
//! let env = Qm9Str::new(Qm9StrConfig::default()).unwrap();
//! let s = env.initial_row();
//! let (s, back) = env.step_one(&s, 3).unwrap(); // prepend block 3: "3"
//! assert_eq!(back, 0); // undone by "remove first"
//! let (s, back) = env.step_one(&s, 11 + 10).unwrap(); // append block 10: "3a"
//! assert_eq!((env.string_of(&s).unwrap().as_str(), back), ("3a", 1));
//! assert_eq!(env.num_modes(), 805);
//! ```

mod dag;
pub mod data;
mod monitor;
mod qm9;
mod reward;
mod seh;
mod stats;
mod trees;

pub use dag::SYMBOLS;
pub use data::Block;
pub use monitor::{MODES_FOUND, ModesMonitor};
pub use qm9::{QM9_MODE_FRACTION, Qm9Str, Qm9StrConfig};
pub use reward::{PROXY_FLOOR, ProxyReward};
pub use seh::{SEH_PROXY_MAX, SehStr, SehStrConfig, default_reward, shipped_trees};
pub use stats::{SEH_MODE_PERCENTILE, STATS_FORMAT, SehStats};
pub use trees::TreeEnsemble;

// The environments, registered for binaries that link this crate and, built with `--features
// dynamic`, exported as a run-time plugin (`softgfn --plugin`).
softgfn_plugin::environments!(
    "qm9str" => Qm9Str(Qm9StrConfig): "QM9 molecule strings (11 blocks, length 5) on a prepend/append DAG; tabulated proxy reward",
    "sehstr" => SehStr(SehStrConfig): "sEH molecule strings (18 blocks, length 6) on a prepend/append DAG; tree-ensemble proxy reward",
);

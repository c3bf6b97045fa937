//! # softgfn-bitseq
//!
//! The non-autoregressive bit-sequence environment of Tiapkin et al. (2024), section 2.2 of the
//! reproduction spec (after Malkin et al. 2022, where words are only appended): an object is a
//! string of `n` bits (default 120) split into `n/k` words of `k` bits (default 8), and a word can
//! be written into **any** empty slot, which turns the tree of the autoregressive version into a
//! DAG where every string has `(n/k)!` construction orders.
//!
//! ## Encodings
//!
//! | What | Encoding |
//! |---|---|
//! | state row (`n/k + 1` `i32` tokens) | position 0 is BOS (token `2^k + 1`); position `p` in `1..=n/k` holds word `p - 1` of the string (`0..2^k`) or EMPTY (`2^k`) |
//! | word bits | word `j` covers bits `j*k .. (j+1)*k` of the string, most significant bit first (word `0b0011` of `k = 4` is the text `0011`) |
//! | `s0` | BOS then EMPTY everywhere |
//! | forward action (`(n/k + 1) * 2^k`) | `p * 2^k + w` writes word `w` at EMPTY position `p`; position 0 and filled positions are masked |
//! | end | implicit: a full string has no valid action and ends the trajectory by itself (`exit_action = None`); every trajectory has exactly `n/k` steps (`max_trajectory_length = n/k`) |
//! | backward action (`n/k + 1`) | `p` clears filled position `p` (0 is never valid); the uniform backward policy gives `1/#filled` |
//! | `step` / `backward_step` | `step` returns backward action `p`; `backward_step` returns forward action `p * 2^k + (word at p)` |
//! | features (`(n/k + 1) * (2^k + 2)` floats) | the one-hot code of every token position: position `p` holding token `t` sets feature `p * (2^k + 2) + t`; BOS included (a transformer policy reads the same rows and multiplies them by an embedding matrix) |
//! | state index (enumerable when `(2^k + 1)^(n/k) <= 2^40`) | base `2^k + 1` over the word slots, position 1 least significant, digit 0 for EMPTY and `w + 1` for word `w` (so `s0` has index 0); larger instances return `None` from `as_enumerable` |
//!
//! ## Reward and modes
//!
//! `log R(x) = -beta * min_{m in M} Hamming(x, m)` (`beta = 2`), defined on complete strings only.
//! The mode set `M` has `num_modes` (60) strings, each the concatenation of `n / block_len` blocks
//! drawn uniformly from the alphabet `H` (`{00000000, 11111111, 11110000, 00001111, 00111100}`),
//! generated from `mode_seed` with softgfn's own RNG (exactly as [`ModeSet::generate`] says), so
//! the mode set is part of the instance and recorded with its config, independent of the training
//! seed. See [`BitseqConfig`] for every parameter.
//!
//! ## Metrics of the paper
//!
//! - **modes found**: [`ModeTracker`] (cumulative: a mode is found once any sample is within
//!   Hamming distance `mode_threshold`, default 30) and the one-batch [`modes_found`];
//! - **Spearman correlation** between `log R(x)` and `log p̂(x)` on the test set
//!   ([`Bitseq::test_set`]: each mode and, for `c = 1..n-1`, one copy with `c` random bits
//!   flipped, 7,200 strings by default): [`spearman`] and [`Bitseq::log_p_hat`], the
//!   importance-sampling estimate over random construction orders, batched through a caller's
//!   `log P_F` closure.
//!
//! `softgfn train` computes both during training through the environment's [`BitseqMonitor`]
//! (`Environment::monitor`) and writes them into every record of `metrics.jsonl` as
//! `modes_found` (cumulative over all training samples) and `spearman` (on the first
//! `spearman_strings` test strings, 0 for all, with `spearman_rounds` construction orders each,
//! 10 by default). One evaluation of `spearman` runs the policy on `strings * rounds * n/k`
//! states, 1,080,000 on the paper's instance; on a CPU, `spearman_strings = 720` (the first 6
//! modes at every distance) is 10 times cheaper.
//!
//! ```
//! use softgfn_bitseq::{Bitseq, BitseqConfig};
//! use softgfn_core::{Environment, EnvironmentExt};
//! let env = Bitseq::new(BitseqConfig::default()).unwrap();
//! assert_eq!(env.spec().num_actions, 16 * 256);
//! let s0 = env.initial_row();
//! let (s1, back) = env.step_one(&s0, env.action(3, 0b0000_1111)).unwrap();
//! assert_eq!(back, 3);
//! assert_eq!(&env.bit_string(&s1).unwrap()[16..24], "00001111");
//! // Every mode is at distance 0 from itself: the largest reward, log R = 0.
//! assert_eq!(env.log_reward_of(&env.modes().state_row(0)).unwrap(), 0.0);
//! assert_eq!(env.test_set().len(), 7_200);
//! ```

mod config;
mod env;
mod metrics;
mod modes;
mod monitor;
mod shape;

pub use config::{
    BitseqConfig, DEFAULT_ALPHABET, MAX_FEATURE_DIM, MAX_K, MAX_MODES, MAX_SPEARMAN_ROUNDS,
};
pub use env::{Bitseq, MAX_ENUMERABLE_STATES};
pub use metrics::{DEFAULT_LOG_P_HAT_ROUNDS, LOG_P_HAT_BATCH, LogPf, average_ranks, spearman};
pub use modes::{ModeSet, ModeTracker, TestSet, modes_found};
pub use monitor::{BitseqMonitor, MODES_FOUND, SPEARMAN};

/// The registered name of the environment.
pub const NAME: &str = "bitseq";

const SUMMARY: &str = "Non-autoregressive bit strings: n bits in n/k words written into any empty slot; log R = -beta * min Hamming distance to a seeded mode set";

// The environment, registered for binaries that link this crate and, built with `--features
// dynamic`, exported as a run-time plugin (`softgfn --plugin`).
softgfn_plugin::environments!(NAME => Bitseq(BitseqConfig): SUMMARY);

//! # softgfn-sehfrag
//!
//! The molecule environment of Tiapkin et al. (2024), section 5.3, after Bengio et al. (2021):
//! molecules are built from 105 fragments ("blocks") joined at their attachment atoms
//! ("stems"), and the reward is the sEH binding proxy, a message-passing network computed here
//! in float64 from the shipped weights, on an input graph assembled from a per-block table
//! without RDKit.
//!
//! ## The MDP
//!
//! | What | Encoding |
//! |---|---|
//! | state row (`1 + 3 * max_blocks` `i32`) | the construction record: `[n, (block, parent position, parent slot) per position]`, -1 past `n` ([`state`]) |
//! | `s0` | no block |
//! | forward action (`1 + max_stems * 105`) | 0 is stop (valid from `min_blocks` blocks on); `1 + stem * 105 + block` adds `block` at the `stem`-th open stem in the paper's order (the empty state has one stem, 0) |
//! | end | stop, or by itself when no stem is left or the molecule has `max_blocks` blocks |
//! | backward action (`max_blocks`) | `j` removes the leaf block at position `j` (the paper's parents: every leaf, the first block included; 1 for a single block), re-indexing the later blocks |
//! | uniform `P_B` | `1 / #leaf blocks`, exactly the paper's `P_B` (spec 1.5) |
//! | `step` / `backward_step` | `step` returns the new block's position; `backward_step` returns the paper's parent action (the first block comes back through the translation table) |
//! | graph ([`Environment::graph_layout`](softgfn_core::Environment::graph_layout)) | the paper's `mol2graph`: blocks as nodes typed by SMILES class, junctions as edges typed by their two stem types, open stems as action slots; written after the one-hot features |
//! | equivalence | two rows are the same molecule when their block graphs are isomorphic ([`canon`]); `check_env` checks `step` after `backward_step` up to it |
//! | reward | `log R = reward_exp * ln(max(s, r_min) / reward_norm)` with `s` the proxy score (defaults 10, 8, 0.1) |
//!
//! ## Metrics
//!
//! The environment's monitor ([`SehfragMonitor`]) reports `modes_found` and `candidates` (the
//! paper's greedy Tanimoto count over every sample since the start, with the RDKit path
//! [`fingerprint`]) and `pearson` / `pearson_lambda` (the correlation of `log R` and the
//! policy's `log p(x)` over the paper's 529 scored test molecules).
//!
//! ```
//! use softgfn_core::{Environment, EnvironmentExt};
//! use softgfn_sehfrag::{Sehfrag, SehfragConfig, flat_action};
//! let env = Sehfrag::new(SehfragConfig::default()).unwrap();
//! assert_eq!(env.spec().num_actions, 1 + 30 * 105);
//! // Benzene, then a second benzene on its first stem: a biphenyl.
//! let (s1, _) = env.step_one(&env.initial_row(), flat_action(0, 0)).unwrap();
//! let (s2, back) = env.step_one(&s1, flat_action(0, 0)).unwrap();
//! assert_eq!(back, 1);
//! assert_eq!(env.n_parents(&s2).unwrap(), 2);
//! let score = env.proxy_score(&s2).unwrap();
//! assert!((env.log_reward_of(&s2).unwrap() - 10.0 * (score.max(0.1) / 8.0).ln()).abs() < 1e-12);
//! ```

pub mod assemble;
pub mod canon;
mod config;
pub mod correlation;
mod env;
pub mod fingerprint;
pub mod modes;
mod monitor;
pub mod proxy;
pub mod state;
pub mod table;

pub use assemble::{Atom, Molecule};
pub use config::SehfragConfig;
pub use correlation::{TestMolecule, TestSet};
pub use env::Sehfrag;
pub use fingerprint::{Fingerprint, fingerprint};
pub use modes::{Candidate, modes_found, pearson};
pub use monitor::{CANDIDATES, MODES_FOUND, PEARSON, PEARSON_LAMBDA, SehfragMonitor};
pub use proxy::Proxy;
pub use state::{Mol, flat_action, split_action};
pub use table::{BlockTable, NUM_BLOCKS};

/// The registered name of the environment.
pub const NAME: &str = "sehfrag";

const SUMMARY: &str = "sEH fragment-block molecules (Bengio et al. 2021): 105 blocks joined at stems, 2..8 blocks, reward from the float64 sEH MPNN proxy";

impl Sehfrag {
    /// The proxy score of one state (at least 2 blocks).
    ///
    /// # Errors
    /// An invalid row or one with fewer than 2 blocks.
    pub fn proxy_score(&self, row: &[softgfn_core::StateValue]) -> softgfn_core::Result<f64> {
        let mut s = [0.0];
        self.proxy_scores(row, &mut s)?;
        Ok(s[0])
    }
}

impl Sehfrag {
    /// A molecule sampled with every allowed flat action equally likely (the `uniform_action`
    /// policy of the paper's reference), as its final state row.
    ///
    /// # Errors
    /// None for a valid environment; an error of the environment's calls otherwise.
    pub fn sample_uniform(
        &self,
        rng: &mut softgfn_core::Rng,
    ) -> softgfn_core::Result<Vec<softgfn_core::StateValue>> {
        use softgfn_core::EnvironmentExt;
        let mut s = self.initial_row();
        loop {
            let m = self.forward_mask_of(&s)?;
            let valid: Vec<u32> = (0..m.len() as u32).filter(|&a| m[a as usize]).collect();
            if valid.is_empty() {
                return Ok(s);
            }
            let a = valid[softgfn_core::rng::below(rng, valid.len() as u64) as usize];
            if a == 0 {
                return Ok(s);
            }
            s = self.step_one(&s, a)?.0;
        }
    }
}

// The environment, registered for binaries that link this crate and, built with `--features
// dynamic`, exported as a run-time plugin (`softgfn --plugin`).
softgfn_plugin::environments!(NAME => Sehfrag(SehfragConfig): SUMMARY);

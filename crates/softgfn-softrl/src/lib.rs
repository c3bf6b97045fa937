//! # softgfn-softrl
//!
//! Soft-RL agents for GFlowNets, after Tiapkin, Morozov, Naumov and Vetrov, "Generative Flow
//! Networks as Entropy-Regularized RL" (AISTATS 2024): on the MDP whose rewards are
//! `log P_B(s|s')` on intermediate edges and `log R(x)` on the exit (see
//! [`softgfn_core::soft`]), entropy-regularized RL with coefficient 1 learns the GFlowNet.
//!
//! - [`SoftRlAgent`]: what an entropy-regularized RL agent is on the reduction's soft MDP (the
//!   seam; [`agent`] says who calls what), and [`OffPolicy`], the one off-policy driver that makes
//!   any agent an `Algorithm` (replay, rewards, warm-up, exploration, targets, checkpoints);
//! - [`dqn::SoftDqn`]: SoftDQN (`name = "soft_dqn"`) and Munchausen DQN
//!   (`name = "munchausen_dqn"`, alpha 0.15, `lambda = 1/(1 - alpha)`);
//! - [`sac::Sac`]: discrete soft actor-critic (`name = "sac"`);
//! - [`targets`]: the soft Bellman targets and the agents' losses as pure functions, tested at
//!   exact fixed points, against hand-computed literals and finite differences.
//!
//! Soft agents refuse a learned backward policy (the equivalence needs a fixed `P_B`) unless the
//! paper code's naive mode is chosen explicitly (`naive_learned_backward = true`).

pub mod agent;
pub mod common;
pub mod dqn;
pub mod driver;
pub mod sac;
pub mod targets;

pub use agent::{AgentContext, BatchFeatures, LossOutput, OnlineTarget, SoftRlAgent, soft_update};
pub use dqn::{MunchausenDqnConfig, SoftDqn, SoftDqnConfig};
pub use driver::{OffPolicy, OffPolicySettings};
pub use sac::{Sac, SacConfig};

softgfn_train::inventory::submit! {
    softgfn_train::AlgorithmRegistration {
        name: "soft_dqn",
        summary: "SoftDQN: soft Q-learning with log P_B rewards, replay (PER) and a target network",
        source: env!("CARGO_PKG_NAME"),
        default_config: || Box::new(SoftDqnConfig::default()),
    }
}

softgfn_train::inventory::submit! {
    softgfn_train::AlgorithmRegistration {
        name: "munchausen_dqn",
        summary: "Munchausen DQN: SoftDQN + alpha*clip(lambda log pi) bonus, alpha 0.15, lambda 1/(1-alpha)",
        source: env!("CARGO_PKG_NAME"),
        default_config: || Box::new(MunchausenDqnConfig::default()),
    }
}

softgfn_train::inventory::submit! {
    softgfn_train::AlgorithmRegistration {
        name: "sac",
        summary: "discrete soft actor-critic: actor + twin critics on one torso, entropy coefficient 1",
        source: env!("CARGO_PKG_NAME"),
        default_config: || Box::new(SacConfig::default()),
    }
}

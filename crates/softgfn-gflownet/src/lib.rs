//! # softgfn-gflownet
//!
//! GFlowNet balance objectives, one module each, and the algorithm that trains a network with
//! any of them:
//!
//! - [`tb`]: trajectory balance, `name = "tb"`;
//! - [`db`]: detailed balance, `name = "db"`;
//! - [`subtb`]: sub-trajectory balance SubTB(lambda), `name = "subtb"`;
//! - [`fm`]: flow matching over the parents the environment enumerates, `name = "fm"`.
//!
//! Objectives are pure functions of log-probabilities ([`softgfn_train::Objective`]) tested
//! against hand-computed values; [`balance::BalanceAlgorithm`] computes those log-probabilities
//! with an MLP (forward logits, a learned or fixed backward policy, `log F`, `log Z`) and
//! backpropagates the objective's gradients through it.

pub mod balance;
pub mod config;
pub mod db;
pub mod fm;
pub mod subtb;
pub mod tb;

pub use balance::{BalanceAlgorithm, BalanceSetup};
pub use config::{DbConfig, SubTbConfig, TbConfig};
pub use db::DetailedBalance;
pub use fm::{FlowMatching, FlowMatchingAlgorithm, FmConfig};
pub use subtb::{SubTbWeighting, SubTrajectoryBalance};
pub use tb::TrajectoryBalance;

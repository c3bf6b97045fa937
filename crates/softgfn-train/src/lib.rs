//! # softgfn-train
//!
//! The learning side of softgfn that every algorithm shares:
//!
//! - [`Objective`]: balance losses as pure functions of log-probabilities with analytic
//!   gradients ([`objective`]);
//! - [`Sampler`]: batched rollouts with epsilon-uniform and temperature exploration;
//! - [`Algorithm`] and [`AlgorithmConfig`]: the seam the trainer, CLI and harness drive, with a
//!   typetag-tagged config and an `inventory` registry;
//! - [`RunConfig`] and [`config::resolve`]: one TOML document per run, defaults filled in;
//! - [`Trainer`]: the loop that samples, updates, evaluates (exact and empirical metrics) and
//!   writes `metrics.jsonl` / `metrics.csv` (and, with `[log] tensorboard`, TensorBoard event
//!   files: [`tensorboard`]);
//! - [`estimate`]: the sampled `log Z` estimators (ELBO, importance-weighted, EUBO) and
//!   `log p(x)` of a trained policy.
//!
//! The network side (`softgfn-nn`) is used through its small `Model` interface: a forward pass,
//! upstream gradients in, an Adam step. No tensor type appears here.

pub mod algorithm;
pub mod backward;
pub mod checkpoint;
pub mod config;
pub mod error;
pub mod estimate;
pub mod network;
pub mod objective;
pub mod record;
pub mod replay;
pub mod sampler;
pub mod schedule;
pub mod tensorboard;
pub mod trained;
pub mod trainer;

pub use algorithm::{
    Algorithm, AlgorithmConfig, AlgorithmRegistration, AlgorithmState, BuildContext, UpdateContext,
    UpdateStats, find_algorithm, registered_algorithms,
};
pub use backward::BackwardLogProbs;
pub use config::{EnvSection, EvalConfig, LogConfig, RunConfig, apply_override, resolve};
pub use error::{Result, TrainError};
pub use objective::{ChainBatch, ChainGrads, Objective, ObjectiveNeeds};
pub use record::{EvalRecord, RecordSink, RunDir};
pub use replay::{
    MinTree, PerConfig, ReplayBuffer, ReplayShape, SampledBatch, Sampling, SumTree,
    TransitionRecord,
};
pub use sampler::{Exploration, ForwardPolicy, Sampler};
pub use schedule::{LinearSchedule, PAPER_HORIZON};
pub use trained::{Sampled, Trained};
pub use trainer::{Observer, Summary, Trainer};

#[doc(hidden)]
pub use inventory;
#[doc(hidden)]
pub use typetag;

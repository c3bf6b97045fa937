//! # softgfn-core
//!
//! The environment side of softgfn, with no tensor dependency:
//!
//! - [`Environment`]: a batched, object-safe DAG over fixed-width integer states with forward and
//!   backward masks, `step`/`backward_step`, an optional exit action, `log_reward` and `encode`;
//!   the optional [`Enumerable`] capability lists all states;
//! - [`Trajectories`]: the container samplers fill and objectives read;
//! - [`check_env`]: the conformance checker;
//! - [`exact`]: the state graph, the target `R/Z`, the flow recursion for a fixed backward policy
//!   and the exact terminal distribution of any forward policy;
//! - [`metrics`]: `exact_l1`, `exact_kl`, ... and the paper's empirical window metrics;
//! - [`Monitor`]: environment-specific evaluation metrics (modes found, Spearman) kept during a
//!   run, handed out by [`Environment::monitor`];
//! - [`registry`]: built-in environments registered through `inventory`.
//!
//! ```
//! use softgfn_core::{exact::StateGraph, testing::SetEnv, UniformBackward};
//! # fn main() -> Result<(), softgfn_core::CoreError> {
//! let env = SetEnv::new(vec![0.5, 1.0, 1.5]);
//! softgfn_core::check_env(&env)?;
//! let graph = StateGraph::build(&env, 1_000)?;
//! let flows = graph.flows(&UniformBackward);
//! let target = graph.target();
//! assert!((flows.log_z - target.log_z).abs() < 1e-12);
//! // The forward policy of the flow recursion samples exactly R/Z.
//! let p = graph.terminal_distribution(&flows.log_pf)?;
//! assert!(softgfn_core::metrics::l1(&p, &target.probs)? < 1e-12);
//! # Ok(()) }
//! ```

pub mod backward;
pub mod check;
pub mod env;
pub mod error;
pub mod exact;
pub mod math;
pub mod metrics;
pub mod monitor;
pub mod registry;
pub mod rng;
pub mod soft;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod trajectory;
mod vexp;

pub use backward::{BackwardPolicy, BackwardPolicyKind, LogProbRow, TreeBackward, UniformBackward};
pub use check::{CheckOptions, CheckReport, check_env, check_env_with};
pub use env::{
    Enumerable, EnvSpec, Environment, EnvironmentExt, GraphLayout, Readable, SequenceLayout,
    StateEquivalence, StateValue, TokenActions, integer_row, readable_state,
};
pub use error::{CoreError, Result};
pub use monitor::{LogPf, Monitor};
pub use registry::{EnvRegistration, build_env, find_env, parse_params, registered_envs};
pub use rng::Rng;
pub use trajectory::{NO_BACKWARD_ACTION, Trajectories, Transition};

#[doc(hidden)]
pub use inventory;
#[doc(hidden)]
pub use serde_json;

//! Configs of the balance algorithms (`[algo]` with `name = "tb" | "db" | "subtb"`).
//!
//! Defaults are the paper's hypergrid baselines (torchgfn 1.0 semantics): a 2 x 256 ReLU MLP with
//! a learned backward policy on the tied torso, Adam 1e-3, `log Z` learning rate 0.1, 16
//! trajectories per iteration, no exploration.
//!
//! | Name | Default | Meaning | Range |
//! |---|---|---|---|
//! | `learning_rate` | 0.001 | Adam learning rate of the network | > 0 |
//! | `log_z_learning_rate` | 0.1 | Adam learning rate of `log Z` (TB only) | > 0 |
//! | `log_z_init` | 0.0 | initial `log Z` (TB only) | finite |
//! | `weight_decay` | 0.0 | L2 weight decay (PyTorch Adam style) | >= 0 |
//! | `trajectories_per_iteration` | 16 | on-policy rollouts per iteration | >= 1 |
//! | `backward_policy` | `learned` | `learned` (tied head), `uniform`, `tree` | |
//! | `hidden_dim` | 256 | width of hidden layers | >= 1 |
//! | `hidden_layers` | 2 | number of hidden layers | >= 1 |
//! | `network` | `mlp` | `mlp`, `transformer` (token environments such as bitseq) or `graph` (graph environments such as sehfrag; `[algo.network.graph]` for its sizes) | |
//! | `transformer.*` | 3 layers, d 64, 8 heads, ff 64, dropout 0.1 | transformer sizes, see `softgfn_train::network` | |
//! | `epsilon` | 0.0 | probability of a uniform random valid action | [0, 1] |
//! | `temperature` | 1.0 | temperature of the sampling logits | > 0 |
//! | `subtb_lambda` | 0.9 | SubTB geometric weight (SubTB only) | > 0 |
//! | `subtb_weighting` | `geometric_within` | `geometric_within` or `equal_within` (SubTB only) | |

use serde::{Deserialize, Serialize};
use softgfn_core::BackwardPolicyKind;
use softgfn_train::algorithm::check;
use softgfn_train::network::{NetworkChoice, NetworkKind, TransformerConfig};
use softgfn_train::{Algorithm, AlgorithmConfig, BuildContext, Exploration, Result};

use crate::balance::{BalanceAlgorithm, BalanceSetup};
use crate::{DetailedBalance, SubTbWeighting, SubTrajectoryBalance, TrajectoryBalance};

/// Checks the fields every balance config shares.
#[allow(clippy::too_many_arguments)]
pub(crate) fn validate_common(
    learning_rate: f64,
    weight_decay: f64,
    trajectories_per_iteration: usize,
    hidden_dim: usize,
    hidden_layers: usize,
    epsilon: f64,
    temperature: f64,
) -> Result<()> {
    check::positive("algo.learning_rate", learning_rate)?;
    check::non_negative("algo.weight_decay", weight_decay)?;
    check::in_range(
        "algo.trajectories_per_iteration",
        trajectories_per_iteration,
        1,
        check::MAX_BATCH,
    )?;
    check::in_range("algo.hidden_dim", hidden_dim, 1, check::MAX_HIDDEN_DIM)?;
    check::in_range(
        "algo.hidden_layers",
        hidden_layers,
        1,
        check::MAX_HIDDEN_LAYERS,
    )?;
    check::probability("algo.epsilon", epsilon)?;
    check::positive("algo.temperature", temperature)
}

macro_rules! balance_setup {
    ($self:ident, $name:expr, $objective:expr, $lz_lr:expr, $lz_init:expr) => {
        BalanceSetup {
            name: $name,
            objective: $objective,
            learning_rate: $self.learning_rate,
            log_z_learning_rate: $lz_lr,
            log_z_init: $lz_init,
            weight_decay: $self.weight_decay,
            trajectories_per_iteration: $self.trajectories_per_iteration,
            backward_policy: $self.backward_policy,
            network: NetworkChoice {
                kind: $self.network,
                hidden_dim: $self.hidden_dim,
                hidden_layers: $self.hidden_layers,
                transformer: &$self.transformer,
            },
            exploration: Exploration {
                epsilon: $self.epsilon,
                temperature: $self.temperature,
            },
        }
    };
}

impl TbConfig {
    fn setup(&self) -> BalanceSetup<'_> {
        let objective = Box::new(TrajectoryBalance);
        balance_setup!(
            self,
            "tb",
            objective,
            self.log_z_learning_rate,
            self.log_z_init
        )
    }
}

impl DbConfig {
    fn setup(&self) -> BalanceSetup<'_> {
        balance_setup!(self, "db", Box::new(DetailedBalance), 0.0, 0.0)
    }
}

impl SubTbConfig {
    fn setup(&self) -> BalanceSetup<'_> {
        let objective = SubTrajectoryBalance {
            lambda: self.subtb_lambda,
            weighting: self.subtb_weighting,
        };
        balance_setup!(self, "subtb", Box::new(objective), 0.0, 0.0)
    }
}

/// Trajectory balance (`name = "tb"`); see the module table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TbConfig {
    /// Adam learning rate of the network.
    pub learning_rate: f64,
    /// Adam learning rate of `log Z`.
    pub log_z_learning_rate: f64,
    /// Initial `log Z`.
    pub log_z_init: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// Rollouts per iteration.
    pub trajectories_per_iteration: usize,
    /// Backward policy.
    pub backward_policy: BackwardPolicyKind,
    /// Hidden width.
    pub hidden_dim: usize,
    /// Hidden layers.
    pub hidden_layers: usize,
    /// Network architecture: `mlp`, `transformer` or `graph` (with its sizes).
    pub network: NetworkKind,
    /// Transformer sizes (used when `network = "transformer"`).
    pub transformer: TransformerConfig,
    /// Uniform-action probability.
    pub epsilon: f64,
    /// Sampling temperature.
    pub temperature: f64,
}

impl Default for TbConfig {
    fn default() -> Self {
        Self {
            learning_rate: 1e-3,
            log_z_learning_rate: 0.1,
            log_z_init: 0.0,
            weight_decay: 0.0,
            trajectories_per_iteration: 16,
            backward_policy: BackwardPolicyKind::Learned,
            hidden_dim: 256,
            hidden_layers: 2,
            network: NetworkKind::Mlp,
            transformer: TransformerConfig::default(),
            epsilon: 0.0,
            temperature: 1.0,
        }
    }
}

#[typetag::serde(name = "tb")]
impl AlgorithmConfig for TbConfig {
    fn validate(&self) -> Result<()> {
        self.setup().validate()
    }

    fn build(&self, ctx: &mut BuildContext<'_>) -> Result<Box<dyn Algorithm>> {
        self.validate()?;
        Ok(Box::new(BalanceAlgorithm::new(self.setup(), ctx)?))
    }

    fn clone_box(&self) -> Box<dyn AlgorithmConfig> {
        Box::new(self.clone())
    }
}

/// Detailed balance (`name = "db"`); see the module table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DbConfig {
    /// Adam learning rate of the network.
    pub learning_rate: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// Rollouts per iteration.
    pub trajectories_per_iteration: usize,
    /// Backward policy.
    pub backward_policy: BackwardPolicyKind,
    /// Hidden width.
    pub hidden_dim: usize,
    /// Hidden layers.
    pub hidden_layers: usize,
    /// Network architecture: `mlp`, `transformer` or `graph` (with its sizes).
    pub network: NetworkKind,
    /// Transformer sizes (used when `network = "transformer"`).
    pub transformer: TransformerConfig,
    /// Uniform-action probability.
    pub epsilon: f64,
    /// Sampling temperature.
    pub temperature: f64,
}

impl Default for DbConfig {
    fn default() -> Self {
        let tb = TbConfig::default();
        Self {
            learning_rate: tb.learning_rate,
            weight_decay: tb.weight_decay,
            trajectories_per_iteration: tb.trajectories_per_iteration,
            backward_policy: tb.backward_policy,
            hidden_dim: tb.hidden_dim,
            hidden_layers: tb.hidden_layers,
            network: tb.network,
            transformer: tb.transformer,
            epsilon: tb.epsilon,
            temperature: tb.temperature,
        }
    }
}

#[typetag::serde(name = "db")]
impl AlgorithmConfig for DbConfig {
    fn validate(&self) -> Result<()> {
        self.setup().validate()
    }

    fn build(&self, ctx: &mut BuildContext<'_>) -> Result<Box<dyn Algorithm>> {
        self.validate()?;
        Ok(Box::new(BalanceAlgorithm::new(self.setup(), ctx)?))
    }

    fn clone_box(&self) -> Box<dyn AlgorithmConfig> {
        Box::new(self.clone())
    }
}

/// Sub-trajectory balance (`name = "subtb"`); see the module table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SubTbConfig {
    /// Adam learning rate of the network.
    pub learning_rate: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// Rollouts per iteration.
    pub trajectories_per_iteration: usize,
    /// Backward policy.
    pub backward_policy: BackwardPolicyKind,
    /// Hidden width.
    pub hidden_dim: usize,
    /// Hidden layers.
    pub hidden_layers: usize,
    /// Network architecture: `mlp`, `transformer` or `graph` (with its sizes).
    pub network: NetworkKind,
    /// Transformer sizes (used when `network = "transformer"`).
    pub transformer: TransformerConfig,
    /// Uniform-action probability.
    pub epsilon: f64,
    /// Sampling temperature.
    pub temperature: f64,
    /// Geometric weight of longer sub-trajectories.
    pub subtb_lambda: f64,
    /// Weighting scheme.
    pub subtb_weighting: SubTbWeighting,
}

impl Default for SubTbConfig {
    fn default() -> Self {
        let db = DbConfig::default();
        Self {
            learning_rate: db.learning_rate,
            weight_decay: db.weight_decay,
            trajectories_per_iteration: db.trajectories_per_iteration,
            backward_policy: db.backward_policy,
            hidden_dim: db.hidden_dim,
            hidden_layers: db.hidden_layers,
            network: db.network,
            transformer: db.transformer,
            epsilon: db.epsilon,
            temperature: db.temperature,
            subtb_lambda: 0.9,
            subtb_weighting: SubTbWeighting::GeometricWithin,
        }
    }
}

#[typetag::serde(name = "subtb")]
impl AlgorithmConfig for SubTbConfig {
    fn validate(&self) -> Result<()> {
        self.setup().validate()?;
        check::positive("algo.subtb_lambda", self.subtb_lambda)
    }

    fn build(&self, ctx: &mut BuildContext<'_>) -> Result<Box<dyn Algorithm>> {
        self.validate()?;
        Ok(Box::new(BalanceAlgorithm::new(self.setup(), ctx)?))
    }

    fn clone_box(&self) -> Box<dyn AlgorithmConfig> {
        Box::new(self.clone())
    }
}

softgfn_train::inventory::submit! {
    softgfn_train::AlgorithmRegistration {
        name: "tb",
        summary: "trajectory balance: log Z + sum log P_F = log R + sum log P_B over whole trajectories",
        source: env!("CARGO_PKG_NAME"),
        default_config: || Box::new(TbConfig::default()),
    }
}

softgfn_train::inventory::submit! {
    softgfn_train::AlgorithmRegistration {
        name: "db",
        summary: "detailed balance: one-step flow consistency with a log F head",
        source: env!("CARGO_PKG_NAME"),
        default_config: || Box::new(DbConfig::default()),
    }
}

softgfn_train::inventory::submit! {
    softgfn_train::AlgorithmRegistration {
        name: "subtb",
        summary: "sub-trajectory balance SubTB(lambda): lambda-weighted consistency of all sub-paths",
        source: env!("CARGO_PKG_NAME"),
        default_config: || Box::new(SubTbConfig::default()),
    }
}

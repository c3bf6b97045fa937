//! Flow matching (FM), Bengio, Jain, Korablyov, Precup and Bengio, *Flow network based generative
//! models for non-iterative diverse candidate generation* (NeurIPS 2021), with the "balanced"
//! loss of its molecule code, which the paper of Tiapkin et al. (AISTATS 2024) uses as its
//! default molecule baseline.
//!
//! A network outputs a log edge flow `log F(s -> s')` for every forward action of a state, the
//! exit included; the policy samples proportionally to the edge flows,
//! `P_F(a | s) = F(s, a) / sum_{a'} F(s, a')`. Every state `s'` that a sampled trajectory visits
//! after `s0` is a *node* whose inflow (over **all** its parents, which the environment
//! enumerates with its backward actions) must equal its outflow:
//!
//! ```text
//! L(s') = ( log(c + sum_{(s, a) -> s'} F(s, a)) - log(c + sum_{a valid at s'} F(s', a)) )^2
//! ```
//!
//! An object `x` left by the exit action adds a *terminal* node, the sink of that edge, whose
//! inflow `F(x, exit)` must equal `R(x)`; a state that ends a trajectory by itself (no valid
//! action) is a terminal node whose parents' inflow must equal `R(x)`:
//!
//! ```text
//! L_term(x) = ( log(c + inflow(x)) - log(c + R(x)) )^2
//! ```
//!
//! `c` (`log_reg_c`, 2.5e-5 in the paper's code) keeps the logarithms finite. The balanced loss is
//!
//! ```text
//! L = leaf_coef * mean_{terminal nodes} L_term + mean_{interior nodes} L
//! ```
//!
//! with `leaf_coef = 10`. At a zero of the loss the flows are a flow network: `F(s0) = Z` and
//! `P_F` samples `x` with probability `R(x) / Z` (any DAG, no backward policy involved).
//!
//! In the chain form of [`softgfn_train::Objective`] every edge of a trajectory has one target
//! node (the next state, or the sink of an exit edge), so FM is an objective over the per-edge
//! `log_inflow` (over all parents of the target) and `log_outflow` (over all its actions); the
//! last edge of a trajectory is the terminal one. [`FlowMatching`] is a pure function of those,
//! tested against hand-computed values; [`FlowMatchingAlgorithm`] evaluates the network on the
//! visited states and on their other parents, aggregates the edge flows, and backpropagates the
//! objective's gradients through the aggregation (softmax weights) and the network.

use std::path::Path;

use serde::{Deserialize, Serialize};
use softgfn_core::math::{log_add_exp, logsumexp};
use softgfn_core::{Environment, Rng};
use softgfn_nn::{AdamConfig, HeadSpec, Model, OptimizerSpec, Outputs};
use softgfn_train::algorithm::{
    check, decode_state, encode_state, initial_inputs, model_tensors, restore_model,
};
use softgfn_train::network::{NetworkChoice, NetworkKind, TransformerConfig, build_model};
use softgfn_train::{
    Algorithm, AlgorithmConfig, AlgorithmState, BuildContext, ChainBatch, ChainGrads, Exploration,
    ForwardPolicy, Objective, ObjectiveNeeds, Result, UpdateContext, UpdateStats,
};

/// Model file written by [`Algorithm::save`].
pub const MODEL_FILE: &str = "model.safetensors";

/// The balanced flow-matching objective (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FlowMatching {
    /// Weight of the terminal nodes' mean loss.
    pub leaf_coef: f64,
    /// The constant `c` added inside the logarithms.
    pub log_reg_c: f64,
}

impl Objective for FlowMatching {
    fn name(&self) -> &'static str {
        "fm"
    }

    fn needs(&self) -> ObjectiveNeeds {
        ObjectiveNeeds {
            log_z: false,
            log_flow: false,
            parent_flows: true,
        }
    }

    fn loss_and_grad(&self, batch: &ChainBatch<'_>, grads: &mut ChainGrads) -> f64 {
        let edges = batch.num_edges();
        grads.reset(edges);
        let trajectories = batch.num_trajectories();
        let log_c = self.log_reg_c.ln();
        // log(c + e^x) and its derivative e^x / (c + e^x).
        let soft = |x: f64| {
            let v = log_add_exp(log_c, x);
            (
                v,
                if x == f64::NEG_INFINITY {
                    0.0
                } else {
                    (x - v).exp()
                },
            )
        };
        let w_term = self.leaf_coef / trajectories.max(1) as f64;
        let w_int = 1.0 / edges.saturating_sub(trajectories).max(1) as f64;
        let mut loss = 0.0;
        for i in 0..trajectories {
            let (a, b) = (batch.edge_offsets[i], batch.edge_offsets[i + 1]);
            for e in a..b {
                let (lhs, d_in) = soft(batch.log_inflow[e]);
                let last = e + 1 == b;
                let (rhs, d_out) = soft(if last {
                    batch.log_reward[i]
                } else {
                    batch.log_outflow[e]
                });
                let w = if last { w_term } else { w_int };
                let r = lhs - rhs;
                loss += w * r * r;
                grads.log_inflow[e] = 2.0 * w * r * d_in;
                if !last {
                    grads.log_outflow[e] = -2.0 * w * r * d_out;
                }
            }
        }
        loss
    }
}

/// Flow matching configuration (`name = "fm"`).
///
/// Defaults are the paper's molecule baseline for the loss (`leaf_coef` 10, `log_reg_c` 2.5e-5)
/// and the hypergrid settings of the other balance algorithms for the rest.
///
/// | Name | Default | Meaning | Range |
/// |---|---|---|---|
/// | `learning_rate` | 0.001 | Adam learning rate of the network | > 0 |
/// | `weight_decay` | 0.0 | L2 weight decay (PyTorch Adam style) | >= 0 |
/// | `trajectories_per_iteration` | 16 | on-policy rollouts per iteration | >= 1 |
/// | `leaf_coef` | 10.0 | weight of the terminal nodes' mean loss | > 0 |
/// | `log_reg_c` | 2.5e-5 | constant added inside the logarithms of in- and outflows | > 0 |
/// | `hidden_dim` | 256 | width of hidden layers | >= 1 |
/// | `hidden_layers` | 2 | number of hidden layers | >= 1 |
/// | `network` | `mlp` | `mlp`, `transformer` or `graph` (`[algo.network.graph]` for its sizes) | |
/// | `transformer.*` | 3 layers, d 64, 8 heads, ff 64, dropout 0.1 | see `softgfn_train::network` | |
/// | `epsilon` | 0.0 | probability of a uniform random valid action | [0, 1] |
/// | `temperature` | 1.0 | temperature of the sampling logits | > 0 |
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FmConfig {
    /// Adam learning rate of the network.
    pub learning_rate: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// Rollouts per iteration.
    pub trajectories_per_iteration: usize,
    /// Weight of the terminal nodes' mean loss.
    pub leaf_coef: f64,
    /// Constant inside the logarithms.
    pub log_reg_c: f64,
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

impl Default for FmConfig {
    fn default() -> Self {
        Self {
            learning_rate: 1e-3,
            weight_decay: 0.0,
            trajectories_per_iteration: 16,
            leaf_coef: 10.0,
            log_reg_c: 2.5e-5,
            hidden_dim: 256,
            hidden_layers: 2,
            network: NetworkKind::Mlp,
            transformer: TransformerConfig::default(),
            epsilon: 0.0,
            temperature: 1.0,
        }
    }
}

#[typetag::serde(name = "fm")]
impl AlgorithmConfig for FmConfig {
    fn validate(&self) -> Result<()> {
        self.transformer.validate()?;
        crate::config::validate_common(
            self.learning_rate,
            self.weight_decay,
            self.trajectories_per_iteration,
            self.hidden_dim,
            self.hidden_layers,
            self.epsilon,
            self.temperature,
        )?;
        check::positive("algo.leaf_coef", self.leaf_coef)?;
        check::positive("algo.log_reg_c", self.log_reg_c)
    }

    fn build(&self, ctx: &mut BuildContext<'_>) -> Result<Box<dyn Algorithm>> {
        self.validate()?;
        Ok(Box::new(FlowMatchingAlgorithm::new(self, ctx)?))
    }

    fn clone_box(&self) -> Box<dyn AlgorithmConfig> {
        Box::new(self.clone())
    }
}

softgfn_train::inventory::submit! {
    softgfn_train::AlgorithmRegistration {
        name: "fm",
        summary: "flow matching: inflow over all parents = outflow (+ reward) at every visited state",
        source: env!("CARGO_PKG_NAME"),
        default_config: || Box::new(FmConfig::default()),
    }
}

/// A GFlowNet trained by flow matching: one network whose forward-action head is `log F(s, a)`.
#[derive(Debug)]
pub struct FlowMatchingAlgorithm {
    model: Model,
    objective: FlowMatching,
    exploration: Exploration,
    /// Sample training trajectories with train-mode dropout (`algo.transformer.sampling_dropout`).
    sampling_dropout: bool,
    trajectories_per_iteration: usize,
    num_actions: usize,
    // Scratch, reused between updates.
    /// Network input: the trajectories' features, then the other parents' features.
    features: Vec<f32>,
    out: Outputs,
    grad: Outputs,
    /// Parent enumeration: child state rows, backward actions, parent states, forward actions.
    parent_children: Vec<i32>,
    parent_backward: Vec<u32>,
    parent_states: Vec<i32>,
    parent_actions: Vec<u32>,
    /// Per visited state after `s0` (in row order), its range of other parents.
    other_parents: Vec<(usize, usize)>,
    /// Per edge, its target's in-edges and out-edges as (network row, action).
    in_edges: Vec<(usize, u32)>,
    out_edges: Vec<(usize, u32)>,
    in_offsets: Vec<usize>,
    out_offsets: Vec<usize>,
    /// Edge flows of `in_edges` / `out_edges`, then their softmax weights within each target.
    in_flow: Vec<f64>,
    out_flow: Vec<f64>,
    log_inflow: Vec<f64>,
    log_outflow: Vec<f64>,
    grads: ChainGrads,
}

impl FlowMatchingAlgorithm {
    /// Builds the network for `ctx.env` and the optimizer.
    pub fn new(cfg: &FmConfig, ctx: &mut BuildContext<'_>) -> Result<Self> {
        let spec = ctx.env.spec();
        let optimizer = OptimizerSpec {
            adam: AdamConfig {
                learning_rate: cfg.learning_rate as f32,
                weight_decay: cfg.weight_decay as f32,
                ..AdamConfig::default()
            },
            group_learning_rates: vec![],
        };
        let network = NetworkChoice {
            kind: cfg.network,
            hidden_dim: cfg.hidden_dim,
            hidden_layers: cfg.hidden_layers,
            transformer: &cfg.transformer,
        };
        let model = build_model(
            "fm",
            &network,
            ctx.env,
            vec![HeadSpec::forward_actions("log_edge_flow", spec.num_actions)],
            vec![],
            &optimizer,
            ctx.device,
            ctx.rng,
        )?;
        Ok(Self {
            model,
            objective: FlowMatching {
                leaf_coef: cfg.leaf_coef,
                log_reg_c: cfg.log_reg_c,
            },
            exploration: Exploration {
                epsilon: cfg.epsilon,
                temperature: cfg.temperature,
            },
            sampling_dropout: network.sampling_dropout(),
            trajectories_per_iteration: cfg.trajectories_per_iteration,
            num_actions: spec.num_actions,
            features: Vec::new(),
            out: Outputs::new(),
            grad: Outputs::new(),
            parent_children: Vec::new(),
            parent_backward: Vec::new(),
            parent_states: Vec::new(),
            parent_actions: Vec::new(),
            other_parents: Vec::new(),
            in_edges: Vec::new(),
            out_edges: Vec::new(),
            in_offsets: Vec::new(),
            out_offsets: Vec::new(),
            in_flow: Vec::new(),
            out_flow: Vec::new(),
            log_inflow: Vec::new(),
            log_outflow: Vec::new(),
            grads: ChainGrads::default(),
        })
    }

    /// The network.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Enumerates the parents of every visited state other than its predecessor on the
    /// trajectory (batched `backward_step`); they become network rows after the trajectories'
    /// states. Returns their number.
    fn other_parents(
        &mut self,
        env: &dyn Environment,
        t: &softgfn_core::Trajectories,
    ) -> Result<usize> {
        self.parent_children.clear();
        self.parent_backward.clear();
        self.other_parents.clear();
        for i in 0..t.num_trajectories() {
            let (s0, s1) = (t.state_offsets[i], t.state_offsets[i + 1]);
            for r in s0 + 1..s1 {
                let own = t.backward_actions[t.edge_offsets[i] + (r - 1 - s0)];
                let first = self.parent_backward.len();
                for (b, &valid) in t.backward_mask(r).iter().enumerate() {
                    if valid && b as u32 != own {
                        self.parent_children.extend_from_slice(t.state(r));
                        self.parent_backward.push(b as u32);
                    }
                }
                self.other_parents.push((first, self.parent_backward.len()));
            }
        }
        let n = self.parent_backward.len();
        self.parent_states.resize(n * env.spec().state_width, 0);
        self.parent_actions.resize(n, 0);
        if n > 0 {
            env.backward_step(
                &self.parent_children,
                &self.parent_backward,
                &mut self.parent_states,
                &mut self.parent_actions,
            )?;
        }
        Ok(n)
    }

    /// Lists, per edge, the in-edges and out-edges of its target node as (network row, action).
    fn edge_targets(&mut self, t: &softgfn_core::Trajectories) {
        let base = t.num_states();
        self.in_edges.clear();
        self.out_edges.clear();
        self.in_offsets.clear();
        self.out_offsets.clear();
        self.in_offsets.push(0);
        self.out_offsets.push(0);
        let mut visited = 0;
        for i in 0..t.num_trajectories() {
            let (s0, e0, e1) = (t.state_offsets[i], t.edge_offsets[i], t.edge_offsets[i + 1]);
            for e in e0..e1 {
                let src = s0 + (e - e0);
                self.in_edges.push((src, t.actions[e]));
                if !t.is_exit_edge(e) {
                    // The target is the next state: every other parent flows in too.
                    let (p0, p1) = self.other_parents[visited];
                    visited += 1;
                    self.in_edges
                        .extend((p0..p1).map(|p| (base + p, self.parent_actions[p])));
                    if e + 1 < e1 {
                        let tgt = src + 1;
                        self.out_edges.extend(
                            t.forward_mask(tgt)
                                .iter()
                                .enumerate()
                                .filter(|(_, valid)| **valid)
                                .map(|(a, _)| (tgt, a as u32)),
                        );
                    }
                }
                self.in_offsets.push(self.in_edges.len());
                self.out_offsets.push(self.out_edges.len());
            }
        }
    }
}

/// Reads the edge flows of `edges` from the head, writes `log sum exp` of each range into
/// `log_total` and leaves the softmax weights of each range in `flow`.
fn aggregate(
    head: &[f32],
    na: usize,
    edges: &[(usize, u32)],
    offsets: &[usize],
    flow: &mut Vec<f64>,
    log_total: &mut Vec<f64>,
) {
    flow.clear();
    flow.extend(
        edges
            .iter()
            .map(|&(r, a)| f64::from(head[r * na + a as usize])),
    );
    log_total.clear();
    for w in offsets.windows(2) {
        let range = &mut flow[w[0]..w[1]];
        let total = logsumexp(range);
        for x in range.iter_mut() {
            *x = (*x - total).exp();
        }
        log_total.push(total);
    }
}

/// Adds `grad[k] * weight` onto the head gradient of every edge of range `k`.
fn scatter(
    grad_head: &mut [f32],
    na: usize,
    edges: &[(usize, u32)],
    offsets: &[usize],
    weights: &[f64],
    grad: &[f64],
) {
    for (k, w) in offsets.windows(2).enumerate() {
        for j in w[0]..w[1] {
            let (r, a) = edges[j];
            grad_head[r * na + a as usize] += (grad[k] * weights[j]) as f32;
        }
    }
}

impl ForwardPolicy for FlowMatchingAlgorithm {
    fn policy_logits(&mut self, features: &[f32], rows: usize, out: &mut [f32]) -> Result<()> {
        self.model.forward(features, rows, &mut self.out)?;
        out.copy_from_slice(&self.out.head(0)[..rows * self.num_actions]);
        Ok(())
    }

    fn sampling_logits(
        &mut self,
        features: &[f32],
        rows: usize,
        out: &mut [f32],
        rng: &mut Rng,
    ) -> Result<()> {
        if !self.sampling_dropout {
            return self.policy_logits(features, rows, out);
        }
        self.model
            .forward_dropout(features, rows, &mut self.out, rng)?;
        out.copy_from_slice(&self.out.head(0)[..rows * self.num_actions]);
        Ok(())
    }
}

impl Algorithm for FlowMatchingAlgorithm {
    fn name(&self) -> &str {
        "fm"
    }

    fn exploration(&self) -> Exploration {
        self.exploration
    }

    fn trajectories_per_iteration(&self) -> usize {
        self.trajectories_per_iteration
    }

    fn update(&mut self, ctx: &mut UpdateContext<'_>) -> Result<UpdateStats> {
        let t = ctx.trajectories;
        let env = ctx.env;
        let extra = self.other_parents(env, t)?;
        self.edge_targets(t);
        let fd = env.spec().feature_dim;
        let rows = t.num_states() + extra;
        self.features.clear();
        self.features.extend_from_slice(&t.features);
        self.features.resize(rows * fd, 0.0);
        if extra > 0 {
            env.encode(
                &self.parent_states,
                &mut self.features[t.num_states() * fd..],
            )?;
        }
        self.model
            .forward_train(&self.features, rows, &mut self.out, ctx.rng)?;
        let na = self.num_actions;
        let head = self.out.head(0);
        aggregate(
            head,
            na,
            &self.in_edges,
            &self.in_offsets,
            &mut self.in_flow,
            &mut self.log_inflow,
        );
        aggregate(
            head,
            na,
            &self.out_edges,
            &self.out_offsets,
            &mut self.out_flow,
            &mut self.log_outflow,
        );
        let batch = ChainBatch {
            edge_offsets: &t.edge_offsets,
            log_pf: &[],
            log_pb: &[],
            log_flow: &[],
            log_reward: &t.log_rewards,
            log_z: 0.0,
            log_inflow: &self.log_inflow,
            log_outflow: &self.log_outflow,
        };
        let loss = self.objective.loss_and_grad(&batch, &mut self.grads);
        let dims = self.model.head_dims();
        self.grad.reset(rows, &dims);
        let g = self.grad.head_mut(0);
        scatter(
            g,
            na,
            &self.in_edges,
            &self.in_offsets,
            &self.in_flow,
            &self.grads.log_inflow,
        );
        scatter(
            g,
            na,
            &self.out_edges,
            &self.out_offsets,
            &self.out_flow,
            &self.grads.log_outflow,
        );
        self.model.backward(&self.grad, &[])?;
        let grad_norm = self.model.step()?;
        Ok(UpdateStats {
            loss,
            grad_norm: f64::from(grad_norm),
        })
    }

    fn log_z_estimate(&mut self, env: &dyn Environment) -> Result<f64> {
        let (feats, mask) = initial_inputs(env)?;
        self.model.forward(&feats, 1, &mut self.out)?;
        let flows: Vec<f64> = self
            .out
            .head(0)
            .iter()
            .zip(&mask)
            .filter(|(_, valid)| **valid)
            .map(|(&f, _)| f64::from(f))
            .collect();
        Ok(logsumexp(&flows))
    }

    fn save(&self, dir: &Path) -> Result<()> {
        Ok(self.model.save_safetensors(&dir.join(MODEL_FILE))?)
    }

    fn load(&mut self, dir: &Path) -> Result<()> {
        Ok(self.model.load_safetensors(&dir.join(MODEL_FILE))?)
    }

    fn state(&self) -> Result<AlgorithmState> {
        let (tensors, steps) = model_tensors("policy", &self.model);
        Ok(AlgorithmState {
            tensors,
            bytes: encode_state("fm", &steps)?,
        })
    }

    fn restore(&mut self, state: AlgorithmState) -> Result<()> {
        let steps: Vec<(String, u64)> = decode_state("fm", &state.bytes)?;
        restore_model("policy", &mut self.model, &state.tensors, &steps)
    }
}

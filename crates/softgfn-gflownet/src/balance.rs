//! The algorithm shared by every balance objective: a network (MLP or transformer) with a forward-logit head, an
//! optional backward-logit head (learned `P_B` on the tied torso), an optional `log F` head and
//! an optional learned scalar `log Z`; on-policy updates from the sampled trajectories.

use std::path::Path;

use softgfn_core::math::{masked_softmax, softmax_backward_one};
use softgfn_core::{BackwardPolicyKind, Environment, Rng};
use softgfn_nn::{AdamConfig, HeadSpec, Model, OptimizerSpec, Outputs, ScalarSpec};
use softgfn_train::algorithm::{
    check, decode_state, encode_state, initial_inputs, model_tensors, restore_model,
};
use softgfn_train::network::{NetworkChoice, build_model};
use softgfn_train::{
    Algorithm, AlgorithmState, BackwardLogProbs, BuildContext, ChainBatch, ChainGrads, Exploration,
    ForwardPolicy, Objective, Result, UpdateContext, UpdateStats,
};

/// Model file written by [`Algorithm::save`].
pub const MODEL_FILE: &str = "model.safetensors";

/// Everything a balance algorithm is built from (the common part of the TB/DB/SubTB configs).
#[derive(Debug)]
pub struct BalanceSetup<'a> {
    /// Registered algorithm name.
    pub name: &'static str,
    /// The objective.
    pub objective: Box<dyn Objective>,
    /// Adam learning rate of the network.
    pub learning_rate: f64,
    /// Adam learning rate of `log Z` (when the objective reads it).
    pub log_z_learning_rate: f64,
    /// Initial `log Z`.
    pub log_z_init: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// Trajectories per iteration.
    pub trajectories_per_iteration: usize,
    /// Backward policy.
    pub backward_policy: BackwardPolicyKind,
    /// The network.
    pub network: NetworkChoice<'a>,
    /// Exploration of the sampler.
    pub exploration: Exploration,
}

impl BalanceSetup<'_> {
    /// Checks the settings every balance algorithm shares, for its configuration's
    /// `validate` (the workspace's TB, DB and SubTB, and objectives written outside it): the
    /// network sizes (the transformer's included), the learning rate, the weight decay, the
    /// batch, the exploration, and, when the objective reads `log Z`, its learning rate and
    /// initial value. Each error names the `algo.*` key.
    pub fn validate(&self) -> Result<()> {
        self.network.transformer.validate()?;
        crate::config::validate_common(
            self.learning_rate,
            self.weight_decay,
            self.trajectories_per_iteration,
            self.network.hidden_dim,
            self.network.hidden_layers,
            self.exploration.epsilon,
            self.exploration.temperature,
        )?;
        if self.objective.needs().log_z {
            check::positive("algo.log_z_learning_rate", self.log_z_learning_rate)?;
            check::finite("algo.log_z_init", self.log_z_init)?;
        }
        Ok(())
    }
}

/// A GFlowNet trained by a balance objective.
#[derive(Debug)]
pub struct BalanceAlgorithm {
    name: &'static str,
    model: Model,
    objective: Box<dyn Objective>,
    backward: BackwardLogProbs,
    head_flow: Option<usize>,
    scalar_log_z: Option<usize>,
    exploration: Exploration,
    /// Sample training trajectories with train-mode dropout (`algo.transformer.sampling_dropout`).
    sampling_dropout: bool,
    trajectories_per_iteration: usize,
    num_actions: usize,
    num_backward_actions: usize,
    out: Outputs,
    grad: Outputs,
    /// Forward probabilities of every state of the batch, `rows x num_actions`.
    prob_rows: Vec<f64>,
    /// Log-normaliser of every state's forward logits.
    log_norms: Vec<f64>,
    log_pf: Vec<f64>,
    log_pb: Vec<f64>,
    log_flow: Vec<f64>,
    grads: ChainGrads,
    /// The objective's own `log Z` estimate of the last batch (NaN before the first update).
    batch_log_z: f64,
}

impl BalanceAlgorithm {
    /// Builds the network for `ctx.env` and the optimizer.
    pub fn new(setup: BalanceSetup<'_>, ctx: &mut BuildContext<'_>) -> Result<Self> {
        let spec = ctx.env.spec();
        let needs = setup.objective.needs();
        let mut heads = vec![HeadSpec::forward_actions("forward", spec.num_actions)];
        let head_backward = if setup.backward_policy == BackwardPolicyKind::Learned {
            heads.push(HeadSpec::backward_actions(
                "backward",
                spec.num_backward_actions,
            ));
            Some(heads.len() - 1)
        } else {
            None
        };
        let head_flow = if needs.log_flow {
            heads.push(HeadSpec::new("log_flow", 1));
            Some(heads.len() - 1)
        } else {
            None
        };
        let mut scalars = Vec::new();
        let mut group_learning_rates = Vec::new();
        let scalar_log_z = if needs.log_z {
            scalars.push(ScalarSpec::new("log_z", setup.log_z_init as f32));
            group_learning_rates
                .push(("scalar:log_z".to_string(), setup.log_z_learning_rate as f32));
            Some(0)
        } else {
            None
        };
        let optimizer = OptimizerSpec {
            adam: AdamConfig {
                learning_rate: setup.learning_rate as f32,
                weight_decay: setup.weight_decay as f32,
                ..AdamConfig::default()
            },
            group_learning_rates,
        };
        let model = build_model(
            setup.name,
            &setup.network,
            ctx.env,
            heads,
            scalars,
            &optimizer,
            ctx.device,
            ctx.rng,
        )?;
        Ok(Self {
            name: setup.name,
            model,
            objective: setup.objective,
            backward: BackwardLogProbs::new(
                setup.backward_policy,
                head_backward,
                spec.num_backward_actions,
            ),
            head_flow,
            scalar_log_z,
            exploration: setup.exploration,
            sampling_dropout: setup.network.sampling_dropout(),
            trajectories_per_iteration: setup.trajectories_per_iteration,
            num_actions: spec.num_actions,
            num_backward_actions: spec.num_backward_actions,
            out: Outputs::new(),
            grad: Outputs::new(),
            prob_rows: Vec::new(),
            log_norms: Vec::new(),
            log_pf: Vec::new(),
            log_pb: Vec::new(),
            log_flow: Vec::new(),
            grads: ChainGrads::default(),
            batch_log_z: f64::NAN,
        })
    }

    /// The network.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The network, mutably.
    pub fn model_mut(&mut self) -> &mut Model {
        &mut self.model
    }
}

impl ForwardPolicy for BalanceAlgorithm {
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

impl Algorithm for BalanceAlgorithm {
    fn name(&self) -> &str {
        self.name
    }

    fn exploration(&self) -> Exploration {
        self.exploration
    }

    fn trajectories_per_iteration(&self) -> usize {
        self.trajectories_per_iteration
    }

    fn update(&mut self, ctx: &mut UpdateContext<'_>) -> Result<UpdateStats> {
        let t = ctx.trajectories;
        let rows = t.num_states();
        let (na, nb) = (self.num_actions, self.num_backward_actions);
        self.model
            .forward_train(&t.features, rows, &mut self.out, ctx.rng)?;

        // Masked softmax of every state's forward logits (probabilities, for the gradient, and
        // the log-normaliser, for the taken actions' log-probabilities; each exponential once),
        // and the learned backward's log-softmax.
        self.prob_rows.resize(rows * na, 0.0);
        self.log_norms.resize(rows, 0.0);
        let fl = self.out.head(0);
        for r in 0..rows {
            self.log_norms[r] = masked_softmax(
                &fl[r * na..(r + 1) * na],
                t.forward_mask(r),
                1.0,
                &mut self.prob_rows[r * na..(r + 1) * na],
            );
        }
        if let Some(h) = self.backward.head() {
            self.backward
                .prepare(self.out.head(h), 0, rows, &t.backward_masks);
        }

        // Chain form of the batch.
        let edges = t.num_edges();
        self.log_pf.resize(edges, 0.0);
        self.log_pb.resize(edges, 0.0);
        self.log_flow.resize(edges, 0.0);
        for i in 0..t.num_trajectories() {
            for e in t.edge_offsets[i]..t.edge_offsets[i + 1] {
                let src = t.edge_source(i, e);
                let a = t.actions[e] as usize;
                self.log_pf[e] = f64::from(fl[src * na + a]) - self.log_norms[src];
                self.log_pb[e] = if t.is_exit_edge(e) {
                    0.0
                } else {
                    let tgt = src + 1;
                    self.backward
                        .log_prob(tgt, t.backward_mask(tgt), t.backward_actions[e])
                };
                self.log_flow[e] = match self.head_flow {
                    Some(h) => f64::from(self.out.head(h)[src]),
                    None => 0.0,
                };
            }
        }
        let log_z = self
            .scalar_log_z
            .map_or(0.0, |z| f64::from(self.model.scalar(z)));
        let batch = ChainBatch {
            edge_offsets: &t.edge_offsets,
            log_pf: &self.log_pf,
            log_pb: &self.log_pb,
            log_flow: &self.log_flow,
            log_reward: &t.log_rewards,
            log_z,
            log_inflow: &[],
            log_outflow: &[],
        };
        let loss = self.objective.loss_and_grad(&batch, &mut self.grads);
        if let Some(z) = self.objective.log_z_of_batch(&batch) {
            self.batch_log_z = z;
        }

        // Upstream gradients onto the head outputs.
        let dims = self.model.head_dims();
        self.grad.reset(rows, &dims);
        for i in 0..t.num_trajectories() {
            for e in t.edge_offsets[i]..t.edge_offsets[i + 1] {
                let src = t.edge_source(i, e);
                let a = t.actions[e] as usize;
                softmax_backward_one(
                    &self.prob_rows[src * na..(src + 1) * na],
                    t.forward_mask(src),
                    a,
                    self.grads.log_pf[e],
                    &mut self.grad.head_mut(0)[src * na..(src + 1) * na],
                );
                if let (Some(h), false) = (self.backward.head(), t.is_exit_edge(e)) {
                    let tgt = src + 1;
                    self.backward.backward(
                        tgt,
                        t.backward_mask(tgt),
                        t.backward_actions[e],
                        self.grads.log_pb[e],
                        &mut self.grad.head_mut(h)[tgt * nb..(tgt + 1) * nb],
                    );
                }
                if let Some(h) = self.head_flow {
                    self.grad.head_mut(h)[src] += self.grads.log_flow[e] as f32;
                }
            }
        }
        let scalar_grads: Vec<f32> = self
            .scalar_log_z
            .map(|_| vec![self.grads.log_z as f32])
            .unwrap_or_default();
        self.model.backward(&self.grad, &scalar_grads)?;
        let grad_norm = self.model.step()?;
        Ok(UpdateStats {
            loss,
            grad_norm: f64::from(grad_norm),
        })
    }

    fn log_z_estimate(&mut self, env: &dyn Environment) -> Result<f64> {
        if let Some(z) = self.scalar_log_z {
            return Ok(f64::from(self.model.scalar(z)));
        }
        let (feats, _) = initial_inputs(env)?;
        self.model.forward(&feats, 1, &mut self.out)?;
        Ok(match self.head_flow {
            Some(h) => f64::from(self.out.head(h)[0]),
            None => self.batch_log_z,
        })
    }

    /// The learned backward head (masked log-softmax) when `backward_policy = "learned"`, else
    /// the fixed policy (`uniform`, `tree`).
    fn backward_log_probs(
        &mut self,
        features: &[f32],
        backward_masks: &[bool],
        rows: usize,
        out: &mut [f64],
    ) -> Result<()> {
        let nb = self.num_backward_actions;
        if backward_masks.len() != rows * nb || out.len() != rows * nb {
            return Err(softgfn_core::CoreError::BufferLength {
                what: format!("backward log-probabilities of {rows} states"),
                expected: rows * nb,
                found: out.len().min(backward_masks.len()),
            }
            .into());
        }
        if let Some(h) = self.backward.head() {
            self.model.forward(features, rows, &mut self.out)?;
            self.backward
                .prepare(self.out.head(h), 0, rows, backward_masks);
        }
        for r in 0..rows {
            let mask = &backward_masks[r * nb..(r + 1) * nb];
            let row = &mut out[r * nb..(r + 1) * nb];
            self.backward.with_policy(r, |pb| pb.log_probs(mask, row));
        }
        Ok(())
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
            bytes: encode_state(self.name, &steps)?,
        })
    }

    fn restore(&mut self, state: AlgorithmState) -> Result<()> {
        let steps: Vec<(String, u64)> = decode_state(self.name, &state.bytes)?;
        restore_model("policy", &mut self.model, &state.tensors, &steps)
    }
}

//! The [`Algorithm`] seam that the trainer, the CLI and the harness drive, its serializable
//! [`AlgorithmConfig`] (typetag, tag `name`), and the static algorithm registry.

use std::path::Path;

use softgfn_core::{Environment, Rng, Trajectories};
use softgfn_nn::{Device, Model, NamedTensor, OptimizerState};

use crate::error::{Result, TrainError};
use crate::sampler::{Exploration, ForwardPolicy};

/// What an algorithm needs to build itself.
pub struct BuildContext<'a> {
    /// The environment it will train on.
    pub env: &'a dyn Environment,
    /// Where its tensors live.
    pub device: Device,
    /// Generator for parameter initialisation.
    pub rng: &'a mut Rng,
}

/// What one update sees.
pub struct UpdateContext<'a> {
    /// The environment.
    pub env: &'a dyn Environment,
    /// The trajectories sampled this iteration with the behaviour policy.
    pub trajectories: &'a Trajectories,
    /// Iteration number (0-based) of this update.
    pub iteration: u64,
    /// Generator for algorithm-internal randomness (replay sampling, dropout).
    pub rng: &'a mut Rng,
}

/// Statistics of one update.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct UpdateStats {
    /// Training loss of the update (NaN when no gradient step was taken).
    pub loss: f64,
    /// Global gradient norm before the step (NaN when no step).
    pub grad_norm: f64,
}

/// A training algorithm: a forward policy plus an update rule.
///
/// The trainer samples `trajectories_per_iteration()` trajectories with the algorithm's policy
/// (plus its exploration), then calls [`Algorithm::update`] with them.
pub trait Algorithm: ForwardPolicy + Send {
    /// Registered name (`tb`, `db`, ...).
    fn name(&self) -> &str;

    /// Exploration the sampler applies to this algorithm's policy.
    fn exploration(&self) -> Exploration;

    /// Trajectories to sample per iteration.
    fn trajectories_per_iteration(&self) -> usize;

    /// One training update from freshly sampled trajectories.
    fn update(&mut self, ctx: &mut UpdateContext<'_>) -> Result<UpdateStats>;

    /// The algorithm's own estimate of `log Z` (TB: the learned scalar; flow-based: `log F(s0)`;
    /// soft RL: `V(s0)`).
    fn log_z_estimate(&mut self, env: &dyn Environment) -> Result<f64>;

    /// `log P_B(b | s)` of every backward action of `rows` states given by their features and
    /// backward masks (`out` has `rows * num_backward_actions` values, `-inf` where invalid): the
    /// backward policy the algorithm trains with, used by the `log Z` and `log p(x)`
    /// estimators. The default is uniform over the valid backward actions; an algorithm with
    /// a learned or another fixed `P_B` overrides it.
    fn backward_log_probs(
        &mut self,
        features: &[f32],
        backward_masks: &[bool],
        rows: usize,
        out: &mut [f64],
    ) -> Result<()> {
        let _ = features;
        uniform_backward_log_probs(backward_masks, rows, out)
    }

    /// Writes the learned parameters into `dir` (e.g. `model.safetensors`).
    fn save(&self, dir: &Path) -> Result<()>;

    /// Reads parameters written by [`Algorithm::save`].
    fn load(&mut self, dir: &Path) -> Result<()>;

    /// The complete training state (parameters, target networks, optimizer moments and step
    /// counts, replay contents and priorities, counters), for checkpoints.
    fn state(&self) -> Result<AlgorithmState>;

    /// Restores a state returned by [`Algorithm::state`] of an identically configured algorithm.
    fn restore(&mut self, state: AlgorithmState) -> Result<()>;
}

/// `log P_B` uniform over the valid backward actions of `rows` states (the default of
/// [`Algorithm::backward_log_probs`]).
///
/// # Errors
/// Mask and output lengths that do not match `rows`.
pub fn uniform_backward_log_probs(
    backward_masks: &[bool],
    rows: usize,
    out: &mut [f64],
) -> Result<()> {
    if rows == 0 {
        return Ok(());
    }
    if backward_masks.len() != out.len() || !backward_masks.len().is_multiple_of(rows) {
        return Err(softgfn_core::CoreError::BufferLength {
            what: format!("backward log-probabilities of {rows} states"),
            expected: backward_masks.len(),
            found: out.len(),
        }
        .into());
    }
    let nb = backward_masks.len() / rows;
    if nb == 0 {
        return Ok(());
    }
    for (m, o) in backward_masks
        .chunks_exact(nb)
        .zip(out.chunks_exact_mut(nb))
    {
        softgfn_core::BackwardPolicy::log_probs(&softgfn_core::UniformBackward, m, o);
    }
    Ok(())
}

/// The complete training state of an algorithm.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AlgorithmState {
    /// Tensors by unique name (see [`model_tensors`]).
    pub tensors: Vec<NamedTensor>,
    /// Everything else, encoded by the algorithm (postcard).
    pub bytes: Vec<u8>,
}

/// A model's parameters and Adam moments as tensors named `PREFIX.param.NAME` and
/// `PREFIX.opt.NAME`, plus its per-group step counts.
pub fn model_tensors(prefix: &str, m: &Model) -> (Vec<NamedTensor>, Vec<(String, u64)>) {
    let mut out = Vec::new();
    for mut t in m.parameters() {
        t.name = format!("{prefix}.param.{}", t.name);
        out.push(t);
    }
    let opt = m.optimizer_state();
    for mut t in opt.tensors {
        t.name = format!("{prefix}.opt.{}", t.name);
        out.push(t);
    }
    (out, opt.steps)
}

/// Restores what [`model_tensors`] returned.
pub fn restore_model(
    prefix: &str,
    m: &mut Model,
    tensors: &[NamedTensor],
    steps: &[(String, u64)],
) -> Result<()> {
    let pick = |kind: &str| -> Vec<NamedTensor> {
        let p = format!("{prefix}.{kind}.");
        tensors
            .iter()
            .filter_map(|t| {
                t.name.strip_prefix(&p).map(|n| NamedTensor {
                    name: n.to_string(),
                    shape: t.shape.clone(),
                    data: t.data.clone(),
                })
            })
            .collect()
    };
    m.set_parameters(&pick("param"))?;
    m.set_optimizer_state(&OptimizerState {
        tensors: pick("opt"),
        steps: steps.to_vec(),
    })?;
    Ok(())
}

/// Encodes algorithm-specific state with postcard.
pub fn encode_state<T: serde::Serialize>(algo: &str, value: &T) -> Result<Vec<u8>> {
    postcard::to_stdvec(value).map_err(|e| TrainError::Checkpoint {
        path: algo.into(),
        message: format!("cannot encode the state: {e}"),
    })
}

/// Decodes what [`encode_state`] wrote.
pub fn decode_state<T: serde::de::DeserializeOwned>(algo: &str, bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|e| TrainError::Checkpoint {
        path: algo.into(),
        message: format!("the saved state of `{algo}` does not decode ({e}); it was written by another algorithm or version"),
    })
}

/// Serializable configuration of an algorithm, stored under `[algo]` with its `name` as tag.
///
/// Implementations are `Default + Serialize + Deserialize` with `deny_unknown_fields`, register
/// with `#[typetag::serde(name = "...")]` and with [`AlgorithmRegistration`].
#[typetag::serde(tag = "name")]
pub trait AlgorithmConfig: std::fmt::Debug + Send + Sync {
    /// Checks every field; errors name the field (`algo.<field>`), the value and the range.
    fn validate(&self) -> Result<()>;

    /// Builds the algorithm for an environment (after `validate`).
    fn build(&self, ctx: &mut BuildContext<'_>) -> Result<Box<dyn Algorithm>>;

    /// A boxed copy.
    fn clone_box(&self) -> Box<dyn AlgorithmConfig>;
}

impl Clone for Box<dyn AlgorithmConfig> {
    fn clone(&self) -> Self {
        self.clone_box()
    }
}

/// One registered algorithm.
pub struct AlgorithmRegistration {
    /// Stable name, equal to its typetag (`algo.name`).
    pub name: &'static str,
    /// One-line summary.
    pub summary: &'static str,
    /// Crate it comes from.
    pub source: &'static str,
    /// Its default configuration.
    pub default_config: fn() -> Box<dyn AlgorithmConfig>,
}

inventory::collect!(AlgorithmRegistration);

/// All registered algorithms sorted by name; duplicates are an error naming both sources.
pub fn registered_algorithms() -> Result<Vec<&'static AlgorithmRegistration>> {
    let mut all: Vec<&'static AlgorithmRegistration> = inventory::iter::<AlgorithmRegistration>
        .into_iter()
        .collect();
    all.sort_by(|a, b| a.name.cmp(b.name).then(a.source.cmp(b.source)));
    for pair in all.windows(2) {
        if pair[0].name == pair[1].name {
            return Err(TrainError::DuplicateAlgorithm {
                name: pair[0].name.into(),
                first: pair[0].source.into(),
                second: pair[1].source.into(),
            });
        }
    }
    Ok(all)
}

/// The registration of `name`, or an error listing the valid names.
pub fn find_algorithm(name: &str) -> Result<&'static AlgorithmRegistration> {
    let all = registered_algorithms()?;
    all.iter()
        .find(|r| r.name == name)
        .copied()
        .ok_or_else(|| TrainError::UnknownAlgorithm {
            name: name.into(),
            available: if all.is_empty() {
                "(none linked)".into()
            } else {
                all.iter().map(|r| r.name).collect::<Vec<_>>().join(", ")
            },
        })
}

/// Validation helpers shared by algorithm configs.
pub mod check {
    use crate::error::{Result, TrainError};

    /// `value` must be finite and > 0.
    pub fn positive(field: &str, value: f64) -> Result<()> {
        if value.is_finite() && value > 0.0 {
            Ok(())
        } else {
            Err(TrainError::invalid(field, value, "a finite number > 0"))
        }
    }

    /// `value` must be finite and >= 0.
    pub fn non_negative(field: &str, value: f64) -> Result<()> {
        if value.is_finite() && value >= 0.0 {
            Ok(())
        } else {
            Err(TrainError::invalid(field, value, "a finite number >= 0"))
        }
    }

    /// `value` must lie in `[0, 1]`.
    pub fn probability(field: &str, value: f64) -> Result<()> {
        if (0.0..=1.0).contains(&value) {
            Ok(())
        } else {
            Err(TrainError::invalid(field, value, "a number in [0, 1]"))
        }
    }

    /// `value` must be finite.
    pub fn finite(field: &str, value: f64) -> Result<()> {
        if value.is_finite() {
            Ok(())
        } else {
            Err(TrainError::invalid(field, value, "a finite number"))
        }
    }

    /// `value` must lie in `min..=max` (upper bounds keep absurd sizes from aborting on allocation).
    pub fn in_range(field: &str, value: usize, min: usize, max: usize) -> Result<()> {
        if (min..=max).contains(&value) {
            Ok(())
        } else {
            Err(TrainError::invalid(
                field,
                value,
                &format!("an integer in {min}..={max}"),
            ))
        }
    }

    /// Largest hidden width accepted.
    pub const MAX_HIDDEN_DIM: usize = 1 << 16;
    /// Largest number of hidden layers accepted.
    pub const MAX_HIDDEN_LAYERS: usize = 64;
    /// Largest number of trajectories per iteration or replay batch accepted.
    pub const MAX_BATCH: usize = 1 << 20;

    /// `value` must be at least `min`.
    pub fn at_least(field: &str, value: usize, min: usize) -> Result<()> {
        if value >= min {
            Ok(())
        } else {
            Err(TrainError::invalid(
                field,
                value,
                &format!("an integer >= {min}"),
            ))
        }
    }
}

/// Features and forward mask of `s0` (for `log Z` estimates such as `log F(s0)` or `V(s0)`).
pub fn initial_inputs(env: &dyn Environment) -> Result<(Vec<f32>, Vec<bool>)> {
    let spec = env.spec();
    let mut s0 = vec![0; spec.state_width];
    env.initial_state(&mut s0);
    let mut feats = vec![0f32; spec.feature_dim];
    env.encode(&s0, &mut feats)?;
    let mut mask = vec![false; spec.num_actions];
    env.forward_masks(&s0, &mut mask)?;
    Ok((feats, mask))
}

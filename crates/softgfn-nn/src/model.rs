//! The public, non-generic [`Model`] and the object-safe backend trait behind it.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use crate::backend::NetBackend;
use crate::params::ParamMeta;
use crate::{
    Device, GraphSpec, MlpSpec, NamedTensor, NetSpec, NnError, OptimizerSpec, OptimizerState,
    Outputs, TransformerSpec,
};

/// What a network implementation offers; one implementation per (architecture, device type).
///
/// This is object safe and non-generic so that [`Model`] can hide the dfdx device type.
pub(crate) trait Backend: Send + Sync + fmt::Debug {
    fn spec(&self) -> &NetSpec;
    fn device(&self) -> Device;
    fn head_dims(&self) -> &[usize];
    fn forward(&self, input: &[f32], rows: usize, out: &mut Outputs) -> Result<(), NnError>;
    fn forward_dropout(
        &self,
        input: &[f32],
        rows: usize,
        out: &mut Outputs,
        rng: &mut dyn rand::RngCore,
    ) -> Result<(), NnError>;
    fn forward_train(
        &mut self,
        input: &[f32],
        rows: usize,
        out: &mut Outputs,
        rng: &mut dyn rand::RngCore,
    ) -> Result<(), NnError>;
    fn backward(&mut self, head_grads: &Outputs, scalar_grads: &[f32]) -> Result<(), NnError>;
    fn step(&mut self) -> Result<f32, NnError>;
    fn scalars(&self) -> &[f32];
    fn set_scalar(&mut self, i: usize, value: f32);
    fn param_meta(&self) -> &[ParamMeta];
    fn parameters(&self) -> Vec<NamedTensor>;
    fn set_parameters(&mut self, params: &[NamedTensor]) -> Result<(), NnError>;
    fn gradients(&self) -> Vec<NamedTensor>;
    fn optimizer_state(&self) -> OptimizerState;
    fn set_optimizer_state(&mut self, state: &OptimizerState) -> Result<(), NnError>;
    fn clone_fresh(&self) -> Result<Box<dyn Backend>, NnError>;
    fn copy_from(&mut self, source: &dyn Backend) -> Result<(), NnError>;
    fn polyak_from(&mut self, source: &dyn Backend, tau: f32) -> Result<(), NnError>;
    fn set_reference_kernels(&mut self, on: bool) -> Result<(), NnError>;
    fn uses_host_kernels(&self) -> bool;
    fn reused_rows(&self) -> u64;
    fn set_row_reuse(&mut self, on: bool);
    fn as_any(&self) -> &dyn Any;
}

/// A trainable network (an [`MlpSpec`] MLP, a [`TransformerSpec`] transformer or a [`GraphSpec`]
/// graph network) with its Adam optimizer.
///
/// The tensor framework and device are hidden inside; the API speaks host `f32` slices.
/// A training iteration is [`forward_train`](Model::forward_train) → host-side loss and its
/// gradient w.r.t. every head output → [`backward`](Model::backward) (may be repeated to
/// accumulate) → [`step`](Model::step).
///
/// `Model` is `Send` and `Sync`; it is deliberately not `Clone` (use
/// [`clone_model`](Model::clone_model), which gives the copy a fresh optimizer).
#[derive(Debug)]
pub struct Model {
    backend: Box<dyn Backend>,
}

impl Model {
    /// Builds an MLP with PyTorch-default initialization drawn from `rng`: weights and biases of a
    /// layer with `fan_in` inputs are uniform in `[-1/sqrt(fan_in), 1/sqrt(fan_in))`, drawn layer by
    /// layer (torso, then heads in order; weight row-major `[in, out]` before bias). Scalars start
    /// at their `init`. The same seed gives bitwise the same parameters.
    ///
    /// # Errors
    /// [`NnError::InvalidSpec`] for zero sizes, no heads, duplicate names or bad Adam settings;
    /// [`NnError::UnknownGroup`] for a learning-rate override of a group that does not exist;
    /// [`NnError::DeviceUnavailable`] for a device this build cannot use.
    pub fn mlp(
        spec: &MlpSpec,
        optimizer: &OptimizerSpec,
        device: Device,
        rng: &mut dyn rand::RngCore,
    ) -> Result<Model, NnError> {
        Self::new(&NetSpec::Mlp(spec.clone()), optimizer, device, rng)
    }

    /// Builds a transformer encoder (see [`TransformerSpec`] for the architecture) with
    /// PyTorch-default initialization drawn from `rng`: linear layers uniform in
    /// `[-1/sqrt(fan_in), 1/sqrt(fan_in))`, attention projections Xavier-uniform with zero biases
    /// (the output projection keeps the linear default for its weight and a zero bias), the token
    /// embedding N(0, 1), LayerNorm weight 1 and bias 0. The same seed gives bitwise the same
    /// parameters.
    ///
    /// # Errors
    /// As [`Model::mlp`].
    pub fn transformer(
        spec: &TransformerSpec,
        optimizer: &OptimizerSpec,
        device: Device,
        rng: &mut dyn rand::RngCore,
    ) -> Result<Model, NnError> {
        Self::new(&NetSpec::Transformer(spec.clone()), optimizer, device, rng)
    }

    /// Builds the graph network (see [`GraphSpec`]) with PyTorch-default initialization drawn
    /// from `rng`: embeddings N(0, 1), linear layers and the GRU uniform in
    /// `[-1/sqrt(fan_in), 1/sqrt(fan_in))` (fan-in `2 * width` for both halves of the stem
    /// readout's first layer). The same seed gives bitwise the same parameters.
    ///
    /// # Errors
    /// As [`Model::mlp`].
    pub fn graph(
        spec: &GraphSpec,
        optimizer: &OptimizerSpec,
        device: Device,
        rng: &mut dyn rand::RngCore,
    ) -> Result<Model, NnError> {
        Self::new(&NetSpec::Graph(spec.clone()), optimizer, device, rng)
    }

    /// Builds any architecture ([`Model::mlp`], [`Model::transformer`], [`Model::graph`]).
    ///
    /// # Errors
    /// As [`Model::mlp`].
    pub fn new(
        spec: &NetSpec,
        optimizer: &OptimizerSpec,
        device: Device,
        rng: &mut dyn rand::RngCore,
    ) -> Result<Model, NnError> {
        spec.validate()?;
        optimizer.adam.validate()?;
        let layout = match spec {
            NetSpec::Mlp(s) => crate::mlp::layout(s, optimizer, rng)?,
            NetSpec::Transformer(s) => crate::transformer::layout(s, optimizer, rng)?,
            NetSpec::Graph(s) => crate::graph::layout(s, optimizer, rng)?,
        };
        device.check_available()?;
        let backend = crate::device::with_device!(device, dev => {
            Box::new(NetBackend::new(dev, device, spec, &optimizer.adam, layout)?)
                as Box<dyn Backend>
        });
        Ok(Model { backend })
    }

    /// The architecture this model was built from.
    pub fn spec(&self) -> &NetSpec {
        self.backend.spec()
    }

    /// Where the tensors live.
    pub fn device(&self) -> Device {
        self.backend.device()
    }

    /// Output width of every head, in spec order.
    pub fn head_dims(&self) -> Vec<usize> {
        self.backend.head_dims().to_vec()
    }

    /// Inference forward (no tape): `input` is row-major `rows x input_dim`; `out` is resized to
    /// `rows` rows and filled with every head's output.
    ///
    /// # Errors
    /// [`NnError::Shape`] when `input.len() != rows * input_dim`.
    pub fn forward(&self, input: &[f32], rows: usize, out: &mut Outputs) -> Result<(), NnError> {
        self.backend.forward(input, rows, out)
    }

    /// Inference forward (no tape) in training mode: like [`forward`](Model::forward) but with
    /// dropout masks drawn from `rng` as [`forward_train`](Model::forward_train) draws them (the
    /// same draws for the same `rng` state). Architectures without dropout, and a transformer
    /// with dropout 0, draw nothing and give exactly [`forward`](Model::forward)'s outputs.
    /// Used to sample training trajectories with train-mode dropout.
    ///
    /// # Errors
    /// [`NnError::Shape`] when `input.len() != rows * input_dim`.
    pub fn forward_dropout(
        &self,
        input: &[f32],
        rows: usize,
        out: &mut Outputs,
        rng: &mut dyn rand::RngCore,
    ) -> Result<(), NnError> {
        self.backend.forward_dropout(input, rows, out, rng)
    }

    /// Training forward: like [`forward`](Model::forward) but records the tape; must be followed
    /// by [`backward`](Model::backward). A new `forward_train` replaces a pending one, and any
    /// parameter update (step, set/copy/Polyak/load) discards it.
    ///
    /// `rng` draws the dropout masks of architectures that have dropout (the transformer); the
    /// MLP does not use it.
    ///
    /// On [`Device::Cpu`], for an MLP, when neither pass has dropout, rows that an inference
    /// [`forward`](Model::forward) of this model computed since its parameters last changed are
    /// taken from that forward instead of being computed again (bitwise the same values; on-policy
    /// training forwards the states the sampler already ran). The activations kept for this are
    /// bounded (twice the rows of the largest training forward, at most 64 MiB per model) and
    /// only kept while training forwards use them.
    ///
    /// # Errors
    /// [`NnError::Shape`] when `input.len() != rows * input_dim`.
    pub fn forward_train(
        &mut self,
        input: &[f32],
        rows: usize,
        out: &mut Outputs,
        rng: &mut dyn rand::RngCore,
    ) -> Result<(), NnError> {
        self.backend.forward_train(input, rows, out, rng)
    }

    /// Backprop of upstream gradients: `head_grads` holds d loss / d output with the shapes of
    /// the last `forward_train`'s outputs, `scalar_grads` d loss / d scalar (one per scalar).
    /// Adds the resulting parameter gradients to the pending ones and consumes the pending
    /// forward.
    ///
    /// # Errors
    /// [`NnError::NoPendingForward`] without a pending `forward_train`; [`NnError::Shape`] when
    /// the gradient shapes do not match (the pending forward is then kept).
    pub fn backward(&mut self, head_grads: &Outputs, scalar_grads: &[f32]) -> Result<(), NnError> {
        self.backend.backward(head_grads, scalar_grads)
    }

    /// One Adam step with the pending gradients, then clears them. Returns the global L2 norm of
    /// the gradient before the step (before weight decay). Without pending gradients nothing
    /// changes and 0 is returned (as PyTorch skips parameters whose gradient is `None`).
    ///
    /// # Errors
    /// [`NnError::Backend`] if the tensor backend fails.
    pub fn step(&mut self) -> Result<f32, NnError> {
        self.backend.step()
    }

    /// Number of learned scalars.
    pub fn num_scalars(&self) -> usize {
        self.backend.scalars().len()
    }

    /// Current value of scalar `i`.
    ///
    /// # Panics
    /// If `i >= num_scalars()`.
    pub fn scalar(&self, i: usize) -> f32 {
        self.backend.scalars()[i]
    }

    /// Overwrites scalar `i` (the optimizer state is kept).
    ///
    /// # Panics
    /// If `i >= num_scalars()`.
    pub fn set_scalar(&mut self, i: usize, value: f32) {
        self.backend.set_scalar(i, value);
    }

    /// Total number of `f32` parameters, scalars included.
    pub fn num_parameters(&self) -> usize {
        self.backend.param_meta().iter().map(ParamMeta::numel).sum()
    }

    /// Host copies of all parameters: `torso.<i>.weight` (`[in, out]`), `torso.<i>.bias`,
    /// `head.<name>.weight`, `head.<name>.bias`, `scalar.<name>` (`[1]`), in that order.
    pub fn parameters(&self) -> Vec<NamedTensor> {
        self.backend.parameters()
    }

    /// Replaces all parameters by name. Nothing changes unless every parameter is present exactly
    /// once with the right shape and no unknown name is given.
    ///
    /// # Errors
    /// [`NnError::Parameter`] naming a missing, duplicate or unknown tensor; [`NnError::Shape`]
    /// naming a mis-shaped one.
    pub fn set_parameters(&mut self, params: &[NamedTensor]) -> Result<(), NnError> {
        self.backend.set_parameters(params)
    }

    /// The pending (accumulated, not yet stepped) gradients, named like
    /// [`parameters`](Model::parameters); zeros when nothing is pending. For tests and debugging.
    #[doc(hidden)]
    pub fn gradients(&self) -> Vec<NamedTensor> {
        self.backend.gradients()
    }

    /// Optimizer state for checkpoints: `adam.m.<param>` and `adam.v.<param>` for every
    /// parameter plus the step count of every group.
    pub fn optimizer_state(&self) -> OptimizerState {
        self.backend.optimizer_state()
    }

    /// Restores state from [`optimizer_state`](Model::optimizer_state); validates everything
    /// before changing anything.
    ///
    /// # Errors
    /// [`NnError::Parameter`] / [`NnError::Shape`] for a missing, unknown or mis-shaped tensor,
    /// [`NnError::UnknownGroup`] or [`NnError::InvalidArgument`] for bad step counts.
    pub fn set_optimizer_state(&mut self, state: &OptimizerState) -> Result<(), NnError> {
        self.backend.set_optimizer_state(state)
    }

    /// A copy with the same parameters and a fresh optimizer (for target networks).
    ///
    /// # Panics
    /// Only if the tensor backend cannot allocate the copy (out of memory).
    pub fn clone_model(&self) -> Model {
        match self.backend.clone_fresh() {
            Ok(backend) => Model { backend },
            Err(e) => panic!("clone_model: cannot allocate the copy: {e}"),
        }
    }

    /// Hard copy of the parameters of `source` (the optimizer state of `self` is kept).
    ///
    /// # Errors
    /// [`NnError::Incompatible`] unless both have the same parameter names and shapes.
    pub fn copy_from(&mut self, source: &Model) -> Result<(), NnError> {
        self.backend.copy_from(source.backend.as_ref())
    }

    /// Polyak averaging: `theta = (1 - tau) * theta + tau * theta_source` for every parameter.
    ///
    /// # Errors
    /// [`NnError::InvalidArgument`] for `tau` outside `[0, 1]`; [`NnError::Incompatible`] unless
    /// both have the same parameter names and shapes.
    pub fn polyak_from(&mut self, source: &Model, tau: f32) -> Result<(), NnError> {
        self.backend.polyak_from(source.backend.as_ref(), tau)
    }

    /// Runs the reference (dfdx) kernels instead of the host kernels (`on`), or back; for tests
    /// that compare the two on one model. Pending gradients are kept; a pending
    /// [`forward_train`](Model::forward_train) is discarded.
    ///
    /// # Errors
    /// [`NnError::Backend`] if the tensor backend fails.
    #[doc(hidden)]
    pub fn set_reference_kernels(&mut self, on: bool) -> Result<(), NnError> {
        self.backend.set_reference_kernels(on)
    }

    /// Whether forwards and backwards run on the host kernels (CPU, an architecture that has
    /// them, reference kernels off).
    #[doc(hidden)]
    pub fn uses_host_kernels(&self) -> bool {
        self.backend.uses_host_kernels()
    }

    /// Lets training forwards reuse the rows of earlier inference forwards (`on`) or not. By
    /// default the MLP reuses them and the transformer does not (its rows' records cost more to
    /// copy than to compute again); for tests and measurements.
    #[doc(hidden)]
    pub fn set_row_reuse(&mut self, on: bool) {
        self.backend.set_row_reuse(on);
    }

    /// Rows that training forwards took from the activations of earlier inference forwards
    /// instead of computing them again, in all (see `Model::forward_train`).
    #[doc(hidden)]
    pub fn reused_rows(&self) -> u64 {
        self.backend.reused_rows()
    }

    /// Writes the parameters as a safetensors file (names as in
    /// [`parameters`](Model::parameters), `F32`), atomically: a temporary file in the same
    /// directory is written, fsynced and renamed over `path`.
    ///
    /// # Errors
    /// [`NnError::Io`] naming the path.
    pub fn save_safetensors(&self, path: &Path) -> Result<(), NnError> {
        let mut metadata = HashMap::new();
        metadata.insert(
            crate::io::FORMAT_KEY.to_string(),
            crate::io::FORMAT_VALUE.to_string(),
        );
        crate::io::write(path, &self.parameters(), metadata)
    }

    /// Loads parameters written by [`save_safetensors`](Model::save_safetensors) (or any
    /// safetensors file with the same `F32` tensor names and shapes).
    ///
    /// # Errors
    /// [`NnError::Io`] if the file cannot be read; [`NnError::Format`] naming the path if it is
    /// truncated, corrupt, or does not match this model's parameters.
    pub fn load_safetensors(&mut self, path: &Path) -> Result<(), NnError> {
        let tensors = crate::io::read(path)?;
        self.set_parameters(&tensors).map_err(|e| NnError::Format {
            path: path.to_path_buf(),
            reason: format!("does not fit this model: {e}"),
        })
    }
}

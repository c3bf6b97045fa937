//! Neural networks for softgfn — the only crate that names the tensor framework (dfdx 0.13).
//!
//! # Design
//!
//! Losses are computed **outside** this crate, on the host, in `f64` with analytic gradients.
//! This crate only runs networks:
//!
//! 1. [`Model::forward_train`] takes a batch of `f32` feature rows and returns every head's
//!    outputs in an [`Outputs`] (host buffers reused between calls);
//! 2. the caller computes the loss and its gradient w.r.t. every head output (and every learned
//!    scalar, such as `log_z`), and hands them to [`Model::backward`];
//! 3. [`Model::step`] applies Adam.
//!
//! **Surrogate-gradient backprop.** `backward` builds the scalar
//! `S = sum_h sum(out_h * grad_h)` on the dfdx tape, where `grad_h` is the given upstream
//! gradient (a constant). Since `dS/d out_h = grad_h`, the chain rule makes `dS/d theta` equal to
//! `d loss/d theta` for every parameter `theta`, so one `S.backward()` yields exactly the
//! parameter gradients of the host-side loss. Heads share one torso: its output's tape is split
//! once and the per-head tapes are merged again in `S`; dfdx runs the backward ops in reverse
//! creation order, so the torso sees the sum of all heads' contributions (checked against finite
//! differences in the tests).
//!
//! **Runtime shapes.** dfdx's own `nn` layers need const-generic sizes, so the MLP is written
//! with runtime-shaped tensors: every parameter is a flat `Tensor<(usize,), f32, D>` viewed as an
//! `(in, out)` matrix by a zero-copy reshape. All network code is generic over
//! `D: dfdx::tensor_ops::Device<f32>` and hidden behind the non-generic [`Model`] (a boxed
//! backend), so a CUDA build can share it; today only [`Device::Cpu`] is compiled in.
//!
//! **Why our own Adam (and Polyak, and safetensors I/O).** dfdx's optimizers, `ModelEMA` and
//! safetensors helpers work on its `TensorCollection` modules with const shapes, which these
//! runtime-shaped parameters are not. They are short to write with dfdx tensor ops (`axpy`,
//! `sqrt`, ...), which keeps them device-generic, and this lets us have per-group learning rates
//! and step counters ([`OptimizerSpec`]) and PyTorch's exact Adam formula ([`AdamConfig`]).
//!
//! **Where the tape waits.** A dfdx tape owns non-`Send` closures, but [`Model`] must be `Send`.
//! The tape of the latest `forward_train` is therefore parked in a one-slot thread-local; if
//! `backward` runs on another thread (or the slot was taken by another model), the forward is
//! re-recorded from the saved input, giving identical gradients.
//!
//! **Host kernels.** On [`Device::Cpu`], the MLP and the transformer run hand-written kernels
//! over host slices (`host` module: GEMMs through the `gemm` crate with dfdx's own arguments,
//! fused element-wise passes, reused buffers, no tape); the MLP's are bitwise equal to the dfdx
//! path, the transformer's equal to rounding. The dfdx path stays the reference and the path of
//! the other devices and of the graph network. For the MLP the CPU backend also keeps the
//! per-row activations of inference forwards, so that a training forward over the same rows
//! with the same parameters reuses them (see [`Model::forward_train`]).
//!
//! **Threads.** Matmuls use rayon's global pool; the binary decides its size.
//!
//! # Example
//! ```
//! use rand::SeedableRng;
//! use softgfn_nn::{Device, HeadSpec, MlpSpec, Model, OptimizerSpec, Outputs, ScalarSpec};
//!
//! let spec = MlpSpec {
//!     input_dim: 3,
//!     hidden_dims: vec![8],
//!     heads: vec![HeadSpec::new("pf", 2)],
//!     scalars: vec![ScalarSpec::new("log_z", 0.0)],
//! };
//! let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//! let mut model = Model::mlp(&spec, &OptimizerSpec::default(), Device::Cpu, &mut rng)?;
//! let mut out = Outputs::new();
//! model.forward_train(&[0.1, 0.2, 0.3, 0.4, 0.5, 0.6], 2, &mut out, &mut rng)?;
//! let mut grads = Outputs::new();
//! grads.reset(out.rows(), &model.head_dims());
//! for (g, y) in grads.head_mut(0).iter_mut().zip(out.head(0)) {
//!     *g = 2.0 * y; // d/dy of sum(y^2)
//! }
//! model.backward(&grads, &[1.0])?;
//! let grad_norm = model.step()?;
//! assert!(grad_norm > 0.0);
//! # Ok::<(), softgfn_nn::NnError>(())
//! ```

mod backend;
mod device;
mod error;
mod graph;
mod host;
mod io;
mod mlp;
mod model;
mod outputs;
mod params;
mod spec;
mod tensors;
mod transformer;

pub use device::Device;
pub use error::NnError;
pub use io::{load_tensors, save_tensors};
pub use model::Model;
pub use outputs::Outputs;
pub use spec::{
    AdamConfig, GraphSpec, HeadRole, HeadSpec, MlpSpec, NetSpec, OptimizerSpec, ScalarSpec,
    TokenReadout, TransformerSpec,
};
pub use tensors::{NamedTensor, OptimizerState};

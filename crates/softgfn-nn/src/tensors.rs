//! Host-side named tensors for parameters, gradients and optimizer state.

/// A named host copy of a tensor (row-major `f32`).
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    /// Parameter name, e.g. `torso.0.weight`, `head.pf.bias`, `scalar.log_z`,
    /// `adam.m.torso.0.weight`.
    pub name: String,
    /// Shape; weights are `[in, out]`, biases `[out]`, scalars `[1]`.
    pub shape: Vec<usize>,
    /// Row-major data, `shape.iter().product()` values.
    pub data: Vec<f32>,
}

impl NamedTensor {
    /// Number of elements implied by the shape.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Adam state for checkpoints: first/second moments as `adam.m.<param>` / `adam.v.<param>`
/// tensors plus the step count of each parameter group.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct OptimizerState {
    /// `adam.m.<param>` and `adam.v.<param>` for every parameter.
    pub tensors: Vec<NamedTensor>,
    /// `(group name, steps taken)` for every group.
    pub steps: Vec<(String, u64)>,
}

//! The MLP architecture: `[Linear -> ReLU]*` torso, one linear layer per head.

use dfdx::tensor::{Merge, NoneTape, Tape};
use rand::distributions::{Distribution, Uniform};

use crate::backend::{
    Arch, Layout, Matrix, Shared, apply_learning_rates, groups, linear, push_scalars,
};
use crate::host::HostNet;
use crate::host::mlp::{HostMlp, Linear};
use crate::params::{NetDevice, ParamMeta, ParamStore};
use crate::{MlpSpec, NnError, OptimizerSpec};

/// The forward pass of an MLP: parameter indices of every linear layer.
#[derive(Clone, Debug)]
pub(crate) struct MlpArch {
    /// Features per input row.
    input_dim: usize,
    /// The torso layers, input side first.
    torso: Vec<Linear>,
    /// Each head's layer.
    heads: Vec<Linear>,
}

/// Parameters (per layer weight `[in, out]` then bias; torso, then heads, then scalars), groups
/// and PyTorch-default initial values of an MLP, drawn layer by layer from `rng`.
pub(crate) fn layout(
    spec: &MlpSpec,
    optimizer: &OptimizerSpec,
    rng: &mut dyn rand::RngCore,
) -> Result<Layout, NnError> {
    let mut groups = groups(&spec.heads, &spec.scalars, optimizer);
    apply_learning_rates(&mut groups, optimizer)?;
    let mut meta = Vec::new();
    let mut values = Vec::new();
    let mut layer = |name: String, fan_in: usize, fan_out: usize, group: usize| {
        let bound = 1.0 / (fan_in as f32).sqrt();
        let dist = Uniform::new(-bound, bound);
        meta.push(ParamMeta {
            name: format!("{name}.weight"),
            shape: vec![fan_in, fan_out],
            group,
        });
        values.push((0..fan_in * fan_out).map(|_| dist.sample(rng)).collect());
        meta.push(ParamMeta {
            name: format!("{name}.bias"),
            shape: vec![fan_out],
            group,
        });
        values.push((0..fan_out).map(|_| dist.sample(rng)).collect());
        Linear {
            w: meta.len() - 2,
            b: meta.len() - 1,
            fan_in,
            fan_out,
        }
    };
    let mut fan_in = spec.input_dim;
    let mut torso = Vec::new();
    for (i, &width) in spec.hidden_dims.iter().enumerate() {
        torso.push(layer(format!("torso.{i}"), fan_in, width, 0));
        fan_in = width;
    }
    let heads = spec
        .heads
        .iter()
        .enumerate()
        .map(|(j, h)| layer(format!("head.{}", h.name), fan_in, h.dim, 1 + j))
        .collect();
    let mut layout = Layout {
        meta,
        groups,
        values,
        arch: Arch::Mlp(MlpArch {
            input_dim: spec.input_dim,
            torso,
            heads,
        }),
    };
    push_scalars(&mut layout, spec.heads.len(), &spec.scalars);
    Ok(layout)
}

impl MlpArch {
    /// Torso, then every head on the shared torso output.
    pub(crate) fn run<D: NetDevice, T>(
        &self,
        store: &ParamStore<D>,
        x: Matrix<D, T>,
        rows: usize,
    ) -> Result<Vec<Matrix<D, T>>, D::Err>
    where
        T: Tape<f32, D> + Merge<NoneTape>,
    {
        let mut h = x;
        for layer in &self.torso {
            h = linear(store, h, (layer.w, layer.b), rows)?.try_relu()?;
        }
        let mut h = Shared::new(h);
        self.heads
            .iter()
            .map(|layer| linear(store, h.take(), (layer.w, layer.b), rows))
            .collect()
    }

    /// The host kernel of this MLP.
    pub(crate) fn host_net(&self) -> Box<dyn HostNet> {
        Box::new(HostMlp::new(
            self.input_dim,
            self.torso.clone(),
            self.heads.clone(),
        ))
    }
}

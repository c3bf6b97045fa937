//! Network and optimizer specifications.

use crate::NnError;

/// One output head: a linear layer on top of the shared torso.
#[derive(Clone, Debug, PartialEq)]
pub struct HeadSpec {
    /// Unique head name; parameters are called `head.<name>.weight` / `head.<name>.bias` and
    /// the optimizer group `head:<name>`.
    pub name: String,
    /// Number of outputs per row.
    pub dim: usize,
}

impl HeadSpec {
    /// Convenience constructor.
    pub fn new(name: impl Into<String>, dim: usize) -> Self {
        Self {
            name: name.into(),
            dim,
        }
    }
}

/// A learned scalar that lives next to the network (e.g. `log_z` of trajectory balance).
///
/// The network never reads it; the host-side loss does, and hands its gradient back to
/// [`Model::backward`](crate::Model::backward).
#[derive(Clone, Debug, PartialEq)]
pub struct ScalarSpec {
    /// Unique scalar name; the parameter is `scalar.<name>` and the group `scalar:<name>`.
    pub name: String,
    /// Initial value.
    pub init: f32,
}

impl ScalarSpec {
    /// Convenience constructor.
    pub fn new(name: impl Into<String>, init: f32) -> Self {
        Self {
            name: name.into(),
            init,
        }
    }
}

/// A multi-layer perceptron with several heads on one torso.
///
/// `input -> [Linear -> ReLU] for each hidden dim -> one Linear per head`. With `hidden_dims`
/// empty, the heads read the input directly.
#[derive(Clone, Debug, PartialEq)]
pub struct MlpSpec {
    /// Features per input row.
    pub input_dim: usize,
    /// Widths of the hidden layers, input side first.
    pub hidden_dims: Vec<usize>,
    /// Output heads, in output order (at least one).
    pub heads: Vec<HeadSpec>,
    /// Learned scalars, in order.
    pub scalars: Vec<ScalarSpec>,
}

impl MlpSpec {
    /// Width of the layer the heads read (the last hidden dim, or the input dim).
    pub fn torso_output_dim(&self) -> usize {
        self.hidden_dims.last().copied().unwrap_or(self.input_dim)
    }

    /// Head output dims in spec order.
    pub fn head_dims(&self) -> Vec<usize> {
        self.heads.iter().map(|h| h.dim).collect()
    }

    /// Checks sizes and names.
    ///
    /// # Errors
    /// [`NnError::InvalidSpec`] on a zero size, no heads, or an empty/duplicate head or scalar
    /// name.
    pub fn validate(&self) -> Result<(), NnError> {
        let bad = |m: String| Err(NnError::InvalidSpec(m));
        if self.input_dim == 0 {
            return bad("input_dim must be at least 1, found 0".into());
        }
        if let Some(i) = self.hidden_dims.iter().position(|&d| d == 0) {
            return bad(format!("hidden_dims[{i}] must be at least 1, found 0"));
        }
        if self.heads.is_empty() {
            return bad("expected at least one head, found none".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        for h in &self.heads {
            if h.name.is_empty() {
                return bad("head names must not be empty".into());
            }
            if h.dim == 0 {
                return bad(format!(
                    "head `{}` must have dim at least 1, found 0",
                    h.name
                ));
            }
            if !seen.insert(h.name.as_str()) {
                return bad(format!("head name `{}` is used twice", h.name));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for s in &self.scalars {
            if s.name.is_empty() {
                return bad("scalar names must not be empty".into());
            }
            if !s.init.is_finite() {
                return bad(format!(
                    "scalar `{}` has non-finite init {}",
                    s.name, s.init
                ));
            }
            if !seen.insert(s.name.as_str()) {
                return bad(format!("scalar name `{}` is used twice", s.name));
            }
        }
        Ok(())
    }
}

/// PyTorch-style Adam with L2 weight decay added to the gradient (not AdamW).
///
/// Per step `t` (counted per parameter group, starting at 1):
/// `g += wd * theta; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;`
/// `theta -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)`.
#[derive(Clone, Debug, PartialEq)]
pub struct AdamConfig {
    /// Default learning rate of every group (see [`OptimizerSpec::group_learning_rates`]).
    pub learning_rate: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Denominator epsilon.
    pub eps: f32,
    /// L2 penalty coefficient added to the gradient (applies to every parameter, scalars too).
    pub weight_decay: f32,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            learning_rate: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

impl AdamConfig {
    /// Checks that every hyper-parameter is finite and in range.
    ///
    /// # Errors
    /// [`NnError::InvalidSpec`] naming the offending field.
    pub fn validate(&self) -> Result<(), NnError> {
        let check = |name: &str, v: f32, ok: bool, range: &str| {
            if v.is_finite() && ok {
                Ok(())
            } else {
                Err(NnError::InvalidSpec(format!(
                    "adam {name} must be {range}, found {v}"
                )))
            }
        };
        check(
            "learning_rate",
            self.learning_rate,
            self.learning_rate >= 0.0,
            ">= 0",
        )?;
        check(
            "beta1",
            self.beta1,
            (0.0..1.0).contains(&self.beta1),
            "in [0, 1)",
        )?;
        check(
            "beta2",
            self.beta2,
            (0.0..1.0).contains(&self.beta2),
            "in [0, 1)",
        )?;
        check("eps", self.eps, self.eps > 0.0, "> 0")?;
        check(
            "weight_decay",
            self.weight_decay,
            self.weight_decay >= 0.0,
            ">= 0",
        )
    }
}

/// Optimizer settings: Adam plus per-group learning-rate overrides.
///
/// Every parameter belongs to exactly one group: `torso` (all hidden layers; present even when
/// there are none), `head:<head name>` (weight and bias of that head) and `scalar:<scalar name>`.
/// `group_learning_rates` overrides the learning rate of the named groups, e.g.
/// `("scalar:log_z", 0.1)`; an unknown group name is an [`NnError::UnknownGroup`] listing the
/// valid ones. Each group keeps its own step counter (for bias correction and checkpoints).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct OptimizerSpec {
    /// Adam hyper-parameters (its `learning_rate` is the default of every group).
    pub adam: AdamConfig,
    /// `(group name, learning rate)` overrides; later entries win.
    pub group_learning_rates: Vec<(String, f32)>,
}

//! What the gradient tests of the MLP, transformer and graph network share: the
//! finite-difference check, and a random linear functional of a model's outputs.

// Each test file uses part of it.
#![allow(dead_code)]

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use softgfn_nn::{Model, NamedTensor, Outputs};

/// A batch of `rows` inputs and a random linear functional `L = sum_h <C_h, out_h>` of a model's
/// head outputs, whose gradient with respect to the outputs is `C` (and 0.25 for a scalar).
pub struct Problem {
    /// Rows of the batch.
    pub rows: usize,
    /// The inputs.
    pub input: Vec<f32>,
    /// The coefficients `C_h` of every head.
    pub coeffs: Outputs,
}

impl Problem {
    /// `input` with coefficients uniform in `[-1, 1)` for heads of widths `dims`, drawn from
    /// `rng` (after whatever drew the input).
    pub fn new(rows: usize, input: Vec<f32>, dims: &[usize], rng: &mut ChaCha8Rng) -> Self {
        let mut coeffs = Outputs::new();
        coeffs.reset(rows, dims);
        for h in 0..dims.len() {
            for c in coeffs.head_mut(h) {
                *c = rng.gen_range(-1.0f32..1.0);
            }
        }
        Self {
            rows,
            input,
            coeffs,
        }
    }

    /// `L` under an inference forward, accumulated in f64.
    pub fn functional(&self, model: &Model) -> f64 {
        let mut out = Outputs::new();
        model.forward(&self.input, self.rows, &mut out).unwrap();
        let mut l = 0.0;
        for h in 0..out.num_heads() {
            for (y, c) in out.head(h).iter().zip(self.coeffs.head(h)) {
                l += f64::from(*y) * f64::from(*c);
            }
        }
        l
    }

    /// A training forward (dropout drawn from `seed`) and the backward of `L` with coefficient
    /// 0.25 on the one scalar: the outputs and the parameter gradients.
    pub fn gradients(&self, model: &mut Model, seed: u64) -> (Outputs, Vec<NamedTensor>) {
        let mut out = Outputs::new();
        let mut rng = <ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed);
        model
            .forward_train(&self.input, self.rows, &mut out, &mut rng)
            .unwrap();
        model.backward(&self.coeffs, &[0.25]).unwrap();
        (out, model.gradients())
    }
}

/// Step and tolerances of a central finite-difference check of parameter entries.
pub struct FiniteDiff {
    /// Step of the difference.
    pub eps: f32,
    /// `(relative, absolute)`: one-sided slopes that differ by more than
    /// `relative * (|forward| + |backward|) + absolute` mean a (leaky-)ReLU kink within `eps`,
    /// and the entry is skipped.
    pub kink: (f64, f64),
    /// `(relative, absolute)`: the accepted error `relative * max(|numeric|, |exact|) + absolute`.
    pub tol: (f64, f64),
}

impl FiniteDiff {
    /// Compares the analytic gradient `grad` of tensor `t` with the central difference of `f` at
    /// each entry of `idx` (the other parameters at `base`), panicking on a mismatch and unless
    /// `min(2, idx.len())` entries were away from kinks. Returns `(numeric, exact)` of the checked
    /// entries, and leaves the model at `base`.
    pub fn check(
        &self,
        m: &mut Model,
        base: &[NamedTensor],
        t: usize,
        idx: &[usize],
        grad: &[f32],
        f: impl Fn(&Model) -> f64,
    ) -> Vec<(f64, f64)> {
        let name = &base[t].name;
        let mut checked = Vec::new();
        for &i in idx {
            let mut at = |v: f32| {
                let mut params = base.to_vec();
                params[t].data[i] = v;
                m.set_parameters(&params).unwrap();
                f(m)
            };
            let x = base[t].data[i];
            let (up, down, mid) = (at(x + self.eps), at(x - self.eps), at(x));
            let h = f64::from(self.eps);
            let (fwd, bwd) = ((up - mid) / h, (mid - down) / h);
            if (fwd - bwd).abs() > self.kink.0 * (fwd.abs() + bwd.abs()) + self.kink.1 {
                continue;
            }
            let numeric = (up - down) / (2.0 * h);
            let exact = f64::from(grad[i]);
            let tol = self.tol.0 * numeric.abs().max(exact.abs()) + self.tol.1;
            assert!(
                (numeric - exact).abs() <= tol,
                "{name}[{i}]: analytic {exact}, finite difference {numeric}"
            );
            checked.push((numeric, exact));
        }
        assert!(
            checked.len() >= idx.len().min(2),
            "{name}: only {} entries away from kinks",
            checked.len()
        );
        checked
    }
}

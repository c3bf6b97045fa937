//! Gradient correctness: analytic (surrogate backprop) vs central finite differences.

mod common;

use common::FiniteDiff;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use softgfn_nn::{
    Device, HeadSpec, MlpSpec, Model, NamedTensor, OptimizerSpec, Outputs, ScalarSpec,
};

fn spec() -> MlpSpec {
    MlpSpec {
        input_dim: 3,
        hidden_dims: vec![5, 4],
        heads: vec![HeadSpec::new("a", 2), HeadSpec::new("b", 3)],
        scalars: vec![ScalarSpec::new("s", 0.3)],
    }
}

fn model(seed: u64) -> Model {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Model::mlp(&spec(), &OptimizerSpec::default(), Device::Cpu, &mut rng).unwrap()
}

/// A random batch and a random linear functional `L = sum_h <C_h, out_h> + c_s * s`.
struct Problem {
    rows: usize,
    input: Vec<f32>,
    coeffs: Outputs,
    scalar_coeff: f32,
}

fn problem(seed: u64) -> Problem {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let rows = 6;
    let input = (0..rows * 3).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    let mut coeffs = Outputs::new();
    coeffs.reset(rows, &[2, 3]);
    for h in 0..2 {
        for c in coeffs.head_mut(h) {
            *c = rng.gen_range(-1.0f32..1.0);
        }
    }
    Problem {
        rows,
        input,
        coeffs,
        scalar_coeff: rng.gen_range(-1.0f32..1.0),
    }
}

/// `L` evaluated with an inference forward, accumulated in f64.
fn functional(model: &Model, p: &Problem) -> f64 {
    let mut out = Outputs::new();
    model.forward(&p.input, p.rows, &mut out).unwrap();
    let mut l = f64::from(p.scalar_coeff) * f64::from(model.scalar(0));
    for h in 0..out.num_heads() {
        for (y, c) in out.head(h).iter().zip(p.coeffs.head(h)) {
            l += f64::from(*y) * f64::from(*c);
        }
    }
    l
}

fn analytic(model: &mut Model, p: &Problem) -> Vec<NamedTensor> {
    let mut out = Outputs::new();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    model
        .forward_train(&p.input, p.rows, &mut out, &mut rng)
        .unwrap();
    model.backward(&p.coeffs, &[p.scalar_coeff]).unwrap();
    model.gradients()
}

#[test]
fn gradient_matches_finite_differences_on_every_tensor() {
    let mut m = model(11);
    let p = problem(12);
    let grads = analytic(&mut m, &p);
    let base = m.parameters();
    assert_eq!(grads.len(), base.len());
    let names: Vec<&str> = base.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "torso.0.weight",
            "torso.0.bias",
            "torso.1.weight",
            "torso.1.bias",
            "head.a.weight",
            "head.a.bias",
            "head.b.weight",
            "head.b.bias",
            "scalar.s"
        ]
    );

    let fd = FiniteDiff {
        eps: 1e-3,
        kink: (1e-2, 5e-3),
        tol: (2e-2, 2e-3),
    };
    let mut probe = ChaCha8Rng::seed_from_u64(99);
    for (t, tensor) in base.iter().enumerate() {
        let n = tensor.data.len();
        // First, last and a few random entries of every tensor.
        let mut idx = vec![0, n - 1];
        idx.extend((0..4).map(|_| probe.gen_range(0..n)));
        idx.sort_unstable();
        idx.dedup();
        // ReLU kinks within eps are skipped.
        fd.check(&mut m, &base, t, &idx, &grads[t].data, |m| {
            functional(m, &p)
        });
    }
    // The check is not vacuous: every tensor got a non-zero gradient somewhere.
    for g in &grads {
        assert!(
            g.data.iter().any(|x| x.abs() > 1e-4),
            "{} has zero gradient",
            g.name
        );
    }
}

#[test]
fn every_head_reaches_the_torso() {
    // Gradient through head b only must equal the total minus the gradient through head a only.
    let p = problem(3);
    let only = |head: usize| {
        let mut q = Problem {
            rows: p.rows,
            input: p.input.clone(),
            coeffs: p.coeffs.clone(),
            scalar_coeff: 0.0,
        };
        q.coeffs.head_mut(1 - head).fill(0.0);
        analytic(&mut model(5), &q)
    };
    let ga = only(0);
    let gb = only(1);
    let both = Problem {
        rows: p.rows,
        input: p.input.clone(),
        coeffs: p.coeffs.clone(),
        scalar_coeff: 0.0,
    };
    let g = analytic(&mut model(5), &both);
    for t in 0..4 {
        assert!(gb[t].data.iter().any(|x| x.abs() > 1e-5), "{}", gb[t].name);
        for i in 0..g[t].data.len() {
            let sum = ga[t].data[i] + gb[t].data[i];
            assert!(
                (g[t].data[i] - sum).abs() <= 1e-5 * (1.0 + sum.abs()),
                "{}[{i}]: {} vs {} + {}",
                g[t].name,
                g[t].data[i],
                ga[t].data[i],
                gb[t].data[i]
            );
        }
    }
    // Head a's gradient does not leak into head b's parameters and vice versa.
    assert!(ga[6].data.iter().all(|&x| x == 0.0));
    assert!(gb[4].data.iter().all(|&x| x == 0.0));
}

#[test]
fn backward_accumulates_until_step() {
    let p = problem(4);
    let mut m = model(8);
    let once = analytic(&mut m, &p);
    let twice = analytic(&mut m, &p);
    for (a, b) in once.iter().zip(&twice) {
        for (x, y) in a.data.iter().zip(&b.data) {
            assert!((2.0 * x - y).abs() <= 1e-6 * (1.0 + y.abs()), "{}", a.name);
        }
    }
    m.step().unwrap();
    assert!(
        m.gradients()
            .iter()
            .all(|t| t.data.iter().all(|&x| x == 0.0))
    );
}

#[test]
fn backward_on_another_thread_or_after_another_model_gives_the_same_gradients() {
    let p = problem(6);
    let reference = analytic(&mut model(21), &p);

    // forward_train here, backward on another thread: the tape is re-recorded there.
    let mut m = model(21);
    let mut out = Outputs::new();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    m.forward_train(&p.input, p.rows, &mut out, &mut rng)
        .unwrap();
    std::thread::scope(|s| {
        s.spawn(|| m.backward(&p.coeffs, &[p.scalar_coeff]).unwrap());
    });
    assert_eq!(m.gradients(), reference);

    // Interleaved forward_train of two models on one thread.
    let mut a = model(21);
    let mut b = model(21);
    let mut out_b = Outputs::new();
    a.forward_train(&p.input, p.rows, &mut out, &mut rng)
        .unwrap();
    b.forward_train(&p.input, p.rows, &mut out_b, &mut rng)
        .unwrap();
    a.backward(&p.coeffs, &[p.scalar_coeff]).unwrap();
    b.backward(&p.coeffs, &[p.scalar_coeff]).unwrap();
    assert_eq!(a.gradients(), reference);
    assert_eq!(b.gradients(), reference);
}

#[test]
fn forward_train_outputs_equal_inference_outputs() {
    let p = problem(9);
    let mut m = model(2);
    let mut inf = Outputs::new();
    m.forward(&p.input, p.rows, &mut inf).unwrap();
    let mut tr = Outputs::new();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    m.forward_train(&p.input, p.rows, &mut tr, &mut rng)
        .unwrap();
    assert_eq!(inf.rows(), 6);
    for h in 0..2 {
        assert_eq!(inf.head(h), tr.head(h));
        assert_eq!(inf.head(h).len(), 6 * inf.dim(h));
    }
}

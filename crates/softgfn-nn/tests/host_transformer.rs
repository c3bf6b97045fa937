//! The transformer's host kernel against the reference (dfdx) path on the same model, through
//! the public API: outputs within 1e-5 and gradients within 1e-4 of the largest value of each
//! head or tensor (the host kernel fuses the attention and LayerNorm passes and uses its own
//! `exp`, so the last bits differ), and a few Adam steps that stay together.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use softgfn_nn::{
    Device, HeadSpec, Model, NamedTensor, OptimizerSpec, Outputs, ScalarSpec, TokenReadout,
    TransformerSpec,
};

fn spec(dropout: f32, forward: TokenReadout, backward: TokenReadout) -> TransformerSpec {
    TransformerSpec {
        tokens: 5,
        token_features: 4,
        d_model: 16,
        layers: 2,
        attention_heads: 4,
        feedforward: 12,
        dropout,
        forward_readout: forward,
        backward_readout: backward,
        heads: vec![
            HeadSpec::forward_actions("pf", forward.dim(5)),
            HeadSpec::backward_actions("pb", backward.dim(5)),
            HeadSpec::new("log_flow", 2),
        ],
        scalars: vec![ScalarSpec::new("log_z", 0.5)],
    }
}

fn model(spec: &TransformerSpec, seed: u64, reference: bool) -> Model {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut m = Model::transformer(spec, &OptimizerSpec::default(), Device::Cpu, &mut rng).unwrap();
    m.set_reference_kernels(reference).unwrap();
    m
}

/// One-hot tokens (the gather path) or dense features (the product path).
fn input(rows: usize, one_hot: bool, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let mut x = vec![0.0f32; rows * 5 * 4];
    for block in x.chunks_exact_mut(4) {
        if one_hot {
            block[rng.gen_range(0..4)] = 1.0;
        } else {
            for v in block {
                *v = rng.gen_range(-1.0f32..1.0);
            }
        }
    }
    x
}

fn coeffs(rows: usize, dims: &[usize], rng: &mut ChaCha8Rng) -> Outputs {
    let mut g = Outputs::new();
    g.reset(rows, dims);
    for h in 0..dims.len() {
        for v in g.head_mut(h) {
            *v = rng.gen_range(-1.0f32..1.0);
        }
    }
    g
}

/// `|a - b| <= tol * max(max |a|, floor)` elementwise.
fn close(what: &str, a: &[f32], b: &[f32], tol: f32, floor: f32) {
    assert_eq!(a.len(), b.len(), "{what}");
    let scale = a.iter().fold(floor, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * scale,
            "{what}[{i}]: reference {x}, host {y} (scale {scale})"
        );
    }
}

fn close_tensors(what: &str, a: &[NamedTensor], b: &[NamedTensor], tol: f32) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.name, y.name);
        // The key bias has a zero gradient (softmax is invariant to it): both are rounding
        // noise, compared against the largest gradient of all tensors instead.
        let floor = if x.name.ends_with("attn.k.bias") {
            1e-2
        } else {
            1e-3
        };
        close(&format!("{what} {}", x.name), &x.data, &y.data, tol, floor);
    }
}

#[test]
fn host_transformer_matches_the_dfdx_path() {
    let readouts = [
        (TokenReadout::TokenWord { words: 3 }, TokenReadout::Token),
        (TokenReadout::Token, TokenReadout::TokenWord { words: 2 }),
    ];
    for (forward, backward) in readouts {
        for dropout in [0.0, 0.25] {
            for one_hot in [true, false] {
                for rows in [0usize, 1, 6] {
                    let s = spec(dropout, forward, backward);
                    let what = format!(
                        "{forward:?}/{backward:?} dropout {dropout} one-hot {one_hot} rows {rows}"
                    );
                    let mut rng = ChaCha8Rng::seed_from_u64(rows as u64 + 10);
                    let x = input(rows, one_hot, &mut rng);
                    let mut host = model(&s, 3, false);
                    let mut reference = model(&s, 3, true);
                    let g = coeffs(rows, &host.head_dims(), &mut rng);
                    let (mut a, mut b) = (Outputs::new(), Outputs::new());
                    // Inference, with and without dropout.
                    host.forward(&x, rows, &mut a).unwrap();
                    reference.forward(&x, rows, &mut b).unwrap();
                    for h in 0..a.num_heads() {
                        close(
                            &format!("{what} forward {h}"),
                            b.head(h),
                            a.head(h),
                            1e-5,
                            1e-3,
                        );
                    }
                    let seed = |s| ChaCha8Rng::seed_from_u64(s);
                    host.forward_dropout(&x, rows, &mut a, &mut seed(7))
                        .unwrap();
                    reference
                        .forward_dropout(&x, rows, &mut b, &mut seed(7))
                        .unwrap();
                    for h in 0..a.num_heads() {
                        close(
                            &format!("{what} dropout {h}"),
                            b.head(h),
                            a.head(h),
                            1e-5,
                            1e-3,
                        );
                    }
                    // Two accumulated training forwards and backwards, an inference forward in
                    // between (it must not clobber the recorded forward).
                    for k in 0..2 {
                        host.forward_train(&x, rows, &mut a, &mut seed(20 + k))
                            .unwrap();
                        reference
                            .forward_train(&x, rows, &mut b, &mut seed(20 + k))
                            .unwrap();
                        for h in 0..a.num_heads() {
                            close(
                                &format!("{what} train {h}"),
                                b.head(h),
                                a.head(h),
                                1e-5,
                                1e-3,
                            );
                        }
                        host.forward(&input(3, one_hot, &mut rng), 3, &mut Outputs::new())
                            .unwrap();
                        host.backward(&g, &[0.25]).unwrap();
                        reference.backward(&g, &[0.25]).unwrap();
                    }
                    close_tensors(&what, &reference.gradients(), &host.gradients(), 1e-4);
                }
            }
        }
    }
}

#[test]
fn training_on_the_host_kernel_follows_the_dfdx_path() {
    // Ten Adam steps of a fixed regression on both paths: the parameters stay within 1e-4 of
    // each tensor's largest value (each step moves them by about the learning rate, 1e-3).
    let s = spec(
        0.0,
        TokenReadout::TokenWord { words: 3 },
        TokenReadout::Token,
    );
    let mut rng = ChaCha8Rng::seed_from_u64(31);
    let x = input(8, true, &mut rng);
    let mut host = model(&s, 5, false);
    let mut reference = model(&s, 5, true);
    let target = coeffs(8, &host.head_dims(), &mut rng);
    for step in 0..10 {
        for m in [&mut host, &mut reference] {
            let mut out = Outputs::new();
            m.forward_train(&x, 8, &mut out, &mut rng.clone()).unwrap();
            let mut g = Outputs::new();
            g.reset(8, &m.head_dims());
            for h in 0..out.num_heads() {
                for ((gv, y), t) in g
                    .head_mut(h)
                    .iter_mut()
                    .zip(out.head(h))
                    .zip(target.head(h))
                {
                    *gv = 2.0 * (y - t);
                }
            }
            m.backward(&g, &[0.0]).unwrap();
            m.step().unwrap();
        }
        // The key biases are left out: their gradient is rounding noise around zero on both
        // paths, which Adam's normalisation turns into steps of about the learning rate in
        // either direction (a softmax invariance, so the outputs do not see them).
        let keep = |p: Vec<NamedTensor>| -> Vec<NamedTensor> {
            p.into_iter()
                .filter(|t| !t.name.ends_with("attn.k.bias"))
                .collect()
        };
        close_tensors(
            &format!("step {step}"),
            &keep(reference.parameters()),
            &keep(host.parameters()),
            1e-4,
        );
    }
}

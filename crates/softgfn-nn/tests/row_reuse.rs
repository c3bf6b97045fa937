//! Training forwards that reuse the rows of earlier inference forwards: bitwise the same
//! outputs, gradients and parameters as computing every row again, and no reuse with dropout.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use softgfn_nn::{
    Device, HeadSpec, MlpSpec, Model, NamedTensor, OptimizerSpec, Outputs, ScalarSpec,
    TokenReadout, TransformerSpec,
};

fn mlp(seed: u64) -> Model {
    let spec = MlpSpec {
        input_dim: 12,
        hidden_dims: vec![32, 24],
        heads: vec![HeadSpec::new("pf", 5), HeadSpec::new("flow", 1)],
        scalars: vec![ScalarSpec::new("log_z", 0.0)],
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Model::mlp(&spec, &OptimizerSpec::default(), Device::Cpu, &mut rng).unwrap()
}

/// A one-hot-ish state row, from a small set so that rows repeat.
fn state(rng: &mut ChaCha8Rng) -> Vec<f32> {
    let mut row = vec![0.0; 12];
    row[rng.gen_range(0..6)] = 1.0;
    row[6 + rng.gen_range(0..6)] = 1.0;
    row[rng.gen_range(0..12)] += 0.5;
    row
}

fn bits(t: &[NamedTensor]) -> Vec<Vec<u32>> {
    t.iter()
        .map(|t| t.data.iter().map(|v| v.to_bits()).collect())
        .collect()
}

/// `iterations` of on-policy-like training: inference forwards of the trajectory states in
/// batches of shrinking size (as the sampler runs them), a training forward over every state
/// (plus rows never forwarded), a loss of the outputs, backward, step. Returns the per-iteration
/// outputs and gradients (as bits) and the model.
fn train(mut model: Model, reference: bool, iterations: usize) -> (Vec<Vec<u32>>, Model) {
    model.set_reference_kernels(reference).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(77);
    let mut trace = Vec::new();
    let mut out = Outputs::new();
    for it in 0..iterations {
        // Sampling: `steps` batches of `active` rows, the active set shrinking.
        let mut all = Vec::new();
        let mut active = 1 + it % 9;
        while active > 0 {
            let batch: Vec<f32> = (0..active).flat_map(|_| state(&mut rng)).collect();
            model.forward(&batch, active, &mut out).unwrap();
            trace.push(out.head(0).iter().map(|v| v.to_bits()).collect());
            all.extend_from_slice(&batch);
            active -= usize::from(rng.gen_bool(0.4));
        }
        // Terminal states that were never forwarded.
        for _ in 0..it % 3 {
            all.extend(state(&mut rng).iter().map(|v| v * 2.0));
        }
        let rows = all.len() / 12;
        model.forward_train(&all, rows, &mut out, &mut rng).unwrap();
        let mut g = Outputs::new();
        g.reset(rows, &[5, 1]);
        for h in 0..2 {
            for (gv, y) in g.head_mut(h).iter_mut().zip(out.head(h)) {
                *gv = 2.0 * y - 0.3;
            }
            trace.push(out.head(h).iter().map(|v| v.to_bits()).collect());
        }
        model.backward(&g, &[0.5]).unwrap();
        trace.extend(bits(&model.gradients()));
        model.step().unwrap();
    }
    (trace, model)
}

#[test]
fn reusing_sampling_rows_gives_bitwise_the_same_training() {
    let (host_trace, host) = train(mlp(1), false, 40);
    let (ref_trace, reference) = train(mlp(1), true, 40);
    assert!(
        host.reused_rows() > 100,
        "the host path reused only {} rows",
        host.reused_rows()
    );
    assert_eq!(reference.reused_rows(), 0);
    assert_eq!(host_trace.len(), ref_trace.len());
    for (i, (a, b)) in host_trace.iter().zip(&ref_trace).enumerate() {
        assert_eq!(a, b, "trace entry {i} differs");
    }
    assert_eq!(bits(&host.parameters()), bits(&reference.parameters()));
}

#[test]
fn rows_are_not_reused_after_the_parameters_change() {
    let mut m = mlp(2);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let x: Vec<f32> = (0..4).flat_map(|_| state(&mut rng)).collect();
    let mut out = Outputs::new();
    // The first training forward starts the recording.
    m.forward_train(&x, 4, &mut out, &mut rng).unwrap();
    m.forward(&x, 4, &mut out).unwrap();
    m.forward_train(&x, 4, &mut out, &mut rng).unwrap();
    assert_eq!(m.reused_rows(), 4);
    let mut g = Outputs::new();
    g.reset(4, &[5, 1]);
    g.head_mut(0).fill(1.0);
    m.backward(&g, &[0.0]).unwrap();
    m.step().unwrap();
    // Same rows, new parameters: computed again, and equal to a fresh inference forward.
    let mut fresh = Outputs::new();
    m.forward_train(&x, 4, &mut out, &mut rng).unwrap();
    assert_eq!(m.reused_rows(), 4);
    m.forward(&x, 4, &mut fresh).unwrap();
    assert_eq!(out.head(0), fresh.head(0));
    // Other parameter changes clear the rows too.
    for change in 0..3 {
        m.forward(&x, 4, &mut fresh).unwrap();
        let other = mlp(10 + change);
        match change {
            0 => m.copy_from(&other).unwrap(),
            1 => m.polyak_from(&other, 0.5).unwrap(),
            _ => m.set_parameters(&other.parameters()).unwrap(),
        }
        let before = m.reused_rows();
        m.forward_train(&x, 4, &mut out, &mut rng).unwrap();
        assert_eq!(m.reused_rows(), before, "change {change}");
    }
}

#[test]
fn dropout_is_never_reused() {
    for dropout in [0.0, 0.1] {
        let spec = TransformerSpec {
            tokens: 3,
            token_features: 4,
            d_model: 8,
            layers: 1,
            attention_heads: 2,
            feedforward: 8,
            dropout,
            forward_readout: TokenReadout::Token,
            backward_readout: TokenReadout::Token,
            heads: vec![HeadSpec::forward_actions("pf", 3)],
            scalars: vec![],
        };
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut m =
            Model::transformer(&spec, &OptimizerSpec::default(), Device::Cpu, &mut rng).unwrap();
        // The transformer reuses rows only on request.
        m.set_row_reuse(true);
        // The transformer reuses rows only on request.
        m.set_row_reuse(true);
        let x: Vec<f32> = (0..2 * 12).map(|i| f32::from(i % 4 == 0)).collect();
        let mut out = Outputs::new();
        let mut train_out = Outputs::new();
        for _ in 0..3 {
            m.forward(&x, 2, &mut out).unwrap();
            m.forward_dropout(&x, 2, &mut out, &mut rng).unwrap();
            m.forward_train(&x, 2, &mut train_out, &mut rng).unwrap();
        }
        if dropout > 0.0 {
            assert_eq!(m.reused_rows(), 0, "dropout {dropout}");
        } else {
            assert!(m.reused_rows() > 0, "no reuse without dropout");
        }
        // Without dropout a reused training forward equals the inference forward.
        if dropout == 0.0 {
            m.forward(&x, 2, &mut out).unwrap();
            assert_eq!(out.head(0), train_out.head(0));
        }
    }
}

fn transformer(readout: TokenReadout, token_features: usize, seed: u64) -> Model {
    let tokens = 5;
    let spec = TransformerSpec {
        tokens,
        token_features,
        d_model: 16,
        layers: 2,
        attention_heads: 4,
        feedforward: 12,
        dropout: 0.0,
        forward_readout: readout,
        backward_readout: TokenReadout::Token,
        heads: vec![
            HeadSpec::forward_actions("pf", readout.dim(tokens)),
            HeadSpec::backward_actions("pb", tokens),
            HeadSpec::new("flow", 1),
        ],
        scalars: vec![ScalarSpec::new("log_z", 0.0)],
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Model::transformer(&spec, &OptimizerSpec::default(), Device::Cpu, &mut rng).unwrap()
}

/// A row of `tokens` one-hot tokens (or dense features when `dense`), from a small set.
fn token_row(tokens: usize, features: usize, dense: bool, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let mut row = vec![0.0; tokens * features];
    for t in 0..tokens {
        if dense {
            for f in 0..features {
                row[t * features + f] = f32::from(rng.gen_range(0u8..4)) * 0.25 - 0.4;
            }
        } else {
            row[t * features + rng.gen_range(0..features.min(3))] = 1.0;
        }
    }
    row
}

#[test]
fn transformer_rows_do_not_depend_on_their_batch() {
    for (readout, dense) in [
        (TokenReadout::TokenWord { words: 3 }, false),
        (TokenReadout::Token, true),
    ] {
        let m = transformer(readout, 4, 8);
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let total = 150;
        let x: Vec<f32> = (0..total)
            .flat_map(|_| token_row(5, 4, dense, &mut rng))
            .collect();
        let w = 20;
        let mut pair = Outputs::new();
        let mut big = Outputs::new();
        for (start, n) in [(0usize, 3usize), (5, 17), (0, 150), (40, 64)] {
            m.forward(&x[start * w..(start + n) * w], n, &mut big)
                .unwrap();
            for r in 0..n {
                let row = start + r;
                let (s, at) = if row + 1 < total {
                    (row, 0)
                } else {
                    (row - 1, 1)
                };
                m.forward(&x[s * w..(s + 2) * w], 2, &mut pair).unwrap();
                for h in 0..3 {
                    let d = pair.dim(h);
                    let a: Vec<u32> = big.head(h)[r * d..(r + 1) * d]
                        .iter()
                        .map(|v| v.to_bits())
                        .collect();
                    let b: Vec<u32> = pair.head(h)[at * d..(at + 1) * d]
                        .iter()
                        .map(|v| v.to_bits())
                        .collect();
                    assert_eq!(a, b, "{readout:?}: row {r} of a batch of {n}, head {h}");
                }
            }
        }
    }
}

/// On-policy-like training of a transformer, with or without row reuse.
fn train_transformer(reuse: bool, dense: bool) -> (Vec<Vec<u32>>, Model) {
    let mut model = transformer(TokenReadout::TokenWord { words: 3 }, 4, 21);
    model.set_row_reuse(reuse);
    let mut rng = ChaCha8Rng::seed_from_u64(31);
    let mut trace = Vec::new();
    let mut out = Outputs::new();
    let dims = model.head_dims();
    for it in 0..12 {
        let mut all = Vec::new();
        let mut active = 2 + it % 5;
        while active > 0 {
            let batch: Vec<f32> = (0..active)
                .flat_map(|_| token_row(5, 4, dense, &mut rng))
                .collect();
            model.forward(&batch, active, &mut out).unwrap();
            trace.push(out.head(0).iter().map(|v| v.to_bits()).collect());
            all.extend_from_slice(&batch);
            active -= usize::from(rng.gen_bool(0.5));
        }
        for _ in 0..it % 3 {
            all.extend(token_row(5, 4, dense, &mut rng));
        }
        let rows = all.len() / 20;
        model.forward_train(&all, rows, &mut out, &mut rng).unwrap();
        let mut g = Outputs::new();
        g.reset(rows, &dims);
        for h in 0..dims.len() {
            for (gv, y) in g.head_mut(h).iter_mut().zip(out.head(h)) {
                *gv = 0.5 * y - 0.1;
            }
            trace.push(out.head(h).iter().map(|v| v.to_bits()).collect());
        }
        model.backward(&g, &[0.25]).unwrap();
        trace.extend(bits(&model.gradients()));
        model.step().unwrap();
    }
    (trace, model)
}

#[test]
fn transformer_reuse_gives_bitwise_the_same_training() {
    for dense in [false, true] {
        let (with, m_with) = train_transformer(true, dense);
        let (without, m_without) = train_transformer(false, dense);
        assert!(m_with.reused_rows() > 20, "reused {}", m_with.reused_rows());
        assert_eq!(m_without.reused_rows(), 0);
        assert_eq!(with.len(), without.len());
        for (i, (a, b)) in with.iter().zip(&without).enumerate() {
            assert_eq!(a, b, "dense {dense}: trace entry {i} differs");
        }
        assert_eq!(bits(&m_with.parameters()), bits(&m_without.parameters()));
    }
}

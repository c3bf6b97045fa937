//! The transformer encoder: gradients against finite differences, dropout semantics, readout
//! shapes, spec validation and determinism.

mod common;

use common::{FiniteDiff, Problem};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use softgfn_nn::{
    Device, HeadSpec, Model, NnError, OptimizerSpec, Outputs, ScalarSpec, TokenReadout,
    TransformerSpec,
};

const TOKENS: usize = 4;
const FEATURES: usize = 5;
const WORDS: usize = 3;

fn spec(dropout: f32) -> TransformerSpec {
    TransformerSpec {
        tokens: TOKENS,
        token_features: FEATURES,
        d_model: 8,
        layers: 2,
        attention_heads: 2,
        feedforward: 6,
        dropout,
        forward_readout: TokenReadout::TokenWord { words: WORDS },
        backward_readout: TokenReadout::Token,
        heads: vec![
            HeadSpec::forward_actions("forward", TOKENS * WORDS),
            HeadSpec::backward_actions("backward", TOKENS),
            HeadSpec::new("log_flow", 1),
        ],
        scalars: vec![ScalarSpec::new("log_z", 0.5)],
    }
}

fn model(spec: &TransformerSpec, seed: u64) -> Model {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Model::transformer(spec, &OptimizerSpec::default(), Device::Cpu, &mut rng).unwrap()
}

/// Random one-hot tokens per row, and a random linear functional of the outputs.
fn problem(seed: u64, rows: usize) -> Problem {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut input = vec![0.0f32; rows * TOKENS * FEATURES];
    for r in 0..rows {
        for t in 0..TOKENS {
            input[(r * TOKENS + t) * FEATURES + rng.gen_range(0..FEATURES)] = 1.0;
        }
    }
    Problem::new(rows, input, &[TOKENS * WORDS, TOKENS, 1], &mut rng)
}

#[test]
fn parameters_are_named_and_shaped_like_the_architecture() {
    let m = model(&spec(0.1), 1);
    let params = m.parameters();
    let find = |name: &str| {
        params
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no parameter {name}"))
    };
    assert_eq!(find("embed.weight").shape, [FEATURES, 8]);
    assert_eq!(find("layers.1.attn.q.weight").shape, [8, 8]);
    assert_eq!(find("layers.0.ff1.weight").shape, [8, 6]);
    assert_eq!(find("layers.0.ff2.weight").shape, [6, 8]);
    assert_eq!(find("layers.0.norm2.weight").data, [1.0; 8]);
    assert_eq!(find("layers.0.attn.k.bias").data, [0.0; 8]);
    assert_eq!(find("head.forward.position.weight").shape, [8, TOKENS]);
    assert_eq!(find("head.forward.word.weight").shape, [8, WORDS]);
    assert_eq!(find("head.backward.weight").shape, [8, 1]);
    assert_eq!(find("head.log_flow.weight").shape, [8, 1]);
    assert_eq!(find("scalar.log_z").data, [0.5]);
    // Xavier bound of the packed input projection: sqrt(6 / (d + 3d)).
    let bound = (6.0f32 / 32.0).sqrt();
    assert!(
        find("layers.0.attn.v.weight")
            .data
            .iter()
            .all(|w| w.abs() <= bound)
    );
    // The embedding is N(0, 1): some entries beyond the linear-init bound 1/sqrt(5).
    assert!(find("embed.weight").data.iter().any(|w| w.abs() > 1.0));
    // Same seed, same parameters; another seed, other parameters.
    assert_eq!(model(&spec(0.1), 1).parameters(), params);
    assert_ne!(model(&spec(0.1), 2).parameters(), params);
    assert_eq!(m.head_dims(), [TOKENS * WORDS, TOKENS, 1]);
}

#[test]
fn gradient_matches_finite_differences_on_every_tensor() {
    // Every head reads token 0 or every token, so the gradients of all readouts meet at the
    // encoder output (a readout that overwrote instead of adding gradients would fail here).
    let mut m = model(&spec(0.0), 3);
    let p = problem(4, 5);
    let (_, grads) = p.gradients(&mut m, 0);
    let base = m.parameters();
    assert_eq!(grads.len(), base.len());
    let fd = FiniteDiff {
        eps: 2e-3,
        kink: (5e-2, 1e-2),
        tol: (3e-2, 3e-3),
    };
    let mut probe = ChaCha8Rng::seed_from_u64(5);
    for (t, tensor) in base.iter().enumerate() {
        if tensor.name == "scalar.log_z" {
            assert_eq!(grads[t].data, [0.25]);
            continue;
        }
        let n = tensor.data.len();
        let mut idx = vec![0, n - 1];
        idx.extend((0..3).map(|_| probe.gen_range(0..n)));
        idx.sort_unstable();
        idx.dedup();
        // ReLU kinks within eps are skipped.
        fd.check(&mut m, &base, t, &idx, &grads[t].data, |m| p.functional(m));
        // Softmax is invariant to adding b_k . q_i to every score of query i: zero gradient.
        let invariant = tensor.name.ends_with("attn.k.bias");
        assert!(
            invariant || grads[t].data.iter().any(|g| g.abs() > 1e-5),
            "{} has zero gradient",
            tensor.name
        );
    }
}

#[test]
fn dropout_is_seeded_and_only_active_in_training() {
    let p = problem(6, 7);
    let fresh = || model(&spec(0.3), 7);
    let mut eval = Outputs::new();
    fresh().forward(&p.input, p.rows, &mut eval).unwrap();
    let (a, ga) = p.gradients(&mut fresh(), 10);
    let (b, gb) = p.gradients(&mut fresh(), 10);
    let (c, _) = p.gradients(&mut fresh(), 11);
    assert_eq!(a.head(0), b.head(0), "same RNG seed, same dropout masks");
    assert_eq!(ga, gb);
    assert_ne!(a.head(0), c.head(0), "another seed, other masks");
    assert_ne!(a.head(0), eval.head(0), "training forward uses dropout");
    // Without dropout, training and evaluation forwards agree exactly.
    let mut e0 = Outputs::new();
    model(&spec(0.0), 7)
        .forward(&p.input, p.rows, &mut e0)
        .unwrap();
    let (t0, _) = p.gradients(&mut model(&spec(0.0), 7), 10);
    for h in 0..3 {
        assert_eq!(t0.head(h), e0.head(h));
    }
}

#[test]
fn backward_after_another_forward_re_records_the_same_graph_with_the_same_masks() {
    let p = problem(8, 3);
    let mut m = model(&spec(0.3), 9);
    let (_, direct) = p.gradients(&mut m, 12);
    // Park another model's graph in this thread's slot in between.
    let mut other = model(&spec(0.3), 10);
    let mut out = Outputs::new();
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    m.forward_train(&p.input, p.rows, &mut out, &mut rng)
        .unwrap();
    other
        .forward_train(&p.input, p.rows, &mut Outputs::new(), &mut rng)
        .unwrap();
    m.backward(&p.coeffs, &[0.25]).unwrap();
    let re = m.gradients();
    for (a, b) in re.iter().zip(&direct) {
        // Accumulated twice: the re-recorded gradients equal the direct ones.
        for (x, y) in a.data.iter().zip(&b.data) {
            assert!((x - 2.0 * y).abs() <= 1e-5 * (1.0 + y.abs()), "{}", a.name);
        }
    }
}

#[test]
fn token_word_readout_is_position_plus_word() {
    // With zero word weights, each token's word logits are the word biases, so the joint logit
    // of (token, word) minus that of (token, 0) is bias[word] - bias[0] for every token.
    let mut m = model(&spec(0.0), 13);
    let mut params = m.parameters();
    let w = params
        .iter()
        .position(|t| t.name == "head.forward.word.weight")
        .unwrap();
    params[w].data.fill(0.0);
    let b = params
        .iter()
        .position(|t| t.name == "head.forward.word.bias")
        .unwrap();
    params[b].data = vec![0.0, 1.5, -2.0];
    m.set_parameters(&params).unwrap();
    let p = problem(14, 2);
    let mut out = Outputs::new();
    m.forward(&p.input, p.rows, &mut out).unwrap();
    for row in out.head(0).chunks_exact(TOKENS * WORDS) {
        for t in 0..TOKENS {
            let base = row[t * WORDS];
            assert!((row[t * WORDS + 1] - base - 1.5).abs() < 1e-5);
            assert!((row[t * WORDS + 2] - base + 2.0).abs() < 1e-5);
        }
    }
}

#[test]
fn training_reduces_a_simple_loss() {
    // Fit the forward head to a fixed target for a few Adam steps: the squared error falls.
    let mut m = model(&spec(0.1), 15);
    let p = problem(16, 8);
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let mut out = Outputs::new();
    let mut grads = Outputs::new();
    let loss = |out: &Outputs| -> f64 {
        out.head(0)
            .iter()
            .zip(p.coeffs.head(0))
            .map(|(y, c)| f64::from(y - c).powi(2))
            .sum()
    };
    m.forward(&p.input, p.rows, &mut out).unwrap();
    let before = loss(&out);
    for _ in 0..150 {
        m.forward_train(&p.input, p.rows, &mut out, &mut rng)
            .unwrap();
        grads.reset(p.rows, &m.head_dims());
        for ((g, y), c) in grads
            .head_mut(0)
            .iter_mut()
            .zip(out.head(0))
            .zip(p.coeffs.head(0))
        {
            *g = 2.0 * (y - c);
        }
        m.backward(&grads, &[0.0]).unwrap();
        m.step().unwrap();
    }
    m.forward(&p.input, p.rows, &mut out).unwrap();
    let after = loss(&out);
    assert!(after < 0.4 * before, "loss {before} -> {after}");
}

#[test]
fn invalid_specs_are_clear_errors() {
    let build = |s: TransformerSpec| {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        Model::transformer(&s, &OptimizerSpec::default(), Device::Cpu, &mut rng).unwrap_err()
    };
    let msg = |e: NnError| e.to_string();
    let mut s = spec(0.1);
    s.attention_heads = 3;
    assert!(msg(build(s)).contains("attention_heads (3) must divide d_model (8)"));
    let mut s = spec(0.1);
    s.dropout = 1.0;
    assert!(msg(build(s)).contains("dropout must be in [0, 1), found 1"));
    let mut s = spec(0.1);
    s.heads[0].dim = 11;
    assert!(msg(build(s)).contains("head `forward` (ForwardActions) must have 12 outputs"));
    let mut s = spec(0.1);
    s.tokens = 0;
    assert!(msg(build(s)).contains("tokens must be at least 1"));
    // Input of the wrong width.
    let m = model(&spec(0.1), 0);
    let err = m
        .forward(&[0.0; 7], 1, &mut Outputs::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("input"), "{err}");
}

#[test]
fn save_and_load_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.safetensors");
    let a = model(&spec(0.1), 20);
    a.save_safetensors(&path).unwrap();
    let mut b = model(&spec(0.1), 21);
    b.load_safetensors(&path).unwrap();
    assert_eq!(a.parameters(), b.parameters());
    // An MLP-shaped file does not fit.
    let mut c = model(
        &TransformerSpec {
            d_model: 16,
            ..spec(0.1)
        },
        0,
    );
    assert!(c.load_safetensors(&path).is_err());
}

/// One-hot tokens are embedded by gathering rows of the embedding matrix; any other input by
/// the product with it. The two paths agree on outputs and on every parameter gradient: a batch
/// of one-hot rows (gather path) against the same rows followed by one row whose first token is
/// not one-hot (so the whole batch takes the product path), with zero upstream gradient on the
/// extra row. The forward agrees to rounding (the product only adds exact zeros, but the GEMM
/// may fuse its multiply-adds differently); gradients may differ in summation order, so the
/// tolerance is 1e-5 relative to the largest entry of each tensor.
#[test]
fn one_hot_gather_agrees_with_the_embedding_product() {
    let s = spec(0.0);
    let p = problem(21, 6);
    let mut mixed = Problem {
        rows: p.rows + 1,
        input: p.input.clone(),
        coeffs: Outputs::new(),
    };
    let mut extra = vec![0.0f32; TOKENS * FEATURES];
    extra[0] = 0.5;
    extra[1] = 0.5;
    for t in 1..TOKENS {
        extra[t * FEATURES + t % FEATURES] = 1.0;
    }
    mixed.input.extend(extra);
    mixed.coeffs.reset(mixed.rows, &[TOKENS * WORDS, TOKENS, 1]);
    for h in 0..3 {
        let n = p.coeffs.head(h).len();
        mixed.coeffs.head_mut(h)[..n].copy_from_slice(p.coeffs.head(h));
    }

    let m = model(&s, 4);
    let (mut a, mut b) = (Outputs::new(), Outputs::new());
    m.forward(&p.input, p.rows, &mut a).unwrap();
    m.forward(&mixed.input, mixed.rows, &mut b).unwrap();
    for h in 0..a.num_heads() {
        for (x, y) in a.head(h).iter().zip(b.head(h)) {
            assert!(
                (x - y).abs() <= 1e-6 * x.abs().max(1.0),
                "head {h}: {x} vs {y}"
            );
        }
    }

    let (_, ga) = p.gradients(&mut model(&s, 4), 9);
    let (_, gb) = mixed.gradients(&mut model(&s, 4), 9);
    assert_eq!(ga.len(), gb.len());
    for (x, y) in ga.iter().zip(&gb) {
        assert_eq!(x.name, y.name);
        let scale = x.data.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
        for (u, v) in x.data.iter().zip(&y.data) {
            assert!(
                (u - v).abs() <= 1e-5 * scale,
                "{}: {u} vs {v} (scale {scale})",
                x.name
            );
        }
    }
    // The embedding gradient is not trivially zero on either path.
    let embed = ga.iter().find(|t| t.name == "embed.weight").unwrap();
    assert!(embed.data.iter().any(|v| *v != 0.0));
}

//! The host kernels against the reference (dfdx) path on the same model: outputs, gradients and
//! trained parameters bitwise equal.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use softgfn_nn::{
    Device, HeadSpec, MlpSpec, Model, NamedTensor, OptimizerSpec, Outputs, ScalarSpec,
};

fn spec(input_dim: usize, hidden: &[usize], heads: &[usize]) -> MlpSpec {
    MlpSpec {
        input_dim,
        hidden_dims: hidden.to_vec(),
        heads: heads
            .iter()
            .enumerate()
            .map(|(i, &d)| HeadSpec::new(format!("h{i}"), d))
            .collect(),
        scalars: vec![ScalarSpec::new("log_z", 0.5)],
    }
}

fn model(spec: &MlpSpec, seed: u64) -> Model {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Model::mlp(spec, &OptimizerSpec::default(), Device::Cpu, &mut rng).unwrap()
}

fn input(rows: usize, dim: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..rows * dim)
        .map(|i| {
            // Some exact zeros and one-hot-like values, as the environments produce.
            if i % 5 == 0 {
                0.0
            } else if i % 7 == 0 {
                1.0
            } else {
                rng.gen_range(-2.0f32..2.0)
            }
        })
        .collect()
}

fn head_grads(out: &Outputs, rng: &mut ChaCha8Rng) -> Outputs {
    let dims: Vec<usize> = (0..out.num_heads()).map(|h| out.dim(h)).collect();
    let mut g = Outputs::new();
    g.reset(out.rows(), &dims);
    for h in 0..dims.len() {
        for (i, v) in g.head_mut(h).iter_mut().enumerate() {
            // Exact zeros and negative zeros too: the host path must turn -0 into +0 as dfdx does.
            *v = match i % 9 {
                0 => 0.0,
                4 => -0.0,
                _ => rng.gen_range(-1.0f32..1.0),
            };
        }
    }
    g
}

/// Bit patterns of every head.
type OutBits = Vec<Vec<u32>>;
/// Named bit patterns of tensors.
type TensorBits = Vec<(String, Vec<u32>)>;

fn bits_out(out: &Outputs) -> OutBits {
    (0..out.num_heads())
        .map(|h| out.head(h).iter().map(|v| v.to_bits()).collect())
        .collect()
}

fn bits(t: &[NamedTensor]) -> TensorBits {
    t.iter()
        .map(|t| (t.name.clone(), t.data.iter().map(|v| v.to_bits()).collect()))
        .collect()
}

/// Forward, training forward and two accumulated backwards on `m`, with the kernels chosen by
/// `reference`; returns every output and the pending gradients.
fn run(m: &mut Model, reference: bool, rows: &[usize], seed: u64) -> (Vec<OutBits>, TensorBits) {
    m.set_reference_kernels(reference).unwrap();
    assert_eq!(m.uses_host_kernels(), !reference);
    let dim = m.spec().input_dim();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut outs = Vec::new();
    let mut out = Outputs::new();
    for &r in rows {
        let x = input(r, dim, &mut rng);
        m.forward(&x, r, &mut out).unwrap();
        outs.push(bits_out(&out));
        m.forward_train(&x, r, &mut out, &mut rng).unwrap();
        outs.push(bits_out(&out));
        let g = head_grads(&out, &mut rng);
        // An inference forward between the training forward and its backward.
        let y = input(3, dim, &mut rng);
        let mut other = Outputs::new();
        m.forward(&y, 3, &mut other).unwrap();
        outs.push(bits_out(&other));
        m.backward(&g, &[0.25]).unwrap();
    }
    let grads = bits(&m.gradients());
    m.step().unwrap();
    (outs, grads)
}

#[test]
fn host_mlp_equals_the_dfdx_path_bitwise() {
    let cases: [(usize, &[usize], &[usize]); 4] = [
        (7, &[16, 12], &[5, 1, 3]),
        (80, &[256, 256], &[5, 1]),
        (6, &[], &[4, 2]),
        (3, &[9], &[1]),
    ];
    for (case, (input_dim, hidden, heads)) in cases.into_iter().enumerate() {
        let s = spec(input_dim, hidden, heads);
        for rows in [vec![0], vec![1], vec![2, 1], vec![17, 0, 64], vec![300]] {
            let seed = 10 + case as u64;
            let mut host = model(&s, seed);
            let mut reference = model(&s, seed);
            let (oh, gh) = run(&mut host, false, &rows, seed);
            let (or, gr) = run(&mut reference, true, &rows, seed);
            assert_eq!(oh, or, "outputs differ: case {case}, rows {rows:?}");
            assert_eq!(gh, gr, "gradients differ: case {case}, rows {rows:?}");
            assert_eq!(
                bits(&host.parameters()),
                bits(&reference.parameters()),
                "parameters after the step differ: case {case}, rows {rows:?}"
            );
        }
    }
}

#[test]
fn training_on_host_kernels_equals_training_on_the_dfdx_path() {
    let s = spec(10, &[32, 32], &[6, 1]);
    let mut host = model(&s, 3);
    let mut reference = model(&s, 3);
    reference.set_reference_kernels(true).unwrap();
    let mut target_h = host.clone_model();
    let mut target_r = reference.clone_model();
    target_r.set_reference_kernels(true).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for it in 0..30 {
        let rows = 1 + (it * 7) % 40;
        let x = input(rows, 10, &mut rng);
        let mut gs = Vec::new();
        for (m, t) in [(&mut host, &mut target_h), (&mut reference, &mut target_r)] {
            let mut out = Outputs::new();
            let mut drop_rng = ChaCha8Rng::seed_from_u64(it as u64);
            m.forward_train(&x, rows, &mut out, &mut drop_rng).unwrap();
            let mut tout = Outputs::new();
            t.forward(&x, rows, &mut tout).unwrap();
            // A loss that depends on the outputs: squared distance to the target's outputs.
            let mut g = Outputs::new();
            g.reset(rows, &[6, 1]);
            for h in 0..2 {
                for ((gv, y), ty) in g.head_mut(h).iter_mut().zip(out.head(h)).zip(tout.head(h)) {
                    *gv = 2.0 * (y - ty) + 0.1;
                }
            }
            m.backward(&g, &[f32::from(it as u8) * 0.01]).unwrap();
            gs.push(m.step().unwrap().to_bits());
            t.polyak_from(m, 0.1).unwrap();
        }
        assert_eq!(gs[0], gs[1], "gradient norms differ at iteration {it}");
    }
    assert_eq!(bits(&host.parameters()), bits(&reference.parameters()));
    assert_eq!(bits(&target_h.parameters()), bits(&target_r.parameters()));
}

#[test]
fn switching_kernels_in_the_middle_of_a_step_keeps_the_sums() {
    let s = spec(5, &[8], &[3]);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let x = input(6, 5, &mut rng);
    let mut out = Outputs::new();
    let mut g = Outputs::new();
    let mut grads = Vec::new();
    for order in [
        [true, false, false],
        [false, false, false],
        [true, true, true],
    ] {
        let mut m = model(&s, 1);
        for (i, &reference) in order.iter().enumerate() {
            m.set_reference_kernels(reference).unwrap();
            m.forward_train(&x, 6, &mut out, &mut rng).unwrap();
            g.reset(6, &[3]);
            for (k, v) in g.head_mut(0).iter_mut().enumerate() {
                *v = (k + i) as f32 * 0.37 - 1.0;
            }
            m.backward(&g, &[1.0 + i as f32]).unwrap();
        }
        grads.push(bits(&m.gradients()));
    }
    assert_eq!(grads[0], grads[1]);
    assert_eq!(grads[0], grads[2]);
}

#[test]
fn host_mlp_rows_do_not_depend_on_their_batch() {
    // A row's outputs inside any batch of at least 2 rows are bitwise its outputs inside a batch
    // of 2 (a batch of 1 takes gemm's matrix-vector path, which sums in another order), as long
    // as no layer has more than 512 inputs (gemm splits longer sums into blocks whose length may
    // depend on the batch): the training forward reuses rows on this ground.
    for (input_dim, hidden, heads) in [
        (80usize, vec![256usize, 256], vec![5usize, 4, 1]),
        (7, vec![16, 12], vec![5, 1, 3]),
        (2, vec![3], vec![1, 2]),
        (512, vec![64, 512], vec![1, 70]),
        (33, vec![], vec![2, 1, 100]),
    ] {
        let s = spec(input_dim, &hidden, &heads);
        let m = model(&s, 5);
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let total = 1500;
        let big = input(total, input_dim, &mut rng);
        let mut pair_bits = Vec::new();
        let mut out = Outputs::new();
        for r in 0..total {
            // The row with its successor (or predecessor).
            let (start, at) = if r + 1 < total { (r, 0) } else { (r - 1, 1) };
            m.forward(
                &big[start * input_dim..(start + 2) * input_dim],
                2,
                &mut out,
            )
            .unwrap();
            pair_bits.push(
                (0..heads.len())
                    .map(|h| {
                        let d = heads[h];
                        out.head(h)[at * d..(at + 1) * d]
                            .iter()
                            .map(|v| v.to_bits())
                            .collect::<Vec<u32>>()
                    })
                    .collect::<Vec<_>>(),
            );
        }
        for (start, n) in [
            (3usize, 3usize),
            (10, 16),
            (7, 17),
            (100, 64),
            (0, 65),
            (9, 129),
            (200, 640),
            (0, 1500),
        ] {
            m.forward(
                &big[start * input_dim..(start + n) * input_dim],
                n,
                &mut out,
            )
            .unwrap();
            for r in 0..n {
                for h in 0..heads.len() {
                    let d = heads[h];
                    let got: Vec<u32> = out.head(h)[r * d..(r + 1) * d]
                        .iter()
                        .map(|v| v.to_bits())
                        .collect();
                    assert_eq!(
                        got,
                        pair_bits[start + r][h],
                        "dims {input_dim} {hidden:?}: row {r} of a batch of {n} differs from \
                         the row in a batch of 2 (head {h})"
                    );
                }
            }
        }
    }
}

#[test]
fn host_adam_equals_dfdx_adam_bitwise() {
    // The host path steps with its own fused Adam; the reference path with dfdx's ops. Weight
    // decay, group learning rates, unusual betas and gradients of every magnitude (zeros,
    // negative zeros, tiny and huge values) must give the same parameters, moments and norms.
    let s = spec(9, &[24, 16], &[5, 1]);
    let optimizer = OptimizerSpec {
        adam: softgfn_nn::AdamConfig {
            learning_rate: 3e-3,
            beta1: 0.85,
            beta2: 0.995,
            eps: 1e-7,
            weight_decay: 3e-5,
        },
        group_learning_rates: vec![
            ("scalar:log_z".to_string(), 0.1),
            ("head:h1".to_string(), 7e-4),
        ],
    };
    let build = || {
        let mut rng = ChaCha8Rng::seed_from_u64(21);
        Model::mlp(&s, &optimizer, Device::Cpu, &mut rng).unwrap()
    };
    let mut host = build();
    let mut reference = build();
    reference.set_reference_kernels(true).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(22);
    for it in 0..25usize {
        let rows = 2 + it % 11;
        let x = input(rows, 9, &mut rng);
        let mut g = Outputs::new();
        g.reset(rows, &[5, 1]);
        for h in 0..2 {
            for (i, v) in g.head_mut(h).iter_mut().enumerate() {
                *v = match (i + it) % 13 {
                    0 => 0.0,
                    1 => -0.0,
                    2 => 1e-30,
                    3 => -3e4,
                    _ => rng.gen_range(-2.0f32..2.0),
                };
            }
        }
        let scalar = [if it % 4 == 0 { 0.0 } else { it as f32 * -0.3 }];
        let mut norms = Vec::new();
        for m in [&mut host, &mut reference] {
            let mut out = Outputs::new();
            let mut drop_rng = ChaCha8Rng::seed_from_u64(it as u64);
            m.forward_train(&x, rows, &mut out, &mut drop_rng).unwrap();
            m.backward(&g, &scalar).unwrap();
            if it % 5 == 3 {
                // Two backwards accumulated before the step.
                m.forward_train(&x, rows, &mut out, &mut drop_rng).unwrap();
                m.backward(&g, &scalar).unwrap();
            }
            norms.push(m.step().unwrap().to_bits());
        }
        assert_eq!(norms[0], norms[1], "gradient norms differ at step {it}");
        assert_eq!(
            bits(&host.parameters()),
            bits(&reference.parameters()),
            "parameters differ after step {it}"
        );
    }
    let (sh, sr) = (host.optimizer_state(), reference.optimizer_state());
    assert_eq!(bits(&sh.tensors), bits(&sr.tensors));
    assert_eq!(sh.steps, sr.steps);
}

/// Rows of 0/1 values: `groups` one-hot groups of `width` (the hypergrid's encoding) when
/// `groups > 0`, else random bits (some rows all zero).
fn binary_input(rows: usize, dim: usize, groups: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let mut x = vec![0.0f32; rows * dim];
    for row in x.chunks_exact_mut(dim) {
        if let Some(width) = dim.checked_div(groups) {
            for g in 0..groups {
                row[g * width + rng.gen_range(0..width)] = 1.0;
            }
        } else if rng.gen_range(0..5) > 0 {
            for v in row.iter_mut() {
                *v = if rng.gen_bool(0.3) { 1.0 } else { 0.0 };
            }
        }
    }
    x
}

#[test]
fn one_hot_inputs_take_the_gather_bitwise() {
    // 0/1 inputs make the first layer a gather and its weight gradient a scatter-add, and
    // small batches take the small-batch kernel: every output, gradient and trained parameter
    // must still be bitwise the dfdx path's, for batches on both sides of every size limit
    // (1 and 2 rows: gemm's other paths; over 512: gemm's blocks; over 32: gemm).
    for (dim, groups, hidden, heads) in [
        (80usize, 4usize, vec![256usize, 256], vec![5usize, 4, 1]),
        (12, 0, vec![16], vec![3]),
        (9, 3, vec![], vec![2, 7]),
    ] {
        let s = spec(dim, &hidden, &heads);
        for rows in [
            vec![1],
            vec![2],
            vec![3],
            vec![16, 5, 2],
            vec![40],
            vec![150],
            vec![513, 600],
        ] {
            let mut models = [model(&s, 31), model(&s, 31)];
            let mut results = Vec::new();
            for (m, reference) in models.iter_mut().zip([false, true]) {
                m.set_reference_kernels(reference).unwrap();
                let mut rng = ChaCha8Rng::seed_from_u64(32);
                let mut outs = Vec::new();
                let mut out = Outputs::new();
                for &r in &rows {
                    let x = binary_input(r, dim, groups, &mut rng);
                    m.forward(&x, r, &mut out).unwrap();
                    outs.push(bits_out(&out));
                    m.forward_train(&x, r, &mut out, &mut rng).unwrap();
                    outs.push(bits_out(&out));
                    let g = head_grads(&out, &mut rng);
                    m.backward(&g, &[0.5]).unwrap();
                }
                let grads = bits(&m.gradients());
                m.step().unwrap();
                results.push((outs, grads, bits(&m.parameters())));
            }
            assert!(
                results[0] == results[1],
                "host and dfdx paths differ: dim {dim}, rows {rows:?}"
            );
        }
    }
}

#[test]
fn non_finite_first_layer_weights_keep_gemm_results() {
    // `0 * inf` is NaN in gemm's sums: a gather that skipped the zeros would differ, so
    // non-finite weights take gemm.
    for hidden in [vec![], vec![32usize]] {
        let s = spec(80, &hidden, &[5]);
        let width = hidden.first().copied().unwrap_or(5);
        let mut outs = Vec::new();
        for reference in [false, true] {
            let mut m = model(&s, 41);
            m.set_reference_kernels(reference).unwrap();
            let mut rng = ChaCha8Rng::seed_from_u64(42);
            let x = binary_input(6, 80, 4, &mut rng);
            let mut out = Outputs::new();
            // A forward with finite weights first: the kernel must notice that they changed.
            m.forward(&x, 6, &mut out).unwrap();
            m.forward_train(&x, 6, &mut out, &mut rng).unwrap();
            let mut params = m.parameters();
            let w = params.iter_mut().find(|t| t.shape == [80, width]).unwrap();
            w.data[3 * width + 2] = f32::INFINITY;
            m.set_parameters(&params).unwrap();
            m.forward(&x, 6, &mut out).unwrap();
            let inference = bits_out(&out);
            m.forward_train(&x, 6, &mut out, &mut rng).unwrap();
            outs.push((inference, bits_out(&out)));
        }
        if hidden.is_empty() {
            assert!(outs[0].0[0].iter().any(|&b| f32::from_bits(b).is_nan()));
            assert!(outs[0].1[0].iter().any(|&b| f32::from_bits(b).is_nan()));
        }
        assert_eq!(outs[0], outs[1], "hidden {hidden:?}");
    }
}

//! This core's practical single-thread f32 GEMM rate at the shapes softgfn's networks use, so
//! that "near the floor" is a ratio: dfdx's `matmul` (what the networks call) and the raw `gemm`
//! crate that dfdx's CPU backend calls underneath. Throughput is reported in elements per second
//! where one element is one floating-point operation (`2 * m * k * n` per product), i.e. criterion's
//! `Gelem/s` reads as GFLOP/s. Run pinned and single-threaded:
//! `RAYON_NUM_THREADS=1 taskset -c 1 cargo bench -p softgfn-benches --bench gemm`.
//!
//! Shapes (`m x k` times `k x n`):
//! - transformer linear layers (d_model 64, feed-forward 64), 16 tokens per state: 16 states
//!   (one sampling step of 16 trajectories, 256 rows), 240 states (TB's update on 16 trajectories
//!   of 15 steps at k = 8, 3,840 rows) and 256 states (a replay batch, 4,096 rows);
//! - the weight gradient of that layer (`64 x 3840` times `3840 x 64`, a transposed operand);
//! - attention scores, one `16 x 8` times `8 x 16` product per state and head (8 heads, d_model
//!   64), batched over 16 states;
//! - the token-word readouts: 4,096 actions at k = 8 (16 tokens x 256 words, 240 states) and
//!   13,312 at k = 10 (13 tokens x 1,024 words, 192 states);
//! - the MLP: 256 wide, batches of 16 and 256.
#![expect(
    missing_docs,
    reason = "criterion_group! generates an undocumented function"
)]
// The raw `gemm` entry point takes raw pointers; every call below passes pointers into live
// vectors of exactly the sizes and strides it is told.
#![allow(unsafe_code)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dfdx::prelude::{Cpu, PermuteTo, Tensor, TensorFromVec, TryMatMul, ZerosTensor};

/// One GEMM shape: `(m x k) @ (k x n)`, optionally with the left operand stored transposed
/// (`k x m` row-major, as in a weight gradient `x^T dy`).
#[derive(Clone, Copy, Debug)]
struct Shape {
    name: &'static str,
    m: usize,
    k: usize,
    n: usize,
    lhs_transposed: bool,
}

const SHAPES: &[Shape] = &[
    Shape {
        name: "tf_linear_16_states_256x64x64",
        m: 256,
        k: 64,
        n: 64,
        lhs_transposed: false,
    },
    Shape {
        name: "tf_linear_240_states_3840x64x64",
        m: 3840,
        k: 64,
        n: 64,
        lhs_transposed: false,
    },
    Shape {
        name: "tf_linear_256_states_4096x64x64",
        m: 4096,
        k: 64,
        n: 64,
        lhs_transposed: false,
    },
    Shape {
        name: "tf_weight_grad_64x3840x64_lhsT",
        m: 64,
        k: 3840,
        n: 64,
        lhs_transposed: true,
    },
    Shape {
        name: "readout_k8_3840x64x256",
        m: 3840,
        k: 64,
        n: 256,
        lhs_transposed: false,
    },
    Shape {
        name: "readout_k10_2496x64x1024",
        m: 2496,
        k: 64,
        n: 1024,
        lhs_transposed: false,
    },
    Shape {
        name: "mlp_256_batch16_16x256x256",
        m: 16,
        k: 256,
        n: 256,
        lhs_transposed: false,
    },
    Shape {
        name: "mlp_256_batch256_256x256x256",
        m: 256,
        k: 256,
        n: 256,
        lhs_transposed: false,
    },
];

/// Deterministic, non-trivial operand values.
fn values(len: usize, salt: usize) -> Vec<f32> {
    (0..len)
        .map(|i| (((i * 7 + salt * 13) % 97) as f32 - 48.0) / 97.0)
        .collect()
}

fn flops(s: &Shape) -> u64 {
    2 * (s.m * s.k * s.n) as u64
}

/// `dst = lhs @ rhs` through the raw `gemm` crate, one thread.
fn raw_gemm(s: &Shape, lhs: &[f32], rhs: &[f32], dst: &mut [f32]) {
    assert_eq!(lhs.len(), s.m * s.k);
    assert_eq!(rhs.len(), s.k * s.n);
    assert_eq!(dst.len(), s.m * s.n);
    // (row stride, column stride) of the left operand.
    let (lhs_rs, lhs_cs) = if s.lhs_transposed {
        (1, s.m as isize)
    } else {
        (s.k as isize, 1)
    };
    // SAFETY: the three slices have the asserted lengths, and the strides address exactly
    // `m x k`, `k x n` and `m x n` elements inside them; `dst` does not alias the operands.
    unsafe {
        gemm::gemm(
            s.m,
            s.n,
            s.k,
            dst.as_mut_ptr(),
            1,
            s.n as isize,
            false,
            lhs.as_ptr(),
            lhs_cs,
            lhs_rs,
            rhs.as_ptr(),
            1,
            s.n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

fn gemm_shapes(c: &mut Criterion) {
    let dev = Cpu::default();
    let mut g = c.benchmark_group("gemm_f32_single_thread");
    g.sample_size(20);
    g.warm_up_time(Duration::from_millis(300));
    g.measurement_time(Duration::from_secs(2));
    for s in SHAPES {
        g.throughput(Throughput::Elements(flops(s)));
        let lhs = values(s.m * s.k, 1);
        let rhs = values(s.k * s.n, 2);
        let mut dst = vec![0.0f32; s.m * s.n];
        g.bench_function(BenchmarkId::new("raw_gemm", s.name), |b| {
            b.iter(|| {
                raw_gemm(s, black_box(&lhs), black_box(&rhs), &mut dst);
                black_box(&dst);
            })
        });
        let a: Tensor<(usize, usize), f32, Cpu> = if s.lhs_transposed {
            dev.tensor_from_vec(lhs.clone(), (s.k, s.m))
        } else {
            dev.tensor_from_vec(lhs.clone(), (s.m, s.k))
        };
        let w: Tensor<(usize, usize), f32, Cpu> = dev.tensor_from_vec(rhs.clone(), (s.k, s.n));
        // Both paths compute the same product.
        raw_gemm(s, &lhs, &rhs, &mut dst);
        let check = if s.lhs_transposed {
            a.clone().permute::<(usize, usize), _>().matmul(w.clone())
        } else {
            a.clone().matmul(w.clone())
        };
        let check = check.as_vec();
        let worst = check
            .iter()
            .zip(&dst)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst < 1e-3,
            "dfdx and gemm disagree by {worst} on {}",
            s.name
        );
        g.bench_function(BenchmarkId::new("dfdx_matmul", s.name), |b| {
            b.iter(|| {
                let y = if s.lhs_transposed {
                    black_box(&a)
                        .clone()
                        .permute::<(usize, usize), _>()
                        .matmul(w.clone())
                } else {
                    black_box(&a).clone().matmul(w.clone())
                };
                black_box(y)
            })
        });
    }
    // Attention scores: (states, heads, 16, 8) @ (states, heads, 8, 16), 16 states, 8 heads.
    let (states, heads, tokens, dh) = (16usize, 8usize, 16usize, 8usize);
    let batched_flops = 2 * (states * heads * tokens * dh * tokens) as u64;
    g.throughput(Throughput::Elements(batched_flops));
    let q: Tensor<(usize, usize, usize, usize), f32, Cpu> =
        dev.zeros_like(&(states, heads, tokens, dh));
    let k: Tensor<(usize, usize, usize, usize), f32, Cpu> =
        dev.zeros_like(&(states, heads, dh, tokens));
    g.bench_function(
        BenchmarkId::new("dfdx_matmul", "attention_scores_16_states_8_heads_16x8x16"),
        |b| b.iter(|| black_box(black_box(&q).clone().matmul(k.clone()))),
    );
    let qs = values(states * heads * tokens * dh, 3);
    let ks = values(states * heads * dh * tokens, 4);
    let mut out = vec![0.0f32; states * heads * tokens * tokens];
    let one = Shape {
        name: "attention",
        m: tokens,
        k: dh,
        n: tokens,
        lhs_transposed: false,
    };
    g.bench_function(
        BenchmarkId::new("raw_gemm", "attention_scores_16_states_8_heads_16x8x16"),
        |b| {
            b.iter(|| {
                for i in 0..states * heads {
                    raw_gemm(
                        &one,
                        &qs[i * tokens * dh..(i + 1) * tokens * dh],
                        &ks[i * dh * tokens..(i + 1) * dh * tokens],
                        &mut out[i * tokens * tokens..(i + 1) * tokens * tokens],
                    );
                }
                black_box(&out);
            })
        },
    );
    g.finish();
}

criterion_group!(benches, gemm_shapes);
criterion_main!(benches);

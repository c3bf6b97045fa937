//! The transformer's host kernel: the forward and backward of [`TransformerArch`] over host
//! slices, with one reusable workspace.
//!
//! It computes what the dfdx path ([`TransformerArch::run`]) computes, in the same order of
//! operations per element, fused into few passes:
//!
//! - the embedding is a gather of rows for one-hot tokens (a product otherwise) plus the
//!   sinusoidal position, times the first dropout mask;
//! - per layer, `q | k | v` is one GEMM against the three projections packed side by side; the
//!   attention of every (row, head) runs in hand-written loops over the `tokens x head_dim`
//!   blocks (scores, scale, softmax with a vectorisable `exp`, dropout, weights times values),
//!   keeping the probabilities for the backward; the output projection's bias, dropout, the
//!   residual and LayerNorm are one pass per row (keeping the normalised values and `1 / std`);
//!   the feed-forward's bias and ReLU are one pass;
//! - the readouts write straight into the head outputs.
//!
//! The backward mirrors it and adds every parameter gradient into the caller's buffers. Nothing
//! is allocated once the workspace has grown to the largest batch. Results equal the dfdx path
//! to rounding (GEMM blocking and `exp` differ in the last bits), see the tests.

use super::{HostNet, RowRecords, matmul};
use crate::Outputs;
use crate::transformer::{LAYER_NORM_EPS, LayerParams, Readout, TransformerArch};

/// A strided read-only matrix view: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy, Debug)]
struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major `rows x cols` matrix.
    fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose (no copy).
    fn t(self) -> Self {
        Self {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }
}

/// A strided mutable matrix view.
#[derive(Debug)]
struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> MatMut<'a> {
    /// A row-major `rows x cols` matrix.
    fn new(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }
}

/// `dst = lhs @ rhs`, or `dst += lhs @ rhs` with `accumulate` (the seam's GEMM).
fn gemm(dst: MatMut<'_>, lhs: MatRef<'_>, rhs: MatRef<'_>, accumulate: bool) {
    assert!(
        lhs.rows == dst.rows && rhs.cols == dst.cols && lhs.cols == rhs.rows,
        "gemm shapes: {}x{} @ {}x{} into {}x{}",
        lhs.rows,
        lhs.cols,
        rhs.rows,
        rhs.cols,
        dst.rows,
        dst.cols
    );
    matmul(
        (dst.rows, lhs.cols, dst.cols),
        accumulate,
        lhs.data,
        [lhs.rs, lhs.cs],
        rhs.data,
        [rhs.rs, rhs.cs],
        dst.data,
        [dst.rs, dst.cs],
    );
}

/// Resizes `v` to exactly `len` values (the allocation never shrinks; values that were there
/// stay, new ones are zero).
fn grow(v: &mut Vec<f32>, len: usize) {
    v.resize(len, 0.0);
}

/// What one encoder layer keeps for the backward (in an inference forward, one instance is
/// reused by every layer).
#[derive(Debug, Default)]
struct LayerRecord {
    /// `[q | k | v]` weights packed side by side, `d x 3d`.
    wqkv: Vec<f32>,
    /// `[q | k | v]` biases, `3d`.
    bqkv: Vec<f32>,
    /// Projected queries, keys and values, `n x 3d`.
    qkv: Vec<f32>,
    /// Attention probabilities before dropout, `rows x heads x t x t`.
    probs: Vec<f32>,
    /// Attention output (heads side by side), `n x d`.
    attn: Vec<f32>,
    /// First LayerNorm's normalised input and `1 / std` per token.
    xhat1: Vec<f32>,
    rstd1: Vec<f32>,
    /// First LayerNorm's output (the feed-forward's input), `n x d`.
    x1: Vec<f32>,
    /// ReLU output before dropout, `n x ff`.
    f1: Vec<f32>,
    /// ReLU output after dropout, `n x ff` (only with masks).
    f1m: Vec<f32>,
    /// Second LayerNorm's normalised input and `1 / std` per token.
    xhat2: Vec<f32>,
    rstd2: Vec<f32>,
}

/// Small per-(row, head) buffers of the attention loops.
#[derive(Debug, Default)]
struct HeadScratch {
    /// Keys transposed, `dh x tp` (`t` padded to whole lanes).
    kt: Vec<f32>,
    /// Keys, `t x dhp` (`dh` padded to whole lanes).
    kk: Vec<f32>,
    /// Queries, `t x dhp`.
    qq: Vec<f32>,
    /// Values, `t x dhp`.
    vv: Vec<f32>,
    /// Values transposed, `dh x tp`.
    vt: Vec<f32>,
    /// Scores, then weights (probabilities after dropout), `t x tp`.
    pm: Vec<f32>,
    /// d loss / d weights, `t x tp`.
    dp: Vec<f32>,
    /// One value per query row (maxima, then inverse sums), `t`.
    rowv: Vec<f32>,
    /// d loss / d scores, `t x tp`.
    ds: Vec<f32>,
    /// d loss / d attention output of this head, `t x dhp`.
    da: Vec<f32>,
}

/// Every buffer of the kernel; grows to the largest batch and is reused.
#[derive(Debug, Default)]
struct Workspace {
    /// Rows of the recorded forward.
    rows: usize,
    /// Whether a recorded forward waits for its backward.
    recorded: bool,
    /// Whether the recorded forward used dropout masks.
    masked: bool,
    /// Layer inputs and outputs (`layers + 1` when recording, two otherwise), `n x d` each.
    xs: Vec<Vec<f32>>,
    layers: Vec<LayerRecord>,
    /// GEMM output scratch.
    tmp: Vec<f32>,
    /// Position logits of a token-word readout, `rows x t`.
    pos: Vec<f32>,
    head: HeadScratch,
    /// The recorded forward's masks, token ids (one-hot input) or features (dense input).
    masks: Vec<Vec<f32>>,
    tokens: Option<Vec<usize>>,
    input: Vec<f32>,
    // Backward buffers.
    dx: Vec<f32>,
    dtmp: Vec<f32>,
    dattn: Vec<f32>,
    dqkv: Vec<f32>,
    dff: Vec<f32>,
    dw: Vec<f32>,
    gpos: Vec<f32>,
    /// A training forward that reuses rows: the rows it computes, their inputs, token ids and
    /// outputs, and the full-batch buffers the records are gathered into.
    reuse: ReuseScratch,
}

/// Buffers of [`HostTransformer::forward_reusing`].
#[derive(Debug, Default)]
struct ReuseScratch {
    rows: Vec<usize>,
    input: Vec<f32>,
    tokens: Vec<usize>,
    out: Outputs,
    dims: Vec<usize>,
    full: Vec<Vec<f32>>,
}

/// The transformer's [`HostNet`].
#[derive(Debug)]
pub(crate) struct HostTransformer {
    arch: TransformerArch,
    ws: Workspace,
    /// Most token rows of one pass of an inference forward ([`INFERENCE_TOKEN_ROWS`]).
    chunk_token_rows: usize,
}

impl HostTransformer {
    pub(crate) fn new(arch: &TransformerArch) -> Self {
        Self {
            arch: arch.clone(),
            ws: Workspace::default(),
            chunk_token_rows: INFERENCE_TOKEN_ROWS,
        }
    }
}

/// `e^x` for `x <= 0` (inputs below -87 give `e^-87`), vectorisable: `x = n ln 2 + r` with
/// `|r| <= ln 2 / 2`, a degree-6 Taylor polynomial for `e^r` (relative error below 2e-7) and
/// `2^n` built in the exponent bits.
#[inline(always)]
fn exp_nonpositive<A: Arith>(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 * 2^23: adding it rounds to an integer held in the low mantissa bits.
    const MAGIC: f32 = 12_582_912.0;
    let x = if x < -87.0 { -87.0 } else { x };
    let shifted = x * LOG2E + MAGIC;
    let n = shifted - MAGIC;
    let r = A::madd(-n, LN2_LO, A::madd(-n, LN2_HI, x));
    let mut p = 1.0 / 720.0;
    for c in [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        p = A::madd(p, r, c);
    }
    let k = (shifted.to_bits() as i32).wrapping_sub(0x4B40_0000);
    p * f32::from_bits(((k + 127) << 23) as u32)
}

/// `dst[j] += sum over rows of m[row, j]` for a row-major matrix with `cols` columns.
fn add_colsum(dst: &mut [f32], m: &[f32], cols: usize) {
    for row in m.chunks_exact(cols) {
        for (d, v) in dst.iter_mut().zip(row) {
            *d += v;
        }
    }
}

/// `m[row, j] += bias[j]` for every row.
fn add_bias(m: &mut [f32], bias: &[f32]) {
    for row in m.chunks_exact_mut(bias.len()) {
        for (v, b) in row.iter_mut().zip(bias) {
            *v += b;
        }
    }
}

/// `v *= mask` element-wise.
fn mul_mask(v: &mut [f32], mask: &[f32]) {
    for (x, m) in v.iter_mut().zip(mask) {
        *x *= m;
    }
}

/// Accumulator lanes of the reductions below: independent partial results that the compiler
/// keeps in vector registers (a plain running sum is a sequential chain it may not reorder).
const LANES: usize = 8;

/// `sum(a[i] * b[i])` in [`LANES`] interleaved partial sums.
#[inline(always)]
fn dot<A: Arith>(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] = A::madd(x[l], y[l], acc[l]);
        }
    }
    let mut s = 0.0f32;
    for (x, y) in ra.iter().zip(rb) {
        s = A::madd(*x, *y, s);
    }
    acc.iter().sum::<f32>() + s
}

/// `sum(a)` in [`LANES`] interleaved partial sums.
#[inline(always)]
fn sum(a: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = a.chunks_exact(LANES);
    let rest = chunks.remainder();
    for x in chunks {
        for l in 0..LANES {
            acc[l] += x[l];
        }
    }
    acc.iter().sum::<f32>() + rest.iter().sum::<f32>()
}

/// `max(a)` (`-inf` for an empty slice) in [`LANES`] interleaved partial maxima.
#[inline(always)]
fn max(a: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = a.chunks_exact(LANES);
    let rest = chunks.remainder();
    for x in chunks {
        for l in 0..LANES {
            acc[l] = if x[l] > acc[l] { x[l] } else { acc[l] };
        }
    }
    acc.iter()
        .chain(rest)
        .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m })
}

/// One token's `out = LayerNorm(x + (o + bias) * mask) * gamma + beta`; `y` must hold `x`'s
/// width. Returns `1 / std` and writes the normalised values into `xhat` when given.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn add_norm<A: Arith>(
    x: &[f32],
    o: &[f32],
    bias: &[f32],
    mask: Option<&[f32]>,
    gamma: &[f32],
    beta: &[f32],
    out: &mut [f32],
    xhat: Option<&mut [f32]>,
) -> f32 {
    let d = x.len();
    match mask {
        Some(m) => {
            for c in 0..d {
                out[c] = x[c] + (o[c] + bias[c]) * m[c];
            }
        }
        None => {
            for c in 0..d {
                out[c] = x[c] + (o[c] + bias[c]);
            }
        }
    }
    let out = &mut out[..d];
    let mean = sum(out) / d as f32;
    for v in out.iter_mut() {
        *v -= mean;
    }
    let var = dot::<A>(out, out) / d as f32;
    let rstd = 1.0 / (var + LAYER_NORM_EPS as f32).sqrt();
    match xhat {
        Some(xh) => {
            for c in 0..d {
                let h = out[c] * rstd;
                xh[c] = h;
                out[c] = h * gamma[c] + beta[c];
            }
        }
        None => {
            for c in 0..d {
                out[c] = out[c] * rstd * gamma[c] + beta[c];
            }
        }
    }
    rstd
}

/// LayerNorm backward over `n x d`, in place: `g` holds d loss / d output and receives
/// d loss / d input; adds the weight and bias gradients. (Not inlined into the AVX2 build of
/// the backward: measured, that made the GEMMs after it markedly slower.)
fn norm_backward(
    g: &mut [f32],
    xhat: &[f32],
    rstd: &[f32],
    gamma: &[f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) {
    let d = gamma.len();
    let inv_d = 1.0 / d as f32;
    for ((row, xh), &r) in g.chunks_exact_mut(d).zip(xhat.chunks_exact(d)).zip(rstd) {
        for c in 0..d {
            dgamma[c] += row[c] * xh[c];
            dbeta[c] += row[c];
            row[c] *= gamma[c];
        }
        let (m1, m2) = (sum(row) * inv_d, dot::<Plain>(row, xh) * inv_d);
        for c in 0..d {
            row[c] = r * (row[c] - m1 - xh[c] * m2);
        }
    }
}

/// Sizes of one forward.
#[derive(Clone, Copy, Debug)]
struct Dims {
    rows: usize,
    t: usize,
    d: usize,
    h: usize,
    dh: usize,
    ff: usize,
    n: usize,
}

impl HostTransformer {
    fn dims(&self, rows: usize) -> Dims {
        let a = &self.arch;
        Dims {
            rows,
            t: a.tokens,
            d: a.d_model,
            h: a.heads,
            dh: a.d_model / a.heads,
            ff: a.feedforward,
            n: rows * a.tokens,
        }
    }
}

/// `dst = src` for short slices of equal length: whole [`LANES`] as fixed-size copies (kept in
/// registers, where `copy_from_slice` of a runtime length calls `memmove`), then the rest.
#[inline(always)]
fn copy_small(dst: &mut [f32], src: &[f32]) {
    debug_assert_eq!(dst.len(), src.len());
    let mut dc = dst.chunks_exact_mut(LANES);
    let mut sc = src.chunks_exact(LANES);
    for (a, b) in (&mut dc).zip(&mut sc) {
        a[..LANES].copy_from_slice(&b[..LANES]);
    }
    for (a, b) in dc.into_remainder().iter_mut().zip(sc.remainder()) {
        *a = *b;
    }
}

/// `n` rounded up to a multiple of [`LANES`].
fn padded(n: usize) -> usize {
    n.div_ceil(LANES) * LANES
}

/// How the attention loops multiply and add: `a * b + c` in two roundings ([`Plain`]) or as
/// one fused multiply-add ([`Fused`], only where the CPU has FMA: elsewhere `mul_add` would be
/// a library call).
trait Arith {
    fn madd(a: f32, b: f32, c: f32) -> f32;
}

/// `a * b + c` with two roundings.
struct Plain;

impl Arith for Plain {
    #[inline(always)]
    fn madd(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
}

/// `a * b + c` with one rounding (an FMA instruction).
struct Fused;

impl Arith for Fused {
    #[inline(always)]
    fn madd(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
}

/// Defines `fn $name` that runs `$body` (generic over `A: Arith`) compiled for AVX2 and FMA
/// with `A = Fused` when this CPU has both (twice the lanes of the baseline target and half the
/// arithmetic instructions), and for the baseline target with `A = Plain` otherwise.
macro_rules! simd_dispatch {
    ($(#[$m:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$m])*
        fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn body<A: Arith>($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                fn avx2_fma($($arg: $ty),*) {
                    body::<Fused>($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    #[allow(unsafe_code)]
                    // SAFETY: `avx2_fma` only differs from `body::<Plain>` in being compiled for
                    // AVX2 and FMA, which this CPU supports (checked just above).
                    return unsafe { avx2_fma($($arg),*) };
                }
            }
            body::<Plain>($($arg),*)
        }
    };
}

/// The left operand of a [`tiled`] product: element `(i, k)` is `data[off + i * rs + k * cs]`,
/// `k < depth`.
#[derive(Clone, Copy)]
struct Lhs<'a> {
    data: &'a [f32],
    off: usize,
    rs: usize,
    cs: usize,
    depth: usize,
}

/// The right operand of a [`tiled`] product: [`LANES`] columns from `at` of a row-major matrix
/// with row stride `stride`.
#[derive(Clone, Copy)]
struct Rhs<'a> {
    data: &'a [f32],
    stride: usize,
    at: usize,
}

/// Rows `i0 .. i0 + R` of `lhs @ rhs`: `R` independent accumulator chains per step, so that
/// the adds of one row do not wait for each other's latency.
#[inline(always)]
fn tile<A: Arith, const R: usize>(lhs: Lhs<'_>, i0: usize, rhs: Rhs<'_>) -> [[f32; LANES]; R] {
    let mut acc = [[0.0f32; LANES]; R];
    for k in 0..lhs.depth {
        let b = &rhs.data[k * rhs.stride + rhs.at..k * rhs.stride + rhs.at + LANES];
        for (r, a) in acc.iter_mut().enumerate() {
            let w = lhs.data[lhs.off + (i0 + r) * lhs.rs + k * lhs.cs];
            for l in 0..LANES {
                a[l] = A::madd(w, b[l], a[l]);
            }
        }
    }
    acc
}

/// Rows `0 .. rows` of `lhs @ rhs` (one [`LANES`]-wide column block), four rows at a time;
/// `store(i, row)` receives each.
#[inline(always)]
fn tiled<A: Arith>(
    rows: usize,
    lhs: Lhs<'_>,
    rhs: Rhs<'_>,
    mut store: impl FnMut(usize, &[f32; LANES]),
) {
    let mut i = 0;
    while i + 4 <= rows {
        for (r, acc) in tile::<A, 4>(lhs, i, rhs).iter().enumerate() {
            store(i + r, acc);
        }
        i += 4;
    }
    while i < rows {
        store(i, &tile::<A, 1>(lhs, i, rhs)[0]);
        i += 1;
    }
}

simd_dispatch! {
/// The attention of every (row, head): `attn = dropout(softmax(q k^T * scale)) v`, keeping the
/// probabilities before dropout in `probs` when given.
///
/// Per (row, head) the keys are copied transposed (`dh x tp`) and the values row by row
/// (`t x dhp`), both padded to whole [`LANES`] so that every product is [`LANES`] wide with its
/// accumulators in registers ([`tiled`]); padded lanes are computed and never read. The
/// softmax runs in phases over the whole `t x tp` block (row maxima, exp, row sums,
/// normalisation), so that the rows' reductions are independent work instead of one chain.
#[inline(never)]
fn attention_forward(
    z: Dims,
    qkv: &[f32],
    probs: Option<&mut [f32]>,
    attn: &mut [f32],
    mask: Option<&[f32]>,
    s: &mut HeadScratch,
) {
    let mut probs = probs;
    let Dims { t, d, h, dh, .. } = z;
    let (tp, dhp) = (padded(t), padded(dh));
    let d3 = 3 * d;
    let scale = 1.0 / (dh as f32).sqrt();
    grow(&mut s.kt, dh * tp);
    grow(&mut s.vv, t * dhp);
    grow(&mut s.pm, t * tp);
    grow(&mut s.rowv, t);
    for r in 0..z.rows {
        let base = r * t;
        for hh in 0..h {
            for j in 0..t {
                let row = &qkv[(base + j) * d3..(base + j + 1) * d3];
                let k = &row[d + hh * dh..d + (hh + 1) * dh];
                for (c, &kc) in k.iter().enumerate() {
                    s.kt[c * tp + j] = kc;
                }
                copy_small(
                    &mut s.vv[j * dhp..j * dhp + dh],
                    &row[2 * d + hh * dh..2 * d + (hh + 1) * dh],
                );
            }
            let q = Lhs {
                data: qkv,
                off: base * d3 + hh * dh,
                rs: d3,
                cs: 1,
                depth: dh,
            };
            let pm = &mut s.pm;
            for jc in (0..tp).step_by(LANES) {
                let kt = Rhs {
                    data: &s.kt,
                    stride: tp,
                    at: jc,
                };
                tiled::<A>(t, q, kt, |i, acc| {
                    for (o, a) in pm[i * tp + jc..i * tp + jc + LANES].iter_mut().zip(acc) {
                        *o = a * scale;
                    }
                });
            }
            for (i, m) in s.rowv[..t].iter_mut().enumerate() {
                *m = max(&s.pm[i * tp..i * tp + t]);
            }
            // Padded lanes are exponentiated too (whole vectors) and never read.
            for (row, &top) in s.pm[..t * tp].chunks_exact_mut(tp).zip(&s.rowv[..t]) {
                for v in row.iter_mut() {
                    *v = exp_nonpositive::<A>(*v - top);
                }
            }
            for (i, m) in s.rowv[..t].iter_mut().enumerate() {
                *m = 1.0 / sum(&s.pm[i * tp..i * tp + t]);
            }
            for i in 0..t {
                let w = &mut s.pm[i * tp..i * tp + t];
                let inv = s.rowv[i];
                for v in w.iter_mut() {
                    *v *= inv;
                }
                let off = ((r * h + hh) * t + i) * t;
                if let Some(p) = probs.as_deref_mut() {
                    copy_small(&mut p[off..off + t], w);
                }
                if let Some(m) = mask {
                    mul_mask(w, &m[off..off + t]);
                }
            }
            let weights = Lhs {
                data: &s.pm,
                off: 0,
                rs: tp,
                cs: 1,
                depth: t,
            };
            for cc in (0..dhp).step_by(LANES) {
                let width = LANES.min(dh - cc);
                let vv = Rhs {
                    data: &s.vv,
                    stride: dhp,
                    at: cc,
                };
                tiled::<A>(t, weights, vv, |i, acc| {
                    let out = (base + i) * d + hh * dh + cc;
                    copy_small(&mut attn[out..out + width], &acc[..width]);
                });
            }
        }
    }
}

}

simd_dispatch! {
/// Backward of [`attention_forward`]: writes d loss / d `[q | k | v]` into `dqkv` from
/// d loss / d attention output `dattn`.
#[inline(never)]
fn attention_backward(
    z: Dims,
    qkv: &[f32],
    probs: &[f32],
    dattn: &[f32],
    mask: Option<&[f32]>,
    dqkv: &mut [f32],
    s: &mut HeadScratch,
) {
    let Dims { t, d, h, dh, .. } = z;
    let (tp, dhp) = (padded(t), padded(dh));
    let d3 = 3 * d;
    let scale = 1.0 / (dh as f32).sqrt();
    for buf in [&mut s.qq, &mut s.kk, &mut s.da] {
        grow(buf, t * dhp);
    }
    grow(&mut s.vt, dh * tp);
    grow(&mut s.pm, t * tp);
    grow(&mut s.ds, t * tp);
    grow(&mut s.dp, t * tp);
    grow(&mut s.rowv, t);
    for r in 0..z.rows {
        let base = r * t;
        for hh in 0..h {
            for j in 0..t {
                let row = &qkv[(base + j) * d3..(base + j + 1) * d3];
                copy_small(
                    &mut s.qq[j * dhp..j * dhp + dh],
                    &row[hh * dh..(hh + 1) * dh],
                );
                copy_small(
                    &mut s.kk[j * dhp..j * dhp + dh],
                    &row[d + hh * dh..d + (hh + 1) * dh],
                );
                for (c, &vc) in row[2 * d + hh * dh..2 * d + (hh + 1) * dh]
                    .iter()
                    .enumerate()
                {
                    s.vt[c * tp + j] = vc;
                }
                let da = &dattn[(base + j) * d + hh * dh..(base + j) * d + (hh + 1) * dh];
                copy_small(&mut s.da[j * dhp..j * dhp + dh], da);
            }
            let poff = (r * h + hh) * t * t;
            // Weights after dropout, `t x tp`.
            for i in 0..t {
                let p = &probs[poff + i * t..poff + (i + 1) * t];
                let pm = &mut s.pm[i * tp..i * tp + t];
                copy_small(pm, p);
                if let Some(m) = mask {
                    mul_mask(pm, &m[poff + i * t..poff + (i + 1) * t]);
                }
            }
            // d loss / d weights = dA V^T, then through the dropout.
            let da = Lhs {
                data: &s.da,
                off: 0,
                rs: dhp,
                cs: 1,
                depth: dh,
            };
            let dpb = &mut s.dp;
            for jc in (0..tp).step_by(LANES) {
                let vt = Rhs {
                    data: &s.vt,
                    stride: tp,
                    at: jc,
                };
                tiled::<A>(t, da, vt, |i, acc| {
                    copy_small(&mut dpb[i * tp + jc..i * tp + jc + LANES], acc);
                });
            }
            if let Some(m) = mask {
                for i in 0..t {
                    let off = poff + i * t;
                    mul_mask(&mut s.dp[i * tp..i * tp + t], &m[off..off + t]);
                }
            }
            // Softmax backward, then the score scale: dS = p * (dP - <p, dP>) * scale.
            for (i, v) in s.rowv[..t].iter_mut().enumerate() {
                *v = dot::<A>(&probs[poff + i * t..poff + (i + 1) * t], &s.dp[i * tp..i * tp + t]);
            }
            for i in 0..t {
                let p = &probs[poff + i * t..poff + (i + 1) * t];
                let pdp = s.rowv[i];
                let dp = &s.dp[i * tp..i * tp + t];
                for ((g, &pj), &dj) in s.ds[i * tp..i * tp + t].iter_mut().zip(p).zip(dp) {
                    *g = pj * (dj - pdp) * scale;
                }
            }
            // dQ = dS K, dK = dS^T Q, dV = Pm^T dA.
            let ds = Lhs {
                data: &s.ds,
                off: 0,
                rs: tp,
                cs: 1,
                depth: t,
            };
            let ds_t = Lhs { rs: 1, cs: tp, ..ds };
            let pm_t = Lhs {
                data: &s.pm,
                off: 0,
                rs: 1,
                cs: tp,
                depth: t,
            };
            for cc in (0..dhp).step_by(LANES) {
                let width = LANES.min(dh - cc);
                let col = hh * dh + cc;
                let operand = |data| Rhs {
                    data,
                    stride: dhp,
                    at: cc,
                };
                for (part, lhs, rhs) in [
                    (0, ds, operand(&s.kk)),
                    (1, ds_t, operand(&s.qq)),
                    (2, pm_t, operand(&s.da)),
                ] {
                    tiled::<A>(t, lhs, rhs, |i, acc| {
                        let at = (base + i) * d3 + part * d + col;
                        copy_small(&mut dqkv[at..at + width], &acc[..width]);
                    });
                }
            }
        }
    }
}
}

/// The masks of one layer: attention weights, attention output, inside and after the
/// feed-forward.
type LayerMasks<'a> = Option<[&'a [f32]; 4]>;

/// Rows `r0 .. r1` of a forward's dropout masks (every mask is row-major with the batch row
/// outermost, so a range of rows is a contiguous part of each).
#[derive(Clone, Copy)]
struct MaskRows<'a> {
    masks: &'a [Vec<f32>],
    rows: usize,
    r0: usize,
    r1: usize,
}

impl<'a> MaskRows<'a> {
    fn get(&self, i: usize) -> Option<&'a [f32]> {
        let m = self.masks.get(i)?;
        let per_row = m.len() / self.rows;
        Some(&m[self.r0 * per_row..self.r1 * per_row])
    }

    /// The masks of layer `l` (`None` in evaluation mode).
    fn layer(&self, l: usize) -> LayerMasks<'a> {
        if self.masks.is_empty() {
            return None;
        }
        let at = 1 + 4 * l;
        Some([
            self.get(at)?,
            self.get(at + 1)?,
            self.get(at + 2)?,
            self.get(at + 3)?,
        ])
    }
}

/// Most token rows (`rows * tokens`) of one pass of an inference forward: larger batches (the
/// evaluation's, of up to some 2,000 rows) run in chunks of whole rows of about equal size, which
/// bounds the inference workspace (about 40 values per token row: some 10 MB at d_model 64).
/// The sampler's batches are smaller and never chunked, nor is a recorded (training) forward.
/// A row's values can differ in the last bits with the size of the batch it is computed in
/// (the GEMM picks its kernels by shape), so chunks are kept large.
const INFERENCE_TOKEN_ROWS: usize = 4096;

/// One encoder layer from `xin` into `xout`; keeps the backward's values in `rec` when `record`.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn layer_forward(
    z: Dims,
    lp: &LayerParams,
    params: &[Vec<f32>],
    rec: &mut LayerRecord,
    xin: &[f32],
    xout: &mut Vec<f32>,
    tmp: &mut Vec<f32>,
    scratch: &mut HeadScratch,
    masks: LayerMasks<'_>,
    record: bool,
) {
    let Dims { t: _, d, ff, n, .. } = z;
    let d3 = 3 * d;
    // q | k | v as one GEMM.
    grow(&mut rec.wqkv, d * d3);
    grow(&mut rec.bqkv, d3);
    for (part, (w, b)) in [lp.q, lp.k, lp.v].into_iter().enumerate() {
        for a in 0..d {
            rec.wqkv[a * d3 + part * d..a * d3 + (part + 1) * d]
                .copy_from_slice(&params[w][a * d..(a + 1) * d]);
        }
        rec.bqkv[part * d..(part + 1) * d].copy_from_slice(&params[b]);
    }
    grow(&mut rec.qkv, n * d3);
    gemm(
        MatMut::new(&mut rec.qkv, n, d3),
        MatRef::new(xin, n, d),
        MatRef::new(&rec.wqkv, d, d3),
        false,
    );
    add_bias(&mut rec.qkv, &rec.bqkv);
    let probs = if record {
        grow(&mut rec.probs, z.rows * z.h * z.t * z.t);
        Some(&mut rec.probs[..])
    } else {
        None
    };
    grow(&mut rec.attn, n * d);
    attention_forward(
        z,
        &rec.qkv,
        probs,
        &mut rec.attn,
        masks.map(|m| m[0]),
        scratch,
    );
    // Output projection, dropout, residual and LayerNorm.
    grow(tmp, n * d);
    gemm(
        MatMut::new(tmp, n, d),
        MatRef::new(&rec.attn, n, d),
        MatRef::new(&params[lp.out.0], d, d),
        false,
    );
    grow(&mut rec.x1, n * d);
    if record {
        grow(&mut rec.xhat1, n * d);
        grow(&mut rec.rstd1, n);
    }
    let (g1, b1) = (&params[lp.norm1.0], &params[lp.norm1.1]);
    let bo = &params[lp.out.1];
    for i in 0..n {
        let span = i * d..(i + 1) * d;
        let xhat = record.then(|| &mut rec.xhat1[span.clone()]);
        let r = add_norm::<Plain>(
            &xin[span.clone()],
            &tmp[span.clone()],
            bo,
            masks.map(|m| &m[1][span.clone()]),
            g1,
            b1,
            &mut rec.x1[span],
            xhat,
        );
        if record {
            rec.rstd1[i] = r;
        }
    }
    // Feed-forward: bias + ReLU fused, dropout.
    grow(&mut rec.f1, n * ff);
    gemm(
        MatMut::new(&mut rec.f1, n, ff),
        MatRef::new(&rec.x1, n, d),
        MatRef::new(&params[lp.ff1.0], d, ff),
        false,
    );
    let bf1 = &params[lp.ff1.1];
    for row in rec.f1.chunks_exact_mut(ff) {
        for (v, b) in row.iter_mut().zip(bf1) {
            *v = (*v + b).max(0.0);
        }
    }
    let hidden: &[f32] = match masks {
        Some(m) if record => {
            grow(&mut rec.f1m, n * ff);
            for ((o, v), k) in rec.f1m.iter_mut().zip(&rec.f1).zip(m[2]) {
                *o = v * k;
            }
            &rec.f1m
        }
        Some(m) => {
            mul_mask(&mut rec.f1, m[2]);
            &rec.f1
        }
        None => &rec.f1,
    };
    gemm(
        MatMut::new(tmp, n, d),
        MatRef::new(hidden, n, ff),
        MatRef::new(&params[lp.ff2.0], ff, d),
        false,
    );
    grow(xout, n * d);
    if record {
        grow(&mut rec.xhat2, n * d);
        grow(&mut rec.rstd2, n);
    }
    let (g2, b2) = (&params[lp.norm2.0], &params[lp.norm2.1]);
    let bf2 = &params[lp.ff2.1];
    for i in 0..n {
        let span = i * d..(i + 1) * d;
        let xhat = record.then(|| &mut rec.xhat2[span.clone()]);
        let r = add_norm::<Plain>(
            &rec.x1[span.clone()],
            &tmp[span.clone()],
            bf2,
            masks.map(|m| &m[3][span.clone()]),
            g2,
            b2,
            &mut xout[span],
            xhat,
        );
        if record {
            rec.rstd2[i] = r;
        }
    }
}

/// d loss / d a dropout's input from d loss / d its output `dx`: `dx * mask` (written into
/// `buf`) with a mask, `dx` itself without.
fn through_mask<'a>(dx: &'a [f32], mask: Option<&[f32]>, buf: &'a mut Vec<f32>) -> &'a [f32] {
    match mask {
        Some(m) => {
            grow(buf, dx.len());
            for ((o, v), k) in buf.iter_mut().zip(dx).zip(m) {
                *o = v * k;
            }
            &buf[..]
        }
        None => dx,
    }
}

/// The backward of a linear layer `y = x w + b` over the rows of `x` (`w` is `x.cols x o`, `dy`
/// is d loss / d `y`, `rows x o`): adds the bias gradient (the column sums of `dy`) into `gb`,
/// puts `x^T dy` into `gw` (added with `gw_add`, written otherwise) and `dy w^T` into `dx`
/// (added with `dx_add`, written otherwise), in that order.
fn linear_backward(
    x: MatRef<'_>,
    dy: &[f32],
    w: &[f32],
    (gw, gw_add, gb): (&mut [f32], bool, &mut [f32]),
    (dx, dx_add): (&mut [f32], bool),
) {
    let (rows, i, o) = (x.rows, x.cols, gb.len());
    add_colsum(gb, dy, o);
    gemm(
        MatMut::new(gw, i, o),
        x.t(),
        MatRef::new(dy, rows, o),
        gw_add,
    );
    gemm(
        MatMut::new(dx, rows, i),
        MatRef::new(dy, rows, o),
        MatRef::new(w, i, o).t(),
        dx_add,
    );
}

/// `out = x[bos rows] viewed as rows x d`: token 0 of every row of an `n x d` matrix.
fn bos_view(x: &[f32], z: Dims) -> MatRef<'_> {
    MatRef {
        data: x,
        rows: z.rows,
        cols: z.d,
        rs: z.t * z.d,
        cs: 1,
    }
}

simd_dispatch! {
/// The backward of the forward recorded in `ws` (`z` its sizes): adds every parameter gradient
/// into `grads`.
#[inline(never)]
fn backward_pass(
    a: &TransformerArch,
    z: Dims,
    ws: &mut Workspace,
    params: &[Vec<f32>],
    head_grads: &Outputs,
    grads: &mut [Vec<f32>],
) {
    let Dims { t, d, ff, n, rows, .. } = z;
    let d3 = 3 * d;
    let Workspace {
        xs,
        layers,
        head,
        masks,
        tokens,
        input,
        dx,
        dtmp,
        dattn,
        dqkv,
        dff,
        dw,
        gpos,
        masked,
        ..
    } = ws;
    let masked = *masked;
    let nl = a.layers.len();
    let xf = &xs[nl];
    grow(dx, n * d);
    dx.fill(0.0);
    // Readouts.
    for (j, r) in a.readouts.iter().enumerate() {
        let g = head_grads.head(j);
        match r {
            Readout::Pooled((w, b)) => {
                let dim = params[*b].len();
                gemm(
                    MatMut::new(&mut grads[*w], d, dim),
                    bos_view(xf, z).t(),
                    MatRef::new(g, rows, dim),
                    true,
                );
                add_colsum(&mut grads[*b], g, dim);
                gemm(
                    MatMut {
                        data: dx,
                        rows,
                        cols: d,
                        rs: t * d,
                        cs: 1,
                    },
                    MatRef::new(g, rows, dim),
                    MatRef::new(&params[*w], d, dim).t(),
                    true,
                );
            }
            Readout::TokenWord {
                position,
                word,
                words,
            } => {
                let words = *words;
                gemm(
                    MatMut::new(&mut grads[word.0], d, words),
                    MatRef::new(xf, n, d).t(),
                    MatRef::new(g, n, words),
                    true,
                );
                // Word-bias gradient (column sums) and position gradient (row sums) in one pass.
                grow(gpos, n);
                let db = &mut grads[word.1];
                for (p, row) in gpos.iter_mut().zip(g.chunks_exact(words)) {
                    for (acc, v) in db.iter_mut().zip(row) {
                        *acc += v;
                    }
                    *p = sum(row);
                }
                gemm(
                    MatMut::new(dx, n, d),
                    MatRef::new(g, n, words),
                    MatRef::new(&params[word.0], d, words).t(),
                    true,
                );
                gemm(
                    MatMut::new(&mut grads[position.0], d, t),
                    bos_view(xf, z).t(),
                    MatRef::new(gpos, rows, t),
                    true,
                );
                add_colsum(&mut grads[position.1], gpos, t);
                gemm(
                    MatMut {
                        data: dx,
                        rows,
                        cols: d,
                        rs: t * d,
                        cs: 1,
                    },
                    MatRef::new(gpos, rows, t),
                    MatRef::new(&params[position.0], d, t).t(),
                    true,
                );
            }
            Readout::Token((w, b)) => {
                let mut db = 0.0f32;
                {
                    let dwv = &mut grads[*w];
                    for (&gi, x) in g.iter().zip(xf.chunks_exact(d)) {
                        db += gi;
                        for (acc, v) in dwv.iter_mut().zip(x) {
                            *acc += v * gi;
                        }
                    }
                }
                grads[*b][0] += db;
                let wv = &params[*w];
                for (&gi, row) in g.iter().zip(dx.chunks_exact_mut(d)) {
                    for (acc, v) in row.iter_mut().zip(wv) {
                        *acc += gi * v;
                    }
                }
            }
        }
    }
    // Layers, last first; `dx` holds d loss / d layer output.
    for l in (0..nl).rev() {
        let lp = &a.layers[l];
        let rec = &layers[l];
        let xin = &xs[l];
        let lm = MaskRows {
            masks,
            rows,
            r0: 0,
            r1: rows,
        }
        .layer(l);
        // Second LayerNorm: dx becomes d loss / d (x1 + ff).
        {
            let (gw, gb) = two_mut(grads, lp.norm2.0, lp.norm2.1);
            norm_backward(dx, &rec.xhat2, &rec.rstd2, &params[lp.norm2.0], gw, gb);
        }
        // Feed-forward.
        let dg = through_mask(dx, lm.map(|m| m[3]), dtmp);
        let hidden: &[f32] = if masked { &rec.f1m } else { &rec.f1 };
        grow(dff, n * ff);
        {
            let (gw, gb) = two_mut(grads, lp.ff2.0, lp.ff2.1);
            linear_backward(
                MatRef::new(hidden, n, ff),
                dg,
                &params[lp.ff2.0],
                (gw, true, gb),
                (dff, false),
            );
        }
        match lm {
            Some(m) => {
                for ((g, f), k) in dff.iter_mut().zip(&rec.f1).zip(m[2]) {
                    *g = if *f > 0.0 { *g * k } else { 0.0 };
                }
            }
            None => {
                for (g, f) in dff.iter_mut().zip(&rec.f1) {
                    *g = if *f > 0.0 { *g } else { 0.0 };
                }
            }
        }
        {
            let (gw, gb) = two_mut(grads, lp.ff1.0, lp.ff1.1);
            linear_backward(
                MatRef::new(&rec.x1, n, d),
                dff,
                &params[lp.ff1.0],
                (gw, true, gb),
                (dx, true),
            );
        }
        // First LayerNorm: dx becomes d loss / d (x + attention output).
        {
            let (gw, gb) = two_mut(grads, lp.norm1.0, lp.norm1.1);
            norm_backward(dx, &rec.xhat1, &rec.rstd1, &params[lp.norm1.0], gw, gb);
        }
        // Output projection.
        let dout = through_mask(dx, lm.map(|m| m[1]), dtmp);
        grow(dattn, n * d);
        {
            let (gw, gb) = two_mut(grads, lp.out.0, lp.out.1);
            linear_backward(
                MatRef::new(&rec.attn, n, d),
                dout,
                &params[lp.out.0],
                (gw, true, gb),
                (dattn, false),
            );
        }
        // Attention.
        grow(dqkv, n * d3);
        attention_backward(z, &rec.qkv, &rec.probs, dattn, lm.map(|m| m[0]), dqkv, head);
        // The packed q | k | v projection: its gradients into a scratch, then added into the
        // three parameters.
        grow(dw, d * d3 + d3);
        let (dwm, dbv) = dw.split_at_mut(d * d3);
        dbv.fill(0.0);
        linear_backward(
            MatRef::new(xin, n, d),
            dqkv,
            &rec.wqkv,
            (&mut *dwm, false, &mut *dbv),
            (dx, true),
        );
        for (part, (w, b)) in [lp.q, lp.k, lp.v].into_iter().enumerate() {
            let gw = &mut grads[w];
            for r in 0..d {
                let src = &dwm[r * d3 + part * d..r * d3 + (part + 1) * d];
                for (acc, v) in gw[r * d..(r + 1) * d].iter_mut().zip(src) {
                    *acc += v;
                }
            }
            for (acc, v) in grads[b].iter_mut().zip(&dbv[part * d..(part + 1) * d]) {
                *acc += v;
            }
        }
    }
    // Embedding.
    if let Some(m) = masks.first() {
        mul_mask(dx, m);
    }
    let ge = &mut grads[a.embed];
    match tokens {
        Some(ids) => {
            for (&id, row) in ids.iter().zip(dx.chunks_exact(d)) {
                for (acc, v) in ge[id * d..(id + 1) * d].iter_mut().zip(row) {
                    *acc += v;
                }
            }
        }
        None => {
            let tf = a.token_features;
            gemm(
                MatMut::new(ge, tf, d),
                MatRef::new(input, n, tf).t(),
                MatRef::new(dx, n, d),
                true,
            );
        }
    }
}
}

impl HostTransformer {
    /// The forward of `rows` rows into rows `row0 ..` of `out` (with `record`, of the whole
    /// batch at once).
    #[allow(clippy::too_many_arguments)]
    fn forward_rows(
        &mut self,
        params: &[Vec<f32>],
        input: &[f32],
        tokens: Option<&[usize]>,
        rows: usize,
        masks: MaskRows<'_>,
        out: &mut Outputs,
        row0: usize,
        record: bool,
    ) {
        let z = self.dims(rows);
        let Dims { t, d, n, .. } = z;
        let a = &self.arch;
        let ws = &mut self.ws;
        let layers = a.layers.len();
        let nx = if record { layers + 1 } else { 2 };
        if ws.xs.len() < nx {
            ws.xs.resize_with(nx, Vec::new);
        }
        let nrec = if record { layers.max(1) } else { 1 };
        if ws.layers.len() < nrec {
            ws.layers.resize_with(nrec, LayerRecord::default);
        }
        // Embedding + positions, dropout.
        {
            let x0 = &mut ws.xs[0];
            grow(x0, n * d);
            let e = &params[a.embed];
            match tokens {
                Some(ids) => {
                    for (i, (row, &id)) in x0.chunks_exact_mut(d).zip(ids).enumerate() {
                        let pe = &a.positions[(i % t) * d..(i % t + 1) * d];
                        let er = &e[id * d..(id + 1) * d];
                        for c in 0..d {
                            row[c] = er[c] + pe[c];
                        }
                    }
                }
                None => {
                    let tf = a.token_features;
                    gemm(
                        MatMut::new(x0, n, d),
                        MatRef::new(input, n, tf),
                        MatRef::new(e, tf, d),
                        false,
                    );
                    for (i, row) in x0.chunks_exact_mut(d).enumerate() {
                        let pe = &a.positions[(i % t) * d..(i % t + 1) * d];
                        for (v, p) in row.iter_mut().zip(pe) {
                            *v += p;
                        }
                    }
                }
            }
            if let Some(m) = masks.get(0) {
                mul_mask(x0, m);
            }
        }
        for (l, lp) in a.layers.iter().enumerate() {
            let (src, dst) = if record {
                (l, l + 1)
            } else {
                (l % 2, (l + 1) % 2)
            };
            let (xin, xout) = if src < dst {
                let (lo, hi) = ws.xs.split_at_mut(dst);
                (&lo[src], &mut hi[0])
            } else {
                let (lo, hi) = ws.xs.split_at_mut(src);
                (&hi[0], &mut lo[dst])
            };
            let rec = &mut ws.layers[if record { l } else { 0 }];
            layer_forward(
                z,
                lp,
                params,
                rec,
                xin,
                xout,
                &mut ws.tmp,
                &mut ws.head,
                masks.layer(l),
                record,
            );
        }
        let xf = &ws.xs[if record { layers } else { layers % 2 }];
        // Readouts, straight into the head outputs.
        for (j, r) in a.readouts.iter().enumerate() {
            let dim = out.dim(j);
            let o = &mut out.head_mut(j)[row0 * dim..(row0 + rows) * dim];
            match r {
                Readout::Pooled((w, b)) => {
                    gemm(
                        MatMut::new(o, rows, dim),
                        bos_view(xf, z),
                        MatRef::new(&params[*w], d, dim),
                        false,
                    );
                    add_bias(o, &params[*b]);
                }
                Readout::TokenWord {
                    position,
                    word,
                    words,
                } => {
                    let words = *words;
                    gemm(
                        MatMut::new(o, n, words),
                        MatRef::new(xf, n, d),
                        MatRef::new(&params[word.0], d, words),
                        false,
                    );
                    grow(&mut ws.pos, rows * t);
                    gemm(
                        MatMut::new(&mut ws.pos, rows, t),
                        bos_view(xf, z),
                        MatRef::new(&params[position.0], d, t),
                        false,
                    );
                    let (bw, bp) = (&params[word.1], &params[position.1]);
                    for (i, row) in o.chunks_exact_mut(words).enumerate() {
                        let p = ws.pos[i] + bp[i % t];
                        for (v, b) in row.iter_mut().zip(bw) {
                            *v = (*v + b) + p;
                        }
                    }
                }
                Readout::Token((w, b)) => {
                    let (w, b) = (&params[*w], params[*b][0]);
                    for (v, x) in o.iter_mut().zip(xf.chunks_exact(d)) {
                        *v = dot::<Plain>(x, w) + b;
                    }
                }
            }
        }
    }
}

impl HostNet for HostTransformer {
    fn forward(
        &mut self,
        params: &[Vec<f32>],
        input: &[f32],
        tokens: Option<&[usize]>,
        rows: usize,
        masks: &[Vec<f32>],
        out: &mut Outputs,
        record: bool,
    ) {
        self.ws.recorded = false;
        let t = self.arch.tokens;
        let most = (self.chunk_token_rows / t).max(1);
        let chunk = if record || rows <= most {
            rows.max(1)
        } else {
            rows.div_ceil(rows.div_ceil(most))
        };
        let width = self.arch.token_features * t;
        let mut r0 = 0;
        while r0 < rows {
            let r1 = (r0 + chunk).min(rows);
            let view = MaskRows {
                masks,
                rows,
                r0,
                r1,
            };
            self.forward_rows(
                params,
                &input[r0 * width..r1 * width],
                tokens.map(|ids| &ids[r0 * t..r1 * t]),
                r1 - r0,
                view,
                out,
                r0,
                record,
            );
            r0 = r1;
        }
        if record {
            let ws = &mut self.ws;
            ws.rows = rows;
            ws.recorded = true;
            ws.masked = !masks.is_empty();
            ws.masks.resize_with(masks.len(), Vec::new);
            for (dst, m) in ws.masks.iter_mut().zip(masks) {
                dst.clone_from(m);
            }
            match tokens {
                Some(ids) => {
                    let saved = ws.tokens.get_or_insert_with(Vec::new);
                    saved.clear();
                    saved.extend_from_slice(ids);
                }
                None => {
                    ws.tokens = None;
                    ws.input.clear();
                    ws.input.extend_from_slice(input);
                }
            }
        }
    }

    fn backward(&mut self, params: &[Vec<f32>], head_grads: &Outputs, grads: &mut [Vec<f32>]) {
        if !self.ws.recorded {
            return;
        }
        self.ws.recorded = false;
        let rows = self.ws.rows;
        if rows == 0 {
            return;
        }
        let z = self.dims(rows);
        backward_pass(&self.arch, z, &mut self.ws, params, head_grads, grads);
    }

    fn fresh(&self) -> Box<dyn HostNet> {
        Box::new(HostTransformer::new(&self.arch))
    }

    fn row_record_len(&self, head_dims: &[usize]) -> usize {
        let z = self.dims(1);
        // Every GEMM must sum over at most 512 values for rows not to depend on their batch.
        if z.d > 512 || z.ff > 512 || self.arch.token_features > 512 {
            return 0;
        }
        (0..self.num_blocks())
            .map(|i| self.block_len(i))
            .sum::<usize>()
            + head_dims.iter().sum::<usize>()
    }

    fn reuse_rows_by_default(&self) -> bool {
        // A row's record holds every layer's kept values (about 39,000 values, 156 KB, at the
        // paper's bit-sequence size): copying it into the cache and back into the training
        // forward measured slower than computing the row again (TB at k = 8: 83 ms per
        // iteration with reuse, 79 without), so the transformer reuses rows only on request.
        false
    }

    fn export_row(&self, r: usize, out: &Outputs, dst: &mut [f32]) {
        let nx = self.arch.layers.len() + 1;
        let mut at = 0;
        for i in 0..self.num_blocks() {
            let len = self.block_len(i);
            dst[at..at + len].copy_from_slice(&block(&self.ws, nx, i)[r * len..(r + 1) * len]);
            at += len;
        }
        for j in 0..out.num_heads() {
            let dim = out.dim(j);
            dst[at..at + dim].copy_from_slice(&out.head(j)[r * dim..(r + 1) * dim]);
            at += dim;
        }
    }

    fn forward_reusing(
        &mut self,
        params: &[Vec<f32>],
        input: &[f32],
        tokens: Option<&[usize]>,
        rows: usize,
        records: &RowRecords<'_>,
        out: &mut Outputs,
    ) {
        let t = self.arch.tokens;
        let width = self.arch.token_features * t;
        let mut sc = std::mem::take(&mut self.ws.reuse);
        // The rows without a record, as one recorded batch of at least 2 rows (a batch of one
        // row reads its pooled outputs through gemm's matrix-vector path, which sums in another
        // order); with none missing, rows 0 and 1 are computed again so that the workspace holds
        // this forward's packed weights.
        sc.rows.clear();
        sc.rows
            .extend((0..rows).filter(|&r| records.get(r).is_none()));
        let missing = sc.rows.len();
        match missing {
            0 => sc.rows.extend([0, 1]),
            1 => sc.rows.push(sc.rows[0]),
            _ => {}
        }
        let batch = sc.rows.len();
        sc.input.clear();
        sc.tokens.clear();
        for &r in &sc.rows {
            sc.input
                .extend_from_slice(&input[r * width..(r + 1) * width]);
            if let Some(ids) = tokens {
                sc.tokens.extend_from_slice(&ids[r * t..(r + 1) * t]);
            }
        }
        sc.dims.clear();
        sc.dims.extend((0..out.num_heads()).map(|j| out.dim(j)));
        sc.out.resize(batch, &sc.dims);
        self.forward(
            params,
            &sc.input,
            tokens.map(|_| &sc.tokens[..]),
            batch,
            &[],
            &mut sc.out,
            true,
        );
        // Every kept buffer at full size: rows from their records or from the batch above.
        let nx = self.arch.layers.len() + 1;
        sc.full.resize_with(self.num_blocks(), Vec::new);
        let mut off = 0;
        for i in 0..self.num_blocks() {
            let len = self.block_len(i);
            let full = &mut sc.full[i];
            grow(full, rows * len);
            let computed = block(&self.ws, nx, i);
            let mut next = 0;
            for r in 0..rows {
                let dst = &mut full[r * len..(r + 1) * len];
                match records.get(r) {
                    Some(rec) => dst.copy_from_slice(&rec[off..off + len]),
                    None => {
                        dst.copy_from_slice(&computed[next * len..(next + 1) * len]);
                        next += 1;
                    }
                }
            }
            std::mem::swap(full, block_mut(&mut self.ws, nx, i));
            off += len;
        }
        for j in 0..out.num_heads() {
            let dim = out.dim(j);
            let mut next = 0;
            for r in 0..rows {
                let dst = &mut out.head_mut(j)[r * dim..(r + 1) * dim];
                match records.get(r) {
                    Some(rec) => dst.copy_from_slice(&rec[off..off + dim]),
                    None => {
                        dst.copy_from_slice(&sc.out.head(j)[next * dim..(next + 1) * dim]);
                        next += 1;
                    }
                }
            }
            off += dim;
        }
        let ws = &mut self.ws;
        ws.rows = rows;
        match tokens {
            Some(ids) => {
                let saved = ws.tokens.get_or_insert_with(Vec::new);
                saved.clear();
                saved.extend_from_slice(ids);
            }
            None => {
                ws.input.clear();
                ws.input.extend_from_slice(input);
            }
        }
        ws.reuse = sc;
    }
}

/// Kept values of one encoder layer per row record, after the layer inputs and outputs:
/// `qkv`, `probs`, `attn`, `xhat1`, `x1`, `rstd1`, `f1`, `xhat2`, `rstd2`.
const LAYER_BLOCKS: usize = 9;

impl HostTransformer {
    /// Buffers a recorded forward keeps (the layer inputs and outputs, then [`LAYER_BLOCKS`]
    /// per layer), each `rows x block_len`.
    fn num_blocks(&self) -> usize {
        let layers = self.arch.layers.len();
        layers + 1 + LAYER_BLOCKS * layers
    }

    /// Values per row of block `i` (see [`block`]).
    fn block_len(&self, i: usize) -> usize {
        let a = &self.arch;
        let (t, d, ff, h) = (a.tokens, a.d_model, a.feedforward, a.heads);
        let nx = a.layers.len() + 1;
        if i < nx {
            return t * d;
        }
        match (i - nx) % LAYER_BLOCKS {
            0 => t * 3 * d,
            1 => h * t * t,
            5 | 8 => t,
            6 => t * ff,
            _ => t * d,
        }
    }
}

/// Block `i` of a recorded forward's workspace (see [`HostTransformer::block_len`]).
fn block(ws: &Workspace, nx: usize, i: usize) -> &Vec<f32> {
    if i < nx {
        return &ws.xs[i];
    }
    let rec = &ws.layers[(i - nx) / LAYER_BLOCKS];
    match (i - nx) % LAYER_BLOCKS {
        0 => &rec.qkv,
        1 => &rec.probs,
        2 => &rec.attn,
        3 => &rec.xhat1,
        4 => &rec.x1,
        5 => &rec.rstd1,
        6 => &rec.f1,
        7 => &rec.xhat2,
        _ => &rec.rstd2,
    }
}

/// Block `i`, mutably.
fn block_mut(ws: &mut Workspace, nx: usize, i: usize) -> &mut Vec<f32> {
    if i < nx {
        return &mut ws.xs[i];
    }
    let rec = &mut ws.layers[(i - nx) / LAYER_BLOCKS];
    match (i - nx) % LAYER_BLOCKS {
        0 => &mut rec.qkv,
        1 => &mut rec.probs,
        2 => &mut rec.attn,
        3 => &mut rec.xhat1,
        4 => &mut rec.x1,
        5 => &mut rec.rstd1,
        6 => &mut rec.f1,
        7 => &mut rec.xhat2,
        _ => &mut rec.rstd2,
    }
}

/// Two distinct elements of a slice, mutably.
fn two_mut(v: &mut [Vec<f32>], i: usize, j: usize) -> (&mut [f32], &mut [f32]) {
    assert_ne!(i, j, "two_mut needs two distinct indices");
    if i < j {
        let (lo, hi) = v.split_at_mut(j);
        (&mut lo[i], &mut hi[0])
    } else {
        let (lo, hi) = v.split_at_mut(i);
        (&mut hi[0], &mut lo[j])
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::backend::Arch;
    use crate::{
        Device, HeadSpec, Model, OptimizerSpec, ScalarSpec, TokenReadout, TransformerSpec,
    };

    #[derive(Clone, Copy, Debug)]
    struct Case {
        tokens: usize,
        features: usize,
        d_model: usize,
        heads: usize,
        layers: usize,
        ff: usize,
        dropout: f32,
        forward: TokenReadout,
        backward: TokenReadout,
        rows: usize,
        one_hot: bool,
    }

    fn spec(c: &Case) -> TransformerSpec {
        TransformerSpec {
            tokens: c.tokens,
            token_features: c.features,
            d_model: c.d_model,
            layers: c.layers,
            attention_heads: c.heads,
            feedforward: c.ff,
            dropout: c.dropout,
            forward_readout: c.forward,
            backward_readout: c.backward,
            heads: vec![
                HeadSpec::forward_actions("pf", c.forward.dim(c.tokens)),
                HeadSpec::new("flow", 3),
                HeadSpec::backward_actions("pb", c.backward.dim(c.tokens)),
            ],
            scalars: vec![ScalarSpec::new("log_z", 0.0)],
        }
    }

    /// `|a - b| <= tol * max(max |a|, 1e-3)` for every element.
    fn close(what: &str, a: &[f32], b: &[f32], tol: f32) {
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        let scale = a.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= tol * scale,
                "{what}[{i}]: dfdx {x} vs host {y} (scale {scale})"
            );
        }
    }

    fn check(c: Case) {
        let s = spec(&c);
        let opt = OptimizerSpec::default();
        let layout =
            crate::transformer::layout(&s, &opt, &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
        let Arch::Transformer(arch) = &layout.arch else {
            unreachable!()
        };
        let num_net = layout.values.len() - 1;
        let params: Vec<Vec<f32>> = layout.values[..num_net].to_vec();
        let mut model =
            Model::transformer(&s, &opt, Device::Cpu, &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let input: Vec<f32> = (0..c.rows * c.tokens)
            .flat_map(|_| {
                let mut block = vec![0.0f32; c.features];
                if c.one_hot {
                    block[rng.gen_range(0..c.features)] = 1.0;
                } else {
                    for v in &mut block {
                        *v = rng.gen_range(-1.0f32..1.0);
                    }
                }
                block
            })
            .collect();
        let dims = model.head_dims();
        let mut coeffs = Outputs::new();
        coeffs.reset(c.rows, &dims);
        for h in 0..dims.len() {
            for v in coeffs.head_mut(h) {
                *v = rng.gen_range(-1.0f32..1.0);
            }
        }
        let tokens = arch.token_ids(&input, c.rows);
        assert_eq!(tokens.is_some(), c.one_hot);
        let mut host = HostTransformer::new(arch);
        let what = format!("{c:?}");

        // Inference forward.
        let (mut want, mut got) = (Outputs::new(), Outputs::new());
        model.forward(&input, c.rows, &mut want).unwrap();
        got.resize(c.rows, &dims);
        host.forward(
            &params,
            &input,
            tokens.as_deref(),
            c.rows,
            &[],
            &mut got,
            false,
        );
        for h in 0..dims.len() {
            close(
                &format!("{what} eval head {h}"),
                want.head(h),
                got.head(h),
                1e-5,
            );
        }

        // Inference forward with dropout masks.
        model
            .forward_dropout(&input, c.rows, &mut want, &mut ChaCha8Rng::seed_from_u64(3))
            .unwrap();
        let masks = arch.dropout_masks(c.rows, &mut ChaCha8Rng::seed_from_u64(3));
        host.forward(
            &params,
            &input,
            tokens.as_deref(),
            c.rows,
            &masks,
            &mut got,
            false,
        );
        for h in 0..dims.len() {
            close(
                &format!("{what} dropout head {h}"),
                want.head(h),
                got.head(h),
                1e-5,
            );
        }

        // Training forward and backward (gradients accumulated twice on the host side to check
        // that they are added).
        model
            .forward_train(&input, c.rows, &mut want, &mut ChaCha8Rng::seed_from_u64(4))
            .unwrap();
        model.backward(&coeffs, &[0.0]).unwrap();
        let reference = model.gradients();
        let masks = arch.dropout_masks(c.rows, &mut ChaCha8Rng::seed_from_u64(4));
        let mut grads: Vec<Vec<f32>> = params.iter().map(|p| vec![0.0; p.len()]).collect();
        for _ in 0..2 {
            host.forward(
                &params,
                &input,
                tokens.as_deref(),
                c.rows,
                &masks,
                &mut got,
                true,
            );
            for h in 0..dims.len() {
                close(
                    &format!("{what} train head {h}"),
                    want.head(h),
                    got.head(h),
                    1e-5,
                );
            }
            host.backward(&params, &coeffs, &mut grads);
        }
        for (k, r) in reference.iter().take(num_net).enumerate() {
            let twice: Vec<f32> = r.data.iter().map(|v| 2.0 * v).collect();
            if r.name.ends_with("attn.k.bias") {
                // Softmax is invariant to the key bias: both are rounding noise around 0.
                for (x, y) in twice.iter().zip(&grads[k]) {
                    assert!((x - y).abs() < 1e-5, "{what} grad {}: {x} vs {y}", r.name);
                }
                continue;
            }
            close(&format!("{what} grad {}", r.name), &twice, &grads[k], 1e-4);
        }
    }

    fn base() -> Case {
        Case {
            tokens: 4,
            features: 5,
            d_model: 8,
            heads: 2,
            layers: 2,
            ff: 6,
            dropout: 0.0,
            forward: TokenReadout::TokenWord { words: 3 },
            backward: TokenReadout::Token,
            rows: 5,
            one_hot: true,
        }
    }

    #[test]
    fn host_kernel_matches_the_dfdx_path() {
        let b = base();
        let cases = [
            b,
            Case {
                one_hot: false,
                ..b
            },
            Case { dropout: 0.3, ..b },
            Case {
                dropout: 0.2,
                one_hot: false,
                ..b
            },
            Case { rows: 1, ..b },
            Case { rows: 0, ..b },
            Case { layers: 0, ..b },
            Case {
                layers: 1,
                heads: 1,
                ..b
            },
            Case {
                tokens: 1,
                heads: 8,
                d_model: 16,
                ff: 3,
                ..b
            },
            Case {
                forward: TokenReadout::Token,
                backward: TokenReadout::TokenWord { words: 2 },
                ..b
            },
            Case {
                tokens: 16,
                features: 3,
                d_model: 64,
                heads: 8,
                layers: 3,
                ff: 64,
                forward: TokenReadout::TokenWord { words: 16 },
                rows: 7,
                ..b
            },
            Case {
                tokens: 7,
                d_model: 12,
                heads: 3,
                ff: 20,
                dropout: 0.1,
                rows: 3,
                ..b
            },
        ];
        for c in cases {
            check(c);
        }
    }

    /// Inference forwards of large batches run in chunks of rows: the same values to rounding.
    #[test]
    fn chunked_inference_gives_the_same_values() {
        for c in [
            Case { rows: 11, ..base() },
            Case {
                rows: 9,
                dropout: 0.3,
                one_hot: false,
                ..base()
            },
        ] {
            let s = spec(&c);
            let layout = crate::transformer::layout(
                &s,
                &OptimizerSpec::default(),
                &mut ChaCha8Rng::seed_from_u64(1),
            )
            .unwrap();
            let Arch::Transformer(arch) = &layout.arch else {
                unreachable!()
            };
            let params: Vec<Vec<f32>> = layout.values[..layout.values.len() - 1].to_vec();
            let mut rng = ChaCha8Rng::seed_from_u64(5);
            let input: Vec<f32> = (0..c.rows * c.tokens * c.features)
                .map(|_| rng.gen_range(-1.0f32..1.0))
                .collect();
            let masks = arch.dropout_masks(c.rows, &mut rng);
            let dims: Vec<usize> = s.heads.iter().map(|h| h.dim).collect();
            let (mut whole, mut chunked) = (Outputs::new(), Outputs::new());
            whole.resize(c.rows, &dims);
            chunked.resize(c.rows, &dims);
            let mut host = HostTransformer::new(arch);
            host.forward(&params, &input, None, c.rows, &masks, &mut whole, false);
            for chunk_rows in [1, 2, 4] {
                host.chunk_token_rows = chunk_rows * c.tokens;
                host.forward(&params, &input, None, c.rows, &masks, &mut chunked, false);
                for h in 0..dims.len() {
                    close(
                        &format!("{c:?}, {chunk_rows} rows, head {h}"),
                        whole.head(h),
                        chunked.head(h),
                        1e-6,
                    );
                }
            }
        }
    }

    #[test]
    fn token_ids_need_exactly_one_one_per_token() {
        let c = base();
        let layout = crate::transformer::layout(
            &spec(&c),
            &OptimizerSpec::default(),
            &mut ChaCha8Rng::seed_from_u64(1),
        )
        .unwrap();
        let Arch::Transformer(arch) = &layout.arch else {
            unreachable!()
        };
        let one_hot = |id: usize| {
            let mut b = vec![0.0f32; c.features];
            b[id] = 1.0;
            b
        };
        let row = |last: Vec<f32>| -> Vec<f32> {
            let mut v: Vec<f32> = (0..c.tokens - 1).flat_map(|t| one_hot(t % 5)).collect();
            v.extend(last);
            v
        };
        assert_eq!(arch.token_ids(&row(one_hot(4)), 1), Some(vec![0, 1, 2, 4]));
        let mut negative_zero = one_hot(2);
        negative_zero[0] = -0.0;
        assert_eq!(
            arch.token_ids(&row(negative_zero), 1),
            Some(vec![0, 1, 2, 2])
        );
        let mut two = one_hot(1);
        two[3] = 1.0;
        let mut half = one_hot(1);
        half[3] = 0.5;
        let mut nan = one_hot(1);
        nan[0] = f32::NAN;
        for bad in [two, half, nan, vec![0.0; c.features], vec![0.5; c.features]] {
            assert_eq!(arch.token_ids(&row(bad), 1), None);
        }
        assert_eq!(arch.token_ids(&row(one_hot(0)), 2), None, "wrong length");
    }

    #[test]
    fn exp_is_accurate_on_its_domain() {
        let mut x = 0.0f32;
        while x > -90.0 {
            let want = f64::from(x).exp().max(f64::from(-87.0f32).exp());
            let got = f64::from(exp_nonpositive::<Plain>(x));
            let fused = f64::from(exp_nonpositive::<Fused>(x));
            assert!(
                ((fused - want) / want).abs() < 3e-7,
                "fused exp({x}) = {fused}"
            );
            assert!(
                ((got - want) / want).abs() < 3e-7,
                "exp({x}) = {got}, want {want}"
            );
            x -= 0.01;
        }
    }
}

#[cfg(test)]
mod timing {
    use std::time::Instant;

    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::backend::Arch;
    use crate::{
        Device, HeadSpec, Model, OptimizerSpec, ScalarSpec, TokenReadout, TransformerSpec,
    };

    /// Host kernel against the dfdx path at the bit-sequence k = 8 shape (run by hand:
    /// `cargo test --release -p softgfn-nn --lib host_timing -- --ignored --nocapture`).
    #[test]
    #[ignore = "timing, run by hand"]
    fn host_timing() {
        let s = TransformerSpec {
            tokens: 16,
            token_features: 258,
            d_model: 64,
            layers: 3,
            attention_heads: 8,
            feedforward: 64,
            dropout: 0.0,
            forward_readout: TokenReadout::TokenWord { words: 256 },
            backward_readout: TokenReadout::Token,
            heads: vec![
                HeadSpec::forward_actions("pf", 4096),
                HeadSpec::backward_actions("pb", 16),
            ],
            scalars: vec![ScalarSpec::new("log_z", 0.0)],
        };
        let opt = OptimizerSpec::default();
        let layout =
            crate::transformer::layout(&s, &opt, &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
        let Arch::Transformer(arch) = &layout.arch else {
            unreachable!()
        };
        let params: Vec<Vec<f32>> = layout.values[..layout.values.len() - 1].to_vec();
        let mut model =
            Model::transformer(&s, &opt, Device::Cpu, &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
        // The dfdx path, for comparison.
        model.set_reference_kernels(true).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        {
            // The attention loops alone, 240 rows.
            let z = Dims {
                rows: 240,
                t: 16,
                d: 64,
                h: 8,
                dh: 8,
                ff: 64,
                n: 3840,
            };
            let qkv: Vec<f32> = (0..z.n * 192)
                .map(|i| ((i * 7) % 13) as f32 / 13.0)
                .collect();
            let mut probs = vec![0.0f32; 240 * 8 * 256];
            let mut attn = vec![0.0f32; z.n * 64];
            let mut dqkv = vec![0.0f32; z.n * 192];
            let mut s = HeadScratch::default();
            let (mut f, mut b) = (f64::MAX, f64::MAX);
            for _ in 0..20 {
                let t0 = Instant::now();
                attention_forward(z, &qkv, Some(&mut probs), &mut attn, None, &mut s);
                f = f.min(t0.elapsed().as_secs_f64() * 1e3);
                let t0 = Instant::now();
                attention_backward(z, &qkv, &probs, &attn, None, &mut dqkv, &mut s);
                b = b.min(t0.elapsed().as_secs_f64() * 1e3);
            }
            eprintln!("attention of 240 rows, one layer: forward {f:.3} ms, backward {b:.3} ms");
        }
        for rows in [16usize, 240] {
            let mut input = vec![0.0f32; rows * 16 * 258];
            for b in input.chunks_exact_mut(258) {
                b[rng.gen_range(0..258)] = 1.0;
            }
            let dims = model.head_dims();
            let mut coeffs = Outputs::new();
            coeffs.reset(rows, &dims);
            for h in 0..dims.len() {
                for v in coeffs.head_mut(h) {
                    *v = rng.gen_range(-1.0f32..1.0);
                }
            }
            let t0 = Instant::now();
            let tokens = arch.token_ids(&input, rows);
            eprintln!(
                "token ids of {rows} rows: {:.3} ms",
                t0.elapsed().as_secs_f64() * 1e3
            );
            let mut host = HostTransformer::new(arch);
            let mut out = Outputs::new();
            let mut grads: Vec<Vec<f32>> = params.iter().map(|p| vec![0.0; p.len()]).collect();
            let reps = if rows == 16 { 50 } else { 10 };
            // The fastest of `reps` runs (the least disturbed by other processes).
            let time = |f: &mut dyn FnMut()| {
                f();
                let mut best = f64::MAX;
                for _ in 0..reps {
                    let t0 = Instant::now();
                    f();
                    best = best.min(t0.elapsed().as_secs_f64() * 1e3);
                }
                best
            };
            let host_only = std::env::var_os("HOST_ONLY").is_some();
            let dfdx_fwd = time(&mut || {
                if !host_only {
                    model.forward(&input, rows, &mut out).unwrap();
                }
            });
            let dfdx_train = time(&mut || {
                if host_only {
                    return;
                }
                model
                    .forward_train(&input, rows, &mut out, &mut rng)
                    .unwrap();
                model.backward(&coeffs, &[0.0]).unwrap();
            });
            out.resize(rows, &dims);
            let host_fwd = time(&mut || {
                host.forward(
                    &params,
                    &input,
                    tokens.as_deref(),
                    rows,
                    &[],
                    &mut out,
                    false,
                )
            });
            let host_rec = time(&mut || {
                host.forward(
                    &params,
                    &input,
                    tokens.as_deref(),
                    rows,
                    &[],
                    &mut out,
                    true,
                )
            });
            let host_train = time(&mut || {
                host.forward(
                    &params,
                    &input,
                    tokens.as_deref(),
                    rows,
                    &[],
                    &mut out,
                    true,
                );
                host.backward(&params, &coeffs, &mut grads);
            });
            eprintln!(
                "rows {rows}: dfdx forward {dfdx_fwd:.2} ms, train {dfdx_train:.2} ms; host forward \
                 {host_fwd:.2} ms, recorded {host_rec:.2} ms, train {host_train:.2} ms"
            );
        }
    }
}

//! How `gemm` sums, and a kernel for the products of one row.
//!
//! The host kernels' products are bitwise those of the dfdx path because they call `gemm` with
//! dfdx's arguments. Where `gemm` is known to sum each output as one chain in inner-dimension
//! order ([`product_chain`], [`gemm_depth_block`]), a kernel that forms the same chains gets the
//! same bits: the MLP's first layer as a gather (`host::mlp`), and [`row_product`].
//!
//! A forward of one row (the sampler's last trajectory, running alone) takes `gemm`'s
//! matrix-vector path, a scalar loop over one output vector (about 14 GFLOP/s for 256 x 256
//! here); [`row_product`] forms the same chains (`x * w + acc`, two roundings, inner dimension
//! in increasing order from `+0`) over eight 8-wide vectors at a time, twice as fast.
//!
//! The MLP's heads are narrow (5, 4 and 1 outputs for a hypergrid with a learned backward policy
//! and a flow), and `gemm` costs about 2 us per head and call whatever the width;
//! [`narrow_product`] computes all of them side by side, as one product of up to 16 columns,
//! with `gemm`'s microkernel chains.

/// How `gemm` sums each output of a product whose operands and destination are row-major (as
/// every product of the host kernels is).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Chain {
    /// One chain of fused multiply-adds per output in inner-dimension order from `+0` (its
    /// microkernels, on CPUs with FMA; without FMA they multiply and add apart).
    Microkernel,
    /// One chain of `x * w + acc` (two roundings) per output in inner-dimension order from `+0`
    /// (its matrix-vector path, on every CPU).
    MatrixVector,
}

/// How `gemm` sums the outputs of a `(m, k, n)` product without accumulation (`c = a @ b`), when
/// it is one chain per output (`None` otherwise): `gemm` transposes a row-major destination with
/// `n >= 2` to `(n, k, m)`; a product with one row (`m = 1`) then takes its matrix-vector path;
/// it takes its outer-product path for `k <= 2`; and it splits inner dimensions over 512 into
/// blocks (for at most 512 the block is `k` whatever the cache sizes). Other products run on its
/// microkernels, which sum each output as one chain.
pub(crate) fn product_chain(m: usize, k: usize, n: usize) -> Option<Chain> {
    if m == 0 || n == 0 || !(3..=512).contains(&k) {
        return None;
    }
    Some(if m == 1 {
        Chain::MatrixVector
    } else {
        Chain::Microkernel
    })
}

/// Most outputs of [`narrow_product`]: the MLP's heads side by side (two 8-wide vectors).
pub(crate) const NARROW: usize = 16;

/// Rows per register block of [`narrow_product`].
const NARROW_ROWS: usize = 6;

/// Whether this CPU runs [`narrow_product`] (FMA and AVX2; `gemm` picks its FMA microkernels on
/// every CPU with FMA).
pub(crate) fn narrow_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("fma") && std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `out = x @ w` for a row-major `rows x k` `x`, a row-major `k x NARROW` `w` and a row-major
/// `rows x NARROW` `out`: each output as one chain of fused multiply-adds over `k` in order
/// from `+0` (`f32::mul_add` rounds once, as the FMA instruction), which is bitwise what `gemm`
/// computes for every column of a product whose [`product_chain`] is [`Chain::Microkernel`]
/// (so the columns of several products with the same `x` can be computed side by side). Returns
/// false, having done nothing, where [`narrow_available`] is false or the chains would not be
/// `gemm`'s.
pub(crate) fn narrow_product(rows: usize, k: usize, x: &[f32], w: &[f32], out: &mut [f32]) -> bool {
    if product_chain(rows, k, NARROW) != Some(Chain::Microkernel)
        || x.len() < rows * k
        || w.len() < k * NARROW
        || out.len() < rows * NARROW
        || !narrow_available()
    {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[allow(unsafe_code)]
        // SAFETY: `narrow_available` checked at run time that the CPU has FMA and AVX2, which
        // is all that `narrow_product_fma` is compiled for; the function itself is safe code.
        unsafe {
            narrow_product_fma(rows, k, x, w, out);
        }
    }
    true
}

/// The chains of [`narrow_product`] in blocks of up to [`NARROW_ROWS`] rows.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn narrow_product_fma(rows: usize, k: usize, x: &[f32], w: &[f32], out: &mut [f32]) {
    let mut r0 = 0;
    while r0 < rows {
        let left = rows - r0;
        match left {
            1 => narrow_block::<1>(r0, k, x, w, out),
            2 => narrow_block::<2>(r0, k, x, w, out),
            3 => narrow_block::<3>(r0, k, x, w, out),
            4 => narrow_block::<4>(r0, k, x, w, out),
            5 => narrow_block::<5>(r0, k, x, w, out),
            _ => narrow_block::<NARROW_ROWS>(r0, k, x, w, out),
        }
        r0 += left.min(NARROW_ROWS);
    }
}

/// Rows `r0..r0 + R` of [`narrow_product`].
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn narrow_block<const R: usize>(r0: usize, k: usize, x: &[f32], w: &[f32], out: &mut [f32]) {
    let xs: [&[f32]; R] = std::array::from_fn(|r| &x[(r0 + r) * k..(r0 + r + 1) * k]);
    let mut acc = [[0.0f32; NARROW]; R];
    for (kk, wrow) in w[..k * NARROW].chunks_exact(NARROW).enumerate() {
        for (a, xr) in acc.iter_mut().zip(&xs) {
            let xv = xr[kk];
            for (a, &wt) in a.iter_mut().zip(wrow) {
                *a = xv.mul_add(wt, *a);
            }
        }
    }
    for (r, a) in acc.iter().enumerate() {
        out[(r0 + r) * NARROW..(r0 + r + 1) * NARROW].copy_from_slice(a);
    }
}

/// The inner-dimension block length with which `gemm` sums a `(m, k, n)` product whose
/// destination is row-major and that neither takes its outer-product path (`k <= 2`) nor its
/// matrix-vector paths (an output dimension of 1): `gemm` transposes it to `(n, k, m)` and
/// splits `k` into blocks of `kc` (the last one shorter), each summed as one microkernel chain
/// from `+0` and added to the destination in order. `kc` is `gemm`'s own choice
/// (`gemm_common::cache::kernel_params` with the FMA microkernel's 24 x 4 tile, from this
/// machine's cache sizes), so it is at least `min(k, 512)`.
pub(crate) fn gemm_depth_block(m: usize, k: usize, n: usize) -> usize {
    // The microkernel tile of gemm's f32 FMA kernels: 3 x 8 rows, 4 columns.
    const MR: usize = 24;
    const NR: usize = 4;
    let (m, n) = (n, m);
    if m <= 64 && n <= 64 {
        k.min(512)
    } else {
        gemm_common::cache::kernel_params(m, n, k, MR, NR, std::mem::size_of::<f32>()).kc
    }
    .max(1)
}

/// Outputs per register block (eight 8-wide vectors: one row has no other rows to hide the
/// latency of each chain's steps behind).
const WIDE: usize = 64;

/// `out = x @ w` for one row: `x` has `k` values, `w` is row-major `k x n`, `out` has `n`;
/// bitwise `gemm`'s product where [`product_chain`] is [`Chain::MatrixVector`]. Returns false,
/// having done nothing, elsewhere.
pub(crate) fn row_product(k: usize, n: usize, x: &[f32], w: &[f32], out: &mut [f32]) -> bool {
    if product_chain(1, k, n) != Some(Chain::MatrixVector)
        || x.len() < k
        || w.len() < k * n
        || out.len() < n
    {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        #[allow(unsafe_code)]
        // SAFETY: the CPU has AVX2, which is all that `row_product_avx2` is compiled for; the
        // function itself is safe code.
        unsafe {
            row_product_avx2(k, n, x, w, out);
        }
        return true;
    }
    row_product_any(k, n, x, w, out);
    true
}

/// [`row_product_any`] compiled for AVX2 (8-wide vectors; Rust never fuses `x * w + acc`, so
/// the results are those of any other build).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn row_product_avx2(k: usize, n: usize, x: &[f32], w: &[f32], out: &mut [f32]) {
    row_product_any(k, n, x, w, out);
}

/// The chains of [`row_product`], in blocks of [`WIDE`] outputs, then the rest.
// `x * w + acc` in `gemm`'s operand order (`acc += x * w` would add in the other order, which
// only matters for which NaN comes out, but keeps the order visible).
#[allow(clippy::assign_op_pattern)]
#[inline(always)]
fn row_product_any(k: usize, n: usize, x: &[f32], w: &[f32], out: &mut [f32]) {
    let x = &x[..k];
    let w = &w[..k * n];
    let mut j0 = 0;
    while j0 + WIDE <= n {
        let mut acc = [0.0f32; WIDE];
        for (&xv, wrow) in x.iter().zip(w.chunks_exact(n)) {
            let wv: &[f32; WIDE] = wrow[j0..j0 + WIDE]
                .try_into()
                .expect("a block of WIDE values");
            for (a, &wt) in acc.iter_mut().zip(wv) {
                *a = xv * wt + *a;
            }
        }
        out[j0..j0 + WIDE].copy_from_slice(&acc);
        j0 += WIDE;
    }
    if j0 < n {
        let width = n - j0;
        let mut acc = [0.0f32; WIDE];
        for (&xv, wrow) in x.iter().zip(w.chunks_exact(n)) {
            for (a, &wt) in acc[..width].iter_mut().zip(&wrow[j0..n]) {
                *a = xv * wt + *a;
            }
        }
        out[j0..n].copy_from_slice(&acc[..width]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::matmul;

    /// Values of every kind the networks see: exact zeros of both signs, ones, tiny, huge and
    /// ordinary values.
    fn values(len: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..len)
            .map(|i| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                let u = (s >> 8) as f32 / (1u32 << 24) as f32 * 4.0 - 2.0;
                match i % 11 {
                    0 => 0.0,
                    1 => -0.0,
                    2 => 1.0,
                    3 => u * 1e-30,
                    4 => u * 1e20,
                    _ => u,
                }
            })
            .collect()
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn row_product_is_bitwise_gemm() {
        for &k in &[3usize, 7, 80, 256, 512] {
            for &n in &[1usize, 2, 5, 16, 17, 63, 64, 65, 130, 256] {
                let x = values(k, (k * 7 + n) as u32);
                let w = values(k * n, (k * 13 + n) as u32);
                let mut expected = vec![f32::NAN; n];
                matmul(
                    (1, k, n),
                    false,
                    &x,
                    [k, 1],
                    &w,
                    [n, 1],
                    &mut expected,
                    [n, 1],
                );
                let mut got = vec![f32::NAN; n];
                assert!(row_product(k, n, &x, &w, &mut got));
                assert_eq!(bits(&got), bits(&expected), "k {k}, n {n}");
                // The portable build too.
                let mut got = vec![f32::NAN; n];
                row_product_any(k, n, &x, &w, &mut got);
                assert_eq!(bits(&got), bits(&expected), "portable, k {k}, n {n}");
            }
        }
    }

    #[test]
    fn microkernel_chains_are_fused_chains() {
        // What the gather of `host::mlp` relies on: with at least 2 rows (and FMA), each output
        // is the fused chain over the inner dimension in order from +0.
        if !std::arch::is_x86_feature_detected!("fma") {
            return;
        }
        for &(m, k, n) in &[
            (2usize, 3usize, 1usize),
            (16, 80, 256),
            (5, 512, 7),
            (300, 256, 5),
        ] {
            assert_eq!(product_chain(m, k, n), Some(Chain::Microkernel));
            let x = values(m * k, 3);
            let w = values(k * n, 4);
            let mut expected = vec![f32::NAN; m * n];
            matmul(
                (m, k, n),
                false,
                &x,
                [k, 1],
                &w,
                [n, 1],
                &mut expected,
                [n, 1],
            );
            let chains: Vec<f32> = (0..m * n)
                .map(|e| {
                    let (r, j) = (e / n, e % n);
                    (0..k).fold(0.0f32, |acc, kk| x[r * k + kk].mul_add(w[kk * n + j], acc))
                })
                .collect();
            assert_eq!(bits(&chains), bits(&expected), "({m}, {k}, {n})");
        }
    }

    #[test]
    fn narrow_product_is_bitwise_gemm() {
        if !narrow_available() {
            return;
        }
        for &k in &[3usize, 80, 256, 512] {
            for rows in 2..=20 {
                let x = values(rows * k, (rows * 5 + k) as u32);
                let w = values(k * NARROW, k as u32);
                let mut expected = vec![f32::NAN; rows * NARROW];
                matmul(
                    (rows, k, NARROW),
                    false,
                    &x,
                    [k, 1],
                    &w,
                    [NARROW, 1],
                    &mut expected,
                    [NARROW, 1],
                );
                let mut got = vec![f32::NAN; rows * NARROW];
                assert!(narrow_product(rows, k, &x, &w, &mut got));
                assert_eq!(bits(&got), bits(&expected), "rows {rows}, k {k}");
                // Each column is also that of a narrower product (the heads apart).
                for (start, width) in [(0usize, 5usize), (5, 4), (9, 1), (10, 6)] {
                    let wj: Vec<f32> = (0..k)
                        .flat_map(|kk| w[kk * NARROW + start..kk * NARROW + start + width].to_vec())
                        .collect();
                    let mut alone = vec![f32::NAN; rows * width];
                    matmul(
                        (rows, k, width),
                        false,
                        &x,
                        [k, 1],
                        &wj,
                        [width, 1],
                        &mut alone,
                        [width, 1],
                    );
                    let side: Vec<f32> = (0..rows)
                        .flat_map(|r| got[r * NARROW + start..r * NARROW + start + width].to_vec())
                        .collect();
                    assert_eq!(
                        bits(&side),
                        bits(&alone),
                        "rows {rows}, k {k}, head at {start}"
                    );
                }
            }
        }
        let mut out = vec![0.0; NARROW];
        assert!(
            !narrow_product(1, 4, &[0.0; 4], &[0.0; 4 * NARROW], &mut out),
            "one row"
        );
    }

    #[test]
    fn accumulated_products_are_blocked_chains() {
        // What the first layer's scatter-add relies on: `c += a^T @ g` (the weight gradient's
        // shape, the batch as inner dimension) is, per output, `c + chain` over each block of
        // `gemm_depth_block` rows in turn, each chain fused and from +0, for short and long
        // batches.
        if !std::arch::is_x86_feature_detected!("fma") {
            return;
        }
        for &(m, k, n) in &[
            (80usize, 3usize, 256usize),
            (80, 513, 256),
            (80, 1500, 256),
            (7, 700, 5),
            (40, 1100, 30),
        ] {
            let a = values(k * m, 5); // k x m, viewed as m x k
            let g = values(k * n, 6);
            let c0 = values(m * n, 7);
            let mut expected = c0.clone();
            matmul(
                (m, k, n),
                true,
                &a,
                [1, m],
                &g,
                [n, 1],
                &mut expected,
                [n, 1],
            );
            let kc = gemm_depth_block(m, k, n);
            let mut chains = c0.clone();
            for start in (0..k).step_by(kc) {
                let end = (start + kc).min(k);
                for e in 0..m * n {
                    let (i, j) = (e / n, e % n);
                    let s =
                        (start..end).fold(0.0f32, |acc, r| a[r * m + i].mul_add(g[r * n + j], acc));
                    chains[e] += s;
                }
            }
            assert_eq!(
                bits(&chains),
                bits(&expected),
                "({m}, {k}, {n}), blocks of {kc}"
            );
        }
    }

    #[test]
    fn row_product_declines_what_gemm_sums_otherwise() {
        let mut out = vec![0.0; 1024];
        let x = vec![1.0; 513];
        let w = vec![1.0; 513 * 2];
        assert!(
            !row_product(2, 4, &x, &w, &mut out),
            "k <= 2: gemm's outer products"
        );
        assert!(!row_product(513, 2, &x, &w, &mut out), "k > 512");
        assert!(!row_product(4, 4, &x[..3], &w, &mut out), "short input");
        assert!(!row_product(4, 0, &x, &w, &mut out), "no outputs");
    }

    /// Timings of three narrow `gemm` products and [`narrow_product`] (run by hand, as below).
    #[test]
    #[ignore = "a timing, not a test"]
    fn narrow_timing() {
        for rows in [16usize, 16, 8, 3] {
            let k = 256;
            let x = values(rows * k, 1);
            let w = values(k * NARROW, 2);
            let mut out = vec![0.0; rows * NARROW];
            let reps = 20_000;
            let t = std::time::Instant::now();
            for _ in 0..reps {
                for (start, width) in [(0usize, 5usize), (5, 4), (9, 1)] {
                    matmul(
                        (rows, k, width),
                        false,
                        &x,
                        [k, 1],
                        &w[start..],
                        [width, 1],
                        &mut out,
                        [width, 1],
                    );
                }
            }
            let g = t.elapsed().as_secs_f64() / f64::from(reps) * 1e6;
            let t = std::time::Instant::now();
            for _ in 0..reps {
                narrow_product(rows, k, &x, &w, &mut out);
            }
            let p = t.elapsed().as_secs_f64() / f64::from(reps) * 1e6;
            println!("{rows} rows: three gemm heads {g:.2} us, narrow_product {p:.2} us");
        }
    }

    /// Timings of `gemm` and [`row_product`] at the sampler's one-row shapes (run by hand:
    /// `cargo test --release -p softgfn-nn small::tests::timing -- --ignored --nocapture`).
    #[test]
    #[ignore = "a timing, not a test"]
    fn timing() {
        for &(k, n) in &[
            (256usize, 256usize),
            (256, 256),
            (80, 256),
            (256, 5),
            (256, 1),
        ] {
            let x = values(k, 1);
            let w = values(k * n, 2);
            let mut out = vec![0.0; n];
            let reps = 20_000;
            let t = std::time::Instant::now();
            for _ in 0..reps {
                matmul((1, k, n), false, &x, [k, 1], &w, [n, 1], &mut out, [n, 1]);
            }
            let g = t.elapsed().as_secs_f64() / f64::from(reps) * 1e6;
            let t = std::time::Instant::now();
            for _ in 0..reps {
                row_product(k, n, &x, &w, &mut out);
            }
            let p = t.elapsed().as_secs_f64() / f64::from(reps) * 1e6;
            let gf = |us: f64| 2.0 * (k * n) as f64 / us / 1e3;
            println!(
                "1 x {k:>3} x {n:>3}: gemm {g:.2} us ({:.1} GFLOP/s), row_product {p:.2} us ({:.1} GFLOP/s)",
                gf(g),
                gf(p)
            );
        }
    }
}

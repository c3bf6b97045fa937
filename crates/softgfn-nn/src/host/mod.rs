//! Host kernels: a network's forward and backward over host `f32` slices, for
//! [`Device::Cpu`](crate::Device::Cpu).
//!
//! The dfdx path builds every op as a tensor with its own allocation, and records a tape of
//! boxed closures; for the small matrices of these networks that bookkeeping, the element-wise
//! passes and the page clearing of fresh buffers cost as much as the arithmetic. A [`HostNet`]
//! runs the same arithmetic with reusable workspaces: GEMMs through the `gemm` crate with the
//! exact arguments dfdx's CPU matmul passes (so results are bitwise those of the dfdx path where
//! the kernel does the same element-wise operations in the same order), bias and activation
//! fused into one pass, gradients written into buffers the backend reuses.
//!
//! dfdx stays the tensor framework: the parameter store, Adam, Polyak averaging, checkpoints and
//! the CUDA path are unchanged, and the dfdx path is the reference implementation that the tests
//! compare against (`Model::set_reference_kernels`).

use std::fmt;

use crate::Outputs;

pub(crate) mod mlp;
pub(crate) mod transformer;

/// A CPU forward/backward of one architecture over host slices. An instance owns its workspace;
/// the backend keeps two instances: one for inference forwards (`forward`, `forward_dropout`)
/// and one for the recorded training forward (`forward_train` .. `backward`), so that inference
/// forwards between a training forward and its backward never clobber the record.
pub(crate) trait HostNet: Send + Sync + fmt::Debug {
    /// Forward of `rows` rows. `input` is row-major `rows x input_dim`; when `tokens` is Some
    /// (transformer with one-hot tokens, see `TransformerArch::token_ids`) the ids are used and
    /// `input` may be ignored. `masks` are the dropout masks (empty = eval mode) in the order and
    /// with the values the dfdx path uses (`TransformerArch::dropout_masks`). Writes head j's
    /// output into `out.head_mut(j)` (`out` is already resized). With `record`, keeps in the
    /// workspace what `backward` needs.
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &mut self,
        params: &[Vec<f32>],
        input: &[f32],
        tokens: Option<&[usize]>,
        rows: usize,
        masks: &[Vec<f32>],
        out: &mut Outputs,
        record: bool,
    );

    /// Backward of the recorded forward: `head_grads` is d loss / d head outputs (same shapes);
    /// ADDS the parameter gradients into `grads[k]` (one Vec per network parameter, in layout
    /// order, same lengths as `params[k]`; scalars are not included).
    fn backward(&mut self, params: &[Vec<f32>], head_grads: &Outputs, grads: &mut [Vec<f32>]);

    /// A fresh instance (empty workspace) of the same architecture.
    fn fresh(&self) -> Box<dyn HostNet>;
}

/// The first `len` values of `buf`, growing it (never shrinking) when it is shorter. Contents
/// are whatever the buffer held before (zeros where it grew).
pub(crate) fn grow(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    &mut buf[..len]
}

/// Like [`grow`], then zero-filled.
pub(crate) fn grow_zeroed(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    let s = grow(buf, len);
    s.fill(0.0);
    s
}

/// Whether a `rows x cols` matrix with strides `[row, col]` lies inside a buffer of `len`.
fn fits(rows: usize, cols: usize, strides: [usize; 2], len: usize) -> bool {
    if rows == 0 || cols == 0 {
        return true;
    }
    (rows - 1)
        .checked_mul(strides[0])
        .and_then(|a| (cols - 1).checked_mul(strides[1]).map(|b| (a, b)))
        .and_then(|(a, b)| a.checked_add(b))
        .is_some_and(|last| last < len)
}

/// `c = a @ b` (or `c += a @ b` with `accum`), where `a` is `m x k`, `b` is `k x n` and `c` is
/// `m x n`, each a strided view `[row stride, column stride]` of its slice.
///
/// This passes `gemm` exactly the arguments that dfdx 0.13's CPU matmul passes for the same
/// views (destination column/row strides, `alpha` 1 when accumulating and 0 otherwise, `beta` 1,
/// rayon parallelism with the current pool's thread count), so a product computed here is
/// bitwise the product the dfdx path computes.
///
/// # Panics
/// If a view does not lie inside its slice (an internal error: callers size their buffers).
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    (m, k, n): (usize, usize, usize),
    accum: bool,
    a: &[f32],
    a_strides: [usize; 2],
    b: &[f32],
    b_strides: [usize; 2],
    c: &mut [f32],
    c_strides: [usize; 2],
) {
    assert!(
        fits(m, k, a_strides, a.len())
            && fits(k, n, b_strides, b.len())
            && fits(m, n, c_strides, c.len()),
        "matmul views out of bounds: ({m}, {k}, {n}) with strides {a_strides:?} / \
         {b_strides:?} / {c_strides:?} over {} / {} / {} values",
        a.len(),
        b.len(),
        c.len()
    );
    let stride = |s: usize| isize::try_from(s).expect("stride fits in isize");
    #[allow(unsafe_code)]
    // SAFETY: the assertion above checks that every element of the three strided views lies
    // inside its slice (for empty views gemm touches nothing); `c` is borrowed mutably, so it
    // cannot overlap `a` or `b`; `gemm` reads `c` only when `accum` (`read_dst`) is set, and the
    // slice is initialized anyway.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            stride(c_strides[1]),
            stride(c_strides[0]),
            accum,
            a.as_ptr(),
            stride(a_strides[1]),
            stride(a_strides[0]),
            b.as_ptr(),
            stride(b_strides[1]),
            stride(b_strides[0]),
            if accum { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(rayon::current_num_threads()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_matches_a_naive_product_with_transposed_views() {
        // a: 2x3 row-major; b: 3x2 given as its transpose (2x3 row-major) viewed with strides.
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let bt = [1.0, 0.5, -1.0, 2.0, 0.0, 1.0];
        let mut c = [10.0f32; 4];
        matmul((2, 3, 2), false, &a, [3, 1], &bt, [1, 3], &mut c, [2, 1]);
        assert_eq!(c, [-1.0, 5.0, 0.5, 14.0]);
        matmul((2, 3, 2), true, &a, [3, 1], &bt, [1, 3], &mut c, [2, 1]);
        assert_eq!(c, [-2.0, 10.0, 1.0, 28.0]);
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn matmul_rejects_views_past_the_slice() {
        let mut c = [0.0f32; 4];
        matmul(
            (2, 3, 2),
            false,
            &[0.0; 5],
            [3, 1],
            &[0.0; 6],
            [2, 1],
            &mut c,
            [2, 1],
        );
    }

    #[test]
    fn grow_keeps_capacity_and_zeroes_on_request() {
        let mut v = vec![1.0; 4];
        assert_eq!(grow(&mut v, 2), &[1.0, 1.0]);
        assert_eq!(grow(&mut v, 6).len(), 6);
        assert_eq!(v.len(), 6);
        assert!(grow_zeroed(&mut v, 3).iter().all(|&x| x == 0.0));
    }
}

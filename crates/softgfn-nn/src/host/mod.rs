//! Host kernels: a network's CPU forward and backward over host `f32` slices with reusable
//! workspaces (provisional seam, to be replaced by the shared one).

#![allow(dead_code)]

pub(crate) mod transformer;

use crate::Outputs;

/// A CPU forward/backward of one architecture over host slices.
pub(crate) trait HostNet: Send + Sync + std::fmt::Debug {
    /// Forward of `rows` rows (see the seam description).
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
    /// Backward of the recorded forward; adds the parameter gradients into `grads`.
    fn backward(&mut self, params: &[Vec<f32>], head_grads: &Outputs, grads: &mut [Vec<f32>]);
    /// A fresh instance (empty workspace) of the same architecture.
    fn fresh(&self) -> Box<dyn HostNet>;
}

/// `c = a @ b` (or `c += a @ b` with `accum`) over strided views `[row stride, column stride]`
/// (provisional: the shared seam provides this).
#[allow(clippy::too_many_arguments)]
#[allow(unsafe_code)]
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
    let fits = |rows: usize, cols: usize, st: [usize; 2], len: usize| {
        rows == 0 || cols == 0 || (rows - 1) * st[0] + (cols - 1) * st[1] < len
    };
    assert!(
        fits(m, k, a_strides, a.len())
            && fits(k, n, b_strides, b.len())
            && fits(m, n, c_strides, c.len()),
        "matmul views out of bounds"
    );
    // SAFETY: every view lies inside its slice (asserted); `c` is a unique borrow.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            c_strides[1] as isize,
            c_strides[0] as isize,
            accum,
            a.as_ptr(),
            a_strides[1] as isize,
            a_strides[0] as isize,
            b.as_ptr(),
            b_strides[1] as isize,
            b_strides[0] as isize,
            if accum { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(rayon::current_num_threads()),
        );
    }
}

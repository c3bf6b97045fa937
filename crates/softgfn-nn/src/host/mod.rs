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

/// A strided read-only matrix view: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MatRef<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major `rows x cols` matrix.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose (no copy).
    pub fn t(self) -> Self {
        Self {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    fn fits(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.data.len()
    }
}

/// A strided mutable matrix view.
#[derive(Debug)]
pub(crate) struct MatMut<'a> {
    pub data: &'a mut [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> MatMut<'a> {
    /// A row-major `rows x cols` matrix.
    pub fn new(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }
}

/// `dst = lhs @ rhs` (or `dst += lhs @ rhs` with `accumulate`) through the `gemm` crate, with
/// the parallelism dfdx's CPU matmul uses.
///
/// # Panics
/// If the shapes disagree or a view reaches past its slice.
#[allow(unsafe_code)]
pub(crate) fn gemm(dst: MatMut<'_>, lhs: MatRef<'_>, rhs: MatRef<'_>, accumulate: bool) {
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
    let dst_fits = dst.rows == 0
        || dst.cols == 0
        || (dst.rows - 1) * dst.rs + (dst.cols - 1) * dst.cs < dst.data.len();
    assert!(
        lhs.fits() && rhs.fits() && dst_fits,
        "gemm view out of bounds"
    );
    if dst.rows == 0 || dst.cols == 0 {
        return;
    }
    if lhs.cols == 0 {
        if !accumulate {
            for i in 0..dst.rows {
                for j in 0..dst.cols {
                    dst.data[i * dst.rs + j * dst.cs] = 0.0;
                }
            }
        }
        return;
    }
    // SAFETY: every view was checked above to address only elements inside its slice; `dst` is
    // a unique borrow, so it does not alias `lhs` or `rhs` (shared borrows).
    unsafe {
        gemm::gemm(
            dst.rows,
            dst.cols,
            lhs.cols,
            dst.data.as_mut_ptr(),
            dst.cs as isize,
            dst.rs as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(rayon::current_num_threads()),
        );
    }
}

/// Resizes `v` to `len` (never shrinks the allocation); contents are unspecified.
pub(crate) fn grow(v: &mut Vec<f32>, len: usize) {
    v.resize(len, 0.0);
}

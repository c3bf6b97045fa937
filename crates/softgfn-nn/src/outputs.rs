//! Host buffers for head outputs and their gradients.

/// Head outputs of a batch: one row-major `rows x dim` buffer per head, in spec order.
///
/// The same type carries the upstream gradients handed to
/// [`Model::backward`](crate::Model::backward) (fill it with [`Outputs::reset`] and
/// [`Outputs::head_mut`]). Buffers are reused between calls: as long as the row count does not
/// grow, nothing is reallocated.
#[derive(Clone, Debug, Default)]
pub struct Outputs {
    rows: usize,
    dims: Vec<usize>,
    buffers: Vec<Vec<f32>>,
}

impl Outputs {
    /// An empty set of outputs (no heads, zero rows).
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of rows of the last batch.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Head `i` as a row-major `rows x dim(i)` slice.
    ///
    /// # Panics
    /// If `i >= num_heads()`.
    pub fn head(&self, i: usize) -> &[f32] {
        &self.buffers[i]
    }

    /// Mutable view of head `i` (row-major `rows x dim(i)`).
    ///
    /// # Panics
    /// If `i >= num_heads()`.
    pub fn head_mut(&mut self, i: usize) -> &mut [f32] {
        &mut self.buffers[i]
    }

    /// Output width of head `i`.
    ///
    /// # Panics
    /// If `i >= num_heads()`.
    pub fn dim(&self, i: usize) -> usize {
        self.dims[i]
    }

    /// Number of heads.
    pub fn num_heads(&self) -> usize {
        self.dims.len()
    }

    /// Resizes to `rows` rows with the given head dims and fills every buffer with zeros (used to
    /// prepare gradients).
    pub fn reset(&mut self, rows: usize, dims: &[usize]) {
        self.resize(rows, dims);
        for b in &mut self.buffers {
            b.fill(0.0);
        }
    }

    /// Resizes without clearing (contents are overwritten by the caller).
    pub(crate) fn resize(&mut self, rows: usize, dims: &[usize]) {
        self.rows = rows;
        if self.dims != dims {
            self.dims.clear();
            self.dims.extend_from_slice(dims);
        }
        self.buffers.resize_with(dims.len(), Vec::new);
        for (b, &d) in self.buffers.iter_mut().zip(dims) {
            b.resize(rows * d, 0.0);
        }
    }
}

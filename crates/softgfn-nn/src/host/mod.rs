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
pub(crate) mod small;
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

    /// The parameters passed to the next calls may differ from those of the calls before
    /// (the backend's mirror was refreshed): forget anything derived from them. The default
    /// keeps nothing, so does nothing.
    fn params_changed(&mut self) {}

    /// Values of one row's record: what `backward` needs of one row, and the row's head
    /// outputs (see [`RowCache`]). 0 (the default) when this architecture keeps no row records
    /// (or cannot: a row's outputs must not depend on the other rows of a batch of at least 2);
    /// then the backend never calls `export_row` or `forward_reusing`. `head_dims` are the
    /// output widths of the heads.
    fn row_record_len(&self, _head_dims: &[usize]) -> usize {
        0
    }

    /// Whether training forwards reuse rows unless told otherwise (`Model::set_row_reuse`):
    /// where a row's record costs more to copy (twice: into the cache, then into the training
    /// forward's workspace) than to compute again, an architecture says no.
    fn reuse_rows_by_default(&self) -> bool {
        true
    }

    /// After a recorded forward of this instance without dropout, whose outputs are `out`:
    /// writes row `r`'s record into `dst` (`row_record_len` values).
    fn export_row(&self, _r: usize, _out: &Outputs, _dst: &mut [f32]) {}

    /// A recorded forward without dropout (as `forward` with `record` and no masks), in which
    /// row `r` is taken from `records.get(r)` when that is `Some` instead of being computed
    /// (`rows >= 2`; compute the other rows in a batch of at least 2 rows too).
    /// Such a record was exported by an instance of the same architecture after a forward of
    /// the same input row with the same parameters and no dropout; since a row's activations do
    /// not depend on the other rows of its batch (tested), copying it is exact.
    #[allow(clippy::too_many_arguments)]
    fn forward_reusing(
        &mut self,
        params: &[Vec<f32>],
        input: &[f32],
        tokens: Option<&[usize]>,
        rows: usize,
        _records: &RowRecords<'_>,
        out: &mut Outputs,
    ) {
        self.forward(params, input, tokens, rows, &[], out, true);
    }
}

/// The records found for the rows of a training forward: slot of each row in the cache's arena.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RowRecords<'a> {
    slots: &'a [Option<u32>],
    arena: &'a [f32],
    stride: usize,
    skip: usize,
}

impl<'a> RowRecords<'a> {
    /// The record of row `r`, if one was found.
    pub(crate) fn get(&self, r: usize) -> Option<&'a [f32]> {
        let slot = self.slots.get(r).copied().flatten()? as usize;
        let start = slot * self.stride + self.skip;
        self.arena.get(start..(slot + 1) * self.stride)
    }
}

/// Most bytes a [`RowCache`] holds (per model).
pub(crate) const ROW_CACHE_BYTES: usize = 64 << 20;

/// Training forwards without a hit after which recording stops, and inference forwards
/// (counted in training forwards) before it is tried again.
const ROW_CACHE_PROBE_INTERVAL: u32 = 50;

/// Per-row activations of the inference forwards since the last parameter change, keyed by the
/// input row, so that a training forward over rows the sampler already ran (on-policy balance
/// objectives: the sampler forwards every state of the trajectories it then trains on) takes
/// them instead of computing them again.
///
/// Exact: a record is only kept from a forward without dropout and only used by a training
/// forward without dropout, the cache is emptied whenever the parameters change, a row is found
/// by comparing its input bit for bit, and a row's activations do not depend on the other rows
/// of its batch of at least 2 rows (gemm accumulates each output in the same order whatever
/// the batch size, when every product's inner dimension is at most 512, so that gemm does not
/// split it into blocks; a batch of one row takes another path and is neither kept nor reused;
/// tested for every architecture that keeps records).
///
/// Bounded: at most twice as many rows as the largest training forward had, and at most
/// [`ROW_CACHE_BYTES`] (64 MiB) per model; rows past that are not recorded (so that large
/// evaluation forwards do not fill memory).
/// Recording starts with the first training forward (target networks, which never train,
/// record nothing), and stops while training forwards find nothing in it (off-policy training
/// on replayed states), trying again every 50 training forwards.
#[derive(Debug)]
pub(crate) struct RowCache {
    input_dim: usize,
    /// Values per arena row: the input row, then the record.
    stride: usize,
    /// Most rows kept: twice the largest training forward's rows, within [`ROW_CACHE_BYTES`].
    max_rows: usize,
    /// Most rows kept by the byte bound.
    byte_rows: usize,
    arena: Vec<f32>,
    rows: usize,
    index: std::collections::HashMap<u64, u32>,
    /// Whether inference forwards record rows.
    recording: bool,
    /// Training forwards since recording stopped.
    idle: u32,
    /// Whether a training forward ran (recording starts with the first).
    started: bool,
    /// Rows taken from the cache by training forwards, in all.
    reused: u64,
    /// Slots of the rows of the latest training forward.
    slots: Vec<Option<u32>>,
}

/// A hash of the bits of one input row (four independent lanes, so that long rows hash at
/// several values per cycle).
fn row_hash(row: &[f32]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = [
        0x9e37_79b9_7f4a_7c15u64,
        0x6a09_e667_f3bc_c908,
        0xbb67_ae85_84ca_a73b,
        0x3c6e_f372_fe94_f82b,
    ];
    let mut chunks = row.chunks_exact(4);
    for c in &mut chunks {
        for (l, v) in h.iter_mut().zip(c) {
            *l = (l.rotate_left(5) ^ u64::from(v.to_bits())).wrapping_mul(K);
        }
    }
    for (l, v) in h.iter_mut().zip(chunks.remainder()) {
        *l = (l.rotate_left(5) ^ u64::from(v.to_bits())).wrapping_mul(K);
    }
    let mut out = row.len() as u64;
    for l in h {
        out = (out.rotate_left(5) ^ l).wrapping_mul(K);
    }
    out
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

impl RowCache {
    /// A cache for rows of `input_dim` values and records of `record_len` values (`None` when
    /// `record_len` is 0: nothing to keep).
    pub(crate) fn new(input_dim: usize, record_len: usize) -> Option<Self> {
        if record_len == 0 {
            return None;
        }
        let stride = input_dim + record_len;
        Some(Self {
            input_dim,
            stride,
            max_rows: 0,
            byte_rows: (ROW_CACHE_BYTES / (4 * stride)).min(u32::MAX as usize),
            arena: Vec::new(),
            rows: 0,
            index: std::collections::HashMap::new(),
            recording: false,
            idle: 0,
            started: false,
            reused: 0,
            slots: Vec::new(),
        })
    }

    /// Whether an inference forward of `rows` rows should keep its rows (then it runs as a
    /// recorded forward, so that `export_row` finds everything).
    pub(crate) fn wants(&self, rows: usize) -> bool {
        self.recording && rows >= 2 && rows <= self.max_rows && self.rows < self.max_rows
    }

    /// Forgets every row (the parameters changed).
    pub(crate) fn clear(&mut self) {
        self.rows = 0;
        self.index.clear();
    }

    /// Records the rows of an inference forward without dropout: for each new input row (while
    /// there is room), its input and the record `export(r, dst)` writes.
    pub(crate) fn insert_rows(
        &mut self,
        input: &[f32],
        rows: usize,
        mut export: impl FnMut(usize, &mut [f32]),
    ) {
        // A forward of one row takes gemm's matrix-vector path, whose sums differ from those of
        // a batch: such rows are not kept.
        if !self.recording || rows < 2 || input.len() != rows * self.input_dim {
            return;
        }
        for r in 0..rows {
            if self.rows >= self.max_rows {
                return;
            }
            let row = &input[r * self.input_dim..(r + 1) * self.input_dim];
            let h = row_hash(row);
            // A row seen before, or (rarely) another row with the same hash: keep the first.
            let std::collections::hash_map::Entry::Vacant(e) = self.index.entry(h) else {
                continue;
            };
            let slot = self.rows;
            e.insert(slot as u32);
            self.rows += 1;
            let end = self.rows * self.stride;
            if self.arena.len() < end {
                self.arena.resize(
                    end.max(self.arena.len() * 2)
                        .min(self.max_rows * self.stride),
                    0.0,
                );
            }
            let dst = &mut self.arena[slot * self.stride..end];
            dst[..self.input_dim].copy_from_slice(row);
            export(r, &mut dst[self.input_dim..]);
        }
    }

    /// Finds the records of the rows of a training forward without dropout; afterwards updates
    /// whether to keep recording. Returns the records (and how many rows were found).
    pub(crate) fn lookup(&mut self, input: &[f32], rows: usize) -> (RowRecords<'_>, usize) {
        self.slots.clear();
        self.max_rows = self
            .max_rows
            .max(rows.saturating_mul(2).min(self.byte_rows));
        let mut hits = 0;
        if self.rows > 0 && rows >= 2 && input.len() == rows * self.input_dim {
            for r in 0..rows {
                let row = &input[r * self.input_dim..(r + 1) * self.input_dim];
                let slot = self.index.get(&row_hash(row)).copied().filter(|&s| {
                    let start = s as usize * self.stride;
                    same_bits(&self.arena[start..start + self.input_dim], row)
                });
                hits += usize::from(slot.is_some());
                self.slots.push(slot);
            }
        }
        self.after_training_forward(hits);
        (
            RowRecords {
                slots: &self.slots,
                arena: &self.arena,
                stride: self.stride,
                skip: self.input_dim,
            },
            hits,
        )
    }

    /// Starts, keeps or stops recording after a training forward that found `hits` rows.
    fn after_training_forward(&mut self, hits: usize) {
        self.reused += hits as u64;
        if !self.recording {
            self.idle += 1;
            if !self.started || self.idle >= ROW_CACHE_PROBE_INTERVAL {
                self.recording = true;
                self.idle = 0;
            }
            self.started = true;
        } else if hits == 0 && self.rows > 0 {
            // Nothing recorded was trained on (off-policy training on replayed states): stop
            // paying for the copies and the memory.
            self.recording = false;
            self.idle = 0;
            self.arena = Vec::new();
            self.clear();
        }
    }

    /// Rows taken from the cache by training forwards, in all.
    pub(crate) fn reused(&self) -> u64 {
        self.reused
    }
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

//! The MLP on host slices: `[Linear -> ReLU]*` torso, one linear layer per head.
//!
//! Every floating-point operation is the one the dfdx path does, in the same order, so outputs
//! and gradients are bitwise equal to it:
//!
//! - forward: `z = x @ W` (one GEMM), then `h = max(z + b, 0)` in one fused pass (dfdx adds the
//!   broadcast bias, then applies ReLU, each in its own pass and buffer);
//! - backward: the upstream gradient enters as `0 + g` (dfdx accumulates every gradient into a
//!   zeroed buffer, which turns `-0` into `+0`); bias gradients are sums over rows in row order
//!   starting from 0; ReLU's derivative is `1` where `z > 0`, read from `h` (`h > 0` exactly
//!   where `z > 0`) and applied as `0 + df * g`; weight and input gradients are GEMMs that
//!   accumulate into zeroed buffers, with the heads visited last-first (dfdx runs the backward
//!   ops in reverse creation order, so the torso output's gradient sums the heads from the last
//!   one).
//!
//! **The first layer as a gather.** Where every input value of a batch is 0 or 1 (one-hot and
//! binary encodings: the hypergrid's, the bit sequences'), the first layer's product and its
//! weight gradient skip the zeros, still bitwise equal. `gemm` sums each output of these
//! products as chains in inner-dimension order from `+0` (see `host::small`: fused
//! multiply-adds, or `x * w + acc` for one row; a long inner dimension in blocks, each block's
//! chain added to the destination in turn), and with `x` 0 or 1 both kinds of step are exact
//! sums: `acc + w` or `acc` (for finite `w`; `acc` is never `-0`: it starts at `+0`, and a sum
//! that cancels to zero is `+0`). So layer 1's output is `+0` plus the weight rows of the row's
//! ones in increasing index order, and its weight gradient (whose inner dimension is the batch)
//! adds, block by block, each row's upstream gradient into the weight rows of the row's ones
//! in row order from `+0`, then the block into the gradient buffer (`gemm`'s `dst + acc`).
//! Batches with a value other than 0 or 1, with non-finite weights (or, for the gradient,
//! non-finite upstream gradients: `0 * inf` is NaN), or of the sizes where `gemm` takes another
//! path, go through `gemm`.
//!
//! **The heads side by side.** The heads are narrow, and `gemm` costs about as much per call
//! for 1 output as for 16: forwards of at least 2 rows compute all heads as one product of
//! their weight columns side by side (`host::small::narrow_product`, the same chains).
//!
//! Forwards of one row run their other products on `host::small::row_product`, bitwise
//! `gemm`'s matrix-vector path, and twice as fast.

use crate::Outputs;
use crate::host::small::{self, Chain, NARROW, product_chain};
use crate::host::{HostNet, RowRecords, grow, grow_zeroed, matmul};

/// One linear layer: parameter indices and sizes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Linear {
    /// Index of the weight (`[fan_in, fan_out]`, row-major).
    pub w: usize,
    /// Index of the bias (`[fan_out]`).
    pub b: usize,
    /// Inputs.
    pub fan_in: usize,
    /// Outputs.
    pub fan_out: usize,
}

/// What the forward keeps for the backward.
#[derive(Debug, Default)]
struct Workspace {
    /// Rows of the recorded forward (`None` before the first recorded forward).
    recorded_rows: Option<usize>,
    /// The recorded input.
    input: Vec<f32>,
    /// Post-ReLU activations of every torso layer (`rows x fan_out`).
    hidden: Vec<Vec<f32>>,
    /// Gradient of the current layer's output, and of the one below (swapped per layer).
    grad: Vec<f32>,
    grad_below: Vec<f32>,
    /// `0 + g` of one head.
    head_grad: Vec<f32>,
    /// The forward's scratch (the ones of the input, the heads side by side); the backward
    /// scans its recorded input into `scratch.ones`.
    scratch: Scratch,
    /// The first layer's weight gradient of one backward, summed by the gather.
    first_grad: Vec<f32>,
    /// Rows without a record in a reusing forward, their inputs, activations and outputs.
    missing: Vec<usize>,
    compact_input: Vec<f32>,
    compact_hidden: Vec<Vec<f32>>,
    compact_out: Outputs,
}

/// The host MLP kernel.
#[derive(Debug)]
pub(crate) struct HostMlp {
    input_dim: usize,
    head_dims: Vec<usize>,
    torso: Vec<Linear>,
    heads: Vec<Linear>,
    ws: Workspace,
}

impl HostMlp {
    /// A kernel for these layers (input side first) and heads.
    pub(crate) fn new(input_dim: usize, torso: Vec<Linear>, heads: Vec<Linear>) -> Self {
        let ws = Workspace {
            hidden: vec![Vec::new(); torso.len()],
            compact_hidden: vec![Vec::new(); torso.len()],
            ..Workspace::default()
        };
        Self {
            input_dim,
            head_dims: heads.iter().map(|h| h.fan_out).collect(),
            torso,
            heads,
            ws,
        }
    }
}

/// Scratch buffers of a forward.
#[derive(Debug, Default)]
struct Scratch {
    /// The ones of the input (see [`OneHot`]).
    ones: OneHot,
    /// Whether the first layer's weights are all finite, as found since the last parameter
    /// change (`None`: not looked at yet).
    first_finite: Option<bool>,
    /// The heads' weights side by side (`fan_in x NARROW`), and their outputs (`rows x NARROW`).
    heads_w: Vec<f32>,
    heads_out: Vec<f32>,
}

/// The heads' products as one (their weight columns side by side, see
/// `host::small::narrow_product`), then their biases; false, having done nothing, where that
/// would not be bitwise each head's own `gemm` product (fewer than two heads, more than
/// [`NARROW`] outputs in all, or a product that `gemm` would not sum with its microkernels).
fn heads_side_by_side(
    params: &[Vec<f32>],
    heads: &[Linear],
    top: &[f32],
    rows: usize,
    out: &mut Outputs,
    scratch: &mut Scratch,
) -> bool {
    let Some(k) = heads.first().map(|h| h.fan_in) else {
        return false;
    };
    let width: usize = heads.iter().map(|h| h.fan_out).sum();
    if heads.len() < 2
        || width > NARROW
        || heads
            .iter()
            .any(|h| h.fan_in != k || product_chain(rows, k, h.fan_out) != Some(Chain::Microkernel))
        || !small::narrow_available()
    {
        return false;
    }
    let w = grow_zeroed(&mut scratch.heads_w, k * NARROW);
    let mut at = 0;
    for h in heads {
        let d = h.fan_out;
        for (row, src) in w.chunks_exact_mut(NARROW).zip(params[h.w].chunks_exact(d)) {
            row[at..at + d].copy_from_slice(src);
        }
        at += d;
    }
    let o = grow(&mut scratch.heads_out, rows * NARROW);
    if !small::narrow_product(rows, k, top, &scratch.heads_w[..k * NARROW], o) {
        return false;
    }
    let mut at = 0;
    for (j, h) in heads.iter().enumerate() {
        let d = h.fan_out;
        let bias = &params[h.b][..d];
        for (dst, src) in out
            .head_mut(j)
            .chunks_exact_mut(d)
            .zip(o.chunks_exact(NARROW))
        {
            for ((y, &v), &c) in dst.iter_mut().zip(&src[at..at + d]).zip(bias) {
                *y = v + c;
            }
        }
        at += d;
    }
    true
}

/// The ones of a batch whose values are all 0 or 1: row `r`'s ones are the input indices
/// `idx[off[r]..off[r + 1]]`, increasing.
#[derive(Debug, Default)]
struct OneHot {
    /// Whether the last [`OneHot::scan`] found only zeros and ones.
    valid: bool,
    idx: Vec<u32>,
    off: Vec<usize>,
}

impl OneHot {
    /// Scans `rows` rows of `k` values; returns (and keeps in `valid`) whether every value is
    /// 0 or 1 (`-0` counts as 0: `fma(-0, w, acc) = acc` too).
    fn scan(&mut self, x: &[f32], rows: usize, k: usize) -> bool {
        self.idx.clear();
        self.off.clear();
        self.off.push(0);
        self.valid = false;
        if k == 0 || x.len() != rows * k || u32::try_from(k).is_err() {
            return false;
        }
        for row in x.chunks_exact(k) {
            for (i, &v) in row.iter().enumerate() {
                if v == 1.0 {
                    self.idx.push(i as u32);
                } else if v != 0.0 {
                    return false;
                }
            }
            self.off.push(self.idx.len());
        }
        self.valid = true;
        true
    }

    /// Row `r`'s ones.
    fn row(&self, r: usize) -> &[u32] {
        &self.idx[self.off[r]..self.off[r + 1]]
    }
}

/// Whether every value is finite: the largest exponent field is not all ones (integer maxima,
/// which vectorize; the weights are scanned at every forward that gathers).
fn all_finite(v: &[f32]) -> bool {
    const EXPONENT: u32 = 0x7f80_0000;
    v.iter().fold(0u32, |m, x| m.max(x.to_bits() & EXPONENT)) < EXPONENT
}

/// `out = x @ W` over the rows of `ones` (rows whose values are all 0 or 1): bitwise the `gemm`
/// product when [`product_chain`] says it is one chain per output and `W` is finite (see the
/// module docs).
fn gather_forward(w: &[f32], fan_out: usize, ones: &OneHot, rows: usize, out: &mut [f32]) {
    for (r, row) in out.chunks_exact_mut(fan_out).take(rows).enumerate() {
        row.fill(0.0);
        for &i in ones.row(r) {
            let i = i as usize;
            for (o, &v) in row.iter_mut().zip(&w[i * fan_out..(i + 1) * fan_out]) {
                *o += v;
            }
        }
    }
}

/// `dst += x^T @ g` for a first layer (`x` is `rows x fan_in`, `g` is `rows x fan_out`) as a
/// scatter-add of the rows of `g` when that is bitwise the `gemm` product (see the module
/// docs): per block of rows as `gemm` splits its inner dimension (`small::gemm_depth_block`),
/// the block's rows added from `+0` in row order, then the block added to `dst`. Returns
/// false, having done nothing, where it is not.
#[allow(clippy::too_many_arguments)]
fn first_layer_weight_grad(
    ones: &mut OneHot,
    acc: &mut Vec<f32>,
    x: &[f32],
    g: &[f32],
    rows: usize,
    fan_in: usize,
    fan_out: usize,
    dst: &mut [f32],
) -> bool {
    // gemm's outer-product path (k <= 2) and matrix-vector paths (an output dimension of 1)
    // sum otherwise.
    if rows < 3 || fan_in < 2 || fan_out < 2 || !small::narrow_available() {
        return false;
    }
    if !ones.scan(x, rows, fan_in) || !all_finite(g) {
        return false;
    }
    let kc = small::gemm_depth_block(fan_in, rows, fan_out);
    let dst = &mut dst[..fan_in * fan_out];
    let mut start = 0;
    while start < rows {
        let end = (start + kc).min(rows);
        let acc = grow_zeroed(acc, fan_in * fan_out);
        for r in start..end {
            let gr = &g[r * fan_out..(r + 1) * fan_out];
            for &i in ones.row(r) {
                let i = i as usize;
                for (a, &v) in acc[i * fan_out..(i + 1) * fan_out].iter_mut().zip(gr) {
                    *a += v;
                }
            }
        }
        for (d, &a) in dst.iter_mut().zip(acc.iter()) {
            *d += a;
        }
        start = end;
    }
    true
}

/// `out = max(x @ W + b, 0)` (with `relu`) or `x @ W + b` over `rows` rows.
/// With `first` (the network's first layer: the scan of `x`, see [`OneHot`], and whether its
/// weights are finite, once known) the product is a gather where that is bitwise the same.
fn linear_forward(
    params: &[Vec<f32>],
    layer: Linear,
    x: &[f32],
    rows: usize,
    out: &mut [f32],
    relu: bool,
    first: Option<(&OneHot, &mut Option<bool>)>,
) {
    let Linear {
        w,
        b,
        fan_in,
        fan_out,
    } = layer;
    let gather = first.and_then(|(ones, first_finite)| {
        (ones.valid
            && product_chain(rows, fan_in, fan_out).is_some()
            && *first_finite.get_or_insert_with(|| all_finite(&params[w])))
        .then_some(ones)
    });
    match gather {
        Some(ones) => gather_forward(&params[w], fan_out, ones, rows, out),
        None => {
            let done = rows == 1 && small::row_product(fan_in, fan_out, x, &params[w], out);
            if !done {
                matmul(
                    (rows, fan_in, fan_out),
                    false,
                    x,
                    [fan_in, 1],
                    &params[w],
                    [fan_out, 1],
                    out,
                    [fan_out, 1],
                );
            }
        }
    }
    let bias = &params[b][..fan_out];
    for row in out.chunks_exact_mut(fan_out) {
        if relu {
            for (y, &c) in row.iter_mut().zip(bias) {
                *y = (*y + c).max(0.0);
            }
        } else {
            for (y, &c) in row.iter_mut().zip(bias) {
                *y += c;
            }
        }
    }
}

/// Adds the column sums of `g` (`rows x width`, summed in row order) to `bias_grad`.
fn add_bias_grad(bias_grad: &mut [f32], g: &[f32], width: usize) {
    let acc = &mut bias_grad[..width];
    for row in g.chunks_exact(width) {
        for (a, &v) in acc.iter_mut().zip(row) {
            *a += v;
        }
    }
}

/// The forward of `rows` rows of `input`: torso activations into `hidden`, heads into `out`.
/// `scratch.ones` receives the scan of `input` (see [`OneHot`]).
#[allow(clippy::too_many_arguments)]
fn run(
    torso: &[Linear],
    heads: &[Linear],
    params: &[Vec<f32>],
    input: &[f32],
    rows: usize,
    hidden: &mut [Vec<f32>],
    out: &mut Outputs,
    scratch: &mut Scratch,
) {
    let ones = &mut scratch.ones;
    ones.valid = false;
    if rows == 0 {
        return;
    }
    let first = torso.first().or(heads.first());
    if let Some(l) = first
        && product_chain(rows, l.fan_in, l.fan_out).is_some()
    {
        ones.scan(input, rows, l.fan_in);
    }
    for (l, &layer) in torso.iter().enumerate() {
        let (below, rest) = hidden.split_at_mut(l);
        let x: &[f32] = match below.last() {
            Some(h) => &h[..rows * layer.fan_in],
            None => input,
        };
        let h = grow(&mut rest[0], rows * layer.fan_out);
        let first = (l == 0).then_some((&scratch.ones, &mut scratch.first_finite));
        linear_forward(params, layer, x, rows, h, true, first);
    }
    let top: &[f32] = match (hidden.last(), torso.last()) {
        (Some(h), Some(l)) => &h[..rows * l.fan_out],
        _ => input,
    };
    if !torso.is_empty() && heads_side_by_side(params, heads, top, rows, out, scratch) {
        return;
    }
    for (j, &head) in heads.iter().enumerate() {
        // Without a torso every head is a first layer, with weights of its own.
        let mut unknown = None;
        let first = torso.is_empty().then_some((&scratch.ones, &mut unknown));
        linear_forward(params, head, top, rows, out.head_mut(j), false, first);
    }
}

impl HostNet for HostMlp {
    fn forward(
        &mut self,
        params: &[Vec<f32>],
        input: &[f32],
        _tokens: Option<&[usize]>,
        rows: usize,
        _masks: &[Vec<f32>],
        out: &mut Outputs,
        record: bool,
    ) {
        let ws = &mut self.ws;
        if record {
            ws.recorded_rows = Some(rows);
            grow(&mut ws.input, input.len()).copy_from_slice(input);
        }
        run(
            &self.torso,
            &self.heads,
            params,
            input,
            rows,
            &mut ws.hidden,
            out,
            &mut ws.scratch,
        );
    }

    fn backward(&mut self, params: &[Vec<f32>], head_grads: &Outputs, grads: &mut [Vec<f32>]) {
        let ws = &mut self.ws;
        let Some(rows) = ws.recorded_rows else {
            return;
        };
        if rows == 0 {
            return;
        }
        let d = self.torso.last().map_or(self.input_dim, |l| l.fan_out);
        let has_torso = !self.torso.is_empty();
        let input = &ws.input[..rows * self.input_dim];
        if has_torso {
            grow_zeroed(&mut ws.grad, rows * d);
        }
        // Heads, last first.
        for (j, &head) in self.heads.iter().enumerate().rev() {
            let dim = head.fan_out;
            let g = grow(&mut ws.head_grad, rows * dim);
            for (a, &v) in g.iter_mut().zip(head_grads.head(j)) {
                *a = 0.0 + v;
            }
            let g = &ws.head_grad[..rows * dim];
            add_bias_grad(&mut grads[head.b], g, dim);
            let top: &[f32] = match ws.hidden.last() {
                Some(h) => &h[..rows * d],
                None => input,
            };
            if has_torso {
                matmul(
                    (rows, dim, d),
                    true,
                    g,
                    [dim, 1],
                    &params[head.w],
                    [1, dim],
                    &mut ws.grad[..rows * d],
                    [d, 1],
                );
            }
            matmul(
                (d, rows, dim),
                true,
                top,
                [1, d],
                g,
                [dim, 1],
                &mut grads[head.w],
                [dim, 1],
            );
        }
        // Torso, top layer first; `ws.grad` holds d loss / d (this layer's output).
        for (l, &layer) in self.torso.iter().enumerate().rev() {
            let Linear {
                w,
                b,
                fan_in,
                fan_out,
            } = layer;
            let n = rows * fan_out;
            let h = &ws.hidden[l][..n];
            let g = &mut ws.grad[..n];
            for (gz, &y) in g.iter_mut().zip(h) {
                let df = if y > 0.0 { 1.0 } else { 0.0 };
                *gz = 0.0 + df * *gz;
            }
            let g = &ws.grad[..n];
            add_bias_grad(&mut grads[b], g, fan_out);
            let below: &[f32] = if l == 0 {
                input
            } else {
                &ws.hidden[l - 1][..rows * fan_in]
            };
            if l > 0 {
                let gb = grow_zeroed(&mut ws.grad_below, rows * fan_in);
                matmul(
                    (rows, fan_out, fan_in),
                    true,
                    g,
                    [fan_out, 1],
                    &params[w],
                    [1, fan_out],
                    gb,
                    [fan_in, 1],
                );
            }
            let gathered = l == 0
                && first_layer_weight_grad(
                    &mut ws.scratch.ones,
                    &mut ws.first_grad,
                    below,
                    g,
                    rows,
                    fan_in,
                    fan_out,
                    &mut grads[w],
                );
            if !gathered {
                matmul(
                    (fan_in, rows, fan_out),
                    true,
                    below,
                    [1, fan_in],
                    g,
                    [fan_out, 1],
                    &mut grads[w],
                    [fan_out, 1],
                );
            }
            if l > 0 {
                std::mem::swap(&mut ws.grad, &mut ws.grad_below);
            }
        }
    }

    fn row_record_len(&self, _head_dims: &[usize]) -> usize {
        // Over 512 inputs gemm may split a layer's sums into blocks whose length depends on the
        // batch, and rows would depend on their batch.
        if self.torso.iter().chain(&self.heads).any(|l| l.fan_in > 512) {
            return 0;
        }
        self.torso
            .iter()
            .chain(&self.heads)
            .map(|l| l.fan_out)
            .sum()
    }

    fn export_row(&self, r: usize, out: &Outputs, dst: &mut [f32]) {
        let mut at = 0;
        for (l, layer) in self.torso.iter().enumerate() {
            let w = layer.fan_out;
            dst[at..at + w].copy_from_slice(&self.ws.hidden[l][r * w..(r + 1) * w]);
            at += w;
        }
        for (j, head) in self.heads.iter().enumerate() {
            let d = head.fan_out;
            dst[at..at + d].copy_from_slice(&out.head(j)[r * d..(r + 1) * d]);
            at += d;
        }
    }

    fn forward_reusing(
        &mut self,
        params: &[Vec<f32>],
        input: &[f32],
        _tokens: Option<&[usize]>,
        rows: usize,
        records: &RowRecords<'_>,
        out: &mut Outputs,
    ) {
        let ws = &mut self.ws;
        ws.recorded_rows = Some(rows);
        grow(&mut ws.input, input.len()).copy_from_slice(input);
        // The rows without a record, computed as one compact batch.
        let d_in = self.input_dim;
        ws.missing.clear();
        ws.missing
            .extend((0..rows).filter(|&r| records.get(r).is_none()));
        let m = ws.missing.len();
        if m == rows {
            run(
                &self.torso,
                &self.heads,
                params,
                input,
                rows,
                &mut ws.hidden,
                out,
                &mut ws.scratch,
            );
            return;
        }
        if m > 0 {
            // One missing row is computed twice in a batch of 2: a batch of one row would take
            // gemm's matrix-vector path and differ from the row inside the full batch.
            let batch = m.max(2);
            let x = grow(&mut ws.compact_input, batch * d_in);
            for (i, &r) in ws.missing.iter().enumerate() {
                x[i * d_in..(i + 1) * d_in].copy_from_slice(&input[r * d_in..(r + 1) * d_in]);
            }
            if m == 1 {
                x.copy_within(0..d_in, d_in);
            }
            ws.compact_out.resize(batch, &self.head_dims);
            run(
                &self.torso,
                &self.heads,
                params,
                &ws.compact_input[..batch * d_in],
                batch,
                &mut ws.compact_hidden,
                &mut ws.compact_out,
                &mut ws.scratch,
            );
        }
        // Every row into place: from its record, or from the compact batch.
        for (l, layer) in self.torso.iter().enumerate() {
            grow(&mut ws.hidden[l], rows * layer.fan_out);
        }
        let mut next_missing = 0;
        for r in 0..rows {
            let mut at = 0;
            match records.get(r) {
                Some(rec) => {
                    for (l, layer) in self.torso.iter().enumerate() {
                        let w = layer.fan_out;
                        ws.hidden[l][r * w..(r + 1) * w].copy_from_slice(&rec[at..at + w]);
                        at += w;
                    }
                    for (j, head) in self.heads.iter().enumerate() {
                        let d = head.fan_out;
                        out.head_mut(j)[r * d..(r + 1) * d].copy_from_slice(&rec[at..at + d]);
                        at += d;
                    }
                }
                None => {
                    let i = next_missing;
                    next_missing += 1;
                    for (l, layer) in self.torso.iter().enumerate() {
                        let w = layer.fan_out;
                        ws.hidden[l][r * w..(r + 1) * w]
                            .copy_from_slice(&ws.compact_hidden[l][i * w..(i + 1) * w]);
                    }
                    for (j, head) in self.heads.iter().enumerate() {
                        let d = head.fan_out;
                        out.head_mut(j)[r * d..(r + 1) * d]
                            .copy_from_slice(&ws.compact_out.head(j)[i * d..(i + 1) * d]);
                    }
                }
            }
        }
    }

    fn params_changed(&mut self) {
        self.ws.scratch.first_finite = None;
    }

    fn fresh(&self) -> Box<dyn HostNet> {
        Box::new(HostMlp::new(
            self.input_dim,
            self.torso.clone(),
            self.heads.clone(),
        ))
    }
}

//! The sEH proxy of Bengio et al. (2021) in float64 without a tensor framework (spec 3).
//!
//! ```text
//! out = lrelu(x W0^T + b0)                                   x: [n, 71] -> [n, 64]
//! repeat 12:  agg_i = mean_{e = (j -> i)} out_j W_{type(e)}  (0 without in-edge)
//!             m = lrelu(agg + out ROOT + b_conv)             ROOT = conv.root^T (quirk Q2)
//!             out = GRUCell(m, out)
//! q* = Set2Set(out, 3 steps);  score = w3 . q* + b3
//! ```
//!
//! The edge network `W_e = nn2(lrelu(nn0(onehot(type))))` takes only four values, one per bond
//! type, precomputed once. A batch of molecules is one stack of atoms, so every step is two
//! matrix products over all atoms of the batch: `out [N, 64] x [ROOT | W_single | W_double |
//! W_triple | W_aromatic | W_hh^T] [64, 512]` and `m [N, 64] x W_ih^T [64, 192]`.

use std::io::Read;
use std::path::Path;

use ndarray::linalg::general_mat_mul;
use ndarray::{Array1, Array2, ArrayView2, s};
use safetensors::{Dtype, SafeTensors};
use softgfn_core::{CoreError, Result};

use crate::NAME;
use crate::assemble::{ATOM_FEATURES, Molecule};

/// The embedded weights (`data/proxy_seh_mpnn_v2.safetensors.gz`).
pub(crate) const EMBEDDED_WEIGHTS_GZ: &[u8] =
    include_bytes!("../data/proxy_seh_mpnn_v2.safetensors.gz");

/// Hidden width.
const H: usize = 64;
/// Message-passing steps.
const STEPS: usize = 12;
/// Set2Set processing steps.
const SET2SET_STEPS: usize = 3;
/// Width of the per-step product `[ROOT | W_hh^T]`.
const WIDE: usize = H + 3 * H;

/// The tensors the score uses, with their shapes.
const TENSORS: [(&str, &[usize]); 18] = [
    ("lin0.weight", &[64, 71]),
    ("lin0.bias", &[64]),
    ("conv.root", &[64, 64]),
    ("conv.bias", &[64]),
    ("conv.nn.0.weight", &[128, 4]),
    ("conv.nn.0.bias", &[128]),
    ("conv.nn.2.weight", &[4096, 128]),
    ("conv.nn.2.bias", &[4096]),
    ("gru.weight_ih_l0", &[192, 64]),
    ("gru.weight_hh_l0", &[192, 64]),
    ("gru.bias_ih_l0", &[192]),
    ("gru.bias_hh_l0", &[192]),
    ("set2set.lstm.weight_ih_l0", &[256, 128]),
    ("set2set.lstm.weight_hh_l0", &[256, 64]),
    ("set2set.lstm.bias_ih_l0", &[256]),
    ("set2set.lstm.bias_hh_l0", &[256]),
    ("lin3.weight", &[1, 128]),
    ("lin3.bias", &[1]),
];

#[inline]
fn lrelu(v: f64) -> f64 {
    if v > 0.0 { v } else { 0.01 * v }
}

/// `exp(x)` to about one unit in the last place, in plain arithmetic the compiler vectorises:
/// `2^n * e^r` with `n = round(x / ln 2)`, `|r| <= ln(2) / 2` and the Taylor series of `e^r`
/// to degree 13 (truncation below 2e-16 relative). Arguments are clamped to `[-708, 709]`.
#[inline]
fn exp(x: f64) -> f64 {
    const SHIFT: f64 = 6_755_399_441_055_744.0; // 1.5 * 2^52: adding it rounds to an integer
    const LN2_HI: f64 = 0.693_147_180_369_123_8;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    let x = x.clamp(-708.0, 709.0);
    let t = x * std::f64::consts::LOG2_E + SHIFT;
    let n = t - SHIFT;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let mut p = INV_FACT[13];
    for k in (0..13).rev() {
        p = p * r + INV_FACT[k];
    }
    let bits = (t.to_bits().wrapping_sub(SHIFT.to_bits()) as i64 + 1023) as u64;
    p * f64::from_bits(bits << 52)
}

/// `1 / k!` for `k = 0..=13`.
const INV_FACT: [f64; 14] = {
    let mut a = [1.0; 14];
    let mut k = 1;
    while k < 14 {
        a[k] = a[k - 1] / k as f64;
        k += 1;
    }
    a
};

#[inline]
fn sigmoid(v: f64) -> f64 {
    1.0 / (1.0 + exp(-v))
}

#[inline]
fn tanh(v: f64) -> f64 {
    let e = exp(2.0 * v);
    (e - 1.0) / (e + 1.0)
}

fn weights_error(source: &str, details: impl std::fmt::Display) -> CoreError {
    CoreError::Environment {
        env: NAME.into(),
        message: format!("proxy weights {source}: {details}"),
    }
}

/// The proxy, ready to score: weights in float64 with the edge matrices precomputed.
#[derive(Clone, Debug, PartialEq)]
pub struct Proxy {
    /// `lin0.weight^T` `[71, 64]`.
    lin0: Array2<f64>,
    lin0_b: Array1<f64>,
    /// `[ROOT | W_hh^T]` `[64, 256]`.
    wide: Array2<f64>,
    /// The edge matrices `W_k` `[64, 64]` of the four bond types.
    edge: [Array2<f64>; 4],
    conv_b: Array1<f64>,
    /// `W_ih^T` `[64, 192]`.
    w_ih: Array2<f64>,
    b_ih: Array1<f64>,
    b_hh: Array1<f64>,
    /// LSTM input weights `[256, 128]` and hidden weights `[256, 64]` (row per gate unit).
    lstm_ih: Array2<f64>,
    lstm_hh: Array2<f64>,
    lstm_b: Array1<f64>,
    lin3: Array1<f64>,
    lin3_b: f64,
}

/// Scratch buffers of a batch, reused across calls.
#[derive(Debug, Default)]
pub struct ProxyScratch {
    x: Array2<f64>,
    out: Array2<f64>,
    y: Array2<f64>,
    m: Array2<f64>,
    gi: Array2<f64>,
    /// Per bond type: summed inputs of the atoms receiving it, and their products with `W_k`.
    sums: [Array2<f64>; 4],
    prods: [Array2<f64>; 4],
}

impl Proxy {
    /// The embedded weights of the paper's proxy.
    pub fn embedded() -> Self {
        Self::from_bytes(EMBEDDED_WEIGHTS_GZ, "(embedded)").expect("the embedded weights are valid")
    }

    /// Reads weights from a `.safetensors` file or a gzip of one.
    ///
    /// # Errors
    /// A missing or unreadable file, bytes that are not safetensors, a missing tensor or a
    /// tensor of another shape or type; the message names the file and the tensor.
    pub fn from_path(path: &Path) -> Result<Self> {
        let source = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| {
            weights_error(
                &source,
                format!("cannot be read ({e}); expected the proxy's .safetensors file"),
            )
        })?;
        Self::from_bytes(&bytes, &source)
    }

    /// Parses safetensors bytes (gzip-compressed or not).
    ///
    /// # Errors
    /// See [`Proxy::from_path`].
    pub fn from_bytes(bytes: &[u8], source: &str) -> Result<Self> {
        let plain;
        let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut v = Vec::new();
            flate2::read::GzDecoder::new(bytes)
                .read_to_end(&mut v)
                .map_err(|e| weights_error(source, format!("is not a valid gzip file ({e})")))?;
            plain = v;
            &plain[..]
        } else {
            bytes
        };
        let st = SafeTensors::deserialize(bytes).map_err(|e| {
            weights_error(
                source,
                format!(
                    "is not a safetensors file ({e}); expected the 22 tensors of the sEH proxy"
                ),
            )
        })?;
        let mut t: Vec<Vec<f64>> = Vec::with_capacity(TENSORS.len());
        for (name, shape) in TENSORS {
            let view = st.tensor(name).map_err(|_| {
                weights_error(
                    source,
                    format!("has no tensor `{name}` (expected shape {shape:?})"),
                )
            })?;
            if view.shape() != shape {
                return Err(weights_error(
                    source,
                    format!(
                        "tensor `{name}` has shape {:?}, expected {shape:?}",
                        view.shape()
                    ),
                ));
            }
            let data = view.data();
            let values: Vec<f64> = match view.dtype() {
                Dtype::F32 => data
                    .chunks_exact(4)
                    .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                    .collect(),
                Dtype::F64 => data
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                    .collect(),
                other => {
                    return Err(weights_error(
                        source,
                        format!("tensor `{name}` has type {other:?}, expected F32 or F64"),
                    ));
                }
            };
            if let Some(v) = values.iter().find(|v| !v.is_finite()) {
                return Err(weights_error(source, format!("tensor `{name}` holds {v}")));
            }
            t.push(values);
        }
        Ok(Self::build(&t))
    }

    fn build(t: &[Vec<f64>]) -> Self {
        let mat = |i: usize, r: usize, c: usize| {
            Array2::from_shape_vec((r, c), t[i].clone()).expect("shape checked")
        };
        let lin0 = mat(0, 64, 71)
            .reversed_axes()
            .as_standard_layout()
            .to_owned();
        let root = mat(2, 64, 64);
        let nn0 = mat(4, 128, 4);
        let nn0_b = &t[5];
        let nn2 = mat(6, 4096, 128);
        let nn2_b = &t[7];
        let w_hh = mat(9, 192, 64);
        let mut wide = Array2::zeros((H, WIDE));
        // Paper-as-run: out @ conv.root^T (spec 3.4), so ROOT[i][o] = root[o][i].
        wide.slice_mut(s![.., 0..H]).assign(&root.t());
        wide.slice_mut(s![.., H..]).assign(&w_hh.t());
        let edge = std::array::from_fn(|k| {
            let hidden: Vec<f64> = (0..128).map(|j| lrelu(nn0[[j, k]] + nn0_b[j])).collect();
            Array2::from_shape_fn((H, H), |(i, o)| {
                let r = i * H + o;
                let mut acc = nn2_b[r];
                for (j, h) in hidden.iter().enumerate() {
                    acc += nn2[[r, j]] * h;
                }
                acc
            })
        });
        let lstm_b = Array1::from_iter(t[14].iter().zip(&t[15]).map(|(a, b)| a + b));
        Self {
            lin0,
            lin0_b: Array1::from(t[1].clone()),
            wide,
            edge,
            conv_b: Array1::from(t[3].clone()),
            w_ih: mat(8, 192, 64)
                .reversed_axes()
                .as_standard_layout()
                .to_owned(),
            b_ih: Array1::from(t[10].clone()),
            b_hh: Array1::from(t[11].clone()),
            lstm_ih: mat(12, 256, 128),
            lstm_hh: mat(13, 256, 64),
            lstm_b,
            lin3: Array1::from(t[16].clone()),
            lin3_b: t[17][0],
        }
    }

    /// Scores one molecule.
    pub fn score(&self, mol: &Molecule) -> f64 {
        let mut out = [0.0];
        self.score_batch(&[mol], &mut ProxyScratch::default(), &mut out);
        out[0]
    }

    /// Scores a batch of molecules into `out` (one score each).
    pub fn score_batch(&self, mols: &[&Molecule], scratch: &mut ProxyScratch, out: &mut [f64]) {
        let total: usize = mols.iter().map(|m| m.atoms.len()).sum();
        let mut starts = Vec::with_capacity(mols.len() + 1);
        starts.push(0usize);
        // Per bond type: the directed edges `(source atom, receiving row)` and the receiving
        // atoms; in-degrees.
        let mut by_type: [Vec<(usize, usize)>; 4] = Default::default();
        let mut receivers: [Vec<usize>; 4] = Default::default();
        let mut slot = vec![[usize::MAX; 4]; total];
        let mut indeg = vec![0u32; total];
        for m in mols {
            let base = *starts.last().unwrap_or(&0);
            for &(u, v, t) in &m.bonds {
                let t = t as usize;
                for (a, b) in [
                    (base + u as usize, base + v as usize),
                    (base + v as usize, base + u as usize),
                ] {
                    if slot[b][t] == usize::MAX {
                        slot[b][t] = receivers[t].len();
                        receivers[t].push(b);
                    }
                    by_type[t].push((a, slot[b][t]));
                    indeg[b] += 1;
                }
            }
            starts.push(base + m.atoms.len());
        }
        let ProxyScratch {
            x,
            out: h,
            y,
            m,
            gi,
            sums,
            prods,
        } = scratch;
        resize(x, total, ATOM_FEATURES);
        let mut row = 0;
        for mol in mols {
            for a in &mol.atoms {
                let mut r = x.row_mut(row);
                a.write_features(r.as_slice_mut().expect("standard layout"));
                row += 1;
            }
        }
        resize(h, total, H);
        general_mat_mul(1.0, &x.view(), &self.lin0.view(), 0.0, h);
        h.rows_mut()
            .into_iter()
            .for_each(|mut r| r.zip_mut_with(&self.lin0_b, |v, b| *v = lrelu(*v + b)));
        resize(y, total, WIDE);
        resize(m, total, H);
        resize(gi, total, 3 * H);
        let (cb, bih, bhh) = (
            self.conv_b.as_slice().expect("contiguous"),
            self.b_ih.as_slice().expect("contiguous"),
            self.b_hh.as_slice().expect("contiguous"),
        );
        for _ in 0..STEPS {
            general_mat_mul(1.0, &h.view(), &self.wide.view(), 0.0, y);
            let ys = y.as_slice().expect("standard layout");
            let ms = m.as_slice_mut().expect("standard layout");
            ms.fill(0.0);
            let hv = h.as_slice().expect("standard layout");
            for t in 0..4 {
                if receivers[t].is_empty() {
                    continue;
                }
                resize(&mut sums[t], receivers[t].len(), H);
                resize(&mut prods[t], receivers[t].len(), H);
                let sv = sums[t].as_slice_mut().expect("standard layout");
                sv.fill(0.0);
                for &(a, r) in &by_type[t] {
                    for (d, s) in sv[r * H..(r + 1) * H]
                        .iter_mut()
                        .zip(&hv[a * H..(a + 1) * H])
                    {
                        *d += s;
                    }
                }
                general_mat_mul(
                    1.0,
                    &sums[t].view(),
                    &self.edge[t].view(),
                    0.0,
                    &mut prods[t],
                );
                let pv = prods[t].as_slice().expect("standard layout");
                for (r, &b) in receivers[t].iter().enumerate() {
                    for (d, s) in ms[b * H..(b + 1) * H]
                        .iter_mut()
                        .zip(&pv[r * H..(r + 1) * H])
                    {
                        *d += s;
                    }
                }
            }
            for (i, (mr, yr)) in ms
                .chunks_exact_mut(H)
                .zip(ys.chunks_exact(WIDE))
                .enumerate()
            {
                let inv = if indeg[i] > 0 {
                    1.0 / f64::from(indeg[i])
                } else {
                    0.0
                };
                for o in 0..H {
                    mr[o] = lrelu(mr[o] * inv + yr[o] + cb[o]);
                }
            }
            general_mat_mul(1.0, &m.view(), &self.w_ih.view(), 0.0, gi);
            let gs = gi.as_slice().expect("standard layout");
            let hs = h.as_slice_mut().expect("standard layout");
            for ((hr, g), yr) in hs
                .chunks_exact_mut(H)
                .zip(gs.chunks_exact(3 * H))
                .zip(ys.chunks_exact(WIDE))
            {
                let yh = &yr[H..];
                for o in 0..H {
                    let r = sigmoid(g[o] + bih[o] + (yh[o] + bhh[o]));
                    let z = sigmoid(g[H + o] + bih[H + o] + (yh[H + o] + bhh[H + o]));
                    let n =
                        tanh(g[2 * H + o] + bih[2 * H + o] + r * (yh[2 * H + o] + bhh[2 * H + o]));
                    hr[o] = (1.0 - z) * n + z * hr[o];
                }
            }
        }
        for (k, o) in out.iter_mut().enumerate() {
            *o = self.readout(h.slice(s![starts[k]..starts[k + 1], ..]));
        }
    }

    /// Set2Set (3 steps, LSTM gates i, f, g, o) and the final linear layer.
    fn readout(&self, out: ArrayView2<'_, f64>) -> f64 {
        let n = out.nrows();
        let mut q_star = [0.0f64; 2 * H];
        let mut hs = [0.0f64; H];
        let mut cs = [0.0f64; H];
        let mut e = vec![0.0f64; n];
        for _ in 0..SET2SET_STEPS {
            let mut gates = [0.0f64; 4 * H];
            for (g, gate) in gates.iter_mut().enumerate() {
                let wi = self.lstm_ih.row(g);
                let wh = self.lstm_hh.row(g);
                let mut acc = self.lstm_b[g];
                for j in 0..2 * H {
                    acc += wi[j] * q_star[j];
                }
                for j in 0..H {
                    acc += wh[j] * hs[j];
                }
                *gate = acc;
            }
            for o in 0..H {
                let i = sigmoid(gates[o]);
                let f = sigmoid(gates[H + o]);
                let g = tanh(gates[2 * H + o]);
                let og = sigmoid(gates[3 * H + o]);
                cs[o] = f * cs[o] + i * g;
                hs[o] = og * tanh(cs[o]);
            }
            let mut max = f64::NEG_INFINITY;
            for (a, ei) in e.iter_mut().enumerate() {
                let r = out.row(a);
                *ei = (0..H).map(|o| r[o] * hs[o]).sum();
                max = max.max(*ei);
            }
            let mut sum = 0.0;
            for ei in e.iter_mut() {
                *ei = exp(*ei - max);
                sum += *ei;
            }
            let mut read = [0.0f64; H];
            for (a, ei) in e.iter().enumerate() {
                let w = ei / (sum + 1e-16);
                let r = out.row(a);
                for o in 0..H {
                    read[o] += w * r[o];
                }
            }
            q_star[..H].copy_from_slice(&hs);
            q_star[H..].copy_from_slice(&read);
        }
        self.lin3_b + (0..2 * H).map(|j| self.lin3[j] * q_star[j]).sum::<f64>()
    }
}

fn resize(a: &mut Array2<f64>, rows: usize, cols: usize) {
    if a.dim() != (rows, cols) {
        *a = Array2::zeros((rows, cols));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_exp_sigmoid_and_tanh_match_the_standard_library() {
        let mut worst = 0.0f64;
        for i in -40_000..=40_000 {
            let x = f64::from(i) * 1.7e-3;
            worst = worst.max((exp(x) - x.exp()).abs() / x.exp());
            assert!((sigmoid(x) - 1.0 / (1.0 + (-x).exp())).abs() < 1e-15);
            assert!((tanh(x) - x.tanh()).abs() < 1e-15, "tanh({x})");
        }
        assert!(worst < 1e-15, "relative error {worst}");
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(-1e4) >= 0.0 && exp(-1e4) < 1e-300 && exp(1e4).is_finite());
    }
}

//! The transformer-encoder architecture (see [`TransformerSpec`] for what it computes).
//!
//! Activations are `(rows * tokens, d_model)` matrices, so every linear layer is one matmul.
//! Attention views the query, key and value matrices as `(rows, heads, tokens, head_dim)`
//! (a reshape and a permutation, no copy) and uses dfdx's batched matmul, which reads strided
//! operands.

use dfdx::shapes::{Axes4, Axis, HasShape};
use dfdx::tensor::{Merge, NoneTape, PutTape, SplitTape, Tape, Tensor};
use dfdx::tensor_ops::{
    BroadcastTo, GatherTo, PermuteTo, ReshapeTo, SelectTo, TryAdd, TryMatMul, TryMul,
};
use rand::distributions::{Distribution, Uniform};

use crate::backend::{
    Arch, DropoutMasks, Layout, Matrix, Shared, apply_learning_rates, groups, linear, push_scalars,
};
use crate::params::{NetDevice, ParamMeta, ParamStore};
use crate::{HeadRole, NnError, OptimizerSpec, TokenReadout, TransformerSpec};

/// LayerNorm epsilon (PyTorch's default).
pub(crate) const LAYER_NORM_EPS: f64 = 1e-5;

/// `(weight, bias)` parameter indices of a linear layer or a LayerNorm.
pub(crate) type Pair = (usize, usize);

/// Parameter indices of one encoder layer.
#[derive(Clone, Debug)]
pub(crate) struct LayerParams {
    pub(crate) q: Pair,
    pub(crate) k: Pair,
    pub(crate) v: Pair,
    pub(crate) out: Pair,
    pub(crate) norm1: Pair,
    pub(crate) ff1: Pair,
    pub(crate) ff2: Pair,
    pub(crate) norm2: Pair,
}

/// How one head reads the final token outputs.
#[derive(Clone, Debug)]
pub(crate) enum Readout {
    /// A linear map of token 0.
    Pooled(Pair),
    /// `position[token] + word[token, word]`.
    TokenWord {
        position: Pair,
        word: Pair,
        words: usize,
    },
    /// A linear map of each token to one value.
    Token(Pair),
}

impl Readout {
    fn reads_bos(&self) -> bool {
        matches!(self, Readout::Pooled(_) | Readout::TokenWord { .. })
    }
}

/// The forward pass of a transformer: sizes, parameter indices and the positional encoding.
#[derive(Clone, Debug)]
pub(crate) struct TransformerArch {
    pub(crate) tokens: usize,
    pub(crate) token_features: usize,
    pub(crate) d_model: usize,
    pub(crate) heads: usize,
    pub(crate) feedforward: usize,
    dropout: f32,
    pub(crate) embed: usize,
    pub(crate) layers: Vec<LayerParams>,
    pub(crate) readouts: Vec<Readout>,
    /// Sinusoidal positional encoding, `tokens x d_model` row-major.
    pub(crate) positions: Vec<f32>,
}

/// `pe[p, 2i] = sin(p / 10000^(2i/d))`, `pe[p, 2i+1] = cos(p / 10000^(2i/d))`.
fn sinusoidal(tokens: usize, d: usize) -> Vec<f32> {
    let mut pe = vec![0.0f32; tokens * d];
    for p in 0..tokens {
        for i in (0..d).step_by(2) {
            let rate = (-(i as f64) * (10_000f64).ln() / d as f64).exp();
            let angle = p as f64 * rate;
            pe[p * d + i] = angle.sin() as f32;
            if i + 1 < d {
                pe[p * d + i + 1] = angle.cos() as f32;
            }
        }
    }
    pe
}

/// Adds parameters to a layout under construction.
struct Builder<'a> {
    meta: Vec<ParamMeta>,
    values: Vec<Vec<f32>>,
    rng: &'a mut dyn rand::RngCore,
}

impl Builder<'_> {
    fn push(&mut self, name: String, shape: Vec<usize>, group: usize, data: Vec<f32>) -> usize {
        self.meta.push(ParamMeta { name, shape, group });
        self.values.push(data);
        self.meta.len() - 1
    }

    fn uniform(&mut self, n: usize, bound: f32) -> Vec<f32> {
        let dist = Uniform::new(-bound, bound);
        (0..n).map(|_| dist.sample(&mut *self.rng)).collect()
    }

    /// Standard normal values (Box-Muller on the builder's RNG).
    fn normal(&mut self, n: usize) -> Vec<f32> {
        let unit = Uniform::new(f64::EPSILON, 1.0);
        (0..n)
            .map(|_| {
                let (u1, u2): (f64, f64) =
                    (unit.sample(&mut *self.rng), unit.sample(&mut *self.rng));
                ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
            })
            .collect()
    }

    /// A linear layer with PyTorch's default init (weight and bias uniform in
    /// `[-1/sqrt(fan_in), 1/sqrt(fan_in))`), or with the given weight bound and a zero bias.
    fn linear(
        &mut self,
        name: &str,
        fan_in: usize,
        fan_out: usize,
        group: usize,
        attention: Option<f32>,
    ) -> Pair {
        let default = 1.0 / (fan_in as f32).sqrt();
        let w = self.uniform(fan_in * fan_out, attention.unwrap_or(default));
        let b = match attention {
            Some(_) => vec![0.0; fan_out],
            None => self.uniform(fan_out, default),
        };
        (
            self.push(format!("{name}.weight"), vec![fan_in, fan_out], group, w),
            self.push(format!("{name}.bias"), vec![fan_out], group, b),
        )
    }

    fn layer_norm(&mut self, name: &str, d: usize) -> Pair {
        (
            self.push(format!("{name}.weight"), vec![d], 0, vec![1.0; d]),
            self.push(format!("{name}.bias"), vec![d], 0, vec![0.0; d]),
        )
    }
}

/// Parameters, groups and initial values of a transformer (torso first: the embedding, then
/// every layer; then the heads in order; then the scalars).
pub(crate) fn layout(
    spec: &TransformerSpec,
    optimizer: &OptimizerSpec,
    rng: &mut dyn rand::RngCore,
) -> Result<Layout, NnError> {
    let mut groups = groups(&spec.heads, &spec.scalars, optimizer);
    apply_learning_rates(&mut groups, optimizer)?;
    let d = spec.d_model;
    let mut b = Builder {
        meta: Vec::new(),
        values: Vec::new(),
        rng,
    };
    let embed_values = b.normal(spec.token_features * d);
    let embed = b.push(
        "embed.weight".into(),
        vec![spec.token_features, d],
        0,
        embed_values,
    );
    // Xavier-uniform bound of PyTorch's packed `[3d, d]` input projection.
    let xavier = (6.0 / (d + 3 * d) as f32).sqrt();
    let layers = (0..spec.layers)
        .map(|i| {
            let p = format!("layers.{i}");
            let q = b.linear(&format!("{p}.attn.q"), d, d, 0, Some(xavier));
            let k = b.linear(&format!("{p}.attn.k"), d, d, 0, Some(xavier));
            let v = b.linear(&format!("{p}.attn.v"), d, d, 0, Some(xavier));
            let out = b.linear(
                &format!("{p}.attn.out"),
                d,
                d,
                0,
                Some(1.0 / (d as f32).sqrt()),
            );
            let norm1 = b.layer_norm(&format!("{p}.norm1"), d);
            let ff1 = b.linear(&format!("{p}.ff1"), d, spec.feedforward, 0, None);
            let ff2 = b.linear(&format!("{p}.ff2"), spec.feedforward, d, 0, None);
            let norm2 = b.layer_norm(&format!("{p}.norm2"), d);
            LayerParams {
                q,
                k,
                v,
                out,
                norm1,
                ff1,
                ff2,
                norm2,
            }
        })
        .collect();
    let readouts = spec
        .heads
        .iter()
        .enumerate()
        .map(|(j, h)| {
            let group = 1 + j;
            let name = format!("head.{}", h.name);
            let readout = match h.role {
                HeadRole::Pooled => None,
                HeadRole::ForwardActions => Some(spec.forward_readout),
                HeadRole::BackwardActions => Some(spec.backward_readout),
            };
            match readout {
                None => Readout::Pooled(b.linear(&name, d, h.dim, group, None)),
                Some(TokenReadout::Token) => Readout::Token(b.linear(&name, d, 1, group, None)),
                Some(TokenReadout::TokenWord { words }) => Readout::TokenWord {
                    position: b.linear(&format!("{name}.position"), d, spec.tokens, group, None),
                    word: b.linear(&format!("{name}.word"), d, words, group, None),
                    words,
                },
            }
        })
        .collect();
    let arch = TransformerArch {
        tokens: spec.tokens,
        token_features: spec.token_features,
        d_model: d,
        heads: spec.attention_heads,
        feedforward: spec.feedforward,
        dropout: spec.dropout,
        embed,
        layers,
        readouts,
        positions: sinusoidal(spec.tokens, d),
    };
    let mut layout = Layout {
        meta: b.meta,
        groups,
        values: b.values,
        arch: Arch::Transformer(arch),
    };
    push_scalars(&mut layout, spec.heads.len(), &spec.scalars);
    Ok(layout)
}

/// Applies mask `i` of `masks` (no-op when there are no masks: evaluation mode).
fn dropout<S, D, T>(
    x: Tensor<S, f32, D, T>,
    masks: &[Vec<f32>],
    i: &mut usize,
) -> Result<Tensor<S, f32, D, T>, D::Err>
where
    S: dfdx::shapes::Shape,
    D: NetDevice,
    T: Tape<f32, D> + Merge<NoneTape>,
{
    let Some(mask) = masks.get(*i) else {
        return Ok(x);
    };
    *i += 1;
    let shape = *x.shape();
    let m = x.device().try_tensor_from_vec(mask.clone(), shape)?;
    x.try_mul(m)
}

/// LayerNorm over the feature axis of an `(n, d)` matrix.
fn layer_norm<D: NetDevice, T>(
    store: &ParamStore<D>,
    x: Matrix<D, T>,
    (w, b): Pair,
) -> Result<Matrix<D, T>, D::Err>
where
    T: Tape<f32, D> + Merge<NoneTape>,
{
    let shape = *x.shape();
    let gamma = store
        .value(w)
        .clone()
        .try_broadcast_like::<(usize, usize), Axis<0>>(&shape)?;
    let beta = store
        .value(b)
        .clone()
        .try_broadcast_like::<(usize, usize), Axis<0>>(&shape)?;
    x.try_normalize::<Axis<1>>(LAYER_NORM_EPS)?
        .try_mul(gamma)?
        .try_add(beta)
}

impl TransformerArch {
    /// Masks in the order [`run`](Self::run) applies them: after the positional encoding, then
    /// per layer the attention weights, after attention, inside and after the feed-forward.
    pub(crate) fn dropout_masks(&self, rows: usize, rng: &mut dyn rand::RngCore) -> DropoutMasks {
        let mut masks = Vec::new();
        self.fill_dropout_masks(rows, rng, &mut masks);
        masks
    }

    /// [`dropout_masks`](Self::dropout_masks) written into `masks`, reusing its buffers (the
    /// same draws in the same order; a training forward's masks are some 17 MB at bit sequences
    /// k = 8 with 256 states, which fresh allocations would page in again every time).
    pub(crate) fn fill_dropout_masks(
        &self,
        rows: usize,
        rng: &mut dyn rand::RngCore,
        masks: &mut DropoutMasks,
    ) {
        if self.dropout == 0.0 || rows == 0 {
            masks.clear();
            return;
        }
        let keep = 1.0 - f64::from(self.dropout);
        // Keep when a uniform u32 is below keep * 2^32.
        let threshold = (keep * 4_294_967_296.0) as u64;
        let scale = (1.0 / keep) as f32;
        let n = rows * self.tokens;
        let len = |i: usize| match i {
            0 => n * self.d_model,
            _ => match (i - 1) % 4 {
                0 => rows * self.heads * self.tokens * self.tokens,
                2 => n * self.feedforward,
                _ => n * self.d_model,
            },
        };
        masks.resize_with(1 + 4 * self.layers.len(), Vec::new);
        for (i, m) in masks.iter_mut().enumerate() {
            m.clear();
            m.extend((0..len(i)).map(|_| {
                if u64::from(rng.next_u32()) < threshold {
                    scale
                } else {
                    0.0
                }
            }));
        }
    }

    /// The id of every token of `rows` input rows when each token's feature block is one-hot
    /// (exactly one `1.0`, all others `0.0`), in row-major token order; `None` otherwise.
    pub(crate) fn token_ids(&self, input: &[f32], rows: usize) -> Option<Vec<usize>> {
        let tf = self.token_features;
        if input.len() != rows * self.tokens * tf {
            return None;
        }
        let mut ids = Vec::with_capacity(rows * self.tokens);
        for block in input.chunks_exact(tf) {
            // One vectorisable pass instead of a branch per value: a one-hot block has exactly
            // one `1.0` and `tf - 1` zeros (NaN counts as neither), and then the sum of the
            // indices of its ones is the id.
            let (mut ones, mut zeros, mut id) = (0u32, 0u32, 0u32);
            for (j, &v) in (0u32..).zip(block) {
                let one = u32::from(v == 1.0);
                ones += one;
                zeros += u32::from(v == 0.0);
                id += one * j;
            }
            if ones != 1 || zeros as usize != tf - 1 {
                return None;
            }
            ids.push(id as usize);
        }
        Some(ids)
    }

    /// The encoder and the readouts; `masks` empty means evaluation mode. With `tokens` (the
    /// ids of one-hot tokens, see [`token_ids`](Self::token_ids)), `x` only carries the tape and
    /// the embedding gathers rows of the embedding matrix.
    pub(crate) fn run<D: NetDevice, T>(
        &self,
        store: &ParamStore<D>,
        x: Matrix<D, T>,
        tokens: Option<&[usize]>,
        rows: usize,
        masks: &[Vec<f32>],
    ) -> Result<Vec<Matrix<D, T>>, D::Err>
    where
        T: Tape<f32, D> + Merge<NoneTape>,
    {
        let (t, d, h) = (self.tokens, self.d_model, self.heads);
        let dh = d / h;
        let n = rows * t;
        let mut next_mask = 0usize;
        let dev = x.device().clone();
        // Token embedding: each token's feature block times the embedding matrix, or for one-hot
        // tokens the same rows gathered (exact: the product only adds zeros); the gather's
        // backward adds each token's gradient to its row.
        let x = match tokens {
            Some(ids) => {
                let (_, tape) = x.split_tape();
                let ids = dev.try_tensor_from_vec(ids.to_vec(), (n,))?;
                store
                    .value(self.embed)
                    .clone()
                    .put_tape(tape)
                    .try_reshape_like(&(self.token_features, d))?
                    .try_gather(ids)?
            }
            None => {
                let embed = store
                    .value(self.embed)
                    .clone()
                    .try_reshape_like(&(self.token_features, d))?;
                x.try_reshape_like(&(n, self.token_features))?
                    .try_matmul(embed)?
            }
        };
        let pe = dev
            .try_tensor_from_vec(self.positions.clone(), (t, d))?
            .try_broadcast_like::<(usize, usize, usize), Axis<0>>(&(rows, t, d))?
            .try_reshape_like(&(n, d))?;
        let mut x = dropout(x.try_add(pe)?, masks, &mut next_mask)?;
        let scale = 1.0 / (dh as f32).sqrt();
        for l in &self.layers {
            // Self-attention block.
            let mut xs = Shared::new(x);
            let heads_view = |m: Matrix<D, T>| m.try_reshape_like(&(rows, t, h, dh));
            let q = heads_view(linear(store, xs.take(), l.q, n)?)?
                .try_permute::<_, Axes4<0, 2, 1, 3>>()?;
            let k = heads_view(linear(store, xs.take(), l.k, n)?)?
                .try_permute::<_, Axes4<0, 2, 3, 1>>()?;
            let v = heads_view(linear(store, xs.take(), l.v, n)?)?
                .try_permute::<_, Axes4<0, 2, 1, 3>>()?;
            let scores = q.try_matmul(k)?.try_mul(scale)?;
            let weights = dropout(scores.try_softmax::<Axis<3>>()?, masks, &mut next_mask)?;
            let attended = weights
                .try_matmul(v)?
                .try_permute::<_, Axes4<0, 2, 1, 3>>()?
                .try_reshape_like(&(n, d))?;
            let attended = dropout(linear(store, attended, l.out, n)?, masks, &mut next_mask)?;
            x = layer_norm(store, xs.take().try_add(attended)?, l.norm1)?;
            // Feed-forward block.
            let mut xs = Shared::new(x);
            let f = linear(store, xs.take(), l.ff1, n)?.try_relu()?;
            let f = dropout(f, masks, &mut next_mask)?;
            let f = dropout(linear(store, f, l.ff2, n)?, masks, &mut next_mask)?;
            x = layer_norm(store, xs.take().try_add(f)?, l.norm2)?;
        }
        // Readouts. The BOS output is only built when some head reads it (a built but unused
        // shared tensor would drop the recorded tape with it). It is gathered with `select`, not
        // `slice`: dfdx 0.13's slice backward overwrites the input gradient instead of adding to
        // it, which would drop the other readouts' gradient at token 0.
        let mut xs = Shared::new(x);
        let mut bos = if self.readouts.iter().any(Readout::reads_bos) {
            let first = dev.try_tensor_from_vec(vec![0usize; rows], (rows,))?;
            let b = xs
                .take()
                .try_reshape_like(&(rows, t, d))?
                .try_select(first)?;
            Some(Shared::new(b))
        } else {
            None
        };
        let mut outputs = Vec::with_capacity(self.readouts.len());
        for r in &self.readouts {
            let out = match (r, bos.as_mut()) {
                (Readout::Pooled(p), Some(bos)) => linear(store, bos.take(), *p, rows)?,
                (
                    Readout::TokenWord {
                        position,
                        word,
                        words,
                    },
                    Some(bos),
                ) => {
                    let pos = linear(store, bos.take(), *position, rows)?
                        .try_broadcast_like::<(usize, usize, usize), Axis<2>>(&(rows, t, *words))?;
                    linear(store, xs.take(), *word, n)?
                        .try_reshape_like(&(rows, t, *words))?
                        .try_add(pos)?
                        .try_reshape_like(&(rows, t * words))?
                }
                (Readout::Token(p), _) => {
                    linear(store, xs.take(), *p, n)?.try_reshape_like(&(rows, t))?
                }
                (_, None) => unreachable!("the BOS output is built whenever a readout reads it"),
            };
            outputs.push(out);
        }
        Ok(outputs)
    }
}

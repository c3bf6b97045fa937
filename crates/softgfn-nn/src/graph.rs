//! The graph policy network (GraphAgent v4 of the paper's molecule experiments; see
//! [`GraphSpec`] for what it computes).
//!
//! A batch of `rows` graphs is padded to `max_nodes` nodes, `max_edges` edges and `max_stems`
//! stems per row. Node states are a `(rows * max_nodes, width)` matrix. Embedding lookups and
//! the gathers of edge sources and stem nodes are dfdx `gather`s; the mean over incoming edges
//! is a batched matmul with a dense `(rows, max_edges, max_nodes)` incidence matrix holding
//! `1 / in-degree`, and the mean over nodes a batched matmul with `1 / n` weights, so padding
//! takes part in no result. Padded stems and nodes give 0 outputs.

use dfdx::shapes::{Axes3, Axis};
use dfdx::tensor::{Merge, NoneTape, PutTape, SplitTape, Tape, Tensor};
use dfdx::tensor_ops::{
    BroadcastTo, GatherTo, PermuteTo, ReshapeTo, SumTo, TryAdd, TryConcatAlong, TryMatMul, TryMul,
    TryPReLU, TrySub,
};
use rand::distributions::{Distribution, Uniform};

use crate::backend::{Arch, Layout, Matrix, Shared, apply_learning_rates, groups, push_scalars};
use crate::params::{NetDevice, ParamMeta, ParamStore};
use crate::{GraphSpec, HeadRole, NnError, OptimizerSpec};

/// Negative slope of the leaky ReLUs (PyTorch's default).
const LEAKY_SLOPE: f32 = 0.01;

/// `(weight, bias)` parameter indices of a linear layer.
type Pair = (usize, usize);

/// A batch of 3-d activations.
type Cube<D, T = NoneTape> = Tensor<(usize, usize, usize), f32, D, T>;

/// Parameter indices of the GRU cell (one linear map per gate and input).
#[derive(Clone, Debug)]
struct Gru {
    ir: Pair,
    iz: Pair,
    in_: Pair,
    hr: Pair,
    hz: Pair,
    hn: Pair,
}

/// How one head reads the final node states.
#[derive(Clone, Debug)]
enum Readout {
    /// A linear map of the per-graph hidden vector.
    Pooled(Pair),
    /// Per-graph actions from the per-graph hidden vector (absent when there are none), then
    /// `stem_actions` per stem from the per-stem hidden vector.
    Forward { graph: Option<Pair>, stem: Pair },
    /// One value per node, a linear map of the node's state.
    Node(Pair),
}

/// The forward pass of the graph network: sizes and parameter indices.
#[derive(Clone, Debug)]
pub(crate) struct GraphArch {
    offset: usize,
    nodes: usize,
    edges: usize,
    stems: usize,
    node_types: usize,
    edge_types: usize,
    stem_types: usize,
    stem_actions: usize,
    width: usize,
    steps: usize,
    node_emb: usize,
    edge_emb: usize,
    stem_emb: usize,
    block2emb: (Pair, Pair),
    root: Pair,
    gru: Gru,
    /// First stem layer: weight on the node state, weight on the stem-type embedding, bias.
    stem_in: (usize, usize, usize),
    stem_hidden: Pair,
    global_hidden: Pair,
    readouts: Vec<Readout>,
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

    /// An embedding table `[count, width]`, N(0, 1) like PyTorch's `Embedding`.
    fn embedding(&mut self, name: &str, count: usize, width: usize) -> usize {
        let unit = Uniform::new(f64::EPSILON, 1.0);
        let data = (0..count * width)
            .map(|_| {
                let (u1, u2): (f64, f64) =
                    (unit.sample(&mut *self.rng), unit.sample(&mut *self.rng));
                ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
            })
            .collect();
        self.push(format!("{name}.weight"), vec![count, width], 0, data)
    }

    /// A linear layer with weight and bias uniform in `[-bound, bound)`, `bound` defaulting to
    /// `1/sqrt(fan_in)` (PyTorch's `Linear`).
    fn linear(&mut self, name: &str, fan_in: usize, fan_out: usize, group: usize) -> Pair {
        let bound = 1.0 / (fan_in as f32).sqrt();
        let w = self.uniform(fan_in * fan_out, bound);
        let b = self.uniform(fan_out, bound);
        (
            self.push(format!("{name}.weight"), vec![fan_in, fan_out], group, w),
            self.push(format!("{name}.bias"), vec![fan_out], group, b),
        )
    }

    /// A GRU gate's linear map: PyTorch's GRU draws everything uniform in `±1/sqrt(hidden)`.
    fn gru_linear(&mut self, name: &str, width: usize) -> Pair {
        self.linear(name, width, width, 0)
    }
}

/// Parameters, groups and initial values of a graph network: the embeddings, `block2emb`, the
/// convolution's root map, the GRU, the shared stem and graph readout layers (all in group
/// `torso`), then each head's own last layer(s), then the scalars.
pub(crate) fn layout(
    spec: &GraphSpec,
    optimizer: &OptimizerSpec,
    rng: &mut dyn rand::RngCore,
) -> Result<Layout, NnError> {
    let mut groups = groups(&spec.heads, &spec.scalars, optimizer);
    apply_learning_rates(&mut groups, optimizer)?;
    let w = spec.width;
    let mut b = Builder {
        meta: Vec::new(),
        values: Vec::new(),
        rng,
    };
    let node_emb = b.embedding("node_embedding", spec.node_types, w);
    let stem_emb = b.embedding("stem_embedding", spec.stem_types, w);
    let edge_emb = b.embedding("edge_embedding", spec.edge_types, w);
    let block2emb = (
        b.linear("block2emb.0", w, w, 0),
        b.linear("block2emb.1", w, w, 0),
    );
    let root = b.linear("conv.root", w, w, 0);
    let gru = Gru {
        ir: b.gru_linear("gru.input_reset", w),
        iz: b.gru_linear("gru.input_update", w),
        in_: b.gru_linear("gru.input_new", w),
        hr: b.gru_linear("gru.hidden_reset", w),
        hz: b.gru_linear("gru.hidden_update", w),
        hn: b.gru_linear("gru.hidden_new", w),
    };
    // stem2pred's first layer reads [node state, stem-type embedding] (fan-in 2w); its weight is
    // stored as the two halves.
    let bound = 1.0 / ((2 * w) as f32).sqrt();
    let data = b.uniform(w * w, bound);
    let stem_node = b.push("stem2pred.0.weight_node".into(), vec![w, w], 0, data);
    let data = b.uniform(w * w, bound);
    let stem_type = b.push("stem2pred.0.weight_type".into(), vec![w, w], 0, data);
    let data = b.uniform(w, bound);
    let stem_bias = b.push("stem2pred.0.bias".into(), vec![w], 0, data);
    let stem_hidden = b.linear("stem2pred.1", w, w, 0);
    let global_hidden = b.linear("global2pred.0", w, w, 0);
    let readouts = spec
        .heads
        .iter()
        .enumerate()
        .map(|(j, h)| {
            let group = 1 + j;
            let name = format!("head.{}", h.name);
            match h.role {
                HeadRole::Pooled => Readout::Pooled(b.linear(&name, w, h.dim, group)),
                HeadRole::ForwardActions => Readout::Forward {
                    graph: (spec.graph_actions > 0)
                        .then(|| b.linear(&format!("{name}.graph"), w, spec.graph_actions, group)),
                    stem: b.linear(&format!("{name}.stem"), w, spec.stem_actions, group),
                },
                HeadRole::BackwardActions => Readout::Node(b.linear(&name, w, 1, group)),
            }
        })
        .collect();
    let arch = GraphArch {
        offset: spec.offset,
        nodes: spec.max_nodes,
        edges: spec.max_edges,
        stems: spec.max_stems,
        node_types: spec.node_types,
        edge_types: spec.edge_types,
        stem_types: spec.stem_types,
        stem_actions: spec.stem_actions,
        width: w,
        steps: spec.steps,
        node_emb,
        edge_emb,
        stem_emb,
        block2emb,
        root,
        gru,
        stem_in: (stem_node, stem_type, stem_bias),
        stem_hidden,
        global_hidden,
        readouts,
    };
    let mut layout = Layout {
        meta: b.meta,
        groups,
        values: b.values,
        arch: Arch::Graph(arch),
    };
    push_scalars(&mut layout, spec.heads.len(), &spec.scalars);
    Ok(layout)
}

/// The padded index and weight buffers of one batch of graphs.
struct Batch {
    /// Node type per node slot (0 for padding), `rows * nodes`.
    node_type: Vec<usize>,
    /// 1 for present nodes.
    node_mask: Vec<f32>,
    /// Global node index of each edge's source (the row's node 0 for padding), `rows * edges`.
    edge_src: Vec<usize>,
    /// End types of each edge (0 for padding).
    edge_ta: Vec<usize>,
    edge_tb: Vec<usize>,
    /// `(rows, edges, nodes)`: `1 / in-degree(dst)` at `(r, e, dst)` for each present edge.
    incidence: Vec<f32>,
    /// `(rows, nodes, 1)`: `1 / n` at present nodes.
    mean: Vec<f32>,
    /// Global node index of each stem (the row's node 0 for padding), `rows * stems`.
    stem_node: Vec<usize>,
    /// Stem type (0 for padding).
    stem_type: Vec<usize>,
    /// 1 for present stems.
    stem_mask: Vec<f32>,
}

/// A field value: `Some(value)` for a stored `value + 1`, `None` for 0 (absent); an error for
/// anything that is not an exact integer in `0..=limit`.
fn field(v: f32, limit: usize) -> Result<Option<usize>, String> {
    if !(v.is_finite() && v == v.round() && v >= 0.0 && v <= limit as f32) {
        return Err(format!("{v} is not an integer code in 0..={limit}"));
    }
    Ok(if v == 0.0 { None } else { Some(v as usize - 1) })
}

impl GraphArch {
    fn graph_features(&self) -> usize {
        self.nodes + 4 * self.edges + 2 * self.stems
    }

    /// Checks one row's graph fields.
    fn check_row(&self, g: &[f32]) -> Result<(), String> {
        let (nodes, rest) = g.split_at(self.nodes);
        let (edges, stems) = rest.split_at(4 * self.edges);
        let mut n = 0;
        for (i, &v) in nodes.iter().enumerate() {
            match field(v, self.node_types).map_err(|e| format!("node {i}: {e}"))? {
                Some(_) if n == i => n += 1,
                Some(_) => return Err(format!("node {i} is present after an absent node")),
                None => {}
            }
        }
        if n == 0 {
            return Err("a graph needs at least one node, found none".into());
        }
        for (e, f) in edges.chunks_exact(4).enumerate() {
            let vals = [
                field(f[0], n),
                field(f[1], n),
                field(f[2], self.edge_types),
                field(f[3], self.edge_types),
            ];
            let mut got = Vec::with_capacity(4);
            for v in vals {
                got.push(v.map_err(|m| format!("edge {e}: {m}"))?);
            }
            let present = got.iter().filter(|v| v.is_some()).count();
            if present != 0 && present != 4 {
                return Err(format!(
                    "edge {e} has {present} of its 4 fields; expected all or none"
                ));
            }
        }
        let mut k = 0;
        for (s, f) in stems.chunks_exact(2).enumerate() {
            let node = field(f[0], n).map_err(|m| format!("stem {s}: {m}"))?;
            let ty = field(f[1], self.stem_types).map_err(|m| format!("stem {s}: {m}"))?;
            match (node, ty) {
                (Some(_), Some(_)) if k == s => k += 1,
                (None, None) => {}
                (Some(_), Some(_)) => {
                    return Err(format!("stem {s} is present after an absent stem"));
                }
                _ => return Err(format!("stem {s} has one of its 2 fields; expected both")),
            }
        }
        Ok(())
    }

    /// Checks the graph fields of every row of an input batch.
    pub(crate) fn check_input(&self, input: &[f32], rows: usize) -> Result<(), NnError> {
        if rows == 0 {
            return Ok(());
        }
        let dim = input.len() / rows;
        for r in 0..rows {
            let g = &input[r * dim + self.offset..r * dim + self.offset + self.graph_features()];
            self.check_row(g).map_err(|m| {
                NnError::InvalidArgument(format!("row {r} is not a valid graph: {m}"))
            })?;
        }
        Ok(())
    }

    /// The batch buffers of checked input rows (anything invalid is treated as absent).
    fn batch(&self, input: &[f32], rows: usize) -> Batch {
        let (nn, ne, ns) = (self.nodes, self.edges, self.stems);
        let mut b = Batch {
            node_type: vec![0; rows * nn],
            node_mask: vec![0.0; rows * nn],
            edge_src: vec![0; rows * ne],
            edge_ta: vec![0; rows * ne],
            edge_tb: vec![0; rows * ne],
            incidence: vec![0.0; rows * ne * nn],
            mean: vec![0.0; rows * nn],
            stem_node: vec![0; rows * ns],
            stem_type: vec![0; rows * ns],
            stem_mask: vec![0.0; rows * ns],
        };
        let dim = input.len().checked_div(rows).unwrap_or(0);
        let code = |v: f32| -> Option<usize> { (v >= 1.0).then(|| v as usize - 1) };
        let mut indegree = vec![0usize; nn];
        for r in 0..rows {
            let g = &input[r * dim + self.offset..r * dim + self.offset + self.graph_features()];
            let (nodes, rest) = g.split_at(nn);
            let (edges, stems) = rest.split_at(4 * ne);
            let mut n = 0;
            for (i, &v) in nodes.iter().enumerate() {
                if let Some(t) = code(v) {
                    b.node_type[r * nn + i] = t.min(self.node_types - 1);
                    b.node_mask[r * nn + i] = 1.0;
                    n += 1;
                }
            }
            for i in 0..n {
                b.mean[r * nn + i] = 1.0 / n as f32;
            }
            indegree.fill(0);
            let edge = |f: &[f32]| -> Option<[usize; 4]> {
                let e = [code(f[0])?, code(f[1])?, code(f[2])?, code(f[3])?];
                (e[0] < nn && e[1] < nn).then_some(e)
            };
            for f in edges.chunks_exact(4) {
                if let Some(e) = edge(f) {
                    indegree[e[1]] += 1;
                }
            }
            for (k, f) in edges.chunks_exact(4).enumerate() {
                let at = r * ne + k;
                b.edge_src[at] = r * nn;
                if let Some([src, dst, ta, tb]) = edge(f) {
                    b.edge_src[at] = r * nn + src;
                    b.edge_ta[at] = ta.min(self.edge_types - 1);
                    b.edge_tb[at] = tb.min(self.edge_types - 1);
                    b.incidence[at * nn + dst] = 1.0 / indegree[dst] as f32;
                }
            }
            for (k, f) in stems.chunks_exact(2).enumerate() {
                let at = r * ns + k;
                b.stem_node[at] = r * nn;
                if let (Some(p), Some(t)) = (code(f[0]), code(f[1])) {
                    b.stem_node[at] = r * nn + p.min(nn - 1);
                    b.stem_type[at] = t.min(self.stem_types - 1);
                    b.stem_mask[at] = 1.0;
                }
            }
        }
        b
    }

    /// The network and the readouts.
    pub(crate) fn run<D: NetDevice, T>(
        &self,
        store: &ParamStore<D>,
        x: Matrix<D, T>,
        rows: usize,
    ) -> Result<Vec<Matrix<D, T>>, D::Err>
    where
        T: Tape<f32, D> + Merge<NoneTape>,
    {
        let (nn, ne, ns, w) = (self.nodes, self.edges, self.stems, self.width);
        let (x, tape) = x.split_tape();
        let b = self.batch(&x.as_vec(), rows);
        drop(x);
        let dev = store.value(0).device().clone();
        let index = |v: &[usize]| dev.try_tensor_from_vec(v.to_vec(), (v.len(),));
        let param = |k: usize| store.value(k).clone();
        let table = |k: usize, count: usize| -> Result<Matrix<D, T>, D::Err> {
            param(k).retaped::<T>().try_reshape_like(&(count, w))
        };
        let lin = |x: Matrix<D, T>, (wi, bi): Pair, n: usize| -> Result<Matrix<D, T>, D::Err> {
            crate::backend::linear(store, x, (wi, bi), n)
        };
        let lrelu = |x: Matrix<D, T>| x.try_prelu(LEAKY_SLOPE);
        let bn = rows * nn;
        // Node embeddings (the input's tape, with the gradient buffers, continues here).
        let emb = param(self.node_emb)
            .put_tape(tape)
            .try_reshape_like(&(self.node_types, w))?
            .try_gather(index(&b.node_type)?)?;
        let out = lin(
            lrelu(lin(emb, self.block2emb.0, bn)?)?,
            self.block2emb.1,
            bn,
        )?;
        // Edge-end embeddings, the same at every step.
        let mut ta =
            Shared::new(table(self.edge_emb, self.edge_types)?.try_gather(index(&b.edge_ta)?)?);
        let mut tb =
            Shared::new(table(self.edge_emb, self.edge_types)?.try_gather(index(&b.edge_tb)?)?);
        let src = index(&b.edge_src)?;
        // (rows, edges, nodes) incidence, used as msg^T (rows, w, edges) @ it.
        let incidence: Cube<D> = dev.try_tensor_from_vec(b.incidence, (rows, ne, nn))?;
        let be = rows * ne;
        let mut h = out;
        for _ in 0..self.steps {
            let mut hs = Shared::new(h);
            // message_e = (h[src] . emb[t_a]) * emb[t_b], averaged over the edges into a node.
            let dots = hs
                .take()
                .try_gather(src.clone())?
                .try_mul(ta.take())?
                .try_sum::<(usize,), Axis<1>>()?
                .try_broadcast_like::<(usize, usize), Axis<1>>(&(be, w))?;
            let msg: Cube<D, T> = dots.try_mul(tb.take())?.try_reshape_like(&(rows, ne, w))?;
            let agg = msg
                .try_permute::<_, Axes3<0, 2, 1>>()?
                .try_matmul(incidence.clone())?
                .try_permute::<_, Axes3<0, 2, 1>>()?
                .try_reshape_like(&(bn, w))?;
            let m = lrelu(lin(hs.take(), self.root, bn)?.try_add(agg)?)?;
            // GRU cell: r, z gates; n = tanh(W_in m + r * (W_hn h)); h' = n + z * (h - n).
            let mut ms = Shared::new(m);
            let g = &self.gru;
            let r = lin(ms.take(), g.ir, bn)?
                .try_add(lin(hs.take(), g.hr, bn)?)?
                .try_sigmoid()?;
            let z = lin(ms.take(), g.iz, bn)?
                .try_add(lin(hs.take(), g.hz, bn)?)?
                .try_sigmoid()?;
            let n = lin(ms.take(), g.in_, bn)?
                .try_add(r.try_mul(lin(hs.take(), g.hn, bn)?)?)?
                .try_tanh()?;
            let mut nsh = Shared::new(n);
            let hn = hs.take().try_sub(nsh.take())?;
            h = nsh.take().try_add(z.try_mul(hn)?)?;
        }
        // Readouts, built only where some head reads them (a built but unused shared tensor
        // would drop its recorded tape).
        let needs_graph = self.readouts.iter().any(|r| {
            matches!(
                r,
                Readout::Pooled(_) | Readout::Forward { graph: Some(_), .. }
            )
        });
        let needs_stems = self
            .readouts
            .iter()
            .any(|r| matches!(r, Readout::Forward { .. }));
        let mut hs = Shared::new(h);
        let mut graph = if needs_graph {
            let weights: Cube<D> = dev.try_tensor_from_vec(b.mean, (rows, nn, 1))?;
            let pooled: Matrix<D, T> = hs
                .take()
                .try_reshape_like(&(rows, nn, w))?
                .try_permute::<_, Axes3<0, 2, 1>>()?
                .try_matmul(weights)?
                .try_reshape_like(&(rows, w))?;
            Some(Shared::new(lrelu(lin(pooled, self.global_hidden, rows)?)?))
        } else {
            None
        };
        let bs = rows * ns;
        let mut stems = if needs_stems {
            let (wn, wt, bias) = self.stem_in;
            let node = hs.take().try_gather(index(&b.stem_node)?)?;
            let ty = table(self.stem_emb, self.stem_types)?.try_gather(index(&b.stem_type)?)?;
            let bias = param(bias).try_broadcast_like::<(usize, usize), Axis<0>>(&(bs, w))?;
            let first = node
                .try_matmul(param(wn).try_reshape_like(&(w, w))?)?
                .try_add(ty.try_matmul(param(wt).try_reshape_like(&(w, w))?)?)?
                .try_add(bias)?;
            let hidden = lrelu(lin(lrelu(first)?, self.stem_hidden, bs)?)?;
            Some(Shared::new(hidden))
        } else {
            None
        };
        let stem_mask: Matrix<D> = dev
            .try_tensor_from_vec(b.stem_mask, (bs,))?
            .try_broadcast_like::<(usize, usize), Axis<1>>(&(bs, self.stem_actions))?;
        let node_mask: Matrix<D> = dev.try_tensor_from_vec(b.node_mask, (bn, 1))?;
        let mut outputs = Vec::with_capacity(self.readouts.len());
        for readout in &self.readouts {
            let out = match readout {
                Readout::Pooled(p) => match graph.as_mut() {
                    Some(g) => lin(g.take(), *p, rows)?,
                    None => unreachable!("the graph readout is built when a head reads it"),
                },
                Readout::Forward { graph: gp, stem } => {
                    let per_stem = match stems.as_mut() {
                        Some(s) => lin(s.take(), *stem, bs)?,
                        None => unreachable!("the stem readout is built when a head reads it"),
                    };
                    let per_stem = per_stem
                        .try_mul(stem_mask.clone())?
                        .try_reshape_like(&(rows, ns * self.stem_actions))?;
                    match (gp, graph.as_mut()) {
                        (Some(p), Some(g)) => {
                            let per_graph = lin(g.take(), *p, rows)?;
                            (per_graph, per_stem).try_concat_along(Axis::<1>)?
                        }
                        _ => per_stem,
                    }
                }
                Readout::Node(p) => lin(hs.take(), *p, bn)?
                    .try_mul(node_mask.clone())?
                    .try_reshape_like(&(rows, nn))?,
            };
            outputs.push(out);
        }
        Ok(outputs)
    }
}

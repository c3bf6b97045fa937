//! The graph network: gradients against finite differences on every parameter tensor,
//! invariance to the order in which nodes and edges are listed, padding, input checks and
//! spec validation.

mod common;

use common::{FiniteDiff, Problem};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use softgfn_nn::{
    Device, GraphSpec, HeadSpec, Model, NamedTensor, NnError, OptimizerSpec, Outputs, ScalarSpec,
};

const OFFSET: usize = 2;
const NODES: usize = 4;
const EDGES: usize = 4;
const STEMS: usize = 3;
const NODE_TYPES: usize = 5;
const EDGE_TYPES: usize = 6;
const STEM_TYPES: usize = 7;
const STEM_ACTIONS: usize = 3;
const FORWARD: usize = 1 + STEMS * STEM_ACTIONS;
const GRAPH: usize = NODES + 4 * EDGES + 2 * STEMS;

fn spec() -> GraphSpec {
    GraphSpec {
        input_dim: OFFSET + GRAPH,
        offset: OFFSET,
        max_nodes: NODES,
        node_types: NODE_TYPES,
        max_edges: EDGES,
        edge_types: EDGE_TYPES,
        max_stems: STEMS,
        stem_types: STEM_TYPES,
        stem_actions: STEM_ACTIONS,
        graph_actions: 1,
        width: 6,
        steps: 3,
        heads: vec![
            HeadSpec::forward_actions("forward", FORWARD),
            HeadSpec::backward_actions("backward", NODES),
            HeadSpec::new("log_flow", 1),
        ],
        scalars: vec![ScalarSpec::new("log_z", 0.5)],
    }
}

fn model(spec: &GraphSpec, seed: u64) -> Model {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Model::graph(spec, &OptimizerSpec::default(), Device::Cpu, &mut rng).unwrap()
}

/// A graph: node types, edges `(src, dst, type_src, type_dst)` in slots (`None` = gap),
/// stems `(node, type)`.
#[derive(Clone, Debug)]
struct G {
    nodes: Vec<usize>,
    edges: Vec<Option<[usize; 4]>>,
    stems: Vec<[usize; 2]>,
}

impl G {
    fn random(rng: &mut ChaCha8Rng) -> Self {
        let n = rng.gen_range(1..=NODES);
        let nodes = (0..n).map(|_| rng.gen_range(0..NODE_TYPES)).collect();
        // Any directed edges (several into one node included), with gaps.
        let edges = (0..EDGES)
            .map(|_| {
                (n > 1 && rng.gen_bool(0.8)).then(|| {
                    [
                        rng.gen_range(0..n),
                        rng.gen_range(0..n),
                        rng.gen_range(0..EDGE_TYPES),
                        rng.gen_range(0..EDGE_TYPES),
                    ]
                })
            })
            .collect();
        let k = rng.gen_range(1..=STEMS);
        let stems = (0..k)
            .map(|_| [rng.gen_range(0..n), rng.gen_range(0..STEM_TYPES)])
            .collect();
        Self {
            nodes,
            edges,
            stems,
        }
    }

    fn write(&self, junk: [f32; OFFSET], out: &mut Vec<f32>) {
        let code = |v: usize| (v + 1) as f32;
        out.extend(junk);
        for i in 0..NODES {
            out.push(self.nodes.get(i).map_or(0.0, |&t| code(t)));
        }
        for e in &self.edges {
            match e {
                Some(e) => out.extend(e.map(code)),
                None => out.extend([0.0; 4]),
            }
        }
        for s in 0..STEMS {
            match self.stems.get(s) {
                Some(st) => out.extend(st.map(code)),
                None => out.extend([0.0; 2]),
            }
        }
    }

    /// The same graph with nodes listed in the order `perm` (new node `i` is old node
    /// `perm[i]`) and edge slots reversed.
    fn permuted(&self, perm: &[usize]) -> Self {
        let new_of = |old: usize| perm.iter().position(|&p| p == old).unwrap();
        Self {
            nodes: perm.iter().map(|&p| self.nodes[p]).collect(),
            edges: self
                .edges
                .iter()
                .rev()
                .map(|e| e.map(|[a, b, ta, tb]| [new_of(a), new_of(b), ta, tb]))
                .collect(),
            stems: self.stems.iter().map(|&[p, t]| [new_of(p), t]).collect(),
        }
    }
}

fn problem(seed: u64, rows: usize) -> Problem {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut input = Vec::new();
    for _ in 0..rows {
        let junk = [rng.gen_range(-1.0..1.0), rng.gen_range(-1.0..1.0)];
        G::random(&mut rng).write(junk, &mut input);
    }
    Problem::new(rows, input, &[FORWARD, NODES, 1], &mut rng)
}

fn gradients(model: &mut Model, p: &Problem) -> Vec<NamedTensor> {
    let (out, grads) = p.gradients(model, 0);
    let mut eval = Outputs::new();
    model.forward(&p.input, p.rows, &mut eval).unwrap();
    for h in 0..3 {
        assert_eq!(out.head(h), eval.head(h), "train and eval forwards agree");
    }
    grads
}

#[test]
fn parameters_are_named_and_shaped_like_the_architecture() {
    let m = model(&spec(), 1);
    let params = m.parameters();
    let find = |name: &str| {
        params
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no parameter {name}"))
    };
    assert_eq!(find("node_embedding.weight").shape, [NODE_TYPES, 6]);
    assert_eq!(find("edge_embedding.weight").shape, [EDGE_TYPES, 6]);
    assert_eq!(find("stem_embedding.weight").shape, [STEM_TYPES, 6]);
    assert_eq!(find("gru.hidden_new.weight").shape, [6, 6]);
    assert_eq!(find("stem2pred.0.weight_type").shape, [6, 6]);
    assert_eq!(find("head.forward.graph.weight").shape, [6, 1]);
    assert_eq!(find("head.forward.stem.weight").shape, [6, STEM_ACTIONS]);
    assert_eq!(find("head.backward.weight").shape, [6, 1]);
    assert_eq!(find("head.log_flow.weight").shape, [6, 1]);
    // The stem layer's halves share the fan-in 2 * width.
    let bound = 1.0 / 12f32.sqrt();
    assert!(
        find("stem2pred.0.weight_node")
            .data
            .iter()
            .all(|w| w.abs() <= bound)
    );
    assert_eq!(model(&spec(), 1).parameters(), params);
    assert_ne!(model(&spec(), 2).parameters(), params);
    assert_eq!(m.head_dims(), [FORWARD, NODES, 1]);
}

#[test]
fn gradient_matches_finite_differences_on_every_tensor() {
    let mut m = model(&spec(), 3);
    let p = problem(4, 6);
    let grads = gradients(&mut m, &p);
    let base = m.parameters();
    assert_eq!(grads.len(), base.len());
    let fd = FiniteDiff {
        eps: 2e-3,
        kink: (5e-2, 1e-2),
        tol: (2e-2, 2e-3),
    };
    let mut probe = ChaCha8Rng::seed_from_u64(5);
    let mut worst = 0.0f64;
    for (t, tensor) in base.iter().enumerate() {
        if tensor.name == "scalar.log_z" {
            assert_eq!(grads[t].data, [0.25]);
            continue;
        }
        let n = tensor.data.len();
        // Entries with a gradient (embedding rows of types not in the batch have none).
        let live: Vec<usize> = (0..n).filter(|&i| grads[t].data[i] != 0.0).collect();
        assert!(!live.is_empty(), "{} has zero gradient", tensor.name);
        let mut idx = vec![live[0], *live.last().unwrap()];
        idx.extend((0..4).map(|_| live[probe.gen_range(0..live.len())]));
        idx.extend((0..2).map(|_| probe.gen_range(0..n)));
        idx.sort_unstable();
        idx.dedup();
        // Leaky-ReLU kinks within eps are skipped.
        let checked = fd.check(&mut m, &base, t, &idx, &grads[t].data, |m| p.functional(m));
        for (numeric, exact) in checked {
            let scale = numeric.abs().max(exact.abs());
            if scale > 1e-2 {
                worst = worst.max((numeric - exact).abs() / scale);
            }
        }
    }
    println!("worst relative error over checked entries: {worst:.2e}");
}

#[test]
fn listing_order_of_nodes_and_edges_does_not_change_outputs() {
    let m = model(&spec(), 7);
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let mut worst = 0.0f64;
    for _ in 0..50 {
        let g = G::random(&mut rng);
        let n = g.nodes.len();
        let mut perm: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            perm.swap(i, rng.gen_range(0..=i));
        }
        let h = g.permuted(&perm);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        g.write([0.3, -0.2], &mut a);
        h.write([0.9, 0.1], &mut b);
        let (mut oa, mut ob) = (Outputs::new(), Outputs::new());
        m.forward(&a, 1, &mut oa).unwrap();
        m.forward(&b, 1, &mut ob).unwrap();
        let scale = oa
            .head(0)
            .iter()
            .chain(oa.head(2))
            .fold(1e-6f32, |s, v| s.max(v.abs()));
        let mut cmp = |x: f32, y: f32| {
            worst = worst.max(f64::from((x - y).abs() / scale));
        };
        for (x, y) in oa.head(0).iter().zip(ob.head(0)) {
            cmp(*x, *y);
        }
        cmp(oa.head(2)[0], ob.head(2)[0]);
        // The per-node head follows its node.
        for (new, &old) in perm.iter().enumerate() {
            cmp(oa.head(1)[old], ob.head(1)[new]);
        }
        // Padding is 0: absent nodes and absent stems.
        assert!(oa.head(1)[n..].iter().all(|&v| v == 0.0));
        let k = g.stems.len();
        assert!(oa.head(0)[1 + k * STEM_ACTIONS..].iter().all(|&v| v == 0.0));
    }
    println!("worst relative difference: {worst:.2e}");
    assert!(worst <= 1e-5, "worst relative difference {worst:e}");
}

#[test]
fn rows_do_not_interact_and_messages_follow_edges() {
    let m = model(&spec(), 9);
    let p = problem(10, 5);
    let mut all = Outputs::new();
    m.forward(&p.input, p.rows, &mut all).unwrap();
    let dim = p.input.len() / p.rows;
    for r in 0..p.rows {
        let mut one = Outputs::new();
        m.forward(&p.input[r * dim..(r + 1) * dim], 1, &mut one)
            .unwrap();
        for h in 0..3 {
            let d = all.dim(h);
            for (x, y) in one.head(h).iter().zip(&all.head(h)[r * d..(r + 1) * d]) {
                assert!((x - y).abs() <= 1e-5 * (1.0 + x.abs()));
            }
        }
    }
    // A node with no incoming edge does not depend on the edge types of edges out of it only
    // through messages: flipping an edge's direction changes the outputs.
    let g = G {
        nodes: vec![0, 1],
        edges: vec![Some([0, 1, 2, 3]), None, None, None],
        stems: vec![[0, 1]],
    };
    let flipped = G {
        edges: vec![Some([1, 0, 3, 2]), None, None, None],
        ..g.clone()
    };
    let (mut a, mut b) = (Vec::new(), Vec::new());
    g.write([0.0; 2], &mut a);
    flipped.write([0.0; 2], &mut b);
    let (mut oa, mut ob) = (Outputs::new(), Outputs::new());
    m.forward(&a, 1, &mut oa).unwrap();
    m.forward(&b, 1, &mut ob).unwrap();
    assert_ne!(oa.head(0), ob.head(0), "edges are directed");
}

#[test]
fn invalid_graphs_and_specs_are_clear_errors() {
    let m = model(&spec(), 1);
    let mut out = Outputs::new();
    let g = G {
        nodes: vec![0, 1],
        edges: vec![Some([0, 1, 2, 3]), None, None, None],
        stems: vec![[0, 1]],
    };
    let mut good = Vec::new();
    g.write([0.0; 2], &mut good);
    m.forward(&good, 1, &mut out).unwrap();
    let cases: Vec<(usize, f32, &str)> = vec![
        (OFFSET, 0.0, "present after an absent node"),
        (OFFSET, 0.5, "not an integer code"),
        (OFFSET, (NODE_TYPES + 1) as f32, "not an integer code"),
        (OFFSET + NODES, 3.0, "not an integer code"), // edge source 2 of 2 nodes
        (OFFSET + NODES + 3, 0.0, "3 of its 4 fields"),
        (OFFSET + NODES + 4 * EDGES + 1, 0.0, "one of its 2 fields"),
        (OFFSET + NODES + 4 * EDGES + 2, 1.0, "one of its 2 fields"),
    ];
    for (at, v, want) in cases {
        let mut bad = good.clone();
        bad[at] = v;
        match m.forward(&bad, 1, &mut out) {
            Err(NnError::InvalidArgument(msg)) => assert!(msg.contains(want), "{msg}"),
            other => panic!("field {at} = {v}: expected an error with {want:?}, got {other:?}"),
        }
    }
    let mut none = good.clone();
    none[OFFSET..OFFSET + NODES].fill(0.0);
    match m.forward(&none, 1, &mut out) {
        Err(NnError::InvalidArgument(msg)) => assert!(msg.contains("at least one node"), "{msg}"),
        other => panic!("expected an error, got {other:?}"),
    }
    let mut s = spec();
    s.width = 0;
    assert!(matches!(
        Model::graph(&s, &OptimizerSpec::default(), Device::Cpu, &mut ChaCha8Rng::seed_from_u64(0)),
        Err(NnError::InvalidSpec(m)) if m.contains("width")
    ));
    let mut s = spec();
    s.heads[0].dim = 5;
    assert!(matches!(
        Model::graph(&s, &OptimizerSpec::default(), Device::Cpu, &mut ChaCha8Rng::seed_from_u64(0)),
        Err(NnError::InvalidSpec(m)) if m.contains("forward")
    ));
    let mut s = spec();
    s.input_dim = GRAPH;
    assert!(
        Model::graph(
            &s,
            &OptimizerSpec::default(),
            Device::Cpu,
            &mut ChaCha8Rng::seed_from_u64(0)
        )
        .is_err()
    );
}

#[test]
fn training_reduces_a_simple_loss() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let opt = OptimizerSpec {
        adam: softgfn_nn::AdamConfig {
            learning_rate: 1e-2,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut m = Model::graph(&spec(), &opt, Device::Cpu, &mut rng).unwrap();
    let p = problem(12, 8);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let loss = |out: &Outputs| -> f64 {
        out.head(2)
            .iter()
            .map(|&y| f64::from((y - 1.0).powi(2)))
            .sum()
    };
    let mut out = Outputs::new();
    let mut first = None;
    let mut last = 0.0;
    for _ in 0..100 {
        m.forward_train(&p.input, p.rows, &mut out, &mut rng)
            .unwrap();
        last = loss(&out);
        first.get_or_insert(last);
        let mut g = Outputs::new();
        g.reset(p.rows, &m.head_dims());
        for (gv, y) in g.head_mut(2).iter_mut().zip(out.head(2)) {
            *gv = 2.0 * (y - 1.0);
        }
        m.backward(&g, &[0.0]).unwrap();
        m.step().unwrap();
    }
    assert!(last < 0.01 * first.unwrap(), "{first:?} -> {last}");
}

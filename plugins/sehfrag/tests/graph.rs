//! The graph layout of `sehfrag` against the paper's `mol2graph` (spec 4), computed here from
//! the paper's record of each reference molecule and the block library alone: node types are
//! the blocks' indices in the sorted list of distinct SMILES, stem types come from the paper's
//! `stem_type_offset` formula, and edges run from the existing block to the added one.

mod common;

use std::collections::BTreeSet;

use common::{int_rows, ints, read_jsonl, step};
use softgfn_core::{
    CheckOptions, CoreError, EnvSpec, Environment, EnvironmentExt, GraphLayout, Result,
    StateEquivalence, StateValue, check_env_with,
};
use softgfn_sehfrag::{NUM_BLOCKS, Sehfrag, SehfragConfig, flat_action};

/// The paper's graph of a state: node types, edges `(src, dst, type_a, type_b)`, stems
/// `(node, type)`.
type Graph = (Vec<usize>, Vec<[usize; 4]>, Vec<[usize; 2]>);

/// `true_block` and `stem_type_offset` as `mol_mdp_ext.py` computes them.
struct Vocabulary {
    true_block: Vec<usize>,
    offset: Vec<usize>,
}

impl Vocabulary {
    fn of(env: &Sehfrag) -> Self {
        let blocks = &env.table().blocks;
        let smiles: BTreeSet<&str> = blocks.iter().map(|b| b.smiles.as_str()).collect();
        let sorted: Vec<&str> = smiles.into_iter().collect();
        let true_block = blocks
            .iter()
            .map(|b| sorted.iter().position(|s| *s == b.smiles).unwrap())
            .collect();
        let mut offset = vec![0];
        for smi in &sorted {
            let first = blocks.iter().find(|b| b.smiles == *smi).unwrap();
            let next = offset.last().unwrap() + first.block_r.iter().max().unwrap() + 1;
            offset.push(next);
        }
        Self { true_block, offset }
    }

    fn stem_type(&self, block: usize, atom: usize) -> usize {
        self.offset[self.true_block[block]] + atom
    }

    /// `mol2graph` of a record `(blockidxs, jbonds, stems)`.
    fn mol2graph(&self, blockidxs: &[i64], jbonds: &[Vec<i64>], stems: &[Vec<i64>]) -> Graph {
        let num_true = *self.true_block.iter().max().unwrap() + 1;
        let num_stem_types = *self.offset.last().unwrap();
        if blockidxs.is_empty() {
            return (vec![num_true], vec![], vec![[0, num_stem_types]]);
        }
        let b = |j: i64| blockidxs[j as usize] as usize;
        let nodes = blockidxs
            .iter()
            .map(|&x| self.true_block[x as usize])
            .collect();
        let edges = jbonds
            .iter()
            .map(|e| {
                [
                    e[0] as usize,
                    e[1] as usize,
                    self.stem_type(b(e[0]), e[2] as usize),
                    self.stem_type(b(e[1]), e[3] as usize),
                ]
            })
            .collect();
        let stems = if stems.is_empty() {
            vec![[0, num_stem_types]]
        } else {
            stems
                .iter()
                .map(|s| [s[0] as usize, self.stem_type(b(s[0]), s[1] as usize)])
                .collect()
        };
        (nodes, edges, stems)
    }
}

/// Reads the graph fields of one feature row back (checking the padding).
fn decode(layout: &GraphLayout, features: &[f32]) -> Graph {
    let g = &features[layout.offset..layout.offset + layout.graph_features()];
    let int = |v: f32| -> Option<usize> {
        assert_eq!(v, v.round(), "graph fields are integers");
        (v >= 1.0).then(|| v as usize - 1)
    };
    let (nodes, rest) = g.split_at(layout.max_nodes);
    let (edges, stems) = rest.split_at(4 * layout.max_edges);
    let nodes: Vec<usize> = nodes.iter().map_while(|&v| int(v)).collect();
    let edges: Vec<[usize; 4]> = edges
        .chunks(4)
        .filter(|e| e[0] != 0.0)
        .map(|e| [0, 1, 2, 3].map(|i| int(e[i]).unwrap()))
        .collect();
    let stems: Vec<[usize; 2]> = stems
        .chunks(2)
        .map_while(|s| Some([int(s[0])?, int(s[1]).unwrap()]))
        .collect();
    for &[a, b, ta, tb] in &edges {
        assert!(a < nodes.len() && b < nodes.len());
        assert!(ta < layout.edge_types && tb < layout.edge_types);
    }
    for &[p, t] in &stems {
        assert!(p < nodes.len() && t < layout.stem_types);
    }
    assert!(nodes.iter().all(|&t| t < layout.node_types));
    (nodes, edges, stems)
}

fn features(env: &Sehfrag, row: &[StateValue]) -> Vec<f32> {
    let mut f = vec![0.0; env.spec().feature_dim];
    env.encode(row, &mut f).unwrap();
    f
}

#[test]
fn the_layout_fits_the_spec_and_the_paper_sizes() {
    let env = Sehfrag::new(SehfragConfig::default()).unwrap();
    let layout = env.graph_layout().unwrap();
    layout.validate(env.spec()).unwrap();
    assert_eq!(layout.node_types, 73);
    assert_eq!(layout.edge_types, 214);
    assert_eq!(layout.stem_types, 215);
    assert_eq!(layout.max_stems, 30);
    assert_eq!(layout.stem_actions, 105);
    assert_eq!(env.spec().num_actions, 3151);
    let voc = Vocabulary::of(&env);
    assert_eq!(*voc.offset.last().unwrap(), 214);
}

#[test]
fn thirty_stems_is_the_most_a_state_with_actions_has() {
    let env = Sehfrag::new(SehfragConfig::default()).unwrap();
    let t = env.table();
    // Every add uses one open stem and opens `slots - 1`; the first block opens all its
    // slots. Actions are taken from states of at most max_blocks - 1 = 7 blocks.
    let max_slots = t.blocks.iter().map(|b| b.num_slots()).max().unwrap();
    assert_eq!(max_slots, 6);
    assert_eq!(max_slots + 6 * (max_slots - 2), 30);
    // Reach it: seven blocks of six slots, each on the first open stem.
    let big = (0..NUM_BLOCKS)
        .find(|&b| t.blocks[b].num_slots() == 6)
        .unwrap();
    let mut s = env.initial_row();
    for _ in 0..7 {
        s = step(&env, &s, flat_action(0, big)).0;
    }
    assert_eq!(env.parse(&s).unwrap().stems(t).len(), 30);
    let mask = env.forward_mask_of(&s).unwrap();
    assert_eq!(mask.iter().filter(|&&v| v).count(), 1 + 30 * 105);
    let layout = env.graph_layout().unwrap();
    let (nodes, edges, stems) = decode(&layout, &features(&env, &s));
    assert_eq!((nodes.len(), edges.len(), stems.len()), (7, 6, 30));
}

#[test]
fn the_graph_is_the_papers_mol2graph_on_the_reference_molecules() {
    let env = Sehfrag::new(SehfragConfig::default()).unwrap();
    let layout = env.graph_layout().unwrap();
    let voc = Vocabulary::of(&env);
    // The empty state.
    let want = voc.mol2graph(&[], &[], &[]);
    assert_eq!(decode(&layout, &features(&env, &env.initial_row())), want);
    let refs = read_jsonl("ref_random2000.jsonl.gz");
    let (mut checked, mut no_stems) = (0, 0);
    for r in &refs {
        let id = r["id"].as_i64().unwrap();
        let mut s = env.initial_row();
        for st in r["steps"].as_array().unwrap() {
            let a = st["action"].as_u64().unwrap() as u32;
            if a != 0 {
                s = step(&env, &s, a).0;
            }
        }
        let fs = &r["final_state"];
        let stems = int_rows(&fs["stems"]);
        let want = voc.mol2graph(&ints(&fs["blockidxs"]), &int_rows(&fs["jbonds"]), &stems);
        // States with max_blocks blocks may have more stems than any state with actions; the
        // graph keeps the first max_stems.
        let mut want = want;
        want.2.truncate(layout.max_stems);
        assert_eq!(decode(&layout, &features(&env, &s)), want, "id {id}");
        checked += 1;
        no_stems += usize::from(stems.is_empty());
    }
    assert_eq!(checked, 2000);
    assert!(
        no_stems > 0,
        "the dummy stem of a molecule without stems is covered"
    );
}

/// `sehfrag` whose graph features lose the last open stem.
struct DroppedStem(Sehfrag);

impl Environment for DroppedStem {
    fn spec(&self) -> &EnvSpec {
        self.0.spec()
    }
    fn params(&self) -> serde_json::Value {
        self.0.params()
    }
    fn initial_state(&self, out: &mut [StateValue]) {
        self.0.initial_state(out)
    }
    fn forward_masks(&self, s: &[StateValue], out: &mut [bool]) -> Result<()> {
        self.0.forward_masks(s, out)
    }
    fn backward_masks(&self, s: &[StateValue], out: &mut [bool]) -> Result<()> {
        self.0.backward_masks(s, out)
    }
    fn step(&self, s: &[StateValue], a: &[u32], n: &mut [StateValue], b: &mut [u32]) -> Result<()> {
        self.0.step(s, a, n, b)
    }
    fn backward_step(
        &self,
        s: &[StateValue],
        b: &[u32],
        p: &mut [StateValue],
        a: &mut [u32],
    ) -> Result<()> {
        self.0.backward_step(s, b, p, a)
    }
    fn log_reward(&self, s: &[StateValue], out: &mut [f64]) -> Result<()> {
        self.0.log_reward(s, out)
    }
    fn encode(&self, s: &[StateValue], out: &mut [f32]) -> Result<()> {
        self.0.encode(s, out)?;
        let layout = self.0.graph_layout().unwrap();
        let fd = self.0.spec().feature_dim;
        for row in out.chunks_exact_mut(fd) {
            let stems = &mut row[layout.offset + layout.max_nodes + 4 * layout.max_edges..];
            let k = stems.chunks(2).take_while(|st| st[0] != 0.0).count();
            if k > 1 {
                stems[2 * (k - 1)..2 * k].fill(0.0);
            }
        }
        Ok(())
    }
    fn graph_layout(&self) -> Option<GraphLayout> {
        self.0.graph_layout()
    }
    fn as_state_equivalence(&self) -> Option<&dyn StateEquivalence> {
        Some(&self.0)
    }
}

#[test]
fn check_env_verifies_the_graph_and_catches_a_missing_stem() {
    let opts = CheckOptions {
        rollouts: 4,
        ..CheckOptions::default()
    };
    let env = Sehfrag::new(SehfragConfig::default()).unwrap();
    check_env_with(&env, &opts).unwrap();
    match check_env_with(&DroppedStem(env), &opts) {
        Err(CoreError::CheckFailed {
            property, details, ..
        }) => {
            assert_eq!(property, "graph layout");
            assert!(details.contains("is valid but the graph has"), "{details}");
        }
        other => panic!("expected a graph layout failure, got {other:?}"),
    }
}

//! The paper's correlation test set (spec 5.2) and `log p(x)` over its ancestor graphs.
//!
//! The test set is the paper's 950 molecules with their stored rewards; each non-skipped
//! molecule comes with the ancestor graph the paper's metric builds (all construction
//! histories, isomorphic states merged, 529 of them; the other 421 raise in the paper's code and
//! are skipped, quirk Q6). `log p(x)` sums the policy's probability over every path of the
//! graph:
//!
//! ```text
//! log p(s0) = 0;  log p(c) = logaddexp(-1000, over parents n: w * log P_F(a_{n->c} | n) + log p(n))
//! log p(x) += w * log P_F(stop | x)  on the edges out of x, when stop is valid at x
//! ```
//!
//! with `w = 1` for the metric `pearson` and `w = lambda` for `pearson_lambda` (the paper
//! multiplies each log-probability by its temperature). Unlike the paper's code, the stop term
//! is left out where stop is not a valid action (the molecule ended by itself), since the policy
//! gives it no probability there.

use std::io::Read;

use serde_json::Value;
use softgfn_core::{CoreError, LogPf, Result, StateValue};

use crate::NAME;
use crate::env::Sehfrag;
use crate::state::{Mol, flat_action};

/// The embedded test molecules with stored rewards (`data/test_mols_U_1k.json.gz`).
const TEST_MOLS_GZ: &[u8] = include_bytes!("../data/test_mols_U_1k.json.gz");
/// The embedded ancestor graphs (`data/test_mols_U_1k_dags.json.gz`).
const TEST_DAGS_GZ: &[u8] = include_bytes!("../data/test_mols_U_1k_dags.json.gz");

/// Rows per call of the policy.
const LOG_PF_BATCH: usize = 4096;

/// One scored test molecule and its ancestor graph.
#[derive(Clone, Debug, PartialEq)]
pub struct TestMolecule {
    /// Id in the paper's list.
    pub id: usize,
    /// `log R` of the stored reward.
    pub log_reward: f64,
    /// Graph nodes as state rows (node 0 is the molecule).
    pub nodes: Vec<Vec<StateValue>>,
    /// Edges `(child, parent, forward action from the parent)`.
    pub edges: Vec<(usize, usize, u32)>,
    /// Nodes in topological order (the molecule first, the empty state last).
    pub topo: Vec<usize>,
    /// Whether stop is valid at the molecule.
    pub stop_valid: bool,
}

/// The test set.
#[derive(Clone, Debug, PartialEq)]
pub struct TestSet {
    /// The scored molecules.
    pub molecules: Vec<TestMolecule>,
    /// Molecules of the paper's list that its code skips.
    pub skipped: usize,
}

fn data_error(details: impl std::fmt::Display) -> CoreError {
    CoreError::Environment {
        env: NAME.into(),
        message: format!("correlation test set: {details}"),
    }
}

fn gunzip_json(bytes: &[u8]) -> Result<Value> {
    let mut s = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut s)
        .map_err(|e| data_error(format!("cannot decompress ({e})")))?;
    serde_json::from_str(&s).map_err(|e| data_error(format!("is not JSON ({e})")))
}

fn as_usize(v: &Value) -> Option<usize> {
    v.as_u64()
        .map(|x| x as usize)
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

fn usizes(v: &Value) -> Option<Vec<usize>> {
    v.as_array()?.iter().map(as_usize).collect()
}

/// A paper record (`blockidxs`, `jbonds`) as a molecule, each junction on the first free slot of
/// its atom, with the paper's stem list (`stems`) mapped to this molecule's stem indices.
fn record(env: &Sehfrag, node: &Value) -> Option<(Mol, Vec<usize>)> {
    let table = env.table();
    let blocks = usizes(&node["blockidxs"])?;
    let jbonds: Vec<Vec<usize>> = node["jbonds"]
        .as_array()?
        .iter()
        .map(usizes)
        .collect::<Option<_>>()?;
    let mut mol = Mol::empty();
    for (j, &b) in blocks.iter().enumerate() {
        if j == 0 {
            mol.push(b, None);
            continue;
        }
        let jb = jbonds.iter().find(|jb| jb[1] == j)?;
        let (p, atom) = (jb[0], jb[2]);
        let pb = &table.blocks[mol.block[p] as usize];
        let first = usize::from(p != 0);
        let slot = (first..pb.num_slots())
            .chain((p == 0).then_some(0))
            .find(|&s| pb.block_r[s] == atom && mol.used[p] & (1 << s) == 0)?;
        if table.blocks[b].block_r[0] != jb[3] {
            return None;
        }
        mol.push(b, Some((p, slot)));
    }
    let stems = mol.stems(table);
    let mut map = Vec::new();
    for st in node["stems"].as_array()? {
        let st = usizes(st)?;
        let k = stems.as_slice().iter().position(|&(p, s)| {
            p as usize == st[0]
                && table.blocks[mol.block[st[0]] as usize].block_r[s as usize] == st[1]
        })?;
        map.push(k);
    }
    Some((mol, map))
}

impl TestSet {
    /// The paper's test set as shipped, for `env` (whose library must hold every block).
    ///
    /// # Errors
    /// Corrupt embedded data, or a molecule the environment cannot represent.
    pub fn embedded(env: &Sehfrag) -> Result<Self> {
        let mols = gunzip_json(TEST_MOLS_GZ)?;
        let dags = gunzip_json(TEST_DAGS_GZ)?;
        let rewards: Vec<(usize, f64)> = mols["mols"]
            .as_array()
            .ok_or_else(|| data_error("no `mols` list"))?
            .iter()
            .map(|m| Some((as_usize(&m["id"])?, m["reward"].as_f64()?)))
            .collect::<Option<_>>()
            .ok_or_else(|| data_error("a molecule without id or reward"))?;
        let mut molecules = Vec::new();
        let mut skipped = 0;
        for d in dags["mols"]
            .as_array()
            .ok_or_else(|| data_error("no `mols` list of graphs"))?
        {
            if d["skipped"] != Value::Bool(false) {
                skipped += 1;
                continue;
            }
            let id = as_usize(&d["id"]).ok_or_else(|| data_error("a graph without id"))?;
            let bad = |what: &str| data_error(format!("graph of molecule {id}: {what}"));
            let reward = rewards
                .iter()
                .find(|r| r.0 == id)
                .ok_or_else(|| bad("no stored reward"))?
                .1;
            let mut nodes = Vec::new();
            let mut maps = Vec::new();
            for node in d["nodes"].as_array().ok_or_else(|| bad("no nodes"))? {
                let (mol, map) =
                    record(env, node).ok_or_else(|| bad("a node is not a valid record"))?;
                nodes.push(env.row_of(&mol));
                maps.push(map);
            }
            let mut edges = Vec::new();
            for e in d["edges"].as_array().ok_or_else(|| bad("no edges"))? {
                let (u, v) = (as_usize(&e[0]), as_usize(&e[1]));
                let (block, stem) = (as_usize(&e[2][0]), as_usize(&e[2][1]));
                let (Some(u), Some(v), Some(block), Some(stem)) = (u, v, block, stem) else {
                    return Err(bad("a malformed edge"));
                };
                let k = if maps[v].is_empty() {
                    0
                } else {
                    *maps[v]
                        .get(stem)
                        .ok_or_else(|| bad("an edge with a stem out of range"))?
                };
                edges.push((u, v, flat_action(k, block)));
            }
            let topo = usizes(&d["topo_order"]).ok_or_else(|| bad("no topo_order"))?;
            let mol0 = env.parse(&nodes[0])?;
            let stop_valid = mol0.n >= env.config().min_blocks && !env.is_auto_terminal(&mol0);
            molecules.push(TestMolecule {
                id,
                log_reward: reward.ln(),
                nodes,
                edges,
                topo,
                stop_valid,
            });
        }
        Ok(Self { molecules, skipped })
    }

    /// The stored `log R` of every scored molecule.
    pub fn log_rewards(&self) -> Vec<f64> {
        self.molecules.iter().map(|m| m.log_reward).collect()
    }

    /// `log p(x)` of every scored molecule under the policy, each log-probability multiplied by
    /// `weight` (1, or the paper's `lambda`); one batched pass of the policy serves every weight.
    ///
    /// # Errors
    /// An error of `log_pf`, or a NaN / `+inf` log-probability.
    pub fn log_p(&self, log_pf: &mut LogPf<'_>, weights: &[f64]) -> Result<Vec<Vec<f64>>> {
        let mut rows: Vec<StateValue> = Vec::new();
        let mut actions: Vec<u32> = Vec::new();
        for m in &self.molecules {
            for &(_, v, a) in &m.edges {
                rows.extend_from_slice(&m.nodes[v]);
                actions.push(a);
            }
            if m.stop_valid {
                rows.extend_from_slice(&m.nodes[0]);
                actions.push(0);
            }
        }
        let w = self.molecules.first().map_or(1, |m| m.nodes[0].len());
        let mut lp = vec![0.0; actions.len()];
        for (c, (rs, acts)) in rows
            .chunks(LOG_PF_BATCH * w)
            .zip(actions.chunks(LOG_PF_BATCH))
            .enumerate()
        {
            log_pf(
                rs,
                acts,
                &mut lp[c * LOG_PF_BATCH..c * LOG_PF_BATCH + acts.len()],
            )?;
        }
        if let Some(v) = lp.iter().find(|v| v.is_nan() || **v == f64::INFINITY) {
            return Err(CoreError::Metric {
                metric: "pearson".into(),
                details: format!("the policy returned log P_F = {v}"),
            });
        }
        let mut out = vec![Vec::with_capacity(self.molecules.len()); weights.len()];
        for (wi, &wt) in weights.iter().enumerate() {
            let mut at = 0;
            for m in &self.molecules {
                let edges = &lp[at..at + m.edges.len()];
                let stop = if m.stop_valid {
                    lp[at + m.edges.len()]
                } else {
                    0.0
                };
                at += m.edges.len() + usize::from(m.stop_valid);
                out[wi].push(graph_log_p(m, edges, wt, wt * stop));
            }
        }
        Ok(out)
    }
}

fn logaddexp(a: f64, b: f64) -> f64 {
    let m = a.max(b);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + ((a - m).exp() + (b - m).exp()).ln()
}

/// The recursion of the module docs over one graph.
fn graph_log_p(m: &TestMolecule, edge_lp: &[f64], weight: f64, stop: f64) -> f64 {
    let n = m.nodes.len();
    let mut lp = vec![-1000.0; n];
    if let Some(&last) = m.topo.last() {
        lp[last] = 0.0;
    }
    for &c in m.topo.iter().rev() {
        for (e, &(child, parent, _)) in m.edges.iter().enumerate() {
            if child == c {
                let extra = if c == 0 { stop } else { 0.0 };
                lp[c] = logaddexp(lp[c], weight * edge_lp[e] + lp[parent] + extra);
            }
        }
    }
    lp[0]
}

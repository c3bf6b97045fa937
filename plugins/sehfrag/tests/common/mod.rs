//! Readers of the reference files under `tests/data/` (computed with the paper's code and RDKit;
//! see `plugins/sehfrag/README.md`).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};

use serde_json::Value;
use softgfn_core::{Environment, StateValue};
use softgfn_sehfrag::Sehfrag;

/// The lines of a gzip-compressed JSON-lines fixture.
pub fn read_jsonl(name: &str) -> Vec<Value> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    BufReader::new(flate2::read::GzDecoder::new(file))
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect()
}

/// A JSON list of integers.
pub fn ints(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

/// A JSON list of integer lists.
pub fn int_rows(v: &Value) -> Vec<Vec<i64>> {
    v.as_array().unwrap().iter().map(ints).collect()
}

/// The paper's record of a state: `(blockidxs, jbonds, stems, slices)`, stems as
/// `[block position, atom]` in the paper's order.
pub fn record(env: &Sehfrag, row: &[StateValue]) -> Value {
    let t = env.table();
    let m = env.parse(row).unwrap();
    let mut slices = vec![0usize];
    for j in 0..m.n {
        slices.push(slices[j] + t.blocks[m.block[j] as usize].natoms());
    }
    let jbonds: Vec<[usize; 4]> = (1..m.n)
        .map(|j| {
            let (pa, ca) = m.junction_atoms(t, j);
            [m.parent[j] as usize, j, pa, ca]
        })
        .collect();
    let stems: Vec<[usize; 2]> = m
        .stems(t)
        .as_slice()
        .iter()
        .map(|&(p, s)| {
            [
                p as usize,
                t.blocks[m.block[p as usize] as usize].block_r[s as usize],
            ]
        })
        .collect();
    serde_json::json!({
        "blockidxs": (0..m.n).map(|j| m.block[j]).collect::<Vec<_>>(),
        "jbonds": jbonds,
        "stems": stems,
        "slices": slices,
    })
}

/// Steps one action.
pub fn step(env: &Sehfrag, row: &[StateValue], action: u32) -> (Vec<StateValue>, u32) {
    let mut next = vec![0; env.spec().state_width];
    let mut b = [0u32];
    env.step(row, &[action], &mut next, &mut b).unwrap();
    (next, b[0])
}

//! The canonical form of a molecule's block graph: the environment-declared state equivalence.
//!
//! Two states are the same molecule when their block trees are isomorphic with blocks labelled
//! by their true block (SMILES) and junctions labelled by the atoms they join, up to the atom
//! symmetries of each block (the carbons of benzene are interchangeable). This is the notion of
//! identity of the paper's own ancestor graphs (spec 5.2), extended by block symmetries, so
//! that a parent re-built through a symmetric duplicate of the translation table (spec 1.5) is
//! recognised. Open stems are not part of it: see the book page for why.
//!
//! The key is the smallest serialisation over all roots of the tree, where a subtree is
//! serialised as `[true block, entry atom, children, (atom, subtree)...]` minimised over the
//! block's symmetries, children sorted.

use softgfn_core::StateValue;

use crate::state::{MAX_BLOCKS_LIMIT, Mol};
use crate::table::BlockTable;

/// Atom permutations of every true block that keep elements, aromaticity, hydrogens,
/// hybridisation and bond types (the identity first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symmetries {
    perms: Vec<Vec<Vec<u8>>>,
}

impl Symmetries {
    /// Computes the symmetries of every true block of the table by backtracking.
    pub fn of(table: &BlockTable) -> Self {
        let mut perms = vec![Vec::new(); table.num_true_blocks];
        for blk in &table.blocks {
            if !perms[blk.true_block].is_empty() {
                continue;
            }
            let n = blk.natoms();
            let mut adj = vec![vec![u8::MAX; n]; n];
            for &(u, v, t) in &blk.bonds {
                adj[u][v] = t;
                adj[v][u] = t;
            }
            let mut found = Vec::new();
            let mut cur = Vec::with_capacity(n);
            let mut taken = vec![false; n];
            extend(blk, &adj, &mut cur, &mut taken, &mut found);
            perms[blk.true_block] = found;
        }
        Self { perms }
    }

    /// The symmetries of a true block.
    pub fn of_true_block(&self, t: usize) -> &[Vec<u8>] {
        &self.perms[t]
    }
}

fn extend(
    blk: &crate::table::Block,
    adj: &[Vec<u8>],
    cur: &mut Vec<u8>,
    taken: &mut [bool],
    found: &mut Vec<Vec<u8>>,
) {
    let i = cur.len();
    let n = taken.len();
    if i == n {
        found.push(cur.clone());
        return;
    }
    for c in 0..n {
        if taken[c] || blk.atoms[c] != blk.atoms[i] {
            continue;
        }
        if (0..i).any(|j| adj[i][j] != adj[c][cur[j] as usize]) {
            continue;
        }
        taken[c] = true;
        cur.push(c as u8);
        extend(blk, adj, cur, taken, found);
        cur.pop();
        taken[c] = false;
    }
}

/// The canonical key of a state's molecule (empty for the empty state). With `stems`, each
/// block's open stem atoms are part of it too (then equal keys mean equal proxy inputs up to the
/// order of the atoms, so equal rewards; a molecule without open stems counts atom 0 of its
/// first block as one, as the proxy's stem mask does, quirk Q3).
pub fn canonical_key(
    table: &BlockTable,
    sym: &Symmetries,
    mol: &Mol,
    stems: bool,
) -> Vec<StateValue> {
    let mut open: [Vec<usize>; MAX_BLOCKS_LIMIT] = Default::default();
    if stems {
        let st = mol.stems(table);
        for &(p, s) in st.as_slice() {
            open[p as usize].push(table.blocks[mol.block[p as usize] as usize].block_r[s as usize]);
        }
        if st.is_empty() && mol.n > 0 {
            // Quirk Q3: without open stems the proxy marks atom 0 of the first block.
            open[0].push(0);
        }
    }
    // Neighbours: (other position, atom on this side, atom on the other side).
    let mut adj: [Vec<(usize, usize, usize)>; MAX_BLOCKS_LIMIT] = Default::default();
    for j in 1..mol.n {
        let p = mol.parent[j] as usize;
        let (pa, ca) = mol.junction_atoms(table, j);
        adj[p].push((j, pa, ca));
        adj[j].push((p, ca, pa));
    }
    let tree = Tree {
        table,
        sym,
        mol,
        adj: &adj,
        open: &open,
    };
    let mut best: Option<Vec<StateValue>> = None;
    for root in 0..mol.n {
        let code = tree.subtree(root, usize::MAX, None);
        if best.as_ref().is_none_or(|b| code < *b) {
            best = Some(code);
        }
    }
    best.unwrap_or_default()
}

/// A molecule's block tree with what its canonical form reads.
struct Tree<'a> {
    table: &'a BlockTable,
    sym: &'a Symmetries,
    mol: &'a Mol,
    /// Neighbours: (other position, atom on this side, atom on the other side).
    adj: &'a [Vec<(usize, usize, usize)>],
    /// Open stem atoms per position (empty without stems in the key).
    open: &'a [Vec<usize>],
}

impl Tree<'_> {
    /// The code of the subtree at `v` entered from `from` through `v`'s atom `entry`.
    fn subtree(&self, v: usize, from: usize, entry: Option<usize>) -> Vec<StateValue> {
        let (table, sym, mol, adj, open) = (self.table, self.sym, self.mol, self.adj, self.open);
        let t = table.blocks[mol.block[v] as usize].true_block;
        let children: Vec<(usize, Vec<StateValue>)> = adj[v]
            .iter()
            .filter(|&&(c, _, _)| c != from)
            .map(|&(c, here, there)| (here, self.subtree(c, v, Some(there))))
            .collect();
        let mut best: Option<Vec<StateValue>> = None;
        for perm in sym.of_true_block(t) {
            let map = |a: usize| StateValue::from(perm[a]);
            let mut kids: Vec<(StateValue, &Vec<StateValue>)> =
                children.iter().map(|(a, code)| (map(*a), code)).collect();
            kids.sort();
            let mut stems: Vec<StateValue> = open[v].iter().map(|&a| map(a)).collect();
            stems.sort_unstable();
            let mut code = vec![
                t as StateValue,
                entry.map_or(-1, map),
                stems.len() as StateValue,
            ];
            code.extend_from_slice(&stems);
            code.push(kids.len() as StateValue);
            for (a, c) in kids {
                code.push(a);
                code.extend_from_slice(c);
            }
            if best.as_ref().is_none_or(|b| code < *b) {
                best = Some(code);
            }
        }
        best.unwrap_or_default()
    }
}

//! The proxy's input graph of a state, assembled from the block table without RDKit (spec 7.1).
//!
//! Atoms are the blocks' atoms in block order. An atom with `k > 0` junction bonds takes the
//! hydrogen count of its table row for `k`; a junction bond is conjugated when one end is a
//! conjugation donor (`D`) and the other an acceptor (`A`), each end read at its own `k`; a
//! junction atom is then `hyb_conj_k` if one of its junction bonds is conjugated, else
//! `hyb_base_k`. Everything else is the block's own value. The stem mask marks every atom of an
//! open stem, or atom 0 when there is none (quirk Q3). Bonds are the blocks' bonds and one
//! single bond per junction.

use crate::state::{MAX_BLOCKS_LIMIT, Mol};
use crate::table::BlockTable;

/// Number of feature columns of an atom (spec 3.2).
pub const ATOM_FEATURES: usize = 71;

/// One atom of the assembled molecule, in the reference's compact form
/// `[type_idx, Z, aromatic, hyb_code, num_hs, stem_mask]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Atom {
    /// Element column (0 H, 1 C, 2 N, 3 O, 4 F, 5 other).
    pub type_idx: u8,
    /// Atomic number.
    pub z: u8,
    /// Aromatic flag.
    pub aromatic: bool,
    /// Hybridisation code (1 SP, 2 SP2, 3 SP3, 0 other).
    pub hyb: u8,
    /// Hydrogen count.
    pub hs: u8,
    /// Stem mask.
    pub stem: bool,
}

impl Atom {
    /// The compact row `[type_idx, Z, aromatic, hyb_code, num_hs, stem_mask]`.
    pub fn compact(&self) -> [i64; 6] {
        [
            i64::from(self.type_idx),
            i64::from(self.z),
            i64::from(self.aromatic),
            i64::from(self.hyb),
            i64::from(self.hs),
            i64::from(self.stem),
        ]
    }

    /// Writes the 71 feature columns of spec 3.2 (`out` has 71 values, zeroed here).
    pub fn write_features(&self, out: &mut [f64]) {
        out.fill(0.0);
        out[self.type_idx as usize] = 1.0;
        out[9] = f64::from(u8::from(self.aromatic));
        if (1..=3).contains(&self.hyb) {
            out[9 + self.hyb as usize] = 1.0;
        }
        out[13] = f64::from(self.hs);
        if (1..=56).contains(&self.z) {
            out[13 + self.z as usize] = 1.0;
        }
        out[70] = f64::from(u8::from(self.stem));
    }
}

/// The assembled molecule: atoms and undirected bonds `(u, v, type_code)` with `u < v`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Molecule {
    /// Atoms in block order.
    pub atoms: Vec<Atom>,
    /// Bonds (type codes 0 single, 1 double, 2 triple, 3 aromatic).
    pub bonds: Vec<(u32, u32, u8)>,
}

impl Molecule {
    /// Assembles the molecule of a state.
    pub fn assemble(table: &BlockTable, mol: &Mol) -> Self {
        let (off, total) = mol.atom_offsets(table);
        let mut atoms = Vec::with_capacity(total);
        let mut bonds = Vec::with_capacity(total + mol.n);
        for j in 0..mol.n {
            let blk = &table.blocks[mol.block[j] as usize];
            for a in &blk.atoms {
                atoms.push(Atom {
                    type_idx: a.type_idx,
                    z: a.z,
                    aromatic: a.aromatic,
                    hyb: a.hyb,
                    hs: a.total_hs,
                    stem: false,
                });
            }
            for &(u, v, t) in &blk.bonds {
                let (u, v) = ((off[j] + u) as u32, (off[j] + v) as u32);
                bonds.push((u.min(v), u.max(v), t));
            }
        }
        // Junctions: (global parent atom, local parent atom, parent block, same for the child).
        let mut k = vec![0u8; total];
        let mut junctions = [(0usize, 0usize, 0usize, 0usize, 0usize, 0usize); MAX_BLOCKS_LIMIT];
        for j in 1..mol.n {
            let p = mol.parent[j] as usize;
            let (pa, ca) = mol.junction_atoms(table, j);
            let (gp, gc) = (off[p] + pa, off[j] + ca);
            k[gp] += 1;
            k[gc] += 1;
            junctions[j] = (gp, pa, mol.block[p] as usize, gc, ca, mol.block[j] as usize);
            bonds.push((gp.min(gc) as u32, gp.max(gc) as u32, 0));
        }
        let row = |g: usize, local: usize, b: usize| {
            table.blocks[b].junction[local]
                .as_ref()
                .map(|rows| rows[k[g] as usize])
        };
        let mut conj = vec![false; total];
        for &(gp, pa, pb, gc, ca, cb) in &junctions[1..mol.n.max(1)] {
            if let (Some(rp), Some(rc)) = (row(gp, pa, pb), row(gc, ca, cb))
                && ((rp.donor && rc.acceptor) || (rp.acceptor && rc.donor))
            {
                conj[gp] = true;
                conj[gc] = true;
            }
        }
        for &(gp, pa, pb, gc, ca, cb) in &junctions[1..mol.n.max(1)] {
            for (g, local, b) in [(gp, pa, pb), (gc, ca, cb)] {
                if let Some(r) = row(g, local, b) {
                    atoms[g].hs = r.hs;
                    atoms[g].hyb = if conj[g] { r.hyb_conj } else { r.hyb_base };
                }
            }
        }
        let stems = mol.stems(table);
        for &(pos, slot) in stems.as_slice() {
            let blk = &table.blocks[mol.block[pos as usize] as usize];
            atoms[off[pos as usize] + blk.block_r[slot as usize]].stem = true;
        }
        if stems.is_empty() && total > 0 {
            atoms[0].stem = true;
        }
        Self { atoms, bonds }
    }

    /// The directed edges of the proxy input: both directions of every bond, sorted by
    /// `(src, dst)`, as `(src, dst, type_code)`.
    pub fn edges(&self) -> Vec<(u32, u32, u8)> {
        let mut e: Vec<(u32, u32, u8)> = self
            .bonds
            .iter()
            .flat_map(|&(u, v, t)| [(u, v, t), (v, u, t)])
            .collect();
        e.sort_unstable();
        e
    }

    /// A key that is equal exactly when the proxy inputs are (atoms and bonds in order).
    pub fn key(&self) -> Vec<u32> {
        let mut k = Vec::with_capacity(1 + self.atoms.len() * 2 + self.bonds.len() * 2);
        k.push(self.atoms.len() as u32);
        for a in &self.atoms {
            k.push(u32::from(a.type_idx) | u32::from(a.z) << 8 | u32::from(a.aromatic) << 16);
            k.push(u32::from(a.hyb) | u32::from(a.hs) << 8 | u32::from(a.stem) << 16);
        }
        for &(u, v, t) in &self.bonds {
            k.push(u);
            k.push(v << 2 | u32::from(t));
        }
        k
    }

    /// The `n x 71` feature matrix, row-major.
    pub fn features(&self) -> Vec<f64> {
        let mut x = vec![0.0; self.atoms.len() * ATOM_FEATURES];
        for (a, row) in self.atoms.iter().zip(x.chunks_exact_mut(ATOM_FEATURES)) {
            a.write_features(row);
        }
        x
    }
}

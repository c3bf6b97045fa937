//! RDKit's default path fingerprint (`Chem.RDKFingerprint`: paths and branched subgraphs of 1
//! to 7 bonds, 2048 bits, 2 bits per subgraph) on the assembled molecule, without RDKit
//! (spec 7.3), and the Tanimoto similarity of the mode metric.
//!
//! For every connected set of 1..=7 bonds: each bond hashes its number of neighbouring bonds in
//! the set, its type (1, 2, 3, aromatic 12), and both ends' invariant `(Z % 128) << 1 |
//! aromatic` and degree in the set, larger invariant first; the set's seed is the bond hash of
//! a single bond, else the hash of the sorted bond hashes followed by the number of atoms. Bits
//! `seed % 2048` and `(z >> 1) % 2048` are set, where `z` is the first output of a 4-word
//! Mersenne twister seeded with `seed`.

use crate::assemble::Molecule;

/// Bits of the fingerprint.
pub const FP_BITS: usize = 2048;
/// Largest subgraph, in bonds.
const MAX_PATH: usize = 7;

/// A 2048-bit fingerprint.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u64; FP_BITS / 64]);

impl Fingerprint {
    /// The set bits, ascending.
    pub fn on_bits(&self) -> Vec<usize> {
        (0..FP_BITS)
            .filter(|&i| self.0[i / 64] >> (i % 64) & 1 == 1)
            .collect()
    }

    fn set(&mut self, bit: usize) {
        self.0[bit / 64] |= 1 << (bit % 64);
    }

    /// Number of set bits.
    pub fn count(&self) -> u32 {
        self.0.iter().map(|w| w.count_ones()).sum()
    }

    /// Tanimoto similarity `|a & b| / |a | b|` (0 for two empty fingerprints, as RDKit).
    pub fn tanimoto(&self, other: &Self) -> f64 {
        let (mut both, mut any) = (0u32, 0u32);
        for (a, b) in self.0.iter().zip(&other.0) {
            both += (a & b).count_ones();
            any += (a | b).count_ones();
        }
        if any == 0 {
            0.0
        } else {
            f64::from(both) / f64::from(any)
        }
    }
}

#[inline]
fn hash_combine(seed: u32, v: u32) -> u32 {
    seed ^ v
        .wrapping_add(0x9e37_79b9)
        .wrapping_add(seed << 6)
        .wrapping_add(seed >> 2)
}

/// First output of RDKit's 4-word Mersenne twister (`n=4, m=2, r=31`) seeded with `seed`.
fn mt4_first(seed: u32) -> u32 {
    const A: u32 = 0x9908_b0df;
    let mut x = [0u32; 4];
    x[0] = seed;
    for i in 1..4 {
        x[i] = 1_812_433_253u32
            .wrapping_mul(x[i - 1] ^ (x[i - 1] >> 30))
            .wrapping_add(i as u32);
    }
    let y = (x[0] & 0x8000_0000) | (x[1] & 0x7fff_ffff);
    let mut z = x[2] ^ (y >> 1) ^ if x[1] & 1 == 1 { A } else { 0 };
    z ^= z >> 11;
    z ^= (z << 7) & 0x9d2c_5680;
    z ^= (z << 15) & 0xefc6_0000;
    z ^ (z >> 18)
}

/// The fingerprint of an assembled molecule.
pub fn fingerprint(mol: &Molecule) -> Fingerprint {
    let nb = mol.bonds.len();
    let inv: Vec<u32> = mol
        .atoms
        .iter()
        .map(|a| (u32::from(a.z) % 128) << 1 | u32::from(a.aromatic))
        .collect();
    let btype: Vec<u32> = mol
        .bonds
        .iter()
        .map(|&(_, _, t)| [1, 2, 3, 12][t as usize])
        .collect();
    // Bonds sharing an atom (the line graph).
    let mut nbrs = vec![Vec::new(); nb];
    for i in 0..nb {
        for j in i + 1..nb {
            let (a, b, _) = mol.bonds[i];
            let (c, d, _) = mol.bonds[j];
            if a == c || a == d || b == c || b == d {
                nbrs[i].push(j);
                nbrs[j].push(i);
            }
        }
    }
    let mut fp = Fingerprint([0; FP_BITS / 64]);
    let mut ctx = Ctx {
        mol,
        inv,
        btype,
        nbrs: &nbrs,
        degree: vec![0; mol.atoms.len()],
        set: Vec::with_capacity(MAX_PATH),
        fp: &mut fp,
    };
    // ESU over the line graph: every connected bond set once, grown from its smallest bond.
    for v in 0..nb {
        let ext: Vec<usize> = nbrs[v].iter().copied().filter(|&u| u > v).collect();
        ctx.set.push(v);
        ctx.extend(v, ext);
        ctx.set.pop();
    }
    fp
}

struct Ctx<'a> {
    mol: &'a Molecule,
    inv: Vec<u32>,
    btype: Vec<u32>,
    nbrs: &'a [Vec<usize>],
    degree: Vec<u32>,
    set: Vec<usize>,
    fp: &'a mut Fingerprint,
}

impl Ctx<'_> {
    fn extend(&mut self, root: usize, mut ext: Vec<usize>) {
        self.emit();
        if self.set.len() == MAX_PATH {
            return;
        }
        while let Some(w) = ext.pop() {
            let mut next = ext.clone();
            for &u in &self.nbrs[w] {
                if u > root
                    && !self.set.contains(&u)
                    && !next.contains(&u)
                    && !self.set.iter().any(|&s| self.nbrs[s].contains(&u))
                {
                    next.push(u);
                }
            }
            self.set.push(w);
            self.extend(root, next);
            self.set.pop();
        }
    }

    /// Sets the bits of the current bond set.
    fn emit(&mut self) {
        let bonds = &self.mol.bonds;
        let mut atoms = 0u32;
        for &b in &self.set {
            let (u, v, _) = bonds[b];
            for a in [u as usize, v as usize] {
                if self.degree[a] == 0 {
                    atoms += 1;
                }
                self.degree[a] += 1;
            }
        }
        let mut hashes = [0u32; MAX_PATH + 1];
        let n = self.set.len();
        for (i, &b) in self.set.iter().enumerate() {
            let near = self
                .set
                .iter()
                .filter(|&&o| o != b && self.nbrs[b].contains(&o))
                .count();
            let (u, v, _) = bonds[b];
            let (mut a1, mut d1) = (self.inv[u as usize], self.degree[u as usize]);
            let (mut a2, mut d2) = (self.inv[v as usize], self.degree[v as usize]);
            if a1 < a2 || (a1 == a2 && d1 < d2) {
                std::mem::swap(&mut a1, &mut a2);
                std::mem::swap(&mut d1, &mut d2);
            }
            let mut h = near as u32;
            for x in [self.btype[b], a1, d1, a2, d2] {
                h = hash_combine(h, x);
            }
            hashes[i] = h;
        }
        let seed = if n == 1 {
            hashes[0]
        } else {
            let hs = &mut hashes[..n];
            hs.sort_unstable();
            let mut s = 0u32;
            for &h in hs.iter() {
                s = hash_combine(s, h);
            }
            hash_combine(s, atoms)
        };
        self.fp.set(seed as usize % FP_BITS);
        self.fp.set((mt4_first(seed) >> 1) as usize % FP_BITS);
        for &b in &self.set {
            let (u, v, _) = bonds[b];
            self.degree[u as usize] = 0;
            self.degree[v as usize] = 0;
        }
    }
}

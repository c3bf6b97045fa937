//! The per-block table (`blocks_runtime.json`): everything the environment, the proxy's input
//! graph and the fingerprint need about the 105 blocks, computed once with RDKit and shipped.
//!
//! | Field | Meaning |
//! |---|---|
//! | `blocks[i].smiles` | the block's SMILES (for people only) |
//! | `blocks[i].block_r` | attachment atoms: `block_r[0]` bonds to the existing molecule, `block_r[1..]` become stems; a repeated atom takes several bonds |
//! | `blocks[i].natoms` | heavy atoms |
//! | `blocks[i].true_block_idx` | index of the SMILES among the sorted distinct SMILES (72 "true blocks") |
//! | `blocks[i].atoms[a]` | `[Z, type_idx, aromatic, total_hs, hyb_code]` of the block alone |
//! | `blocks[i].bonds[j]` | `[begin, end, type_code]` |
//! | `blocks[i].atom_k[a][k]` | for a stem atom `a` with `k` junction bonds: `[H_k, hyb_base_k, hyb_conj_k, A_k, D_k]` |
//! | `stem_type_offset[t]` | first stem type of true block `t` (stem type = offset + atom) |
//! | `translation_table[b][a]` | the block with the SMILES of `b` that attaches through atom `a` (the paper's parent actions) |
//!
//! Codes: hybridisation 1 SP, 2 SP2, 3 SP3, 0 other; bonds 0 single, 1 double, 2 triple,
//! 3 aromatic.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use softgfn_core::{CoreError, Result};

use crate::NAME;

/// The embedded copy of `data/blocks_runtime.json`.
pub(crate) const EMBEDDED_TABLE: &[u8] = include_bytes!("../data/blocks_runtime.json");

/// Number of blocks of the paper's library (and of every flat action's block field).
pub const NUM_BLOCKS: usize = 105;

/// One atom of a block: `[Z, type_idx, aromatic, total_hs, hyb_code]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockAtom {
    /// Atomic number.
    pub z: u8,
    /// Element column of the proxy input (0 H, 1 C, 2 N, 3 O, 4 F, 5 other).
    pub type_idx: u8,
    /// Aromatic flag.
    pub aromatic: bool,
    /// Hydrogens of the atom in the block alone.
    pub total_hs: u8,
    /// Hybridisation code of the atom in the block alone.
    pub hyb: u8,
}

/// The values of a stem atom with `k` junction bonds: `[H_k, hyb_base_k, hyb_conj_k, A_k, D_k]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JunctionRow {
    /// Hydrogens.
    pub hs: u8,
    /// Hybridisation when no junction bond of the atom is conjugated.
    pub hyb_base: u8,
    /// Hybridisation when one is.
    pub hyb_conj: u8,
    /// Conjugation candidate with at most 3 substituents (`A`).
    pub acceptor: bool,
    /// Conjugation candidate with 2-3 substituents and a multiple or aromatic bond (`D`).
    pub donor: bool,
}

/// One block of the library.
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    /// SMILES (for people).
    pub smiles: String,
    /// Attachment atoms (`block_r`).
    pub block_r: Vec<usize>,
    /// True-block index (the SMILES class, `0..num_true_blocks`).
    pub true_block: usize,
    /// Atoms.
    pub atoms: Vec<BlockAtom>,
    /// Bonds `(begin, end, type_code)`.
    pub bonds: Vec<(usize, usize, u8)>,
    /// Rows per atom and junction count (`None` for atoms that are not stems).
    pub junction: Vec<Option<Vec<JunctionRow>>>,
    /// `translation[a]`: the block attaching through atom `a` (stem atoms only).
    pub translation: Vec<Option<usize>>,
}

impl Block {
    /// Number of heavy atoms.
    pub fn natoms(&self) -> usize {
        self.atoms.len()
    }

    /// Number of slots (entries of `block_r`).
    pub fn num_slots(&self) -> usize {
        self.block_r.len()
    }
}

/// The validated block table.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockTable {
    /// The blocks (exactly [`NUM_BLOCKS`]).
    pub blocks: Vec<Block>,
    /// `stem_type_offset` per true block (one more entry than true blocks).
    pub stem_type_offset: Vec<usize>,
    /// Number of true blocks (distinct SMILES).
    pub num_true_blocks: usize,
    /// Number of stem types (`stem_type_offset` last entry).
    pub num_stem_types: usize,
    /// Largest `block_r` length.
    pub max_slots: usize,
    /// Largest block size in atoms.
    pub max_block_atoms: usize,
}

#[derive(Deserialize)]
struct RawTable {
    num_blocks: usize,
    stem_type_offset: Vec<usize>,
    translation_table: BTreeMap<String, BTreeMap<String, usize>>,
    blocks: Vec<RawBlock>,
}

#[derive(Deserialize)]
struct RawBlock {
    smiles: String,
    block_r: Vec<usize>,
    natoms: usize,
    true_block_idx: usize,
    atoms: Vec<[i64; 5]>,
    bonds: Vec<[i64; 3]>,
    atom_k: BTreeMap<String, Vec<[i64; 5]>>,
}

fn table_error(source: &str, details: impl std::fmt::Display) -> CoreError {
    CoreError::Environment {
        env: NAME.into(),
        message: format!("block table {source}: {details}"),
    }
}

fn small(source: &str, what: &str, v: i64, max: i64) -> Result<u8> {
    if (0..=max).contains(&v) {
        Ok(v as u8)
    } else {
        Err(table_error(
            source,
            format!("{what} = {v}, expected an integer in 0..={max}"),
        ))
    }
}

impl BlockTable {
    /// The embedded table of the paper's 105 blocks.
    pub fn embedded() -> Self {
        Self::from_json(EMBEDDED_TABLE, "(embedded)").expect("the embedded block table is valid")
    }

    /// Reads and validates a table file.
    ///
    /// # Errors
    /// A missing or unreadable file, JSON that does not parse, or a table that fails validation;
    /// the message names the file and what was wrong.
    pub fn from_path(path: &Path) -> Result<Self> {
        let source = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| {
            table_error(
                &source,
                format!(
                    "cannot be read ({e}); expected the blocks_runtime.json of the sehfrag data"
                ),
            )
        })?;
        Self::from_json(&bytes, &source)
    }

    /// Parses and validates table JSON; `source` names it in errors.
    ///
    /// # Errors
    /// Malformed JSON or an inconsistent table.
    pub fn from_json(bytes: &[u8], source: &str) -> Result<Self> {
        let raw: RawTable = serde_json::from_slice(bytes).map_err(|e| {
            table_error(
                source,
                format!("is not a valid blocks_runtime.json ({e}); expected the per-block table of spec section 7.1"),
            )
        })?;
        if raw.num_blocks != NUM_BLOCKS || raw.blocks.len() != NUM_BLOCKS {
            return Err(table_error(
                source,
                format!(
                    "has {} blocks (num_blocks = {}), expected {NUM_BLOCKS}",
                    raw.blocks.len(),
                    raw.num_blocks
                ),
            ));
        }
        let num_true_blocks = raw.stem_type_offset.len().saturating_sub(1);
        if num_true_blocks == 0 || raw.stem_type_offset.windows(2).any(|w| w[0] > w[1]) {
            return Err(table_error(
                source,
                "stem_type_offset must be a non-decreasing list of at least 2 entries",
            ));
        }
        let mut blocks = Vec::with_capacity(NUM_BLOCKS);
        for (i, rb) in raw.blocks.into_iter().enumerate() {
            blocks.push(parse_block(
                source,
                i,
                rb,
                num_true_blocks,
                &raw.translation_table,
            )?);
        }
        let max_slots = blocks.iter().map(Block::num_slots).max().unwrap_or(0);
        let max_block_atoms = blocks.iter().map(Block::natoms).max().unwrap_or(0);
        Ok(Self {
            num_stem_types: *raw.stem_type_offset.last().unwrap_or(&0),
            stem_type_offset: raw.stem_type_offset,
            num_true_blocks,
            max_slots,
            max_block_atoms,
            blocks,
        })
    }

    /// The stem type of atom `atom` of block `block` (the policy network's stem/bond vocabulary,
    /// spec section 4).
    pub fn stem_type(&self, block: usize, atom: usize) -> usize {
        self.stem_type_offset[self.blocks[block].true_block] + atom
    }
}

fn parse_block(
    source: &str,
    i: usize,
    rb: RawBlock,
    num_true_blocks: usize,
    translation: &BTreeMap<String, BTreeMap<String, usize>>,
) -> Result<Block> {
    let at = |what: &str| format!("block {i} ({}): {what}", rb.smiles);
    let n = rb.atoms.len();
    if n == 0 || n != rb.natoms {
        return Err(table_error(
            source,
            at(&format!(
                "natoms = {} but {} atoms are listed",
                rb.natoms, n
            )),
        ));
    }
    if rb.block_r.is_empty() || rb.block_r.len() > 16 || rb.block_r.iter().any(|&a| a >= n) {
        return Err(table_error(
            source,
            at(&format!(
                "block_r {:?} must be 1 to 16 atom indices below {n}",
                rb.block_r
            )),
        ));
    }
    if rb.true_block_idx >= num_true_blocks {
        return Err(table_error(
            source,
            at(&format!(
                "true_block_idx {} is not below the {num_true_blocks} true blocks",
                rb.true_block_idx
            )),
        ));
    }
    let mut atoms = Vec::with_capacity(n);
    for a in &rb.atoms {
        atoms.push(BlockAtom {
            z: small(source, &at("atomic number"), a[0], 118)?,
            type_idx: small(source, &at("type_idx"), a[1], 5)?,
            aromatic: small(source, &at("aromatic"), a[2], 1)? == 1,
            total_hs: small(source, &at("total_hs"), a[3], 8)?,
            hyb: small(source, &at("hyb_code"), a[4], 3)?,
        });
    }
    let mut bonds = Vec::with_capacity(rb.bonds.len());
    for b in &rb.bonds {
        let u = small(source, &at("bond atom"), b[0], n as i64 - 1)? as usize;
        let v = small(source, &at("bond atom"), b[1], n as i64 - 1)? as usize;
        if u == v {
            return Err(table_error(source, at(&format!("bond {u}-{v} is a loop"))));
        }
        bonds.push((u, v, small(source, &at("bond type"), b[2], 3)?));
    }
    let mut junction = vec![None; n];
    let mut trans = vec![None; n];
    let row_of = translation.get(&i.to_string());
    for &a in &rb.block_r {
        if junction[a].is_some() {
            continue;
        }
        let mult = rb.block_r.iter().filter(|&&x| x == a).count();
        let rows = rb.atom_k.get(&a.to_string()).ok_or_else(|| {
            table_error(source, at(&format!("atom_k has no rows for stem atom {a}")))
        })?;
        if rows.len() != mult + 1 {
            return Err(table_error(
                source,
                at(&format!(
                    "atom_k of stem atom {a} has {} rows, expected {} (k = 0..={mult})",
                    rows.len(),
                    mult + 1
                )),
            ));
        }
        let mut parsed = Vec::with_capacity(rows.len());
        for r in rows {
            parsed.push(JunctionRow {
                hs: small(source, &at("H_k"), r[0], 8)?,
                hyb_base: small(source, &at("hyb_base_k"), r[1], 3)?,
                hyb_conj: small(source, &at("hyb_conj_k"), r[2], 3)?,
                acceptor: small(source, &at("A_k"), r[3], 1)? == 1,
                donor: small(source, &at("D_k"), r[4], 1)? == 1,
            });
        }
        junction[a] = Some(parsed);
        let t = row_of
            .and_then(|m| m.get(&a.to_string()))
            .copied()
            .ok_or_else(|| {
                table_error(
                    source,
                    at(&format!("translation_table has no entry for stem atom {a}")),
                )
            })?;
        if t >= NUM_BLOCKS {
            return Err(table_error(
                source,
                at(&format!(
                    "translation_table maps atom {a} to block {t}, expected < {NUM_BLOCKS}"
                )),
            ));
        }
        trans[a] = Some(t);
    }
    Ok(Block {
        smiles: rb.smiles,
        block_r: rb.block_r,
        true_block: rb.true_block_idx,
        atoms,
        bonds,
        junction,
        translation: trans,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_table_has_the_paper_library() {
        let t = BlockTable::embedded();
        assert_eq!(t.blocks.len(), 105);
        assert_eq!(t.num_true_blocks, 72);
        assert_eq!(t.num_stem_types, 214);
        assert_eq!(t.max_slots, 6);
        // Block 2 `CO` attaches through O and has three stems on C.
        assert_eq!(t.blocks[2].block_r, vec![1, 0, 0, 0]);
        assert_eq!(t.blocks[2].translation[0], Some(1));
        // Quirk Q4: block 95 uses atom 3, type 6 aliases the next true block.
        assert_eq!(t.stem_type(95, 3), 6);
    }
}

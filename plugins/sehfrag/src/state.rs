//! The state row of `sehfrag` and the molecule it describes.
//!
//! A state is the paper's construction record (spec 1.2): the blocks in the order they were
//! added, each non-first block attached through its own `block_r[0]` atom to one **slot** (an
//! entry of `block_r`) of an earlier block. The row has `1 + 3 * max_blocks` values:
//!
//! | Position | Value |
//! |---|---|
//! | 0 | number of blocks `n` (0 for the empty state `s0`) |
//! | `1 + 3j` | block index (0..105) of the block at position `j`, or -1 when `j >= n` |
//! | `2 + 3j` | position of the block it is attached to (`< j`), or -1 for the first block |
//! | `3 + 3j` | the slot of that block it is attached at (an index into its `block_r`), or -1 |
//!
//! The open stems are the free slots, listed as the paper's code lists them: block by block in
//! insertion order, each block's slots `1..` in `block_r` order, and for the first block its slot
//! 0 (`block_r[0]`) last. Slots make repeated attachment atoms distinct (block 2 `CO`,
//! `block_r = [1, 0, 0, 0]`, has three slots on its carbon): the `k`-th stem of the paper's
//! list is the `k`-th free slot here, so the paper's flat actions `1 + stem * 105 + block` apply
//! unchanged.

use softgfn_core::{CoreError, Result, StateValue};

use crate::NAME;
use crate::table::{BlockTable, NUM_BLOCKS};

/// Largest `max_blocks` (the row and the stem list stay small).
pub const MAX_BLOCKS_LIMIT: usize = 16;

/// Largest number of open stems of any state (`6 + 14 * 4` with 16 blocks of 6 slots).
pub const MAX_STEMS_LIMIT: usize = 64;

/// A parsed state: the construction record with its slots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mol {
    /// Number of blocks.
    pub n: usize,
    /// Block index per position.
    pub block: [u8; MAX_BLOCKS_LIMIT],
    /// Parent position per position (`u8::MAX` for the first block).
    pub parent: [u8; MAX_BLOCKS_LIMIT],
    /// Slot of the parent per position.
    pub pslot: [u8; MAX_BLOCKS_LIMIT],
    /// Used slots per position (bit `s` set when slot `s` carries a junction).
    pub used: [u16; MAX_BLOCKS_LIMIT],
    /// Junction count per position (its degree in the block tree).
    pub degree: [u8; MAX_BLOCKS_LIMIT],
}

/// No parent.
pub const NONE: u8 = u8::MAX;

/// The open stems of a state, `(position, slot)` in the paper's order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stems {
    len: usize,
    items: [(u8, u8); MAX_STEMS_LIMIT],
}

impl Stems {
    /// The stems.
    pub fn as_slice(&self) -> &[(u8, u8)] {
        &self.items[..self.len]
    }

    /// Number of stems.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Index of the stem `(position, slot)`.
    pub fn index_of(&self, pos: usize, slot: usize) -> Option<usize> {
        self.as_slice()
            .iter()
            .position(|&(p, s)| p as usize == pos && s as usize == slot)
    }
}

impl Mol {
    /// The empty molecule (`s0`).
    pub fn empty() -> Self {
        Self {
            n: 0,
            block: [0; MAX_BLOCKS_LIMIT],
            parent: [NONE; MAX_BLOCKS_LIMIT],
            pslot: [NONE; MAX_BLOCKS_LIMIT],
            used: [0; MAX_BLOCKS_LIMIT],
            degree: [0; MAX_BLOCKS_LIMIT],
        }
    }

    /// Width of a row for `max_blocks`.
    pub fn width(max_blocks: usize) -> usize {
        1 + 3 * max_blocks
    }

    /// Appends block `b` at `(pos, slot)` (or as the first block); no checks.
    pub fn push(&mut self, b: usize, at: Option<(usize, usize)>) {
        let j = self.n;
        self.block[j] = b as u8;
        self.used[j] = 0;
        self.degree[j] = 0;
        match at {
            None => {
                self.parent[j] = NONE;
                self.pslot[j] = NONE;
            }
            Some((p, s)) => {
                self.parent[j] = p as u8;
                self.pslot[j] = s as u8;
                self.used[p] |= 1 << s;
                self.used[j] |= 1;
                self.degree[p] += 1;
                self.degree[j] += 1;
            }
        }
        self.n += 1;
    }

    /// Parses and validates a row.
    ///
    /// # Errors
    /// [`CoreError::InvalidState`] naming what is wrong.
    pub fn parse(
        table: &BlockTable,
        allowed: &[bool; NUM_BLOCKS],
        max_blocks: usize,
        row: &[StateValue],
    ) -> Result<Self> {
        let bad = |reason: String| CoreError::InvalidState {
            env: NAME.into(),
            state: row.to_vec(),
            reason,
        };
        let n = row[0];
        if n < 0 || n as usize > max_blocks {
            return Err(bad(format!(
                "the block count {n} is outside 0..={max_blocks}"
            )));
        }
        let n = n as usize;
        let mut m = Self::empty();
        for j in 0..max_blocks {
            let (b, p, s) = (row[1 + 3 * j], row[2 + 3 * j], row[3 + 3 * j]);
            if j >= n {
                if (b, p, s) != (-1, -1, -1) {
                    return Err(bad(format!(
                        "position {j} is past the {n} blocks but holds ({b}, {p}, {s}); expected (-1, -1, -1)"
                    )));
                }
                continue;
            }
            if b < 0 || b as usize >= NUM_BLOCKS || !allowed[b as usize] {
                return Err(bad(format!(
                    "position {j} holds block {b}, which is not in the block library"
                )));
            }
            let b = b as usize;
            if j == 0 {
                if (p, s) != (-1, -1) {
                    return Err(bad(format!(
                        "the first block is attached to ({p}, {s}); expected (-1, -1)"
                    )));
                }
                m.push(b, None);
                continue;
            }
            if p < 0 || p as usize >= j {
                return Err(bad(format!(
                    "block {j} is attached to position {p}; expected an earlier block (0..{j})"
                )));
            }
            let p = p as usize;
            let ns = table.blocks[m.block[p] as usize].num_slots() as i32;
            let first = if p == 0 { 0 } else { 1 };
            if s < first || s >= ns || m.used[p] & (1 << s) != 0 {
                return Err(bad(format!(
                    "block {j} is attached at slot {s} of position {p}, which is not a free slot \
                     of that block (slots {first}..{ns}, minus those in use)"
                )));
            }
            m.push(b, Some((p, s as usize)));
        }
        Ok(m)
    }

    /// Writes the row.
    pub fn write(&self, max_blocks: usize, out: &mut [StateValue]) {
        out[0] = self.n as StateValue;
        for j in 0..max_blocks {
            let v = if j < self.n {
                let p = |x: u8| if x == NONE { -1 } else { StateValue::from(x) };
                [
                    StateValue::from(self.block[j]),
                    p(self.parent[j]),
                    p(self.pslot[j]),
                ]
            } else {
                [-1, -1, -1]
            };
            out[1 + 3 * j..4 + 3 * j].copy_from_slice(&v);
        }
    }

    /// The open stems in the paper's order.
    pub fn stems(&self, table: &BlockTable) -> Stems {
        let mut st = Stems {
            len: 0,
            items: [(0, 0); MAX_STEMS_LIMIT],
        };
        for j in 0..self.n {
            let ns = table.blocks[self.block[j] as usize].num_slots();
            let root = j == 0;
            let order = (1..ns).chain(root.then_some(0));
            for s in order {
                if self.used[j] & (1 << s) == 0 {
                    st.items[st.len] = (j as u8, s as u8);
                    st.len += 1;
                }
            }
        }
        st
    }

    /// Whether the position is a leaf (degree 1, or the only block).
    pub fn is_leaf(&self, j: usize) -> bool {
        j < self.n && (self.n == 1 || self.degree[j] == 1)
    }

    /// Number of leaf blocks (1 for a single block, 0 for the empty state): the paper's number
    /// of parents.
    pub fn num_leaves(&self) -> usize {
        (0..self.n).filter(|&j| self.is_leaf(j)).count()
    }

    /// The molecule without its last block.
    pub fn without_last(&self) -> Self {
        let mut m = self.clone();
        let j = m.n - 1;
        if m.parent[j] != NONE {
            let p = m.parent[j] as usize;
            m.used[p] &= !(1 << m.pslot[j]);
            m.degree[p] -= 1;
        }
        m.n -= 1;
        m
    }

    /// Removes the leaf at `i` and re-indexes the later blocks (the paper's `delete_blocks`).
    /// Returns the parent and the slot freed on it as `(position, slot)` in the parent, or
    /// `None` for a single block. When `i` is the first block, its only neighbour becomes the
    /// first block and the freed slot is that block's slot 0.
    pub fn remove_leaf(&self, i: usize) -> (Self, Option<(usize, usize)>) {
        let mut m = Self::empty();
        let mut new_pos = [NONE; MAX_BLOCKS_LIMIT];
        for j in 0..self.n {
            if j != i {
                new_pos[j] = m.n as u8;
                let b = self.block[j] as usize;
                let at = if self.parent[j] == NONE || self.parent[j] as usize == i {
                    None
                } else {
                    Some((
                        new_pos[self.parent[j] as usize] as usize,
                        self.pslot[j] as usize,
                    ))
                };
                m.push(b, at);
            }
        }
        let freed = if self.n == 1 {
            None
        } else if self.parent[i] == NONE {
            // The first block was the leaf: its child (position 1) is the new first block.
            Some((0, 0))
        } else {
            Some((
                new_pos[self.parent[i] as usize] as usize,
                self.pslot[i] as usize,
            ))
        };
        (m, freed)
    }

    /// The atom of the junction on each side of the block at `j >= 1`: `(parent atom, own atom)`.
    pub fn junction_atoms(&self, table: &BlockTable, j: usize) -> (usize, usize) {
        let p = self.parent[j] as usize;
        let pa = table.blocks[self.block[p] as usize].block_r[self.pslot[j] as usize];
        let ca = table.blocks[self.block[j] as usize].block_r[0];
        (pa, ca)
    }

    /// First atom index of each position in the assembled molecule, and the total.
    pub fn atom_offsets(&self, table: &BlockTable) -> ([usize; MAX_BLOCKS_LIMIT], usize) {
        let mut off = [0; MAX_BLOCKS_LIMIT];
        let mut t = 0;
        for j in 0..self.n {
            off[j] = t;
            t += table.blocks[self.block[j] as usize].natoms();
        }
        (off, t)
    }
}

/// The flat action `1 + stem * 105 + block` (0 is stop).
#[inline]
pub fn flat_action(stem: usize, block: usize) -> u32 {
    (1 + stem * NUM_BLOCKS + block) as u32
}

/// `(stem, block)` of a non-stop flat action.
#[inline]
pub fn split_action(action: u32) -> (usize, usize) {
    let a = action as usize - 1;
    (a / NUM_BLOCKS, a % NUM_BLOCKS)
}

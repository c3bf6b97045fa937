//! The `sehfrag` environment: the paper's block MDP over the state rows of [`crate::state`].

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use softgfn_core::registry::parse_params;
use softgfn_core::{
    CoreError, EnvSpec, Environment, GraphLayout, Monitor, Readable, Result, StateEquivalence,
    StateValue,
};

use crate::NAME;
use crate::assemble::Molecule;
use crate::canon::{Symmetries, canonical_key};
use crate::config::{SehfragConfig, invalid};
use crate::proxy::{Proxy, ProxyScratch};
use crate::state::{MAX_STEMS_LIMIT, Mol, Stems, flat_action, split_action};
use crate::table::{BlockTable, NUM_BLOCKS};

/// Molecules scored per proxy batch.
const PROXY_BATCH: usize = 32;

/// The sEH fragment-block environment (see the crate documentation).
#[derive(Clone, Debug)]
pub struct Sehfrag {
    config: SehfragConfig,
    spec: EnvSpec,
    table: Arc<BlockTable>,
    proxy: Arc<Proxy>,
    sym: Arc<Symmetries>,
    library: [bool; NUM_BLOCKS],
    max_stems: usize,
    cache: Arc<Mutex<HashMap<Vec<StateValue>, f64>>>,
}

impl Sehfrag {
    /// Builds the environment.
    ///
    /// # Errors
    /// Invalid parameters, an unreadable or invalid table or weights file, or a block library
    /// that is not closed under the translation table.
    pub fn new(config: SehfragConfig) -> Result<Self> {
        config.validate()?;
        let table = match &config.table_path {
            Some(p) => BlockTable::from_path(Path::new(p))?,
            None => BlockTable::embedded(),
        };
        let proxy = match &config.weights_path {
            Some(p) => Proxy::from_path(Path::new(p))?,
            None => Proxy::embedded(),
        };
        let library = config.library();
        for b in (0..NUM_BLOCKS).filter(|&b| library[b]) {
            for t in table.blocks[b].translation.iter().flatten() {
                if !library[*t] {
                    return Err(invalid(
                        "blocks",
                        format!("{:?}", config.blocks),
                        &format!(
                            "a library closed under the translation table: block {b} needs block \
                             {t} (the parent action that re-adds it as a first block)"
                        ),
                    ));
                }
            }
        }
        let max_slots = (0..NUM_BLOCKS)
            .filter(|&b| library[b])
            .map(|b| table.blocks[b].num_slots())
            .max()
            .unwrap_or(1);
        let max_stems = (max_slots + (config.max_blocks - 2) * max_slots.saturating_sub(2)).max(1);
        if max_stems > MAX_STEMS_LIMIT {
            return Err(invalid(
                "max_blocks",
                config.max_blocks,
                &format!(
                    "fewer blocks: with blocks of {max_slots} slots a molecule would have up to \
                     {max_stems} open stems, more than {MAX_STEMS_LIMIT}"
                ),
            ));
        }
        let mb = config.max_blocks;
        let spec = EnvSpec {
            name: NAME.into(),
            state_width: Mol::width(mb),
            num_actions: 1 + max_stems * NUM_BLOCKS,
            num_backward_actions: mb,
            feature_dim: one_hot_dim(mb, table.max_slots, max_stems) + graph_dim(mb, max_stems),
            max_trajectory_length: mb,
            exit_action: Some(0),
        };
        Ok(Self {
            sym: Arc::new(Symmetries::of(&table)),
            table: Arc::new(table),
            proxy: Arc::new(proxy),
            library,
            max_stems,
            spec,
            cache: Arc::new(Mutex::new(HashMap::new())),
            config,
        })
    }

    /// Builds it from JSON parameters.
    ///
    /// # Errors
    /// Unknown fields, wrong types, or any error of [`Sehfrag::new`].
    pub fn from_params(params: &serde_json::Value) -> Result<Self> {
        Self::new(parse_params(NAME, params)?)
    }

    /// The configuration.
    pub fn config(&self) -> &SehfragConfig {
        &self.config
    }

    /// The block table.
    pub fn table(&self) -> &BlockTable {
        &self.table
    }

    /// The proxy.
    pub fn proxy(&self) -> &Proxy {
        &self.proxy
    }

    /// Largest number of open stems of a non-terminal state (the action space is
    /// `1 + max_stems * 105`).
    pub fn max_stems(&self) -> usize {
        self.max_stems
    }

    /// Whether block `b` is in the library.
    pub fn in_library(&self, b: usize) -> bool {
        b < NUM_BLOCKS && self.library[b]
    }

    /// Parses and validates one state row.
    ///
    /// # Errors
    /// [`CoreError::InvalidState`] naming what is wrong.
    pub fn parse(&self, row: &[StateValue]) -> Result<Mol> {
        if row.len() != self.spec.state_width {
            return Err(CoreError::BufferLength {
                what: format!("state of {NAME}"),
                expected: self.spec.state_width,
                found: row.len(),
            });
        }
        Mol::parse(&self.table, &self.library, self.config.max_blocks, row)
    }

    /// The row of a molecule.
    pub fn row_of(&self, mol: &Mol) -> Vec<StateValue> {
        let mut r = vec![0; self.spec.state_width];
        mol.write(self.config.max_blocks, &mut r);
        r
    }

    /// Whether a molecule ends by itself: no open stem, or `max_blocks` blocks.
    pub fn is_auto_terminal(&self, mol: &Mol) -> bool {
        mol.n > 0 && (mol.n == self.config.max_blocks || mol.stems(&self.table).is_empty())
    }

    /// The paper's number of parents of a state (its leaf blocks; 1 for a single block), the
    /// denominator of its uniform `P_B` (spec 1.5).
    ///
    /// # Errors
    /// An invalid row.
    pub fn n_parents(&self, row: &[StateValue]) -> Result<usize> {
        Ok(self.parse(row)?.num_leaves())
    }

    /// The valid backward actions (leaf positions) of a molecule: every leaf, except under
    /// quirk Q1 at an automatic end, where the count is the previous state's.
    fn backward_valid(&self, mol: &Mol, out: &mut [bool]) {
        out.fill(false);
        for j in 0..mol.n {
            out[j] = mol.is_leaf(j);
        }
        if self.config.stale_parent_count && mol.n >= 2 && self.is_auto_terminal(mol) {
            let stale = mol.without_last().num_leaves();
            if stale < mol.num_leaves() {
                // Drop the first leaf that is not the block just added.
                if let Some(j) = (0..mol.n - 1).find(|&j| out[j]) {
                    out[j] = false;
                }
            }
        }
    }

    /// The assembled proxy input of a state.
    ///
    /// # Errors
    /// An invalid row.
    pub fn molecule(&self, row: &[StateValue]) -> Result<Molecule> {
        Ok(Molecule::assemble(&self.table, &self.parse(row)?))
    }

    /// Proxy scores of states with at least 2 blocks, batched, through the score cache.
    ///
    /// # Errors
    /// An invalid row or one with fewer than 2 blocks.
    pub fn proxy_scores(&self, states: &[StateValue], out: &mut [f64]) -> Result<()> {
        let w = self.spec.state_width;
        let rows = self.spec.rows_of("states", states)?;
        self.spec.check_len("proxy scores", rows, 1, out.len())?;
        let mut missing = Vec::new();
        {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            for (r, row) in states.chunks_exact(w).enumerate() {
                match cache.get(row) {
                    Some(&s) => out[r] = s,
                    None => missing.push(r),
                }
            }
        }
        // Assemble the missing molecules; identical proxy inputs are scored once.
        let mut unique: Vec<Molecule> = Vec::new();
        let mut index: HashMap<Vec<u32>, usize> = HashMap::new();
        let mut which = Vec::with_capacity(missing.len());
        for &r in &missing {
            let row = &states[r * w..(r + 1) * w];
            let mol = self.parse(row)?;
            if mol.n < 2 {
                return Err(CoreError::InvalidState {
                    env: NAME.into(),
                    state: row.to_vec(),
                    reason: "the proxy scores molecules of at least 2 blocks".into(),
                });
            }
            let m = Molecule::assemble(&self.table, &mol);
            let next = unique.len();
            let k = *index.entry(m.key()).or_insert(next);
            if k == next {
                unique.push(m);
            }
            which.push(k);
        }
        let mut scores = vec![0.0; unique.len()];
        let mut scratch = ProxyScratch::default();
        for (mols, out) in unique
            .chunks(PROXY_BATCH)
            .zip(scores.chunks_mut(PROXY_BATCH))
        {
            let refs: Vec<&Molecule> = mols.iter().collect();
            self.proxy.score_batch(&refs, &mut scratch, out);
        }
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() + missing.len() > self.config.score_cache {
            cache.clear();
        }
        for (&r, &k) in missing.iter().zip(&which) {
            out[r] = scores[k];
            if missing.len() <= self.config.score_cache {
                cache.insert(states[r * w..(r + 1) * w].to_vec(), scores[k]);
            }
        }
        Ok(())
    }

    /// `log R` of a proxy score: `reward_exp * ln(max(s, r_min) / reward_norm)`.
    pub fn log_reward_of_score(&self, score: f64) -> f64 {
        let c = &self.config;
        c.reward_exp * (score.max(c.r_min) / c.reward_norm).ln()
    }

    /// The canonical key of a state's molecule (see [`crate::canon`]).
    ///
    /// # Errors
    /// An invalid row.
    pub fn canonical_key_of(&self, row: &[StateValue]) -> Result<Vec<StateValue>> {
        Ok(canonical_key(
            &self.table,
            &self.sym,
            &self.parse(row)?,
            false,
        ))
    }

    /// The canonical key of a state's molecule with its open stems: equal keys give equal
    /// proxy inputs up to the order of the atoms.
    ///
    /// # Errors
    /// An invalid row.
    pub fn canonical_key_with_stems(&self, row: &[StateValue]) -> Result<Vec<StateValue>> {
        Ok(canonical_key(
            &self.table,
            &self.sym,
            &self.parse(row)?,
            true,
        ))
    }

    /// Writes the graph fields of [`Environment::graph_layout`] for one molecule: the paper's
    /// `mol2graph` (spec 4). Node `j` is the block at position `j` with its true-block index;
    /// the edge of position `j >= 1` runs from its parent to it, typed by the stem types of the
    /// two junction atoms; the stems are the open stems in the paper's order with their stem
    /// types. The empty state is one node of type `num_true_blocks` with one stem of type
    /// `num_stem_types` (the paper's dummy), and a molecule without open stems has that dummy
    /// stem on node 0. Fields hold `value + 1`, 0 when absent.
    fn write_graph(&self, mol: &Mol, stems: &Stems, out: &mut [f32]) {
        let t = &self.table;
        let mb = self.config.max_blocks;
        let (nodes, rest) = out.split_at_mut(mb);
        let (edges, stem_out) = rest.split_at_mut(4 * (mb - 1));
        let code = |v: usize| (v + 1) as f32;
        if mol.n == 0 {
            nodes[0] = code(t.num_true_blocks);
        }
        for j in 0..mol.n {
            let b = mol.block[j] as usize;
            nodes[j] = code(t.blocks[b].true_block);
            if j > 0 {
                let p = mol.parent[j] as usize;
                let (pa, ca) = mol.junction_atoms(t, j);
                let e = &mut edges[4 * (j - 1)..4 * j];
                e[0] = code(p);
                e[1] = code(j);
                e[2] = code(t.stem_type(mol.block[p] as usize, pa));
                e[3] = code(t.stem_type(b, ca));
            }
        }
        if stems.is_empty() {
            stem_out[0] = code(0);
            stem_out[1] = code(t.num_stem_types);
        }
        for (k, &(p, s)) in stems.as_slice().iter().enumerate().take(self.max_stems) {
            let atom = t.blocks[mol.block[p as usize] as usize].block_r[s as usize];
            stem_out[2 * k] = code(p as usize);
            stem_out[2 * k + 1] = code(t.stem_type(mol.block[p as usize] as usize, atom));
        }
    }

    fn check_rows(
        &self,
        what: &str,
        states: &[StateValue],
        per_row: usize,
        out: usize,
    ) -> Result<usize> {
        let rows = self.spec.rows_of(what, states)?;
        self.spec.check_len(what, rows, per_row, out)?;
        Ok(rows)
    }

    fn invalid_action(&self, row: &[StateValue], action: u32, reason: String) -> CoreError {
        CoreError::InvalidAction {
            env: NAME.into(),
            state: row.to_vec(),
            action,
            reason,
        }
    }

    fn forward_row(&self, mol: &Mol, out: &mut [bool]) {
        out.fill(false);
        if self.is_auto_terminal(mol) {
            return;
        }
        out[0] = mol.n >= self.config.min_blocks;
        let stems = if mol.n == 0 {
            1
        } else {
            mol.stems(&self.table).len()
        };
        for k in 0..stems {
            for b in 0..NUM_BLOCKS {
                out[flat_action(k, b) as usize] = self.library[b];
            }
        }
    }
}

impl Environment for Sehfrag {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn params(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).unwrap_or(serde_json::Value::Null)
    }

    fn initial_state(&self, out: &mut [StateValue]) {
        Mol::empty().write(self.config.max_blocks, out);
    }

    fn forward_masks(&self, states: &[StateValue], out: &mut [bool]) -> Result<()> {
        let na = self.spec.num_actions;
        self.check_rows("forward masks", states, na, out.len())?;
        for (row, o) in states
            .chunks_exact(self.spec.state_width)
            .zip(out.chunks_exact_mut(na))
        {
            self.forward_row(&self.parse(row)?, o);
        }
        Ok(())
    }

    fn backward_masks(&self, states: &[StateValue], out: &mut [bool]) -> Result<()> {
        let nb = self.spec.num_backward_actions;
        self.check_rows("backward masks", states, nb, out.len())?;
        for (row, o) in states
            .chunks_exact(self.spec.state_width)
            .zip(out.chunks_exact_mut(nb))
        {
            self.backward_valid(&self.parse(row)?, o);
        }
        Ok(())
    }

    fn step(
        &self,
        states: &[StateValue],
        actions: &[u32],
        next: &mut [StateValue],
        backward_actions: &mut [u32],
    ) -> Result<()> {
        let w = self.spec.state_width;
        let rows = self.check_rows("step states", states, 1, actions.len())?;
        self.spec
            .check_len("step next states", rows, w, next.len())?;
        self.spec
            .check_len("step backward actions", rows, 1, backward_actions.len())?;
        for r in 0..rows {
            let row = &states[r * w..(r + 1) * w];
            let a = actions[r];
            let mut mol = self.parse(row)?;
            if a == 0 {
                return Err(self.invalid_action(
                    row,
                    a,
                    "the stop action ends the trajectory; it has no next state".into(),
                ));
            }
            if a as usize >= self.spec.num_actions {
                return Err(self.invalid_action(
                    row,
                    a,
                    format!("actions are 0..{}", self.spec.num_actions),
                ));
            }
            if self.is_auto_terminal(&mol) {
                return Err(self.invalid_action(
                    row,
                    a,
                    "the molecule is complete (no open stem, or max_blocks blocks)".into(),
                ));
            }
            let (stem, b) = split_action(a);
            if !self.library[b] {
                return Err(self.invalid_action(
                    row,
                    a,
                    format!("block {b} is not in the block library"),
                ));
            }
            if mol.n == 0 {
                if stem != 0 {
                    return Err(self.invalid_action(
                        row,
                        a,
                        "the empty state has one stem (0)".into(),
                    ));
                }
                mol.push(b, None);
            } else {
                let stems = mol.stems(&self.table);
                let Some(&(p, s)) = stems.as_slice().get(stem) else {
                    return Err(self.invalid_action(
                        row,
                        a,
                        format!(
                            "stem {stem} does not exist; the state has {} open stems",
                            stems.len()
                        ),
                    ));
                };
                mol.push(b, Some((p as usize, s as usize)));
            }
            mol.write(self.config.max_blocks, &mut next[r * w..(r + 1) * w]);
            backward_actions[r] = (mol.n - 1) as u32;
        }
        Ok(())
    }

    fn backward_step(
        &self,
        states: &[StateValue],
        backward_actions: &[u32],
        prev: &mut [StateValue],
        forward_actions: &mut [u32],
    ) -> Result<()> {
        let w = self.spec.state_width;
        let rows = self.check_rows("backward_step states", states, 1, backward_actions.len())?;
        self.spec
            .check_len("backward_step parents", rows, w, prev.len())?;
        self.spec.check_len(
            "backward_step forward actions",
            rows,
            1,
            forward_actions.len(),
        )?;
        let mut valid = vec![false; self.spec.num_backward_actions];
        for r in 0..rows {
            let row = &states[r * w..(r + 1) * w];
            let i = backward_actions[r] as usize;
            let mol = self.parse(row)?;
            self.backward_valid(&mol, &mut valid);
            if valid.get(i) != Some(&true) {
                return Err(self.invalid_action(
                    row,
                    i as u32,
                    "a backward action removes a leaf block: its position must be a valid backward action".into(),
                ));
            }
            let (parent, freed) = mol.remove_leaf(i);
            let removed = mol.block[i] as usize;
            let a = match freed {
                None => flat_action(0, removed),
                Some((p, s)) => {
                    let block = if mol.parent[i] == crate::state::NONE {
                        // The first block comes back through the atom that held its neighbour
                        // (the paper's translation table).
                        let root_atom = self.table.blocks[removed].block_r[mol.pslot[1] as usize];
                        self.table.blocks[removed].translation[root_atom]
                            .expect("stem atoms have a translation")
                    } else {
                        removed
                    };
                    let stem = parent
                        .stems(&self.table)
                        .index_of(p, s)
                        .expect("the freed slot is an open stem of the parent");
                    flat_action(stem, block)
                }
            };
            parent.write(self.config.max_blocks, &mut prev[r * w..(r + 1) * w]);
            forward_actions[r] = a;
        }
        Ok(())
    }

    fn log_reward(&self, states: &[StateValue], out: &mut [f64]) -> Result<()> {
        self.proxy_scores(states, out)?;
        for v in out.iter_mut() {
            *v = self.log_reward_of_score(*v);
        }
        Ok(())
    }

    fn encode(&self, states: &[StateValue], out: &mut [f32]) -> Result<()> {
        let fd = self.spec.feature_dim;
        self.check_rows("features", states, fd, out.len())?;
        let mb = self.config.max_blocks;
        let ms = self.table.max_slots;
        let per_block = NUM_BLOCKS + mb + ms;
        for (row, o) in states
            .chunks_exact(self.spec.state_width)
            .zip(out.chunks_exact_mut(fd))
        {
            let mol = self.parse(row)?;
            o.fill(0.0);
            for j in 0..mol.n {
                let f = &mut o[j * per_block..(j + 1) * per_block];
                f[mol.block[j] as usize] = 1.0;
                if j > 0 {
                    f[NUM_BLOCKS + mol.parent[j] as usize] = 1.0;
                    f[NUM_BLOCKS + mb + mol.pslot[j] as usize] = 1.0;
                }
            }
            let base = mb * per_block;
            let stems = mol.stems(&self.table);
            for (k, &(p, s)) in stems.as_slice().iter().enumerate().take(self.max_stems) {
                let f = &mut o[base + k * (mb + ms)..base + (k + 1) * (mb + ms)];
                f[p as usize] = 1.0;
                f[mb + s as usize] = 1.0;
            }
            let graph_at = one_hot_dim(mb, ms, self.max_stems);
            self.write_graph(&mol, &stems, &mut o[graph_at..]);
        }
        Ok(())
    }

    fn graph_layout(&self) -> Option<GraphLayout> {
        let mb = self.config.max_blocks;
        Some(GraphLayout {
            offset: one_hot_dim(mb, self.table.max_slots, self.max_stems),
            max_nodes: mb,
            node_types: self.table.num_true_blocks + 1,
            max_edges: mb - 1,
            edge_types: self.table.num_stem_types,
            max_stems: self.max_stems,
            stem_types: self.table.num_stem_types + 1,
            stem_actions: NUM_BLOCKS,
            graph_actions: 1,
            node_backward_actions: true,
        })
    }

    fn as_state_equivalence(&self) -> Option<&dyn StateEquivalence> {
        Some(self)
    }

    fn as_readable(&self) -> Option<&dyn Readable> {
        Some(self)
    }

    fn monitor(&self) -> Option<Box<dyn Monitor>> {
        Some(Box::new(crate::monitor::SehfragMonitor::new(self)))
    }
}

/// The molecule as blocks and junctions: `blocks #0 C1CCNCC1 #1 c1ccccc1; junctions
/// #1:0-#0:4`, each block `#position SMILES` in construction order, each junction `#child:atom-
/// #parent:atom` with atom indices inside the blocks (`(no blocks)` for `s0`).
impl Readable for Sehfrag {
    fn readable(&self, state: &[StateValue]) -> Result<String> {
        let mol = self.parse(state)?;
        if mol.n == 0 {
            return Ok("(no blocks)".into());
        }
        let mut out = String::from("blocks");
        for j in 0..mol.n {
            let b = &self.table.blocks[mol.block[j] as usize];
            out.push_str(&format!(" #{j} {}", b.smiles));
        }
        if mol.n > 1 {
            out.push_str("; junctions");
            for j in 1..mol.n {
                let (pa, ca) = mol.junction_atoms(&self.table, j);
                out.push_str(&format!(" #{j}:{ca}-#{}:{pa}", mol.parent[j]));
            }
        }
        Ok(out)
    }
}

impl StateEquivalence for Sehfrag {
    fn canonical_key(&self, state: &[StateValue]) -> Result<Vec<StateValue>> {
        self.canonical_key_of(state)
    }
}

/// Length of the one-hot part of the features.
fn one_hot_dim(max_blocks: usize, max_slots: usize, max_stems: usize) -> usize {
    max_blocks * (NUM_BLOCKS + max_blocks + max_slots) + max_stems * (max_blocks + max_slots)
}

/// Length of the graph part of the features ([`GraphLayout::graph_features`]).
fn graph_dim(max_blocks: usize, max_stems: usize) -> usize {
    max_blocks + 4 * (max_blocks - 1) + 2 * max_stems
}

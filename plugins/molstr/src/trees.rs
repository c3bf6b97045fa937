//! The gradient-boosted regression-tree proxy of `sehstr`.
//!
//! The export (`gbr_proxy.json`) holds `n_features`, `baseline` and `trees`, each a list of nodes
//! `{leaf, value, feature, threshold, left, right}` with the root at index 0. The input is the
//! one-hot code of a string of `L` blocks out of `K`: block `i` at position `p` sets feature
//! `K*p + i` to 1, so `L = n_features / K`. The prediction is `baseline + sum over trees of the
//! leaf reached`, going `left` when `x[feature] <= threshold` and `right` otherwise.
//!
//! **Exact, order-free sums.** Every leaf value (and the baseline) is rounded once to a fixed-point
//! integer `round(value * 2^shift)` with `shift` chosen so that any sum fits in `i64` (for the
//! shipped trees `shift = 56`, a resolution of `1.4e-17` per leaf). Predictions are integer sums
//! converted to `f64` at the end, so they do not depend on the order of summation: the batched
//! partial sums of the exact statistics ([`crate::SehStats`]) give bitwise the same values as
//! [`TreeEnsemble::predict`]. The rounding changes a prediction by at most
//! `trees * 2^-(shift+1)` plus the final `f64` rounding, far below the 1e-9 export tolerance.
//!
//! On a binary feature `x`, the test `x <= t` is `x == 0` for `0 <= t < 1`, always true for
//! `t >= 1` and always false for `t < 0`; constant tests are folded away when compiling, so every
//! inner node of the compiled form asks "is block `b` at position `p`?" and goes right when it is.

use serde::Deserialize;
use softgfn_core::{CoreError, Result, StateValue};

use crate::data::data_error;

/// Marker of a leaf in [`Node::pos`].
pub(crate) const LEAF: u32 = u32::MAX;

/// A compiled node: an inner node tests `x[pos] == block` (right when true); a leaf holds `q`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Node {
    /// String position read, or [`LEAF`].
    pub(crate) pos: u32,
    /// Block compared with.
    pub(crate) block: StateValue,
    /// Child when the block differs.
    pub(crate) left: u32,
    /// Child when the block matches.
    pub(crate) right: u32,
    /// Fixed-point leaf value.
    pub(crate) q: i64,
}

#[derive(Deserialize)]
struct RawEnsemble {
    n_features: usize,
    baseline: f64,
    trees: Vec<Vec<RawNode>>,
}

#[derive(Deserialize)]
struct RawNode {
    leaf: bool,
    value: f64,
    #[serde(default)]
    feature: usize,
    #[serde(default)]
    threshold: f64,
    #[serde(default)]
    left: usize,
    #[serde(default)]
    right: usize,
}

const TREES_EXPECTED: &str = "a JSON object with `n_features` (= L * K), `baseline` and `trees`, \
     each tree a list of nodes {leaf, value, feature, threshold, left, right} with the root first";

/// A compiled tree ensemble over strings of `length` blocks out of `num_blocks`.
#[derive(Clone)]
pub struct TreeEnsemble {
    num_blocks: usize,
    length: usize,
    num_trees: usize,
    baseline: f64,
    base_q: i64,
    shift: i32,
    unit: f64,
    pub(crate) nodes: Vec<Node>,
    pub(crate) roots: Vec<u32>,
    fingerprint: u64,
}

impl std::fmt::Debug for TreeEnsemble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TreeEnsemble")
            .field("num_blocks", &self.num_blocks)
            .field("length", &self.length)
            .field("num_trees", &self.num_trees)
            .field("num_nodes", &self.nodes.len())
            .field("baseline", &self.baseline)
            .field("shift", &self.shift)
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

/// FNV-1a, 64 bits.
#[derive(Clone, Copy)]
pub(crate) struct Fnv(pub(crate) u64);

impl Fnv {
    pub(crate) fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    pub(crate) fn bytes(mut self, b: &[u8]) -> Self {
        for &x in b {
            self.0 ^= u64::from(x);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self
    }

    pub(crate) fn u64(self, v: u64) -> Self {
        self.bytes(&v.to_le_bytes())
    }
}

impl TreeEnsemble {
    /// Parses and compiles an export (`gbr_proxy.json`) for strings over `num_blocks` blocks.
    /// `source` names the file in errors.
    pub fn from_json(env: &str, source: &str, bytes: &[u8], num_blocks: usize) -> Result<Self> {
        let bad = |m: String| data_error(env, source, format!("{m}; expected {TREES_EXPECTED}"));
        let raw: RawEnsemble = serde_json::from_slice(bytes)
            .map_err(|e| bad(format!("malformed tree ensemble ({e})")))?;
        let k = num_blocks;
        if k == 0 || raw.n_features == 0 || !raw.n_features.is_multiple_of(k) {
            return Err(bad(format!(
                "n_features = {} is not a positive multiple of the {k} blocks",
                raw.n_features
            )));
        }
        let length = raw.n_features / k;
        if !raw.baseline.is_finite() {
            return Err(bad(format!("baseline {} is not finite", raw.baseline)));
        }
        if raw.trees.is_empty() {
            return Err(bad("no trees".into()));
        }
        // Bound on |sum| to choose the fixed-point scale.
        let mut bound = raw.baseline.abs();
        for (t, tree) in raw.trees.iter().enumerate() {
            if tree.is_empty() {
                return Err(bad(format!("tree {t} has no nodes")));
            }
            let mut m = 0.0f64;
            for (j, n) in tree.iter().enumerate() {
                if n.leaf && !n.value.is_finite() {
                    return Err(bad(format!(
                        "tree {t} node {j}: leaf value {} is not finite",
                        n.value
                    )));
                }
                if n.leaf {
                    m = m.max(n.value.abs());
                }
            }
            bound += m;
        }
        if !bound.is_finite() || bound > 1e15 {
            return Err(bad(format!(
                "the predictions can reach {bound:e}; expected values below 1e15"
            )));
        }
        // Largest shift with bound * 2^shift <= 2^61 (room for rounding), at most 1000.
        let shift = if bound > 0.0 {
            (61 - bound.log2().ceil() as i32).min(1000)
        } else {
            0
        };
        let scale = 2f64.powi(shift);
        let quantize = |v: f64| (v * scale).round() as i64;

        let mut nodes = Vec::new();
        let mut roots = Vec::with_capacity(raw.trees.len());
        for (t, tree) in raw.trees.iter().enumerate() {
            let mut visited = vec![false; tree.len()];
            let root = compile(
                tree,
                0,
                k,
                raw.n_features,
                &quantize,
                &mut visited,
                &mut nodes,
            )
            .map_err(|m| bad(format!("tree {t}: {m}")))?;
            roots.push(root);
        }
        let base_q = quantize(raw.baseline);
        let mut h = Fnv::new()
            .u64(k as u64)
            .u64(length as u64)
            .u64(shift as u64)
            .u64(base_q as u64);
        for &r in &roots {
            h = h.u64(u64::from(r));
        }
        for n in &nodes {
            h = h
                .u64(u64::from(n.pos))
                .u64(n.block as u64)
                .u64(u64::from(n.left))
                .u64(u64::from(n.right))
                .u64(n.q as u64);
        }
        Ok(Self {
            num_blocks: k,
            length,
            num_trees: roots.len(),
            baseline: raw.baseline,
            base_q,
            shift,
            unit: 2f64.powi(-shift),
            nodes,
            roots,
            fingerprint: h.0,
        })
    }

    /// Number of building blocks `K`.
    pub fn num_blocks(&self) -> usize {
        self.num_blocks
    }

    /// String length `L` (`n_features / K`).
    pub fn length(&self) -> usize {
        self.length
    }

    /// Number of trees.
    pub fn num_trees(&self) -> usize {
        self.num_trees
    }

    /// The baseline of the export.
    pub fn baseline(&self) -> f64 {
        self.baseline
    }

    /// Number of compiled nodes (constant tests folded away).
    pub fn num_nodes(&self) -> usize {
        self.nodes.len()
    }

    /// The fixed-point scale: leaf values are rounded to multiples of `2^-shift`.
    pub fn shift(&self) -> i32 {
        self.shift
    }

    /// A 64-bit FNV-1a hash of the compiled ensemble, as 16 hex digits (identifies the trees in
    /// cached statistics).
    pub fn fingerprint(&self) -> String {
        format!("{:016x}", self.fingerprint)
    }

    /// The prediction for a string of [`TreeEnsemble::length`] block ids.
    pub fn predict(&self, blocks: &[StateValue]) -> Result<f64> {
        if blocks.len() != self.length
            || blocks
                .iter()
                .any(|&b| b < 0 || b as usize >= self.num_blocks)
        {
            return Err(CoreError::InvalidState {
                env: "sehstr".into(),
                state: blocks.to_vec(),
                reason: format!(
                    "the tree proxy needs {} block ids in 0..{}",
                    self.length, self.num_blocks
                ),
            });
        }
        Ok(self.value_of(self.fixed_sum(blocks)))
    }

    /// The fixed-point sum of a valid string (unchecked: blocks in `0..K`, length `L`).
    #[inline]
    pub(crate) fn fixed_sum(&self, blocks: &[StateValue]) -> i64 {
        let mut acc = self.base_q;
        for &r in &self.roots {
            let mut n = r as usize;
            loop {
                let node = &self.nodes[n];
                if node.pos == LEAF {
                    acc += node.q;
                    break;
                }
                n = if blocks[node.pos as usize] == node.block {
                    node.right
                } else {
                    node.left
                } as usize;
            }
        }
        acc
    }

    /// Base fixed-point sum (the baseline).
    pub(crate) fn base_q(&self) -> i64 {
        self.base_q
    }

    /// The `f64` value of a fixed-point sum.
    #[inline]
    pub(crate) fn value_of(&self, q: i64) -> f64 {
        q as f64 * self.unit
    }
}

/// Compiles the subtree of `tree[j]`, appending to `nodes`; returns the compiled index.
fn compile(
    tree: &[RawNode],
    j: usize,
    k: usize,
    n_features: usize,
    quantize: &dyn Fn(f64) -> i64,
    visited: &mut [bool],
    nodes: &mut Vec<Node>,
) -> std::result::Result<u32, String> {
    let mut j = j;
    loop {
        let n = tree
            .get(j)
            .ok_or_else(|| format!("child index {j} is outside 0..{}", tree.len()))?;
        if std::mem::replace(&mut visited[j], true) {
            return Err(format!("node {j} is reached twice (not a tree)"));
        }
        if n.leaf {
            nodes.push(Node {
                pos: LEAF,
                block: 0,
                left: 0,
                right: 0,
                q: quantize(n.value),
            });
            return Ok((nodes.len() - 1) as u32);
        }
        if n.feature >= n_features {
            return Err(format!(
                "node {j} reads feature {} outside 0..{n_features}",
                n.feature
            ));
        }
        if n.threshold.is_nan() {
            return Err(format!("node {j} has a NaN threshold"));
        }
        // x in {0, 1}: left iff x <= threshold.
        let left_if_zero = 0.0 <= n.threshold;
        let left_if_one = 1.0 <= n.threshold;
        if left_if_zero == left_if_one {
            // A constant test: follow the only branch ever taken.
            j = if left_if_zero { n.left } else { n.right };
            continue;
        }
        let at = nodes.len();
        nodes.push(Node {
            pos: (n.feature / k) as u32,
            block: (n.feature % k) as StateValue,
            left: 0,
            right: 0,
            q: 0,
        });
        let left = compile(tree, n.left, k, n_features, quantize, visited, nodes)?;
        let right = compile(tree, n.right, k, n_features, quantize, visited, nodes)?;
        nodes[at].left = left;
        nodes[at].right = right;
        return Ok(at as u32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: &str = r#"{"n_features": 6, "baseline": 1.0, "trees": [
        [{"leaf": false, "value": 0, "feature": 1, "threshold": 0.5, "left": 1, "right": 2},
         {"leaf": true, "value": 0.25}, {"leaf": true, "value": -0.5}],
        [{"leaf": false, "value": 0, "feature": 3, "threshold": -1.0, "left": 1, "right": 2},
         {"leaf": true, "value": 100.0},
         {"leaf": false, "value": 0, "feature": 5, "threshold": 0.5, "left": 3, "right": 4},
         {"leaf": true, "value": 0.125}, {"leaf": true, "value": 2.0}]
    ]}"#;

    #[test]
    fn predictions_follow_the_export_semantics() {
        // K = 3 blocks, L = 2: feature 1 = block 1 at position 0; feature 5 = block 2 at 1.
        let e = TreeEnsemble::from_json("t", "tiny", TINY.as_bytes(), 3).unwrap();
        assert_eq!((e.length(), e.num_trees()), (2, 2));
        // The constant node (threshold -1: always right) is folded away.
        assert_eq!(e.num_nodes(), 3 + 3);
        let cases = [
            ([0, 0], 1.0 + 0.25 + 0.125),
            ([1, 0], 1.0 - 0.5 + 0.125),
            ([1, 2], 0.5 + 2.0),
        ];
        for (x, want) in cases {
            assert_eq!(e.predict(&x).unwrap(), want, "{x:?}");
        }
        assert!(e.predict(&[0, 3]).is_err());
        assert!(e.predict(&[0]).is_err());
        let e2 = TreeEnsemble::from_json("t", "tiny", TINY.as_bytes(), 3).unwrap();
        assert_eq!(e.fingerprint(), e2.fingerprint());
        assert_eq!(e.fingerprint().len(), 16);
    }

    #[test]
    fn malformed_exports_are_errors_naming_the_problem() {
        let bad = [
            (
                r#"{"n_features": 7, "baseline": 1.0, "trees": [[{"leaf": true, "value": 1}]]}"#,
                "multiple",
            ),
            (
                r#"{"n_features": 6, "baseline": 1.0, "trees": []}"#,
                "no trees",
            ),
            (
                r#"{"n_features": 6, "baseline": 1.0, "trees": [[{"leaf": false, "value": 0, "feature": 9, "threshold": 0.5, "left": 1, "right": 1}]]}"#,
                "feature 9",
            ),
            (
                r#"{"n_features": 6, "baseline": 1.0, "trees": [[{"leaf": false, "value": 0, "feature": 1, "threshold": 0.5, "left": 0, "right": 0}]]}"#,
                "twice",
            ),
            (
                r#"{"n_features": 6, "baseline": 1.0, "trees": [[{"leaf": false, "value": 0, "feature": 1, "threshold": 0.5, "left": 5, "right": 1}]]}"#,
                "outside",
            ),
            (r#"{"n_features": 6, "trees": []}"#, "malformed"),
        ];
        for (json, want) in bad {
            let e = TreeEnsemble::from_json("t", "f.json", json.as_bytes(), 3)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want) && e.contains("f.json"), "{want}: {e}");
        }
    }
}

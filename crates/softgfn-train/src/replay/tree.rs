//! One segment tree, generic over its combine operation: [`SumTree`] (proportional sampling by
//! prefix sums) and [`MinTree`] (the smallest stored priority, for importance weights).

use std::fmt::Debug;
use std::marker::PhantomData;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The associative operation of a [`SegmentTree`], with its neutral element.
pub trait Combine: Copy + Debug + Default + Send + Sync + 'static {
    /// Neutral element: the value of padding leaves and of an empty range.
    const NEUTRAL: f64;
    /// Name used in messages (`"sum"`, `"min"`).
    const NAME: &'static str;
    /// The parent's value from its children's.
    fn combine(left: f64, right: f64) -> f64;
    /// Whether `v` may be stored in a leaf; `Err` says what is expected.
    fn check(v: f64) -> std::result::Result<(), &'static str>;
}

/// Sums of non-negative finite leaves (neutral `0`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sum;

impl Combine for Sum {
    const NEUTRAL: f64 = 0.0;
    const NAME: &'static str = "sum";
    #[inline]
    fn combine(left: f64, right: f64) -> f64 {
        left + right
    }
    fn check(v: f64) -> std::result::Result<(), &'static str> {
        if v.is_finite() && v >= 0.0 {
            Ok(())
        } else {
            Err("a finite number >= 0")
        }
    }
}

/// Minimum of the leaves (neutral `+inf`; `+inf` clears a leaf).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Min;

impl Combine for Min {
    const NEUTRAL: f64 = f64::INFINITY;
    const NAME: &'static str = "min";
    #[inline]
    fn combine(left: f64, right: f64) -> f64 {
        left.min(right)
    }
    fn check(v: f64) -> std::result::Result<(), &'static str> {
        if v.is_nan() { Err("a number") } else { Ok(()) }
    }
}

/// A segment tree over `len()` values, padded with [`Combine::NEUTRAL`] to a power-of-two number
/// of leaves.
///
/// Node `1` is the root, node `j` has children `2j` and `2j + 1`, and leaf `i` is node
/// `size + i`. Every internal node always holds exactly `combine(left, right)` (as computed in
/// `f64`), so a tree rebuilt from its leaves is bit-identical to one built by successive
/// [`set`](SegmentTree::set)s.
#[derive(Clone, Debug)]
pub struct SegmentTree<Op: Combine> {
    len: usize,
    size: usize,
    nodes: Vec<f64>,
    op: PhantomData<Op>,
}

/// Sum segment tree (proportional sampling).
pub type SumTree = SegmentTree<Sum>;
/// Min segment tree (smallest priority).
pub type MinTree = SegmentTree<Min>;

/// Number of leaves (a power of two, at least 1) of a tree with `n` usable leaves.
fn leaf_count(n: usize) -> Option<usize> {
    n.max(1).checked_next_power_of_two()
}

impl<Op: Combine> SegmentTree<Op> {
    /// A tree of `n` leaves, all [`Combine::NEUTRAL`].
    ///
    /// # Panics
    ///
    /// If `n` rounded up to a power of two overflows `usize`.
    pub fn new(n: usize) -> Self {
        Self::try_new(n).unwrap_or_else(|| panic!("{} tree of {n} leaves is too large", Op::NAME))
    }

    /// A tree of `n` neutral leaves, or `None` when its size overflows or cannot be allocated.
    pub(crate) fn try_new(n: usize) -> Option<Self> {
        let size = leaf_count(n)?;
        let count = size.checked_mul(2)?;
        let mut nodes = Vec::new();
        nodes.try_reserve_exact(count).ok()?;
        nodes.resize(count, Op::NEUTRAL);
        Some(Self {
            len: n,
            size,
            nodes,
            op: PhantomData,
        })
    }

    /// Number of usable leaves (the `n` given to [`SegmentTree::new`]).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the tree has no usable leaf.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sets leaf `i` to `v` and updates its ancestors (`O(log n)`).
    ///
    /// # Panics
    ///
    /// If `i >= len()` or `v` is not a valid leaf ([`Combine::check`]: for sums, negative,
    /// infinite or NaN; for minima, NaN).
    pub fn set(&mut self, i: usize, v: f64) {
        assert!(
            i < self.len,
            "{} tree leaf {i} out of range; expected < {}",
            Op::NAME,
            self.len
        );
        if let Err(want) = Op::check(v) {
            panic!("{} tree value {v} invalid; expected {want}", Op::NAME);
        }
        let mut j = self.size + i;
        self.nodes[j] = v;
        j /= 2;
        while j >= 1 {
            self.nodes[j] = Op::combine(self.nodes[2 * j], self.nodes[2 * j + 1]);
            j /= 2;
        }
    }

    /// The value of leaf `i` ([`Combine::NEUTRAL`] for `i >= len()`).
    pub fn get(&self, i: usize) -> f64 {
        if i < self.len {
            self.nodes[self.size + i]
        } else {
            Op::NEUTRAL
        }
    }

    /// The combination of all leaves (the root).
    pub fn root(&self) -> f64 {
        self.nodes[1]
    }

    /// Sets the usable leaves from `values` (checked) and rebuilds every internal node.
    pub(crate) fn fill(&mut self, values: impl Iterator<Item = f64>) -> Result<(), String> {
        for (i, v) in values.enumerate() {
            if i >= self.len {
                return Err(format!(
                    "{} tree has more than {} leaves",
                    Op::NAME,
                    self.len
                ));
            }
            if let Err(want) = Op::check(v) {
                return Err(format!(
                    "{} tree leaf {i} is {v}; expected {want}",
                    Op::NAME
                ));
            }
            self.nodes[self.size + i] = v;
        }
        self.rebuild();
        Ok(())
    }

    /// Recomputes every internal node from the leaves.
    fn rebuild(&mut self) {
        for j in (1..self.size).rev() {
            self.nodes[j] = Op::combine(self.nodes[2 * j], self.nodes[2 * j + 1]);
        }
    }

    /// All nodes (root at index 1), for tests of the layout.
    #[cfg(test)]
    pub(crate) fn nodes(&self) -> &[f64] {
        &self.nodes
    }
}

impl SegmentTree<Sum> {
    /// The sum of all leaves.
    pub fn total(&self) -> f64 {
        self.root()
    }

    /// The smallest `i` with `prefix_sum(0..=i) > mass`, by descent from the root (`O(log n)`).
    ///
    /// Guarded against rounding: the descent never enters a subtree whose sum is zero, so when
    /// [`total`](SegmentTree::total) is positive the result is always a leaf with a positive
    /// value (for `mass >= total` or NaN, the last positive leaf; for `mass < 0`, the first).
    /// When the total is zero it returns `0`.
    pub fn find_prefix(&self, mass: f64) -> usize {
        let mut mass = mass;
        let mut j = 1;
        while j < self.size {
            let left = self.nodes[2 * j];
            let right = self.nodes[2 * j + 1];
            // Go left when the mass falls in the left subtree, or when the right one is empty
            // (`mass >= total` after rounding); never step into an all-zero subtree otherwise.
            if (mass < left && left > 0.0) || right <= 0.0 {
                j *= 2;
            } else {
                mass -= left;
                j = 2 * j + 1;
            }
        }
        (j - self.size).min(self.len.saturating_sub(1))
    }
}

impl SegmentTree<Min> {
    /// The smallest leaf (`+inf` when no leaf is set).
    pub fn min(&self) -> f64 {
        self.root()
    }
}

/// Serialized form of a segment tree: its usable leaves as IEEE-754 bit patterns.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TreeRepr {
    len: usize,
    leaves_bits: Vec<u64>,
}

impl<Op: Combine> Serialize for SegmentTree<Op> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let leaves = &self.nodes[self.size..self.size + self.len];
        TreeRepr {
            len: self.len,
            leaves_bits: leaves.iter().map(|v| v.to_bits()).collect(),
        }
        .serialize(s)
    }
}

impl<'de, Op: Combine> Deserialize<'de> for SegmentTree<Op> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let r = TreeRepr::deserialize(d)?;
        if r.leaves_bits.len() != r.len {
            return Err(D::Error::custom(format!(
                "{} tree has {} leaves; expected {}",
                Op::NAME,
                r.leaves_bits.len(),
                r.len
            )));
        }
        let mut t = Self::try_new(r.len).ok_or_else(|| {
            D::Error::custom(format!(
                "{} tree of {} leaves is too large",
                Op::NAME,
                r.len
            ))
        })?;
        t.fill(r.leaves_bits.iter().map(|&b| f64::from_bits(b)))
            .map_err(D::Error::custom)?;
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_prefix_stays_on_positive_leaves() {
        let mut t = SumTree::new(5);
        t.set(1, 2.0);
        t.set(3, 1.0);
        // mass beyond the total (rounding) lands on the last positive leaf, negative on the first.
        assert_eq!(t.find_prefix(3.0), 3);
        assert_eq!(t.find_prefix(1e9), 3);
        assert_eq!(t.find_prefix(-1.0), 1);
        assert_eq!(t.find_prefix(f64::NAN), 3);
        assert_eq!(SumTree::new(3).find_prefix(0.5), 0);
    }

    #[test]
    fn rebuilt_tree_is_bit_identical() {
        let mut t = SumTree::new(7);
        let mut m = MinTree::new(7);
        for i in 0..7 {
            t.set(i, 0.1 * (i as f64 + 1.0).sqrt());
            m.set(i, 1.0 / (i as f64 + 0.5));
        }
        let leaves: Vec<f64> = (0..7).map(|i| t.get(i)).collect();
        let mut u = SumTree::new(7);
        u.fill(leaves.into_iter()).unwrap();
        let bits = |x: &[f64]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(t.nodes()), bits(u.nodes()));
        let mut n = MinTree::new(7);
        n.fill((0..7).map(|i| m.get(i))).unwrap();
        assert_eq!(bits(m.nodes()), bits(n.nodes()));
        assert_eq!(m.min(), 1.0 / 6.5);
    }

    #[test]
    fn fill_refuses_invalid_leaves() {
        assert!(SumTree::new(2).fill([1.0, -1.0].into_iter()).is_err());
        assert!(SumTree::new(2).fill([1.0, 1.0, 1.0].into_iter()).is_err());
        assert!(MinTree::new(2).fill([f64::NAN].into_iter()).is_err());
        assert!(MinTree::new(2).fill([f64::INFINITY].into_iter()).is_ok());
    }
}

//! Exact statistics of the sEH target over all `K^L` strings: `log Z`, the mode threshold, the
//! proxy's range.
//!
//! **Algorithm.** The strings are enumerated depth first over positions, and every tree is
//! evaluated *partially*: once a prefix of positions is fixed, each tree is walked from its
//! current node through the tests on fixed positions. A tree that reaches a leaf adds a constant
//! to the prefix's partial sum and drops out; the others wait at a node testing a free position.
//! At the last free position `p` the remaining trees are walked once with the set of the `K`
//! candidate blocks of `p` (a bit mask): a test of `p` sends its block right and the rest left,
//! so one walk yields the tree's value for all `K` blocks (the "rest" leaf goes to a shared base,
//! the few split-off blocks get corrections). Positions are fixed in order of decreasing use by
//! the trees, the least used one last. Sums are exact fixed-point integers, so the results equal
//! [`TreeEnsemble::predict`] bitwise whatever the order of evaluation.
//!
//! The prefixes of the first two positions (`K^2` units) are shared out to threads (scoped
//! threads, one per available core); partial `log Z` sums are combined in unit order so the
//! result does not depend on the thread count. Progress is reported through a
//! `&mut dyn FnMut(done, total)` callback called from the calling thread.
//!
//! **Modes.** The mode threshold is NumPy's `np.percentile(rewards, 99.9)` (linear
//! interpolation between the order statistics at ranks `floor(h)` and `floor(h) + 1`,
//! `h = (n - 1) * 0.999`), as in the original code; a string is a mode when its reward is at or
//! above it. Since the reward is monotone in the proxy value, the decision is made on the proxy
//! value: a string is a mode iff its value is at least [`SehStats::mode_proxy_cut`].

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use softgfn_core::{CoreError, Result, StateValue};

use crate::dag::SYMBOLS;
use crate::reward::{Neumaier, ProxyReward, numpy_lerp};
use crate::trees::{LEAF, TreeEnsemble};

/// The mode percentile of sehstr (modes are the top 0.1%).
pub const SEH_MODE_PERCENTILE: f64 = 99.9;

/// Version of the statistics file format.
pub const STATS_FORMAT: u32 = 1;

/// Exact statistics of a tree-ensemble target over all strings of length `L`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SehStats {
    /// File format version ([`STATS_FORMAT`]).
    pub format: u32,
    /// [`TreeEnsemble::fingerprint`] of the trees.
    pub fingerprint: String,
    /// Number of blocks `K`.
    pub num_blocks: usize,
    /// String length `L`.
    pub length: usize,
    /// Number of strings `K^L`.
    pub num_strings: u64,
    /// The reward transform the rewards were computed with.
    pub reward: ProxyReward,
    /// `log Z = log sum_x R(x)`.
    pub log_z: f64,
    /// Smallest proxy value.
    pub proxy_min: f64,
    /// Largest proxy value.
    pub proxy_max: f64,
    /// A string with the largest proxy value (the first in index order).
    pub argmax: String,
    /// Percentile of the mode threshold (99.9: modes are the top 0.1%).
    pub mode_percentile: f64,
    /// Proxy value at ascending rank `floor(h)`, `h = (n - 1) * percentile / 100`.
    pub mode_proxy_lower: f64,
    /// Proxy value at ascending rank `floor(h) + 1` (capped at `n - 1`).
    pub mode_proxy_upper: f64,
    /// Interpolation weight `h - floor(h)`.
    pub mode_gamma: f64,
    /// The reward threshold: NumPy's `percentile` of all rewards.
    pub mode_threshold: f64,
    /// The smallest proxy value of a mode: a string is a mode iff its value is at least this.
    pub mode_proxy_cut: f64,
    /// Number of strings at or above the threshold.
    pub num_modes: u64,
    /// Wall-clock seconds the computation took (informational).
    pub seconds: f64,
    /// Threads used (informational).
    pub threads: usize,
}

/// The order statistics of a percentile and their interpolation weight.
pub(crate) struct PercentilePlan {
    /// `floor(h)` as an ascending rank.
    lower: u64,
    /// `min(floor(h) + 1, n - 1)`.
    upper: u64,
    gamma: f64,
}

impl PercentilePlan {
    pub(crate) fn new(n: u64, percentile: f64) -> Self {
        let h = (n - 1) as f64 * (percentile / 100.0);
        let lower = (h.floor() as u64).min(n - 1);
        Self {
            lower,
            upper: (lower + 1).min(n - 1),
            gamma: h - h.floor(),
        }
    }
}

/// The mode threshold and proxy cut for a reward transform, from the bracketing proxy values.
pub(crate) fn mode_cut(reward: &ProxyReward, lower: f64, upper: f64, gamma: f64) -> (f64, f64) {
    let (ra, rb) = (reward.reward(lower), reward.reward(upper));
    let threshold = numpy_lerp(ra, rb, gamma);
    // The threshold lies strictly above R(lower) exactly when it must be reached from `upper`.
    let cut = if threshold > ra { upper } else { lower };
    (threshold, cut)
}

impl SehStats {
    /// Computes the statistics of `ensemble` under `reward` with the sehstr mode percentile on
    /// every available core.
    pub fn compute(
        ensemble: &TreeEnsemble,
        reward: &ProxyReward,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Self> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::compute_with(ensemble, reward, SEH_MODE_PERCENTILE, threads, progress)
    }

    /// [`SehStats::compute`] with an explicit percentile (in `0..=100`) and thread count.
    pub fn compute_with(
        ensemble: &TreeEnsemble,
        reward: &ProxyReward,
        percentile: f64,
        threads: usize,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Self> {
        let start = Instant::now();
        let (k, l) = (ensemble.num_blocks(), ensemble.length());
        let bad = |message: String| CoreError::Environment {
            env: "sehstr".into(),
            message,
        };
        if !(0.0..=100.0).contains(&percentile) {
            return Err(bad(format!(
                "mode percentile {percentile}: expected 0..=100"
            )));
        }
        // Block sets are u64 masks, and the argmax is printed with one symbol per block.
        if k > SYMBOLS.len() {
            return Err(bad(format!(
                "exact statistics support at most {} blocks, not {k}",
                SYMBOLS.len()
            )));
        }
        let n = (0..l)
            .try_fold(1u64, |acc, _| acc.checked_mul(k as u64))
            .filter(|&n| n < (1u64 << 52))
            .ok_or_else(|| bad(format!("{k}^{l} strings are too many to enumerate")))?;
        let plan = PercentilePlan::new(n, percentile);
        let keep = (n - plan.lower) as usize;

        struct Unit {
            z: Neumaier,
            min: f64,
            max: f64,
            argmax: u64,
        }
        struct Top {
            values: Vec<f64>,
            cut: f64,
        }
        let visit = |top: &mut Top, unit: &mut Unit, x: &[StateValue], p: usize, sums: &[i64]| {
            for (b, &q) in sums.iter().enumerate() {
                let v = ensemble.value_of(q);
                unit.z.add(reward.ratio_pow(v));
                if v < unit.min {
                    unit.min = v;
                }
                if v >= unit.max {
                    let idx = x.iter().enumerate().fold(0u64, |acc, (j, &c)| {
                        acc * k as u64 + if j == p { b as u64 } else { c as u64 }
                    });
                    if v > unit.max || idx < unit.argmax {
                        unit.max = v;
                        unit.argmax = idx;
                    }
                }
                if v >= top.cut {
                    top.values.push(v);
                    if top.values.len() >= 2 * keep + 4096 {
                        prune(&mut top.values, keep);
                        top.cut = top.values.iter().copied().fold(f64::INFINITY, f64::min);
                    }
                }
            }
        };
        let (tops, units) = scan(
            ensemble,
            threads,
            progress,
            &|| Top {
                values: Vec::new(),
                cut: f64::NEG_INFINITY,
            },
            &|| Unit {
                z: Neumaier::default(),
                min: f64::INFINITY,
                max: f64::NEG_INFINITY,
                argmax: u64::MAX,
            },
            &visit,
        )?;
        let mut z = Neumaier::default();
        let (mut min, mut max, mut argmax) = (f64::INFINITY, f64::NEG_INFINITY, u64::MAX);
        for u in &units {
            z.add(u.z.value());
            min = min.min(u.min);
            if u.max > max || (u.max == max && u.argmax < argmax) {
                max = u.max;
                argmax = u.argmax;
            }
        }
        let mut all: Vec<f64> = tops.into_iter().flat_map(|t| t.values).collect();
        all.sort_unstable_by(|a, b| b.total_cmp(a));
        // `all` holds every value >= the keep-th largest (ties included), in decreasing order.
        let lower = all[(n - 1 - plan.lower) as usize];
        let upper = all[(n - 1 - plan.upper) as usize];
        let (threshold, cut) = mode_cut(reward, lower, upper, plan.gamma);
        let num_modes = all.iter().take_while(|&&v| v >= cut).count() as u64;
        let sum = z.value();
        let log_z = reward.scale.ln() + sum.ln();
        if !(sum > 0.0 && log_z.is_finite()) {
            return Err(bad(format!(
                "sum of rewards {sum:e} is not a positive finite number"
            )));
        }
        let mut argmax_text = String::new();
        let mut rest = argmax;
        for _ in 0..l {
            argmax_text.insert(0, SYMBOLS[(rest % k as u64) as usize] as char);
            rest /= k as u64;
        }
        Ok(Self {
            format: STATS_FORMAT,
            fingerprint: ensemble.fingerprint(),
            num_blocks: k,
            length: l,
            num_strings: n,
            reward: *reward,
            log_z,
            proxy_min: min,
            proxy_max: max,
            argmax: argmax_text,
            mode_percentile: percentile,
            mode_proxy_lower: lower,
            mode_proxy_upper: upper,
            mode_gamma: plan.gamma,
            mode_threshold: threshold,
            mode_proxy_cut: cut,
            num_modes,
            seconds: start.elapsed().as_secs_f64(),
            threads,
        })
    }

    /// Whether these statistics were computed for `ensemble`, `reward` and `percentile`
    /// (timing fields ignored).
    pub fn matches(&self, ensemble: &TreeEnsemble, reward: &ProxyReward, percentile: f64) -> bool {
        self.format == STATS_FORMAT
            && self.fingerprint == ensemble.fingerprint()
            && self.num_blocks == ensemble.num_blocks()
            && self.length == ensemble.length()
            && self.reward == *reward
            && self.mode_percentile == percentile
    }

    /// The mode threshold (reward units) and proxy cut of the same mode set under another reward
    /// transform (the ranking, hence the mode set, does not depend on it).
    pub fn mode_cut_for(&self, reward: &ProxyReward) -> (f64, f64) {
        mode_cut(
            reward,
            self.mode_proxy_lower,
            self.mode_proxy_upper,
            self.mode_gamma,
        )
    }

    /// `log Z` under another reward transform, when it differs from ours only by its scale.
    pub fn log_z_for(&self, reward: &ProxyReward) -> Option<f64> {
        (reward.exponent == self.reward.exponent
            && reward.floor == self.reward.floor
            && reward.normaliser == self.reward.normaliser)
            .then(|| self.log_z - self.reward.scale.ln() + reward.scale.ln())
    }

    /// Parses a statistics file (`source` names it in errors).
    pub fn from_json(source: &str, bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| CoreError::Environment {
            env: "sehstr".into(),
            message: format!(
                "{source}: malformed statistics file ({e}); expected the JSON of SehStats \
                 (format {STATS_FORMAT}), as written by SehStats::load_or_compute"
            ),
        })
    }

    /// The statistics of the embedded sEH trees under the default reward, from `dir/stats.json`
    /// when it holds them, else computed (about 7 s on two cores in release mode) and written there
    /// atomically (temporary file, then rename).
    pub fn load_or_compute(dir: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<Self> {
        let trees = crate::seh::shipped_trees()?;
        Self::load_or_compute_for(&trees, &crate::seh::default_reward(), dir, progress)
    }

    /// [`SehStats::load_or_compute`] for any trees and reward transform (sehstr percentile).
    pub fn load_or_compute_for(
        ensemble: &TreeEnsemble,
        reward: &ProxyReward,
        dir: &Path,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Self> {
        let path = dir.join(crate::data::files::SEH_STATS);
        if let Ok(bytes) = std::fs::read(&path)
            && let Ok(stats) = Self::from_json(&path.display().to_string(), &bytes)
            && stats.matches(ensemble, reward, SEH_MODE_PERCENTILE)
        {
            return Ok(stats);
        }
        let stats = Self::compute(ensemble, reward, progress)?;
        stats.write_atomic(&path)?;
        Ok(stats)
    }

    /// Writes the statistics as pretty JSON to `path` through a temporary file and a rename.
    pub fn write_atomic(&self, path: &Path) -> Result<()> {
        let io = |what: &str, p: &Path, e: std::io::Error| CoreError::Environment {
            env: "sehstr".into(),
            message: format!("cannot {what} {}: {e}", p.display()),
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| io("create directory", parent, e))?;
        }
        let mut text = serde_json::to_string_pretty(self).map_err(|e| CoreError::Environment {
            env: "sehstr".into(),
            message: format!("cannot serialize statistics: {e}"),
        })?;
        text.push('\n');
        let tmp = path.with_extension(format!("json.tmp.{}", std::process::id()));
        std::fs::write(&tmp, text).map_err(|e| io("write", &tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io("rename the temporary file onto", path, e)
        })
    }
}

/// Keeps every value `>=` the `keep`-th largest (ties included).
fn prune(values: &mut Vec<f64>, keep: usize) {
    if values.len() <= keep {
        return;
    }
    let (_, kth, _) = values.select_nth_unstable_by(keep - 1, |a, b| b.total_cmp(a));
    let kth = *kth;
    values.retain(|&v| v >= kth);
}

/// Positions in evaluation order (most tested first, least tested last) and the number of
/// leading positions that define a work unit.
fn plan(ensemble: &TreeEnsemble) -> (Vec<usize>, usize) {
    let l = ensemble.length();
    let mut uses = vec![0usize; l];
    for n in &ensemble.nodes {
        if n.pos != LEAF {
            uses[n.pos as usize] += 1;
        }
    }
    let mut order: Vec<usize> = (0..l).collect();
    order.sort_by(|&a, &b| uses[b].cmp(&uses[a]).then(a.cmp(&b)));
    (order, 2.min(l - 1))
}

/// A per-string-batch callback of [`scan`]: `(thread state, unit state, x, p, sums)`.
pub(crate) type Visit<'a, T, U> = dyn Fn(&mut T, &mut U, &[StateValue], usize, &[i64]) + Sync + 'a;

/// The callback of one walker: `(x, p, sums)`.
type Sink<'a> = dyn FnMut(&[StateValue], usize, &[i64]) + 'a;

/// Evaluates the ensemble on every string, calling `visit(thread_state, unit_state, x, p, sums)`
/// once per assignment of all positions but `p` (`x[p]` is unset), with `sums[b]` the fixed-point
/// sum of the string with block `b` at `p`. Returns the thread states and the unit states in
/// unit order.
pub(crate) fn scan<T: Send, U: Send>(
    ensemble: &TreeEnsemble,
    threads: usize,
    progress: &mut dyn FnMut(u64, u64),
    new_thread: &(dyn Fn() -> T + Sync),
    new_unit: &(dyn Fn() -> U + Sync),
    visit: &Visit<'_, T, U>,
) -> Result<(Vec<T>, Vec<U>)> {
    let (k, l) = (ensemble.num_blocks(), ensemble.length());
    let (order, split) = plan(ensemble);
    let units = (k as u64).pow(split as u32);
    let per_unit = (k as u64).pow((l - split) as u32);
    let total = units * per_unit;
    let threads = threads.clamp(1, units as usize);
    let next = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let results: Mutex<Vec<Option<U>>> = Mutex::new((0..units).map(|_| None).collect());
    let thread_states = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut state = new_thread();
                    let mut walker = Walker::new(ensemble, &order);
                    loop {
                        let u = next.fetch_add(1, Ordering::Relaxed);
                        if u >= units {
                            break;
                        }
                        let mut acc = new_unit();
                        walker.run_unit(u, split, &mut |x, p, sums| {
                            visit(&mut state, &mut acc, x, p, sums)
                        });
                        if let Ok(mut r) = results.lock() {
                            r[u as usize] = Some(acc);
                        }
                        done.fetch_add(per_unit, Ordering::Relaxed);
                    }
                    state
                })
            })
            .collect();
        while !handles.iter().all(|h| h.is_finished()) {
            progress(done.load(Ordering::Relaxed), total);
            std::thread::sleep(Duration::from_millis(25));
        }
        progress(done.load(Ordering::Relaxed), total);
        handles
            .into_iter()
            .map(|h| h.join())
            .collect::<std::result::Result<Vec<T>, _>>()
    })
    .map_err(|_| CoreError::Environment {
        env: "sehstr".into(),
        message: "a statistics worker thread panicked".into(),
    })?;
    let units: Option<Vec<U>> = results
        .into_inner()
        .map_err(|_| CoreError::Environment {
            env: "sehstr".into(),
            message: "statistics results were poisoned by a panic".into(),
        })?
        .into_iter()
        .collect();
    let units = units.ok_or_else(|| CoreError::Environment {
        env: "sehstr".into(),
        message: "a statistics work unit was not evaluated".into(),
    })?;
    Ok((thread_states, units))
}

/// Not-yet-fixed position marker.
const FREE: StateValue = -1;

/// Depth-first partial evaluation of the trees (one per thread).
struct Walker<'a> {
    ens: &'a TreeEnsemble,
    order: &'a [usize],
    x: Vec<StateValue>,
    levels: Vec<Vec<u32>>,
    delta: Vec<i64>,
    sums: Vec<i64>,
}

impl<'a> Walker<'a> {
    fn new(ens: &'a TreeEnsemble, order: &'a [usize]) -> Self {
        let (k, l) = (ens.num_blocks(), ens.length());
        Self {
            ens,
            order,
            x: vec![FREE; l],
            levels: vec![Vec::with_capacity(ens.roots.len()); l + 1],
            delta: vec![0; k],
            sums: vec![0; k],
        }
    }

    /// Walks from node `n` through tests of fixed positions.
    #[inline]
    fn resolve(&self, mut n: u32) -> u32 {
        loop {
            let node = &self.ens.nodes[n as usize];
            if node.pos == LEAF {
                return n;
            }
            let v = self.x[node.pos as usize];
            if v == FREE {
                return n;
            }
            n = if v == node.block {
                node.right
            } else {
                node.left
            };
        }
    }

    /// Resolves `active` into `out`, returning the constant collected from finished trees.
    #[inline]
    fn advance(&self, active: &[u32], out: &mut Vec<u32>) -> i64 {
        out.clear();
        let mut c = 0i64;
        for &n in active {
            let r = self.resolve(n);
            let node = &self.ens.nodes[r as usize];
            if node.pos == LEAF {
                c += node.q;
            } else {
                out.push(r);
            }
        }
        c
    }

    fn run_unit(&mut self, unit: u64, split: usize, visit: &mut Sink<'_>) {
        let k = self.ens.num_blocks() as u64;
        let mut u = unit;
        for i in (0..split).rev() {
            self.x[self.order[i]] = (u % k) as StateValue;
            u /= k;
        }
        let mut act = std::mem::take(&mut self.levels[split]);
        let c = self.ens.base_q() + self.advance(&self.ens.roots, &mut act);
        self.descend(split, &act, c, visit);
        self.levels[split] = act;
        for i in 0..split {
            self.x[self.order[i]] = FREE;
        }
    }

    fn descend(&mut self, d: usize, active: &[u32], c: i64, visit: &mut Sink<'_>) {
        let l = self.ens.length();
        if d == l - 1 {
            self.fill_last(active, c, visit);
            return;
        }
        let p = self.order[d];
        let mut next = std::mem::take(&mut self.levels[d + 1]);
        for v in 0..self.ens.num_blocks() {
            self.x[p] = v as StateValue;
            let c2 = c + self.advance(active, &mut next);
            self.descend(d + 1, &next, c2, visit);
        }
        self.x[p] = FREE;
        self.levels[d + 1] = next;
    }

    fn fill_last(&mut self, active: &[u32], c: i64, visit: &mut Sink<'_>) {
        let k = self.ens.num_blocks();
        let p = self.order[self.ens.length() - 1];
        let full: u64 = if k == 64 { u64::MAX } else { (1u64 << k) - 1 };
        self.delta.fill(0);
        let mut base = c;
        for &n in active {
            let (rest_mask, rest_q) = self.fill_tree(n, full, p);
            base += rest_q;
            let mut m = full & !rest_mask;
            while m != 0 {
                self.delta[m.trailing_zeros() as usize] -= rest_q;
                m &= m - 1;
            }
        }
        for b in 0..k {
            self.sums[b] = base + self.delta[b];
        }
        visit(&self.x, p, &self.sums);
    }

    /// Walks one tree for all blocks of `mask` at position `p`; blocks split off by tests of `p`
    /// add their leaf to `delta`; returns the blocks reaching the "rest" leaf and its value.
    fn fill_tree(&mut self, mut n: u32, mut mask: u64, p: usize) -> (u64, i64) {
        loop {
            let node = self.ens.nodes[n as usize];
            if node.pos == LEAF {
                return (mask, node.q);
            }
            if node.pos as usize == p {
                let bit = 1u64 << node.block;
                if mask & bit != 0 {
                    self.walk_single(node.right, node.block, p);
                    mask &= !bit;
                    if mask == 0 {
                        return (0, 0);
                    }
                }
                n = node.left;
            } else {
                n = if self.x[node.pos as usize] == node.block {
                    node.right
                } else {
                    node.left
                };
            }
        }
    }

    /// Walks one tree with block `b` at position `p`, adding the leaf to `delta[b]`.
    fn walk_single(&mut self, mut n: u32, b: StateValue, p: usize) {
        loop {
            let node = &self.ens.nodes[n as usize];
            if node.pos == LEAF {
                self.delta[b as usize] += node.q;
                return;
            }
            let v = if node.pos as usize == p {
                b
            } else {
                self.x[node.pos as usize]
            };
            n = if v == node.block {
                node.right
            } else {
                node.left
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A random ensemble over `k` blocks and `l` positions with `trees` trees of ~`size` nodes.
    pub(crate) fn synthetic(
        k: usize,
        l: usize,
        trees: usize,
        size: usize,
        seed: u64,
    ) -> TreeEnsemble {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut rnd = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let mut out = Vec::new();
        for _ in 0..trees {
            // Grow a random tree by splitting random leaves.
            let mut nodes: Vec<serde_json::Value> = vec![serde_json::Value::Null];
            let mut leaves = vec![0usize];
            while nodes.len() + 2 <= size {
                let pick = leaves.swap_remove((rnd() % leaves.len() as u64) as usize);
                let (a, b) = (nodes.len(), nodes.len() + 1);
                let f = rnd() % (k * l) as u64;
                // Mostly standard thresholds, some constant ones.
                let thr = match rnd() % 10 {
                    0 => -0.5,
                    1 => 1.5,
                    _ => 0.5,
                };
                nodes[pick] = serde_json::json!({"leaf": false, "value": 0.0, "feature": f,
                    "threshold": thr, "left": a, "right": b});
                nodes.push(serde_json::Value::Null);
                nodes.push(serde_json::Value::Null);
                leaves.push(a);
                leaves.push(b);
            }
            for j in leaves {
                let v = (rnd() % 2001) as f64 / 1000.0 - 1.0 + (rnd() % 7) as f64 * 1e-7;
                nodes[j] = serde_json::json!({"leaf": true, "value": v});
            }
            out.push(nodes);
        }
        let json = serde_json::json!({"n_features": k * l, "baseline": 0.75, "trees": out});
        TreeEnsemble::from_json("t", "synthetic", json.to_string().as_bytes(), k).unwrap()
    }

    fn all_strings(k: usize, l: usize) -> impl Iterator<Item = Vec<StateValue>> {
        let n = k.pow(l as u32);
        (0..n).map(move |mut i| {
            let mut x = vec![0; l];
            for j in (0..l).rev() {
                x[j] = (i % k) as StateValue;
                i /= k;
            }
            x
        })
    }

    #[test]
    fn scan_matches_tree_walks_exactly() {
        for (k, l, seed) in [(4, 4, 1), (5, 3, 2), (3, 1, 3), (2, 2, 4), (6, 5, 5)] {
            let ens = synthetic(k, l, 12, 15, seed);
            let n = k.pow(l as u32);
            let seen: Mutex<Vec<Option<i64>>> = Mutex::new(vec![None; n]);
            let visit = |_: &mut (), _: &mut (), x: &[StateValue], p: usize, sums: &[i64]| {
                let mut seen = seen.lock().unwrap();
                for (b, &q) in sums.iter().enumerate() {
                    let idx = x.iter().enumerate().fold(0usize, |acc, (j, &c)| {
                        acc * k + if j == p { b } else { c as usize }
                    });
                    assert!(seen[idx].is_none(), "string {idx} visited twice");
                    seen[idx] = Some(q);
                }
            };
            let mut calls = 0;
            scan(&ens, 3, &mut |_, _| calls += 1, &|| (), &|| (), &visit).unwrap();
            assert!(calls >= 1);
            for (i, x) in all_strings(k, l).enumerate() {
                assert_eq!(
                    seen.lock().unwrap()[i],
                    Some(ens.fixed_sum(&x)),
                    "k={k} l={l} x={x:?}"
                );
            }
        }
    }

    fn brute_force(ens: &TreeEnsemble, reward: &ProxyReward, percentile: f64) -> SehStats {
        let (k, l) = (ens.num_blocks(), ens.length());
        let values: Vec<f64> = all_strings(k, l)
            .map(|x| ens.predict(&x).unwrap())
            .collect();
        let n = values.len() as u64;
        let z: f64 = values.iter().map(|&v| reward.reward(v)).sum();
        let mut rewards: Vec<f64> = values.iter().map(|&v| reward.reward(v)).collect();
        rewards.sort_by(f64::total_cmp);
        // np.percentile(rewards, percentile), written out.
        let h = (n - 1) as f64 * (percentile / 100.0);
        let lo = h.floor() as usize;
        let hi = (lo + 1).min(n as usize - 1);
        let threshold = numpy_lerp(rewards[lo], rewards[hi], h - h.floor());
        let num_modes = values
            .iter()
            .filter(|&&v| reward.reward(v) >= threshold)
            .count() as u64;
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let argmax = values.iter().position(|&v| v == max).unwrap();
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        SehStats {
            format: STATS_FORMAT,
            fingerprint: ens.fingerprint(),
            num_blocks: k,
            length: l,
            num_strings: n,
            reward: *reward,
            log_z: z.ln(),
            proxy_min: sorted[0],
            proxy_max: max,
            argmax: all_strings(k, l)
                .nth(argmax)
                .unwrap()
                .iter()
                .map(|&b| SYMBOLS[b as usize] as char)
                .collect(),
            mode_percentile: percentile,
            mode_proxy_lower: sorted[lo],
            mode_proxy_upper: sorted[hi],
            mode_gamma: h - h.floor(),
            mode_threshold: threshold,
            mode_proxy_cut: 0.0,
            num_modes,
            seconds: 0.0,
            threads: 0,
        }
    }

    #[test]
    fn statistics_match_brute_force() {
        for (k, l, pct, seed) in [
            (4, 5, 99.9, 7),
            (5, 4, 90.0, 8),
            (3, 3, 50.0, 9),
            (6, 4, 99.0, 10),
        ] {
            let ens = synthetic(k, l, 20, 21, seed);
            let reward = ProxyReward {
                exponent: 6.0,
                scale: 10.0,
                floor: 1e-3,
                normaliser: 2.5,
            };
            let want = brute_force(&ens, &reward, pct);
            for threads in [1, 3] {
                let got =
                    SehStats::compute_with(&ens, &reward, pct, threads, &mut |_, _| {}).unwrap();
                let ctx = format!("k={k} l={l} pct={pct} threads={threads}");
                assert!(
                    (got.log_z - want.log_z).abs() < 1e-12,
                    "{ctx}: {} vs {}",
                    got.log_z,
                    want.log_z
                );
                assert_eq!(got.proxy_min, want.proxy_min, "{ctx}");
                assert_eq!(got.proxy_max, want.proxy_max, "{ctx}");
                assert_eq!(got.argmax, want.argmax, "{ctx}");
                assert_eq!(got.mode_proxy_lower, want.mode_proxy_lower, "{ctx}");
                assert_eq!(got.mode_proxy_upper, want.mode_proxy_upper, "{ctx}");
                assert_eq!(got.mode_gamma, want.mode_gamma, "{ctx}");
                assert_eq!(got.mode_threshold, want.mode_threshold, "{ctx}");
                assert_eq!(got.num_modes, want.num_modes, "{ctx}");
                assert!(got.num_modes >= 1, "{ctx}");
                assert!(got.matches(&ens, &reward, pct));
            }
        }
    }

    #[test]
    fn the_cache_is_written_atomically_and_reused() {
        let ens = synthetic(4, 4, 10, 15, 11);
        let reward = ProxyReward {
            exponent: 3.0,
            scale: 1.0,
            floor: 1e-3,
            normaliser: 2.0,
        };
        let dir = tempfile::tempdir().unwrap();
        let mut calls = 0;
        let a = SehStats::load_or_compute_for(&ens, &reward, dir.path(), &mut |_, _| calls += 1)
            .unwrap();
        assert!(calls > 0);
        let files: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            files,
            vec![std::ffi::OsString::from("stats.json")],
            "no temporary file left"
        );
        let mut calls = 0;
        let b = SehStats::load_or_compute_for(&ens, &reward, dir.path(), &mut |_, _| calls += 1)
            .unwrap();
        assert_eq!((calls, &a), (0, &b), "read back, not recomputed");
        // Another reward: recomputed and overwritten; a corrupt file: recomputed too.
        let other = ProxyReward {
            exponent: 4.0,
            ..reward
        };
        let c = SehStats::load_or_compute_for(&ens, &other, dir.path(), &mut |_, _| {}).unwrap();
        assert_eq!(c.reward, other);
        assert_eq!(c.num_modes, a.num_modes);
        assert_eq!(
            c.mode_cut_for(&reward),
            (a.mode_threshold, a.mode_proxy_cut)
        );
        assert!(
            (c.log_z_for(&ProxyReward {
                scale: 5.0,
                ..other
            })
            .unwrap()
                - c.log_z
                - 5f64.ln())
            .abs()
                < 1e-12
        );
        assert!(c.log_z_for(&reward).is_none());
        std::fs::write(dir.path().join("stats.json"), "{").unwrap();
        let d = SehStats::load_or_compute_for(&ens, &other, dir.path(), &mut |_, _| {}).unwrap();
        assert_eq!(d.log_z, c.log_z);
        assert!(
            SehStats::from_json("x.json", b"{}")
                .unwrap_err()
                .to_string()
                .contains("x.json")
        );
    }
}

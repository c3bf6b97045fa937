//! Suites: environments x algorithms x seeds x a budget, with targets for time-to-quality.
//!
//! ```toml
//! name = "quick"
//! seeds = [1, 2]
//! iterations = 1000             # budget: iterations, trajectories or seconds (at least one)
//! eval_interval = 100
//! targets = ["exact_l1 <= 0.1", "exact_kl <= 0.5"]
//! plugins = []                  # run-time plugin libraries the cells load
//! checkpoint_every = 1000       # optional: full-state checkpoints, so --resume continues a cell
//!
//! [[env]]
//! name = "hypergrid"
//! label = "hypergrid-2x8"       # optional; default: the name
//! set = { dim = 2, side = 8 }   # environment parameters
//!
//! [[algo]]
//! name = "tb"
//! set = { learning_rate = 0.001 }
//! ```
//!
//! A target names any metric column of the records: `exact_l1`, `exact_kl`, `exact_tv`,
//! `exact_jsd`, `emp_l1_mean`, `emp_kl`, `log_z_error`, `loss`, `log_z_learned`, or an
//! environment metric such as bitseq's `modes_found` and `spearman`
//! (`targets = ["modes_found >= 50", "spearman >= 0.5"]`). A run whose records lack the metric
//! never reaches the target.
//!
//! Cells are ordered environment-major, then algorithm, then seed; that order is stable, so a
//! shard `i/n` (cells whose index is `i - 1` modulo `n`) is the same on every machine.

use serde::{Deserialize, Serialize};

use crate::error::{BenchError, Result};

/// An environment of a suite.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteEnv {
    /// Registered environment name (built-in or from a plugin).
    pub name: String,
    /// Label used in directories, tables and plots (default: the name).
    #[serde(default)]
    pub label: Option<String>,
    /// Environment parameters (`env.*`).
    #[serde(default)]
    pub set: toml::Table,
}

/// An algorithm of a suite.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteAlgo {
    /// Registered algorithm name.
    pub name: String,
    /// Label (default: the name); lets one suite compare variants of one algorithm.
    #[serde(default)]
    pub label: Option<String>,
    /// Algorithm overrides (`algo.*`).
    #[serde(default)]
    pub set: toml::Table,
}

/// A comparison `metric op value` reached during a run.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// Metric column name (e.g. `exact_l1`).
    pub metric: String,
    /// Whether smaller values are better (`<=`) or larger (`>=`).
    pub at_most: bool,
    /// Threshold.
    pub value: f64,
}

impl Target {
    /// Parses `"exact_l1 <= 0.1"` or `"modes_found >= 50"` (any metric name; see the module
    /// docs).
    pub fn parse(s: &str) -> Result<Self> {
        let (metric, at_most, rest) = if let Some((m, v)) = s.split_once("<=") {
            (m, true, v)
        } else if let Some((m, v)) = s.split_once(">=") {
            (m, false, v)
        } else {
            return Err(BenchError::Suite(format!(
                "target `{s}`: expected `METRIC <= VALUE` or `METRIC >= VALUE`"
            )));
        };
        let value: f64 = rest.trim().parse().map_err(|_| {
            BenchError::Suite(format!("target `{s}`: `{}` is not a number", rest.trim()))
        })?;
        let metric = metric.trim();
        if metric.is_empty() || !value.is_finite() {
            return Err(BenchError::Suite(format!(
                "target `{s}`: empty metric or non-finite value"
            )));
        }
        Ok(Self {
            metric: metric.to_string(),
            at_most,
            value,
        })
    }

    /// Whether `x` meets the target.
    pub fn met(&self, x: f64) -> bool {
        if self.at_most {
            x <= self.value
        } else {
            x >= self.value
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.metric,
            if self.at_most { "<=" } else { ">=" },
            self.value
        )
    }
}

/// A benchmark suite (see the module docs for the file format).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    /// Suite name.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Seeds; every environment x algorithm pair runs once per seed.
    pub seeds: Vec<u64>,
    /// Budget in iterations.
    #[serde(default)]
    pub iterations: Option<u64>,
    /// Budget in trajectories (converted with each algorithm's `trajectories_per_iteration`).
    #[serde(default)]
    pub trajectories: Option<u64>,
    /// Budget in seconds of training per cell.
    #[serde(default)]
    pub seconds: Option<f64>,
    /// Iterations between evaluations.
    #[serde(default = "default_interval")]
    pub eval_interval: u64,
    /// Extra `[eval]` keys for every cell (e.g. `empirical_window`).
    #[serde(default)]
    pub eval: toml::Table,
    /// Targets for time-to-quality.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Run-time plugin libraries every cell loads.
    #[serde(default)]
    pub plugins: Vec<String>,
    /// Device of every cell.
    #[serde(default = "default_device")]
    pub device: String,
    /// Iterations between full-state checkpoints of every cell (none when absent). With
    /// checkpoints, `bench run --resume` continues an unfinished cell from its latest checkpoint
    /// (bitwise the same results as an uninterrupted run) instead of rerunning it from zero.
    #[serde(default)]
    pub checkpoint_every: Option<u64>,
    /// Environments.
    #[serde(rename = "env")]
    pub envs: Vec<SuiteEnv>,
    /// Algorithms.
    #[serde(rename = "algo")]
    pub algos: Vec<SuiteAlgo>,
}

fn default_interval() -> u64 {
    100
}

fn default_device() -> String {
    "cpu".into()
}

/// One run of a suite: an environment, an algorithm and a seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// Position in the suite's canonical order.
    pub index: usize,
    /// Environment label.
    pub env: String,
    /// Algorithm label.
    pub algo: String,
    /// Seed.
    pub seed: u64,
}

impl Cell {
    /// Relative directory of the cell inside a results directory.
    pub fn dir(&self) -> std::path::PathBuf {
        std::path::Path::new("cells")
            .join(&self.env)
            .join(&self.algo)
            .join(format!("s{}", self.seed))
    }

    /// `env/algo/sSEED`.
    pub fn id(&self) -> String {
        format!("{}/{}/s{}", self.env, self.algo, self.seed)
    }
}

/// A shard `i/n` (1-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// 1-based shard number.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl Shard {
    /// Parses `i/n` with `1 <= i <= n`.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || {
            BenchError::Suite(format!(
                "shard `{s}`: expected I/N with 1 <= I <= N (e.g. 2/8; with Slurm: $((SLURM_ARRAY_TASK_ID + 1))/N)"
            ))
        };
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (usize, usize) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if index == 0 || count == 0 || index > count {
            return Err(bad());
        }
        Ok(Self { index, count })
    }

    /// Whether the cell at `position` belongs to this shard.
    pub fn contains(&self, position: usize) -> bool {
        position % self.count == self.index - 1
    }
}

fn check_label(kind: &str, label: &str) -> Result<()> {
    let ok = !label.is_empty()
        && label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !label.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(BenchError::Suite(format!(
            "{kind} label `{label}`: use letters, digits, '-', '_' and '.' only (it names directories); set `label = \"...\"`"
        )))
    }
}

impl Suite {
    /// Parses and validates a suite file's text.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let s: Suite =
            toml::from_str(text).map_err(|e| BenchError::Suite(format!("{origin}: {e}")))?;
        s.validate()?;
        Ok(s)
    }

    /// Reads a suite file.
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| BenchError::io("cannot read the suite file", path, e))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Checks seeds, budget, labels and targets.
    pub fn validate(&self) -> Result<()> {
        if self.seeds.is_empty() {
            return Err(BenchError::Suite(
                "`seeds` is empty; list at least one seed".into(),
            ));
        }
        if self.envs.is_empty() || self.algos.is_empty() {
            return Err(BenchError::Suite(
                "a suite needs at least one [[env]] and one [[algo]]".into(),
            ));
        }
        if self.iterations.is_none() && self.trajectories.is_none() && self.seconds.is_none() {
            return Err(BenchError::Suite(
                "no budget: set `iterations`, `trajectories` or `seconds`".into(),
            ));
        }
        if self.eval_interval == 0 {
            return Err(BenchError::Suite("`eval_interval` must be >= 1".into()));
        }
        if self.checkpoint_every == Some(0) {
            return Err(BenchError::Suite(
                "`checkpoint_every` must be >= 1 (or absent for no checkpoints)".into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for e in &self.envs {
            check_label("env", self.env_label(e))?;
            if !seen.insert(("env", self.env_label(e).to_string())) {
                return Err(BenchError::Suite(format!(
                    "two environments share the label `{}`; give one a distinct `label`",
                    self.env_label(e)
                )));
            }
        }
        for a in &self.algos {
            check_label("algo", self.algo_label(a))?;
            if !seen.insert(("algo", self.algo_label(a).to_string())) {
                return Err(BenchError::Suite(format!(
                    "two algorithms share the label `{}`; give one a distinct `label`",
                    self.algo_label(a)
                )));
            }
        }
        for t in &self.targets {
            Target::parse(t)?;
        }
        Ok(())
    }

    /// Label of an environment entry.
    pub fn env_label<'a>(&self, e: &'a SuiteEnv) -> &'a str {
        e.label.as_deref().unwrap_or(&e.name)
    }

    /// Label of an algorithm entry.
    pub fn algo_label<'a>(&self, a: &'a SuiteAlgo) -> &'a str {
        a.label.as_deref().unwrap_or(&a.name)
    }

    /// The parsed targets.
    pub fn parsed_targets(&self) -> Result<Vec<Target>> {
        self.targets.iter().map(|t| Target::parse(t)).collect()
    }

    /// Every cell in canonical order.
    pub fn cells(&self) -> Vec<Cell> {
        let mut out = Vec::new();
        for e in &self.envs {
            for a in &self.algos {
                for &seed in &self.seeds {
                    out.push(Cell {
                        index: out.len(),
                        env: self.env_label(e).to_string(),
                        algo: self.algo_label(a).to_string(),
                        seed,
                    });
                }
            }
        }
        out
    }

    /// The cells of a shard (all cells without one).
    pub fn shard_cells(&self, shard: Option<Shard>) -> Vec<Cell> {
        self.cells()
            .into_iter()
            .filter(|c| shard.is_none_or(|s| s.contains(c.index)))
            .collect()
    }

    /// The environment and algorithm entries a cell refers to (by label).
    pub fn entries(&self, cell: &Cell) -> Result<(&SuiteEnv, &SuiteAlgo)> {
        let env = self
            .envs
            .iter()
            .find(|e| self.env_label(e) == cell.env)
            .ok_or_else(|| BenchError::Suite(format!("no environment labelled `{}`", cell.env)))?;
        let algo = self
            .algos
            .iter()
            .find(|a| self.algo_label(a) == cell.algo)
            .ok_or_else(|| BenchError::Suite(format!("no algorithm labelled `{}`", cell.algo)))?;
        Ok((env, algo))
    }

    /// The run-config table of a cell (the `softgfn train --config` input). The trajectory budget
    /// is converted with the algorithm's `trajectories_per_iteration` (resolved defaults).
    pub fn cell_config(&self, cell: &Cell) -> Result<toml::Table> {
        let (env, algo) = self.entries(cell)?;
        let mut t = toml::Table::new();
        t.insert("seed".into(), toml::Value::Integer(cell.seed as i64));
        t.insert("device".into(), toml::Value::String(self.device.clone()));
        let mut env_t = env.set.clone();
        env_t.insert("name".into(), toml::Value::String(env.name.clone()));
        let mut algo_t = algo.set.clone();
        algo_t.insert("name".into(), toml::Value::String(algo.name.clone()));
        let tpi = algo_t
            .get("trajectories_per_iteration")
            .and_then(|v| v.as_integer())
            .map(|v| v.max(1) as u64)
            .or_else(|| {
                softgfn_train::find_algorithm(&algo.name)
                    .ok()
                    .and_then(|r| {
                        toml::Table::try_from((r.default_config)())
                            .ok()
                            .and_then(|d| d.get("trajectories_per_iteration")?.as_integer())
                            .map(|v| v.max(1) as u64)
                    })
            })
            .unwrap_or(16);
        let iterations = match (self.iterations, self.trajectories) {
            (Some(i), Some(tr)) => i.min(tr.div_ceil(tpi)),
            (Some(i), None) => i,
            (None, Some(tr)) => tr.div_ceil(tpi),
            (None, None) => u64::MAX / 4,
        };
        t.insert("iterations".into(), toml::Value::Integer(iterations as i64));
        if let Some(s) = self.seconds {
            t.insert("max_seconds".into(), toml::Value::Float(s));
        }
        let mut eval_t = self.eval.clone();
        eval_t.insert(
            "interval".into(),
            toml::Value::Integer(self.eval_interval as i64),
        );
        t.insert("env".into(), toml::Value::Table(env_t));
        t.insert("algo".into(), toml::Value::Table(algo_t));
        t.insert("eval".into(), toml::Value::Table(eval_t));
        Ok(t)
    }
}

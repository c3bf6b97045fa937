//! The trainer loop: sample with the algorithm's policy, update, evaluate, record.
//!
//! Each iteration samples `trajectories_per_iteration` trajectories with the behaviour policy
//! (the algorithm's policy plus its exploration) and hands them to [`Algorithm::update`]. Every
//! `eval.interval` iterations (and at iteration 0 and at the end) it writes an [`EvalRecord`]:
//! the exact metrics from the policy's exact terminal distribution when the environment is
//! enumerable, and the paper's empirical metrics over the last `eval.empirical_window` training
//! samples.
//!
//! When the environment has a [`Monitor`] ([`Environment::monitor`]), the trainer feeds it the
//! terminal states of every iteration and, at every evaluation, asks it for its metrics with the
//! current policy (evaluation mode, no exploration) as `log P_F`; they go into
//! [`EvalRecord::env_metrics`] (bitseq: `modes_found`, `spearman`). Feeding and evaluating the
//! monitor do not count as training time, and its state is part of every checkpoint.
//!
//! Randomness comes from independent streams of the run seed (initialisation, sampling,
//! algorithm), so the same config and seed give the same numbers.

use std::time::Instant;

use softgfn_core::exact::{StateGraph, Target};
use softgfn_core::math::masked_log_softmax;
use softgfn_core::metrics::{EmpiricalWindow, ExactDistances};
use softgfn_core::rng::{Stream, stream};
use softgfn_core::{CoreError, Environment, Monitor, Rng, StateValue, Trajectories};
use softgfn_nn::Device;

use crate::algorithm::{Algorithm, BuildContext, UpdateContext};
use crate::config::RunConfig;
use crate::error::{Result, TrainError};
use crate::record::{CSV_COLUMNS, EvalRecord, RecordSink};
use crate::sampler::{ForwardPolicy, Sampler};

/// Receives progress events (the CLI renders a progress bar from them).
pub trait Observer {
    /// Called once before training with the total number of iterations.
    fn on_start(&mut self, _total: u64) {}
    /// Called after every iteration.
    fn on_iteration(&mut self, _iteration: u64, _loss: f64) {}
    /// Called after every evaluation.
    fn on_eval(&mut self, _record: &EvalRecord) {}
}

/// An observer that ignores everything.
impl Observer for () {}

struct ExactEval {
    graph: StateGraph,
    target: Target,
}

/// Exact answers available for an environment, computed once.
fn exact_eval(env: &dyn Environment, config: &RunConfig) -> Result<Option<ExactEval>> {
    let Some(en) = env.as_enumerable() else {
        return Ok(None);
    };
    if !config.eval.exact || en.num_states() > config.eval.max_exact_states {
        return Ok(None);
    }
    let graph = StateGraph::build(env, config.eval.max_exact_states)?;
    let target = graph.target();
    Ok(Some(ExactEval { graph, target }))
}

/// The exact terminal distribution of a policy over an enumerated graph.
pub fn policy_terminal_distribution(
    env: &dyn Environment,
    graph: &StateGraph,
    policy: &mut dyn ForwardPolicy,
) -> Result<Vec<f64>> {
    let n = graph.num_states();
    let (na, fd, w) = (graph.num_actions, env.spec().feature_dim, graph.state_width);
    const CHUNK: usize = 4096;
    let mut log_pf = vec![f64::NEG_INFINITY; n * na];
    let mut feats = vec![0f32; CHUNK * fd];
    let mut logits = vec![0f32; CHUNK * na];
    for start in (0..n).step_by(CHUNK) {
        let end = (start + CHUNK).min(n);
        let rows = end - start;
        env.encode(&graph.states[start * w..end * w], &mut feats[..rows * fd])?;
        policy.policy_logits(&feats[..rows * fd], rows, &mut logits[..rows * na])?;
        for r in 0..rows {
            let s = start + r;
            masked_log_softmax(
                &logits[r * na..(r + 1) * na],
                graph.forward_mask(s),
                1.0,
                &mut log_pf[s * na..(s + 1) * na],
            );
        }
    }
    Ok(graph.terminal_distribution(&log_pf)?)
}

/// Rows per policy call of [`PolicyLogPf`]: features plus logits of one chunk stay below 2^24
/// floats (64 MiB), and at most 4096 rows.
fn policy_chunk_rows(feature_dim: usize, num_actions: usize) -> usize {
    ((1usize << 24) / (feature_dim + num_actions).max(1)).clamp(1, 4096)
}

/// `log P_F(action | state)` of a policy (evaluation mode) for batches of `(state, action)`
/// pairs: the [`softgfn_core::LogPf`] that monitors evaluate. Buffers are kept between calls.
#[derive(Debug, Default)]
pub struct PolicyLogPf {
    feats: Vec<f32>,
    logits: Vec<f32>,
    masks: Vec<bool>,
    row: Vec<f64>,
}

impl PolicyLogPf {
    /// Empty buffers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes `log P_F(actions[r] | states[r])` into `out[r]`: the policy's logits, masked by
    /// the environment's forward masks, through a log-softmax; `-inf` for an action that is not
    /// valid in its state. Rows go to the policy in chunks of at most 4096.
    ///
    /// # Errors
    /// Mismatching buffer lengths, an action outside `0..num_actions`, or an error of the
    /// environment or the policy.
    pub fn log_pf(
        &mut self,
        env: &dyn Environment,
        policy: &mut dyn ForwardPolicy,
        states: &[StateValue],
        actions: &[u32],
        out: &mut [f64],
    ) -> Result<()> {
        let spec = env.spec();
        let rows = spec.rows_of("states of log_pf", states)?;
        spec.check_len("actions of log_pf", rows, 1, actions.len())?;
        spec.check_len("log_pf output", rows, 1, out.len())?;
        let (w, na, fd) = (spec.state_width, spec.num_actions, spec.feature_dim);
        if let Some(r) = actions.iter().position(|&a| a as usize >= na) {
            return Err(CoreError::InvalidAction {
                env: spec.name.clone(),
                state: states[r * w..(r + 1) * w].to_vec(),
                action: actions[r],
                reason: format!("forward actions are 0..{na}"),
            }
            .into());
        }
        let chunk = policy_chunk_rows(fd, na);
        self.row.resize(na, 0.0);
        for start in (0..rows).step_by(chunk) {
            let end = (start + chunk).min(rows);
            let n = end - start;
            self.feats.resize(n * fd, 0.0);
            self.logits.resize(n * na, 0.0);
            self.masks.resize(n * na, false);
            let s = &states[start * w..end * w];
            env.encode(s, &mut self.feats)?;
            env.forward_masks(s, &mut self.masks)?;
            policy.policy_logits(&self.feats, n, &mut self.logits)?;
            for r in 0..n {
                masked_log_softmax(
                    &self.logits[r * na..(r + 1) * na],
                    &self.masks[r * na..(r + 1) * na],
                    1.0,
                    &mut self.row,
                );
                out[start + r] = self.row[actions[start + r] as usize];
            }
        }
        Ok(())
    }
}

/// Checks the names a monitor returned: identifiers that do not clash with the record's columns
/// or with each other.
fn check_metric_names(metrics: &[(String, f64)]) -> Result<()> {
    for (i, (name, _)) in metrics.iter().enumerate() {
        let bad = |details: String| {
            Err(TrainError::Core(CoreError::Metric {
                metric: name.clone(),
                details,
            }))
        };
        let ident = !name.is_empty()
            && name
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_');
        if !ident {
            return bad(
                "an environment metric name must be lowercase letters, digits and `_`".into(),
            );
        }
        if CSV_COLUMNS.contains(&name.as_str()) {
            return bad(format!(
                "an environment metric may not reuse the record column `{name}`"
            ));
        }
        if metrics[..i].iter().any(|(n, _)| n == name) {
            return bad("the environment returned this metric twice".into());
        }
    }
    Ok(())
}

/// Final numbers of a run.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    /// Algorithm name.
    pub algo: String,
    /// Environment name.
    pub env: String,
    /// Seed.
    pub seed: u64,
    /// Last record.
    pub last: EvalRecord,
    /// Median milliseconds per iteration over the whole run.
    pub median_ms_per_iteration: f64,
    /// Peak resident memory of the process in MiB (Linux; `None` elsewhere).
    #[serde(default)]
    pub peak_rss_mb: Option<f64>,
}

/// Peak resident set size of this process in MiB, from `/proc/self/status` (Linux only).
pub fn peak_rss_mb() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Owns everything a run needs.
pub struct Trainer {
    config: RunConfig,
    env: Box<dyn Environment>,
    algo: Box<dyn Algorithm>,
    sampler: Sampler,
    trajectories: Trajectories,
    rng_sampling: Rng,
    rng_algo: Rng,
    exact: Option<ExactEval>,
    window: Option<EmpiricalWindow>,
    index_buf: Vec<u64>,
    terminal_buf: Vec<StateValue>,
    monitor: Option<Box<dyn Monitor>>,
    policy_log_pf: PolicyLogPf,
    iteration: u64,
    trajectories_seen: u64,
    train_seconds: f64,
    loss_sum: f64,
    loss_count: u64,
    interval_ms: Vec<f64>,
    all_ms: Vec<f64>,
    checkpointing: Option<(u64, std::path::PathBuf)>,
}

/// Top-level config keys, `iterations` aside, that a resumed run must share with its checkpoint.
/// A saved config resolved again with the current defaults, so that a key added since it was
/// written (with a default that keeps the old behaviour, such as
/// `algo.learning_starts_transitions = 0`) does not refuse an older checkpoint; the text itself
/// when it no longer resolves (the comparison then names what differs).
fn with_current_defaults(text: &str) -> String {
    text.parse::<toml::Table>()
        .ok()
        .and_then(|t| crate::config::resolve(t).ok())
        .and_then(|(c, _)| c.to_toml().ok())
        .unwrap_or_else(|| text.to_string())
}

fn config_without_budget(text: &str) -> Result<toml::Table> {
    let mut t: toml::Table = text.parse().map_err(|e| TrainError::Config {
        section: None,
        message: format!("cannot parse a saved config: {e}"),
    })?;
    t.remove("iterations");
    // What a run logs may change on resume (e.g. TensorBoard files turned on).
    t.remove("log");
    // Keys added to `[eval]` after a run was written take their defaults, so that its
    // checkpoint still resumes.
    if let Some(toml::Value::Table(eval)) = t.get_mut("eval") {
        eval.entry("log_z_samples").or_insert(toml::Value::Integer(
            crate::config::EvalConfig::default().log_z_samples as i64,
        ));
    }
    Ok(t)
}

impl Trainer {
    /// Builds the environment's exact answers (if enumerable) and the algorithm.
    pub fn new(config: RunConfig, env: Box<dyn Environment>) -> Result<Self> {
        config.validate()?;
        let device = Device::parse(&config.device)?;
        let mut rng_init = stream(config.seed, Stream::Init);
        let algo = config.algo.build(&mut BuildContext {
            env: env.as_ref(),
            device,
            rng: &mut rng_init,
        })?;
        let exact = exact_eval(env.as_ref(), &config)?;
        let window = match env.as_enumerable() {
            Some(en) if en.num_states() <= config.eval.max_exact_states => Some(
                EmpiricalWindow::new(config.eval.empirical_window, en.num_states() as usize),
            ),
            _ => None,
        };
        let trajectories = Trajectories::new(env.spec());
        let monitor = env.monitor();
        Ok(Self {
            rng_sampling: stream(config.seed, Stream::Sampling),
            rng_algo: stream(config.seed, Stream::Algorithm),
            config,
            env,
            algo,
            sampler: Sampler::new(),
            trajectories,
            exact,
            window,
            index_buf: Vec::new(),
            terminal_buf: Vec::new(),
            monitor,
            policy_log_pf: PolicyLogPf::new(),
            iteration: 0,
            trajectories_seen: 0,
            train_seconds: 0.0,
            loss_sum: 0.0,
            loss_count: 0,
            interval_ms: Vec::new(),
            all_ms: Vec::new(),
            checkpointing: None,
        })
    }

    /// Writes a checkpoint into `run_dir` every `every` iterations (and at the end of `run`).
    pub fn set_checkpointing(&mut self, every: u64, run_dir: &std::path::Path) {
        self.checkpointing = (every > 0).then(|| (every, run_dir.to_path_buf()));
    }

    /// The trainer's own state.
    pub fn trainer_state(&self) -> crate::checkpoint::TrainerState {
        crate::checkpoint::TrainerState {
            iteration: self.iteration,
            trajectories: self.trajectories_seen,
            train_seconds: self.train_seconds,
            loss_sum: self.loss_sum,
            loss_count: self.loss_count,
            interval_ms: self.interval_ms.clone(),
            all_ms: self.all_ms.clone(),
            rng_sampling: self.rng_sampling.clone(),
            rng_algo: self.rng_algo.clone(),
            window: self.window.clone(),
        }
    }

    /// Writes a full-state checkpoint into `run_dir/checkpoint/` atomically.
    pub fn write_checkpoint(&self, run_dir: &std::path::Path) -> Result<()> {
        crate::checkpoint::write(
            run_dir,
            self.iteration,
            &self.env.spec().name,
            self.algo.name(),
            &self.config.to_toml()?,
            &self.trainer_state(),
            &self.algo.state()?,
            self.monitor.as_ref().map(|m| m.save()).as_deref(),
        )
    }

    /// Restores a checkpoint of a run with the same config (its `iterations` may differ).
    pub fn restore(&mut self, ck: crate::checkpoint::Checkpoint) -> Result<()> {
        let mine = config_without_budget(&self.config.to_toml()?)?;
        let theirs = config_without_budget(&with_current_defaults(&ck.manifest.config))?;
        if mine != theirs {
            let key = ["seed", "device", "max_seconds", "env", "algo", "eval"]
                .into_iter()
                .find(|k| mine.get(*k) != theirs.get(*k))
                .unwrap_or("config");
            return Err(TrainError::Checkpoint {
                path: ck.path.display().to_string(),
                message: format!(
                    "was written by a run with a different `{key}` than the config given; resume with the run's own config.toml (only `iterations` may change)"
                ),
            });
        }
        let t = ck.trainer;
        if t.iteration > self.config.iterations {
            return Err(TrainError::invalid(
                "iterations",
                self.config.iterations,
                &format!(
                    "at least the checkpoint's iteration {} (pass a larger --iterations to extend the run)",
                    t.iteration
                ),
            ));
        }
        if t.window.is_some() != self.window.is_some() {
            return Err(TrainError::Checkpoint {
                path: ck.path.display().to_string(),
                message: "its empirical window does not match this environment".into(),
            });
        }
        match (self.monitor.as_mut(), &ck.monitor) {
            (Some(m), Some(bytes)) => m.restore(bytes).map_err(|e| TrainError::Checkpoint {
                path: ck.path.display().to_string(),
                message: format!("its environment metric state (monitor.bin): {e}"),
            })?,
            (None, None) => {}
            (Some(_), None) => {
                return Err(TrainError::Checkpoint {
                    path: ck.path.display().to_string(),
                    message: format!(
                        "holds no state of the environment metrics of `{}` (it was written \
                         before softgfn recorded them), so cumulative metrics such as \
                         modes_found cannot continue; start a new run",
                        self.env.spec().name
                    ),
                });
            }
            (None, Some(_)) => {
                return Err(TrainError::Checkpoint {
                    path: ck.path.display().to_string(),
                    message: format!(
                        "holds environment metric state, but `{}` has no metric monitor",
                        self.env.spec().name
                    ),
                });
            }
        }
        self.algo.restore(ck.algo)?;
        self.iteration = t.iteration;
        self.trajectories_seen = t.trajectories;
        self.train_seconds = t.train_seconds;
        self.loss_sum = t.loss_sum;
        self.loss_count = t.loss_count;
        self.interval_ms = t.interval_ms;
        self.all_ms = t.all_ms;
        self.rng_sampling = t.rng_sampling;
        self.rng_algo = t.rng_algo;
        self.window = t.window;
        Ok(())
    }

    /// Sets the counters the next record reports (a model loaded from a run directory reports
    /// the iteration and trajectory count of the run's last record).
    pub fn set_counters(&mut self, iteration: u64, trajectories: u64) {
        self.iteration = iteration;
        self.trajectories_seen = trajectories;
    }

    /// Sets the training seconds the next record reports as `wall_seconds` (a model loaded
    /// from a run directory reports those of the run's last record).
    pub fn set_train_seconds(&mut self, seconds: f64) {
        self.train_seconds = seconds;
    }

    /// The environment and, mutably, the algorithm (sampling from a loaded policy).
    pub fn env_and_algorithm_mut(&mut self) -> (&dyn Environment, &mut dyn Algorithm) {
        (self.env.as_ref(), self.algo.as_mut())
    }

    /// Feeds terminal states to the environment's monitor (none: nothing happens), as training
    /// does with every iteration's samples.
    ///
    /// # Errors
    /// The monitor's error.
    pub fn observe(&mut self, terminal_states: &[StateValue]) -> Result<()> {
        if let Some(m) = self.monitor.as_mut() {
            m.observe(terminal_states)?;
        }
        Ok(())
    }

    /// Sets `eval.log_z_samples` for the next evaluations.
    ///
    /// # Errors
    /// A value above the largest batch.
    pub fn set_log_z_samples(&mut self, samples: usize) -> Result<()> {
        let mut config = self.config.clone();
        config.eval.log_z_samples = samples;
        config.validate()?;
        self.config.eval.log_z_samples = samples;
        Ok(())
    }

    /// Sets the iteration budget (resuming with a larger `--iterations`).
    pub fn set_iterations(&mut self, iterations: u64) {
        self.config.iterations = iterations;
    }

    /// The resolved config.
    pub fn config(&self) -> &RunConfig {
        &self.config
    }

    /// The environment.
    pub fn env(&self) -> &dyn Environment {
        self.env.as_ref()
    }

    /// The algorithm.
    pub fn algorithm(&self) -> &dyn Algorithm {
        self.algo.as_ref()
    }

    /// The algorithm, mutably (e.g. to save it).
    pub fn algorithm_mut(&mut self) -> &mut dyn Algorithm {
        self.algo.as_mut()
    }

    /// Iterations completed.
    pub fn iteration(&self) -> u64 {
        self.iteration
    }

    /// The environment's metric monitor, if it has one.
    pub fn monitor(&self) -> Option<&dyn Monitor> {
        self.monitor.as_deref()
    }

    /// The true `log Z`, when exact answers are available.
    pub fn log_z_true(&self) -> Option<f64> {
        self.exact.as_ref().map(|e| e.target.log_z)
    }

    /// One training iteration: sample, record samples, update.
    pub fn train_iteration(&mut self) -> Result<f64> {
        let t0 = Instant::now();
        let n = self.algo.trajectories_per_iteration();
        let exploration = self.algo.exploration();
        self.sampler
            .sample_training(
                self.env.as_ref(),
                self.algo.as_mut(),
                n,
                exploration,
                &mut self.rng_sampling,
                &mut self.trajectories,
            )
            .map_err(|e| self.on_environment(e))?;
        let stats = self
            .algo
            .update(&mut UpdateContext {
                env: self.env.as_ref(),
                trajectories: &self.trajectories,
                iteration: self.iteration,
                rng: &mut self.rng_algo,
            })
            .map_err(|e| self.on_environment(e))?;
        let dt = t0.elapsed().as_secs_f64();
        self.train_seconds += dt;
        self.interval_ms.push(dt * 1e3);
        self.all_ms.push(dt * 1e3);
        if self.window.is_some() || self.monitor.is_some() {
            self.terminal_buf.clear();
            for i in 0..self.trajectories.num_trajectories() {
                self.terminal_buf
                    .extend_from_slice(self.trajectories.terminal_state(i));
            }
        }
        if let Some(m) = self.monitor.as_mut() {
            m.observe(&self.terminal_buf)?;
        }
        if let Some(w) = self.window.as_mut() {
            let en = self
                .env
                .as_enumerable()
                .ok_or_else(|| TrainError::Unsupported {
                    algo: self.algo.name().into(),
                    message: "empirical window without enumeration".into(),
                })?;
            let nt = self.trajectories.num_trajectories();
            self.index_buf.resize(nt, 0);
            en.state_index(&self.terminal_buf, &mut self.index_buf)?;
            for &i in &self.index_buf {
                w.push(i as u32);
            }
        }
        self.trajectories_seen += n as u64;
        self.iteration += 1;
        if stats.loss.is_nan() {
            // No gradient step this iteration (e.g. an off-policy warm-up).
        } else if !stats.loss.is_finite() {
            return Err(self.on_environment(TrainError::NonFinite {
                what: "loss".into(),
                iteration: self.iteration,
                value: stats.loss,
            }));
        } else {
            self.loss_sum += stats.loss;
            self.loss_count += 1;
        }
        Ok(stats.loss)
    }

    /// A [`TrainError::NonFinite`] of a training iteration, with the environment named and
    /// `check-env` suggested ([`TrainError::NonFiniteTraining`]); other errors unchanged.
    fn on_environment(&self, e: TrainError) -> TrainError {
        match e {
            TrainError::NonFinite { .. } => TrainError::NonFiniteTraining {
                env: self.config.env.name.clone(),
                cause: Box::new(e),
            },
            e => e,
        }
    }

    /// Evaluates the current policy (does not count as training time).
    pub fn evaluate(&mut self) -> Result<EvalRecord> {
        let mut rec = EvalRecord {
            iteration: self.iteration,
            trajectories: self.trajectories_seen,
            wall_seconds: self.train_seconds,
            loss: (self.loss_count > 0).then(|| self.loss_sum / self.loss_count as f64),
            log_z_learned: Some(self.algo.log_z_estimate(self.env.as_ref())?),
            ms_per_iteration: median(&mut self.interval_ms),
            ..Default::default()
        };
        self.loss_sum = 0.0;
        self.loss_count = 0;
        self.interval_ms.clear();
        if let Some(ex) = &self.exact {
            let q = policy_terminal_distribution(self.env.as_ref(), &ex.graph, self.algo.as_mut())?;
            let d = ExactDistances::between(&ex.target.probs, &q)?;
            rec.log_z_true = Some(ex.target.log_z);
            rec.exact_l1 = Some(d.exact_l1);
            rec.exact_tv = Some(d.exact_tv);
            rec.exact_kl = Some(d.exact_kl);
            rec.exact_jsd = Some(d.exact_jsd);
            let (log_pf, log_pb) =
                crate::estimate::policy_tables(self.env.as_ref(), &ex.graph, self.algo.as_mut())?;
            let bounds = ex.graph.log_z_bounds(&log_pf, &log_pb)?;
            rec.exact_log_z_elbo = Some(bounds.elbo).filter(|v| v.is_finite());
            rec.exact_log_z_eubo = Some(bounds.eubo).filter(|v| v.is_finite());
            if let Some(w) = self.window.as_ref().filter(|w| !w.is_empty()) {
                let (l1m, klv) = w.metrics(&ex.target.probs, &ex.graph.terminal)?;
                rec.emp_l1_mean = Some(l1m);
                rec.emp_kl = Some(klv);
            }
        }
        if self.config.eval.log_z_samples > 0 {
            let mut rng = crate::estimate::estimator_rng(self.config.seed, self.iteration);
            let est = crate::estimate::log_z_estimates(
                self.env.as_ref(),
                self.algo.as_mut(),
                self.exact.as_ref().map(|ex| (&ex.graph, &ex.target)),
                self.config.eval.log_z_samples,
                &mut rng,
            )?;
            let finite = |v: f64| Some(v).filter(|v| v.is_finite());
            rec.log_z_elbo = finite(est.elbo.value);
            rec.log_z_iw = finite(est.iw.value);
            rec.log_z_iw_ci = finite(est.iw.ci);
            rec.log_z_eubo = est.eubo.and_then(|e| finite(e.value));
        }
        if let Some(monitor) = self.monitor.as_mut() {
            let (env, algo, bufs) = (
                self.env.as_ref(),
                self.algo.as_mut(),
                &mut self.policy_log_pf,
            );
            // The policy's own errors (a TrainError) are kept whole and returned instead of the
            // placeholder the monitor sees.
            let mut failure: Option<TrainError> = None;
            let mut log_pf = |states: &[StateValue], actions: &[u32], out: &mut [f64]| {
                bufs.log_pf(env, &mut *algo, states, actions, out)
                    .map_err(|e| {
                        let placeholder = CoreError::Metric {
                            metric: "log_pf".into(),
                            details: e.to_string(),
                        };
                        failure = Some(e);
                        placeholder
                    })
            };
            let metrics = match monitor.evaluate(&mut log_pf) {
                Ok(m) => m,
                Err(e) => return Err(failure.unwrap_or(TrainError::Core(e))),
            };
            check_metric_names(&metrics)?;
            rec.env_metrics = metrics
                .into_iter()
                .map(|(name, v)| (name, Some(v).filter(|v| v.is_finite())))
                .collect();
        }
        Ok(rec)
    }

    /// Runs until `config.iterations`, writing records to `sink`.
    pub fn run(
        &mut self,
        sink: &mut dyn RecordSink,
        observer: &mut dyn Observer,
    ) -> Result<Summary> {
        let total = self.config.iterations;
        let interval = self.config.eval.interval;
        observer.on_start(total);
        let mut last = if self.iteration == 0 {
            let r = self.evaluate()?;
            sink.write(&r)?;
            observer.on_eval(&r);
            r
        } else {
            EvalRecord::default()
        };
        let max_seconds = self.config.max_seconds.unwrap_or(f64::INFINITY);
        while self.iteration < total && self.train_seconds < max_seconds {
            let loss = self.train_iteration()?;
            observer.on_iteration(self.iteration, loss);
            let out_of_time = self.train_seconds >= max_seconds;
            if self.iteration.is_multiple_of(interval) || self.iteration == total || out_of_time {
                last = self.evaluate()?;
                sink.write(&last)?;
                observer.on_eval(&last);
            }
            if let Some((every, dir)) = &self.checkpointing {
                let end = self.iteration == total || out_of_time;
                if self.iteration.is_multiple_of(*every) || end {
                    self.write_checkpoint(dir)?;
                }
            }
        }
        if last.iteration != self.iteration {
            // Resumed at the end of its budget: the summary still reports the current policy.
            last = self.evaluate()?;
        }
        Ok(Summary {
            algo: self.algo.name().to_string(),
            env: self.env.spec().name.clone(),
            seed: self.config.seed,
            last,
            median_ms_per_iteration: median(&mut self.all_ms).unwrap_or(f64::NAN),
            peak_rss_mb: peak_rss_mb(),
        })
    }
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        0.5 * (s[n / 2 - 1] + s[n / 2])
    })
}

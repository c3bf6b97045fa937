//! The trainer loop: sample with the algorithm's policy, update, evaluate, record.
//!
//! Each iteration samples `trajectories_per_iteration` trajectories with the behaviour policy
//! (the algorithm's policy plus its exploration) and hands them to [`Algorithm::update`]. Every
//! `eval.interval` iterations (and at iteration 0 and at the end) it writes an [`EvalRecord`]:
//! the exact metrics from the policy's exact terminal distribution when the environment is
//! enumerable, and the paper's empirical metrics over the last `eval.empirical_window` training
//! samples.
//!
//! Randomness comes from independent streams of the run seed (initialisation, sampling,
//! algorithm), so the same config and seed give the same numbers.

use std::time::Instant;

use softgfn_core::exact::{StateGraph, Target};
use softgfn_core::math::masked_log_softmax;
use softgfn_core::metrics::{EmpiricalWindow, ExactDistances};
use softgfn_core::rng::{Stream, stream};
use softgfn_core::{Environment, Rng, Trajectories};
use softgfn_nn::Device;

use crate::algorithm::{Algorithm, BuildContext, UpdateContext};
use crate::config::RunConfig;
use crate::error::{Result, TrainError};
use crate::record::{EvalRecord, RecordSink};
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
    terminal_buf: Vec<softgfn_core::StateValue>,
    iteration: u64,
    trajectories_seen: u64,
    train_seconds: f64,
    loss_sum: f64,
    loss_count: u64,
    interval_ms: Vec<f64>,
    all_ms: Vec<f64>,
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
            iteration: 0,
            trajectories_seen: 0,
            train_seconds: 0.0,
            loss_sum: 0.0,
            loss_count: 0,
            interval_ms: Vec::new(),
            all_ms: Vec::new(),
        })
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

    /// The true `log Z`, when exact answers are available.
    pub fn log_z_true(&self) -> Option<f64> {
        self.exact.as_ref().map(|e| e.target.log_z)
    }

    /// One training iteration: sample, record samples, update.
    pub fn train_iteration(&mut self) -> Result<f64> {
        let t0 = Instant::now();
        let n = self.algo.trajectories_per_iteration();
        let exploration = self.algo.exploration();
        self.sampler.sample(
            self.env.as_ref(),
            self.algo.as_mut(),
            n,
            exploration,
            &mut self.rng_sampling,
            &mut self.trajectories,
        )?;
        let stats = self.algo.update(&mut UpdateContext {
            env: self.env.as_ref(),
            trajectories: &self.trajectories,
            iteration: self.iteration,
            rng: &mut self.rng_algo,
        })?;
        let dt = t0.elapsed().as_secs_f64();
        self.train_seconds += dt;
        self.interval_ms.push(dt * 1e3);
        self.all_ms.push(dt * 1e3);
        if let Some(w) = self.window.as_mut() {
            let en = self
                .env
                .as_enumerable()
                .ok_or_else(|| TrainError::Unsupported {
                    algo: self.algo.name().into(),
                    message: "empirical window without enumeration".into(),
                })?;
            let nt = self.trajectories.num_trajectories();
            self.terminal_buf.clear();
            for i in 0..nt {
                self.terminal_buf
                    .extend_from_slice(self.trajectories.terminal_state(i));
            }
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
            return Err(TrainError::NonFinite {
                what: "loss".into(),
                iteration: self.iteration,
                value: stats.loss,
            });
        } else {
            self.loss_sum += stats.loss;
            self.loss_count += 1;
        }
        Ok(stats.loss)
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
            if let Some(w) = self.window.as_ref().filter(|w| !w.is_empty()) {
                let (l1m, klv) = w.metrics(&ex.target.probs, &ex.graph.terminal)?;
                rec.emp_l1_mean = Some(l1m);
                rec.emp_kl = Some(klv);
            }
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
        let mut last = self.evaluate()?;
        sink.write(&last)?;
        observer.on_eval(&last);
        while self.iteration < total {
            let loss = self.train_iteration()?;
            observer.on_iteration(self.iteration, loss);
            if self.iteration.is_multiple_of(interval) || self.iteration == total {
                last = self.evaluate()?;
                sink.write(&last)?;
                observer.on_eval(&last);
            }
        }
        Ok(Summary {
            algo: self.algo.name().to_string(),
            env: self.env.spec().name.clone(),
            seed: self.config.seed,
            last,
            median_ms_per_iteration: median(&mut self.all_ms).unwrap_or(f64::NAN),
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

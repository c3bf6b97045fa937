//! Use what was trained: load a run directory and sample from its policy ([`Trained`]).
//!
//! ```no_run
//! use softgfn_core::rng::{Stream, stream};
//! # fn main() -> softgfn_train::Result<()> {
//! let mut trained = softgfn_train::Trained::load("runs/hypergrid-tb-s1")?;
//! let mut rng = stream(0, Stream::Sampling);
//! for x in trained.sample(10, &mut rng)? {
//!     println!("{}  log R = {:.3}", x.readable, x.log_reward);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The environment and the algorithm are rebuilt from the run's `config.toml` (an environment
//! from a plugin needs that plugin loaded first), and the parameters are read from the run's
//! final `model.safetensors` ([`Trained::load`]) or from its latest checkpoint
//! ([`Trained::load_checkpoint`]).

use std::path::{Path, PathBuf};

use softgfn_core::{Environment, Rng, StateValue, Trajectories, readable_state};

use crate::checkpoint::{self, CHECKPOINT_DIR};
use crate::config::{parse_toml, resolve};
use crate::error::{Result, TrainError};
use crate::record::{CONFIG_FILE, EvalRecord, METRICS_FILE, read_metrics};
use crate::sampler::{Exploration, Sampler};
use crate::trainer::{PolicyLogPf, Trainer};

/// Where the parameters of a [`Trained`] come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The final `model.safetensors` written when training ended.
    Final,
    /// The full checkpoint (`checkpoint/`), written at this iteration.
    Checkpoint(u64),
}

/// One object drawn from a trained policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Sampled {
    /// The terminal state row.
    pub state: Vec<StateValue>,
    /// Its readable form ([`softgfn_core::Readable`], or the integer row).
    pub readable: String,
    /// `log R(x)`.
    pub log_reward: f64,
    /// `log P_F` of the sampled trajectory (the exit included), under the trained policy at
    /// temperature 1.
    pub log_pf: f64,
}

/// A trained model loaded from a run directory.
pub struct Trained {
    dir: PathBuf,
    source: Source,
    trainer: Trainer,
    sampler: Sampler,
    trajectories: Trajectories,
    log_pf: PolicyLogPf,
}

impl std::fmt::Debug for Trained {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trained")
            .field("dir", &self.dir)
            .field("source", &self.source)
            .field("env", &self.trainer.env().spec().name)
            .field("algo", &self.trainer.algorithm().name())
            .finish_non_exhaustive()
    }
}

fn not_a_run(dir: &Path, why: String) -> TrainError {
    TrainError::RunDir {
        path: dir.display().to_string(),
        message: why,
    }
}

/// The trainer of a run directory, from its `config.toml`.
fn rebuild(dir: &Path) -> Result<Trainer> {
    if !dir.is_dir() {
        return Err(not_a_run(
            dir,
            "it does not exist or is not a directory".into(),
        ));
    }
    let path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        not_a_run(
            dir,
            format!("cannot read its {CONFIG_FILE} ({e}); `softgfn train --out` writes it"),
        )
    })?;
    let table = parse_toml(&text, &path.display().to_string())?;
    let plugin = table
        .get("env")
        .and_then(|e| e.get("name"))
        .and_then(|n| n.as_str())
        .and_then(|n| n.split_once('/'))
        .map(|(p, _)| p.to_string());
    let resolved = resolve(table);
    if let (Some(p), Err(TrainError::Core(softgfn_core::CoreError::UnknownEnvironment { .. }))) =
        (&plugin, &resolved)
    {
        return Err(not_a_run(
            dir,
            format!(
                "it trained on an environment of plugin `{p}`, which is not loaded: pass --plugin PATH (the library of `{p}`)"
            ),
        ));
    }
    let (config, env) = resolved?;
    Trainer::new(config, env)
}

impl Trained {
    /// Loads the run in `dir` with its final parameters (`model.safetensors`).
    ///
    /// # Errors
    /// A missing or unreadable `config.toml`, an environment that is not registered (its plugin
    /// not loaded), a missing (training did not finish) or corrupt model file.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let mut trainer = rebuild(dir)?;
        if !dir.join(crate::record::SUMMARY_FILE).exists() {
            let has_ck = dir.join(CHECKPOINT_DIR).is_dir();
            return Err(not_a_run(
                dir,
                format!(
                    "training did not finish (no summary.json){}",
                    if has_ck {
                        "; load its latest checkpoint instead (--checkpoint)"
                    } else {
                        ""
                    }
                ),
            ));
        }
        trainer
            .algorithm_mut()
            .load(dir)
            .map_err(|e| not_a_run(dir, format!("cannot read its trained parameters: {e}")))?;
        // The iteration, trajectory count and training time of the record the trainer wrote
        // last.
        let last = read_metrics(&dir.join(METRICS_FILE))
            .ok()
            .and_then(|r| r.last().cloned());
        if let Some(l) = last {
            trainer.set_counters(l.iteration, l.trajectories);
            trainer.set_train_seconds(l.wall_seconds);
        }
        Ok(Self::new(dir, Source::Final, trainer))
    }

    /// Loads the run in `dir` from its latest checkpoint (`checkpoint/`): parameters and the
    /// state of the environment's metric monitor.
    ///
    /// # Errors
    /// As [`Trained::load`], and a missing or corrupt checkpoint.
    pub fn load_checkpoint(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let mut trainer = rebuild(dir)?;
        let ck = checkpoint::read(dir)?;
        let at = ck.manifest.iteration;
        trainer.set_iterations(trainer.config().iterations.max(at));
        trainer.restore(ck)?;
        Ok(Self::new(dir, Source::Checkpoint(at), trainer))
    }

    fn new(dir: &Path, source: Source, trainer: Trainer) -> Self {
        let trajectories = Trajectories::new(trainer.env().spec());
        Self {
            dir: dir.to_path_buf(),
            source,
            trainer,
            sampler: Sampler::new(),
            trajectories,
            log_pf: PolicyLogPf::new(),
        }
    }

    /// The run directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the parameters come from.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// The environment.
    pub fn env(&self) -> &dyn Environment {
        self.trainer.env()
    }

    /// The trainer rebuilt around the loaded algorithm (for evaluation).
    pub fn trainer(&mut self) -> &mut Trainer {
        &mut self.trainer
    }

    /// Draws `n` objects from the trained policy (temperature 1, no exploration).
    ///
    /// # Errors
    /// `n == 0`, or an error of the environment or the policy.
    pub fn sample(&mut self, n: usize, rng: &mut Rng) -> Result<Vec<Sampled>> {
        self.sample_with(n, 1.0, rng)
    }

    /// Draws `n` objects at `temperature` (the policy's logits divided by it). `log_pf` is
    /// always under the trained policy at temperature 1.
    ///
    /// # Errors
    /// `n == 0`, a temperature that is not finite and > 0, or an error of the environment or
    /// the policy.
    pub fn sample_with(
        &mut self,
        n: usize,
        temperature: f64,
        rng: &mut Rng,
    ) -> Result<Vec<Sampled>> {
        if n == 0 {
            return Err(TrainError::invalid("n", 0, "an integer >= 1"));
        }
        if !(temperature.is_finite() && temperature > 0.0) {
            return Err(TrainError::invalid(
                "temperature",
                temperature,
                "a finite number > 0",
            ));
        }
        let exploration = Exploration {
            epsilon: 0.0,
            temperature,
        };
        let (env, algo) = self.trainer.env_and_algorithm_mut();
        self.sampler
            .sample(env, algo, n, exploration, rng, &mut self.trajectories)?;
        let t = &self.trajectories;
        let mut log_pf: Vec<f64> = (0..t.num_trajectories())
            .map(|i| {
                t.behaviour_log_probs[t.edge_offsets[i]..t.edge_offsets[i + 1]]
                    .iter()
                    .sum()
            })
            .collect();
        if temperature != 1.0 {
            // Recompute every edge's log P_F at temperature 1.
            let w = t.state_width;
            let mut states = Vec::with_capacity(t.num_edges() * w);
            for i in 0..t.num_trajectories() {
                for e in t.edge_offsets[i]..t.edge_offsets[i + 1] {
                    states.extend_from_slice(t.state(t.edge_source(i, e)));
                }
            }
            let mut lp = vec![0.0; t.num_edges()];
            self.log_pf
                .log_pf(env, algo, &states, &t.actions, &mut lp)?;
            for (i, out) in log_pf.iter_mut().enumerate() {
                *out = lp[t.edge_offsets[i]..t.edge_offsets[i + 1]].iter().sum();
            }
        }
        let mut out = Vec::with_capacity(n);
        for (i, lpf) in log_pf.into_iter().enumerate() {
            let state = t.terminal_state(i).to_vec();
            out.push(Sampled {
                readable: readable_state(env, &state)?,
                state,
                log_reward: t.log_rewards[i],
                log_pf: lpf,
            });
        }
        Ok(out)
    }

    /// `log p(x)` of each object (state rows) under the trained policy, from `m` backward
    /// trajectories each ([`crate::estimate::log_px_estimates`]).
    ///
    /// # Errors
    /// As [`crate::estimate::log_px_estimates`].
    pub fn log_px(&mut self, objects: &[StateValue], m: usize, rng: &mut Rng) -> Result<Vec<f64>> {
        let (env, algo) = self.trainer.env_and_algorithm_mut();
        crate::estimate::log_px_estimates(env, algo, objects, m, rng)
    }

    /// Evaluates the loaded policy as the trainer does (exact metrics on enumerable
    /// environments, the `log Z` estimators, the environment's metrics).
    ///
    /// # Errors
    /// An error of the environment or the policy.
    pub fn evaluate(&mut self) -> Result<EvalRecord> {
        self.trainer.evaluate()
    }
}

//! Full-state checkpoints: a run resumed from one produces bitwise the same metrics as a run that
//! never stopped.
//!
//! A checkpoint is the directory `RUN_DIR/checkpoint/`:
//!
//! | file | content |
//! |---|---|
//! | `manifest.json` | `format_version`, iteration, environment and algorithm names, the resolved config, and the length and CRC-32 of every other file |
//! | `trainer.bin` | counters, timing, every RNG state, the empirical window (postcard) |
//! | `algo.safetensors` | every tensor of the algorithm: parameters, target networks, Adam moments |
//! | `algo.bin` | the rest of the algorithm's state: Adam step counts, replay contents and priorities, counters (postcard) |
//! | `monitor.bin` | only when the environment has a [`softgfn_core::Monitor`]: its cumulative state ([`softgfn_core::Monitor::save`], e.g. which modes were found) |
//!
//! `monitor.bin` is optional and listed in the manifest like the other files, so the format
//! version stayed 1: checkpoints written before environment metrics existed still load (the
//! trainer refuses to resume them only for an environment that has a monitor, whose cumulative
//! metrics could not continue), and every other file is unchanged.
//!
//! It is written atomically: into `checkpoint.tmp/` (each file fsynced), the previous checkpoint
//! is renamed to `checkpoint.old/`, the new one into place, and the old one removed; a crash at
//! any point leaves a complete checkpoint under one of the two names, which [`read`] tries in turn.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use softgfn_core::Rng;
use softgfn_core::metrics::EmpiricalWindow;

use crate::algorithm::AlgorithmState;
use crate::error::{Result, TrainError};
use crate::record::write_atomic;

/// Version of the checkpoint format.
pub const FORMAT_VERSION: u32 = 1;
/// Checkpoint directory name inside a run directory.
pub const CHECKPOINT_DIR: &str = "checkpoint";

const MANIFEST: &str = "manifest.json";
const TRAINER: &str = "trainer.bin";
const ALGO_TENSORS: &str = "algo.safetensors";
const ALGO_BYTES: &str = "algo.bin";
const MONITOR: &str = "monitor.bin";

/// The trainer's own state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Iterations completed.
    pub iteration: u64,
    /// Trajectories sampled.
    pub trajectories: u64,
    /// Training seconds so far.
    pub train_seconds: f64,
    /// Loss sum since the last record.
    pub loss_sum: f64,
    /// Loss count since the last record.
    pub loss_count: u64,
    /// Iteration times since the last record (ms).
    pub interval_ms: Vec<f64>,
    /// Every iteration time (ms).
    pub all_ms: Vec<f64>,
    /// Sampling stream.
    pub rng_sampling: Rng,
    /// Algorithm stream.
    pub rng_algo: Rng,
    /// The empirical window.
    pub window: Option<EmpiricalWindow>,
}

/// One file of a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// File name.
    pub name: String,
    /// Length in bytes.
    pub len: u64,
    /// CRC-32 of its bytes.
    pub crc32: u32,
}

/// `manifest.json` of a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// Iterations completed at the checkpoint.
    pub iteration: u64,
    /// Environment name.
    pub env: String,
    /// Algorithm name.
    pub algo: String,
    /// The resolved config of the run (TOML).
    pub config: String,
    /// The other files.
    pub files: Vec<FileEntry>,
}

/// A checkpoint read back.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// The trainer state.
    pub trainer: TrainerState,
    /// The algorithm state.
    pub algo: AlgorithmState,
    /// The environment monitor's state (`monitor.bin`), when the run had a monitor.
    pub monitor: Option<Vec<u8>>,
}

fn err(path: &Path, message: impl Into<String>) -> TrainError {
    TrainError::Checkpoint {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// Writes a checkpoint of `run_dir` atomically; `monitor` is the environment monitor's state
/// ([`softgfn_core::Monitor::save`]), if the run has a monitor.
#[expect(
    clippy::too_many_arguments,
    reason = "one argument per part of the checkpoint, each named in the module docs"
)]
pub fn write(
    run_dir: &Path,
    iteration: u64,
    env: &str,
    algo: &str,
    config: &str,
    trainer: &TrainerState,
    algo_state: &AlgorithmState,
    monitor: Option<&[u8]>,
) -> Result<()> {
    let tmp = run_dir.join(format!("{CHECKPOINT_DIR}.tmp"));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| TrainError::io("cannot create", &tmp, e))?;
    let trainer_bytes = postcard::to_stdvec(trainer)
        .map_err(|e| err(&tmp, format!("cannot encode the trainer state: {e}")))?;
    let tensor_path = tmp.join(ALGO_TENSORS);
    softgfn_nn::save_tensors(&tensor_path, &algo_state.tensors)?;
    let tensor_bytes = std::fs::read(&tensor_path)
        .map_err(|e| TrainError::io("cannot read back", &tensor_path, e))?;
    write_atomic(&tmp.join(TRAINER), &trainer_bytes)?;
    write_atomic(&tmp.join(ALGO_BYTES), &algo_state.bytes)?;
    if let Some(bytes) = monitor {
        write_atomic(&tmp.join(MONITOR), bytes)?;
    }
    let entry = |name: &str, bytes: &[u8]| FileEntry {
        name: name.into(),
        len: bytes.len() as u64,
        crc32: crc32fast::hash(bytes),
    };
    let mut files = vec![
        entry(TRAINER, &trainer_bytes),
        entry(ALGO_TENSORS, &tensor_bytes),
        entry(ALGO_BYTES, &algo_state.bytes),
    ];
    if let Some(bytes) = monitor {
        files.push(entry(MONITOR, bytes));
    }
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        iteration,
        env: env.into(),
        algo: algo.into(),
        config: config.into(),
        files,
    };
    let text = serde_json::to_string_pretty(&manifest)
        .map_err(|e| err(&tmp, format!("cannot encode the manifest: {e}")))?;
    write_atomic(&tmp.join(MANIFEST), text.as_bytes())?;
    let cur = run_dir.join(CHECKPOINT_DIR);
    let old = run_dir.join(format!("{CHECKPOINT_DIR}.old"));
    let _ = std::fs::remove_dir_all(&old);
    if cur.exists() {
        std::fs::rename(&cur, &old).map_err(|e| TrainError::io("cannot rename", &cur, e))?;
    }
    std::fs::rename(&tmp, &cur).map_err(|e| TrainError::io("cannot rename into", &cur, e))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

fn read_dir(dir: &Path) -> Result<Checkpoint> {
    let mpath = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&mpath)
        .map_err(|e| err(&mpath, format!("cannot read the manifest ({e})")))?;
    let manifest: Manifest = serde_json::from_str(&text).map_err(|e| {
        err(
            &mpath,
            format!("malformed manifest ({e}); the checkpoint is corrupt"),
        )
    })?;
    if manifest.format_version != FORMAT_VERSION {
        return Err(err(
            dir,
            format!(
                "format version {} but this softgfn reads version {FORMAT_VERSION}; resume it with the softgfn that wrote it, or start a new run",
                manifest.format_version
            ),
        ));
    }
    let mut files = std::collections::HashMap::new();
    for f in &manifest.files {
        let p = dir.join(&f.name);
        let bytes = std::fs::read(&p).map_err(|e| err(&p, format!("cannot read ({e})")))?;
        if bytes.len() as u64 != f.len {
            return Err(err(
                &p,
                format!(
                    "truncated or corrupt: {} bytes, the manifest says {}",
                    bytes.len(),
                    f.len
                ),
            ));
        }
        let crc = crc32fast::hash(&bytes);
        if crc != f.crc32 {
            return Err(err(
                &p,
                format!(
                    "corrupt: CRC-32 {crc:08x}, the manifest says {:08x}",
                    f.crc32
                ),
            ));
        }
        files.insert(f.name.clone(), bytes);
    }
    let get = |name: &str| -> Result<&Vec<u8>> {
        files
            .get(name)
            .ok_or_else(|| err(dir, format!("the manifest does not list {name}")))
    };
    let trainer: TrainerState = postcard::from_bytes(get(TRAINER)?)
        .map_err(|e| err(&dir.join(TRAINER), format!("does not decode ({e})")))?;
    let tensors = softgfn_nn::load_tensors(&dir.join(ALGO_TENSORS))?;
    Ok(Checkpoint {
        path: dir.to_path_buf(),
        manifest,
        trainer,
        algo: AlgorithmState {
            tensors,
            bytes: get(ALGO_BYTES)?.clone(),
        },
        monitor: files.get(MONITOR).cloned(),
    })
}

/// Reads the latest complete checkpoint of a run directory (`checkpoint/`, or `checkpoint.old/`
/// when a crash interrupted the swap).
pub fn read(run_dir: &Path) -> Result<Checkpoint> {
    let cur = run_dir.join(CHECKPOINT_DIR);
    let old = run_dir.join(format!("{CHECKPOINT_DIR}.old"));
    if cur.exists() {
        return read_dir(&cur);
    }
    if old.exists() {
        return read_dir(&old);
    }
    Err(err(
        run_dir,
        "no checkpoint in this run directory; train with --checkpoint-every N to write one",
    ))
}

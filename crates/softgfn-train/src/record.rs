//! Evaluation records and the run directory (`config.toml`, `metrics.jsonl`, `metrics.csv`,
//! `model.safetensors`, `summary.json`).
//!
//! Every record is appended as one complete line with a single write and flushed to disk, so a
//! killed run keeps every record already written; whole files are written atomically (temporary
//! file, fsync, rename).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// One evaluation: a line of `metrics.jsonl` and a row of `metrics.csv`.
///
/// Fields that do not apply (exact metrics of a non-enumerable environment, the loss before the
/// first update) are `null` in JSON and empty in CSV.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EvalRecord {
    /// Iterations completed.
    pub iteration: u64,
    /// Trajectories sampled so far.
    pub trajectories: u64,
    /// Seconds spent in training iterations (sampling + updates; evaluation excluded).
    pub wall_seconds: f64,
    /// Mean training loss over the iterations since the previous record.
    pub loss: Option<f64>,
    /// The algorithm's `log Z` estimate (TB: the parameter; DB/SubTB: `log F(s0)`).
    pub log_z_learned: Option<f64>,
    /// The true `log Z` (enumerable environments).
    pub log_z_true: Option<f64>,
    /// `sum |p - q|` between the target and the policy's exact terminal distribution.
    pub exact_l1: Option<f64>,
    /// Half of `exact_l1`.
    pub exact_tv: Option<f64>,
    /// `KL(target || policy)`.
    pub exact_kl: Option<f64>,
    /// Jensen-Shannon divergence.
    pub exact_jsd: Option<f64>,
    /// Paper's L1: mean over terminal states of `|p - p_hat|` over the empirical window.
    pub emp_l1_mean: Option<f64>,
    /// Paper's KL: `KL(p || p_hat)` over the empirical window.
    pub emp_kl: Option<f64>,
    /// Median milliseconds per training iteration over the iterations since the previous record.
    pub ms_per_iteration: Option<f64>,
}

/// CSV header, in field order.
pub const CSV_COLUMNS: &[&str] = &[
    "iteration",
    "trajectories",
    "wall_seconds",
    "loss",
    "log_z_learned",
    "log_z_true",
    "exact_l1",
    "exact_tv",
    "exact_kl",
    "exact_jsd",
    "emp_l1_mean",
    "emp_kl",
    "ms_per_iteration",
];

impl EvalRecord {
    /// The CSV row (no newline).
    pub fn csv_row(&self) -> String {
        let o = |v: Option<f64>| v.map(|x| format!("{x}")).unwrap_or_default();
        [
            self.iteration.to_string(),
            self.trajectories.to_string(),
            format!("{}", self.wall_seconds),
            o(self.loss),
            o(self.log_z_learned),
            o(self.log_z_true),
            o(self.exact_l1),
            o(self.exact_tv),
            o(self.exact_kl),
            o(self.exact_jsd),
            o(self.emp_l1_mean),
            o(self.emp_kl),
            o(self.ms_per_iteration),
        ]
        .join(",")
    }
}

/// Where records go.
pub trait RecordSink {
    /// Appends one record.
    fn write(&mut self, record: &EvalRecord) -> Result<()>;
}

/// Collects records in memory (tests, examples).
impl RecordSink for Vec<EvalRecord> {
    fn write(&mut self, record: &EvalRecord) -> Result<()> {
        self.push(record.clone());
        Ok(())
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = File::create(&tmp).map_err(|e| TrainError::io("cannot create", &tmp, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| TrainError::io("cannot write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| TrainError::io("cannot rename into", path, e))?;
    Ok(())
}

/// A run directory with its metrics files open for appending.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    jsonl: File,
    csv: File,
}

/// Name of the resolved config file in a run directory.
pub const CONFIG_FILE: &str = "config.toml";
/// Name of the JSON-lines metrics file.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// Name of the CSV twin of the metrics.
pub const METRICS_CSV_FILE: &str = "metrics.csv";
/// Name of the run summary.
pub const SUMMARY_FILE: &str = "summary.json";

impl RunDir {
    /// Creates `path` (and parents). A directory that already holds a run is an error unless
    /// `overwrite`, in which case its metrics files are truncated.
    pub fn create(path: &Path, overwrite: bool) -> Result<Self> {
        std::fs::create_dir_all(path)
            .map_err(|e| TrainError::io("cannot create the output directory", path, e))?;
        let jsonl_path = path.join(METRICS_FILE);
        if jsonl_path.exists() && !overwrite {
            return Err(TrainError::Config {
                section: None,
                message: format!(
                    "the output directory {} already holds a run ({METRICS_FILE} exists); choose another --out or pass --force to overwrite it",
                    path.display()
                ),
            });
        }
        let open = |p: &Path| -> Result<File> {
            OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(p)
                .map_err(|e| TrainError::io("cannot open for writing", p, e))
        };
        let jsonl = open(&jsonl_path)?;
        let csv_path = path.join(METRICS_CSV_FILE);
        let mut csv = open(&csv_path)?;
        writeln!(csv, "{}", CSV_COLUMNS.join(","))
            .map_err(|e| TrainError::io("cannot write", &csv_path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            jsonl,
            csv,
        })
    }

    /// Reopens an existing run directory for a resumed run: keeps the records up to
    /// `iteration` (later ones were written after the checkpoint and will be written again),
    /// rewrites both metrics files atomically, and appends from there.
    pub fn reopen(path: &Path, iteration: u64) -> Result<Self> {
        let jsonl_path = path.join(METRICS_FILE);
        let kept: Vec<EvalRecord> = read_metrics(&jsonl_path)?
            .into_iter()
            .filter(|r| r.iteration <= iteration)
            .collect();
        let mut jsonl_text = String::new();
        let mut csv_text = format!("{}\n", CSV_COLUMNS.join(","));
        for r in &kept {
            let line = serde_json::to_string(r).map_err(|e| TrainError::Config {
                section: None,
                message: format!("cannot encode a record: {e}"),
            })?;
            jsonl_text.push_str(&line);
            jsonl_text.push('\n');
            csv_text.push_str(&r.csv_row());
            csv_text.push('\n');
        }
        write_atomic(&jsonl_path, jsonl_text.as_bytes())?;
        let csv_path = path.join(METRICS_CSV_FILE);
        write_atomic(&csv_path, csv_text.as_bytes())?;
        let open = |p: &Path| -> Result<File> {
            OpenOptions::new()
                .append(true)
                .open(p)
                .map_err(|e| TrainError::io("cannot open for appending", p, e))
        };
        Ok(Self {
            path: path.to_path_buf(),
            jsonl: open(&jsonl_path)?,
            csv: open(&csv_path)?,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a whole file in the directory atomically.
    pub fn write_file(&self, name: &str, bytes: &[u8]) -> Result<()> {
        write_atomic(&self.path.join(name), bytes)
    }
}

impl RecordSink for RunDir {
    fn write(&mut self, record: &EvalRecord) -> Result<()> {
        let mut line = serde_json::to_string(record).map_err(|e| TrainError::Config {
            section: None,
            message: format!("cannot encode a record: {e}"),
        })?;
        line.push('\n');
        let p = self.path.join(METRICS_FILE);
        self.jsonl
            .write_all(line.as_bytes())
            .and_then(|()| self.jsonl.sync_data())
            .map_err(|e| TrainError::io("cannot append to", &p, e))?;
        let row = format!("{}\n", record.csv_row());
        let p = self.path.join(METRICS_CSV_FILE);
        self.csv
            .write_all(row.as_bytes())
            .and_then(|()| self.csv.sync_data())
            .map_err(|e| TrainError::io("cannot append to", &p, e))?;
        Ok(())
    }
}

/// Reads a `metrics.jsonl`, skipping a truncated last line (a run killed mid-write).
pub fn read_metrics(path: &Path) -> Result<Vec<EvalRecord>> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io("cannot read", path, e))?;
    let mut out = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(r) => out.push(r),
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => break,
            Err(e) => {
                return Err(TrainError::Config {
                    section: None,
                    message: format!("{}: line {}: {e}", path.display(), i + 1),
                });
            }
        }
    }
    Ok(out)
}

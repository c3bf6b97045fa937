//! Evaluation records and the run directory (`config.toml`, `metrics.jsonl`, `metrics.csv`,
//! `model.safetensors`, `summary.json`, and with `[log] tensorboard` the event files in `tb/`).
//!
//! Every record is appended as one complete line with a single write and flushed to disk, so a
//! killed run keeps every record already written; whole files are written atomically (temporary
//! file, fsync, rename).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// One evaluation: a line of `metrics.jsonl` and a row of `metrics.csv`.
///
/// Fields that do not apply (exact metrics of a non-enumerable environment, the loss before the
/// first update) are `null` in JSON and empty in CSV; the `log Z` estimator fields, added later,
/// are left out of the JSON when absent, so that records without them keep their old form.
///
/// The environment's own metrics ([`softgfn_core::Monitor`], e.g. bitseq's `modes_found` and
/// `spearman`) are in [`EvalRecord::env_metrics`], written as extra keys of the same JSON object
/// (`{"iteration": 100, ..., "modes_found": 12, "spearman": 0.41}`) and extra CSV columns after
/// [`CSV_COLUMNS`]. Reading a record, every key that is not a field is taken as an environment
/// metric when its value is a number or `null` (other values are ignored), so records written
/// before environment metrics existed still parse.
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
    /// Exact ELBO `E_{P_F}[log w] <= log Z` of the policy (enumerable environments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact_log_z_elbo: Option<f64>,
    /// Exact EUBO `E_{P*}[log w] >= log Z` of the policy (enumerable environments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact_log_z_eubo: Option<f64>,
    /// Sampled ELBO over `eval.log_z_samples` trajectories of the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_z_elbo: Option<f64>,
    /// Importance-weighted `log mean w` over the same trajectories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_z_iw: Option<f64>,
    /// Half-width of the 95% interval of `log_z_iw` (delta method).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_z_iw_ci: Option<f64>,
    /// Sampled EUBO over `eval.log_z_samples` trajectories of `P*` (enumerable environments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_z_eubo: Option<f64>,
    /// The environment's own metrics by name (none for most environments); `None` (JSON `null`)
    /// for a value that is not finite, such as the Spearman correlation of a constant estimate.
    #[serde(
        flatten,
        serialize_with = "integers_as_integers",
        deserialize_with = "numbers_only"
    )]
    pub env_metrics: BTreeMap<String, Option<f64>>,
}

/// Writes the environment metrics, whole numbers as JSON integers (`"modes_found": 12`).
fn integers_as_integers<S>(
    metrics: &BTreeMap<String, Option<f64>>,
    s: S,
) -> std::result::Result<S::Ok, S::Error>
where
    S: serde::Serializer,
{
    /// Largest magnitude below which every whole `f64` is exact as an `i64`.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    struct Value(Option<f64>);
    impl Serialize for Value {
        fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
            match self.0 {
                Some(x) if x.fract() == 0.0 && x.abs() < EXACT => s.serialize_i64(x as i64),
                Some(x) => s.serialize_f64(x),
                None => s.serialize_none(),
            }
        }
    }
    s.collect_map(metrics.iter().map(|(k, v)| (k, Value(*v))))
}

/// The extra keys of a record: numbers and `null`s, other values dropped.
fn numbers_only<'de, D>(d: D) -> std::result::Result<BTreeMap<String, Option<f64>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let all = BTreeMap::<String, serde_json::Value>::deserialize(d)?;
    Ok(all
        .into_iter()
        .filter_map(|(k, v)| match v {
            serde_json::Value::Null => Some((k, None)),
            serde_json::Value::Number(n) => n.as_f64().map(|x| (k, Some(x))),
            _ => None,
        })
        .collect())
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
    "exact_log_z_elbo",
    "exact_log_z_eubo",
    "log_z_elbo",
    "log_z_iw",
    "log_z_iw_ci",
    "log_z_eubo",
];

/// The CSV header line (no newline): [`CSV_COLUMNS`] then the environment metric columns
/// `extra`.
pub fn csv_header(extra: &[String]) -> String {
    CSV_COLUMNS
        .iter()
        .copied()
        .chain(extra.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(",")
}

impl EvalRecord {
    /// The value of a metric column by name: a field of the record (`exact_l1`, `loss`, ...; the
    /// integer columns as `f64`) or an environment metric (`modes_found`); `None` when absent or
    /// `null`.
    pub fn value(&self, name: &str) -> Option<f64> {
        match name {
            "iteration" => Some(self.iteration as f64),
            "trajectories" => Some(self.trajectories as f64),
            "wall_seconds" => Some(self.wall_seconds),
            "loss" => self.loss,
            "log_z_learned" => self.log_z_learned,
            "log_z_true" => self.log_z_true,
            "exact_l1" => self.exact_l1,
            "exact_tv" => self.exact_tv,
            "exact_kl" => self.exact_kl,
            "exact_jsd" => self.exact_jsd,
            "emp_l1_mean" => self.emp_l1_mean,
            "emp_kl" => self.emp_kl,
            "ms_per_iteration" => self.ms_per_iteration,
            "exact_log_z_elbo" => self.exact_log_z_elbo,
            "exact_log_z_eubo" => self.exact_log_z_eubo,
            "log_z_elbo" => self.log_z_elbo,
            "log_z_iw" => self.log_z_iw,
            "log_z_iw_ci" => self.log_z_iw_ci,
            "log_z_eubo" => self.log_z_eubo,
            other => self.env_metrics.get(other).copied().flatten(),
        }
    }

    /// The CSV row of the [`CSV_COLUMNS`] (no newline).
    pub fn csv_row(&self) -> String {
        self.csv_row_with(&[])
    }

    /// The CSV row of the [`CSV_COLUMNS`] then the environment metrics `extra` (empty cells for
    /// those this record lacks), matching [`csv_header`]`(extra)` (no newline).
    pub fn csv_row_with(&self, extra: &[String]) -> String {
        let o = |v: Option<f64>| v.map(|x| format!("{x}")).unwrap_or_default();
        let extra_cells = extra
            .iter()
            .map(|name| o(self.env_metrics.get(name).copied().flatten()));
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
            o(self.exact_log_z_elbo),
            o(self.exact_log_z_eubo),
            o(self.log_z_elbo),
            o(self.log_z_iw),
            o(self.log_z_iw_ci),
            o(self.log_z_eubo),
        ]
        .into_iter()
        .chain(extra_cells)
        .collect::<Vec<_>>()
        .join(",")
    }

    /// The names of the environment metric columns of this record (sorted).
    pub fn env_metric_names(&self) -> Vec<String> {
        self.env_metrics.keys().cloned().collect()
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
///
/// The CSV header is written with the first record, so that it can name the environment metric
/// columns of that record (after the [`CSV_COLUMNS`]); later records fill the same columns.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    jsonl: File,
    csv: File,
    /// The environment metric columns of the CSV, once its header is written.
    csv_extra: Option<Vec<String>>,
    /// The TensorBoard event file, when enabled.
    tb: Option<crate::tensorboard::EventWriter>,
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
    /// `overwrite`, in which case its metrics files are truncated and its TensorBoard event
    /// files deleted.
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
        let csv = open(&path.join(METRICS_CSV_FILE))?;
        if overwrite {
            crate::tensorboard::remove_event_files(&path.join(crate::tensorboard::TB_DIR))?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            jsonl,
            csv,
            csv_extra: None,
            tb: None,
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
        let csv_extra = kept.first().map(EvalRecord::env_metric_names);
        let mut csv_text = match &csv_extra {
            Some(extra) => format!("{}\n", csv_header(extra)),
            None => String::new(),
        };
        let extra = csv_extra.clone().unwrap_or_default();
        for r in &kept {
            let line = serde_json::to_string(r).map_err(|e| TrainError::Config {
                section: None,
                message: format!("cannot encode a record: {e}"),
            })?;
            jsonl_text.push_str(&line);
            jsonl_text.push('\n');
            csv_text.push_str(&r.csv_row_with(&extra));
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
            csv_extra,
            tb: None,
        })
    }

    /// Also writes every record as TensorBoard scalars into a new event file under
    /// `tb/` ([`crate::tensorboard`]); iterations that the directory's event files already hold
    /// (a resumed run) are not written again.
    ///
    /// # Errors
    /// The directory or file cannot be created, or an existing event file is corrupt.
    pub fn enable_tensorboard(&mut self) -> Result<&Path> {
        let w = crate::tensorboard::EventWriter::for_run(&self.path)?;
        Ok(self.attach_tensorboard(w))
    }

    /// Writes every record also to `writer` (opened before with
    /// [`crate::tensorboard::EventWriter::for_run`]); returns its file.
    pub fn attach_tensorboard(&mut self, writer: crate::tensorboard::EventWriter) -> &Path {
        self.tb.insert(writer).path()
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
        let mut row = String::new();
        let extra = match &self.csv_extra {
            Some(extra) => extra,
            None => {
                let extra = record.env_metric_names();
                row.push_str(&csv_header(&extra));
                row.push('\n');
                self.csv_extra.insert(extra)
            }
        };
        row.push_str(&record.csv_row_with(extra));
        row.push('\n');
        let p = self.path.join(METRICS_CSV_FILE);
        self.csv
            .write_all(row.as_bytes())
            .and_then(|()| self.csv.sync_data())
            .map_err(|e| TrainError::io("cannot append to", &p, e))?;
        if let Some(tb) = self.tb.as_mut() {
            tb.write_record(record)?;
        }
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

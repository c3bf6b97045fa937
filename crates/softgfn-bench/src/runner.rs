//! The suite runner: every cell is a `softgfn train` worker process; results are written as they
//! come and a killed suite resumes with its unfinished cells.
//!
//! Layout of a results directory:
//!
//! ```text
//! DIR/suite.toml                     the suite as run
//! DIR/manifest.json                  suite name, shard, hardware, softgfn version, git commit
//! DIR/results.jsonl                  one record per evaluation of every finished cell (+ cell fields)
//! DIR/cells/ENV/ALGO/sSEED/          a `softgfn train` run directory per cell:
//!     request.toml  cell.json  config.toml  metrics.jsonl  metrics.csv  summary.json  stderr.log
//!     tb/events.out.tfevents.*       with `--tensorboard`: the cell's TensorBoard scalars
//! ```
//!
//! A cell is finished when its `summary.json` exists (the worker writes it last). When the suite
//! sets `checkpoint_every`, every worker writes full-state checkpoints into its cell directory,
//! and a resumed run continues an unfinished cell from its latest checkpoint (`softgfn train
//! --resume`) instead of rerunning it from zero. `results.jsonl`
//! is appended after each finished cell and rewritten in canonical order at the end of a run, so
//! a kill between the two never leaves duplicates behind.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use softgfn_train::EvalRecord;
use softgfn_train::checkpoint::CHECKPOINT_DIR;
use softgfn_train::record::{CONFIG_FILE, METRICS_FILE, SUMMARY_FILE, read_metrics, write_atomic};

use crate::error::{BenchError, Result};
use crate::suite::{Cell, Shard, Suite};

/// File name of the suite copy in a results directory.
pub const SUITE_FILE: &str = "suite.toml";
/// File name of the manifest.
pub const MANIFEST_FILE: &str = "manifest.json";
/// File name of the aggregated results.
pub const RESULTS_FILE: &str = "results.jsonl";
/// Per-cell metadata file.
pub const CELL_FILE: &str = "cell.json";
/// Per-cell request (the input config of the worker).
pub const REQUEST_FILE: &str = "request.toml";

/// The machine a suite ran on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Hardware {
    /// CPU model name.
    pub cpu: String,
    /// Logical cores available.
    pub cores: usize,
    /// Total memory in MiB.
    pub memory_mb: u64,
    /// Operating system and architecture.
    pub os: String,
}

impl Hardware {
    /// Reads what the platform tells (Linux `/proc`; fields stay empty elsewhere).
    pub fn detect() -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_default();
        let memory_mb = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<u64>().ok())
            })
            .map(|kb| kb / 1024)
            .unwrap_or(0);
        Self {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_mb,
            os: format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH),
        }
    }
}

/// Provenance recorded with a suite and with each cell.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// softgfn version.
    pub version: String,
    /// Git commit the binary was built from (or "unknown").
    pub commit: String,
    /// Hardware.
    pub hardware: Hardware,
}

/// `DIR/manifest.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Suite name.
    pub suite: String,
    /// Shard run into this directory, if any.
    pub shard: Option<Shard>,
    /// Number of cells of this directory's shard.
    pub cells: usize,
    /// Provenance.
    pub provenance: Provenance,
}

/// `cell.json`: what a cell is and where it ran.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CellMeta {
    /// The cell.
    pub cell: Cell,
    /// Registered environment name.
    pub env_name: String,
    /// Registered algorithm name.
    pub algo_name: String,
    /// Provenance.
    pub provenance: Provenance,
}

/// A record of `results.jsonl`: the cell fields and one evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResultRecord {
    /// Suite name.
    pub suite: String,
    /// Environment label.
    pub env: String,
    /// Algorithm label.
    pub algo: String,
    /// Seed.
    pub seed: u64,
    /// The evaluation.
    #[serde(flatten)]
    pub record: EvalRecord,
}

/// How to run a suite.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Results directory.
    pub out: PathBuf,
    /// Worker processes at once.
    pub jobs: usize,
    /// Continue a killed suite (skip finished cells).
    pub resume: bool,
    /// Only this shard's cells.
    pub shard: Option<Shard>,
    /// The `softgfn` executable the workers run.
    pub exe: PathBuf,
    /// Arguments placed before `train` (e.g. `--plugin PATH`).
    pub global_args: Vec<String>,
    /// Provenance to record.
    pub provenance: Provenance,
    /// Pass `--tensorboard` to every worker (event files in each cell's `tb/`).
    pub tensorboard: bool,
}

/// Receives runner progress.
pub trait RunProgress {
    /// Cells to run now and cells already finished (resume).
    fn start(&mut self, _to_run: usize, _already_done: usize) {}
    /// A cell ended.
    fn cell_done(&mut self, _cell: &Cell, _ok: bool) {}
}

impl RunProgress for () {}

/// What a run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunSummary {
    /// Cells run now.
    pub ran: usize,
    /// Cells skipped because they were finished.
    pub skipped: usize,
}

/// Whether a cell directory holds a finished run.
pub fn cell_finished(dir: &Path) -> bool {
    dir.join(SUMMARY_FILE).is_file()
}

/// Whether an unfinished cell directory holds a run that can continue from a checkpoint: its
/// resolved config and a complete checkpoint (`checkpoint/`, or `checkpoint.old/` when a kill
/// interrupted the swap).
pub fn cell_resumable(dir: &Path) -> bool {
    let manifest = |d: String| dir.join(d).join("manifest.json").is_file();
    dir.join(CONFIG_FILE).is_file()
        && (manifest(CHECKPOINT_DIR.to_string()) || manifest(format!("{CHECKPOINT_DIR}.old")))
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| BenchError::Results {
        path: path.display().to_string(),
        message: format!("cannot encode JSON: {e}"),
    })?;
    write_atomic(path, text.as_bytes()).map_err(BenchError::from)
}

/// Reads one cell's records as `results.jsonl` records.
pub fn cell_records(suite: &str, out: &Path, cell: &Cell) -> Result<Vec<ResultRecord>> {
    let records = read_metrics(&out.join(cell.dir()).join(METRICS_FILE))?;
    Ok(records
        .into_iter()
        .map(|record| ResultRecord {
            suite: suite.to_string(),
            env: cell.env.clone(),
            algo: cell.algo.clone(),
            seed: cell.seed,
            record,
        })
        .collect())
}

fn append_records(path: &Path, records: &[ResultRecord]) -> Result<()> {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| BenchError::io("cannot open for appending", path, e))?;
    for r in records {
        let mut line = serde_json::to_string(r).map_err(|e| BenchError::Results {
            path: path.display().to_string(),
            message: format!("cannot encode a record: {e}"),
        })?;
        line.push('\n');
        f.write_all(line.as_bytes())
            .map_err(|e| BenchError::io("cannot append to", path, e))?;
    }
    f.sync_data()
        .map_err(|e| BenchError::io("cannot sync", path, e))
}

/// Rewrites `results.jsonl` from the finished cells, in canonical cell order.
pub fn rebuild_results(suite: &Suite, out: &Path) -> Result<usize> {
    let mut text = String::new();
    let mut n = 0;
    for cell in suite.cells() {
        if !cell_finished(&out.join(cell.dir())) {
            continue;
        }
        for r in cell_records(&suite.name, out, &cell)? {
            let line = serde_json::to_string(&r).map_err(|e| BenchError::Results {
                path: out.display().to_string(),
                message: format!("cannot encode a record: {e}"),
            })?;
            text.push_str(&line);
            text.push('\n');
            n += 1;
        }
    }
    write_atomic(&out.join(RESULTS_FILE), text.as_bytes())?;
    Ok(n)
}

struct Running {
    cell: Cell,
    child: Child,
}

/// Runs (the shard of) a suite into `opts.out`.
pub fn run_suite(
    suite: &Suite,
    suite_text: &str,
    opts: &RunOptions,
    progress: &mut dyn RunProgress,
) -> Result<RunSummary> {
    let out = &opts.out;
    std::fs::create_dir_all(out)
        .map_err(|e| BenchError::io("cannot create the results directory", out, e))?;
    let suite_path = out.join(SUITE_FILE);
    if suite_path.exists() {
        let previous = std::fs::read_to_string(&suite_path)
            .map_err(|e| BenchError::io("cannot read", &suite_path, e))?;
        if !opts.resume {
            return Err(BenchError::Results {
                path: out.display().to_string(),
                message:
                    "already holds a suite; pass --resume to continue it or choose another --out"
                        .into(),
            });
        }
        if previous != suite_text {
            return Err(BenchError::Results {
                path: out.display().to_string(),
                message: format!(
                    "holds a different suite ({}); resume only with the same suite file",
                    suite_path.display()
                ),
            });
        }
    }
    write_atomic(&suite_path, suite_text.as_bytes())?;
    let cells = suite.shard_cells(opts.shard);
    write_json(
        &out.join(MANIFEST_FILE),
        &Manifest {
            suite: suite.name.clone(),
            shard: opts.shard,
            cells: cells.len(),
            provenance: opts.provenance.clone(),
        },
    )?;
    let (done, pending): (Vec<Cell>, Vec<Cell>) = cells
        .into_iter()
        .partition(|c| opts.resume && cell_finished(&out.join(c.dir())));
    progress.start(pending.len(), done.len());
    let results_path = out.join(RESULTS_FILE);
    let mut queue = pending.into_iter();
    let mut running: Vec<Running> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let mut ran = 0;
    let jobs = opts.jobs.max(1);
    loop {
        while running.len() < jobs {
            let Some(cell) = queue.next() else { break };
            running.push(Running {
                child: spawn_cell(suite, &cell, opts)?,
                cell,
            });
        }
        if running.is_empty() {
            break;
        }
        let mut i = 0;
        let mut any = false;
        while i < running.len() {
            let status = running[i]
                .child
                .try_wait()
                .map_err(|e| BenchError::io("cannot wait for a worker of", out, e))?;
            if let Some(status) = status {
                any = true;
                let r = running.swap_remove(i);
                ran += 1;
                let dir = out.join(r.cell.dir());
                let ok = status.success() && cell_finished(&dir);
                if ok {
                    append_records(&results_path, &cell_records(&suite.name, out, &r.cell)?)?;
                } else {
                    let log = std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
                    let last = log
                        .lines()
                        .rev()
                        .find(|l| !l.trim().is_empty())
                        .unwrap_or("(no output)");
                    failures.push(format!("{}: {last}", r.cell.id()));
                }
                progress.cell_done(&r.cell, ok);
            } else {
                i += 1;
            }
        }
        if !any {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    rebuild_results(suite, out)?;
    if !failures.is_empty() {
        return Err(BenchError::CellsFailed {
            failed: failures.len(),
            total: ran,
            details: failures
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join("; "),
        });
    }
    Ok(RunSummary {
        ran,
        skipped: done.len(),
    })
}

fn spawn_cell(suite: &Suite, cell: &Cell, opts: &RunOptions) -> Result<Child> {
    let dir = opts.out.join(cell.dir());
    std::fs::create_dir_all(&dir)
        .map_err(|e| BenchError::io("cannot create the cell directory", &dir, e))?;
    let request = suite.cell_config(cell)?;
    let text = toml::to_string(&request).map_err(|e| BenchError::Suite(e.to_string()))?;
    write_atomic(&dir.join(REQUEST_FILE), text.as_bytes())?;
    let (env, algo) = suite.entries(cell)?;
    let (env, algo) = (env.name.clone(), algo.name.clone());
    write_json(
        &dir.join(CELL_FILE),
        &CellMeta {
            cell: cell.clone(),
            env_name: env,
            algo_name: algo,
            provenance: opts.provenance.clone(),
        },
    )?;
    // A stale summary from an interrupted run must not mark the cell finished.
    let _ = std::fs::remove_file(dir.join(SUMMARY_FILE));
    // Continue from the latest checkpoint when resuming a cell that wrote one; otherwise start
    // the cell from zero (overwriting whatever an interrupted run left).
    let continue_cell = opts.resume && cell_resumable(&dir);
    let stderr_path = dir.join("stderr.log");
    let stderr = if continue_cell {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&stderr_path)
    } else {
        std::fs::File::create(&stderr_path)
    }
    .map_err(|e| BenchError::io("cannot create", &stderr_path, e))?;
    let mut cmd = Command::new(&opts.exe);
    cmd.args(&opts.global_args)
        .args(["train", "--quiet", "--exit-with-parent", "--threads", "1"]);
    if continue_cell {
        cmd.arg("--resume").arg(&dir);
    } else {
        cmd.args(["--force", "--config"])
            .arg(dir.join(REQUEST_FILE))
            .arg("--out")
            .arg(&dir);
    }
    if let Some(every) = suite.checkpoint_every {
        cmd.arg("--checkpoint-every").arg(every.to_string());
    }
    cmd.args(opts.tensorboard.then_some("--tensorboard"));
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(stderr))
        .spawn()
        .map_err(|e| BenchError::io("cannot start the worker", &opts.exe, e))?;
    Ok(child)
}

/// Combines results directories (e.g. the shards of one suite) into `out`: cells are copied
/// (a cell present twice must be identical) and `results.jsonl` is rebuilt.
pub fn merge(inputs: &[PathBuf], out: &Path) -> Result<usize> {
    let first = inputs.first().ok_or_else(|| BenchError::Results {
        path: out.display().to_string(),
        message: "nothing to merge: give at least one results directory".into(),
    })?;
    let suite_text = std::fs::read_to_string(first.join(SUITE_FILE))
        .map_err(|e| BenchError::io("cannot read", &first.join(SUITE_FILE), e))?;
    let suite = Suite::parse(&suite_text, &first.join(SUITE_FILE).display().to_string())?;
    for input in inputs {
        let text = std::fs::read_to_string(input.join(SUITE_FILE))
            .map_err(|e| BenchError::io("cannot read", &input.join(SUITE_FILE), e))?;
        if text != suite_text {
            return Err(BenchError::Results {
                path: input.display().to_string(),
                message: format!(
                    "holds a different suite than {}; only shards of one suite merge",
                    first.display()
                ),
            });
        }
    }
    std::fs::create_dir_all(out).map_err(|e| BenchError::io("cannot create", out, e))?;
    let mut copied = 0;
    for input in inputs {
        for cell in suite.cells() {
            let src = input.join(cell.dir());
            if !cell_finished(&src) {
                continue;
            }
            let dst = out.join(cell.dir());
            if cell_finished(&dst) {
                let a = read_metrics(&src.join(METRICS_FILE))?;
                let b = read_metrics(&dst.join(METRICS_FILE))?;
                if a.len() != b.len() {
                    return Err(BenchError::Results {
                        path: src.display().to_string(),
                        message: format!("cell {} differs from the copy already merged", cell.id()),
                    });
                }
                continue;
            }
            copy_dir(&src, &dst)?;
            copied += 1;
        }
    }
    write_atomic(&out.join(SUITE_FILE), suite_text.as_bytes())?;
    let manifest_src = first.join(MANIFEST_FILE);
    let manifest = std::fs::read_to_string(&manifest_src)
        .ok()
        .and_then(|text| serde_json::from_str::<Manifest>(&text).ok());
    if let Some(mut m) = manifest {
        m.shard = None;
        m.cells = suite.cells().len();
        write_json(&out.join(MANIFEST_FILE), &m)?;
    }
    rebuild_results(&suite, out)?;
    Ok(copied)
}

fn copy_dir(src: &Path, dst: &Path) -> Result<()> {
    std::fs::create_dir_all(dst).map_err(|e| BenchError::io("cannot create", dst, e))?;
    let entries = std::fs::read_dir(src).map_err(|e| BenchError::io("cannot list", src, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| BenchError::io("cannot list", src, e))?;
        let path = entry.path();
        let target = dst.join(entry.file_name());
        if path.is_dir() {
            copy_dir(&path, &target)?;
        } else {
            std::fs::copy(&path, &target).map_err(|e| BenchError::io("cannot copy", &path, e))?;
        }
    }
    Ok(())
}

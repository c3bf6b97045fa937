//! Reports: a Markdown table per environment and plots of every metric against trajectories and
//! against wall time, one line per algorithm with a band over seeds.
//!
//! Table columns: final metrics as mean ± standard deviation over seeds (`exact_l1`, `exact_kl`,
//! the paper's `emp_l1_mean` and `emp_kl`, `|log Z learned - log Z true|`, then the environment's
//! own metrics such as bitseq's `modes_found` and `spearman`, each only when some run of the
//! environment has it), the median milliseconds per iteration, the peak resident memory, and for
//! each target the trajectories and seconds needed to reach it (mean over the seeds that did,
//! with `k/n` when not all did). Targets may name any of these metrics
//! (`"modes_found >= 50"`).
//!
//! [`ReportOptions`] add two things for long runs: `partial` reports cells that have not finished
//! yet (a suite that spans sittings, reported between them; their rows say `unfinished`), and
//! `at` adds, per environment, a table of every metric at chosen iterations (the paper's "modes
//! found at 10k / 30k / 50k iterations").

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use softgfn_train::record::{METRICS_FILE, SUMMARY_FILE, read_metrics};
use softgfn_train::{EvalRecord, Summary};

use crate::error::{BenchError, Result};
use crate::plot::{Series, plot_metric};
use crate::runner::{SUITE_FILE, cell_finished};
use crate::suite::{Cell, Suite, Target};

/// The run of one cell: finished, or (with [`ReportOptions::partial`]) as far as it got.
#[derive(Clone, Debug)]
pub struct CellResult {
    /// The cell.
    pub cell: Cell,
    /// Its evaluation records.
    pub records: Vec<EvalRecord>,
    /// Its summary; `None` while the cell has not finished.
    pub summary: Option<Summary>,
}

/// What a report covers besides the finished cells' tables and plots.
#[derive(Clone, Debug, Default)]
pub struct ReportOptions {
    /// PNG copies of the plots besides the SVGs.
    pub png: bool,
    /// Also report cells that have not finished (with at least one evaluation record), marked
    /// `unfinished` in the tables.
    pub partial: bool,
    /// Iterations at which a table per environment gives every metric (records at exactly these
    /// iterations; `—` where a run has none).
    pub at: Vec<u64>,
}

/// Loads the suite and the finished cells of a results directory.
pub fn load(dir: &Path) -> Result<(Suite, Vec<CellResult>)> {
    load_cells(dir, false)
}

/// Loads the suite and the cells of a results directory: the finished ones, and with `partial`
/// also the unfinished ones that have written an evaluation record.
pub fn load_cells(dir: &Path, partial: bool) -> Result<(Suite, Vec<CellResult>)> {
    let suite = Suite::load(&dir.join(SUITE_FILE))?;
    let mut out = Vec::new();
    for cell in suite.cells() {
        let cdir = dir.join(cell.dir());
        if !cell_finished(&cdir) {
            let metrics = cdir.join(METRICS_FILE);
            if partial && metrics.is_file() {
                let records = read_metrics(&metrics)?;
                if !records.is_empty() {
                    out.push(CellResult {
                        cell,
                        records,
                        summary: None,
                    });
                }
            }
            continue;
        }
        let records = read_metrics(&cdir.join(METRICS_FILE))?;
        let path = cdir.join(SUMMARY_FILE);
        let text =
            std::fs::read_to_string(&path).map_err(|e| BenchError::io("cannot read", &path, e))?;
        let summary: Summary = serde_json::from_str(&text).map_err(|e| BenchError::Results {
            path: path.display().to_string(),
            message: format!("malformed summary: {e}"),
        })?;
        out.push(CellResult {
            cell,
            records,
            summary: Some(summary),
        });
    }
    Ok((suite, out))
}

/// The metric columns a report reads from a record: the [`REPORT_METRICS`], `exact_tv`,
/// `exact_jsd`, `loss`, `log_z_learned`, and any environment metric of the record
/// ([`EvalRecord::env_metrics`], e.g. `modes_found`). Non-finite values are `None`.
pub fn metric(r: &EvalRecord, name: &str) -> Option<f64> {
    let v = match name {
        "exact_l1" => r.exact_l1,
        "exact_tv" => r.exact_tv,
        "exact_kl" => r.exact_kl,
        "exact_jsd" => r.exact_jsd,
        "emp_l1_mean" => r.emp_l1_mean,
        "emp_kl" => r.emp_kl,
        "loss" => r.loss,
        "log_z_learned" => r.log_z_learned,
        "log_z_error" => match (r.log_z_learned, r.log_z_true) {
            (Some(a), Some(b)) => Some((a - b).abs()),
            _ => None,
        },
        other => r.env_metrics.get(other).copied().flatten(),
    };
    v.filter(|x| x.is_finite())
}

/// The environment metrics (sorted by name) that some record of `results[idx]` has a finite
/// value of: the last record of each run when `last_only`, every record otherwise.
fn env_metric_names(results: &[CellResult], idx: &[usize], last_only: bool) -> Vec<String> {
    let mut names = std::collections::BTreeSet::new();
    for &i in idx {
        let records = &results[i].records;
        let records = if last_only {
            &records[records.len().saturating_sub(1)..]
        } else {
            &records[..]
        };
        for r in records {
            for (name, v) in &r.env_metrics {
                // Names become file names of plots: identifiers only (the trainer writes no
                // others; a hand-edited record may).
                let ident = !name.is_empty()
                    && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_');
                if ident && v.is_some_and(f64::is_finite) {
                    names.insert(name.clone());
                }
            }
        }
    }
    names.into_iter().collect()
}

/// Metrics plotted and tabulated, in order.
pub const REPORT_METRICS: &[(&str, &str)] = &[
    ("exact_l1", "exact L1 (sum |p - q|)"),
    ("exact_kl", "exact KL(target || policy)"),
    ("emp_l1_mean", "empirical L1 (mean |p - p_hat|)"),
    ("emp_kl", "empirical KL(p || p_hat)"),
    ("log_z_error", "|log Z learned - log Z true|"),
];

fn mean_std(v: &[f64]) -> Option<(f64, f64)> {
    if v.is_empty() {
        return None;
    }
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let s = if v.len() > 1 {
        (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    Some((m, s))
}

/// Formats a number with about three significant digits.
pub fn fmt_num(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    let a = x.abs();
    if x.fract() == 0.0 && a < 1e9 {
        format!("{x:.0}")
    } else if !(1e-3..1e5).contains(&a) {
        format!("{x:.2e}")
    } else if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

fn fmt_mean_std(v: &[f64]) -> String {
    match mean_std(v) {
        None => "—".into(),
        Some((m, _)) if v.len() == 1 => fmt_num(m),
        Some((m, s)) => format!("{} ± {}", fmt_num(m), fmt_num(s)),
    }
}

/// The first record of a run meeting a target: `(trajectories, seconds)`.
pub fn time_to_target(records: &[EvalRecord], target: &Target) -> Option<(u64, f64)> {
    records
        .iter()
        .find(|r| metric(r, &target.metric).is_some_and(|x| target.met(x)))
        .map(|r| (r.trajectories, r.wall_seconds))
}

/// Result indices grouped by environment label, then algorithm label, in suite order.
type Grouped = Vec<(String, Vec<(String, Vec<usize>)>)>;

fn by_env_algo(suite: &Suite, results: &[CellResult]) -> Grouped {
    let mut out = Vec::new();
    for e in &suite.envs {
        let el = suite.env_label(e).to_string();
        let mut algos = Vec::new();
        for a in &suite.algos {
            let al = suite.algo_label(a).to_string();
            let idx: Vec<usize> = results
                .iter()
                .enumerate()
                .filter(|(_, r)| r.cell.env == el && r.cell.algo == al)
                .map(|(i, _)| i)
                .collect();
            if !idx.is_empty() {
                algos.push((al, idx));
            }
        }
        if !algos.is_empty() {
            out.push((el, algos));
        }
    }
    out
}

/// The Markdown report (tables only; [`write_report`] adds the plot links).
pub fn markdown(suite: &Suite, results: &[CellResult]) -> Result<String> {
    let targets = suite.parsed_targets()?;
    let mut md = format!("# {}\n\n", suite.name);
    if !suite.description.is_empty() {
        md.push_str(&format!("{}\n\n", suite.description.trim()));
    }
    md.push_str(&format!(
        "Seeds: {:?}. Final values are mean ± standard deviation over seeds.\n",
        suite.seeds
    ));
    for (env, algos) in by_env_algo(suite, results) {
        md.push_str(&format!("\n## {env}\n\n"));
        let mut header = vec![
            "algorithm".to_string(),
            "seeds".into(),
            "iterations".into(),
            "trajectories".into(),
        ];
        let shown: Vec<&(&str, &str)> = REPORT_METRICS
            .iter()
            .filter(|(m, _)| {
                algos.iter().any(|(_, idx)| {
                    idx.iter().any(|&i| {
                        results[i]
                            .records
                            .last()
                            .and_then(|r| metric(r, m))
                            .is_some()
                    })
                })
            })
            .collect();
        let all: Vec<usize> = algos.iter().flat_map(|(_, idx)| idx.clone()).collect();
        let env_shown = env_metric_names(results, &all, true);
        for m in shown
            .iter()
            .map(|(m, _)| *m)
            .chain(env_shown.iter().map(String::as_str))
        {
            header.push(format!("`{m}`"));
        }
        header.push("ms/iteration".into());
        header.push("peak MB".into());
        for t in &targets {
            header.push(format!("trajectories to `{t}`"));
            header.push(format!("seconds to `{t}`"));
        }
        md.push_str(&format!("| {} |\n", header.join(" | ")));
        md.push_str(&format!("|{}\n", "---|".repeat(header.len())));
        for (algo, idx) in &algos {
            let runs: Vec<&CellResult> = idx.iter().map(|&i| &results[i]).collect();
            let last: Vec<&EvalRecord> = runs.iter().filter_map(|r| r.records.last()).collect();
            let label = if runs.iter().any(|r| r.summary.is_none()) {
                format!("{algo} (unfinished)")
            } else {
                algo.clone()
            };
            let mut row = vec![
                label,
                runs.len().to_string(),
                fmt_mean_std(&last.iter().map(|r| r.iteration as f64).collect::<Vec<_>>()),
                fmt_mean_std(
                    &last
                        .iter()
                        .map(|r| r.trajectories as f64)
                        .collect::<Vec<_>>(),
                ),
            ];
            for m in shown
                .iter()
                .map(|(m, _)| *m)
                .chain(env_shown.iter().map(String::as_str))
            {
                let v: Vec<f64> = last.iter().filter_map(|r| metric(r, m)).collect();
                row.push(fmt_mean_std(&v));
            }
            // An unfinished run: the median of its records' per-interval timings.
            let ms: Vec<f64> = runs
                .iter()
                .filter_map(|r| match &r.summary {
                    Some(s) => Some(s.median_ms_per_iteration),
                    None => median(r.records.iter().filter_map(|x| x.ms_per_iteration)),
                })
                .filter(|x| x.is_finite())
                .collect();
            row.push(fmt_mean_std(&ms));
            let mem: Vec<f64> = runs
                .iter()
                .filter_map(|r| r.summary.as_ref().and_then(|s| s.peak_rss_mb))
                .collect();
            row.push(fmt_mean_std(&mem));
            for t in &targets {
                let hits: Vec<(u64, f64)> = runs
                    .iter()
                    .filter_map(|r| time_to_target(&r.records, t))
                    .collect();
                let note = if hits.len() < runs.len() {
                    format!(" ({}/{} reached)", hits.len(), runs.len())
                } else {
                    String::new()
                };
                if hits.is_empty() {
                    row.push(format!("not reached{note}"));
                    row.push("—".into());
                } else {
                    let tr: Vec<f64> = hits.iter().map(|h| h.0 as f64).collect();
                    let se: Vec<f64> = hits.iter().map(|h| h.1).collect();
                    row.push(format!("{}{note}", fmt_mean_std(&tr)));
                    row.push(fmt_mean_std(&se));
                }
            }
            md.push_str(&format!("| {} |\n", row.join(" | ")));
        }
    }
    Ok(md)
}

fn median(values: impl Iterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = values.filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Tables of every metric at the iterations `at`, one per environment: a row per algorithm and
/// iteration, mean ± standard deviation over the seeds with a record at exactly that iteration
/// (`k/n` seeds when not all have one yet). Empty when `at` is.
pub fn milestones_markdown(suite: &Suite, results: &[CellResult], at: &[u64]) -> String {
    let mut md = String::new();
    if at.is_empty() {
        return md;
    }
    let its: Vec<String> = at.iter().map(|i| i.to_string()).collect();
    for (env, algos) in by_env_algo(suite, results) {
        let at_records = |i: usize, it: u64| results[i].records.iter().find(|r| r.iteration == it);
        let all: Vec<usize> = algos.iter().flat_map(|(_, idx)| idx.clone()).collect();
        let has = |m: &str| {
            all.iter().any(|&i| {
                at.iter()
                    .any(|&it| at_records(i, it).and_then(|r| metric(r, m)).is_some())
            })
        };
        let mut names: Vec<String> = REPORT_METRICS
            .iter()
            .map(|(m, _)| m.to_string())
            .filter(|m| has(m))
            .collect();
        names.extend(
            env_metric_names(results, &all, false)
                .into_iter()
                .filter(|m| has(m)),
        );
        md.push_str(&format!("\n## {env} at iterations {}\n\n", its.join(", ")));
        let mut header = vec!["algorithm".to_string(), "iteration".into(), "seeds".into()];
        header.extend(names.iter().map(|m| format!("`{m}`")));
        md.push_str(&format!("| {} |\n", header.join(" | ")));
        md.push_str(&format!("|{}\n", "---|".repeat(header.len())));
        for (algo, idx) in &algos {
            for &it in at {
                let recs: Vec<&EvalRecord> =
                    idx.iter().filter_map(|&i| at_records(i, it)).collect();
                let mut row = vec![
                    algo.clone(),
                    it.to_string(),
                    format!("{}/{}", recs.len(), idx.len()),
                ];
                for m in &names {
                    let v: Vec<f64> = recs.iter().filter_map(|r| metric(r, m)).collect();
                    row.push(fmt_mean_std(&v));
                }
                md.push_str(&format!("| {} |\n", row.join(" | ")));
            }
        }
    }
    md
}

/// Series of one metric for one environment: one per algorithm, mean over seeds with a min-max
/// band; `x_seconds` picks wall time (mean over seeds) instead of trajectories.
pub fn series(
    suite: &Suite,
    results: &[CellResult],
    env: &str,
    metric_name: &str,
    x_seconds: bool,
) -> Vec<Series> {
    let mut out = Vec::new();
    for (e, algos) in by_env_algo(suite, results) {
        if e != env {
            continue;
        }
        for (algo, idx) in algos {
            // Align seeds by evaluation index (the same iterations for every seed).
            let mut points: BTreeMap<usize, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
            for &i in &idx {
                for (k, r) in results[i].records.iter().enumerate() {
                    if let Some(y) = metric(r, metric_name) {
                        let x = if x_seconds {
                            r.wall_seconds
                        } else {
                            r.trajectories as f64
                        };
                        let p = points.entry(k).or_default();
                        p.0.push(x);
                        p.1.push(y);
                    }
                }
            }
            let mut s = Series {
                name: algo.clone(),
                ..Default::default()
            };
            for (_, (xs, ys)) in points {
                if ys.len() < idx.len() {
                    continue;
                }
                let n = ys.len() as f64;
                s.x.push(xs.iter().sum::<f64>() / n);
                s.mean.push(ys.iter().sum::<f64>() / n);
                s.lo.push(ys.iter().copied().fold(f64::INFINITY, f64::min));
                s.hi.push(ys.iter().copied().fold(f64::NEG_INFINITY, f64::max));
            }
            if !s.x.is_empty() {
                out.push(s);
            }
        }
    }
    out
}

/// Files written by [`write_report`].
#[derive(Clone, Debug, Default)]
pub struct ReportFiles {
    /// The Markdown report.
    pub markdown: PathBuf,
    /// Every plot (SVG and PNG).
    pub plots: Vec<PathBuf>,
}

/// Writes `DIR/report.md` and `DIR/plots/ENV/METRIC_vs_{trajectories,seconds}.{svg,png}` for
/// the finished cells (PNG copies when `png`).
pub fn write_report(dir: &Path, png: bool) -> Result<ReportFiles> {
    write_report_with(
        dir,
        &ReportOptions {
            png,
            ..ReportOptions::default()
        },
    )
}

/// [`write_report`] with [`ReportOptions`]: unfinished cells, tables at chosen iterations.
pub fn write_report_with(dir: &Path, options: &ReportOptions) -> Result<ReportFiles> {
    let png = options.png;
    let (suite, results) = load_cells(dir, options.partial)?;
    if results.is_empty() {
        let message = if options.partial {
            "no cell has written an evaluation record yet; run the suite first (softgfn bench run)"
        } else {
            "no finished cell to report (--partial reports unfinished ones); run the suite first \
             (softgfn bench run)"
        };
        return Err(BenchError::Results {
            path: dir.display().to_string(),
            message: message.into(),
        });
    }
    let mut md = markdown(&suite, &results)?;
    md.push_str(&milestones_markdown(&suite, &results, &options.at));
    let mut files = ReportFiles::default();
    md.push_str("\n## Plots\n");
    let grouped = by_env_algo(&suite, &results);
    for e in &suite.envs {
        let env = suite.env_label(e);
        let pdir = dir.join("plots").join(env);
        let idx: Vec<usize> = grouped
            .iter()
            .filter(|(el, _)| el == env)
            .flat_map(|(_, algos)| algos.iter().flat_map(|(_, idx)| idx.clone()))
            .collect();
        let env_metrics = env_metric_names(&results, &idx, false);
        let plotted = REPORT_METRICS
            .iter()
            .map(|(m, label)| (m.to_string(), label.to_string()))
            .chain(env_metrics.into_iter().map(|m| (m.clone(), m)));
        for (m, label) in plotted {
            let (m, label) = (m.as_str(), label.as_str());
            for x_seconds in [false, true] {
                let s = series(&suite, &results, env, m, x_seconds);
                if s.is_empty() {
                    continue;
                }
                std::fs::create_dir_all(&pdir)
                    .map_err(|e| BenchError::io("cannot create", &pdir, e))?;
                let stem = format!(
                    "{m}_vs_{}",
                    if x_seconds { "seconds" } else { "trajectories" }
                );
                let title = format!("{env}: {label}");
                let xlabel = if x_seconds {
                    "training wall time (s)"
                } else {
                    "trajectories sampled"
                };
                let written = plot_metric(&pdir, &stem, &title, xlabel, label, &s, png)?;
                let rel = format!("plots/{env}/{stem}.svg");
                md.push_str(&format!("\n![{title} vs {xlabel}]({rel})\n"));
                files.plots.extend(written);
            }
        }
    }
    let path = dir.join("report.md");
    softgfn_train::record::write_atomic(&path, md.as_bytes())?;
    files.markdown = path;
    Ok(files)
}

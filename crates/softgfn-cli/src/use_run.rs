//! `softgfn sample` and `softgfn eval`: use a trained run directory.

use std::collections::{BinaryHeap, HashMap};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use softgfn_core::StateValue;
use softgfn_core::rng::{Stream, stream};
use softgfn_train::trained::{Sampled, Source, Trained};

/// Objects drawn per batch (the policy sees batches of this size; memory stays bounded).
const BATCH: usize = 4096;
/// Largest `--n`.
const MAX_N: u64 = 1 << 40;
/// Largest `--top`.
const MAX_TOP: usize = 10_000_000;

/// Output format of `softgfn sample`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Comma-separated values with a header.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

/// Arguments of `softgfn sample`.
#[derive(Args, Debug)]
pub struct SampleArgs {
    /// The run directory (written by `softgfn train`).
    #[arg(long)]
    run: PathBuf,
    /// Number of objects to draw.
    #[arg(long)]
    n: u64,
    /// Temperature dividing the policy's logits (1: the trained policy).
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    /// Seed of the draws.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output file (default: standard output).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Use the latest checkpoint instead of the final parameters.
    #[arg(long)]
    checkpoint: bool,
    /// Keep each distinct object once (with its count).
    #[arg(long)]
    unique: bool,
    /// Keep the K objects of highest reward (after --unique when given).
    #[arg(long, value_name = "K")]
    top: Option<usize>,
    /// Backward trajectories per object for the log p(x) estimate.
    #[arg(long, default_value_t = 16, value_name = "M")]
    backward_samples: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    format: Format,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

fn load(run: &Path, checkpoint: bool) -> Result<Trained> {
    Ok(if checkpoint {
        Trained::load_checkpoint(run)?
    } else {
        Trained::load(run)?
    })
}

/// One output row.
struct Row {
    sampled: Sampled,
    log_px: f64,
    count: u64,
}

fn csv_field(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn state_text(s: &[StateValue]) -> String {
    s.iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

struct Writer {
    out: Box<dyn Write>,
    format: Format,
    counts: bool,
    what: String,
}

impl Writer {
    fn header(&mut self) -> Result<()> {
        if self.format == Format::Csv {
            let extra = if self.counts { ",count" } else { "" };
            writeln!(self.out, "object,state,log_reward,log_pf,log_px{extra}")
                .with_context(|| format!("cannot write {}", self.what))?;
        }
        Ok(())
    }

    fn row(&mut self, r: &Row) -> Result<()> {
        let s = &r.sampled;
        let line = match self.format {
            Format::Csv => {
                let extra = if self.counts {
                    format!(",{}", r.count)
                } else {
                    String::new()
                };
                format!(
                    "{},{},{},{},{}{extra}",
                    csv_field(&s.readable),
                    csv_field(&state_text(&s.state)),
                    s.log_reward,
                    s.log_pf,
                    r.log_px
                )
            }
            Format::Jsonl => {
                let mut v = serde_json::json!({
                    "object": s.readable,
                    "state": s.state,
                    "log_reward": s.log_reward,
                    "log_pf": s.log_pf,
                    "log_px": r.log_px,
                });
                if self.counts {
                    v["count"] = r.count.into();
                }
                v.to_string()
            }
        };
        writeln!(self.out, "{line}").with_context(|| format!("cannot write {}", self.what))
    }
}

/// Highest reward first in a max-heap of the K best: ordered by reward reversed.
struct ByReward(f64, u64, Row);

impl PartialEq for ByReward {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == std::cmp::Ordering::Equal
    }
}
impl Eq for ByReward {}
impl PartialOrd for ByReward {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for ByReward {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        // Reversed: the heap's top is the worst kept (lowest reward, latest drawn).
        o.0.total_cmp(&self.0).then(self.1.cmp(&o.1))
    }
}

/// Runs `softgfn sample`.
pub fn sample(args: SampleArgs) -> Result<()> {
    if args.n == 0 {
        bail!("--n must be at least 1");
    }
    if args.n > MAX_N {
        bail!("--n {} is larger than the largest draw, {MAX_N}", args.n);
    }
    if !(args.temperature.is_finite() && args.temperature > 0.0) {
        bail!(
            "--temperature must be a finite number > 0, got {}",
            args.temperature
        );
    }
    if args.backward_samples == 0 {
        bail!("--backward-samples must be at least 1");
    }
    if let Some(k) = args.top
        && !(1..=MAX_TOP).contains(&k)
    {
        bail!("--top must be in 1..={MAX_TOP}, got {k}");
    }
    let mut trained = load(&args.run, args.checkpoint)?;
    let (out, what): (Box<dyn Write>, String) = match &args.out {
        Some(p) => {
            let f = File::create(p)
                .with_context(|| format!("cannot create the output file {}", p.display()))?;
            (Box::new(BufWriter::new(f)), p.display().to_string())
        }
        None => (
            Box::new(BufWriter::new(std::io::stdout().lock())),
            "standard output".into(),
        ),
    };
    let mut writer = Writer {
        out,
        format: args.format,
        counts: args.unique,
        what,
    };
    let bar = (!args.quiet && args.out.is_some()).then(|| {
        let b = ProgressBar::new(args.n);
        b.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} objects ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    });
    let mut rng = stream(args.seed, Stream::Sampling);
    let mut rng_px = stream(args.seed, Stream::Estimators);
    let aggregate = args.unique || args.top.is_some();
    let mut unique: HashMap<Vec<StateValue>, (u64, u64, Row)> = HashMap::new();
    let mut top: BinaryHeap<ByReward> = BinaryHeap::new();
    let mut drawn: u64 = 0;
    if !aggregate {
        writer.header()?;
    }
    while drawn < args.n {
        let k = (args.n - drawn).min(BATCH as u64) as usize;
        let batch = trained.sample_with(k, args.temperature, &mut rng)?;
        let need_px: Vec<usize> = if args.unique {
            batch
                .iter()
                .enumerate()
                .filter(|(_, s)| !unique.contains_key(&s.state))
                .map(|(i, _)| i)
                .collect()
        } else {
            (0..batch.len()).collect()
        };
        let mut px = vec![f64::NAN; batch.len()];
        if !need_px.is_empty() {
            let w = trained.env().spec().state_width;
            let mut rows = Vec::with_capacity(need_px.len() * w);
            for &i in &need_px {
                rows.extend_from_slice(&batch[i].state);
            }
            let est = trained.log_px(&rows, args.backward_samples, &mut rng_px)?;
            for (&i, v) in need_px.iter().zip(est) {
                px[i] = v;
            }
        }
        for (j, (s, log_px)) in batch.into_iter().zip(px).enumerate() {
            let order = drawn + j as u64;
            let row = Row {
                sampled: s,
                log_px,
                count: 1,
            };
            if args.unique {
                if let Some(e) = unique.get_mut(&row.sampled.state) {
                    e.0 += 1;
                    continue;
                }
                unique
                    .try_reserve(1)
                    .map_err(|_| anyhow::anyhow!("not enough memory to keep {} distinct objects for --unique; draw fewer (--n)", unique.len() + 1))?;
                unique.insert(row.sampled.state.clone(), (1, order, row));
            } else if let Some(kk) = args.top {
                top.push(ByReward(row.sampled.log_reward, order, row));
                if top.len() > kk {
                    top.pop();
                }
            } else {
                writer.row(&row)?;
            }
        }
        drawn += k as u64;
        if let Some(b) = &bar {
            b.set_position(drawn);
        }
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if aggregate {
        let mut rows: Vec<(f64, u64, Row)> = if args.unique {
            unique
                .into_values()
                .map(|(count, order, mut row)| {
                    row.count = count;
                    (row.sampled.log_reward, order, row)
                })
                .collect()
        } else {
            top.into_iter().map(|b| (b.0, b.1, b.2)).collect()
        };
        if args.top.is_some() {
            // Highest reward first, ties in the order drawn.
            rows.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            rows.truncate(args.top.unwrap_or(usize::MAX));
        } else {
            rows.sort_by_key(|r| r.1);
        }
        writer.header()?;
        for (_, _, row) in &rows {
            writer.row(row)?;
        }
    }
    writer
        .out
        .flush()
        .with_context(|| format!("cannot write {}", writer.what))?;
    Ok(())
}

/// Arguments of `softgfn eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// The run directory (written by `softgfn train`).
    #[arg(long)]
    run: PathBuf,
    /// Use the latest checkpoint (with its environment metric state) instead of the final
    /// parameters.
    #[arg(long)]
    checkpoint: bool,
    /// Trajectories of the sampled log Z estimators (default: the run's eval.log_z_samples).
    #[arg(long)]
    log_z_samples: Option<usize>,
    /// Objects drawn from the policy to feed a fresh environment monitor (without --checkpoint).
    #[arg(long, default_value_t = 1024)]
    monitor_samples: usize,
    /// Seed of the monitor's draws.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also write the record as one JSON line to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Runs `softgfn eval`.
pub fn eval(args: EvalArgs) -> Result<()> {
    let started = std::time::Instant::now();
    let mut trained = load(&args.run, args.checkpoint)?;
    if let Some(n) = args.log_z_samples {
        trained.trainer().set_log_z_samples(n)?;
    }
    let monitor = if trained.trainer().monitor().is_none() {
        None
    } else if let Source::Checkpoint(at) = trained.source() {
        Some(format!("restored from the checkpoint of iteration {at}"))
    } else {
        if args.monitor_samples == 0 {
            bail!(
                "--monitor-samples must be at least 1 for the environment's metrics of a final model (or use --checkpoint)"
            );
        }
        let mut rng = stream(args.seed, Stream::Sampling);
        let mut left = args.monitor_samples;
        while left > 0 {
            let k = left.min(BATCH);
            let batch = trained.sample(k, &mut rng)?;
            let states: Vec<StateValue> = batch.into_iter().flat_map(|s| s.state).collect();
            trained.trainer().observe(&states)?;
            left -= k;
        }
        Some(format!(
            "fresh, over {} objects drawn from the policy (seed {})",
            args.monitor_samples, args.seed
        ))
    };
    let record = trained.evaluate()?;
    // The record's `wall_seconds` is the run's training time; this is eval's own.
    let eval_seconds = started.elapsed().as_secs_f64();
    let json = serde_json::to_value(&record)?;
    let source = match trained.source() {
        Source::Final => "final parameters (model.safetensors)".to_string(),
        Source::Checkpoint(at) => format!("checkpoint of iteration {at}"),
    };
    println!("run {} ({source})", args.run.display());
    if let Some(m) = &monitor {
        println!("environment metrics: {m}");
    }
    if let serde_json::Value::Object(map) = &json {
        for (k, v) in map {
            if !v.is_null() {
                println!("  {k:<18} {v}");
            }
        }
    }
    println!(
        "  {:<18} {eval_seconds:.3} (this evaluation; wall_seconds is the run's training time)",
        "eval_seconds"
    );
    if let Some(p) = &args.out {
        let mut line = json;
        line["monitor"] = monitor.map(serde_json::Value::from).unwrap_or_default();
        line["source"] = source.into();
        line["eval_seconds"] = eval_seconds.into();
        std::fs::write(p, format!("{line}\n"))
            .with_context(|| format!("cannot write the record to {}", p.display()))?;
    }
    Ok(())
}

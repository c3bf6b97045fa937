//! The benchmark harness end to end: a killed suite resumes to the same results, shards merge to
//! the unsharded results, and the report is written.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn softgfn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_softgfn"))
        .args(args)
        .output()
        .expect("the softgfn binary runs")
}

const SUITE: &str = r#"
name = "two-cells"
seeds = [1]
iterations = 300
eval_interval = 50
targets = ["exact_l1 <= 0.5"]

[[env]]
name = "hypergrid"
label = "g"
set = { dim = 3, side = 5 }

[[algo]]
name = "tb"

[[algo]]
name = "db"
"#;

/// Metric columns of every record of a results directory, timing and memory aside.
fn metric_columns(dir: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join("results.jsonl")).unwrap();
    text.lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            let m = v.as_object_mut().unwrap();
            m.remove("wall_seconds");
            m.remove("ms_per_iteration");
            v
        })
        .collect()
}

fn run(suite: &Path, out: &Path, extra: &[&str]) {
    let mut args = vec![
        "bench",
        "run",
        suite.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
        "--no-report",
    ];
    args.extend_from_slice(extra);
    let o = softgfn(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn killed_suite_resumes_to_the_same_results() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = tmp.path().join("suite.toml");
    std::fs::write(&suite, SUITE).unwrap();
    let full = tmp.path().join("full");
    run(&suite, &full, &["--jobs", "1"]);
    let expected = metric_columns(&full);
    assert_eq!(
        expected.len(),
        2 * 7,
        "two cells of 7 records (0, 50, ..., 300)"
    );

    // Start again, kill the runner (SIGKILL) once the first cell has finished, then resume.
    // Workers notice that their runner is gone and stop by themselves.
    let killed = tmp.path().join("killed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_softgfn"))
        .args([
            "bench",
            "run",
            suite.to_str().unwrap(),
            "--out",
            killed.to_str().unwrap(),
            "--quiet",
            "--no-report",
            "--jobs",
            "1",
        ])
        .spawn()
        .unwrap();
    let first = killed.join("cells/g/tb/s1/summary.json");
    let t0 = Instant::now();
    while !first.exists() && t0.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(first.exists(), "the first cell did not finish");
    child.kill().unwrap();
    let _ = child.wait();
    std::thread::sleep(Duration::from_millis(600));
    let o = softgfn(&[
        "bench",
        "run",
        suite.to_str().unwrap(),
        "--out",
        killed.to_str().unwrap(),
        "--quiet",
        "--no-report",
    ]);
    assert!(
        !o.status.success(),
        "a second run without --resume must refuse"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("--resume"));
    run(&suite, &killed, &["--resume"]);
    assert_eq!(metric_columns(&killed), expected);

    // Report on the resumed directory.
    let o = softgfn(&["bench", "report", killed.to_str().unwrap(), "--no-png"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let md = std::fs::read_to_string(killed.join("report.md")).unwrap();
    assert!(
        md.contains("| tb | 1 |") && md.contains("| db | 1 |"),
        "{md}"
    );
    assert!(killed.join("plots/g/exact_l1_vs_trajectories.svg").exists());
}

#[test]
fn shards_merge_to_the_unsharded_results() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = tmp.path().join("suite.toml");
    std::fs::write(
        &suite,
        SUITE
            .replace("seeds = [1]", "seeds = [1, 2]")
            .replace("iterations = 300", "iterations = 60"),
    )
    .unwrap();
    let full = tmp.path().join("full");
    run(&suite, &full, &["--jobs", "2"]);
    let mut parts = Vec::new();
    for i in 1..=3 {
        let d = tmp.path().join(format!("shard{i}"));
        run(&suite, &d, &["--shard", &format!("{i}/3")]);
        parts.push(d);
    }
    let merged = tmp.path().join("merged");
    let mut args = vec!["bench", "merge"];
    args.extend(parts.iter().map(|p| p.to_str().unwrap()));
    args.extend(["--out", merged.to_str().unwrap()]);
    let o = softgfn(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(metric_columns(&merged), metric_columns(&full));
}

/// Iteration of the latest checkpoint of a cell directory (0 when it has none yet).
fn checkpoint_iteration(cell: &Path) -> u64 {
    std::fs::read_to_string(cell.join("checkpoint/manifest.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["iteration"].as_u64())
        .unwrap_or(0)
}

#[test]
fn killed_cell_continues_from_its_checkpoint() {
    const SUITE: &str = r#"
name = "one-long-cell"
seeds = [3]
iterations = 2000
eval_interval = 100
checkpoint_every = 100

[[env]]
name = "hypergrid"
label = "g"
set = { dim = 2, side = 8 }

[[algo]]
name = "tb"
"#;
    let tmp = tempfile::tempdir().unwrap();
    let suite = tmp.path().join("suite.toml");
    std::fs::write(&suite, SUITE).unwrap();
    let full = tmp.path().join("full");
    run(&suite, &full, &[]);
    let expected = metric_columns(&full);
    assert_eq!(expected.len(), 21, "records at 0, 100, ..., 2000");

    // Kill the runner (SIGKILL) in the middle of its only cell, once it has checkpointed
    // iteration 300 or later; the worker stops by itself when its runner is gone.
    let killed = tmp.path().join("killed");
    let cell = killed.join("cells/g/tb/s3");
    let mut child = Command::new(env!("CARGO_BIN_EXE_softgfn"))
        .args([
            "bench",
            "run",
            suite.to_str().unwrap(),
            "--out",
            killed.to_str().unwrap(),
            "--quiet",
            "--no-report",
        ])
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while checkpoint_iteration(&cell) < 300 && t0.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    let _ = child.wait();
    std::thread::sleep(Duration::from_millis(600));
    let at = checkpoint_iteration(&cell);
    assert!(at >= 300, "no checkpoint at 300 or later (latest: {at})");
    assert!(
        !cell.join("summary.json").exists(),
        "the cell finished before the kill; the test needs a longer cell"
    );
    assert!(at < 2000);

    run(&suite, &killed, &["--resume"]);
    let log = std::fs::read_to_string(cell.join("stderr.log")).unwrap();
    let start: u64 = log
        .split("from iteration ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("the cell was not continued from a checkpoint: {log}"));
    assert!(start >= 300, "continued from iteration {start}");
    assert_eq!(
        metric_columns(&killed),
        expected,
        "the continued cell differs from the uninterrupted one"
    );
}

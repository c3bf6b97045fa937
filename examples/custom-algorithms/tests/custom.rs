//! The example crate's algorithms through its own binary: listed by `algos list`, trained by
//! `train` to exact L1 <= 0.05 on hypergrid D=2, H=8, and run by `bench run`.

use std::path::Path;
use std::process::{Command, Output};

fn softgfn_custom(args: &[&str]) -> Output {
    let o = Command::new(env!("CARGO_BIN_EXE_softgfn-custom"))
        .args(args)
        .output()
        .expect("the softgfn-custom binary runs");
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn last_record(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    serde_json::from_str(text.lines().last().unwrap()).unwrap()
}

#[test]
fn algos_list_shows_the_custom_and_the_workspace_algorithms() {
    let out = String::from_utf8(softgfn_custom(&["algos", "list"]).stdout).unwrap();
    for name in ["lpv", "soft_twin_q", "tb", "munchausen_dqn"] {
        assert!(
            out.lines()
                .any(|l| l.split_whitespace().next() == Some(name)),
            "{name} missing from:\n{out}"
        );
    }
}

fn train_to_exact_l1(algo: &str, iterations: &str) -> serde_json::Value {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join(algo);
    softgfn_custom(&[
        "train",
        "--env",
        "hypergrid",
        "--algo",
        algo,
        "--set",
        "env.dim=2",
        "--set",
        "env.side=8",
        "--iterations",
        iterations,
        "--seed",
        "1",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    let last = last_record(&out);
    let l1 = last["exact_l1"].as_f64().unwrap();
    println!("{algo}: exact L1 {l1} after {iterations} iterations; {last}");
    assert!(l1 <= 0.05, "{algo}: exact L1 {l1}");
    last
}

#[test]
fn lpv_reaches_exact_l1_0_05_and_reports_its_batch_log_z() {
    let last = train_to_exact_l1("lpv", "2000");
    // log Z is the last batch's estimate: a number near the true one, not NaN.
    let (z, z_true) = (
        last["log_z_learned"]
            .as_f64()
            .expect("log_z_learned is a number"),
        last["log_z_true"].as_f64().unwrap(),
    );
    assert!((z - z_true).abs() < 0.1, "{z} vs {z_true}");
}

#[test]
fn soft_twin_q_reaches_exact_l1_0_05() {
    let last = train_to_exact_l1("soft_twin_q", "800");
    let (z, z_true) = (
        last["log_z_learned"].as_f64().unwrap(),
        last["log_z_true"].as_f64().unwrap(),
    );
    assert!((z - z_true).abs() < 0.1, "{z} vs {z_true}");
}

#[test]
fn bench_run_runs_the_custom_suite() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("suites/custom.toml");
    let text = std::fs::read_to_string(&suite)
        .unwrap()
        .replace("iterations = 1500", "iterations = 40")
        .replace("eval_interval = 250", "eval_interval = 20");
    let small = tmp.path().join("custom.toml");
    std::fs::write(&small, text).unwrap();
    let out = tmp.path().join("out");
    softgfn_custom(&[
        "bench",
        "run",
        small.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--jobs",
        "1",
        "--quiet",
    ]);
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    for name in ["lpv", "soft_twin_q", "tb"] {
        assert!(report.contains(name), "{name} missing from the report");
    }
}

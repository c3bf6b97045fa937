//! End-to-end tests of the `softgfn` binary.

use std::path::Path;
use std::process::{Command, Output};

fn softgfn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_softgfn"))
        .args(args)
        .output()
        .expect("the softgfn binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn records(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Metric columns without timing fields.
fn metric_columns(r: &serde_json::Value) -> serde_json::Value {
    let mut m = r.as_object().unwrap().clone();
    m.remove("wall_seconds");
    m.remove("ms_per_iteration");
    serde_json::Value::Object(m)
}

#[test]
fn train_writes_a_run_directory_that_reproduces_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let o = softgfn(&[
        "train",
        "--env",
        "hypergrid",
        "--algo",
        "db",
        "--set",
        "env.dim=2",
        "--set",
        "env.side=5",
        "--set",
        "eval.interval=20",
        "--iterations",
        "60",
        "--seed",
        "3",
        "--quiet",
        "--out",
        a.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in [
        "config.toml",
        "metrics.jsonl",
        "metrics.csv",
        "model.safetensors",
        "summary.json",
    ] {
        assert!(a.join(f).exists(), "{f} missing");
    }
    let ra = records(&a);
    let its: Vec<u64> = ra
        .iter()
        .map(|r| r["iteration"].as_u64().unwrap())
        .collect();
    assert_eq!(its, vec![0, 20, 40, 60]);
    for key in [
        "trajectories",
        "loss",
        "log_z_learned",
        "log_z_true",
        "exact_l1",
        "exact_tv",
        "exact_kl",
        "exact_jsd",
        "emp_l1_mean",
        "emp_kl",
    ] {
        assert!(
            ra[3].get(key).is_some_and(|v| v.is_number()),
            "{key} missing in {}",
            ra[3]
        );
    }
    let csv = std::fs::read_to_string(a.join("metrics.csv")).unwrap();
    assert!(
        csv.starts_with(
            "iteration,trajectories,wall_seconds,loss,log_z_learned,log_z_true,exact_l1"
        )
    );
    assert_eq!(csv.lines().count(), 5);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("exact_l1"), "{stdout}");

    // The resolved config reproduces the run exactly.
    let b = tmp.path().join("b");
    let cfg = a.join("config.toml");
    let o = softgfn(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--quiet",
        "--out",
        b.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rb = records(&b);
    assert_eq!(ra.len(), rb.len());
    for (x, y) in ra.iter().zip(&rb) {
        assert_eq!(metric_columns(x), metric_columns(y));
    }

    // An existing run is not overwritten without --force.
    let o = softgfn(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--quiet",
        "--out",
        b.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
}

#[test]
fn bad_names_and_keys_fail_with_the_valid_ones() {
    let o = softgfn(&[
        "train",
        "--env",
        "gridworld",
        "--quiet",
        "--out",
        "/nonexistent/never",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(
            "unknown environment `gridworld`; available: bitseq, hypergrid, qm9str, sehfrag, sehstr"
        ),
        "{}",
        stderr(&o)
    );
    let o = softgfn(&["train", "--algo", "ppo", "--quiet"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("available: db, fm, munchausen_dqn, sac, soft_dqn, subtb, tb"),
        "{}",
        stderr(&o)
    );
    let o = softgfn(&["train", "--set", "algo.lr=0.1", "--quiet"]);
    assert!(stderr(&o).contains("unknown field `lr`"), "{}", stderr(&o));
    let o = softgfn(&["train", "--set", "novalue", "--quiet"]);
    assert!(stderr(&o).contains("key=value"), "{}", stderr(&o));
}

#[test]
fn listing_and_checking() {
    let o = softgfn(&["envs", "list"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("hypergrid"));
    let o = softgfn(&["algos", "list"]);
    let s = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        s.contains("tb") && s.contains("subtb") && s.contains("db"),
        "{s}"
    );
    let o = softgfn(&[
        "check-env",
        "--env",
        "hypergrid",
        "--set",
        "env.dim=2",
        "--set",
        "env.side=4",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("check_env passed for hypergrid: 16 states")
    );
    let o = softgfn(&["config", "defaults", "--algo", "subtb"]);
    let s = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        s.contains("subtb_lambda = 0.9") && s.contains("[eval]"),
        "{s}"
    );
}

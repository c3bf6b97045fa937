//! Full-state checkpoints: for every algorithm, a run checkpointed every 100 iterations, killed
//! (SIGKILL) in the middle of a later segment and resumed, writes exactly the same metrics as a
//! run that never stopped.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn softgfn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_softgfn"))
        .args(args)
        .output()
        .expect("the softgfn binary runs")
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o
}

/// Records without timing fields.
fn records(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            let m = v.as_object_mut().unwrap();
            m.remove("wall_seconds");
            m.remove("ms_per_iteration");
            v
        })
        .collect()
}

fn last_iteration(dir: &Path) -> u64 {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["iteration"].as_u64())
        .max()
        .unwrap_or(0)
}

fn check(algo: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let base = [
        "--env",
        "hypergrid",
        "--set",
        "env.dim=2",
        "--set",
        "env.side=8",
        "--set",
        "eval.interval=50",
        "--seed",
        "5",
        "--quiet",
    ];
    let full = tmp.path().join("full");
    let mut args = vec![
        "train",
        "--algo",
        algo,
        "--iterations",
        "800",
        "--out",
        full.to_str().unwrap(),
    ];
    args.extend(base);
    ok(softgfn(&args));

    // Segment 1: 400 iterations, checkpoints every 100.
    let run = tmp.path().join("run");
    let r = run.to_str().unwrap();
    let mut args = vec![
        "train",
        "--algo",
        algo,
        "--iterations",
        "400",
        "--checkpoint-every",
        "100",
        "--out",
        r,
    ];
    args.extend(base);
    ok(softgfn(&args));
    assert!(run.join("checkpoint/manifest.json").exists());

    // Segment 2: extend to 800, killed with SIGKILL once it is past iteration 550.
    let mut child = Command::new(env!("CARGO_BIN_EXE_softgfn"))
        .args([
            "train",
            "--resume",
            r,
            "--iterations",
            "800",
            "--checkpoint-every",
            "100",
            "--quiet",
        ])
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while last_iteration(&run) < 550 && t0.elapsed() < Duration::from_secs(120) {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = child.kill();
    let _ = child.wait();

    // Segment 3: resume from the latest checkpoint; it must not start from 0.
    let o = ok(softgfn(&[
        "train",
        "--resume",
        r,
        "--iterations",
        "800",
        "--quiet",
    ]));
    let log = String::from_utf8_lossy(&o.stderr);
    let start: u64 = log
        .split("from iteration ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{algo}: no resume line in {log}"));
    assert!(start >= 400, "{algo}: resumed from {start}");
    assert_eq!(
        records(&run),
        records(&full),
        "{algo}: resumed metrics differ"
    );
}

#[test]
fn tb_resumes_bitwise() {
    check("tb");
}

#[test]
fn db_resumes_bitwise() {
    check("db");
}

#[test]
fn subtb_resumes_bitwise() {
    check("subtb");
}

#[test]
fn fm_resumes_bitwise() {
    check("fm");
}

#[test]
fn soft_dqn_resumes_bitwise() {
    check("soft_dqn");
}

#[test]
fn munchausen_dqn_resumes_bitwise() {
    check("munchausen_dqn");
}

#[test]
fn sac_resumes_bitwise() {
    check("sac");
}

#[test]
fn corrupt_and_missing_checkpoints_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let r = run.to_str().unwrap();
    let o = softgfn(&["train", "--resume", r, "--quiet"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("cannot resume"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    ok(softgfn(&[
        "train",
        "--algo",
        "tb",
        "--set",
        "env.dim=2",
        "--set",
        "env.side=4",
        "--iterations",
        "20",
        "--quiet",
        "--out",
        r,
    ]));
    let o = softgfn(&["train", "--resume", r, "--quiet"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no checkpoint"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    ok(softgfn(&[
        "train",
        "--algo",
        "tb",
        "--set",
        "env.dim=2",
        "--set",
        "env.side=4",
        "--iterations",
        "20",
        "--checkpoint-every",
        "10",
        "--quiet",
        "--force",
        "--out",
        r,
    ]));
    // Flip one byte of the tensors.
    let p = run.join("checkpoint/algo.safetensors");
    let mut bytes = std::fs::read(&p).unwrap();
    let k = bytes.len() - 5;
    bytes[k] ^= 0x40;
    std::fs::write(&p, bytes).unwrap();
    let o = softgfn(&["train", "--resume", r, "--iterations", "30", "--quiet"]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        e.contains("algo.safetensors") && e.contains("corrupt"),
        "{e}"
    );
    // A checkpoint of another format version.
    let m = run.join("checkpoint/manifest.json");
    let text = std::fs::read_to_string(&m)
        .unwrap()
        .replace("\"format_version\": 1", "\"format_version\": 99");
    std::fs::write(&m, text).unwrap();
    let e =
        String::from_utf8_lossy(&softgfn(&["train", "--resume", r, "--quiet"]).stderr).into_owned();
    assert!(e.contains("format version 99"), "{e}");
}

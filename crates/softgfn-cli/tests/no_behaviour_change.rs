//! No behaviour change: short fixed-seed runs of the soft-RL agents (SoftDQN, Munchausen DQN and
//! SAC; prioritized and uniform replay; double, dueling, the naive learned `P_B` mode; the
//! transformer on bit sequences) give exactly the metrics recorded by
//! `scripts/record-no-behaviour-change.sh` before the agents were reorganised.
//!
//! Only the fields a fixture holds are compared (fields added to the records later are not), and
//! timing fields are never recorded. A change meant to move these numbers re-records the fixtures in
//! its own commit and says why.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/no_behaviour_change")
}

fn records(text: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match serde_json::from_str(l).expect("a JSON record") {
            serde_json::Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        })
        .collect()
}

fn run_case(name: &str, args: &str) -> Vec<String> {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join(name);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_softgfn"));
    cmd.arg("train")
        .args(args.split_whitespace())
        .arg("--out")
        .arg(&out)
        .arg("--quiet");
    let o = cmd.output().expect("the softgfn binary runs");
    assert!(
        o.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let fresh = records(&std::fs::read_to_string(out.join("metrics.jsonl")).unwrap());
    let fixture =
        records(&std::fs::read_to_string(fixtures().join(format!("{name}.jsonl"))).unwrap());
    let mut diffs = Vec::new();
    if fresh.len() != fixture.len() {
        diffs.push(format!(
            "{name}: {} records, the fixture has {}",
            fresh.len(),
            fixture.len()
        ));
    }
    for (i, (want, got)) in fixture.iter().zip(&fresh).enumerate() {
        for (key, w) in want {
            let g = got.get(key).unwrap_or(&serde_json::Value::Null);
            if g != w {
                diffs.push(format!("{name}, record {i}, {key}: fixture {w}, now {g}"));
            }
        }
    }
    diffs
}

#[test]
fn soft_agents_reproduce_the_recorded_metrics() {
    let cases = std::fs::read_to_string(fixtures().join("cases.txt")).unwrap();
    let cases: Vec<(String, String)> = cases
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (name, args) = l.split_once('|').expect("name|arguments");
            (name.to_string(), args.to_string())
        })
        .collect();
    assert!(cases.len() >= 10);
    // Two at a time: the runs are single-threaded.
    let diffs: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|k| {
                let cases = &cases;
                s.spawn(move || {
                    cases
                        .iter()
                        .skip(k)
                        .step_by(2)
                        .flat_map(|(n, a)| run_case(n, a))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

/// Records of a run directory without timing fields.
fn untimed(dir: &Path) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let mut r = records(&std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap());
    for m in &mut r {
        m.remove("wall_seconds");
        m.remove("ms_per_iteration");
    }
    r
}

/// A checkpoint written by the code before the agents were reorganised (format version 1,
/// Munchausen DQN with a small network, 20 iterations) either resumes into exactly the run that
/// never stopped, or is refused with a message naming its format version.
#[test]
fn a_checkpoint_of_format_version_1_resumes_or_is_refused_by_version() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    std::fs::create_dir_all(run.join("checkpoint")).unwrap();
    let src = fixtures().join("../checkpoint_v1");
    for f in [
        "config.toml",
        "metrics.jsonl",
        "metrics.csv",
        "summary.json",
        "model.safetensors",
        "target.safetensors",
        "checkpoint/algo.bin",
        "checkpoint/algo.safetensors",
        "checkpoint/manifest.json",
        "checkpoint/trainer.bin",
    ] {
        std::fs::copy(src.join(f), run.join(f)).unwrap();
    }
    let o = Command::new(env!("CARGO_BIN_EXE_softgfn"))
        .args([
            "train",
            "--resume",
            run.to_str().unwrap(),
            "--iterations",
            "40",
            "--quiet",
        ])
        .output()
        .unwrap();
    if o.status.success() {
        let full = tmp.path().join("full");
        let o = Command::new(env!("CARGO_BIN_EXE_softgfn"))
            .args([
                "train",
                "--env",
                "hypergrid",
                "--algo",
                "munchausen_dqn",
                "--set",
                "env.dim=2",
                "--set",
                "env.side=8",
                "--set",
                "algo.hidden_dim=16",
                "--set",
                "algo.learning_starts=2",
                "--iterations",
                "40",
                "--seed",
                "1",
                "--quiet",
                "--out",
                full.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        // The stopped run's final record (iteration 20) has no twin in the uninterrupted one; the
        // records at iteration 0 and at the end (40) must be equal, but for `loss`, a mean over the
        // iterations since the previous record (20 of them in one run, 40 in the other).
        let (mut r, mut f) = (untimed(&run), untimed(&full));
        for m in r.iter_mut().chain(f.iter_mut()) {
            m.remove("loss");
        }
        assert_eq!(r.first(), f.first());
        assert_eq!(r.last(), f.last());
        assert_eq!(r.last().unwrap()["iteration"], 40);
    } else {
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("format version 1"), "{err}");
    }
}

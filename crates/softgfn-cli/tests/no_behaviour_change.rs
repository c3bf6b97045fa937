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

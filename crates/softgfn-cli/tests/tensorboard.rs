//! TensorBoard event files from the binary, read back with softgfn's own reader (record framing,
//! both CRCs, decoded scalars): `train --tensorboard` writes every number of every record at
//! step = iteration, the environment's metrics included; a resumed run appends a new file and
//! repeats no step; `bench run --tensorboard` gives every cell its own event directory.
//! (`scripts/check-tensorboard.py`, run by `.ci/run`, checks the same files with TensorBoard's
//! own reader.)

use std::path::Path;
use std::process::{Command, Output};

use softgfn_train::EvalRecord;
use softgfn_train::record::read_metrics;
use softgfn_train::tensorboard::{
    EventKind, FILE_VERSION, TB_DIR, event_files, read_events, record_scalars,
};

fn softgfn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_softgfn"))
        .args(args)
        .env_remove("SOFTGFN_PLUGIN_PATH")
        .output()
        .expect("the softgfn binary runs")
}

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

type Scalars = Vec<(String, f32)>;

/// The scalar events of a run's event files, file by file in name order; every file starts
/// with the file-version event.
fn scalar_events(run: &Path) -> Vec<Vec<(i64, Scalars)>> {
    let files = event_files(&run.join(TB_DIR)).unwrap();
    assert!(!files.is_empty(), "no event files in {}", run.display());
    files
        .iter()
        .map(|f| {
            let events = read_events(f).unwrap();
            assert_eq!(
                events[0].kind,
                EventKind::FileVersion(FILE_VERSION.into()),
                "{}",
                f.display()
            );
            events[1..]
                .iter()
                .map(|e| match &e.kind {
                    EventKind::Scalars(s) => (e.step, s.clone()),
                    other => panic!("{}: unexpected event {other:?}", f.display()),
                })
                .collect()
        })
        .collect()
}

/// The scalars a record must have been written as: every present number but the iteration,
/// as `f32`.
fn expected(r: &EvalRecord) -> Scalars {
    record_scalars(r)
        .map(|(t, v)| (t.to_string(), v as f32))
        .collect()
}

fn records(run: &Path) -> Vec<EvalRecord> {
    read_metrics(&run.join("metrics.jsonl")).unwrap()
}

fn tags(s: &Scalars) -> Vec<&str> {
    s.iter().map(|(t, _)| t.as_str()).collect()
}

#[test]
fn train_writes_every_record_as_scalars_at_its_iteration() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    ok(softgfn(&[
        "train",
        "--quiet",
        "--tensorboard",
        "--env",
        "hypergrid",
        "--algo",
        "subtb",
        "--set",
        "env.dim=2",
        "--set",
        "env.side=8",
        "--set",
        "eval.interval=10",
        "--iterations",
        "40",
        "--out",
        run.to_str().unwrap(),
    ]));
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(config.contains("[log]\ntensorboard = true"), "{config}");
    let files = scalar_events(&run);
    assert_eq!(files.len(), 1);
    let recs = records(&run);
    let steps: Vec<i64> = files[0].iter().map(|(s, _)| *s).collect();
    assert_eq!(steps, [0, 10, 20, 30, 40]);
    for ((step, scalars), r) in files[0].iter().zip(&recs) {
        assert_eq!(*step as u64, r.iteration);
        assert_eq!(scalars, &expected(r), "iteration {step}");
    }
    // The record's loss, metrics and timing, by name.
    let last = tags(&files[0][4].1);
    for t in [
        "loss",
        "log_z_learned",
        "log_z_true",
        "exact_l1",
        "exact_kl",
        "emp_l1_mean",
        "ms_per_iteration",
        "wall_seconds",
        "log_z_elbo",
        "log_z_iw",
        "log_z_eubo",
    ] {
        assert!(last.contains(&t), "{t} missing from {last:?}");
    }
    // No loss before the first update.
    assert!(!tags(&files[0][0].1).contains(&"loss"));
    let l1 = files[0][4]
        .1
        .iter()
        .find(|(t, _)| t == "exact_l1")
        .unwrap()
        .1;
    assert_eq!(l1, recs[4].exact_l1.unwrap() as f32);
}

#[test]
fn environment_metrics_become_scalars_too() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    ok(softgfn(&[
        "train",
        "--quiet",
        "--env",
        "bitseq",
        "--algo",
        "tb",
        "--set",
        "env.n=24",
        "--set",
        "env.k=4",
        "--set",
        "env.mode_threshold=6",
        "--set",
        "eval.interval=2",
        "--set",
        "log.tensorboard=true",
        "--iterations",
        "4",
        "--out",
        run.to_str().unwrap(),
    ]));
    let files = scalar_events(&run);
    let recs = records(&run);
    assert_eq!(files[0].len(), recs.len());
    for ((step, scalars), r) in files[0].iter().zip(&recs) {
        assert_eq!(*step as u64, r.iteration);
        assert_eq!(scalars, &expected(r));
        assert!(tags(scalars).contains(&"modes_found"), "{scalars:?}");
    }
}

#[test]
fn a_resumed_run_appends_a_new_file_and_repeats_no_step() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let r = run.to_str().unwrap();
    ok(softgfn(&[
        "train",
        "--quiet",
        "--tensorboard",
        "--env",
        "hypergrid",
        "--algo",
        "tb",
        "--set",
        "env.dim=2",
        "--set",
        "env.side=8",
        "--set",
        "eval.interval=10",
        "--checkpoint-every",
        "20",
        "--iterations",
        "20",
        "--out",
        r,
    ]));
    let saved = dir.path().join("checkpoint-20");
    std::fs::rename(run.join("checkpoint"), &saved).unwrap();
    std::fs::create_dir(run.join("checkpoint")).unwrap();
    for e in std::fs::read_dir(&saved).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), run.join("checkpoint").join(e.file_name())).unwrap();
    }
    ok(softgfn(&[
        "train",
        "--quiet",
        "--resume",
        r,
        "--iterations",
        "30",
    ]));
    // A kill after the record of iteration 30 but before its checkpoint: the run restarts from
    // the checkpoint of iteration 20 and writes the record of iteration 30 again.
    std::fs::remove_dir_all(run.join("checkpoint")).unwrap();
    std::fs::rename(&saved, run.join("checkpoint")).unwrap();
    ok(softgfn(&[
        "train",
        "--quiet",
        "--resume",
        r,
        "--iterations",
        "40",
    ]));
    let files = scalar_events(&run);
    let steps: Vec<Vec<i64>> = files
        .iter()
        .map(|f| f.iter().map(|(s, _)| *s).collect())
        .collect();
    assert_eq!(steps, [vec![0, 10, 20], vec![30], vec![40]]);
    // The deterministic numbers of the record of iteration 30 logged by the first resume are
    // those of the record the second resume wrote to metrics.jsonl.
    let recs = records(&run);
    let r30 = recs.iter().find(|r| r.iteration == 30).unwrap();
    let logged = &files[1][0].1;
    for t in ["exact_l1", "log_z_learned", "loss", "trajectories"] {
        let v = logged.iter().find(|(n, _)| n == t).unwrap().1;
        assert_eq!(v, r30.value(t).unwrap() as f32, "{t}");
    }
    let all: Vec<(i64, Scalars)> = files.into_iter().flatten().collect();
    assert_eq!(all.len(), recs.len());
    assert_eq!(all[4].1, expected(&recs[4]));
}

#[test]
fn every_suite_cell_writes_its_own_event_files() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("s.toml");
    std::fs::write(
        &suite,
        r#"
name = "tb-cells"
seeds = [1]
iterations = 20
eval_interval = 10

[[env]]
name = "hypergrid"
label = "g"
set = { dim = 2, side = 4 }

[[algo]]
name = "tb"

[[algo]]
name = "soft_dqn"
"#,
    )
    .unwrap();
    let out = dir.path().join("out");
    ok(softgfn(&[
        "bench",
        "run",
        suite.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
        "--no-report",
        "--tensorboard",
    ]));
    let cells = ["cells/g/tb/s1", "cells/g/soft_dqn/s1"];
    for c in cells {
        let run = out.join(c);
        let files = scalar_events(&run);
        assert_eq!(files.len(), 1, "{c}");
        let recs = records(&run);
        let steps: Vec<i64> = files[0].iter().map(|(s, _)| *s).collect();
        assert_eq!(steps, [0, 10, 20], "{c}");
        for ((_, scalars), r) in files[0].iter().zip(&recs) {
            assert_eq!(scalars, &expected(r), "{c}");
        }
    }
}

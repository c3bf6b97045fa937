//! `softgfn train` on a small bitseq, through the library: every record of `metrics.jsonl` has
//! `modes_found` and `spearman`, and a run resumed from a checkpoint reports the same numbers as
//! one that never stopped.

use std::path::Path;

use softgfn_train::record::{METRICS_CSV_FILE, METRICS_FILE};
use softgfn_train::{EvalRecord, RunDir, Trainer, apply_override, resolve};

use softgfn_bitseq as _;
use softgfn_gflownet as _;

/// TB on `n = 12, k = 3` with 3 modes, threshold 2, evaluated every 5 iterations.
fn trainer(iterations: u64) -> Trainer {
    let mut table = toml::Table::new();
    for kv in [
        "env.name=\"bitseq\"",
        "env.n=12",
        "env.k=3",
        "env.num_modes=3",
        "env.block_len=4",
        "env.alphabet=[\"0000\", \"1111\", \"1100\", \"0011\"]",
        "env.mode_threshold=2",
        "env.spearman_rounds=4",
        "algo.name=\"tb\"",
        "seed=11",
        "eval.interval=5",
    ] {
        apply_override(&mut table, kv).unwrap();
    }
    apply_override(&mut table, &format!("iterations={iterations}")).unwrap();
    let (config, env) = resolve(table).unwrap();
    Trainer::new(config, env).unwrap()
}

fn json_records(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join(METRICS_FILE))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn modes_found(records: &[EvalRecord]) -> Vec<f64> {
    records
        .iter()
        .map(|r| r.env_metrics["modes_found"].unwrap())
        .collect()
}

/// Records without the timing fields.
fn untimed(records: &[EvalRecord]) -> Vec<EvalRecord> {
    records
        .iter()
        .map(|r| EvalRecord {
            wall_seconds: 0.0,
            ms_per_iteration: None,
            ..r.clone()
        })
        .collect()
}

#[test]
fn train_writes_modes_found_and_spearman_into_every_record() {
    let tmp = tempfile::tempdir().unwrap();
    let mut t = trainer(30);
    assert!(t.monitor().is_some());
    let mut dir = RunDir::create(tmp.path(), false).unwrap();
    let summary = t.run(&mut dir, &mut ()).unwrap();
    let records = json_records(tmp.path());
    let its: Vec<u64> = records
        .iter()
        .map(|r| r["iteration"].as_u64().unwrap())
        .collect();
    assert_eq!(its, [0, 5, 10, 15, 20, 25, 30]);
    let mut last = 0.0;
    for r in &records {
        let found = r["modes_found"].as_f64().unwrap();
        assert!(found >= last && found <= 3.0, "{r}");
        last = found;
        let rho = r["spearman"].as_f64().unwrap();
        assert!((-1.0..=1.0).contains(&rho), "{r}");
        // The exact metrics are still there (the instance is enumerable).
        assert!(r["exact_l1"].is_number(), "{r}");
    }
    assert_eq!(records[0]["modes_found"], 0.0, "nothing sampled yet");
    assert!(last >= 1.0, "480 samples find a mode at distance 2");
    assert_eq!(summary.last.env_metrics["modes_found"], Some(last));
    // The CSV has the two extra columns after the fixed ones. The header is pinned whole:
    // columns are only ever appended (new fixed columns after `ms_per_iteration`, before the
    // environment's), so readers of metrics.csv that index columns by name or by their old
    // positions keep working.
    let csv = std::fs::read_to_string(tmp.path().join(METRICS_CSV_FILE)).unwrap();
    let header = csv.lines().next().unwrap();
    assert_eq!(
        header,
        "iteration,trajectories,wall_seconds,loss,log_z_learned,log_z_true,exact_l1,exact_tv,\
         exact_kl,exact_jsd,emp_l1_mean,emp_kl,ms_per_iteration,exact_log_z_elbo,\
         exact_log_z_eubo,log_z_elbo,log_z_iw,log_z_iw_ci,log_z_eubo,modes_found,spearman"
    );
    for line in csv.lines() {
        assert_eq!(line.split(',').count(), 21, "{line}");
    }
    // Every record has the log Z estimators (an enumerable instance: the EUBO too).
    for r in &records {
        for key in ["log_z_elbo", "log_z_iw", "log_z_iw_ci", "log_z_eubo"] {
            assert!(r[key].is_number(), "{key}: {r}");
        }
        let (lo, z, hi) = (
            r["exact_log_z_elbo"].as_f64().unwrap(),
            r["log_z_true"].as_f64().unwrap(),
            r["exact_log_z_eubo"].as_f64().unwrap(),
        );
        assert!(lo <= z + 1e-9 && z <= hi + 1e-9, "{r}");
    }
    assert_eq!(csv.lines().count(), 1 + records.len());
    // The records read back as EvalRecords with the metrics.
    let back = softgfn_train::record::read_metrics(&tmp.path().join(METRICS_FILE)).unwrap();
    assert_eq!(modes_found(&back).last(), Some(&last));
}

#[test]
fn a_resumed_run_reports_the_same_environment_metrics() {
    let mut full = trainer(40);
    let mut uninterrupted: Vec<EvalRecord> = Vec::new();
    full.run(&mut uninterrupted, &mut ()).unwrap();
    let found = modes_found(&uninterrupted);
    assert!(
        found.first() < found.last(),
        "modes are found during the run: {found:?}"
    );

    // 20 iterations with a checkpoint every 10, then a fresh trainer resumed to 40.
    let tmp = tempfile::tempdir().unwrap();
    let mut first = trainer(20);
    first.set_checkpointing(10, tmp.path());
    let mut resumed: Vec<EvalRecord> = Vec::new();
    first.run(&mut resumed, &mut ()).unwrap();
    let ck = softgfn_train::checkpoint::read(tmp.path()).unwrap();
    assert_eq!(ck.manifest.iteration, 20);
    assert!(ck.monitor.is_some());
    let mut second = trainer(40);
    second.restore(ck).unwrap();
    second.run(&mut resumed, &mut ()).unwrap();

    assert_eq!(modes_found(&resumed), found);
    assert_eq!(untimed(&resumed), untimed(&uninterrupted));

    // A checkpoint without the monitor's state (as written before environment metrics existed)
    // cannot continue the cumulative metrics: a clear error, not silently restarted counts.
    let manifest = tmp.path().join("checkpoint/manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    m["files"]
        .as_array_mut()
        .unwrap()
        .retain(|f| f["name"] != "monitor.bin");
    std::fs::write(&manifest, serde_json::to_string(&m).unwrap()).unwrap();
    let ck = softgfn_train::checkpoint::read(tmp.path()).unwrap();
    assert!(ck.monitor.is_none());
    let e = trainer(40).restore(ck).unwrap_err().to_string();
    assert!(
        e.contains("modes_found cannot continue") && e.contains("bitseq"),
        "{e}"
    );
}

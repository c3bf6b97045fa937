//! Environment metrics in records, CSV files and checkpoints, and the policy `log P_F` that
//! monitors evaluate.

use std::collections::BTreeMap;

use softgfn_core::EnvironmentExt;
use softgfn_core::math::masked_log_softmax;
use softgfn_core::rng::{Stream, stream};
use softgfn_core::testing::SlotEnv;
use softgfn_train::checkpoint::{self, TrainerState};
use softgfn_train::record::{CSV_COLUMNS, METRICS_CSV_FILE, read_metrics};
use softgfn_train::trainer::PolicyLogPf;
use softgfn_train::{AlgorithmState, EvalRecord, ForwardPolicy, RecordSink, Result, RunDir};

fn with_metrics(iteration: u64, modes: f64, rho: Option<f64>) -> EvalRecord {
    EvalRecord {
        iteration,
        trajectories: 16 * iteration,
        exact_l1: Some(0.5),
        env_metrics: BTreeMap::from([
            ("modes_found".to_string(), Some(modes)),
            ("spearman".to_string(), rho),
        ]),
        ..Default::default()
    }
}

#[test]
fn env_metrics_are_keys_of_the_record_and_old_records_still_parse() {
    let r = with_metrics(100, 12.0, Some(0.41));
    let line = serde_json::to_string(&r).unwrap();
    assert!(
        line.ends_with(r#""ms_per_iteration":null,"modes_found":12,"spearman":0.41}"#),
        "{line}"
    );
    let back: EvalRecord = serde_json::from_str(&line).unwrap();
    assert_eq!(back, r);
    assert_eq!(back.value("modes_found"), Some(12.0));
    assert_eq!(back.value("exact_l1"), Some(0.5));
    assert_eq!(back.value("iteration"), Some(100.0));
    assert_eq!(back.value("nothing"), None);

    // A NaN metric is written as null and read back as None.
    let nan = with_metrics(1, 0.0, None);
    let line = serde_json::to_string(&nan).unwrap();
    assert!(line.contains(r#""spearman":null"#), "{line}");
    let back: EvalRecord = serde_json::from_str(&line).unwrap();
    assert_eq!(back, nan);
    assert_eq!(back.value("spearman"), None);

    // A record written before environment metrics existed.
    let old = r#"{"iteration":20,"trajectories":320,"wall_seconds":1.5,"loss":2.0,"log_z_learned":0.1,"log_z_true":null,"exact_l1":null,"exact_tv":null,"exact_kl":null,"exact_jsd":null,"emp_l1_mean":null,"emp_kl":null,"ms_per_iteration":3.0}"#;
    let back: EvalRecord = serde_json::from_str(old).unwrap();
    assert!(back.env_metrics.is_empty());
    assert_eq!(back.loss, Some(2.0));
    assert_eq!(serde_json::to_string(&back).unwrap(), old);

    // Extra keys that are not numbers are ignored, as unknown keys always were.
    let odd = r#"{"iteration":1,"trajectories":16,"wall_seconds":0.0,"note":"x","nested":{"a":1},"modes_found":3}"#;
    let back: EvalRecord = serde_json::from_str(odd).unwrap();
    assert_eq!(
        back.env_metrics,
        BTreeMap::from([("modes_found".to_string(), Some(3.0))])
    );
}

#[test]
fn csv_has_the_env_metric_columns_of_the_first_record_and_keeps_them_on_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path();
    let mut dir = RunDir::create(path, false).unwrap();
    for (i, m) in [(0, 0.0), (10, 2.0), (20, 5.0)] {
        dir.write(&with_metrics(i, m, Some(0.25))).unwrap();
    }
    let csv = std::fs::read_to_string(path.join(METRICS_CSV_FILE)).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        format!("{},modes_found,spearman", CSV_COLUMNS.join(","))
    );
    assert!(lines[2].ends_with(",2,0.25"), "{}", lines[2]);
    assert_eq!(lines.len(), 4);

    // Resume at iteration 10: the later row goes, the header stays, new rows line up.
    drop(dir);
    let mut dir = RunDir::reopen(path, 10).unwrap();
    dir.write(&with_metrics(20, 6.0, None)).unwrap();
    let csv = std::fs::read_to_string(path.join(METRICS_CSV_FILE)).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(
        lines[0],
        format!("{},modes_found,spearman", CSV_COLUMNS.join(","))
    );
    assert!(lines[3].ends_with(",6,"), "{}", lines[3]);
    let records = read_metrics(&path.join("metrics.jsonl")).unwrap();
    assert_eq!(records.len(), 3);
    assert_eq!(records[2].env_metrics["modes_found"], Some(6.0));
    assert_eq!(records[2].env_metrics["spearman"], None);

    // Without environment metrics the header is the fixed columns, as before.
    let plain = tmp.path().join("plain");
    let mut dir = RunDir::create(&plain, false).unwrap();
    dir.write(&EvalRecord::default()).unwrap();
    let csv = std::fs::read_to_string(plain.join(METRICS_CSV_FILE)).unwrap();
    assert_eq!(csv.lines().next().unwrap(), CSV_COLUMNS.join(","));
    // A run reopened before any record was kept writes the header with its next record.
    drop(dir);
    std::fs::write(plain.join("metrics.jsonl"), "").unwrap();
    let mut dir = RunDir::reopen(&plain, 0).unwrap();
    assert_eq!(
        std::fs::read_to_string(plain.join(METRICS_CSV_FILE)).unwrap(),
        ""
    );
    dir.write(&with_metrics(5, 1.0, Some(0.5))).unwrap();
    let csv = std::fs::read_to_string(plain.join(METRICS_CSV_FILE)).unwrap();
    assert_eq!(
        csv.lines().next().unwrap(),
        format!("{},modes_found,spearman", CSV_COLUMNS.join(","))
    );
    assert_eq!(csv.lines().count(), 2);
}

fn trainer_state() -> TrainerState {
    TrainerState {
        iteration: 7,
        trajectories: 112,
        train_seconds: 0.5,
        loss_sum: 1.0,
        loss_count: 2,
        interval_ms: vec![1.0],
        all_ms: vec![1.0, 2.0],
        rng_sampling: stream(1, Stream::Sampling),
        rng_algo: stream(1, Stream::Algorithm),
        window: None,
    }
}

#[test]
fn checkpoints_carry_the_monitor_state_when_there_is_one() {
    let tmp = tempfile::tempdir().unwrap();
    let algo = AlgorithmState {
        tensors: vec![softgfn_nn::NamedTensor {
            name: "scalar.log_z".into(),
            shape: vec![1],
            data: vec![0.5],
        }],
        bytes: vec![1, 2, 3],
    };
    let state = trainer_state();
    let monitor = b"BSM1 and some state".to_vec();
    checkpoint::write(
        tmp.path(),
        7,
        "bitseq",
        "tb",
        "seed = 1\n",
        &state,
        &algo,
        Some(&monitor),
    )
    .unwrap();
    let ck = checkpoint::read(tmp.path()).unwrap();
    assert_eq!(ck.manifest.format_version, checkpoint::FORMAT_VERSION);
    assert_eq!(ck.monitor.as_deref(), Some(monitor.as_slice()));
    assert_eq!(ck.trainer, state);
    assert!(ck.manifest.files.iter().any(|f| f.name == "monitor.bin"));

    // No monitor: no file, and the checkpoint reads back without one (as checkpoints written
    // before monitors existed do).
    checkpoint::write(
        tmp.path(),
        7,
        "hypergrid",
        "tb",
        "seed = 1\n",
        &state,
        &algo,
        None,
    )
    .unwrap();
    let ck = checkpoint::read(tmp.path()).unwrap();
    assert!(ck.monitor.is_none());
    assert!(!tmp.path().join("checkpoint/monitor.bin").exists());

    // A corrupt monitor state is caught by its checksum like every other file.
    checkpoint::write(
        tmp.path(),
        7,
        "bitseq",
        "tb",
        "seed = 1\n",
        &state,
        &algo,
        Some(&monitor),
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("checkpoint/monitor.bin"),
        b"BSM1 and some stat!",
    )
    .unwrap();
    let e = checkpoint::read(tmp.path()).unwrap_err().to_string();
    assert!(e.contains("monitor.bin") && e.contains("CRC-32"), "{e}");
}

/// Logits `slot + 0.5 * bit` for action `2 * slot + bit`, whatever the state.
struct Ramp;

impl ForwardPolicy for Ramp {
    fn policy_logits(&mut self, _: &[f32], rows: usize, out: &mut [f32]) -> Result<()> {
        let na = out.len() / rows;
        for row in out.chunks_exact_mut(na) {
            for (a, o) in row.iter_mut().enumerate() {
                *o = (a / 2) as f32 + 0.5 * (a % 2) as f32;
            }
        }
        Ok(())
    }
}

#[test]
fn policy_log_pf_is_the_masked_log_softmax_of_the_policy() {
    let env = SlotEnv::new(vec![0.1, 0.2, 0.3]);
    let s0 = env.initial_row();
    let (s1, _) = env.step_one(&s0, 2).unwrap(); // slot 1 := 0
    let states = [s0.clone(), s1.clone(), s1.clone(), s0.clone()].concat();
    let actions = [5, 4, 2, 0];
    let mut out = [0.0; 4];
    let mut lp = PolicyLogPf::new();
    lp.log_pf(&env, &mut Ramp, &states, &actions, &mut out)
        .unwrap();
    let logits: Vec<f32> = (0..6)
        .map(|a| (a / 2) as f32 + 0.5 * (a % 2) as f32)
        .collect();
    let mut want = [0.0; 6];
    for (r, (s, &a)) in [&s0, &s1, &s1, &s0].iter().zip(&actions).enumerate() {
        masked_log_softmax(&logits, &env.forward_mask_of(s).unwrap(), 1.0, &mut want);
        assert_eq!(out[r], want[a as usize], "row {r}");
    }
    assert!(out[0].is_finite() && out[1].is_finite() && out[3].is_finite());
    assert_eq!(out[2], f64::NEG_INFINITY, "slot 1 is full in s1");
    // Probabilities of s0 sum to one over its actions.
    let all: Vec<u32> = (0..6).collect();
    let mut p = [0.0; 6];
    lp.log_pf(&env, &mut Ramp, &s0.repeat(6), &all, &mut p)
        .unwrap();
    assert!((p.iter().map(|x| x.exp()).sum::<f64>() - 1.0).abs() < 1e-12);
    // Bad inputs are errors naming what is wrong.
    let e = lp
        .log_pf(&env, &mut Ramp, &s0, &[6], &mut [0.0])
        .unwrap_err()
        .to_string();
    assert!(e.contains("forward actions are 0..6"), "{e}");
    assert!(
        lp.log_pf(&env, &mut Ramp, &s0, &[0, 1], &mut [0.0; 2])
            .is_err()
    );
    assert!(
        lp.log_pf(&env, &mut Ramp, &s0[..2], &[0], &mut [0.0])
            .is_err()
    );
}

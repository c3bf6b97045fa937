//! qm9str: conformance, data fidelity, exact target and modes, data_dir errors.

use std::path::PathBuf;

use softgfn_core::exact::StateGraph;
use softgfn_core::{Environment, EnvironmentExt, UniformBackward, check_env};
use softgfn_molstr::{Qm9Str, Qm9StrConfig};

/// The original data folder (`../shared/data/qm9str`), when this checkout has it.
fn shared_dir() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/qm9str");
    p.join("proxy_values.csv").is_file().then_some(p)
}

fn env() -> Qm9Str {
    Qm9Str::new(Qm9StrConfig::default()).unwrap()
}

#[test]
fn check_env_passes_exhaustively() {
    let env = env();
    let report = check_env(&env).unwrap();
    assert!(report.exhaustive, "{report}");
    assert_eq!(report.states_checked, 177_156, "{report}");
}

#[test]
fn the_embedded_table_equals_the_csv_bitwise() {
    let Some(dir) = shared_dir() else {
        eprintln!("skipped: ../shared/data/qm9str/proxy_values.csv is not in this checkout");
        return;
    };
    let text = std::fs::read_to_string(dir.join("proxy_values.csv")).unwrap();
    let mut rows = 0;
    let env = env();
    let table = env.proxy_values();
    for (i, line) in text.lines().skip(1).enumerate() {
        let (seq, val) = line.split_once(',').unwrap();
        let v: f64 = val.parse().unwrap();
        assert_eq!(table[i].to_bits(), v.to_bits(), "row {i} ({seq})");
        // The row's sequence is the string of index i.
        let s = env.parse_state(seq).unwrap();
        assert_eq!(env.proxy_value(&s).unwrap().to_bits(), v.to_bits(), "{seq}");
        rows += 1;
    }
    assert_eq!(rows, 161_051);
    assert_eq!(table.len(), 161_051);
    // data_dir pointing at the original folder (CSV) gives the same environment.
    let from_csv = Qm9Str::new(Qm9StrConfig {
        data_dir: Some(dir),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(from_csv.proxy_values(), table);
    assert_eq!(from_csv.log_z(), env.log_z());
}

#[test]
fn the_flow_recursion_matches_the_reward_table() {
    let env = env();
    let graph = StateGraph::build(&env, 200_000).unwrap();
    assert_eq!(graph.num_terminal, 161_051);
    assert_eq!(graph.longest_trajectory, 6);
    // Direct sum over the table with the original formula.
    let vals = env.proxy_values();
    let m = vals.iter().fold(1e-3f64, |m, &v| m.max(v.max(1e-3)));
    let rewards: Vec<f64> = vals
        .iter()
        .map(|&v| v.max(1e-3).powf(5.0) * 100.0 / m.powf(5.0))
        .collect();
    let direct_log_z = rewards.iter().sum::<f64>().ln();
    let flows = graph.flows(&UniformBackward);
    assert!(
        (flows.log_z - direct_log_z).abs() < 1e-9,
        "{} vs {direct_log_z}",
        flows.log_z
    );
    assert!((env.log_z().unwrap() - direct_log_z).abs() < 1e-9);
    let target = graph.target();
    assert!((target.log_z - direct_log_z).abs() < 1e-9);
    // The forward policy of the flow recursion samples exactly R/Z.
    let p = graph.terminal_distribution(&flows.log_pf).unwrap();
    let l1 = softgfn_core::metrics::l1(&p, &target.probs).unwrap();
    assert!(l1 < 1e-9, "L1 = {l1}");
    // And R/Z agrees with the direct table, state by state.
    let z: f64 = rewards.iter().sum();
    let mut idx = vec![0u64; 1];
    let mut l1_direct = 0.0;
    for (i, &r) in rewards.iter().enumerate() {
        let mut row = vec![5, 0, 0, 0, 0, 0];
        let mut rest = i;
        for j in (0..5).rev() {
            row[1 + j] = (rest % 11) as i32;
            rest /= 11;
        }
        env.as_enumerable()
            .unwrap()
            .state_index(&row, &mut idx)
            .unwrap();
        l1_direct += (p[idx[0] as usize] - r / z).abs();
    }
    assert!(l1_direct < 1e-9, "L1 vs table = {l1_direct}");
}

#[test]
fn there_are_805_modes() {
    let env = env();
    assert_eq!(env.num_modes(), 805);
    let en = env.as_enumerable().unwrap();
    let n = en.num_states();
    let idx: Vec<u64> = (0..n).collect();
    let w = env.spec().state_width;
    let mut rows = vec![0; n as usize * w];
    en.states_from_index(&idx, &mut rows).unwrap();
    let mut modes = 0;
    let mut min_mode = f64::INFINITY;
    let mut max_other = f64::NEG_INFINITY;
    for s in rows.chunks_exact(w) {
        if s[0] != 5 {
            assert!(env.is_mode(s).is_err());
            continue;
        }
        let r = env.log_reward_of(s).unwrap().exp();
        if env.is_mode(s).unwrap() {
            modes += 1;
            min_mode = min_mode.min(r);
        } else {
            max_other = max_other.max(r);
        }
    }
    assert_eq!(modes, 805);
    assert!(min_mode >= env.mode_threshold() * (1.0 - 1e-12) && max_other < min_mode);
    // The top 805 proxy values, independently.
    let mut v = env.proxy_values().to_vec();
    v.sort_by(|a, b| b.total_cmp(a));
    assert!(v[804] > v[805], "no tie at the mode boundary");
    let cut = v[804];
    let count = env.proxy_values().iter().filter(|&&x| x >= cut).count();
    assert_eq!(count, 805);
}

#[test]
fn the_registry_builds_qm9str() {
    let e = softgfn_core::build_env("qm9str", &serde_json::json!({"reward_exponent": 3})).unwrap();
    assert_eq!(e.spec().name, "qm9str");
    assert_eq!(e.params()["reward_exponent"], serde_json::json!(3.0));
}

#[test]
fn data_dir_errors_name_the_file_and_the_expectation() {
    let dir = tempfile::tempdir().unwrap();
    let build = |d: &std::path::Path| {
        Qm9Str::new(Qm9StrConfig {
            data_dir: Some(d.to_path_buf()),
            ..Default::default()
        })
        .map(|_| ())
        .unwrap_err()
        .to_string()
    };
    // Not a directory.
    let e = build(&dir.path().join("nope"));
    assert!(e.contains("nope") && e.contains("not a directory"), "{e}");
    // Missing blocks.json.
    let e = build(dir.path());
    assert!(e.contains("blocks.json") && e.contains("missing"), "{e}");
    // Malformed blocks.json.
    std::fs::write(dir.path().join("blocks.json"), "{\"block_name\": 3}").unwrap();
    let e = build(dir.path());
    assert!(
        e.contains(&dir.path().join("blocks.json").display().to_string())
            && e.contains("malformed"),
        "{e}"
    );
    // Good blocks, missing table.
    let blocks = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/qm9str/blocks.json");
    std::fs::copy(&blocks, dir.path().join("blocks.json")).unwrap();
    let e = build(dir.path());
    assert!(
        e.contains("proxy_values.f64le.gz")
            && e.contains("proxy_values.csv")
            && e.contains("missing"),
        "{e}"
    );
    // A table that is not gzip.
    std::fs::write(dir.path().join("proxy_values.f64le.gz"), b"not gzip").unwrap();
    let e = build(dir.path());
    assert!(
        e.contains("proxy_values.f64le.gz") && e.contains("gzip"),
        "{e}"
    );
    // Valid gzip of the wrong number of values.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &[0u8; 8 * 100]).unwrap();
    std::fs::write(
        dir.path().join("proxy_values.f64le.gz"),
        gz.finish().unwrap(),
    )
    .unwrap();
    let e = build(dir.path());
    assert!(e.contains("100 proxy values") && e.contains("K^L"), "{e}");
    // A CSV out of order.
    std::fs::remove_file(dir.path().join("proxy_values.f64le.gz")).unwrap();
    std::fs::write(
        dir.path().join("proxy_values.csv"),
        "sequence,proxy_value\n00000,1.0\n00002,2.0\n",
    )
    .unwrap();
    let e = build(dir.path());
    assert!(
        e.contains("proxy_values.csv") && e.contains("line 3"),
        "{e}"
    );
}

#[test]
fn a_small_table_from_a_data_dir_works() {
    // Two blocks, length 3: 8 strings; values chosen so that the reward is easy to check.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("blocks.json"),
        r#"{"block_name": {"0": "C", "1": "O"}, "block_smi": {"0": "C", "1": "O"}, "block_r": {"0": [0], "1": [1]}}"#,
    )
    .unwrap();
    let values = [1.0, 2.0, -1.0, 4.0, 0.5, 3.0, 2.0, 1.5];
    let bytes: Vec<u8> = values.iter().flat_map(|v: &f64| v.to_le_bytes()).collect();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &bytes).unwrap();
    std::fs::write(
        dir.path().join("proxy_values.f64le.gz"),
        gz.finish().unwrap(),
    )
    .unwrap();
    let env = Qm9Str::new(Qm9StrConfig {
        reward_exponent: 1.0,
        reward_scale: 4.0,
        data_dir: Some(dir.path().to_path_buf()),
    })
    .unwrap();
    assert_eq!(env.length(), 3);
    check_env(&env).unwrap();
    // R = 4 * max(v, 1e-3) / 4: the best string "011" has reward 4, "010" has 1e-3.
    let lr = |s: &str| env.log_reward_of(&env.parse_state(s).unwrap()).unwrap();
    assert!((lr("011") - 4f64.ln()).abs() < 1e-12);
    assert!((lr("010") - 1e-3f64.ln()).abs() < 1e-12);
    assert_eq!(env.num_modes(), 0, "int(8 * 0.005) = 0 modes");
    assert!(!env.is_mode(&env.parse_state("011").unwrap()).unwrap());
}

//! sehstr: conformance, tree export fidelity, statistics, data_dir errors.

use std::path::{Path, PathBuf};
use std::time::Instant;

use softgfn_core::{CheckOptions, EnvironmentExt, check_env, check_env_with};
use softgfn_molstr::{
    ProxyReward, SEH_MODE_PERCENTILE, SEH_PROXY_MAX, SehStats, SehStr, SehStrConfig,
    default_reward, shipped_trees,
};

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The original data folder (`../shared/data/sehstr`), when this checkout has it.
fn shared_dir() -> Option<PathBuf> {
    let p = manifest().join("../../../shared/data/sehstr");
    p.join("gbr_proxy.json").is_file().then_some(p)
}

fn env() -> SehStr {
    SehStr::new(SehStrConfig::default()).unwrap()
}

#[test]
fn check_env_passes_on_rollouts() {
    let env = env();
    let opts = CheckOptions {
        rollouts: 300,
        seed: 7,
        max_enumerated_states: 0,
        max_rollout_states: 20_000,
    };
    let report = check_env_with(&env, &opts).unwrap();
    assert!(!report.exhaustive);
    assert!(report.states_checked > 1_000, "{report}");
}

#[test]
fn the_tree_export_reproduces_the_original_predictions() {
    let committed = manifest().join("data/sehstr/proxy_check.csv");
    let text = std::fs::read_to_string(&committed).unwrap();
    if let Some(dir) = shared_dir() {
        let original = std::fs::read_to_string(dir.join("proxy_check.csv")).unwrap();
        assert_eq!(
            text, original,
            "the committed proxy_check.csv is a verbatim copy"
        );
    }
    let env = env();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("sequence,proxy_value"));
    let (mut rows, mut worst) = (0, 0.0f64);
    for line in lines {
        let (seq, val) = line.split_once(',').unwrap();
        let want: f64 = val.parse().unwrap();
        let s = env.parse_state(seq).unwrap();
        let got = env.proxy_value(&s).unwrap();
        worst = worst.max((got - want).abs());
        assert!((got - want).abs() < 1e-9, "{seq}: {got} vs {want}");
        // The public tree API agrees.
        assert_eq!(env.ensemble().predict(&s[1..]).unwrap(), got);
        rows += 1;
    }
    assert_eq!(rows, 2000);
    eprintln!("proxy_check: 2000 rows, largest difference {worst:e}");
}

#[test]
fn the_shipped_statistics_fit_the_shipped_trees() {
    let env = env();
    let stats = env.stats();
    let trees = shipped_trees().unwrap();
    assert!(stats.matches(&trees, &default_reward(), SEH_MODE_PERCENTILE));
    assert_eq!(stats.num_strings, 34_012_224);
    // The best string: its prediction is the maximum of the original model (to 1e-9).
    let best = env.parse_state(&stats.argmax).unwrap();
    assert_eq!(env.proxy_value(&best).unwrap(), stats.proxy_max);
    assert!(
        (stats.proxy_max - SEH_PROXY_MAX).abs() < 1e-9,
        "max {} vs {SEH_PROXY_MAX}",
        stats.proxy_max
    );
    assert!((env.log_reward_of(&best).unwrap() - 10f64.ln()).abs() < 1e-9);
    assert!(env.is_mode(&best).unwrap());
    // The 99.9th percentile: about 34,012 modes, threshold between its order statistics.
    assert!(
        (34_000..34_100).contains(&stats.num_modes),
        "{}",
        stats.num_modes
    );
    let r = default_reward();
    assert!(r.reward(stats.mode_proxy_lower) <= stats.mode_threshold);
    assert!(stats.mode_threshold <= r.reward(stats.mode_proxy_upper));
    assert_eq!(env.mode_threshold(), stats.mode_threshold);
    assert!(env.log_z().unwrap().is_finite());
    // is_mode agrees with the threshold on random strings and on the bracketing values.
    let mut x = 12345u64;
    for _ in 0..20_000 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let text: String = (0..6)
            .map(|j| softgfn_molstr::SYMBOLS[((x >> (10 + 5 * j)) % 18) as usize] as char)
            .collect();
        let s = env.parse_state(&text).unwrap();
        let reward = r.reward(env.proxy_value(&s).unwrap());
        assert_eq!(
            env.is_mode(&s).unwrap(),
            reward >= env.mode_threshold(),
            "{text}"
        );
    }
    // Another scale shifts log Z; another exponent keeps the modes but has no shipped log Z.
    let scaled = SehStr::new(SehStrConfig {
        reward_scale: 20.0,
        ..Default::default()
    })
    .unwrap();
    assert!((scaled.log_z().unwrap() - env.log_z().unwrap() - 2f64.ln()).abs() < 1e-12);
    let other = SehStr::new(SehStrConfig {
        reward_exponent: 3.0,
        ..Default::default()
    })
    .unwrap();
    assert!(other.log_z().is_none());
    assert!(other.is_mode(&best).unwrap());
    assert!(other.mode_threshold() > env.mode_threshold());
    assert!(other.is_mode(&other.parse_state("000000").unwrap()).is_ok());
}

#[test]
fn the_registry_builds_sehstr() {
    let e = softgfn_core::build_env("sehstr", &serde_json::Value::Null).unwrap();
    assert_eq!(e.spec().name, "sehstr");
    assert_eq!(
        e.params(),
        serde_json::json!({"reward_exponent": 6.0, "reward_scale": 10.0})
    );
}

#[test]
fn the_original_folder_works_as_data_dir() {
    let Some(dir) = shared_dir() else {
        eprintln!("skipped: ../shared/data/sehstr is not in this checkout");
        return;
    };
    // Plain gbr_proxy.json and no stats.json: the trees are the shipped ones, so are the stats.
    let env = SehStr::new(SehStrConfig {
        data_dir: Some(dir),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        env.ensemble().fingerprint(),
        shipped_trees().unwrap().fingerprint()
    );
    assert_eq!(env.stats().log_z, self::env().stats().log_z);
}

fn write_synthetic(dir: &Path) {
    // Three blocks, length 4 (n_features = 12): 81 strings.
    std::fs::write(
        dir.join("blocks.json"),
        r#"{"block_name": {"0": "A", "1": "B", "2": "C"}, "block_smi": {"0": "C", "1": "N", "2": "O"},
            "block_r": {"0": [0, 1], "1": [0, 1], "2": [1, 1]}}"#,
    )
    .unwrap();
    let tree = |f1: usize, f2: usize, f3: usize, a: f64, b: f64, c: f64, d: f64| {
        serde_json::json!([
            {"leaf": false, "value": 0, "feature": f1, "threshold": 0.5, "left": 1, "right": 4},
            {"leaf": false, "value": 0, "feature": f2, "threshold": 0.5, "left": 2, "right": 3},
            {"leaf": true, "value": a}, {"leaf": true, "value": b},
            {"leaf": false, "value": 0, "feature": f3, "threshold": 0.5, "left": 5, "right": 6},
            {"leaf": true, "value": c}, {"leaf": true, "value": d}
        ])
    };
    let json = serde_json::json!({"n_features": 12, "baseline": 3.0, "trees": [
        tree(0, 4, 11, 0.1, 1.3, -0.7, 2.2),
        tree(5, 10, 5, -0.2, 0.9, 1.7, 0.05),
        tree(9, 1, 6, 0.0, -1.1, 0.6, 1.25),
        tree(3, 8, 2, 0.3, 0.45, -0.15, 1.9),
    ]});
    std::fs::write(dir.join("gbr_proxy.json"), json.to_string()).unwrap();
}

#[test]
fn custom_trees_get_exact_modes_on_load() {
    let dir = tempfile::tempdir().unwrap();
    write_synthetic(dir.path());
    let env = SehStr::new(SehStrConfig {
        data_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!((env.length(), env.blocks().len()), (4, 3));
    let report = check_env(&env).unwrap();
    assert!(report.exhaustive, "{report}");
    // Brute force: every string, np.percentile(rewards, 99.9) and the modes at or above it.
    let r = *env.proxy_reward();
    let mut rewards = Vec::new();
    let mut strings = Vec::new();
    for i in 0..81 {
        let text: String = (0..4)
            .map(|j| char::from(b'0' + ((i / 3usize.pow(3 - j)) % 3) as u8))
            .collect();
        let s = env.parse_state(&text).unwrap();
        let lr = env.log_reward_of(&s).unwrap();
        assert!((lr - r.reward(env.proxy_value(&s).unwrap()).ln()).abs() < 1e-12);
        rewards.push(r.reward(env.proxy_value(&s).unwrap()));
        strings.push(s);
    }
    let mut sorted = rewards.clone();
    sorted.sort_by(f64::total_cmp);
    let h = 80.0 * (99.9 / 100.0);
    let lo = h as usize;
    let t = h - lo as f64;
    let d = sorted[lo + 1] - sorted[lo];
    let threshold = if t >= 0.5 {
        sorted[lo + 1] - d * (1.0 - t)
    } else {
        sorted[lo] + d * t
    };
    assert_eq!(env.mode_threshold(), threshold);
    let mut modes = 0;
    for (s, &rw) in strings.iter().zip(&rewards) {
        assert_eq!(env.is_mode(s).unwrap(), rw >= threshold);
        modes += u64::from(rw >= threshold);
    }
    assert_eq!(env.num_modes(), modes);
    assert_eq!(modes, 1, "the top 0.1% of 81 strings is the best one");
    let z: f64 = rewards.iter().sum();
    assert!((env.log_z().unwrap() - z.ln()).abs() < 1e-12);

    // Cached statistics in the data directory are used, and must be of these trees.
    let stats =
        SehStats::load_or_compute_for(env.ensemble(), &r, dir.path(), &mut |_, _| {}).unwrap();
    assert_eq!(stats.num_modes, 1);
    let again = SehStr::new(SehStrConfig {
        data_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(again.stats(), &stats);
}

#[test]
fn data_dir_errors_name_the_file_and_the_expectation() {
    let dir = tempfile::tempdir().unwrap();
    let build = |d: &Path| {
        SehStr::new(SehStrConfig {
            data_dir: Some(d.to_path_buf()),
            ..Default::default()
        })
        .map(|_| ())
        .unwrap_err()
        .to_string()
    };
    let e = build(dir.path());
    assert!(e.contains("blocks.json") && e.contains("missing"), "{e}");
    write_synthetic(dir.path());
    let trees = dir.path().join("gbr_proxy.json");
    // Missing trees.
    std::fs::remove_file(&trees).unwrap();
    let e = build(dir.path());
    assert!(
        e.contains("gbr_proxy.json.gz") && e.contains("gbr_proxy.json") && e.contains("missing"),
        "{e}"
    );
    // Malformed trees.
    std::fs::write(&trees, "{\"n_features\": 12, \"trees\": 5}").unwrap();
    let e = build(dir.path());
    assert!(
        e.contains(&trees.display().to_string()) && e.contains("malformed"),
        "{e}"
    );
    // Trees that do not fit the blocks.
    std::fs::write(
        &trees,
        r#"{"n_features": 13, "baseline": 1.0, "trees": [[{"leaf": true, "value": 1.0}]]}"#,
    )
    .unwrap();
    let e = build(dir.path());
    assert!(
        e.contains("n_features = 13") && e.contains("3 blocks"),
        "{e}"
    );
    // A corrupt gzip.
    std::fs::remove_file(&trees).unwrap();
    std::fs::write(dir.path().join("gbr_proxy.json.gz"), b"junk").unwrap();
    let e = build(dir.path());
    assert!(e.contains("gbr_proxy.json.gz") && e.contains("gzip"), "{e}");
    std::fs::remove_file(dir.path().join("gbr_proxy.json.gz")).unwrap();
    // Malformed statistics, and statistics of other trees.
    write_synthetic(dir.path());
    let stats = dir.path().join("stats.json");
    std::fs::write(&stats, "{\"format\": 1}").unwrap();
    let e = build(dir.path());
    assert!(
        e.contains(&stats.display().to_string()) && e.contains("malformed"),
        "{e}"
    );
    let shipped = SehStr::new(SehStrConfig::default()).unwrap();
    shipped.stats().write_atomic(&stats).unwrap();
    let e = build(dir.path());
    assert!(e.contains("other trees") && e.contains("stats.json"), "{e}");
}

#[test]
fn a_stats_reward_transform_round_trips_through_json() {
    let r = ProxyReward {
        exponent: 6.0,
        scale: 10.0,
        floor: 1e-3,
        normaliser: SEH_PROXY_MAX,
    };
    assert_eq!(r, default_reward());
    let stats = env().stats().clone();
    let text = serde_json::to_string(&stats).unwrap();
    assert_eq!(SehStats::from_json("x", text.as_bytes()).unwrap(), stats);
}

/// The full statistics over all 34,012,224 strings (about 7 s on two cores in release mode):
/// `cargo test --release -p softgfn-molstr --test sehstr -- --ignored --nocapture`.
#[test]
#[ignore = "enumerates all 34M sEH strings; run in release mode"]
fn full_statistics_match_the_shipped_file() {
    let trees = shipped_trees().unwrap();
    let start = Instant::now();
    let mut last = 0;
    let stats = SehStats::compute(&trees, &default_reward(), &mut |done, total| {
        let pct = done * 10 / total;
        if pct > last {
            last = pct;
            eprintln!(
                "  {:>3}% ({done}/{total}) {:.1}s",
                pct * 10,
                start.elapsed().as_secs_f64()
            );
        }
    })
    .unwrap();
    eprintln!(
        "sEH statistics in {:.2}s on {} threads: log Z = {}, threshold = {}, modes = {}, proxy in [{}, {}], argmax {}",
        stats.seconds,
        stats.threads,
        stats.log_z,
        stats.mode_threshold,
        stats.num_modes,
        stats.proxy_min,
        stats.proxy_max,
        stats.argmax
    );
    let shipped = env().stats().clone();
    let strip = |s: &SehStats| SehStats {
        seconds: 0.0,
        threads: 0,
        ..s.clone()
    };
    assert_eq!(strip(&stats), strip(&shipped));
}

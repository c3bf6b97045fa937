//! `softgfn sample` and `softgfn eval` on trained run directories: the distribution of 200,000
//! samples from a trained hypergrid against the policy's exact terminal distribution, the
//! `log p(x)` estimates of the most frequent objects, `eval` against the trainer's last record,
//! `--unique`, `--top` and JSON lines, and readable objects on bitseq, qm9str and the example
//! plugin (sets).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use softgfn_core::exact::StateGraph;
use softgfn_train::Trained;
use softgfn_train::estimate::policy_tables;

// The environments and algorithms the binary links, for `Trained::load` in this process.
use softgfn_bitseq as _;
use softgfn_gflownet as _;
use softgfn_hypergrid as _;
use softgfn_molstr as _;

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

fn train(dir: &Path, args: &[&str]) {
    let mut all = vec!["train", "--quiet", "--out", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    ok(softgfn(&all));
}

/// Splits a CSV line of `softgfn sample` (quoted object and state, then numbers).
fn fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn plugin_lib(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/plugins/release")
        .join(format!(
            "{}{}{}",
            std::env::consts::DLL_PREFIX,
            name.replace('-', "_"),
            std::env::consts::DLL_SUFFIX
        ));
    assert!(p.exists(), "{}: run scripts/build-plugins.sh", p.display());
    p
}

#[test]
fn samples_of_a_trained_hypergrid_follow_the_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    train(
        &run,
        &[
            "--env",
            "hypergrid",
            "--algo",
            "subtb",
            "--set",
            "env.dim=2",
            "--set",
            "env.side=8",
            "--iterations",
            "1000",
            "--seed",
            "7",
        ],
    );

    // The policy's exact terminal distribution, from the same files.
    let mut trained = Trained::load(&run).unwrap();
    let graph = StateGraph::build(trained.env(), 1 << 20).unwrap();
    let env = softgfn_core::build_env("hypergrid", &trained.env().params()).unwrap();
    let (log_pf, _) = {
        let (_, algo) = trained.trainer().env_and_algorithm_mut();
        policy_tables(env.as_ref(), &graph, algo).unwrap()
    };
    let q = graph.terminal_distribution(&log_pf).unwrap();
    let index = |state: &str| -> usize {
        let v: Vec<i32> = state.split(' ').map(|x| x.parse().unwrap()).collect();
        (0..graph.num_states())
            .find(|&s| graph.state(s) == v.as_slice())
            .unwrap()
    };

    // 200,000 draws. Their empirical L1 to q has mean at most sqrt(2K / (pi n)) = 0.0143 for
    // K = 64 objects (sum_x sqrt(2 q(1-q) / (pi n)) <= sqrt(2K / (pi n)) by Cauchy-Schwarz), and
    // one draw moves it by at most 2/n, so (McDiarmid) it exceeds that mean by 0.01 with
    // probability at most exp(-n 0.01^2 / 2) = exp(-10): the bound is 0.025.
    let out = tmp.path().join("s.csv");
    ok(softgfn(&[
        "sample",
        "--run",
        run.to_str().unwrap(),
        "--n",
        "200000",
        "--seed",
        "1",
        "--backward-samples",
        "1",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]));
    let text = std::fs::read_to_string(&out).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("object,state,log_reward,log_pf,log_px"));
    let mut counts = vec![0u64; graph.num_states()];
    let mut n = 0u64;
    for line in lines {
        let f = fields(line);
        assert_eq!(f.len(), 5, "{line}");
        let i = index(&f[1]);
        counts[i] += 1;
        n += 1;
        // The readable form is the coordinates of the state.
        let s = graph.state(i);
        assert_eq!(f[0], format!("({}, {})", s[0], s[1]));
        let lr: f64 = f[2].parse().unwrap();
        assert!((lr - graph.log_reward[i]).abs() < 1e-12);
        assert!(f[3].parse::<f64>().unwrap() <= 0.0);
    }
    assert_eq!(n, 200_000);
    let l1: f64 = counts
        .iter()
        .zip(&q)
        .map(|(&c, &p)| (c as f64 / n as f64 - p).abs())
        .sum();
    eprintln!("empirical L1 of 200,000 samples to the policy: {l1:.4} (bound 0.025)");
    assert!(l1 <= 0.025, "{l1}");

    // log p(x) of the 10 most frequent objects of 2,000 draws, from 256 backward trajectories
    // each, against the exact log q(x): within 0.05 nats.
    let out = tmp.path().join("u.csv");
    ok(softgfn(&[
        "sample",
        "--run",
        run.to_str().unwrap(),
        "--n",
        "2000",
        "--seed",
        "2",
        "--unique",
        "--backward-samples",
        "256",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]));
    let text = std::fs::read_to_string(&out).unwrap();
    let mut rows: Vec<Vec<String>> = text.lines().skip(1).map(fields).collect();
    assert_eq!(
        text.lines().next(),
        Some("object,state,log_reward,log_pf,log_px,count")
    );
    let total: u64 = rows.iter().map(|r| r[5].parse::<u64>().unwrap()).sum();
    assert_eq!(total, 2000);
    let distinct: HashMap<&str, ()> = rows.iter().map(|r| (r[1].as_str(), ())).collect();
    assert_eq!(
        distinct.len(),
        rows.len(),
        "--unique keeps each object once"
    );
    rows.sort_by_key(|r| std::cmp::Reverse(r[5].parse::<u64>().unwrap()));
    for r in rows.iter().take(10) {
        let est: f64 = r[4].parse().unwrap();
        let exact = q[index(&r[1])].ln();
        assert!((est - exact).abs() < 0.05, "{r:?}: exact {exact}");
    }

    // --top 5 with --unique, as JSON lines: five distinct objects, highest reward first.
    let o = ok(softgfn(&[
        "sample",
        "--run",
        run.to_str().unwrap(),
        "--n",
        "500",
        "--unique",
        "--top",
        "5",
        "--format",
        "jsonl",
    ]));
    let top: Vec<serde_json::Value> = o
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(top.len(), 5);
    for w in top.windows(2) {
        assert!(w[0]["log_reward"].as_f64() >= w[1]["log_reward"].as_f64());
    }
    for t in &top {
        assert!(
            t["state"].is_array() && t["count"].as_u64().unwrap() >= 1,
            "{t}"
        );
        assert!(t["object"].as_str().unwrap().starts_with('('), "{t}");
    }

    // eval gives the exact metrics of the last record the trainer wrote.
    let e = tmp.path().join("e.json");
    let printed = ok(softgfn(&[
        "eval",
        "--run",
        run.to_str().unwrap(),
        "--out",
        e.to_str().unwrap(),
    ]));
    assert!(printed.contains("final parameters"), "{printed}");
    let rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&e).unwrap()).unwrap();
    let last: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(run.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    for key in [
        "iteration",
        "trajectories",
        "wall_seconds",
        "log_z_true",
        "log_z_learned",
        "exact_l1",
        "exact_tv",
        "exact_kl",
        "exact_jsd",
        "exact_log_z_elbo",
        "exact_log_z_eubo",
    ] {
        assert_eq!(rec[key], last[key], "{key}");
    }
    for key in ["log_z_elbo", "log_z_iw", "log_z_iw_ci", "log_z_eubo"] {
        assert!(rec[key].is_number(), "{key}: {rec}");
    }
    assert!(rec["monitor"].is_null(), "the hypergrid has no monitor");
    // The training time of the run, and eval's own time labelled apart.
    assert!(last["wall_seconds"].as_f64().unwrap() > 0.0, "{last}");
    let eval_seconds = rec["eval_seconds"].as_f64().unwrap();
    assert!(eval_seconds > 0.0 && eval_seconds < 600.0, "{rec}");
    assert!(printed.contains("eval_seconds"), "{printed}");
}

#[test]
fn sample_and_eval_show_readable_objects_on_bitseq_qm9str_and_a_plugin() {
    let tmp = tempfile::tempdir().unwrap();

    // bitseq: bit strings; eval labels the monitor fresh, or restored from a checkpoint.
    let run = tmp.path().join("bitseq");
    train(
        &run,
        &[
            "--env",
            "bitseq",
            "--algo",
            "tb",
            "--set",
            "env.n=12",
            "--set",
            "env.k=3",
            "--set",
            "env.num_modes=3",
            "--set",
            "env.block_len=4",
            "--set",
            "env.alphabet=[\"0000\", \"1111\", \"1100\", \"0011\"]",
            "--set",
            "env.mode_threshold=2",
            "--set",
            "env.spearman_rounds=4",
            "--iterations",
            "20",
            "--checkpoint-every",
            "10",
        ],
    );
    let o = ok(softgfn(&[
        "sample",
        "--run",
        run.to_str().unwrap(),
        "--n",
        "20",
    ]));
    for line in o.lines().skip(1) {
        let f = fields(line);
        assert_eq!(f[0].len(), 12, "{line}");
        assert!(f[0].chars().all(|c| c == '0' || c == '1'), "{line}");
    }
    let o = ok(softgfn(&["eval", "--run", run.to_str().unwrap()]));
    assert!(
        o.contains("environment metrics: fresh, over 1024 objects"),
        "{o}"
    );
    assert!(o.contains("modes_found"), "{o}");
    let o = ok(softgfn(&[
        "eval",
        "--run",
        run.to_str().unwrap(),
        "--checkpoint",
    ]));
    assert!(
        o.contains("environment metrics: restored from the checkpoint of iteration 20"),
        "{o}"
    );

    // qm9str: molecule strings of 5 blocks.
    let run = tmp.path().join("qm9");
    train(
        &run,
        &["--env", "qm9str", "--algo", "tb", "--iterations", "5"],
    );
    let o = ok(softgfn(&[
        "sample",
        "--run",
        run.to_str().unwrap(),
        "--n",
        "10",
        "--format",
        "jsonl",
    ]));
    for line in o.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let s = v["object"].as_str().unwrap();
        assert_eq!(s.len(), 5, "{v}");
        assert!(s.chars().all(|c| c.is_ascii_alphanumeric()), "{v}");
    }
    ok(softgfn(&[
        "eval",
        "--run",
        run.to_str().unwrap(),
        "--log-z-samples",
        "16",
    ]));

    // The example plugin: sets, through the C ABI.
    let lib = plugin_lib("softgfn-sets");
    let lib = lib.to_str().unwrap();
    let run = tmp.path().join("sets");
    ok(softgfn(&[
        "--plugin",
        lib,
        "train",
        "--env",
        "softgfn-sets/sets",
        "--algo",
        "tb",
        "--iterations",
        "5",
        "--quiet",
        "--out",
        run.to_str().unwrap(),
    ]));
    let o = ok(softgfn(&[
        "--plugin",
        lib,
        "sample",
        "--run",
        run.to_str().unwrap(),
        "--n",
        "10",
    ]));
    for line in o.lines().skip(1) {
        let f = fields(line);
        assert!(f[0].starts_with('{') && f[0].ends_with('}'), "{line}");
    }
    let o = ok(softgfn(&[
        "--plugin",
        lib,
        "eval",
        "--run",
        run.to_str().unwrap(),
    ]));
    assert!(o.contains("exact_l1"), "{o}");
    // Without the plugin, the error names it.
    let o = softgfn(&["sample", "--run", run.to_str().unwrap(), "--n", "10"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("plugin `softgfn-sets`, which is not loaded: pass --plugin PATH"),
        "{err}"
    );
}

//! Environment metrics (bitseq's `modes_found` and `spearman`) through the harness: they
//! survive `results.jsonl` and merges, become report columns and plots where present (and only
//! there), and can be targets.

use std::collections::BTreeMap;
use std::path::Path;

use softgfn_bench::report::{markdown, metric, time_to_target};
use softgfn_bench::runner::{RESULTS_FILE, SUITE_FILE, cell_records, merge};
use softgfn_bench::{Suite, Target};
use softgfn_train::record::{METRICS_FILE, SUMMARY_FILE};
use softgfn_train::{EvalRecord, Summary};

const SUITE: &str = r#"
name = "env-metrics"
seeds = [1, 2]
iterations = 20
eval_interval = 10
targets = ["modes_found >= 4", "exact_l1 <= 0.5"]

[[env]]
name = "bitseq"
label = "bits"
set = { n = 12, k = 3 }

[[env]]
name = "hypergrid"
label = "grid"
set = { dim = 2, side = 4 }

[[algo]]
name = "tb"

[[algo]]
name = "db"
"#;

/// Records of one cell: bitseq cells have the environment metrics, grid cells exact metrics.
fn records(env: &str, algo: &str, seed: u64) -> Vec<EvalRecord> {
    (0..3u64)
        .map(|e| {
            let mut r = EvalRecord {
                iteration: 10 * e,
                trajectories: 160 * e,
                wall_seconds: 0.5 * e as f64,
                ..Default::default()
            };
            if env == "bits" {
                // tb finds 2 modes per evaluation, db 1; seed 2 one more at the end.
                let per = if algo == "tb" { 2.0 } else { 1.0 };
                let extra = if seed == 2 && e == 2 { 1.0 } else { 0.0 };
                r.env_metrics = BTreeMap::from([
                    ("modes_found".into(), Some(per * e as f64 + extra)),
                    ("spearman".into(), Some(0.1 * e as f64 + 0.01 * seed as f64)),
                ]);
            } else {
                r.exact_l1 = Some(1.0 / (1.0 + e as f64));
            }
            r
        })
        .collect()
}

fn write_results(dir: &Path, shard: Option<usize>) -> Suite {
    let suite = Suite::parse(SUITE, "suite").unwrap();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(SUITE_FILE), SUITE).unwrap();
    for cell in suite.cells() {
        if shard.is_some_and(|s| cell.index % 2 != s) {
            continue;
        }
        let cdir = dir.join(cell.dir());
        std::fs::create_dir_all(&cdir).unwrap();
        let recs = records(&cell.env, &cell.algo, cell.seed);
        let text: String = recs
            .iter()
            .map(|r| serde_json::to_string(r).unwrap() + "\n")
            .collect();
        std::fs::write(cdir.join(METRICS_FILE), text).unwrap();
        let summary = Summary {
            algo: cell.algo.clone(),
            env: cell.env.clone(),
            seed: cell.seed,
            last: recs.last().unwrap().clone(),
            median_ms_per_iteration: 1.0,
            peak_rss_mb: None,
        };
        std::fs::write(
            cdir.join(SUMMARY_FILE),
            serde_json::to_string(&summary).unwrap(),
        )
        .unwrap();
    }
    suite
}

/// The table of one environment's section.
fn section<'a>(md: &'a str, env: &str) -> Vec<&'a str> {
    let start = md.find(&format!("## {env}\n")).unwrap();
    md[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .collect()
}

#[test]
fn env_metrics_are_columns_where_present_and_targets_anywhere() {
    let tmp = tempfile::tempdir().unwrap();
    write_results(tmp.path(), None);
    let files = softgfn_bench::write_report(tmp.path(), false).unwrap();
    let md = std::fs::read_to_string(&files.markdown).unwrap();
    let (suite, results) = softgfn_bench::report::load(tmp.path()).unwrap();
    assert_eq!(
        md.split("\n## Plots\n").next().unwrap(),
        markdown(&suite, &results).unwrap()
    );

    let bits = section(&md, "bits");
    assert!(
        bits[0].starts_with(
            "| algorithm | seeds | iterations | trajectories | `modes_found` | `spearman` | \
             ms/iteration |"
        ),
        "{}",
        bits[0]
    );
    // Final values, mean ± standard deviation over the two seeds: tb 4 and 5, db 2 and 3.
    assert!(
        bits[2].starts_with("| tb | 2 | 20 ± 0 | 320 ± 0 | 4.50 ± 0.707 | 0.215 ± 0.007 |"),
        "{}",
        bits[2]
    );
    assert!(
        bits[3].starts_with("| db | 2 | 20 ± 0 | 320 ± 0 | 2.50 ± 0.707 | 0.215 ± 0.007 |"),
        "{}",
        bits[3]
    );
    // The target on modes_found: tb reaches 4 at 320 trajectories, db never.
    assert!(bits[2].contains("| 320 ± 0 | 1 ± 0 |"), "{}", bits[2]);
    assert!(
        bits[3].contains("| not reached (0/2 reached) | — |"),
        "{}",
        bits[3]
    );

    // The grid has no environment metrics: no such columns, and exact_l1 as before.
    let grid = section(&md, "grid");
    assert!(
        !grid[0].contains("| `modes_found` |") && grid[0].contains("`exact_l1`"),
        "{}",
        grid[0]
    );

    // Plots of the environment metrics for bits only.
    let plots = tmp.path().join("plots");
    for stem in ["modes_found_vs_trajectories", "spearman_vs_seconds"] {
        assert!(
            plots.join("bits").join(format!("{stem}.svg")).exists(),
            "{stem}"
        );
        assert!(
            !plots.join("grid").join(format!("{stem}.svg")).exists(),
            "{stem}"
        );
    }
    assert!(md.contains(
        "![bits: modes_found vs trajectories sampled](plots/bits/modes_found_vs_trajectories.svg)"
    ));

    // Targets and metric lookups read environment metrics.
    let t = Target::parse("modes_found >= 4").unwrap();
    let recs = records("bits", "tb", 1);
    assert_eq!(time_to_target(&recs, &t), Some((320, 1.0)));
    assert_eq!(metric(&recs[1], "spearman"), Some(0.11));
    assert_eq!(metric(&recs[1], "exact_l1"), None);
    let mut nan = recs[1].clone();
    nan.env_metrics.insert("spearman".into(), None);
    assert_eq!(metric(&nan, "spearman"), None);
}

#[test]
fn env_metrics_survive_results_files_and_merges() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    let suite = write_results(&a, Some(0));
    write_results(&b, Some(1));
    let out = tmp.path().join("merged");
    merge(&[a, b], &out).unwrap();
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(out.join(RESULTS_FILE))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), suite.cells().len() * 3);
    let bits: Vec<&serde_json::Value> = lines.iter().filter(|l| l["env"] == "bits").collect();
    assert_eq!(bits.len(), 12);
    assert!(
        bits.iter()
            .all(|l| l["modes_found"].is_number() && l["spearman"].is_number())
    );
    assert!(
        lines
            .iter()
            .filter(|l| l["env"] == "grid")
            .all(|l| l.get("modes_found").is_none())
    );

    // A results record reads back whole, environment metrics included.
    let cell = suite.cells().into_iter().find(|c| c.env == "bits").unwrap();
    for r in cell_records(&suite.name, &out, &cell).unwrap() {
        let line = serde_json::to_string(&r).unwrap();
        let back: softgfn_bench::runner::ResultRecord = serde_json::from_str(&line).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.record.env_metrics.len(), 2);
        assert!(!back.record.env_metrics.contains_key("suite"));
    }
}

//! Report generation on a fixed results directory: the Markdown is pinned, and the SVG plots have
//! one series per algorithm, axis labels, a title and a legend (checked by parsing the SVG).

use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/report")
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), to).unwrap();
        }
    }
}

#[test]
fn markdown_matches_the_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&fixture(), tmp.path());
    let files = softgfn_bench::write_report(tmp.path(), true).unwrap();
    let md = std::fs::read_to_string(&files.markdown).unwrap();
    let expected_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/report.expected.md");
    if std::env::var_os("SOFTGFN_BLESS").is_some() {
        std::fs::write(&expected_path, &md).unwrap();
    }
    let expected = std::fs::read_to_string(&expected_path)
        .expect("snapshot missing: run with SOFTGFN_BLESS=1 once");
    assert_eq!(
        md, expected,
        "report.md changed; rerun with SOFTGFN_BLESS=1 if intended"
    );
    // 5 metrics x 2 x-axes x (SVG + PNG).
    assert_eq!(files.plots.len(), 20);
    assert!(
        files
            .plots
            .iter()
            .all(|p| std::fs::metadata(p).unwrap().len() > 1000)
    );
}

fn texts(svg: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(svg).unwrap();
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap_or_default().trim().to_string())
        .collect()
}

#[test]
fn svg_plots_have_one_series_per_algorithm_labels_and_legend() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&fixture(), tmp.path());
    softgfn_bench::write_report(tmp.path(), false).unwrap();
    for (file, xlabel) in [
        ("exact_l1_vs_trajectories.svg", "trajectories sampled"),
        ("emp_kl_vs_seconds.svg", "training wall time (s)"),
    ] {
        let svg = std::fs::read_to_string(tmp.path().join("plots/grid-a").join(file)).unwrap();
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let series = doc
            .descendants()
            .filter(|n| n.has_tag_name("polyline") && n.attribute("stroke-width") == Some("2"))
            .count();
        assert_eq!(series, 2, "{file}: one line per algorithm");
        let t = texts(&svg);
        assert!(
            t.iter().any(|s| s.starts_with("grid-a: ")),
            "{file}: title in {t:?}"
        );
        assert!(t.iter().any(|s| s == xlabel), "{file}: x label in {t:?}");
        assert!(
            t.iter().filter(|s| *s == "tb").count() == 1,
            "{file}: legend in {t:?}"
        );
        assert!(
            t.iter().filter(|s| *s == "soft_dqn").count() == 1,
            "{file}: legend in {t:?}"
        );
    }
}

#[test]
fn time_to_target_is_the_first_record_meeting_it() {
    let (suite, results) = softgfn_bench::report::load(&fixture()).unwrap();
    let t = &suite.parsed_targets().unwrap()[0];
    for r in &results {
        let hit = softgfn_bench::report::time_to_target(&r.records, t);
        let first = r
            .records
            .iter()
            .find(|x| x.exact_l1.is_some_and(|v| v <= 1.2));
        assert_eq!(hit.map(|h| h.0), first.map(|f| f.trajectories));
    }
}

/// The cells of the first table row starting with `| PREFIX |` (an algorithm, or an algorithm
/// and the first cells after it).
fn row<'a>(md: &'a str, prefix: &str) -> Vec<&'a str> {
    let line = md
        .lines()
        .find(|l| l.starts_with(&format!("| {prefix} |")))
        .unwrap_or_else(|| panic!("no row {prefix} in\n{md}"));
    line.trim_matches('|').split(" | ").map(str::trim).collect()
}

#[test]
fn partial_reports_unfinished_cells_and_tables_at_iterations() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&fixture(), tmp.path());
    // soft_dqn seed 2 stopped after its evaluation at iteration 20: no summary yet.
    let cell = tmp.path().join("cells/grid-a/soft_dqn/s2");
    std::fs::remove_file(cell.join("summary.json")).unwrap();
    let metrics = cell.join("metrics.jsonl");
    let kept: Vec<String> = std::fs::read_to_string(&metrics)
        .unwrap()
        .lines()
        .take(3)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&metrics, kept.concat()).unwrap();

    // Without --partial the unfinished cell is left out: one seed of soft_dqn.
    let files = softgfn_bench::write_report(tmp.path(), false).unwrap();
    let md = std::fs::read_to_string(&files.markdown).unwrap();
    assert_eq!(row(&md, "soft_dqn")[1], "1", "{md}");
    assert!(!md.contains("unfinished"), "{md}");

    let options = softgfn_bench::ReportOptions {
        png: false,
        partial: true,
        at: vec![20, 40],
    };
    let files = softgfn_bench::write_report_with(tmp.path(), &options).unwrap();
    let md = std::fs::read_to_string(&files.markdown).unwrap();
    let (_, results) = softgfn_bench::report::load_cells(tmp.path(), true).unwrap();
    let records = |algo: &str, seed: u64| {
        results
            .iter()
            .find(|r| r.cell.algo == algo && r.cell.seed == seed)
            .unwrap()
            .records
            .clone()
    };
    let unfinished = records("soft_dqn", 2);
    assert_eq!(unfinished.last().unwrap().iteration, 20);

    // Both seeds, marked; its iterations are the mean of 40 and 20; its ms/iteration is the
    // median of its records' timings, averaged with seed 1's summary.
    let r = row(&md, "soft_dqn (unfinished)");
    assert_eq!(r[1], "2");
    assert_eq!(r[2], softgfn_bench::report::fmt_num(30.0) + " ± 14.1");
    assert_eq!(row(&md, "tb")[1], "2", "finished cells are not marked");

    // At iteration 20 both seeds have a record: the mean of the two; at 40 only seed 1.
    let table = md
        .split("## grid-a at iterations 20, 40")
        .nth(1)
        .expect(&md);
    let l1 = |algo: &str, seed: u64, it: u64| {
        records(algo, seed)
            .iter()
            .find(|r| r.iteration == it)
            .unwrap()
            .exact_l1
            .unwrap()
    };
    let at20 = row(table, "soft_dqn");
    assert_eq!(&at20[1..3], ["20", "2/2"]);
    let mean = (l1("soft_dqn", 1, 20) + l1("soft_dqn", 2, 20)) / 2.0;
    assert!(
        at20[3].starts_with(&softgfn_bench::report::fmt_num(mean)),
        "{at20:?} vs {mean}"
    );
    let at40 = row(table, "soft_dqn | 40");
    assert_eq!(at40[2], "1/2");
    assert_eq!(
        at40[3],
        softgfn_bench::report::fmt_num(l1("soft_dqn", 1, 40))
    );

    // Nothing to report at all.
    let empty = tempfile::tempdir().unwrap();
    copy_dir(&fixture(), empty.path());
    std::fs::remove_dir_all(empty.path().join("cells")).unwrap();
    let err = softgfn_bench::write_report_with(empty.path(), &options).unwrap_err();
    assert!(err.to_string().contains("no cell has written"), "{err}");
}

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

//! Suites: parsing, validation, canonical cells, shards and budgets.

use softgfn_bench::{Shard, Suite, Target};

const SUITE: &str = r#"
name = "t"
seeds = [1, 2, 3]
iterations = 500
trajectories = 1600
targets = ["exact_l1 <= 0.1", "modes >= 50"]

[[env]]
name = "hypergrid"
label = "a"
set = { dim = 2 }

[[env]]
name = "hypergrid"
label = "b"

[[algo]]
name = "tb"
set = { trajectories_per_iteration = 32 }

[[algo]]
name = "db"
label = "db-variant"
"#;

#[test]
fn cells_are_canonical_and_shards_cover_each_cell_once() {
    let s = Suite::parse(SUITE, "test").unwrap();
    let cells = s.cells();
    assert_eq!(cells.len(), 2 * 2 * 3);
    assert_eq!(cells[0].id(), "a/tb/s1");
    assert_eq!(cells[3].id(), "a/db-variant/s1");
    assert_eq!(cells[11].id(), "b/db-variant/s3");
    for n in [1, 2, 3, 5, 12, 13] {
        let mut seen = vec![0; cells.len()];
        for i in 1..=n {
            for c in s.shard_cells(Some(Shard::parse(&format!("{i}/{n}")).unwrap())) {
                seen[c.index] += 1;
            }
        }
        assert!(seen.iter().all(|&k| k == 1), "{n} shards: {seen:?}");
    }
    assert!(Shard::parse("0/3").is_err());
    assert!(Shard::parse("4/3").is_err());
    assert!(
        Shard::parse("2")
            .unwrap_err()
            .to_string()
            .contains("SLURM_ARRAY_TASK_ID")
    );
}

#[test]
fn budgets_convert_trajectories_with_each_algorithm() {
    let s = Suite::parse(SUITE, "test").unwrap();
    let cells = s.cells();
    let c = s.cell_config(&cells[0]).unwrap();
    // 1600 trajectories / 32 per iteration = 50 < 500 iterations.
    assert_eq!(c["iterations"].as_integer(), Some(50));
    assert_eq!(c["env"]["dim"].as_integer(), Some(2));
    assert_eq!(c["env"]["name"].as_str(), Some("hypergrid"));
    assert_eq!(c["algo"]["name"].as_str(), Some("tb"));
    assert_eq!(c["seed"].as_integer(), Some(1));
}

#[test]
fn targets_parse_and_compare() {
    let t = Target::parse("exact_l1 <= 0.1").unwrap();
    assert!(t.met(0.1) && !t.met(0.2));
    let t = Target::parse(" modes>=50 ").unwrap();
    assert!(t.met(60.0) && !t.met(1.0));
    assert_eq!(t.to_string(), "modes >= 50");
    assert!(Target::parse("exact_l1 < 0.1").is_err());
    assert!(Target::parse("exact_l1 <= x").is_err());
}

#[test]
fn bad_suites_are_rejected_with_reasons() {
    let e = |text: &str| Suite::parse(text, "t").unwrap_err().to_string();
    let base =
        "name='x'\nseeds=[1]\niterations=3\n[[env]]\nname='hypergrid'\n[[algo]]\nname='tb'\n";
    assert!(e(&base.replace("iterations=3\n", "")).contains("no budget"));
    assert!(e(&base.replace("seeds=[1]", "seeds=[]")).contains("seeds"));
    assert!(e(&format!("{base}[[algo]]\nname='tb'\n")).contains("share the label `tb`"));
    assert!(e(&base.replace("name='tb'", "name='tb'\nlabel='a/b'")).contains("label `a/b`"));
    assert!(e(&format!("{base}bogus = 1\n")).contains("unknown field"));
    assert!(
        e(&base.replace("iterations=3", "iterations=3\ntargets=['l1 ~ 3']")).contains("target")
    );
}

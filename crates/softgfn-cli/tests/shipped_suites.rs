//! Every suite shipped in `suites/` parses, and every one of its cells resolves to a valid run
//! configuration (environment parameters, algorithm fields, network), without running anything.

use softgfn_bench::Suite;
use softgfn_train::resolve;

use softgfn_bitseq as _;
use softgfn_gflownet as _;
use softgfn_hypergrid as _;
use softgfn_molstr as _;
use softgfn_sehfrag as _;
use softgfn_softrl as _;

#[test]
fn every_shipped_suite_resolves_every_cell() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../suites");
    let mut suites = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let suite = Suite::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        suite.parsed_targets().unwrap();
        for cell in suite.cells() {
            let table = suite.cell_config(&cell).unwrap();
            // Environments loaded from run-time plugins (`<plugin>/<env>`) are checked by the
            // plugin tests.
            if suite.entries(&cell).unwrap().0.name.contains('/') {
                continue;
            }
            let checked = resolve(table).and_then(|(config, _env)| config.algo.validate());
            if let Err(e) = checked {
                panic!("{}: cell {}: {e}", path.display(), cell.id());
            }
        }
        suites += 1;
    }
    assert!(
        suites >= 5,
        "found only {suites} suites in {}",
        dir.display()
    );
}

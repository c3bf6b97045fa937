//! Regenerates the embedded data from the original files in `../shared/data` (ignored tests):
//!
//! ```sh
//! cargo test --release -p softgfn-molstr --test regenerate -- --ignored --nocapture
//! ```
//!
//! - `data/qm9str/proxy_values.f64le.gz`: the CSV's values parsed as `f64`, written little-endian
//!   in row (index) order and gzip-compressed (best compression, no timestamp);
//! - `data/sehstr/gbr_proxy.json.gz`: `gbr_proxy.json` gzip-compressed, bytes unchanged;
//! - `blocks.json` of both and `sehstr/proxy_check.csv`: verbatim copies;
//! - `data/sehstr/stats.json`: [`SehStats`] of the shipped trees under the default reward.

use std::io::Write;
use std::path::PathBuf;

use softgfn_molstr::{SehStats, default_reward, shipped_trees};

fn dirs() -> Option<(PathBuf, PathBuf)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let shared = root.join("../../../shared/data");
    if !shared.join("qm9str/proxy_values.csv").is_file() {
        eprintln!("skipped: {} is not in this checkout", shared.display());
        return None;
    }
    Some((shared, root.join("data")))
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::best());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

#[test]
#[ignore = "rewrites plugins/molstr/data from ../shared/data"]
fn regenerate_data_files() {
    let Some((shared, data)) = dirs() else { return };
    let text = std::fs::read_to_string(shared.join("qm9str/proxy_values.csv")).unwrap();
    let values =
        softgfn_molstr::data::parse_qm9_csv("qm9str", "proxy_values.csv", &text, 11).unwrap();
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(data.join("qm9str/proxy_values.f64le.gz"), gzip(&bytes)).unwrap();
    let trees = std::fs::read(shared.join("sehstr/gbr_proxy.json")).unwrap();
    std::fs::write(data.join("sehstr/gbr_proxy.json.gz"), gzip(&trees)).unwrap();
    for f in [
        "qm9str/blocks.json",
        "sehstr/blocks.json",
        "sehstr/proxy_check.csv",
    ] {
        std::fs::write(data.join(f), std::fs::read(shared.join(f)).unwrap()).unwrap();
    }
    eprintln!("wrote {} QM9 values and the sEH trees", values.len());
}

#[test]
#[ignore = "rewrites plugins/molstr/data/sehstr/stats.json (enumerates all 34M strings)"]
fn regenerate_seh_stats() {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/sehstr");
    let trees = shipped_trees().unwrap();
    let stats = SehStats::compute(&trees, &default_reward(), &mut |_, _| {}).unwrap();
    stats.write_atomic(&data.join("stats.json")).unwrap();
    eprintln!("{}", serde_json::to_string_pretty(&stats).unwrap());
}

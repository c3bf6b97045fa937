//! Reference data: the copies embedded in the crate and the loaders of a `data_dir` on disk.
//!
//! The files are those of `plugins/molstr/data/` (see its README for provenance and formats):
//!
//! | Environment | File | Content |
//! |---|---|---|
//! | both | `blocks.json` | building blocks: `block_name`, `block_smi`, `block_r` maps keyed `"0".."K-1"` |
//! | `qm9str` | `proxy_values.f64le.gz` | gzip of the `K^L` proxy values as little-endian `f64`, in index order |
//! | `qm9str` | `proxy_values.csv` | (data_dir only, instead of the above) `sequence,proxy_value` rows in index order |
//! | `sehstr` | `gbr_proxy.json.gz` or `gbr_proxy.json` | the gradient-boosted tree ensemble |
//! | `sehstr` | `stats.json` | optional in a data_dir: [`crate::SehStats`] of these trees |
//!
//! The index of a string of length `L` is its base-`K` number, first block most significant.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use softgfn_core::{CoreError, Result};

use crate::dag::SYMBOLS;

/// The embedded `qm9str/blocks.json`.
pub(crate) const QM9_BLOCKS: &[u8] = include_bytes!("../data/qm9str/blocks.json");
/// The embedded QM9 proxy table (`proxy_values.f64le.gz`).
pub(crate) const QM9_VALUES_GZ: &[u8] = include_bytes!("../data/qm9str/proxy_values.f64le.gz");
/// The embedded `sehstr/blocks.json`.
pub(crate) const SEH_BLOCKS: &[u8] = include_bytes!("../data/sehstr/blocks.json");
/// The embedded sEH tree ensemble (`gbr_proxy.json.gz`).
pub(crate) const SEH_TREES_GZ: &[u8] = include_bytes!("../data/sehstr/gbr_proxy.json.gz");
/// The embedded statistics of the sEH trees (`stats.json`).
pub(crate) const SEH_STATS: &[u8] = include_bytes!("../data/sehstr/stats.json");

/// File names inside a data directory.
pub mod files {
    /// Building blocks (both environments).
    pub const BLOCKS: &str = "blocks.json";
    /// QM9 proxy table: gzip of little-endian `f64` values in index order.
    pub const QM9_VALUES_GZ: &str = "proxy_values.f64le.gz";
    /// QM9 proxy table as the original CSV (`sequence,proxy_value`), accepted in a data_dir.
    pub const QM9_VALUES_CSV: &str = "proxy_values.csv";
    /// sEH tree ensemble, gzip-compressed.
    pub const SEH_TREES_GZ: &str = "gbr_proxy.json.gz";
    /// sEH tree ensemble, plain JSON.
    pub const SEH_TREES: &str = "gbr_proxy.json";
    /// Statistics of the sEH trees ([`crate::SehStats`] as JSON).
    pub const SEH_STATS: &str = "stats.json";
}

/// One building block of a molecule string.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// Name in the data set (e.g. `C=O`, `c1ccccc1_0`).
    pub name: String,
    /// SMILES of the block.
    pub smiles: String,
    /// Attachment information of the original data set (`block_r`, kept as given).
    pub attachment: Vec<i64>,
    /// Printed symbol of the block in strings (`0123456789abc...`).
    pub symbol: char,
}

/// An error about a data file: names the file and what was expected.
pub(crate) fn data_error(env: &str, source: &str, message: impl std::fmt::Display) -> CoreError {
    CoreError::Environment {
        env: env.into(),
        message: format!("{source}: {message}"),
    }
}

/// Reads a file, turning I/O errors into messages naming the path and the expected content.
pub(crate) fn read_file(env: &str, path: &Path, expected: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        data_error(
            env,
            &path.display().to_string(),
            format!("cannot read it ({e}); expected {expected}"),
        )
    })
}

/// Decompresses gzip data.
pub(crate) fn gunzip(env: &str, source: &str, bytes: &[u8], expected: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .map_err(|e| {
            data_error(
                env,
                source,
                format!("is not valid gzip data ({e}); expected {expected}"),
            )
        })?;
    Ok(out)
}

/// The first of `names` that exists in `dir`, or an error naming all of them.
pub(crate) fn find_one(env: &str, dir: &Path, names: &[&str], expected: &str) -> Result<PathBuf> {
    if !dir.is_dir() {
        return Err(data_error(
            env,
            &dir.display().to_string(),
            format!("is not a directory; `data_dir` must name a directory holding {expected}"),
        ));
    }
    names
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            let tried: Vec<String> = names
                .iter()
                .map(|n| dir.join(n).display().to_string())
                .collect();
            data_error(
                env,
                &dir.display().to_string(),
                format!("missing {}; expected {expected}", tried.join(" or ")),
            )
        })
}

#[derive(Deserialize)]
struct RawBlocks {
    block_name: std::collections::BTreeMap<String, String>,
    block_smi: std::collections::BTreeMap<String, String>,
    block_r: std::collections::BTreeMap<String, Vec<i64>>,
}

const BLOCKS_EXPECTED: &str =
    "a JSON object with maps `block_name`, `block_smi` and `block_r` keyed \"0\"..\"K-1\"";

/// Parses `blocks.json`.
/// Finds, reads and parses `blocks.json` in a `data_dir`.
pub(crate) fn load_blocks(env: &str, dir: &Path) -> Result<Vec<Block>> {
    let path = find_one(
        env,
        dir,
        &[files::BLOCKS],
        "blocks.json (the building blocks)",
    )?;
    parse_blocks(
        env,
        &path.display().to_string(),
        &read_file(env, &path, "the building blocks")?,
    )
}

pub(crate) fn parse_blocks(env: &str, source: &str, bytes: &[u8]) -> Result<Vec<Block>> {
    let raw: RawBlocks = serde_json::from_slice(bytes).map_err(|e| {
        data_error(
            env,
            source,
            format!("malformed blocks file ({e}); expected {BLOCKS_EXPECTED}"),
        )
    })?;
    let k = raw.block_name.len();
    if k == 0 || k > SYMBOLS.len() {
        return Err(data_error(
            env,
            source,
            format!(
                "{k} blocks; expected between 1 and {} in {BLOCKS_EXPECTED}",
                SYMBOLS.len()
            ),
        ));
    }
    let mut blocks = Vec::with_capacity(k);
    for i in 0..k {
        let key = i.to_string();
        let missing = |map: &str| {
            data_error(
                env,
                source,
                format!("`{map}` has no key \"{key}\"; expected {BLOCKS_EXPECTED}"),
            )
        };
        blocks.push(Block {
            name: raw
                .block_name
                .get(&key)
                .cloned()
                .ok_or_else(|| missing("block_name"))?,
            smiles: raw
                .block_smi
                .get(&key)
                .cloned()
                .ok_or_else(|| missing("block_smi"))?,
            attachment: raw
                .block_r
                .get(&key)
                .cloned()
                .ok_or_else(|| missing("block_r"))?,
            symbol: SYMBOLS[i] as char,
        });
    }
    if raw.block_smi.len() != k || raw.block_r.len() != k {
        return Err(data_error(
            env,
            source,
            format!(
                "`block_name`, `block_smi` and `block_r` have {k}, {} and {} entries; expected {BLOCKS_EXPECTED}",
                raw.block_smi.len(),
                raw.block_r.len()
            ),
        ));
    }
    Ok(blocks)
}

/// The exponent `L` with `k^L = n`, if any (`L >= 1`).
pub(crate) fn exact_log(k: usize, n: usize) -> Option<usize> {
    if k < 2 {
        return (k == 1 && n == 1).then_some(1);
    }
    let (mut p, mut l) = (k, 1);
    while p < n {
        p = p.checked_mul(k)?;
        l += 1;
    }
    (p == n).then_some(l)
}

const QM9_GZ_EXPECTED: &str =
    "gzip-compressed little-endian f64 proxy values, K^L of them in index order";

/// Decodes the binary QM9 table (gzip of little-endian `f64`).
pub(crate) fn parse_qm9_gz(env: &str, source: &str, gz: &[u8]) -> Result<Vec<f64>> {
    let raw = gunzip(env, source, gz, QM9_GZ_EXPECTED)?;
    if raw.is_empty() || !raw.len().is_multiple_of(8) {
        return Err(data_error(
            env,
            source,
            format!(
                "decompresses to {} bytes, not a positive multiple of 8; expected {QM9_GZ_EXPECTED}",
                raw.len()
            ),
        ));
    }
    Ok(raw
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect())
}

/// Parses the original CSV (`sequence,proxy_value`, rows in index order) of `k` blocks.
pub fn parse_qm9_csv(env: &str, source: &str, text: &str, k: usize) -> Result<Vec<f64>> {
    let expected = "a header `sequence,proxy_value` and one row per string of length L in index \
                    order (base K, first block most significant)";
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some("sequence,proxy_value") {
        return Err(data_error(
            env,
            source,
            format!("line 1 is not the header; expected {expected}"),
        ));
    }
    let symbols = &SYMBOLS[..k.min(SYMBOLS.len())];
    let mut values = Vec::new();
    let mut len = None;
    for (i, line) in lines.enumerate() {
        let line_no = i + 2;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let bad = |what: String| {
            data_error(
                env,
                source,
                format!("line {line_no}: {what}; expected {expected}"),
            )
        };
        let (seq, val) = line
            .split_once(',')
            .ok_or_else(|| bad(format!("{line:?} has no comma")))?;
        let l = *len.get_or_insert(seq.len());
        if seq.len() != l || l == 0 {
            return Err(bad(format!("sequence {seq:?} does not have length {l}")));
        }
        // The row must be the string of index `values.len()`.
        let mut rank = values.len();
        let mut want = vec![0u8; l];
        for w in want.iter_mut().rev() {
            *w = symbols[rank % k];
            rank /= k;
        }
        if seq.as_bytes() != want.as_slice() || rank != 0 {
            return Err(bad(format!(
                "sequence {seq:?} is out of order (row {} should be {:?})",
                values.len(),
                String::from_utf8_lossy(&want)
            )));
        }
        let v: f64 = val
            .trim()
            .parse()
            .map_err(|e| bad(format!("value {val:?} is not a number ({e})")))?;
        values.push(v);
    }
    match len {
        Some(l) if exact_log(k, values.len()) == Some(l) => Ok(values),
        _ => Err(data_error(
            env,
            source,
            format!(
                "{} rows, not K^L for K = {k} blocks; expected {expected}",
                values.len()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_logs() {
        assert_eq!(exact_log(11, 161_051), Some(5));
        assert_eq!(exact_log(18, 34_012_224), Some(6));
        assert_eq!(exact_log(11, 161_050), None);
        assert_eq!(exact_log(3, 3), Some(1));
        assert_eq!(exact_log(1, 1), Some(1));
        assert_eq!(exact_log(1, 5), None);
    }

    #[test]
    fn csv_rows_are_checked() {
        let ok = "sequence,proxy_value\n00,1.5\n01,2\n10,-3\n11,4e-1\n";
        assert_eq!(
            parse_qm9_csv("t", "x.csv", ok, 2).unwrap(),
            vec![1.5, 2.0, -3.0, 0.4]
        );
        let swapped = "sequence,proxy_value\n00,1.5\n10,2\n01,-3\n11,4e-1\n";
        let e = parse_qm9_csv("t", "x.csv", swapped, 2)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("x.csv") && e.contains("line 3") && e.contains("out of order"),
            "{e}"
        );
        let short = "sequence,proxy_value\n00,1.5\n01,2\n10,-3\n";
        assert!(parse_qm9_csv("t", "x.csv", short, 2).is_err());
        let nan = "sequence,proxy_value\n00,1.5\n01,x\n";
        assert!(
            parse_qm9_csv("t", "x.csv", nan, 2)
                .unwrap_err()
                .to_string()
                .contains("not a number")
        );
        assert!(parse_qm9_csv("t", "x.csv", "seq,v\n", 2).is_err());
    }

    #[test]
    fn embedded_blocks_parse() {
        let q = parse_blocks("qm9str", "embedded", QM9_BLOCKS).unwrap();
        assert_eq!(q.len(), 11);
        assert_eq!(q[7].smiles, "c1ccccc1");
        assert_eq!(q[10].symbol, 'a');
        let s = parse_blocks("sehstr", "embedded", SEH_BLOCKS).unwrap();
        assert_eq!(s.len(), 18);
        assert_eq!(s[12].attachment, vec![8, 4]);
        assert_eq!(s[17].symbol, 'h');
        let e = parse_blocks(
            "t",
            "b.json",
            br#"{"block_name": {"0": "C"}, "block_smi": {}, "block_r": {}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("b.json") && e.contains("block_smi"), "{e}");
    }
}

//! The book's CLI reference (`book/src/cli-reference.md`) and the binary's `--help` agree in both
//! directions: every command, flag and positional argument that `--help` shows is documented,
//! and everything documented exists.
//!
//! Commands are discovered from the root help's `Commands:` list, recursively (clap's generated
//! `help` subcommand is left out). From each command's help the test takes every long flag
//! (`--name`) of its option lines and every `<NAME>` of its `Arguments:` section; hidden flags
//! do not appear in `--help` and are therefore not expected in the reference.
//!
//! The reference format, one section per command:
//!
//! ```text
//! ### softgfn bench run
//!
//! | Flag or argument | Description |
//! |---|---|
//! | `<SUITE>` | Suite file (TOML) |
//! | `--out <OUT>` | Results directory |
//! ```
//!
//! A row's first cell, in backticks, names a flag (every `--name` in it counts, so
//! `-h, --help` documents `--help`) or a positional argument (`<NAME>`). Rows of the root
//! command (`### softgfn`) whose description starts with `Global:` document flags that every
//! command accepts; they are not repeated under each command.
//!
//! A second test keeps the configuration tables of the algorithm pages
//! (`book/src/algorithms/*.md`) equal to `softgfn config defaults --algo NAME`.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// What one command accepts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Interface {
    flags: BTreeSet<String>,
    arguments: BTreeSet<String>,
}

const REFERENCE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../book/src/cli-reference.md"
);

fn help_text(path: &[String]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_softgfn"))
        .args(path)
        .arg("--help")
        .env_remove("SOFTGFN_PLUGIN_PATH")
        .output()
        .expect("the softgfn binary runs");
    assert!(
        out.status.success(),
        "softgfn {} --help failed: {}",
        path.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("help is UTF-8")
}

/// Every `--name` in a piece of text.
fn long_flags(text: &str) -> impl Iterator<Item = String> + '_ {
    text.match_indices("--").filter_map(|(i, _)| {
        let before_ok = i == 0 || !text[..i].ends_with(|c: char| c.is_alphanumeric() || c == '-');
        let name: String = text[i + 2..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        (before_ok && !name.is_empty()).then(|| format!("--{name}"))
    })
}

/// Parses one help text: its interface and its subcommands (without `help`).
fn parse_help(text: &str) -> (Interface, Vec<String>) {
    let mut iface = Interface::default();
    let mut subcommands = Vec::new();
    let mut section = String::new();
    for line in text.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            section = line.to_string();
            continue;
        }
        let body = line.trim_start();
        let indent = line.len() - body.len();
        if body.is_empty() || indent > 6 {
            continue; // blank lines and wrapped or long-form descriptions
        }
        if section == "Commands:" {
            let name = body.split_whitespace().next().unwrap_or_default();
            if name != "help" {
                subcommands.push(name.to_string());
            }
        } else if section == "Arguments:" && body.starts_with('<') {
            let end = body.find('>').map_or(body.len(), |i| i + 1);
            iface.arguments.insert(body[..end].to_string());
        } else if body.starts_with('-') {
            // The flag part ends where the description begins (two spaces).
            let spec = body.split("  ").next().unwrap_or(body);
            iface.flags.extend(long_flags(spec));
        }
    }
    (iface, subcommands)
}

/// Every command path of the binary (`softgfn`, `softgfn bench`, `softgfn bench run`, ...).
fn binary_commands() -> BTreeMap<String, Interface> {
    let mut out = BTreeMap::new();
    let mut todo: Vec<Vec<String>> = vec![Vec::new()];
    while let Some(path) = todo.pop() {
        let (iface, subs) = parse_help(&help_text(&path));
        for s in subs {
            let mut p = path.clone();
            p.push(s);
            todo.push(p);
        }
        let name = std::iter::once("softgfn".to_string())
            .chain(path)
            .collect::<Vec<_>>()
            .join(" ");
        out.insert(name, iface);
    }
    out
}

/// The reference's commands and the global flags (root rows described `Global: ...`).
fn reference_commands(md: &str) -> (BTreeMap<String, Interface>, BTreeSet<String>) {
    let mut out: BTreeMap<String, Interface> = BTreeMap::new();
    let mut global = BTreeSet::new();
    let mut current: Option<String> = None;
    for line in md.lines() {
        if let Some(h) = line.strip_prefix("### ") {
            let name = h.trim().trim_matches('`').trim().to_string();
            current = name.starts_with("softgfn").then_some(name);
            if let Some(c) = &current {
                assert!(!out.contains_key(c), "the reference documents `{c}` twice");
                out.insert(c.clone(), Interface::default());
            }
            continue;
        }
        if line.starts_with("# ") || line.starts_with("## ") {
            current = None;
            continue;
        }
        let Some(cmd) = &current else { continue };
        let Some(row) = line.trim().strip_prefix("| `") else {
            continue;
        };
        let Some((first, rest)) = row.split_once('`') else {
            continue;
        };
        let description = rest.trim_start_matches([' ', '|']);
        let iface = out.get_mut(cmd).expect("inserted at its heading");
        if first.starts_with('-') {
            let flags: Vec<String> = long_flags(first).collect();
            assert!(!flags.is_empty(), "row `{line}` names no long flag");
            if cmd == "softgfn" && description.starts_with("Global:") {
                global.extend(flags.iter().cloned());
            }
            iface.flags.extend(flags);
        } else if first.starts_with('<') {
            let end = first.find('>').map_or(first.len(), |i| i + 1);
            iface.arguments.insert(first[..end].to_string());
        }
    }
    (out, global)
}

#[test]
fn the_cli_reference_documents_exactly_what_help_shows() {
    let md = std::fs::read_to_string(REFERENCE).expect("book/src/cli-reference.md exists");
    let binary = binary_commands();
    let (mut reference, global) = reference_commands(&md);
    assert!(
        binary.len() > 5,
        "too few commands discovered: {:?}",
        binary.keys()
    );
    for (name, iface) in reference.iter_mut() {
        if name != "softgfn" {
            iface.flags.extend(global.iter().cloned());
        }
    }
    let mut problems = Vec::new();
    for (name, shown) in &binary {
        let Some(documented) = reference.get(name) else {
            problems.push(format!(
                "`{name}` is a command of the binary but has no `### {name}` section"
            ));
            continue;
        };
        for f in shown.flags.difference(&documented.flags) {
            problems.push(format!(
                "`{name}`: flag `{f}` is in --help but not in the reference"
            ));
        }
        for f in documented.flags.difference(&shown.flags) {
            problems.push(format!(
                "`{name}`: flag `{f}` is in the reference but not in --help"
            ));
        }
        for a in shown.arguments.difference(&documented.arguments) {
            problems.push(format!(
                "`{name}`: argument `{a}` is in --help but not in the reference"
            ));
        }
        for a in documented.arguments.difference(&shown.arguments) {
            problems.push(format!(
                "`{name}`: argument `{a}` is in the reference but not in --help"
            ));
        }
    }
    for name in reference.keys().filter(|n| !binary.contains_key(*n)) {
        problems.push(format!(
            "`### {name}` is in the reference but the binary has no such command"
        ));
    }
    assert!(
        problems.is_empty(),
        "book/src/cli-reference.md and `softgfn --help` disagree:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn the_help_parser_reads_flags_arguments_and_commands() {
    let text = "About\n\nUsage: softgfn x [OPTIONS] <DIR>\n\nCommands:\n  run   Run it\n  help  Print help\n\nArguments:\n  <DIR>  A directory, see --other\n\nOptions:\n      --out <OUT>  Output; unlike --not-a-flag\n          continued --neither\n  -h, --help       Print help\n";
    let (iface, subs) = parse_help(text);
    assert_eq!(subs, vec!["run".to_string()]);
    assert_eq!(
        iface.flags,
        BTreeSet::from(["--out".to_string(), "--help".to_string()])
    );
    assert_eq!(iface.arguments, BTreeSet::from(["<DIR>".to_string()]));
    let md = "# CLI\n\n### softgfn\n\n| Flag | Description |\n|---|---|\n| `--plugin <PATH>` | Global: load a plugin |\n| `-V, --version` | Print version |\n\n### softgfn run\n\n| `<DIR>...` | Directories |\n| `--out <OUT>` | Output |\n\n## Notes\n\n| `--ignored` | not in a command section |\n";
    let (reference, global) = reference_commands(md);
    assert_eq!(global, BTreeSet::from(["--plugin".to_string()]));
    assert_eq!(
        reference["softgfn"].flags,
        BTreeSet::from(["--plugin".to_string(), "--version".to_string()])
    );
    assert_eq!(
        reference["softgfn run"].flags,
        BTreeSet::from(["--out".to_string()])
    );
    assert_eq!(
        reference["softgfn run"].arguments,
        BTreeSet::from(["<DIR>".to_string()])
    );
}

fn softgfn_stdout(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_softgfn"))
        .args(args)
        .env_remove("SOFTGFN_PLUGIN_PATH")
        .output()
        .expect("the softgfn binary runs");
    assert!(
        out.status.success(),
        "softgfn {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("output is UTF-8")
}

/// `key -> default cell` of the tables under `## Configuration` of an algorithm page.
fn config_table(md: &str, page: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut inside = false;
    for line in md.lines() {
        if line.starts_with("## ") {
            inside = line.trim() == "## Configuration";
            continue;
        }
        if !inside {
            continue;
        }
        let cells: Vec<&str> = line.trim().trim_matches('|').split('|').collect();
        let Some(key) = cells.first().map(|c| c.trim()) else {
            continue;
        };
        if cells.len() < 2 || !key.starts_with('`') || !key.ends_with('`') || key.contains(',') {
            continue;
        }
        let key = key.trim_matches('`').to_string();
        let default = cells[1].trim().trim_matches('`').to_string();
        assert!(
            out.insert(key.clone(), default).is_none(),
            "{page}: `{key}` is documented twice"
        );
    }
    out
}

/// Whether a documented default equals a default of `softgfn config defaults`.
fn same_default(documented: &str, actual: &toml::Value) -> bool {
    match actual {
        toml::Value::Float(x) => documented
            .parse::<f64>()
            .is_ok_and(|d| (d - x).abs() <= 1e-12 * x.abs().max(1.0)),
        toml::Value::Integer(i) => documented.parse::<i64>().is_ok_and(|d| d == *i),
        toml::Value::Boolean(b) => documented == b.to_string(),
        toml::Value::String(s) => documented == s,
        _ => false,
    }
}

/// The configuration tables of the algorithm pages (`book/src/algorithms/NAME.md`, `_` written
/// `-`) list every key of `softgfn config defaults --algo NAME` with its default, and nothing
/// else except keys that are unset by default (their default cell is a formula or `unset`).
#[test]
fn the_algorithm_pages_document_every_config_key_and_default() {
    let pages = concat!(env!("CARGO_MANIFEST_DIR"), "/../../book/src/algorithms");
    let mut problems = Vec::new();
    let mut checked = 0;
    for line in softgfn_stdout(&["algos", "list"]).lines() {
        let Some(algo) = line.split_whitespace().next() else {
            continue;
        };
        let page = format!("{pages}/{}.md", algo.replace('_', "-"));
        let Ok(md) = std::fs::read_to_string(&page) else {
            continue; // an algorithm without a page yet
        };
        checked += 1;
        let resolved: toml::Table = softgfn_stdout(&["config", "defaults", "--algo", algo])
            .parse()
            .expect("config defaults prints TOML");
        // Sub-tables (`[algo.transformer]`) are documented key by key: `transformer.layers`.
        let mut defaults = toml::Table::new();
        for (key, value) in resolved["algo"].as_table().expect("an [algo] table") {
            match value.as_table() {
                Some(sub) => {
                    for (k, v) in sub {
                        defaults.insert(format!("{key}.{k}"), v.clone());
                    }
                }
                None => {
                    defaults.insert(key.clone(), value.clone());
                }
            }
        }
        let table = config_table(&md, &page);
        for (key, value) in defaults.iter().filter(|(k, _)| *k != "name") {
            match table.get(key) {
                None => problems.push(format!(
                    "{algo}: `{key}` (default {value}) is not in its page"
                )),
                Some(d) if !same_default(d, value) => problems.push(format!(
                    "{algo}: `{key}` is documented with default `{d}` but defaults to {value}"
                )),
                Some(_) => {}
            }
        }
        for (key, d) in &table {
            // A key unset by default is documented with `unset` or a formula (e.g. `entropy_coef`).
            let unset_by_default = d == "unset" || d.contains(' ');
            if !defaults.contains_key(key) && !unset_by_default {
                problems.push(format!(
                    "{algo}: `{key}` is documented but `softgfn config defaults` has no such key"
                ));
            }
        }
    }
    assert!(checked >= 6, "only {checked} algorithm pages were found");
    assert!(
        problems.is_empty(),
        "the configuration tables of book/src/algorithms disagree with `softgfn config defaults`:\n  {}",
        problems.join("\n  ")
    );
}

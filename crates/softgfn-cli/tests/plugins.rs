//! End-to-end tests of run-time plugins through the `softgfn` binary: `--plugin`, `--plugin-dir`,
//! `SOFTGFN_PLUGIN_PATH`, `plugins list|check`, `check-env` and `train` on plugin environments,
//! and the pinned error of every way a plugin can fail (with the exit code, never a crash).
//!
//! The plugin libraries are built by `scripts/build-plugins.sh` into target/plugins/release
//! (`.ci/run` runs it before the tests).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn softgfn(args: &[&str]) -> Output {
    softgfn_env(args, None)
}

fn softgfn_env(args: &[&str], plugin_path: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_softgfn"));
    cmd.args(args).env_remove("SOFTGFN_PLUGIN_PATH");
    if let Some(p) = plugin_path {
        cmd.env("SOFTGFN_PLUGIN_PATH", p);
    }
    cmd.output().expect("the softgfn binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn plugin_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/plugins/release")
}

/// The built library of a crate, or a failure saying how to build it.
fn lib(crate_name: &str) -> String {
    let file = format!(
        "{}{}{}",
        std::env::consts::DLL_PREFIX,
        crate_name.replace('-', "_"),
        std::env::consts::DLL_SUFFIX
    );
    let p = plugin_dir().join(file);
    assert!(
        p.exists(),
        "{} is missing: build the plugin libraries first with scripts/build-plugins.sh \
         (CARGO_TARGET_DIR=target/plugins cargo build --release -p softgfn-hypergrid -p softgfn-sets \
         -p softgfn-plugin-fixture-... --features softgfn-hypergrid/dynamic,softgfn-sets/dynamic)",
        p.display()
    );
    p.to_str().unwrap().to_string()
}

/// `text` with the canonical path of `path` replaced by `<PATH>`.
fn redacted(text: &str, path: &str) -> String {
    let canonical = std::fs::canonicalize(path).unwrap();
    text.replace(&canonical.display().to_string(), "<PATH>")
}

/// Asserts a failure with exit code 1 (an error, not a crash) and returns stderr, redacted.
fn failure(o: &Output, path: &str) -> String {
    assert_eq!(
        o.status.code(),
        Some(1),
        "expected exit code 1; stdout: {} stderr: {}",
        stdout(o),
        stderr(o)
    );
    redacted(&stderr(o), path)
}

fn records(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Metric columns without timing fields.
fn metric_columns(r: &serde_json::Value) -> serde_json::Value {
    let mut m = r.as_object().unwrap().clone();
    m.remove("wall_seconds");
    m.remove("ms_per_iteration");
    serde_json::Value::Object(m)
}

#[test]
fn training_on_the_loaded_hypergrid_matches_the_static_one_bitwise() {
    let hypergrid = lib("softgfn-hypergrid");
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("static"), tmp.path().join("plugin"));
    let common = [
        "--algo",
        "tb",
        "--set",
        "env.dim=2",
        "--set",
        "env.side=5",
        "--set",
        "eval.interval=10",
        "--iterations",
        "30",
        "--seed",
        "7",
        "--quiet",
    ];
    let mut args = vec!["train", "--env", "hypergrid", "--out", a.to_str().unwrap()];
    args.extend(common);
    let o = softgfn(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut args = vec![
        "train",
        "--plugin",
        &hypergrid,
        "--env",
        "softgfn-hypergrid/hypergrid",
        "--out",
        b.to_str().unwrap(),
    ];
    args.extend(common);
    let o = softgfn(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let (ra, rb) = (records(&a), records(&b));
    assert_eq!(ra.len(), 4);
    assert_eq!(ra.len(), rb.len());
    for (x, y) in ra.iter().zip(&rb) {
        assert!(x["exact_l1"].is_number(), "{x}");
        assert_eq!(metric_columns(x), metric_columns(y));
    }
    let config = std::fs::read_to_string(b.join("config.toml")).unwrap();
    assert!(
        config.contains("name = \"softgfn-hypergrid/hypergrid\""),
        "{config}"
    );
}

#[test]
fn the_sets_plugin_is_listed_checked_and_trained() {
    let sets = lib("softgfn-sets");
    let o = softgfn(&["--plugin", &sets, "plugins", "list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        redacted(&stdout(&o), &sets),
        "loaded  softgfn-sets 0.1.0 from <PATH> (built against softgfn 0.1.0; found by --plugin)\n\
         \x20       softgfn-sets/sets            subsets of {0..n-1} of size <= max_size built element by element; additive log-reward (also `sets`)\n\
         1 plugin(s): 1 loaded, 0 failed\n"
    );

    let o = softgfn(&["plugins", "check", &sets]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "ok      softgfn-sets/sets: check_env passed for sets: 57 states (all), 312 transitions, 64 rollouts; 14 properties verified\n"
    );

    // check-env keeps its flags and takes --plugin after the subcommand too.
    let o = softgfn(&[
        "check-env",
        "--env",
        "softgfn-sets/sets",
        "--set",
        "env.n=5",
        "--set",
        "env.max_size=5",
        "--plugin",
        &sets,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("check_env passed for sets: 32 states (all)"),
        "{}",
        stdout(&o)
    );

    // The bare name works while nothing else provides it; training has exact metrics.
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sets");
    let o = softgfn(&[
        "train",
        "--plugin",
        &sets,
        "--env",
        "sets",
        "--algo",
        "db",
        "--iterations",
        "20",
        "--set",
        "eval.interval=10",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = records(&out);
    assert!(r[2]["exact_l1"].is_number() && r[2]["log_z_true"].is_number());

    // The plugin's own error for bad parameters.
    let o = softgfn(&[
        "check-env",
        "--env",
        "sets",
        "--plugin",
        &sets,
        "--set",
        "env.n=0",
    ]);
    assert_eq!(
        failure(&o, &sets),
        "error: softgfn-sets/sets: plugin softgfn-sets 0.1.0 returned an error from create: sets: invalid parameter `n` = 0: expected an integer in 1..=62\n"
    );
}

#[test]
fn plugin_dirs_and_the_search_path_are_loaded() {
    let tmp = tempfile::tempdir().unwrap();
    let sets = lib("softgfn-sets");
    let copy = tmp.path().join(Path::new(&sets).file_name().unwrap());
    std::fs::copy(&sets, &copy).unwrap();
    std::fs::write(tmp.path().join("notes.txt"), "not a library").unwrap();
    let dir = tmp.path().to_str().unwrap();

    let o = softgfn(&["--plugin-dir", dir, "envs", "list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("softgfn-sets/sets"), "{}", stdout(&o));

    let sep = if cfg!(windows) { ";" } else { ":" };
    for path in [dir.to_string(), format!("{sep}{}", copy.display())] {
        let o = softgfn_env(&["envs", "list"], Some(&path));
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stdout(&o).contains("softgfn-sets/sets"), "{}", stdout(&o));
    }
    // The same library named twice loads once.
    let o = softgfn_env(
        &["--plugin", copy.to_str().unwrap(), "plugins", "list"],
        Some(dir),
    );
    assert!(
        stdout(&o).contains("1 plugin(s): 1 loaded, 0 failed"),
        "{}",
        stdout(&o)
    );

    let o = softgfn_env(
        &["envs", "list"],
        Some(&format!("{dir}{sep}/nonexistent/plugins")),
    );
    assert_eq!(
        failure(&o, dir),
        "error: SOFTGFN_PLUGIN_PATH names /nonexistent/plugins, which does not exist\n"
    );
    let o = softgfn(&["--plugin-dir", "/nonexistent/plugins", "envs", "list"]);
    assert_eq!(
        failure(&o, dir),
        "error: cannot read the plugin directory /nonexistent/plugins: No such file or directory (os error 2)\n"
    );
}

#[test]
fn every_broken_plugin_gives_its_error_and_no_crash() {
    let cases = [
        (
            "softgfn-plugin-fixture-wrong-abi",
            "plugin <PATH> uses plugin ABI version 3, but this softgfn uses plugin ABI version 2 (and loads versions 1 to 2): rebuild the plugin against softgfn-plugin 0.1.0",
        ),
        (
            "softgfn-plugin-fixture-not-a-plugin",
            "<PATH> is not a softgfn plugin: it does not export `softgfn_plugin_abi_version`. A plugin is a cdylib crate that registers its environments with softgfn_plugin::environments! and exports them under its `dynamic` feature: build it with `cargo build --release --features dynamic` and pass the resulting library",
        ),
        (
            "softgfn-plugin-fixture-bad-manifest",
            "plugin <PATH> has a malformed manifest: it is not valid manifest JSON: missing field `softgfn_version` at line 1 column 60. The manifest is generated by softgfn_plugin::environments!: rebuild the plugin with that macro instead of writing `softgfn_plugin_manifest` by hand",
        ),
        (
            "softgfn-plugin-fixture-old-softgfn",
            "plugin `softgfn-fixture-old-softgfn` (<PATH>) was built against softgfn 0.0.1, but this softgfn is 0.1.0; major.minor must match: rebuild the plugin against softgfn-plugin 0.1.0",
        ),
    ];
    for (name, want) in cases {
        let path = lib(name);
        // train and check-env fail with the error.
        let o = softgfn(&[
            "--plugin",
            &path,
            "train",
            "--env",
            "hypergrid",
            "--iterations",
            "1",
            "--quiet",
            "--out",
            "/nonexistent/never",
        ]);
        assert_eq!(failure(&o, &path), format!("error: {want}\n"), "{name}");
        let o = softgfn(&["check-env", "--env", "hypergrid", "--plugin", &path]);
        assert_eq!(failure(&o, &path), format!("error: {want}\n"), "{name}");
        let o = softgfn(&["plugins", "check", &path]);
        assert_eq!(failure(&o, &path), format!("error: {want}\n"), "{name}");
        // plugins list reports it and goes on.
        let sets = lib("softgfn-sets");
        let o = softgfn(&["--plugin", &path, "--plugin", &sets, "plugins", "list"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let text = redacted(&stdout(&o), &path);
        assert!(
            text.starts_with(&format!(
                "failed  {path} (found by --plugin)\n        {want}\n"
            )),
            "{text}"
        );
        assert!(text.contains("loaded  softgfn-sets 0.1.0"), "{text}");
        assert!(
            text.ends_with("2 plugin(s): 1 loaded, 1 failed\n"),
            "{text}"
        );
    }
}

#[test]
fn a_panicking_plugin_is_reported_with_its_message() {
    let path = lib("softgfn-plugin-fixture-panics");
    let o = softgfn(&["check-env", "--env", "boom", "--plugin", &path]);
    assert_eq!(
        failure(&o, &path),
        "error: check_env failed for boom: property `finite rewards` violated: log_reward([1]) failed: softgfn-fixture-panics/boom: plugin softgfn-fixture-panics 0.1.0 panicked in log_reward: boom: log_reward was told to panic (at crates/softgfn-plugin/fixtures/panics/src/lib.rs:130:13); this is a bug in the plugin, loaded from <PATH> (softgfn caught the panic)\n"
    );
    let o = softgfn(&[
        "--plugin",
        &path,
        "train",
        "--env",
        "softgfn-fixture-panics/boom",
        "--set",
        "env.panic_in=step",
        "--iterations",
        "3",
        "--quiet",
        "--out",
        tempfile::tempdir()
            .unwrap()
            .path()
            .join("x")
            .to_str()
            .unwrap(),
    ]);
    assert_eq!(
        failure(&o, &path),
        "error: softgfn-fixture-panics/boom: plugin softgfn-fixture-panics 0.1.0 panicked in step: boom: step was told to panic (at crates/softgfn-plugin/fixtures/panics/src/lib.rs:99:13); this is a bug in the plugin, loaded from <PATH> (softgfn caught the panic)\n"
    );
    let o = softgfn(&["plugins", "check", &path]);
    assert_eq!(
        failure(&o, &path),
        "error: 1 of 1 environment(s) of plugin softgfn-fixture-panics failed check_env\n"
    );
    assert!(
        stdout(&o).starts_with("FAILED  softgfn-fixture-panics/boom: check_env failed for boom")
    );
}

#[test]
fn a_bare_name_from_a_plugin_and_a_built_in_is_the_duplicate_error() {
    let path = lib("softgfn-hypergrid");
    let o = softgfn(&[
        "train",
        "--plugin",
        &path,
        "--env",
        "hypergrid",
        "--iterations",
        "1",
        "--quiet",
        "--out",
        "/nonexistent/never",
    ]);
    assert_eq!(
        failure(&o, &path),
        "error: environment name `hypergrid` is registered twice: by softgfn-hypergrid (built in) and by plugin softgfn-hypergrid 0.1.0 (<PATH>); ask for `softgfn-hypergrid/hypergrid` to use the plugin's, or do not load the plugin to use the built-in\n"
    );
    let o = softgfn(&[
        "--plugin",
        &path,
        "check-env",
        "--env",
        "softgfn-hypergrid/hypergrid",
        "--set",
        "env.dim=2",
        "--set",
        "env.side=6",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("check_env passed for hypergrid: 36 states (all)"));
}

#[test]
fn the_sehfrag_plugin_trains_and_passes_its_check() {
    let path = lib("softgfn-sehfrag");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("m");
    let o = softgfn(&[
        "--plugin",
        &path,
        "train",
        "--env",
        "softgfn-sehfrag/sehfrag",
        "--iterations",
        "2",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.join("metrics.jsonl").exists());
    // ABI version 2 carries the state equivalence (the paper's parents of an earlier leaf re-add
    // it last, an equivalent molecule in another row): the check passes through the plugin as it
    // does on the built-in environment.
    let o = softgfn(&["plugins", "check", &path, "--rollouts", "8"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("passed"), "{}", stdout(&o));
    let o = softgfn(&["check-env", "--env", "sehfrag", "--rollouts", "4"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn a_plugin_of_abi_version_1_still_loads_and_checks() {
    let path = lib("softgfn-plugin-fixture-abi-v1");
    let o = softgfn(&["plugins", "check", &path]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("set-v1"), "{}", stdout(&o));
}

//! A catalogue of bad inputs to the `softgfn` binary, one row each: a name that says what the row
//! is about, the command line, the files it needs, and a fragment of the error it must print.
//!
//! Every row runs the real binary in a directory of its own and asserts that
//! - the process exits with a non-zero code (an error, not a crash: a process killed by a signal,
//!   e.g. an abort on a failed allocation, has no exit code and fails the row),
//! - stderr holds the expected fragment,
//! - nothing panicked (stderr has no "panicked"),
//! - nothing already written is lost: the files a row lists (the run directory it targets, a
//!   results directory) are byte for byte the same afterwards, and where a row says so, a rejected
//!   command left no new directory behind.
//!
//! Rows with `bug = Some(reason)` document a product bug that is not fixed yet: they state the
//! behaviour the product should have, are skipped by [`catalogue`] and run only in the ignored
//! test [`catalogue_rows_documenting_product_bugs`] (`cargo test --release -p softgfn-cli --test
//! bad_inputs -- --ignored`). When a bug is fixed, drop its `bug` so the row guards the fix.
//!
//! Rows about plugin libraries that are built by `scripts/build-plugins.sh` (into
//! `target/plugins/release`) are skipped, with a note, when those libraries are missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The files of a finished run directory `run/` (with its checkpoint) that a row targeting it
/// must leave untouched.
const RUN_FILES: &[&str] = &[
    "run/config.toml",
    "run/metrics.jsonl",
    "run/metrics.csv",
    "run/summary.json",
    "run/model.safetensors",
    "run/checkpoint/manifest.json",
    "run/checkpoint/trainer.bin",
    "run/checkpoint/algo.bin",
    "run/checkpoint/algo.safetensors",
];

/// Prepares a row's directory; gets the row's directory and the template run directory.
type Setup = fn(&Path, &Path);

/// One bad input.
struct Row {
    /// What the row is about.
    name: &'static str,
    /// The command line (`{lib:CRATE}` stands for the built plugin library of CRATE).
    args: Vec<String>,
    /// A fragment of stderr.
    expect: &'static str,
    /// The fragment must appear exactly once (an error message must not repeat itself).
    once: bool,
    /// Files to create before the command runs.
    setup: Option<Setup>,
    /// Files (relative to the row's directory) that must be unchanged afterwards.
    keep: Vec<&'static str>,
    /// Paths (relative to the row's directory) that must not exist afterwards.
    absent: Vec<&'static str>,
    /// Extra environment variables.
    env: Vec<(&'static str, &'static str)>,
    /// Run under a 4 GB address-space limit (inputs that ask for absurd amounts of memory).
    mem_limited: bool,
    /// A product bug this row documents (the row then states the wanted behaviour).
    bug: Option<&'static str>,
}

fn row(name: &'static str, args: Vec<String>, expect: &'static str) -> Row {
    Row {
        name,
        args,
        expect,
        once: false,
        setup: None,
        keep: Vec::new(),
        absent: Vec::new(),
        env: Vec::new(),
        mem_limited: false,
        bug: None,
    }
}

impl Row {
    fn setup(mut self, f: Setup) -> Self {
        self.setup = Some(f);
        self
    }

    /// Targets a copy of the template run in `run/`, which must stay untouched.
    fn on_run(mut self, f: Setup) -> Self {
        self.setup = Some(f);
        self.keep.extend_from_slice(RUN_FILES);
        self
    }

    fn keep(mut self, files: &[&'static str]) -> Self {
        self.keep.extend_from_slice(files);
        self
    }

    fn absent(mut self, path: &'static str) -> Self {
        self.absent.push(path);
        self
    }

    fn env(mut self, key: &'static str, value: &'static str) -> Self {
        self.env.push((key, value));
        self
    }

    fn once(mut self) -> Self {
        self.once = true;
        self
    }

    fn mem_limited(mut self) -> Self {
        self.mem_limited = true;
        self
    }

    #[expect(
        dead_code,
        reason = "rows documenting a known product bug use it; every catalogued bug is fixed today"
    )]
    fn bug(mut self, reason: &'static str) -> Self {
        self.bug = Some(reason);
        self
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// `softgfn ARGS`.
fn cmd(args: &[&str]) -> Vec<String> {
    strings(args)
}

/// `softgfn train` on a small hypergrid, plus `extra` (later overrides win), for 2 iterations
/// into `out/` unless `extra` gives `--iterations` or `--out`.
fn train(extra: &[&str]) -> Vec<String> {
    let mut v = strings(&[
        "train",
        "--env",
        "hypergrid",
        "--set",
        "env.dim=2",
        "--set",
        "env.side=4",
        "--quiet",
    ]);
    v.extend(strings(extra));
    for (flag, default) in [("--iterations", "2"), ("--out", "out")] {
        if !extra.contains(&flag) {
            v.extend(strings(&[flag, default]));
        }
    }
    v
}

/// `softgfn train --algo ALGO` on the small hypergrid with one override.
fn algo(name: &str, set: &str) -> Vec<String> {
    train(&["--algo", name, "--set", set])
}

/// `softgfn train --config FILE` (with no other flag but the output directory).
fn with_config(file: &str) -> Vec<String> {
    strings(&["train", "--config", file, "--quiet", "--out", "out"])
}

/// `softgfn train --env ENV` with one environment override, 1 iteration.
fn env_set(env: &str, set: &str) -> Vec<String> {
    strings(&[
        "train",
        "--env",
        env,
        "--set",
        set,
        "--iterations",
        "1",
        "--quiet",
        "--out",
        "out",
    ])
}

/// `softgfn train --resume run` plus `extra`.
fn resume(extra: &[&str]) -> Vec<String> {
    let mut v = strings(&["train", "--resume", "run", "--quiet"]);
    v.extend(strings(extra));
    v
}

fn write(dir: &Path, name: &str, text: &str) {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(p, text).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// A copy of the template run (20 iterations, checkpoint at 20) in `run/`.
fn run_copy(dir: &Path, template: &Path) {
    copy_dir(template, &dir.join("run"));
}

fn molstr_data(env: &str, file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../plugins/molstr/data")
        .join(env)
        .join(file)
}

/// A data directory `data/` holding a copy of the shipped `blocks.json` of `env`.
fn data_dir_with_blocks(dir: &Path, env: &str) {
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::copy(
        molstr_data(env, "blocks.json"),
        dir.join("data/blocks.json"),
    )
    .unwrap();
}

/// A safetensors file with one zero `F32` tensor of shape `[rows, cols]`.
fn one_tensor(name: &str, rows: usize, cols: usize) -> Vec<u8> {
    let n = rows * cols * 4;
    let header = format!(
        "{{\"{name}\":{{\"dtype\":\"F32\",\"shape\":[{rows},{cols}],\"data_offsets\":[0,{n}]}}}}"
    );
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.resize(out.len() + n, 0);
    out
}

/// Two blocks `C`, `N` (strings of length 2 with four rows in a proxy CSV).
const TWO_BLOCKS: &str = r#"{"block_name": {"0": "C", "1": "N"}, "block_smi": {"0": "C", "1": "N"}, "block_r": {"0": [0], "1": [0]}}"#;

fn manifest_path(dir: &Path) -> PathBuf {
    dir.join("run/checkpoint/manifest.json")
}

const SUITE_OK: &str = r#"
name = "bad-inputs"
seeds = [1]
iterations = 5
[[env]]
name = "hypergrid"
set = { dim = 2, side = 4 }
[[algo]]
name = "tb"
"#;

/// Every bad input, grouped by what it gets wrong.
fn table() -> Vec<Row> {
    vec![
        // --- Config typos in every section, wrong types ---------------------------------------
        row(
            "typo_in_top_level_key",
            train(&["--set", "seeed=1"]),
            "unknown top-level key `seeed`; expected one of `seed`",
        ),
        row(
            "typo_in_env_key",
            train(&["--set", "env.sid=3"]),
            "unknown field `sid`, expected one of `dim`, `side`",
        ),
        row(
            "typo_in_algo_key",
            train(&["--set", "algo.learnin_rate=0.1"]),
            "unknown field `learnin_rate`, expected one of `learning_rate`",
        ),
        row(
            "typo_in_eval_key",
            train(&["--set", "eval.intervl=3"]),
            "unknown field `intervl`, expected one of `interval`",
        ),
        row(
            "typo_in_log_key",
            train(&["--set", "log.tensorbord=true"]),
            "bad configuration in [log]: unknown field `tensorbord`, expected `tensorboard`",
        ),
        row(
            "integer_for_the_tensorboard_switch",
            train(&["--set", "log.tensorboard=1"]),
            "`log.tensorboard` must be a boolean (default false), found an integer",
        ),
        row(
            "tensorboard_directory_taken_by_a_file",
            train(&["--tensorboard"]),
            "cannot create the TensorBoard directory out/tb",
        )
        .setup(|d, _| write(d, "out/tb", "a file where the event directory goes"))
        .keep(&["out/tb"]),
        row(
            "typo_in_env_key_of_config_file",
            with_config("run.toml"),
            "unknown field `dimm`",
        )
        .setup(|d, _| write(d, "run.toml", "[env]\nname = \"hypergrid\"\ndimm = 2\n")),
        row(
            "string_for_integer_env_key",
            train(&["--set", "env.side=\"four\""]),
            "`env.side` must be an integer (default 20), found a string",
        ),
        row(
            "float_for_integer_env_key",
            train(&["--set", "env.side=4.5"]),
            "`env.side` must be an integer (default 20), found a float (4.5)",
        ),
        row(
            "string_for_float_algo_key",
            train(&["--set", "algo.learning_rate=\"fast\""]),
            "`algo.learning_rate` must be a float (default 0.001), found a string",
        ),
        row(
            "boolean_for_float_algo_key",
            train(&["--set", "algo.learning_rate=true"]),
            "`algo.learning_rate` must be a float (default 0.001), found a boolean",
        ),
        row(
            "string_for_integer_eval_key",
            train(&["--set", "eval.interval=\"x\""]),
            "eval.interval",
        ),
        row(
            "negative_seed",
            train(&["--set", "seed=-1"]),
            "invalid value for `seed`: -1; expected a non-negative integer",
        ),
        row(
            "float_seed",
            train(&["--set", "seed=1.5"]),
            "invalid value for `seed`: 1.5",
        ),
        row(
            "string_iterations_in_config_file",
            with_config("run.toml"),
            "invalid value for `iterations`: \"many\"",
        )
        .setup(|d, _| write(d, "run.toml", "iterations = \"many\"\n")),
        row(
            "zero_iterations",
            train(&["--iterations", "0"]),
            "invalid value for `iterations`: 0; expected an integer >= 1",
        ),
        row(
            "section_given_as_a_number",
            train(&["--set", "env=3"]),
            "`env` must be a section (table)",
        ),
        row(
            "max_seconds_nan",
            train(&["--set", "max_seconds=nan"]),
            "invalid value for `max_seconds`: NaN; expected a finite number > 0",
        ),
        row(
            "max_seconds_negative",
            train(&["--set", "max_seconds=-1"]),
            "invalid value for `max_seconds`: -1",
        ),
        row(
            "eval_interval_zero",
            train(&["--set", "eval.interval=0"]),
            "invalid value for `eval.interval`: 0",
        ),
        row(
            "eval_empirical_window_zero",
            train(&["--set", "eval.empirical_window=0"]),
            "invalid value for `eval.empirical_window`: 0",
        ),
        row(
            "unknown_device",
            train(&["--device", "gpu"]),
            "unknown device `gpu`: expected `cpu`, `cuda` or `cuda:<index>`",
        ),
        row(
            "cuda_device_in_a_cpu_build",
            train(&["--device", "cuda"]),
            "cuda support is not compiled into this build",
        ),
        row(
            "cuda_device_names_the_rebuild_command",
            train(&["--device", "cuda:1"]),
            "cargo build --release -p softgfn-cli --features cuda",
        ),
        row(
            "transformer_on_an_environment_without_tokens",
            train(&["--set", "algo.network=\"transformer\""]),
            "needs an environment whose states are token sequences (such as bitseq); hypergrid does not",
        ),
        row(
            "unknown_network",
            train(&["--set", "algo.network=\"cnn\""]),
            "unknown variant `cnn`, expected one of `mlp`, `transformer`, `graph`",
        ),
        row(
            "transformer_heads_not_dividing_d_model",
            train(&["--set", "algo.transformer.attention_heads=3"]),
            "invalid value for `algo.transformer.attention_heads`: 3; expected a divisor of algo.transformer.d_model (64)",
        ),
        row(
            "transformer_dropout_one",
            train(&["--set", "algo.transformer.dropout=1.0"]),
            "invalid value for `algo.transformer.dropout`: 1; expected a number in [0, 1)",
        ),
        row(
            "transformer_unknown_key",
            train(&["--set", "algo.transformer.width=3"]),
            "unknown field `width`",
        ),
        row(
            "graph_network_on_an_environment_without_a_graph",
            train(&["--set", "algo.network=\"graph\""]),
            "needs an environment whose states are graphs (such as sehfrag); hypergrid does not",
        ),
        row(
            "graph_network_in_float64",
            train(&["--set", "algo.network.graph.precision=\"float64\""]),
            "invalid value for `algo.network.graph.precision`: float64; expected \"float32\": the tensor backend computes in f32 only",
        ),
        row(
            "graph_network_zero_width",
            train(&["--set", "algo.network.graph.width=0"]),
            "invalid value for `algo.network.graph.width`: 0",
        ),
        row(
            "graph_network_unknown_key",
            train(&["--set", "algo.network.graph.depth=3"]),
            "unknown field `depth`, expected one of `width`, `steps`, `precision`",
        ),
        row(
            "network_table_of_another_kind",
            train(&["--set", "algo.network.mlp.width=3"]),
            "unknown field `mlp`, expected `graph`",
        ),
        row(
            "env_name_not_a_string",
            train(&["--set", "env.name=3"]),
            "`name` must be a string, found 3",
        ),
        row(
            "override_below_a_scalar",
            train(&["--set", "env.dim.x=3"]),
            "override `env.dim.x`: `dim` is a",
        ),
        // --- --set syntax -----------------------------------------------------------------------
        row(
            "set_without_equals",
            train(&["--set", "env.dim"]),
            "override `env.dim` is not of the form key=value",
        ),
        row(
            "set_with_empty_key",
            train(&["--set", "=3"]),
            "override `=3` has an empty key part",
        ),
        row(
            "set_with_empty_key_segment",
            train(&["--set", "env..dim=3"]),
            "override `env..dim=3` has an empty key part",
        ),
        // --- Out-of-range hyperparameters: balance algorithms -----------------------------------
        row(
            "tb_learning_rate_zero",
            algo("tb", "algo.learning_rate=0"),
            "invalid value for `algo.learning_rate`: 0; expected a finite number > 0",
        ),
        row(
            "tb_learning_rate_nan_in_config_file",
            with_config("run.toml"),
            "invalid value for `algo.learning_rate`: NaN",
        )
        .setup(|d, _| write(d, "run.toml", "[algo]\nname = \"tb\"\nlearning_rate = nan\n")),
        row(
            "tb_log_z_learning_rate_negative",
            algo("tb", "algo.log_z_learning_rate=-0.1"),
            "invalid value for `algo.log_z_learning_rate`: -0.1",
        ),
        row(
            "tb_log_z_init_infinite",
            algo("tb", "algo.log_z_init=inf"),
            "invalid value for `algo.log_z_init`: inf; expected a finite number",
        ),
        row(
            "tb_epsilon_above_one",
            algo("tb", "algo.epsilon=1.5"),
            "invalid value for `algo.epsilon`: 1.5; expected a number in [0, 1]",
        ),
        row(
            "tb_epsilon_nan",
            algo("tb", "algo.epsilon=nan"),
            "invalid value for `algo.epsilon`: NaN",
        ),
        row(
            "tb_temperature_zero",
            algo("tb", "algo.temperature=0"),
            "invalid value for `algo.temperature`: 0",
        ),
        row(
            "tb_weight_decay_negative",
            algo("tb", "algo.weight_decay=-1"),
            "invalid value for `algo.weight_decay`: -1; expected a finite number >= 0",
        ),
        row(
            "tb_trajectories_per_iteration_zero",
            algo("tb", "algo.trajectories_per_iteration=0"),
            "invalid value for `algo.trajectories_per_iteration`: 0",
        ),
        row(
            "tb_hidden_layers_zero",
            algo("tb", "algo.hidden_layers=0"),
            "invalid value for `algo.hidden_layers`: 0",
        ),
        row(
            "tb_negative_hidden_dim",
            algo("tb", "algo.hidden_dim=-1"),
            "hidden_dim",
        ),
        row(
            "tb_unknown_backward_policy",
            algo("tb", "algo.backward_policy=\"sideways\""),
            "unknown variant `sideways`, expected one of `uniform`, `tree`, `learned`",
        ),
        row(
            "db_rejects_a_tb_only_key",
            algo("db", "algo.log_z_init=1"),
            "unknown field `log_z_init`",
        ),
        row(
            "subtb_lambda_zero",
            algo("subtb", "algo.subtb_lambda=0"),
            "invalid value for `algo.subtb_lambda`: 0",
        ),
        row(
            "subtb_learning_rate_infinite",
            algo("subtb", "algo.learning_rate=inf"),
            "invalid value for `algo.learning_rate`: inf",
        ),
        row(
            "subtb_unknown_weighting",
            algo("subtb", "algo.subtb_weighting=\"x\""),
            "unknown variant `x`, expected `geometric_within` or `equal_within`",
        ),
        row(
            "fm_leaf_coef_zero",
            algo("fm", "algo.leaf_coef=0"),
            "invalid value for `algo.leaf_coef`: 0",
        ),
        row(
            "fm_log_reg_c_negative",
            algo("fm", "algo.log_reg_c=-1e-5"),
            "invalid value for `algo.log_reg_c`: -0.00001",
        ),
        row(
            "fm_has_no_backward_policy",
            algo("fm", "algo.backward_policy=\"uniform\""),
            "unknown field `backward_policy`",
        ),
        row(
            "tb_hidden_dim_absurd",
            algo("tb", "algo.hidden_dim=100000000000"),
            "algo.hidden_dim",
        )
        .mem_limited(),
        row(
            "tb_hidden_layers_absurd",
            algo("tb", "algo.hidden_layers=100000000000"),
            "algo.hidden_layers",
        )
        .mem_limited(),
        row(
            "tb_trajectories_per_iteration_absurd",
            algo("tb", "algo.trajectories_per_iteration=100000000000000"),
            "algo.trajectories_per_iteration",
        )
        .mem_limited(),
        // --- Out-of-range hyperparameters: soft RL ----------------------------------------------
        row(
            "soft_dqn_tau_zero",
            algo("soft_dqn", "algo.tau=0"),
            "invalid value for `algo.tau`: 0; expected a number in (0, 1]",
        ),
        row(
            "soft_dqn_tau_above_one",
            algo("soft_dqn", "algo.tau=1.5"),
            "invalid value for `algo.tau`: 1.5",
        ),
        row(
            "soft_dqn_per_alpha_negative",
            algo("soft_dqn", "algo.per_alpha=-0.5"),
            "invalid value for `algo.per_alpha`: -0.5; expected a finite number >= 0",
        ),
        row(
            "soft_dqn_per_beta_above_one",
            algo("soft_dqn", "algo.per_beta=2"),
            "invalid value for `algo.per_beta`: 2; expected a number in [0, 1]",
        ),
        row(
            "soft_dqn_batch_size_zero",
            algo("soft_dqn", "algo.batch_size=0"),
            "invalid value for `algo.batch_size`: 0; expected an integer in 1..=1048576",
        ),
        row(
            "soft_dqn_buffer_capacity_zero",
            algo("soft_dqn", "algo.buffer_capacity=0"),
            "invalid value for `algo.buffer_capacity`: 0",
        ),
        row(
            "soft_dqn_buffer_capacity_absurd",
            algo("soft_dqn", "algo.buffer_capacity=100000000000000"),
            "expected a capacity whose storage fits in memory",
        )
        .mem_limited(),
        row(
            "soft_dqn_target_update_interval_zero",
            algo("soft_dqn", "algo.target_update_interval=0"),
            "invalid value for `algo.target_update_interval`: 0",
        ),
        row(
            "soft_dqn_learned_backward_policy",
            algo("soft_dqn", "algo.backward_policy=\"learned\""),
            "a learned backward policy breaks the soft-RL equivalence",
        ),
        row(
            "soft_dqn_naive_mode_without_learned_policy",
            algo("soft_dqn", "algo.naive_learned_backward=true"),
            "invalid value for `algo.naive_learned_backward`: true",
        ),
        row(
            "soft_dqn_unknown_replay",
            algo("soft_dqn", "algo.replay=\"lifo\""),
            "unknown variant `lifo`, expected `prioritized` or `uniform`",
        ),
        row(
            "munchausen_alpha_one",
            algo("munchausen_dqn", "algo.munchausen_alpha=1"),
            "invalid value for `algo.munchausen_alpha`: 1; expected a number in [0, 1)",
        ),
        row(
            "munchausen_alpha_above_one",
            algo("munchausen_dqn", "algo.munchausen_alpha=1.5"),
            "invalid value for `algo.munchausen_alpha`: 1.5",
        ),
        row(
            "munchausen_alpha_negative",
            algo("munchausen_dqn", "algo.munchausen_alpha=-0.1"),
            "invalid value for `algo.munchausen_alpha`: -0.1",
        ),
        row(
            "munchausen_clip_min_positive",
            algo("munchausen_dqn", "algo.munchausen_clip_min=1"),
            "invalid value for `algo.munchausen_clip_min`: 1; expected a number <= 0",
        ),
        row(
            "munchausen_entropy_coef_zero",
            algo("munchausen_dqn", "algo.entropy_coef=0"),
            "invalid value for `algo.entropy_coef`: 0",
        ),
        row(
            "sac_q_learning_rate_zero",
            algo("sac", "algo.q_learning_rate=0"),
            "invalid value for `algo.q_learning_rate`: 0",
        ),
        row(
            "sac_policy_learning_rate_negative",
            algo("sac", "algo.policy_learning_rate=-1"),
            "invalid value for `algo.policy_learning_rate`: -1",
        ),
        row(
            "sac_adam_eps_zero",
            algo("sac", "algo.adam_eps=0"),
            "invalid value for `algo.adam_eps`: 0",
        ),
        row(
            "sac_tau_zero",
            algo("sac", "algo.tau=0"),
            "invalid value for `algo.tau`: 0",
        ),
        row(
            "sac_batch_size_zero",
            algo("sac", "algo.batch_size=0"),
            "invalid value for `algo.batch_size`: 0",
        ),
        row(
            "sac_epsilon_final_above_one",
            algo("sac", "algo.epsilon_final=2"),
            "invalid value for `algo.epsilon_final`: 2",
        ),
        row(
            "sac_leaf_coef_zero",
            algo("sac", "algo.leaf_coef=0"),
            "invalid value for `algo.leaf_coef`: 0",
        ),
        // --- Unknown names ----------------------------------------------------------------------
        row(
            "unknown_environment",
            strings(&["train", "--env", "gridworld", "--quiet", "--out", "out"]),
            "unknown environment `gridworld`; available: ",
        ),
        row(
            "unknown_algorithm",
            strings(&["train", "--algo", "ppo", "--quiet", "--out", "out"]),
            "unknown algorithm `ppo`; available: ",
        ),
        row(
            "config_defaults_of_unknown_algorithm",
            cmd(&["config", "defaults", "--algo", "ppo"]),
            "unknown algorithm `ppo`",
        ),
        row(
            "check_env_of_unknown_environment",
            cmd(&["check-env", "--env", "gridworld"]),
            "unknown environment `gridworld`",
        ),
        row(
            "check_env_override_outside_env",
            cmd(&["check-env", "--env", "hypergrid", "--set", "dim=3"]),
            "check-env takes environment overrides only (env.KEY=VALUE), got `dim=3`",
        ),
        // --- Config files -----------------------------------------------------------------------
        row(
            "malformed_toml_file",
            with_config("run.toml"),
            "run.toml: TOML parse error at line 2",
        )
        .setup(|d, _| write(d, "run.toml", "seed = 1\n[env\nname = \"hypergrid\"\n")),
        row(
            "missing_config_file",
            with_config("missing.toml"),
            "cannot read the config file missing.toml",
        ),
        row(
            "config_file_is_a_directory",
            with_config("."),
            "cannot read the config file .",
        ),
        row(
            "config_file_not_utf8",
            with_config("run.toml"),
            "cannot read the config file run.toml",
        )
        .setup(|d, _| std::fs::write(d.join("run.toml"), b"\xff\xfe seed = 1").unwrap()),
        // --- Rewards: zero, negative, NaN, infinite ---------------------------------------------
        row(
            "hypergrid_custom_r0_zero",
            train(&[
                "--set",
                "env.reward=\"custom\"",
                "--set",
                "env.r0=0",
                "--set",
                "env.r1=1",
                "--set",
                "env.r2=1",
            ]),
            "invalid parameter `r0` = 0: expected a finite number > 0",
        ),
        row(
            "hypergrid_custom_r0_negative",
            train(&[
                "--set",
                "env.reward=\"custom\"",
                "--set",
                "env.r0=-1",
                "--set",
                "env.r1=1",
                "--set",
                "env.r2=1",
            ]),
            "invalid parameter `r0` = -1",
        ),
        row(
            "hypergrid_custom_r0_nan",
            train(&[
                "--set",
                "env.reward=\"custom\"",
                "--set",
                "env.r0=nan",
                "--set",
                "env.r1=1",
                "--set",
                "env.r2=1",
            ]),
            "invalid value for `env.r0`: NaN",
        ),
        row(
            "hypergrid_custom_r1_infinite",
            train(&[
                "--set",
                "env.reward=\"custom\"",
                "--set",
                "env.r0=1",
                "--set",
                "env.r1=inf",
                "--set",
                "env.r2=1",
            ]),
            "invalid value for `env.r1`: inf",
        ),
        row(
            "hypergrid_custom_r2_missing",
            train(&[
                "--set",
                "env.reward=\"custom\"",
                "--set",
                "env.r0=1",
                "--set",
                "env.r1=1",
            ]),
            "invalid parameter `r2` = unset: expected a number: reward = \"custom\" needs r0, r1 and r2",
        ),
        row(
            "hypergrid_preset_with_constant",
            train(&["--set", "env.reward=\"hard\"", "--set", "env.r0=1"]),
            "r0, r1 and r2 are only used with reward = \"custom\"",
        ),
        row(
            "hypergrid_unknown_reward",
            train(&["--set", "env.reward=weird"]),
            "unknown variant `weird`, expected one of `standard`, `hard`, `custom`",
        ),
        row(
            "hypergrid_reward_overflowing_to_infinity",
            train(&[
                "--set",
                "env.reward=\"custom\"",
                "--set",
                "env.r0=1",
                "--set",
                "env.r1=1e308",
                "--set",
                "env.r2=1e308",
                "--set",
                "env.side=8",
            ]),
            "is inf; rewards must be finite and positive",
        ),
        row(
            "hypergrid_infinite_reward_leaves_no_run_directory",
            train(&[
                "--set",
                "env.reward=\"custom\"",
                "--set",
                "env.r0=1",
                "--set",
                "env.r1=1e308",
                "--set",
                "env.r2=1e308",
                "--set",
                "env.side=8",
            ]),
            "is inf; rewards must be finite and positive",
        )
        .absent("out"),
        row(
            "check_env_reward_overflowing_to_infinity",
            cmd(&[
                "check-env",
                "--env",
                "hypergrid",
                "--set",
                "env.reward=\"custom\"",
                "--set",
                "env.r0=1",
                "--set",
                "env.r1=1e308",
                "--set",
                "env.r2=1e308",
            ]),
            "property `finite rewards` violated",
        ),
        row(
            "qm9str_reward_exponent_zero",
            env_set("qm9str", "env.reward_exponent=0"),
            "qm9str: invalid parameter `reward_exponent` = 0: expected a finite number in (0, 1000]",
        ),
        row(
            "sehstr_reward_exponent_too_large",
            env_set("sehstr", "env.reward_exponent=2000"),
            "sehstr: invalid parameter `reward_exponent` = 2000",
        ),
        row(
            "qm9str_reward_scale_nan",
            env_set("qm9str", "env.reward_scale=nan"),
            "invalid value for `env.reward_scale`: NaN",
        ),
        // --- Hypergrid shapes -------------------------------------------------------------------
        row(
            "hypergrid_side_one",
            env_set("hypergrid", "env.side=1"),
            "hypergrid: invalid parameter `side` = 1: expected an integer in 2..=2147483647",
        ),
        row(
            "hypergrid_dim_zero",
            env_set("hypergrid", "env.dim=0"),
            "hypergrid: invalid parameter `dim` = 0: expected an integer >= 1",
        ),
        row(
            "hypergrid_side_negative",
            env_set("hypergrid", "env.side=-3"),
            "side",
        ),
        row(
            "hypergrid_side_absurd",
            strings(&[
                "train",
                "--env",
                "hypergrid",
                "--set",
                "env.dim=4",
                "--set",
                "env.side=1000000000",
                "--iterations",
                "1",
                "--quiet",
                "--out",
                "out",
            ]),
            "side",
        )
        .mem_limited(),
        row(
            "max_exact_states_raised_beyond_memory",
            strings(&[
                "train",
                "--env",
                "hypergrid",
                "--set",
                "env.dim=7",
                "--set",
                "env.side=20",
                "--set",
                "eval.max_exact_states=2000000000",
                "--iterations",
                "1",
                "--quiet",
                "--out",
                "out",
            ]),
            "not enough memory",
        )
        .mem_limited(),
        // --- sehfrag: table and weights files, parameters ----------------------------------------
        row(
            "sehfrag_table_missing",
            env_set("sehfrag", "env.table_path=\"nonexistent.json\""),
            "sehfrag: block table nonexistent.json: cannot be read",
        ),
        row(
            "sehfrag_table_corrupt",
            env_set("sehfrag", "env.table_path=\"table.json\""),
            "sehfrag: block table table.json: is not a valid blocks_runtime.json",
        )
        .setup(|d, _| write(d, "table.json", "{\"blocks\": 3}")),
        row(
            "sehfrag_weights_missing",
            env_set("sehfrag", "env.weights_path=\"nonexistent.safetensors\""),
            "sehfrag: proxy weights nonexistent.safetensors: cannot be read",
        ),
        row(
            "sehfrag_weights_corrupt",
            env_set("sehfrag", "env.weights_path=\"w.safetensors\""),
            "sehfrag: proxy weights w.safetensors: is not a safetensors file",
        )
        .setup(|d, _| write(d, "w.safetensors", "garbage")),
        row(
            "sehfrag_weights_wrong_shape",
            env_set("sehfrag", "env.weights_path=\"w.safetensors\""),
            "sehfrag: proxy weights w.safetensors: tensor `lin0.weight` has shape [64, 70], expected [64, 71]",
        )
        .setup(|d, _| {
            std::fs::write(d.join("w.safetensors"), one_tensor("lin0.weight", 64, 70)).unwrap()
        }),
        row(
            "sehfrag_max_blocks_too_large",
            env_set("sehfrag", "env.max_blocks=17"),
            "sehfrag: invalid parameter `max_blocks` = 17: expected an integer in min_blocks..=16",
        ),
        row(
            "sehfrag_min_blocks_one",
            env_set("sehfrag", "env.min_blocks=1"),
            "sehfrag: invalid parameter `min_blocks` = 1: expected an integer in 2..=16",
        ),
        row(
            "sehfrag_r_min_zero",
            env_set("sehfrag", "env.r_min=0"),
            "sehfrag: invalid parameter `r_min` = 0: expected a finite number > 0",
        ),
        row(
            "sehfrag_library_not_closed",
            env_set("sehfrag", "env.blocks=[2]"),
            "block 2 needs block 1",
        ),
        row(
            "sehfrag_block_out_of_range",
            env_set("sehfrag", "env.blocks=[105]"),
            "sehfrag: invalid parameter `blocks` = [105]: expected distinct block indices in 0..105",
        ),
        // --- molstr data directories ------------------------------------------------------------
        row(
            "qm9str_data_dir_missing",
            env_set("qm9str", "env.data_dir=\"nonexistent\""),
            "qm9str: nonexistent: is not a directory; `data_dir` must name a directory",
        ),
        row(
            "sehstr_data_dir_missing",
            env_set("sehstr", "env.data_dir=\"nonexistent\""),
            "sehstr: nonexistent: is not a directory",
        ),
        row(
            "qm9str_data_dir_is_a_file",
            env_set("qm9str", "env.data_dir=\"file\""),
            "qm9str: file: is not a directory",
        )
        .setup(|d, _| write(d, "file", "x")),
        row(
            "qm9str_data_dir_not_a_string",
            env_set("qm9str", "env.data_dir=3"),
            "data_dir",
        ),
        row(
            "qm9str_blocks_malformed",
            env_set("qm9str", "env.data_dir=\"data\""),
            "data/blocks.json: malformed blocks file",
        )
        .setup(|d, _| write(d, "data/blocks.json", "{\"block_name\": 3}")),
        row(
            "qm9str_proxy_table_missing",
            env_set("qm9str", "env.data_dir=\"data\""),
            "missing data/proxy_values.f64le.gz or data/proxy_values.csv",
        )
        .setup(|d, _| data_dir_with_blocks(d, "qm9str")),
        row(
            "qm9str_proxy_table_not_gzip",
            env_set("qm9str", "env.data_dir=\"data\""),
            "data/proxy_values.f64le.gz: is not valid gzip data",
        )
        .setup(|d, _| {
            data_dir_with_blocks(d, "qm9str");
            write(d, "data/proxy_values.f64le.gz", "garbage");
        }),
        row(
            "qm9str_proxy_csv_wrong_row_count",
            env_set("qm9str", "env.data_dir=\"data\""),
            "data/proxy_values.csv: 1 rows, not K^L for K = 11 blocks",
        )
        .setup(|d, _| {
            data_dir_with_blocks(d, "qm9str");
            write(
                d,
                "data/proxy_values.csv",
                "sequence,proxy_value\n00000,1\n",
            );
        }),
        row(
            "qm9str_proxy_csv_infinite_value",
            env_set("qm9str", "env.data_dir=\"data\""),
            "data/proxy_values.csv: proxy value 1 is inf; expected finite numbers",
        )
        .setup(|d, _| {
            write(d, "data/blocks.json", TWO_BLOCKS);
            write(
                d,
                "data/proxy_values.csv",
                "sequence,proxy_value\n00,1\n01,inf\n10,2\n11,3\n",
            );
        }),
        row(
            "qm9str_proxy_csv_nan_value",
            env_set("qm9str", "env.data_dir=\"data\""),
            "data/proxy_values.csv: proxy value 2 is NaN; expected finite numbers",
        )
        .setup(|d, _| {
            write(d, "data/blocks.json", TWO_BLOCKS);
            write(
                d,
                "data/proxy_values.csv",
                "sequence,proxy_value\n00,1\n01,2\n10,nan\n11,3\n",
            );
        }),
        row(
            "qm9str_proxy_csv_out_of_order",
            env_set("qm9str", "env.data_dir=\"data\""),
            "line 3: sequence \"10\" is out of order",
        )
        .setup(|d, _| {
            write(d, "data/blocks.json", TWO_BLOCKS);
            write(
                d,
                "data/proxy_values.csv",
                "sequence,proxy_value\n00,1\n10,2\n01,2\n11,3\n",
            );
        }),
        row(
            "sehstr_trees_missing",
            env_set("sehstr", "env.data_dir=\"data\""),
            "missing data/gbr_proxy.json.gz or data/gbr_proxy.json",
        )
        .setup(|d, _| data_dir_with_blocks(d, "sehstr")),
        row(
            "sehstr_trees_malformed",
            env_set("sehstr", "env.data_dir=\"data\""),
            "data/gbr_proxy.json: malformed tree ensemble",
        )
        .setup(|d, _| {
            data_dir_with_blocks(d, "sehstr");
            write(d, "data/gbr_proxy.json", "{\"trees\": 1}");
        }),
        row(
            "sehstr_trees_not_gzip",
            env_set("sehstr", "env.data_dir=\"data\""),
            "data/gbr_proxy.json.gz: is not valid gzip data",
        )
        .setup(|d, _| {
            data_dir_with_blocks(d, "sehstr");
            write(d, "data/gbr_proxy.json.gz", "xx");
        }),
        row(
            "sehstr_tree_with_a_cycle",
            env_set("sehstr", "env.data_dir=\"data\""),
            "data/gbr_proxy.json: tree 0",
        )
        .setup(|d, _| {
            write(d, "data/blocks.json", TWO_BLOCKS);
            write(
                d,
                "data/gbr_proxy.json",
                r#"{"n_features": 4, "baseline": 0.0, "trees": [[
                    {"leaf": false, "value": 0.0, "feature": 0, "threshold": 0.5, "left": 0, "right": 1},
                    {"leaf": true, "value": 1.0}
                ]]}"#,
            );
        }),
        // --- Using a trained run: sample and eval ------------------------------------------------
        row(
            "sample_a_missing_run_directory",
            cmd(&["sample", "--run", "nothing", "--n", "5"]),
            "cannot use the run directory nothing: it does not exist or is not a directory",
        ),
        row(
            "eval_a_directory_that_is_not_a_run",
            cmd(&["eval", "--run", "."]),
            "cannot use the run directory .: cannot read its config.toml",
        ),
        row(
            "sample_a_half_written_run",
            cmd(&["sample", "--run", "run", "--n", "5"]),
            "training did not finish (no summary.json); load its latest checkpoint instead (--checkpoint)",
        )
        .on_run(|d, t| {
            run_copy(d, t);
            std::fs::remove_file(d.join("run/summary.json")).unwrap();
        }),
        row(
            "sample_a_corrupt_model_file",
            cmd(&["sample", "--run", "run", "--n", "5"]),
            "cannot use the run directory run: cannot read its trained parameters",
        )
        .on_run(|d, t| {
            run_copy(d, t);
            write(d, "run/model.safetensors", "garbage");
        }),
        row(
            "sample_a_run_of_a_plugin_not_loaded",
            cmd(&["sample", "--run", "run", "--n", "5"]),
            "it trained on an environment of plugin `softgfn-sets`, which is not loaded: pass --plugin PATH",
        )
        .on_run(|d, t| {
            run_copy(d, t);
            let p = d.join("run/config.toml");
            let text = std::fs::read_to_string(&p).unwrap();
            std::fs::write(p, text.replace("name = \"hypergrid\"", "name = \"softgfn-sets/sets\"")).unwrap();
        }),
        row(
            "sample_zero_objects",
            cmd(&["sample", "--run", "run", "--n", "0"]),
            "--n must be at least 1",
        )
        .on_run(run_copy),
        row(
            "sample_more_objects_than_the_largest_draw",
            cmd(&["sample", "--run", "run", "--n", "18446744073709551615"]),
            "--n 18446744073709551615 is larger than the largest draw, 1099511627776",
        )
        .on_run(run_copy),
        row(
            "sample_into_an_unwritable_file",
            cmd(&["sample", "--run", "run", "--n", "5", "--out", "/nonexistent/dir/s.csv"]),
            "cannot create the output file /nonexistent/dir/s.csv",
        )
        .on_run(run_copy),
        row(
            "sample_a_temperature_of_zero",
            cmd(&["sample", "--run", "run", "--n", "5", "--temperature", "0"]),
            "--temperature must be a finite number > 0, got 0",
        )
        .on_run(run_copy),
        row(
            "sample_without_backward_samples",
            cmd(&["sample", "--run", "run", "--n", "5", "--backward-samples", "0"]),
            "--backward-samples must be at least 1",
        )
        .on_run(run_copy),
        row(
            "eval_too_many_log_z_samples",
            cmd(&["eval", "--run", "run", "--log-z-samples", "99999999"]),
            "eval.log_z_samples",
        )
        .on_run(run_copy),
        row(
            "eval_from_a_missing_checkpoint",
            cmd(&["eval", "--run", "run", "--checkpoint"]),
            "no checkpoint in this run directory",
        )
        .on_run(|d, t| {
            run_copy(d, t);
            std::fs::remove_dir_all(d.join("run/checkpoint")).unwrap();
        }),
        // --- Checkpoints and resume -------------------------------------------------------------
        row(
            "resume_without_checkpoint",
            resume(&[]),
            "no checkpoint in this run directory; train with --checkpoint-every N",
        )
        .on_run(|d, t| {
            run_copy(d, t);
            std::fs::remove_dir_all(d.join("run/checkpoint")).unwrap();
        }),
        row(
            "resume_a_directory_that_is_not_a_run",
            strings(&["train", "--resume", "nothing", "--quiet"]),
            "cannot resume nothing: no readable config.toml (is it a run directory?)",
        ),
        row(
            "resume_truncated_checkpoint_file",
            resume(&[]),
            "run/checkpoint/trainer.bin: truncated or corrupt: 7 bytes",
        )
        .on_run(|d, t| {
            run_copy(d, t);
            write(d, "run/checkpoint/trainer.bin", "garbage");
        }),
        row(
            "resume_checkpoint_with_a_flipped_byte",
            resume(&[]),
            "run/checkpoint/algo.bin: corrupt: CRC-32",
        )
        .on_run(|d, t| {
            run_copy(d, t);
            let p = d.join("run/checkpoint/algo.bin");
            let mut bytes = std::fs::read(&p).unwrap();
            bytes[0] ^= 0x55;
            std::fs::write(p, bytes).unwrap();
        }),
        row(
            "resume_with_a_corrupt_tensorboard_event_file",
            resume(&["--iterations", "30", "--tensorboard"]),
            "corrupt TensorBoard event file run/tb/events.out.tfevents.0000000001.softgfn: length CRC mismatch at byte 0",
        )
        .on_run(|d, t| {
            run_copy(d, t);
            write(d, "run/tb/events.out.tfevents.0000000001.softgfn", "garbage, not a record");
        })
        .keep(&["run/tb/events.out.tfevents.0000000001.softgfn"]),
        row(
            "resume_malformed_manifest",
            resume(&[]),
            "malformed manifest",
        )
        .on_run(|d, t| {
            run_copy(d, t);
            std::fs::write(manifest_path(d), "{").unwrap();
        }),
        row(
            "resume_checkpoint_of_another_format_version",
            resume(&[]),
            "format version 99 but this softgfn reads version 1",
        )
        .on_run(|d, t| {
            run_copy(d, t);
            let text = std::fs::read_to_string(manifest_path(d)).unwrap();
            let mut m: serde_json::Value = serde_json::from_str(&text).unwrap();
            m["format_version"] = 99.into();
            std::fs::write(manifest_path(d), m.to_string()).unwrap();
        }),
        row(
            "resume_checkpoint_missing_a_file",
            resume(&[]),
            "run/checkpoint/algo.bin: cannot read",
        )
        .on_run(|d, t| {
            run_copy(d, t);
            std::fs::remove_file(d.join("run/checkpoint/algo.bin")).unwrap();
        }),
        row(
            "resume_after_editing_the_run_config",
            resume(&[]),
            "was written by a run with a different `seed`",
        )
        .on_run(|d, t| {
            run_copy(d, t);
            let p = d.join("run/config.toml");
            let text = std::fs::read_to_string(&p).unwrap();
            assert!(text.starts_with("seed = 1\n"), "{text}");
            std::fs::write(p, text.replacen("seed = 1\n", "seed = 7\n", 1)).unwrap();
        }),
        row(
            "resume_with_set",
            resume(&["--set", "seed=3"]),
            "the argument '--resume <RUN_DIR>' cannot be used with '--set <KEY=VALUE>'",
        )
        .on_run(run_copy),
        row(
            "resume_with_config",
            resume(&["--config", "run/config.toml"]),
            "the argument '--resume <RUN_DIR>' cannot be used with '--config <CONFIG>'",
        )
        .on_run(run_copy),
        row(
            "resume_with_out",
            resume(&["--out", "other"]),
            "cannot be used with '--out <OUT>'",
        )
        .on_run(run_copy),
        row(
            "resume_with_force",
            resume(&["--force"]),
            "cannot be used with '--force'",
        )
        .on_run(run_copy),
        row(
            "resume_with_seed",
            resume(&["--seed", "4"]),
            "cannot be used with '--seed <SEED>'",
        )
        .on_run(run_copy),
        row(
            "resume_with_zero_iterations",
            resume(&["--iterations", "0"]),
            "invalid value for `iterations`: 0",
        )
        .on_run(run_copy),
        row(
            "resume_with_fewer_iterations_than_done",
            resume(&["--iterations", "10"]),
            "--iterations",
        )
        .on_run(run_copy),
        row(
            "resume_with_checkpoint_every_zero",
            resume(&["--checkpoint-every", "0"]),
            "invalid value '0' for '--checkpoint-every",
        )
        .on_run(run_copy),
        row(
            "checkpoint_every_zero",
            train(&["--checkpoint-every", "0"]),
            "invalid value '0' for '--checkpoint-every",
        ),
        row(
            "checkpoint_every_zero_leaves_no_run_directory",
            train(&["--checkpoint-every", "0"]),
            "invalid value '0' for '--checkpoint-every",
        )
        .absent("out"),
        row(
            "checkpoint_every_zero_over_an_existing_run_with_force",
            train(&["--out", "run", "--force", "--checkpoint-every", "0"]),
            "invalid value '0' for '--checkpoint-every",
        )
        .on_run(run_copy),
        // --- Output directories -----------------------------------------------------------------
        row(
            "out_under_proc",
            train(&["--out", "/proc/forbidden"]),
            "cannot create the output directory /proc/forbidden",
        ),
        row(
            "out_under_a_regular_file",
            train(&["--out", "file/run"]),
            "cannot create the output directory file/run",
        )
        .setup(|d, _| write(d, "file", "x"))
        .keep(&["file"]),
        row(
            "out_is_a_regular_file",
            train(&["--out", "file"]),
            "cannot create the output directory file",
        )
        .setup(|d, _| write(d, "file", "x"))
        .keep(&["file"]),
        row(
            "out_error_names_the_os_error_once",
            train(&["--out", "file/run"]),
            "Not a directory (os error 20)",
        )
        .setup(|d, _| write(d, "file", "x"))
        .once(),
        row(
            "out_holds_a_run_and_no_force",
            train(&["--out", "run"]),
            "the output directory run already holds a run (metrics.jsonl exists); choose another --out or pass --force",
        )
        .on_run(run_copy),
        row(
            "config_of_a_run_into_the_same_run_without_force",
            strings(&[
                "train",
                "--config",
                "run/config.toml",
                "--quiet",
                "--out",
                "run",
            ]),
            "already holds a run",
        )
        .on_run(run_copy),
        row(
            "out_without_a_value",
            strings(&["train", "--out"]),
            "a value is required for '--out <OUT>'",
        ),
        // --- Benchmark harness ------------------------------------------------------------------
        row(
            "bench_suite_without_budget",
            cmd(&["bench", "run", "suite.toml", "--out", "res", "--quiet"]),
            "no budget: set `iterations`, `trajectories` or `seconds`",
        )
        .setup(|d, _| write(d, "suite.toml", &SUITE_OK.replace("iterations = 5\n", "")))
        .absent("res"),
        row(
            "bench_duplicate_algorithm_labels",
            cmd(&["bench", "run", "suite.toml", "--out", "res", "--quiet"]),
            "two algorithms share the label `tb`",
        )
        .setup(|d, _| write(d, "suite.toml", &format!("{SUITE_OK}[[algo]]\nname = \"tb\"\n")))
        .absent("res"),
        row(
            "bench_duplicate_environment_labels",
            cmd(&["bench", "run", "suite.toml", "--out", "res", "--quiet"]),
            "two environments share the label `g`",
        )
        .setup(|d, _| {
            let text = format!(
                "{}[[env]]\nname = \"hypergrid\"\nlabel = \"g\"\n[[env]]\nname = \"hypergrid\"\nlabel = \"g\"\n",
                SUITE_OK.replace("[[env]]\nname = \"hypergrid\"\nset = { dim = 2, side = 4 }\n", "")
            );
            write(d, "suite.toml", &text);
        }),
        row(
            "bench_empty_seeds",
            cmd(&["bench", "run", "suite.toml", "--out", "res", "--quiet"]),
            "`seeds` is empty",
        )
        .setup(|d, _| write(d, "suite.toml", &SUITE_OK.replace("[1]", "[]"))),
        row(
            "bench_unknown_suite_key",
            cmd(&["bench", "run", "suite.toml", "--out", "res", "--quiet"]),
            "unknown field `bogus`",
        )
        .setup(|d, _| write(d, "suite.toml", &format!("bogus = 1\n{SUITE_OK}"))),
        row(
            "bench_malformed_target",
            cmd(&["bench", "run", "suite.toml", "--out", "res", "--quiet"]),
            "target `exact_l1 < 3`: expected `METRIC <= VALUE` or `METRIC >= VALUE`",
        )
        .setup(|d, _| {
            write(
                d,
                "suite.toml",
                &format!("targets = [\"exact_l1 < 3\"]\n{SUITE_OK}"),
            )
        }),
        row(
            "bench_label_with_a_path",
            cmd(&["bench", "run", "suite.toml", "--out", "res", "--quiet"]),
            "env label `../x`: use letters, digits",
        )
        .setup(|d, _| {
            write(
                d,
                "suite.toml",
                &SUITE_OK.replace("name = \"hypergrid\"\n", "name = \"hypergrid\"\nlabel = \"../x\"\n"),
            )
        }),
        row(
            "bench_shard_zero",
            cmd(&["bench", "run", "suite.toml", "--out", "res", "--quiet", "--shard", "0/3"]),
            "shard `0/3`: expected I/N with 1 <= I <= N",
        )
        .setup(|d, _| write(d, "suite.toml", SUITE_OK))
        .absent("res"),
        row(
            "bench_shard_beyond_count",
            cmd(&["bench", "run", "suite.toml", "--out", "res", "--quiet", "--shard", "4/3"]),
            "shard `4/3`",
        )
        .setup(|d, _| write(d, "suite.toml", SUITE_OK)),
        row(
            "bench_shard_not_a_fraction",
            cmd(&["bench", "run", "suite.toml", "--out", "res", "--quiet", "--shard", "x"]),
            "shard `x`",
        )
        .setup(|d, _| write(d, "suite.toml", SUITE_OK)),
        row(
            "bench_missing_suite_file",
            cmd(&["bench", "run", "missing.toml", "--out", "res", "--quiet"]),
            "cannot read the suite file missing.toml",
        ),
        row(
            "bench_resume_with_force",
            cmd(&[
                "bench", "run", "suite.toml", "--out", "res", "--quiet", "--resume", "--force",
            ]),
            "the argument '--resume' cannot be used with '--force'",
        )
        .setup(|d, _| write(d, "suite.toml", SUITE_OK)),
        row(
            "bench_force_on_a_directory_that_is_not_results",
            cmd(&["bench", "run", "suite.toml", "--out", "run", "--quiet", "--force"]),
            "--force: run exists but is not a results directory (no suite.toml); refusing to delete it",
        )
        .on_run(|d, t| {
            run_copy(d, t);
            write(d, "suite.toml", SUITE_OK);
        }),
        row(
            "bench_results_directory_reused_without_resume",
            cmd(&["bench", "run", "suite.toml", "--out", "res", "--quiet"]),
            "already holds a suite; pass --resume to continue it",
        )
        .setup(|d, _| {
            write(d, "suite.toml", SUITE_OK);
            write(d, "res/suite.toml", SUITE_OK);
            write(d, "res/results.jsonl", "");
        })
        .keep(&["res/suite.toml", "res/results.jsonl"]),
        row(
            "bench_resume_with_another_suite",
            cmd(&["bench", "run", "suite.toml", "--out", "res", "--quiet", "--resume"]),
            "holds a different suite",
        )
        .setup(|d, _| {
            write(d, "suite.toml", &SUITE_OK.replace("iterations = 5", "iterations = 6"));
            write(d, "res/suite.toml", SUITE_OK);
            write(d, "res/results.jsonl", "");
        })
        .keep(&["res/suite.toml", "res/results.jsonl"]),
        row(
            "bench_report_on_an_empty_directory",
            cmd(&["bench", "report", "empty"]),
            "empty/suite.toml",
        )
        .setup(|d, _| std::fs::create_dir_all(d.join("empty")).unwrap()),
        row(
            "bench_report_names_the_os_error_once",
            cmd(&["bench", "report", "empty"]),
            "No such file or directory (os error 2)",
        )
        .setup(|d, _| std::fs::create_dir_all(d.join("empty")).unwrap())
        .once(),
        row(
            "bench_merge_of_directories_of_different_suites",
            cmd(&["bench", "merge", "a", "b", "--out", "merged"]),
            "results directory b: holds a different suite than a",
        )
        .setup(|d, _| {
            write(d, "a/suite.toml", SUITE_OK);
            write(d, "b/suite.toml", &SUITE_OK.replace("iterations = 5", "iterations = 6"));
        })
        .keep(&["a/suite.toml", "b/suite.toml"]),
        // --- Plugins ----------------------------------------------------------------------------
        row(
            "plugin_path_that_does_not_exist",
            cmd(&["--plugin", "missing.so", "envs", "list"]),
            "cannot load plugin missing.so",
        ),
        row(
            "plugin_that_is_a_text_file",
            cmd(&["--plugin", "plugin.so", "envs", "list"]),
            "cannot load plugin ",
        )
        .setup(|d, _| write(d, "plugin.so", &"this is not a shared library\n".repeat(20))),
        row(
            "plugins_check_of_a_text_file",
            cmd(&["plugins", "check", "plugin.txt"]),
            "cannot load plugin ",
        )
        .setup(|d, _| write(d, "plugin.txt", "not a library")),
        row(
            "plugin_dir_that_does_not_exist",
            cmd(&["--plugin-dir", "missing", "envs", "list"]),
            "cannot read the plugin directory missing",
        ),
        row(
            "plugin_path_variable_naming_nothing",
            cmd(&["envs", "list"]),
            "SOFTGFN_PLUGIN_PATH names /nonexistent/plugin.so, which does not exist",
        )
        .env("SOFTGFN_PLUGIN_PATH", "/nonexistent/plugin.so"),
        row(
            "plugin_of_another_abi_version",
            cmd(&[
                "--plugin",
                "{lib:softgfn-plugin-fixture-wrong-abi}",
                "envs",
                "list",
            ]),
            "uses plugin ABI version 3, but this softgfn uses plugin ABI version 2 (and loads versions 1 to 2)",
        ),
        row(
            "plugin_with_a_malformed_manifest",
            cmd(&[
                "--plugin",
                "{lib:softgfn-plugin-fixture-bad-manifest}",
                "envs",
                "list",
            ]),
            "has a malformed manifest",
        ),
        row(
            "library_that_is_not_a_plugin",
            cmd(&[
                "--plugin",
                "{lib:softgfn-plugin-fixture-not-a-plugin}",
                "envs",
                "list",
            ]),
            "is not a softgfn plugin: it does not export `softgfn_plugin_abi_version`",
        ),
        row(
            "plugin_built_against_an_old_softgfn",
            cmd(&[
                "--plugin",
                "{lib:softgfn-plugin-fixture-old-softgfn}",
                "envs",
                "list",
            ]),
            "major.minor must match",
        ),
        row(
            "plugin_loaded_twice_from_two_copies",
            cmd(&[
                "--plugin",
                "{lib:softgfn-hypergrid}",
                "--plugin",
                "copy.so",
                "envs",
                "list",
            ]),
            "is already loaded from",
        )
        .setup(|d, _| {
            std::fs::copy(lib_path("softgfn-hypergrid"), d.join("copy.so")).unwrap();
        }),
        row(
            "plugin_environment_shadowing_a_built_in",
            strings(&[
                "--plugin",
                "{lib:softgfn-hypergrid}",
                "train",
                "--env",
                "hypergrid",
                "--iterations",
                "1",
                "--quiet",
                "--out",
                "out",
            ]),
            "environment name `hypergrid` is registered twice",
        )
        .absent("out"),
        // --- Invalid command lines --------------------------------------------------------------
        row(
            "no_subcommand",
            cmd(&[]),
            "Usage: softgfn",
        ),
        row(
            "unknown_train_flag",
            train(&["--max-seconds", "1"]),
            "unexpected argument '--max-seconds' found",
        ),
        row(
            "iterations_not_a_number",
            train(&["--iterations", "many"]),
            "invalid value 'many' for '--iterations <ITERATIONS>'",
        ),
        row(
            "env_flag_given_twice",
            train(&["--env", "qm9str"]),
            "the argument '--env <ENV>' cannot be used multiple times",
        ),
    ]
}

/// The library file of a plugin crate built by `scripts/build-plugins.sh`.
fn lib_path(crate_name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/plugins/release")
        .join(format!(
            "{}{}{}",
            std::env::consts::DLL_PREFIX,
            crate_name.replace('-', "_"),
            std::env::consts::DLL_SUFFIX
        ))
}

/// The arguments with `{lib:CRATE}` replaced, or the first missing library.
fn resolve_args(args: &[String]) -> Result<Vec<String>, PathBuf> {
    args.iter()
        .map(
            |a| match a.strip_prefix("{lib:").and_then(|r| r.strip_suffix('}')) {
                Some(krate) => {
                    let p = lib_path(krate);
                    if p.exists() {
                        Ok(p.display().to_string())
                    } else {
                        Err(p)
                    }
                }
                None => Ok(a.clone()),
            },
        )
        .collect()
}

fn softgfn(dir: &Path, args: &[String], env: &[(&str, &str)], mem_limited: bool) -> Output {
    let exe = env!("CARGO_BIN_EXE_softgfn");
    let mut c = if mem_limited && cfg!(unix) {
        // A 4 GB address-space limit turns an absurd allocation into a quick failure instead of
        // a machine running out of memory.
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg("ulimit -v 4000000 && exec \"$0\" \"$@\"")
            .arg(exe)
            .args(args);
        c
    } else {
        let mut c = Command::new(exe);
        c.args(args);
        c
    };
    c.current_dir(dir).env_remove("SOFTGFN_PLUGIN_PATH");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("the softgfn binary runs")
}

/// The contents of `files` (None where absent).
fn snapshot(dir: &Path, files: &[&str]) -> Vec<Option<Vec<u8>>> {
    files
        .iter()
        .map(|f| std::fs::read(dir.join(f)).ok())
        .collect()
}

/// Runs one row; `Ok(None)` when it passed, `Ok(Some(note))` when it was skipped, `Err` with
/// what went wrong otherwise.
fn check_row(r: &Row, root: &Path, template: &Path) -> Result<Option<String>, String> {
    let args = match resolve_args(&r.args) {
        Ok(a) => a,
        Err(missing) => {
            return Ok(Some(format!(
                "skipped {}: {} is missing (build it with scripts/build-plugins.sh)",
                r.name,
                missing.display()
            )));
        }
    };
    let dir = root.join(r.name);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    if let Some(setup) = r.setup {
        setup(&dir, template);
    }
    let before = snapshot(&dir, &r.keep);
    // (A setup may remove some of the files it keeps, e.g. the checkpoint; they must then stay
    // absent. Keeping only absent files is a mistake in the row.)
    if !r.keep.is_empty() && before.iter().all(Option::is_none) {
        return Err(format!("{}: the setup wrote none of {:?}", r.name, r.keep));
    }
    let o = softgfn(&dir, &args, &r.env, r.mem_limited);
    let err = String::from_utf8_lossy(&o.stderr);
    let mut problems = Vec::new();
    match o.status.code() {
        Some(0) => problems.push("exited with code 0 (the input was accepted)".to_string()),
        Some(_) => {}
        None => problems.push(format!("was killed by a signal ({:?})", o.status)),
    }
    if err.contains("panicked") {
        problems.push("panicked".into());
    }
    let count = err.matches(r.expect).count();
    if count == 0 {
        problems.push(format!("stderr lacks {:?}", r.expect));
    } else if r.once && count > 1 {
        problems.push(format!("stderr repeats {:?} {count} times", r.expect));
    }
    let after = snapshot(&dir, &r.keep);
    for ((f, b), a) in r.keep.iter().zip(&before).zip(&after) {
        if b != a {
            problems.push(format!(
                "{f} was {}",
                if a.is_none() { "deleted" } else { "changed" }
            ));
        }
    }
    for p in &r.absent {
        if dir.join(p).exists() {
            problems.push(format!("left {p} behind"));
        }
    }
    if problems.is_empty() {
        Ok(None)
    } else {
        Err(format!(
            "{}: {}\n    args: {:?}\n    exit: {:?}\n    stderr: {}",
            r.name,
            problems.join("; "),
            r.args,
            o.status.code(),
            err.trim_end()
                .lines()
                .take(6)
                .collect::<Vec<_>>()
                .join("\n            ")
        ))
    }
}

/// Trains the template run every run-targeting row copies: 20 iterations on a 2 x 4 hypergrid,
/// evaluated every 5, checkpointed at 10 and 20.
fn template_run(root: &Path) -> PathBuf {
    let t = root.join("template");
    let o = softgfn(
        root,
        &strings(&[
            "train",
            "--env",
            "hypergrid",
            "--set",
            "env.dim=2",
            "--set",
            "env.side=4",
            "--set",
            "eval.interval=5",
            "--iterations",
            "20",
            "--checkpoint-every",
            "10",
            "--seed",
            "1",
            "--quiet",
            "--out",
            "template",
        ]),
        &[],
        false,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in RUN_FILES {
        let f = f.strip_prefix("run/").unwrap();
        assert!(t.join(f).exists(), "the template run lacks {f}");
    }
    t
}

/// Runs `rows` on a few threads; returns the failures and the notes of skipped rows.
fn run_rows(rows: &[&Row]) -> (Vec<String>, Vec<String>) {
    let tmp = tempfile::tempdir().unwrap();
    let template = template_run(tmp.path());
    let root = tmp.path().join("rows");
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let notes = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 8);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(r) = rows.get(i) else { break };
                    match check_row(r, &root, &template) {
                        Ok(None) => {}
                        Ok(Some(note)) => notes.lock().unwrap().push(note),
                        Err(e) => failures.lock().unwrap().push(e),
                    }
                }
            });
        }
    });
    let mut f = failures.into_inner().unwrap();
    f.sort();
    let mut n = notes.into_inner().unwrap();
    n.sort();
    (f, n)
}

#[test]
fn catalogue() {
    let all = table();
    let rows: Vec<&Row> = all.iter().filter(|r| r.bug.is_none()).collect();
    assert!(rows.len() >= 30, "only {} live rows", rows.len());
    let (failures, notes) = run_rows(&rows);
    for n in &notes {
        eprintln!("{n}");
    }
    assert!(
        failures.is_empty(),
        "{} of {} bad inputs are not handled as catalogued:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

#[test]
fn catalogue_rows_are_well_formed() {
    let all = table();
    let mut names: Vec<&str> = all.iter().map(|r| r.name).collect();
    names.sort_unstable();
    let n = names.len();
    names.dedup();
    assert_eq!(
        names.len(),
        n,
        "row names must be unique (they name directories)"
    );
    for r in &all {
        assert!(
            r.name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{}",
            r.name
        );
        assert!(!r.expect.is_empty(), "{}: empty fragment", r.name);
    }
}

#[test]
#[ignore = "documents product bugs that are not fixed yet (rows with `bug`); run with --ignored"]
fn catalogue_rows_documenting_product_bugs() {
    let all = table();
    let rows: Vec<&Row> = all.iter().filter(|r| r.bug.is_some()).collect();
    let (failures, notes) = run_rows(&rows);
    for n in &notes {
        eprintln!("{n}");
    }
    let still: Vec<String> = failures
        .iter()
        .map(|f| {
            let name = f.split(':').next().unwrap_or_default();
            let bug = rows
                .iter()
                .find(|r| r.name == name)
                .and_then(|r| r.bug)
                .unwrap_or_default();
            format!("{f}\n    bug: {bug}")
        })
        .collect();
    assert!(
        still.is_empty(),
        "{} of {} documented bugs still reproduce:\n{}",
        still.len(),
        rows.len(),
        still.join("\n")
    );
}

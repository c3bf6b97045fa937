//! Run configs: defaults, overrides, round trips and the errors for bad keys and values.

use softgfn_train::{TrainError, apply_override, resolve};

use softgfn_gflownet as _;
use softgfn_hypergrid as _;

fn table(pairs: &[&str]) -> toml::Table {
    let mut t = toml::Table::new();
    for kv in pairs {
        apply_override(&mut t, kv).unwrap();
    }
    t
}

fn err(pairs: &[&str]) -> String {
    match resolve(table(pairs)) {
        Ok(_) => panic!("{pairs:?} should be rejected"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_algorithm_default_round_trips_through_toml() {
    for algo in ["tb", "db", "subtb"] {
        let (c, _) = resolve(table(&[&format!("algo.name={algo}")])).unwrap();
        let text = c.to_toml().unwrap();
        let (c2, _) = resolve(text.parse::<toml::Table>().unwrap()).unwrap();
        assert_eq!(text, c2.to_toml().unwrap(), "{algo}");
        assert!(text.contains(&format!("name = \"{algo}\"")));
    }
}

#[test]
fn overrides_reach_env_algo_and_eval() {
    let (c, env) = resolve(table(&[
        "env.dim=2",
        "env.side=8",
        "env.reward=hard",
        "algo.name=subtb",
        "algo.subtb_lambda=1.9",
        "eval.interval=7",
        "iterations=11",
    ]))
    .unwrap();
    assert_eq!(env.spec().state_width, 2);
    assert_eq!(
        c.env.params.get("reward").and_then(|v| v.as_str()),
        Some("hard")
    );
    assert_eq!(c.eval.interval, 7);
    assert_eq!(c.iterations, 11);
    assert!(c.to_toml().unwrap().contains("subtb_lambda = 1.9"));
}

#[test]
fn misspelled_keys_list_the_valid_ones() {
    let e = err(&["algo.learning_rat=0.1"]);
    assert!(e.contains("unknown field `learning_rat`"), "{e}");
    assert!(e.contains("learning_rate"), "{e}");
    let e = err(&["env.dims=3"]);
    assert!(
        e.contains("unknown field `dims`") && e.contains("side"),
        "{e}"
    );
    let e = err(&["eval.intervall=3"]);
    assert!(e.contains("intervall") && e.contains("interval"), "{e}");
    let e = err(&["iteration=3"]);
    assert!(e.contains("unknown top-level key `iteration`"), "{e}");
    // A key of another algorithm is unknown to this one.
    let e = err(&["algo.name=tb", "algo.subtb_lambda=0.5"]);
    assert!(e.contains("subtb_lambda"), "{e}");
}

#[test]
fn unknown_names_list_what_is_registered() {
    let e = err(&["algo.name=tbb"]);
    assert!(
        e.contains("unknown algorithm `tbb`") && e.contains("db, fm, subtb, tb"),
        "{e}"
    );
    let e = err(&["env.name=grid"]);
    assert!(
        e.contains("unknown environment `grid`") && e.contains("hypergrid"),
        "{e}"
    );
}

#[test]
fn out_of_range_values_name_field_value_and_range() {
    for (kv, field) in [
        ("algo.learning_rate=-1", "algo.learning_rate"),
        ("algo.epsilon=1.5", "algo.epsilon"),
        (
            "algo.trajectories_per_iteration=0",
            "algo.trajectories_per_iteration",
        ),
        ("env.side=1", "side"),
        ("iterations=0", "iterations"),
    ] {
        let e = err(&[kv]);
        assert!(e.contains(field), "{kv}: {e}");
    }
    let e = err(&["algo.name=subtb", "algo.subtb_lambda=0"]);
    assert!(e.contains("algo.subtb_lambda") && e.contains("> 0"), "{e}");
    // Wrong types are parse errors naming the key.
    let e = err(&["algo.hidden_dim=\"wide\""]);
    assert!(
        e.contains("hidden_dim") || e.contains("invalid type"),
        "{e}"
    );
    assert!(matches!(
        resolve(table(&["algo.learning_rate=-1"])),
        Err(TrainError::InvalidValue { .. })
    ));
}

//! Property tests of run-config parsing (no registered algorithm is needed; the round trip of
//! complete configs through `resolve` lives in `crates/softgfn-cli/tests/config_properties.rs`,
//! where the built-in environments and algorithms are linked):
//! - `apply_override` never panics, whatever the assignment and the table it lands in;
//! - a well-formed `key=value` puts the value at the dotted key, a scalar written as TOML comes
//!   back as the same value, text that is not TOML comes back as a string, and malformed keys
//!   (`=` missing, empty segments, a key below a scalar) are errors naming the override;
//! - `parse_toml` never panics and reads back what TOML serialization wrote;
//! - `resolve` never panics on arbitrary documents, with a run-time registered environment.

use std::sync::Arc;

use proptest::prelude::*;
use softgfn_core::registry::{RuntimeEnvRegistration, register_runtime_envs};
use softgfn_core::testing::SetEnv;
use softgfn_train::config::parse_toml;
use softgfn_train::{EvalConfig, apply_override, resolve};

/// Keys that mean something to a run config, and some that do not.
fn key_part() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "env",
            "algo",
            "eval",
            "seed",
            "iterations",
            "max_seconds",
            "device",
            "name",
            "dim",
            "side",
            "reward",
            "learning_rate",
            "interval",
            "empirical_window",
            "exact",
        ])
        .prop_map(str::to_string),
        "[a-z_]{1,6}",
    ]
}

fn dotted_key() -> impl Strategy<Value = String> {
    prop::collection::vec(key_part(), 1..=3).prop_map(|p| p.join("."))
}

/// Scalars, NaN and infinities included.
fn scalar() -> impl Strategy<Value = toml::Value> {
    prop_oneof![
        any::<i64>().prop_map(toml::Value::Integer),
        any::<f64>().prop_map(toml::Value::Float),
        prop_oneof![
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(-0.0)
        ]
        .prop_map(toml::Value::Float),
        any::<bool>().prop_map(toml::Value::Boolean),
        ".{0,12}".prop_map(toml::Value::String),
    ]
}

/// Nested values: arrays and tables of scalars, a few levels deep.
fn value() -> impl Strategy<Value = toml::Value> {
    scalar().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(toml::Value::Array),
            prop::collection::btree_map(key_part(), inner, 0..4)
                .prop_map(|m| toml::Value::Table(m.into_iter().collect())),
        ]
    })
}

fn table() -> impl Strategy<Value = toml::Table> {
    prop::collection::btree_map(key_part(), value(), 0..6).prop_map(|m| m.into_iter().collect())
}

/// The value at a dotted key.
fn lookup<'a>(t: &'a toml::Table, key: &str) -> Option<&'a toml::Value> {
    let mut parts = key.split('.');
    let mut cur = t.get(parts.next()?)?;
    for p in parts {
        cur = cur.as_table()?.get(p)?;
    }
    Some(cur)
}

/// Equality with NaN equal to itself.
fn same(a: &toml::Value, b: &toml::Value) -> bool {
    match (a, b) {
        (toml::Value::Float(x), toml::Value::Float(y)) => {
            (x.is_nan() && y.is_nan()) || x.to_bits() == y.to_bits() || x == y
        }
        (toml::Value::Array(x), toml::Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (toml::Value::Table(x), toml::Value::Table(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// Registers a small set environment at run time once (`props/set`), so that `resolve` gets
/// past the environment section.
fn register_set_env() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        register_runtime_envs(vec![RuntimeEnvRegistration {
            plugin: "props".into(),
            name: "set".into(),
            summary: "sets of up to 3 elements".into(),
            source: "config_properties test".into(),
            default_params: serde_json::json!({}),
            build: Arc::new(|_params| Ok(Box::new(SetEnv::new(vec![0.1, 0.2, 0.3])))),
        }])
        .unwrap();
    });
}

proptest! {
    #![proptest_config(ProptestConfig {
        // No regression files next to the sources: failures print their minimal input.
        failure_persistence: None,
        ..ProptestConfig::with_cases(256)
    })]

    #[test]
    fn apply_override_never_panics(mut t in table(), assignment in ".{0,40}") {
        let _ = apply_override(&mut t, &assignment);
    }

    #[test]
    fn apply_override_never_panics_on_dotted_keys(
        mut t in table(),
        key in "[a-z_. ]{0,16}",
        raw in ".{0,24}",
    ) {
        let _ = apply_override(&mut t, &format!("{key}={raw}"));
    }

    #[test]
    fn overrides_set_the_value_at_the_dotted_key(key in dotted_key(), v in scalar()) {
        let mut t = toml::Table::new();
        apply_override(&mut t, &format!("{key}={v}")).unwrap();
        let got = lookup(&t, &key).unwrap();
        prop_assert!(same(got, &v), "{} = {} came back as {}", key, v, got);
    }

    #[test]
    fn overrides_of_nested_values_round_trip(key in dotted_key(), v in value()) {
        let mut t = toml::Table::new();
        apply_override(&mut t, &format!("{key}={v}")).unwrap();
        let got = lookup(&t, &key).unwrap();
        prop_assert!(same(got, &v), "{} = {} came back as {}", key, v, got);
    }

    #[test]
    fn text_that_is_not_toml_is_a_string(key in dotted_key(), word in "[a-z][a-z_]{0,10}") {
        prop_assume!(!matches!(word.as_str(), "true" | "false" | "nan" | "inf"));
        let mut t = toml::Table::new();
        apply_override(&mut t, &format!("{key}={word}")).unwrap();
        prop_assert_eq!(lookup(&t, &key), Some(&toml::Value::String(word.clone())));
    }

    #[test]
    fn the_last_override_of_a_key_wins(key in dotted_key(), a in scalar(), b in scalar()) {
        let mut t = toml::Table::new();
        apply_override(&mut t, &format!("{key}={a}")).unwrap();
        apply_override(&mut t, &format!("{key}={b}")).unwrap();
        prop_assert!(same(lookup(&t, &key).unwrap(), &b));
    }

    #[test]
    fn assignments_without_equals_are_errors(text in "[^=]{0,30}") {
        let mut t = toml::Table::new();
        let e = apply_override(&mut t, &text).unwrap_err().to_string();
        prop_assert!(e.contains("is not of the form key=value"), "{}", e);
        prop_assert!(t.is_empty());
    }

    #[test]
    fn keys_with_empty_segments_are_errors(
        parts in prop::collection::vec(prop_oneof![Just(String::new()), key_part()], 1..=4),
        v in scalar(),
    ) {
        prop_assume!(parts.iter().any(String::is_empty));
        let mut t = toml::Table::new();
        let e = apply_override(&mut t, &format!("{}={v}", parts.join("."))).unwrap_err().to_string();
        prop_assert!(e.contains("has an empty key part"), "{}", e);
    }

    #[test]
    fn a_key_below_a_scalar_is_an_error(a in key_part(), b in key_part(), v in scalar(), w in scalar()) {
        let mut t = toml::Table::new();
        apply_override(&mut t, &format!("{a}={v}")).unwrap();
        let e = apply_override(&mut t, &format!("{a}.{b}={w}")).unwrap_err().to_string();
        prop_assert!(e.contains("not a section") && e.contains(&a), "{}", e);
        prop_assert!(same(t.get(&a).unwrap(), &v), "the scalar is kept");
    }

    #[test]
    fn parse_toml_never_panics(text in ".{0,80}") {
        let _ = parse_toml(&text, "props.toml");
    }

    #[test]
    fn parse_toml_reads_back_serialized_tables(t in table()) {
        let text = toml::to_string(&t).unwrap();
        let back = parse_toml(&text, "props.toml").unwrap();
        prop_assert!(
            same(&toml::Value::Table(back.clone()), &toml::Value::Table(t.clone())),
            "{}\nread back as {:?}",
            text,
            back
        );
    }

    #[test]
    fn parse_errors_name_the_origin(text in "[\\[\\]=\"a-z ]{1,20}") {
        if let Err(e) = parse_toml(&text, "origin-file.toml") {
            prop_assert!(e.to_string().contains("origin-file.toml"), "{}", e);
        }
    }

    #[test]
    fn resolve_never_panics(t in table(), env_name in prop_oneof![Just("props/set"), Just("nope")]) {
        register_set_env();
        let mut t = t;
        let _ = apply_override(&mut t, &format!("env.name=\"{env_name}\""));
        let _ = resolve(t);
    }

    #[test]
    fn eval_sections_round_trip(
        interval in 1u64..=u64::MAX / 2,
        empirical_window in 1usize..=1 << 40,
        exact in any::<bool>(),
        max_exact_states in 1u64..=i64::MAX as u64,
        log_z_samples in 0usize..=1 << 20,
    ) {
        let e = EvalConfig { interval, empirical_window, exact, max_exact_states, log_z_samples };
        let text = toml::to_string(&e).unwrap();
        let back: EvalConfig = toml::from_str(&text).unwrap();
        prop_assert_eq!(back, e);
    }
}

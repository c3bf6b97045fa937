//! Property tests of complete run configs, with the built-in environments and algorithms linked
//! (as in the `softgfn` binary):
//! - any `seed` / `iterations` (as `softgfn train --seed/--iterations` writes them) survive
//!   `resolve -> to_toml -> resolve`, and the resolved TOML is a fixed point;
//! - a float override of any float key of any algorithm either resolves, and then its value
//!   comes back bit for bit from the written config, or fails with an error naming the key;
//! - non-negative integer overrides of integer keys behave the same way;
//! - hypergrid shapes round-trip through the resolved `[env]` section.
//!
//! Two ignored tests document product bugs (run them with `--ignored`): seeds above `i64::MAX`
//! are rejected although `--seed` takes any u64 and the docs promise "any u64", and negative
//! integers for unsigned algorithm keys fail with a serde message that does not name the key.

use proptest::prelude::*;
use softgfn_train::config::parse_toml;
use softgfn_train::{RunConfig, apply_override, find_algorithm, registered_algorithms, resolve};

// The built-ins register themselves when linked, as in the binary.
use softgfn_gflownet as _;
use softgfn_hypergrid as _;
use softgfn_molstr as _;
use softgfn_softrl as _;

fn algorithm_names() -> Vec<String> {
    registered_algorithms()
        .unwrap()
        .into_iter()
        .map(|r| r.name.to_string())
        .collect()
}

/// The algorithm's default config as a table (its keys and their types).
fn algo_defaults(name: &str) -> toml::Table {
    let reg = find_algorithm(name).unwrap();
    toml::Table::try_from((reg.default_config)()).unwrap()
}

/// A table as `softgfn train` builds it from its flags.
fn flags(env: &str, algo: &str, seed: u64, iterations: u64, sets: &[String]) -> toml::Table {
    let mut t = toml::Table::new();
    apply_override(&mut t, &format!("env.name=\"{env}\"")).unwrap();
    apply_override(&mut t, &format!("algo.name=\"{algo}\"")).unwrap();
    apply_override(&mut t, &format!("iterations={iterations}")).unwrap();
    apply_override(&mut t, &format!("seed={seed}")).unwrap();
    for s in sets {
        apply_override(&mut t, s).unwrap();
    }
    t
}

/// `resolve -> to_toml -> resolve -> to_toml`: the second text equals the first. Returns the
/// first config.
fn round_trip(t: toml::Table) -> Result<RunConfig, TestCaseError> {
    let (config, _) = resolve(t).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let text = config
        .to_toml()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let again =
        parse_toml(&text, "resolved.toml").map_err(|e| TestCaseError::fail(e.to_string()))?;
    let (config2, _) = resolve(again).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
    let text2 = config2.to_toml().unwrap();
    prop_assert_eq!(&text2, &text, "the resolved config is not a fixed point");
    prop_assert_eq!(config2.seed, config.seed);
    prop_assert_eq!(config2.iterations, config.iterations);
    Ok(config)
}

fn small_env() -> impl Strategy<Value = (String, Vec<String>)> {
    prop_oneof![
        4 => (1usize..=4, 2usize..=8, prop::sample::select(vec!["standard", "hard"])).prop_map(
            |(d, s, r)| {
                (
                    "hypergrid".to_string(),
                    vec![
                        format!("env.dim={d}"),
                        format!("env.side={s}"),
                        format!("env.reward=\"{r}\""),
                    ],
                )
            }
        ),
        1 => Just(("qm9str".to_string(), vec![])),
        1 => Just(("sehstr".to_string(), vec!["env.reward_exponent=3".to_string()])),
    ]
}

/// A float of any magnitude and sign, with the special values.
fn any_float() -> impl Strategy<Value = f64> {
    prop_oneof![
        3 => any::<f64>(),
        3 => -2.0f64..2.0,
        1 => prop::sample::select(vec![0.0, -0.0, 1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY]),
    ]
}

fn toml_float(x: f64) -> String {
    toml::Value::Float(x).to_string()
}

/// `(algorithm, key)` for every key of the given TOML type in every algorithm's defaults.
fn keys_of_type(type_str: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for a in algorithm_names() {
        for (k, v) in algo_defaults(&a) {
            if v.type_str() == type_str && k != "name" {
                out.push((a.clone(), k));
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig {
        // No regression files next to the sources: failures print their minimal input.
        failure_persistence: None,
        ..ProptestConfig::with_cases(64)
    })]

    #[test]
    fn seed_and_iterations_round_trip(
        algo in prop::sample::select(algorithm_names()),
        (env, sets) in small_env(),
        seed in 0u64..=i64::MAX as u64,
        iterations in 1u64..=i64::MAX as u64,
    ) {
        let config = round_trip(flags(&env, &algo, seed, iterations, &sets))?;
        prop_assert_eq!(config.seed, seed);
        prop_assert_eq!(config.iterations, iterations);
        prop_assert_eq!(config.algo.typetag_name(), algo.as_str());
        prop_assert_eq!(config.env.name, env);
    }

    #[test]
    fn float_overrides_round_trip_or_name_their_key(
        (algo, key) in prop::sample::select(keys_of_type("float")),
        x in any_float(),
    ) {
        let set = format!("algo.{key}={}", toml_float(x));
        match resolve(flags("hypergrid", &algo, 1, 10, &["env.dim=2".into(), "env.side=4".into(), set.clone()])) {
            Ok(_) => {
                let config = round_trip(flags("hypergrid", &algo, 1, 10, &["env.dim=2".into(), "env.side=4".into(), set]))?;
                let t = toml::Table::try_from(&config.algo).unwrap();
                let got = t[&key].as_float().unwrap();
                prop_assert!(got.to_bits() == x.to_bits() || got == x, "{}.{}: {} came back as {}", algo, key, x, got);
            }
            Err(e) => {
                let e = e.to_string();
                prop_assert!(e.contains(&key), "{} = {} on {}: error without the key: {}", key, x, algo, e);
            }
        }
    }

    #[test]
    fn integer_overrides_round_trip_or_name_their_key(
        (algo, key) in prop::sample::select(keys_of_type("integer")),
        n in prop_oneof![0i64..=4, 5i64..=1 << 20, Just(i64::MAX)],
    ) {
        let sets = ["env.dim=2".to_string(), "env.side=4".to_string(), format!("algo.{key}={n}")];
        match resolve(flags("hypergrid", &algo, 1, 10, &sets)) {
            Ok(_) => {
                let config = round_trip(flags("hypergrid", &algo, 1, 10, &sets))?;
                let t = toml::Table::try_from(&config.algo).unwrap();
                prop_assert_eq!(t[&key].as_integer(), Some(n));
            }
            Err(e) => {
                let e = e.to_string();
                prop_assert!(e.contains(&key), "{} = {} on {}: error without the key: {}", key, n, algo, e);
            }
        }
    }

    #[test]
    fn hypergrid_shapes_round_trip(dim in 1usize..=6, side in 2usize..=12) {
        let sets = [format!("env.dim={dim}"), format!("env.side={side}")];
        let config = round_trip(flags("hypergrid", "tb", 7, 3, &sets))?;
        prop_assert_eq!(config.env.params.get("dim").and_then(|v| v.as_integer()), Some(dim as i64));
        prop_assert_eq!(config.env.params.get("side").and_then(|v| v.as_integer()), Some(side as i64));
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        // No regression files next to the sources: failures print their minimal input.
        failure_persistence: None,
        ..ProptestConfig::with_cases(16)
    })]

    #[test]
    #[ignore = "product bug: seeds and iterations above i64::MAX are rejected (`invalid value for \
                `seed`: \"18446744073709551615\"`) although --seed takes a u64 and the config \
                docs say `any u64`"]
    fn seeds_above_i64_max_round_trip(seed in (i64::MAX as u64 + 1)..=u64::MAX) {
        let config = round_trip(flags("hypergrid", "tb", seed, 10, &["env.dim=2".into()]))?;
        prop_assert_eq!(config.seed, seed);
    }

    #[test]
    #[ignore = "product bug: a negative value for an unsigned algorithm key fails with \
                `invalid value: integer `-1`, expected usize`, which does not name the key"]
    fn negative_integer_overrides_name_their_key(
        (algo, key) in prop::sample::select(keys_of_type("integer")),
        n in i64::MIN..0,
    ) {
        let sets = ["env.dim=2".to_string(), format!("algo.{key}={n}")];
        let e = resolve(flags("hypergrid", &algo, 1, 10, &sets)).err().map(|e| e.to_string());
        prop_assert!(e.as_deref().is_some_and(|e| e.contains(&key)), "{}.{} = {}: {:?}", algo, key, n, e);
    }
}

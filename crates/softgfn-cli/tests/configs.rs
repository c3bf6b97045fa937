//! Every registered algorithm's default config round-trips through TOML, and every registered
//! environment's default parameters build.

use softgfn_train::{apply_override, registered_algorithms, resolve};

use softgfn_bitseq as _;
use softgfn_gflownet as _;
use softgfn_hypergrid as _;
use softgfn_molstr as _;
use softgfn_softrl as _;

#[test]
fn every_algorithm_default_config_round_trips() {
    let algos = registered_algorithms().unwrap();
    assert!(algos.len() >= 6, "{} algorithms registered", algos.len());
    for reg in algos {
        let mut t = toml::Table::new();
        apply_override(&mut t, &format!("algo.name={}", reg.name)).unwrap();
        apply_override(&mut t, "env.dim=2").unwrap();
        apply_override(&mut t, "env.side=4").unwrap();
        let (config, _) = resolve(t).unwrap();
        let text = config.to_toml().unwrap();
        let (again, _) = resolve(text.parse::<toml::Table>().unwrap()).unwrap();
        assert_eq!(again.to_toml().unwrap(), text, "{}", reg.name);
        // The serialized defaults are exactly the registration's defaults.
        let defaults = toml::Table::try_from((reg.default_config)()).unwrap();
        let written = text.parse::<toml::Table>().unwrap()["algo"]
            .as_table()
            .unwrap()
            .clone();
        for (k, v) in &defaults {
            assert_eq!(written.get(k), Some(v), "{}: key {k}", reg.name);
        }
    }
}

#[test]
fn every_environment_default_builds_and_passes_check_env() {
    for reg in softgfn_core::registered_envs().unwrap() {
        let env = reg.build(&reg.default_params()).unwrap();
        let opts = softgfn_core::CheckOptions {
            rollouts: 16,
            max_enumerated_states: 20_000,
            ..Default::default()
        };
        softgfn_core::check_env_with(env.as_ref(), &opts)
            .unwrap_or_else(|e| panic!("{}: {e}", reg.name));
    }
}

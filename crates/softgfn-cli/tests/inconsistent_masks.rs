//! Training on an environment whose masks are inconsistent (the backward mask forbids the step
//! that undoes a forward action, so `log P_B` is `-inf`) fails with an error that names the
//! environment and suggests `softgfn check-env`, on the balance path (an infinite loss) and on
//! the soft-RL path (an infinite TD error before it becomes a replay priority). `check_env`
//! finds the broken property.

use softgfn_core::testing::{Breakage, BrokenEnv};
use softgfn_train::{Trainer, apply_override, resolve};

// Linking the algorithm crates registers `tb`, `db` and `munchausen_dqn`.
use softgfn_gflownet as _;
use softgfn_softrl as _;

softgfn_core::inventory::submit! {
    softgfn_core::EnvRegistration {
        name: "broken-masks",
        summary: "a set environment whose backward mask forbids removing element 0 (tests)",
        source: "inconsistent_masks.rs",
        default_params: || serde_json::json!({}),
        build: |_| Ok(Box::new(BrokenEnv::new(Breakage::TightBackwardMask))),
    }
}

/// The error of training `algo` on `broken-masks` for up to 50 iterations.
fn training_error(algo: &str, overrides: &[&str]) -> String {
    let mut table = toml::Table::new();
    for o in ["env.name=broken-masks", &format!("algo.name={algo}")]
        .into_iter()
        .chain(overrides.iter().copied())
    {
        apply_override(&mut table, o).unwrap();
    }
    let (config, env) = resolve(table).unwrap();
    let mut trainer = Trainer::new(config, env).unwrap();
    for _ in 0..50 {
        if let Err(e) = trainer.train_iteration() {
            return e.to_string();
        }
    }
    panic!("{algo}: 50 iterations on inconsistent masks trained without an error");
}

const ADVICE: &str = ", training on environment `broken-masks`. An environment whose backward masks forbid the step that undoes a forward action (inconsistent masks), or whose log-rewards are not finite, makes log-probabilities infinite: check it with `softgfn check-env --env broken-masks` (with the run's --plugin and --set env.* options)";

#[test]
fn check_env_names_the_inconsistent_masks() {
    let err = softgfn_core::check_env(&BrokenEnv::new(Breakage::TightBackwardMask)).unwrap_err();
    assert!(err.to_string().contains("mask consistency"), "{err}");
}

#[test]
fn balance_training_names_the_environment_and_suggests_check_env() {
    for algo in ["tb", "db"] {
        let e = training_error(algo, &[]);
        assert!(
            e.starts_with("non-finite loss at iteration "),
            "{algo}: {e}"
        );
        assert!(e.ends_with(ADVICE), "{algo}: {e}");
    }
}

#[test]
fn munchausen_dqn_names_the_environment_and_suggests_check_env() {
    // Prioritized replay (the default of munchausen_dqn): the infinite TD error is caught before
    // it becomes a priority.
    let e = training_error("munchausen_dqn", &["algo.learning_starts=1"]);
    assert!(e.starts_with("non-finite TD error at iteration "), "{e}");
    assert!(e.ends_with(ADVICE), "{e}");
}

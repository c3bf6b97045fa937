//! The sets plugin passes `check_env`, its index is a bijection, and the exact `log Z` of the
//! state graph equals the closed form (elementary symmetric sums of `e^{w_i}`).

use softgfn_core::exact::StateGraph;
use softgfn_core::metrics::l1;
use softgfn_core::{Environment, EnvironmentExt, UniformBackward, check_env};
use softgfn_sets::{Sets, SetsConfig};

fn sets(n: usize, max_size: usize, seed: u64) -> Sets {
    Sets::new(SetsConfig {
        n,
        max_size,
        seed,
        ..Default::default()
    })
    .unwrap()
}

fn binom(n: u64, k: u64) -> u64 {
    (0..k).fold(1, |acc, i| acc * (n - i) / (i + 1))
}

#[test]
fn readable_form_is_the_set() {
    let env = sets(6, 3, 7);
    let r = env.as_readable().unwrap();
    assert_eq!(r.readable(&[0, 0, 0, 0, 0, 0]).unwrap(), "{}");
    assert_eq!(r.readable(&[1, 0, 1, 0, 0, 1]).unwrap(), "{0, 2, 5}");
    assert!(r.readable(&[1, 1, 1, 1, 0, 0]).is_err());
    assert!(r.readable(&[1, 0]).is_err());
}

#[test]
fn check_env_passes() {
    for (n, k) in [(1, 1), (3, 3), (6, 4), (8, 2), (10, 5)] {
        let env = sets(n, k, 7);
        let r = check_env(&env).unwrap();
        assert!(r.exhaustive, "{n} {k}");
        let expected: u64 = (0..=k as u64).map(|j| binom(n as u64, j)).sum();
        assert_eq!(r.states_checked as u64, expected, "{n} {k}");
        assert_eq!(env.as_enumerable().unwrap().num_states(), expected);
    }
}

#[test]
fn exact_log_z_equals_the_closed_form() {
    for (n, k, seed) in [(4, 4, 1), (6, 4, 0), (7, 3, 5), (9, 6, 11)] {
        let env = sets(n, k, seed);
        let graph = StateGraph::build(&env, 1 << 20).unwrap();
        let target = graph.target();
        // Brute force over all subsets as a second opinion.
        let w = env.weights();
        let mut z = 0.0;
        for mask in 1u32..(1 << n) {
            if mask.count_ones() as usize <= k {
                z += (0..n)
                    .filter(|i| mask >> i & 1 == 1)
                    .map(|i| w[i])
                    .sum::<f64>()
                    .exp();
            }
        }
        assert!(
            (target.log_z - env.log_partition()).abs() < 1e-12,
            "{} vs {}",
            target.log_z,
            env.log_partition()
        );
        assert!((z.ln() - env.log_partition()).abs() < 1e-12);
        assert_eq!(graph.longest_trajectory, env.spec().max_trajectory_length);
        // The flow recursion with a uniform backward policy samples the target exactly.
        let flows = graph.flows(&UniformBackward);
        assert!((flows.log_z - target.log_z).abs() < 1e-12);
        let p = graph.terminal_distribution(&flows.log_pf).unwrap();
        assert!(l1(&p, &target.probs).unwrap() < 1e-9);
    }
}

#[test]
fn given_weights_and_the_dag() {
    let env =
        Sets::from_params(&serde_json::json!({"n": 3, "max_size": 2, "weights": [0.0, 1.0, 2.0]}))
            .unwrap();
    // Z = e^0 + e^1 + e^2 + e^1 + e^2 + e^3.
    let z: f64 = [0.0f64, 1.0, 2.0, 1.0, 2.0, 3.0]
        .iter()
        .map(|v| v.exp())
        .sum();
    assert!((env.log_partition() - z.ln()).abs() < 1e-12);
    // {0, 1} has two parents: a DAG, not a tree.
    let s = [1, 1, 0];
    assert_eq!(env.backward_mask_of(&s).unwrap(), vec![true, true, false]);
    // Full sets only exit; the empty set cannot exit.
    assert_eq!(
        env.forward_mask_of(&s).unwrap(),
        vec![false, false, false, true]
    );
    assert_eq!(
        env.forward_mask_of(&[0, 0, 0]).unwrap(),
        vec![true, true, true, false]
    );
    assert!((env.log_reward_of(&[1, 0, 1]).unwrap() - 2.0).abs() < 1e-15);
    assert!(env.step_one(&s, 2).is_err());
    assert!(env.step_one(&s, 3).is_err());
    assert_eq!(
        env.params(),
        serde_json::json!({"n": 3, "max_size": 2, "weights": [0.0, 1.0, 2.0], "seed": 0, "scale": 1.0})
    );
}

#[test]
fn bad_parameters_name_the_field() {
    let cases = [
        (serde_json::json!({"n": 0}), "invalid parameter `n` = 0"),
        (serde_json::json!({"n": 63}), "invalid parameter `n` = 63"),
        (
            serde_json::json!({"n": 3, "max_size": 4}),
            "invalid parameter `max_size` = 4: expected an integer in 1..=3 (n)",
        ),
        (
            serde_json::json!({"n": 3, "max_size": 2, "weights": [1.0]}),
            "expected a list of n = 3 finite numbers",
        ),
        (serde_json::json!({"size": 3}), "unknown field `size`"),
    ];
    for (params, want) in cases {
        let err = Sets::from_params(&params).unwrap_err().to_string();
        assert!(err.contains(want), "{err}");
    }
}

#[test]
fn the_largest_instance_indexes_without_overflow() {
    let env = sets(62, 62, 0);
    let en = env.as_enumerable().unwrap();
    assert_eq!(en.num_states(), 1u64 << 62);
    let full = vec![1; 62];
    let mut i = [0u64];
    en.state_index(&full, &mut i).unwrap();
    assert_eq!(i[0], (1u64 << 62) - 1);
    let mut row = vec![0; 62];
    en.states_from_index(&i, &mut row).unwrap();
    assert_eq!(row, full);
}

#[test]
fn registered_in_the_static_registry() {
    let env = softgfn_core::build_env("sets", &serde_json::json!({"n": 4})).unwrap();
    assert_eq!(env.spec().num_actions, 5);
}

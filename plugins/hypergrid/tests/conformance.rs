//! Hypergrid passes `check_env`, and its flow recursion reproduces R/Z exactly.

use softgfn_core::exact::StateGraph;
use softgfn_core::metrics::l1;
use softgfn_core::{Environment, UniformBackward, check_env};
use softgfn_hypergrid::{Hypergrid, HypergridConfig, RewardKind};

fn grid(dim: usize, side: usize, reward: RewardKind) -> Hypergrid {
    Hypergrid::new(HypergridConfig {
        dim,
        side,
        reward,
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn check_env_passes() {
    for (d, h) in [(1, 5), (2, 8), (3, 6)] {
        let r = check_env(&grid(d, h, RewardKind::Standard)).unwrap();
        assert!(r.exhaustive);
        assert_eq!(r.states_checked, h.pow(d as u32));
    }
}

#[test]
fn exact_flow_policy_samples_the_target() {
    for reward in [RewardKind::Standard, RewardKind::Hard] {
        let env = grid(2, 8, reward);
        let graph = StateGraph::build(&env, 1 << 20).unwrap();
        assert_eq!(graph.num_terminal, 64);
        assert_eq!(graph.longest_trajectory, env.spec().max_trajectory_length);
        let target = graph.target();
        let flows = graph.flows(&UniformBackward);
        assert!((flows.log_z - target.log_z).abs() < 1e-12);
        let p = graph.terminal_distribution(&flows.log_pf).unwrap();
        assert!(l1(&p, &target.probs).unwrap() < 1e-9);
    }
}

#[test]
fn log_z_of_the_paper_grid() {
    // log Z of 20^4 standard is 8.643 (paper-spec table); checked by enumeration.
    let env = grid(4, 20, RewardKind::Standard);
    let graph = StateGraph::build(&env, 1 << 20).unwrap();
    assert!(
        (graph.target().log_z - 8.643).abs() < 5e-4,
        "{}",
        graph.target().log_z
    );
    let env = grid(4, 20, RewardKind::Hard);
    let graph = StateGraph::build(&env, 1 << 20).unwrap();
    assert!(
        (graph.target().log_z - 9.286).abs() < 5e-4,
        "{}",
        graph.target().log_z
    );
}

#[test]
fn registered_in_the_static_registry() {
    let env =
        softgfn_core::build_env("hypergrid", &serde_json::json!({"dim": 2, "side": 3})).unwrap();
    assert_eq!(env.spec().num_actions, 3);
    let Err(err) = softgfn_core::build_env("hypergird", &serde_json::Value::Null) else {
        panic!("a misspelled name must not build");
    };
    assert!(err.to_string().contains("available: hypergrid"), "{err}");
}

#[test]
fn soft_value_iteration_equals_the_flow_recursion() {
    // The paper's theorem on the hypergrid: with rewards log P_B (uniform) on intermediate edges
    // and log R on the exit, V*(s) = log F(s), V*(s0) = log Z and the soft-optimal policy is P_F.
    let env = grid(2, 8, RewardKind::Standard);
    let graph = StateGraph::build(&env, 1 << 20).unwrap();
    let flows = graph.flows(&UniformBackward);
    let soft = graph.soft_values(&UniformBackward, 1.0);
    assert!((soft.v0(&graph) - graph.target().log_z).abs() < 1e-9);
    for s in 0..graph.num_states() {
        assert!((soft.v[s] - flows.log_flow[s]).abs() < 1e-9);
        for a in 0..graph.num_actions {
            let k = s * graph.num_actions + a;
            assert!((soft.log_policy[k].exp() - flows.log_pf[k].exp()).abs() < 1e-9);
        }
    }
}

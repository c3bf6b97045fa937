//! Exact answers on small DAGs: the flow recursion's forward policy samples R/Z.

use softgfn_core::exact::StateGraph;
use softgfn_core::metrics::{ExactDistances, l1};
use softgfn_core::testing::{SetEnv, SlotEnv};
use softgfn_core::{Environment, TreeBackward, UniformBackward};

fn check_flows_reproduce_target(env: &dyn Environment) {
    let graph = StateGraph::build(env, 1 << 20).unwrap();
    let target = graph.target();
    let flows = graph.flows(&UniformBackward);
    assert!(
        (flows.log_z - target.log_z).abs() < 1e-12,
        "log F(s0) = {} but log Z = {}",
        flows.log_z,
        target.log_z
    );
    let p = graph.terminal_distribution(&flows.log_pf).unwrap();
    let d = l1(&p, &target.probs).unwrap();
    assert!(d < 1e-9, "exact L1 of the flow policy is {d}");
    // Each row of P_F sums to one.
    for s in 0..graph.num_states() {
        if graph.child_offsets[s] == graph.child_offsets[s + 1] && !graph.can_exit(s) {
            continue;
        }
        let total: f64 = flows.log_pf_of(s).iter().map(|v| v.exp()).sum();
        assert!((total - 1.0).abs() < 1e-9, "P_F row {s} sums to {total}");
    }
}

#[test]
fn set_env_flows_sample_the_target() {
    check_flows_reproduce_target(&SetEnv::new(vec![0.3, -1.2, 2.0, 0.7]));
}

#[test]
fn slot_env_without_exit_flows_sample_the_target() {
    check_flows_reproduce_target(&SlotEnv::new(vec![0.5, -0.25, 1.5]));
}

#[test]
fn target_matches_direct_sum() {
    let w = vec![0.3, -1.2, 2.0];
    let env = SetEnv::new(w.clone());
    let graph = StateGraph::build(&env, 1000).unwrap();
    // Z = sum over non-empty subsets of exp(sum w) = prod(1 + e^w) - 1.
    let z: f64 = w.iter().map(|x| 1.0 + x.exp()).product::<f64>() - 1.0;
    assert!((graph.target().log_z - z.ln()).abs() < 1e-12);
    assert_eq!(graph.num_terminal, 7);
    assert_eq!(graph.longest_trajectory, 4);
}

#[test]
fn tree_backward_policy_is_biased_by_construction_orders() {
    // With log P_B = 0 on a DAG, F(s0) = sum_x n(x) R(x) with n(x) = |x|! orders,
    // and the induced sampler is proportional to n(x) R(x), not R(x).
    let w = vec![0.1, 0.2, 0.3];
    let env = SetEnv::new(w.clone());
    let graph = StateGraph::build(&env, 1000).unwrap();
    let flows = graph.flows(&TreeBackward);
    let fact = |m: usize| (1..=m).product::<usize>() as f64;
    let mut weighted = vec![0.0; graph.num_states()];
    let mut total = 0.0;
    for s in 0..graph.num_states() {
        if graph.terminal[s] {
            let m = graph.state(s).iter().filter(|&&v| v == 1).count();
            weighted[s] = fact(m) * graph.log_reward[s].exp();
            total += weighted[s];
        }
    }
    assert!((flows.log_z - total.ln()).abs() < 1e-12);
    let p = graph.terminal_distribution(&flows.log_pf).unwrap();
    for s in 0..graph.num_states() {
        assert!((p[s] - weighted[s] / total).abs() < 1e-12);
    }
    let d = ExactDistances::between(&graph.target().probs, &p).unwrap();
    assert!(d.exact_l1 > 0.1, "the tree policy should be visibly biased");
}

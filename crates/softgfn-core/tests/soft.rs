//! The paper's theorem, checked numerically: exact soft value iteration on the reduced MDP equals
//! the flow recursion, and dropping the log P_B rewards biases the sampler.

use softgfn_core::exact::StateGraph;
use softgfn_core::metrics::l1;
use softgfn_core::testing::{SetEnv, SlotEnv};
use softgfn_core::{Environment, TreeBackward, UniformBackward};

fn soft_equals_flows(env: &dyn Environment) {
    let graph = StateGraph::build(env, 1 << 20).unwrap();
    let flows = graph.flows(&UniformBackward);
    let soft = graph.soft_values(&UniformBackward, 1.0);
    assert!((soft.v0(&graph) - graph.target().log_z).abs() < 1e-9);
    for s in 0..graph.num_states() {
        assert!(
            (soft.v[s] - flows.log_flow[s]).abs() < 1e-9,
            "V*({s}) = {} but log F = {}",
            soft.v[s],
            flows.log_flow[s]
        );
        for a in 0..graph.num_actions {
            let (x, y) = (
                soft.log_policy[s * graph.num_actions + a],
                flows.log_pf[s * graph.num_actions + a],
            );
            if x == f64::NEG_INFINITY || y == f64::NEG_INFINITY {
                assert_eq!(x, y, "support differs at state {s} action {a}");
            } else {
                assert!(
                    (x.exp() - y.exp()).abs() < 1e-9,
                    "pi*({a}|{s}) {x} vs P_F {y}"
                );
            }
        }
    }
    let p = graph.terminal_distribution(&soft.log_policy).unwrap();
    assert!(l1(&p, &graph.target().probs).unwrap() < 1e-9);
}

#[test]
fn soft_value_iteration_equals_the_flow_recursion() {
    soft_equals_flows(&SetEnv::new(vec![0.3, -0.8, 1.4, 0.1]));
    soft_equals_flows(&SlotEnv::new(vec![0.3, -0.8, 1.4]));
}

#[test]
fn dropping_log_pb_rewards_samples_n_x_times_r_x() {
    // Without the log P_B rewards the soft-optimal sampler is proportional to n(x) R(x), where
    // n(x) = |x|! construction orders of a set x: biased toward large sets.
    let env = SetEnv::new(vec![0.2, 0.2, 0.2]);
    let graph = StateGraph::build(&env, 100).unwrap();
    let soft = graph.soft_values(&TreeBackward, 1.0);
    let p = graph.terminal_distribution(&soft.log_policy).unwrap();
    let fact = |m: usize| (1..=m).product::<usize>() as f64;
    let weights: Vec<f64> = (0..graph.num_states())
        .map(|s| {
            if graph.terminal[s] {
                let m = graph.state(s).iter().filter(|&&v| v == 1).count();
                fact(m) * graph.log_reward[s].exp()
            } else {
                0.0
            }
        })
        .collect();
    let z: f64 = weights.iter().sum();
    for s in 0..graph.num_states() {
        assert!((p[s] - weights[s] / z).abs() < 1e-12);
    }
    assert!((soft.v0(&graph) - z.ln()).abs() < 1e-12);
    // The full set gets 6 times the probability it should have relative to a singleton.
    let full = 7usize;
    let single = 1usize;
    assert!(
        ((p[full] / p[single]) / (graph.log_reward[full] - graph.log_reward[single]).exp() - 6.0)
            .abs()
            < 1e-9
    );
    assert!(l1(&p, &graph.target().probs).unwrap() > 0.2);
}

#[test]
fn temperature_scales_the_policy() {
    // With lambda != 1 and the same rewards the optimum is no longer R/Z (the paper's remark).
    let env = SetEnv::new(vec![0.5, -0.5, 1.0]);
    let graph = StateGraph::build(&env, 100).unwrap();
    let soft = graph.soft_values(&UniformBackward, 2.0);
    let p = graph.terminal_distribution(&soft.log_policy).unwrap();
    assert!(l1(&p, &graph.target().probs).unwrap() > 1e-3);
}

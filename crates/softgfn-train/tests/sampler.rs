//! The sampler produces valid trajectories, respects exploration and ends implicitly where the
//! environment has no exit.

use softgfn_core::exact::StateGraph;
use softgfn_core::rng::{Stream, stream};
use softgfn_core::testing::{SetEnv, SlotEnv};
use softgfn_core::{Environment, EnvironmentExt, Trajectories};
use softgfn_train::{Exploration, ForwardPolicy, Result, Sampler};

/// Logits that strongly prefer action 0 wherever it is valid.
struct Greedy0 {
    num_actions: usize,
}

impl ForwardPolicy for Greedy0 {
    fn policy_logits(&mut self, _f: &[f32], rows: usize, out: &mut [f32]) -> Result<()> {
        for r in 0..rows {
            for a in 0..self.num_actions {
                out[r * self.num_actions + a] = if a == 0 { 50.0 } else { 0.0 };
            }
        }
        Ok(())
    }
}

fn replay_is_consistent(env: &dyn Environment, t: &Trajectories) {
    for i in 0..t.num_trajectories() {
        let a = t.state_offsets[i];
        assert_eq!(t.state(a), env.initial_row().as_slice());
        for e in t.edge_offsets[i]..t.edge_offsets[i + 1] {
            let src = t.edge_source(i, e);
            assert!(t.forward_mask(src)[t.actions[e] as usize]);
            if !t.is_exit_edge(e) {
                let (next, b) = env.step_one(t.state(src), t.actions[e]).unwrap();
                assert_eq!(next.as_slice(), t.state(src + 1));
                assert_eq!(b, t.backward_actions[e]);
            }
        }
        let lr = env.log_reward_of(t.terminal_state(i)).unwrap();
        assert_eq!(lr, t.log_rewards[i]);
    }
}

#[test]
fn trajectories_replay_through_the_environment() {
    let env = SetEnv::new(vec![0.1, 0.2, 0.3, 0.4]);
    let mut policy = Greedy0 { num_actions: 5 };
    let mut t = Trajectories::new(env.spec());
    let mut rng = stream(1, Stream::Sampling);
    let mut s = Sampler::new();
    let explore = Exploration {
        epsilon: 0.5,
        temperature: 1.0,
    };
    s.sample(&env, &mut policy, 32, explore, &mut rng, &mut t)
        .unwrap();
    assert_eq!(t.num_trajectories(), 32);
    replay_is_consistent(&env, &t);
    // Every trajectory of the set environment ends with the exit.
    assert!((0..32).all(|i| t.has_exit_edge(i)));
}

#[test]
fn implicit_termination_without_exit() {
    let env = SlotEnv::new(vec![0.1, 0.2, 0.3]);
    let mut policy = Greedy0 { num_actions: 6 };
    let mut t = Trajectories::new(env.spec());
    let mut rng = stream(2, Stream::Sampling);
    Sampler::new()
        .sample(
            &env,
            &mut policy,
            8,
            Exploration::default(),
            &mut rng,
            &mut t,
        )
        .unwrap();
    replay_is_consistent(&env, &t);
    for i in 0..8 {
        assert_eq!(t.len_of(i), 3);
        assert!(!t.has_exit_edge(i));
        assert!(t.terminal_state(i).iter().all(|&v| v != 2));
    }
    assert_eq!(t.transitions().filter(|x| x.done).count(), 8);
}

#[test]
fn epsilon_one_samples_uniform_actions() {
    // With epsilon = 1 the first action is uniform over the 5 valid actions at s0
    // whatever the logits say.
    let env = SetEnv::new(vec![0.0; 4]);
    let mut policy = Greedy0 { num_actions: 5 };
    let mut t = Trajectories::new(env.spec());
    let mut rng = stream(3, Stream::Sampling);
    let explore = Exploration {
        epsilon: 1.0,
        temperature: 1.0,
    };
    let n = 4000;
    Sampler::new()
        .sample(&env, &mut policy, n, explore, &mut rng, &mut t)
        .unwrap();
    let mut counts = [0usize; 4];
    for i in 0..n {
        let e = t.edge_offsets[i];
        counts[t.actions[e] as usize] += 1;
    }
    // Exit is invalid at the empty set, so the first action is one of 4 elements.
    for c in counts {
        let f = c as f64 / n as f64;
        assert!((f - 0.25).abs() < 0.03, "{counts:?}");
    }
    // The recorded behaviour log-probability is log(1/4).
    assert!((t.behaviour_log_probs[0] + 4f64.ln()).abs() < 1e-12);
    // Without exploration the greedy policy always adds element 0 first.
    Sampler::new()
        .sample(
            &env,
            &mut policy,
            16,
            Exploration::default(),
            &mut rng,
            &mut t,
        )
        .unwrap();
    assert!((0..16).all(|i| t.actions[t.edge_offsets[i]] == 0));
}

#[test]
fn terminal_states_are_terminal_in_the_graph() {
    let env = SetEnv::new(vec![0.5, 0.5, 0.5]);
    let graph = StateGraph::build(&env, 100).unwrap();
    let en = env.as_enumerable().unwrap();
    let mut policy = Greedy0 { num_actions: 4 };
    let mut t = Trajectories::new(env.spec());
    let mut rng = stream(4, Stream::Sampling);
    let explore = Exploration {
        epsilon: 0.3,
        temperature: 2.0,
    };
    Sampler::new()
        .sample(&env, &mut policy, 64, explore, &mut rng, &mut t)
        .unwrap();
    for i in 0..64 {
        let mut idx = [0u64];
        en.state_index(t.terminal_state(i), &mut idx).unwrap();
        assert!(graph.terminal[idx[0] as usize]);
    }
}

//! Property tests of the hypergrid's invariants on random shapes (dim 1..=4, side 2..=7), random
//! states (through `states_from_index`) and random valid actions:
//! - `step` and `backward_step` are inverse to each other, action for action;
//! - forward and backward masks agree with what `step` / `backward_step` accept;
//! - `state_index` and `states_from_index` are inverse bijections on `0..num_states`;
//! - `encode` is K-hot: exactly `dim` ones, one in each coordinate's block, at the coordinate;
//! - `log_reward` is finite at every state (every state is terminal), for presets and for custom
//!   constants with `r0 > 0`;
//! - batched calls give the same answers as the same calls row by row.

use proptest::prelude::*;
use softgfn_core::{Environment, EnvironmentExt, StateValue};
use softgfn_hypergrid::{Hypergrid, HypergridConfig, RewardKind};

fn grid(dim: usize, side: usize, reward: RewardKind) -> Hypergrid {
    let mut c = HypergridConfig {
        dim,
        side,
        reward,
        ..Default::default()
    };
    if reward == RewardKind::Custom {
        c.r0 = Some(0.25);
        c.r1 = Some(1.5);
        c.r2 = Some(0.0);
    }
    Hypergrid::new(c).unwrap()
}

/// A grid and some state indices in it.
fn grid_and_indices() -> impl Strategy<Value = (usize, usize, RewardKind, Vec<u64>)> {
    (
        1usize..=4,
        2usize..=7,
        prop_oneof![
            Just(RewardKind::Standard),
            Just(RewardKind::Hard),
            Just(RewardKind::Custom)
        ],
    )
        .prop_flat_map(|(dim, side, reward)| {
            let n = (side as u64).pow(dim as u32);
            (
                Just(dim),
                Just(side),
                Just(reward),
                prop::collection::vec(0..n, 1..=8),
            )
        })
}

fn rows_of(env: &Hypergrid, indices: &[u64]) -> Vec<StateValue> {
    let en = env.as_enumerable().unwrap();
    let mut states = vec![0; indices.len() * env.spec().state_width];
    en.states_from_index(indices, &mut states).unwrap();
    states
}

proptest! {
    #![proptest_config(ProptestConfig {
        // No regression files next to the sources: failures print their minimal input.
        failure_persistence: None,
        ..ProptestConfig::with_cases(128)
    })]

    #[test]
    fn index_and_state_are_inverse_bijections((dim, side, reward, idx) in grid_and_indices()) {
        let env = grid(dim, side, reward);
        let en = env.as_enumerable().unwrap();
        prop_assert_eq!(en.num_states(), (side as u64).pow(dim as u32));
        let states = rows_of(&env, &idx);
        for s in states.chunks(dim) {
            prop_assert!(s.iter().all(|&x| (0..side as StateValue).contains(&x)), "{:?}", s);
        }
        let mut back = vec![0u64; idx.len()];
        en.state_index(&states, &mut back).unwrap();
        prop_assert_eq!(&back, &idx);
        // Distinct indices give distinct states.
        for i in 0..idx.len() {
            for j in 0..idx.len() {
                let same_state = states[i * dim..(i + 1) * dim] == states[j * dim..(j + 1) * dim];
                prop_assert_eq!(same_state, idx[i] == idx[j]);
            }
        }
        // The first index past the end is an error, not a wrapped state.
        let mut row = vec![0; dim];
        prop_assert!(en.states_from_index(&[en.num_states()], &mut row).is_err());
    }

    #[test]
    fn forward_steps_are_undone_by_their_backward_action(
        (dim, side, reward, idx) in grid_and_indices(),
        pick in any::<prop::sample::Index>(),
    ) {
        let env = grid(dim, side, reward);
        for s in rows_of(&env, &idx).chunks(dim) {
            let fmask = env.forward_mask_of(s).unwrap();
            prop_assert_eq!(fmask.len(), dim + 1);
            prop_assert!(fmask[dim], "exit is valid everywhere");
            for a in 0..dim {
                prop_assert_eq!(fmask[a], s[a] < side as StateValue - 1);
                // The mask says exactly which steps are accepted.
                prop_assert_eq!(env.step_one(s, a as u32).is_ok(), fmask[a]);
            }
            prop_assert!(env.step_one(s, dim as u32).is_err(), "exit has no next state");
            let valid: Vec<u32> = (0..dim as u32).filter(|&a| fmask[a as usize]).collect();
            if valid.is_empty() {
                continue;
            }
            let a = valid[pick.index(valid.len())];
            let (next, b) = env.step_one(s, a).unwrap();
            prop_assert_eq!(next[a as usize], s[a as usize] + 1);
            prop_assert!(env.backward_mask_of(&next).unwrap()[b as usize]);
            let (prev, a2) = env.backward_step_one(&next, b).unwrap();
            prop_assert_eq!(&prev[..], s);
            prop_assert_eq!(a2, a);
        }
    }

    #[test]
    fn backward_steps_are_redone_by_their_forward_action(
        (dim, side, reward, idx) in grid_and_indices(),
    ) {
        let env = grid(dim, side, reward);
        for s in rows_of(&env, &idx).chunks(dim) {
            let bmask = env.backward_mask_of(s).unwrap();
            prop_assert_eq!(bmask.len(), dim);
            prop_assert_eq!(bmask.iter().any(|&v| v), s.iter().any(|&x| x > 0), "only s0 has no parent");
            for b in 0..dim as u32 {
                let r = env.backward_step_one(s, b);
                prop_assert_eq!(r.is_ok(), bmask[b as usize]);
                if let Ok((prev, a)) = r {
                    prop_assert!(env.forward_mask_of(&prev).unwrap()[a as usize]);
                    let (again, b2) = env.step_one(&prev, a).unwrap();
                    prop_assert_eq!(&again[..], s);
                    prop_assert_eq!(b2, b);
                }
            }
        }
    }

    #[test]
    fn features_are_k_hot((dim, side, reward, idx) in grid_and_indices()) {
        let env = grid(dim, side, reward);
        let states = rows_of(&env, &idx);
        let f = env.spec().feature_dim;
        prop_assert_eq!(f, dim * side);
        let mut out = vec![f32::NAN; idx.len() * f];
        env.encode(&states, &mut out).unwrap();
        for (s, o) in states.chunks(dim).zip(out.chunks(f)) {
            prop_assert!(o.iter().all(|&v| v == 0.0 || v == 1.0), "{:?}", o);
            prop_assert_eq!(o.iter().filter(|&&v| v == 1.0).count(), dim);
            for (k, &x) in s.iter().enumerate() {
                let block = &o[k * side..(k + 1) * side];
                prop_assert_eq!(block.iter().filter(|&&v| v == 1.0).count(), 1);
                prop_assert_eq!(block[x as usize], 1.0);
            }
        }
    }

    #[test]
    fn log_rewards_are_finite_everywhere((dim, side, reward, idx) in grid_and_indices()) {
        let env = grid(dim, side, reward);
        let states = rows_of(&env, &idx);
        let mut lr = vec![f64::NAN; idx.len()];
        env.log_reward(&states, &mut lr).unwrap();
        let (r0, r1, r2) = env.config().constants().unwrap();
        for (s, &l) in states.chunks(dim).zip(&lr) {
            prop_assert!(env.is_terminal_state(s).unwrap());
            prop_assert!(l.is_finite(), "log_reward({:?}) = {}", s, l);
            prop_assert!(l >= r0.ln() - 1e-12 && l <= (r0 + r1 + r2).ln() + 1e-12);
            prop_assert_eq!(l, env.log_reward_of(s).unwrap());
        }
    }

    #[test]
    fn custom_rewards_with_positive_r0_are_finite(
        dim in 1usize..=3,
        side in 2usize..=7,
        r0 in 1e-300f64..1e300,
        r1 in 0f64..1e300,
        r2 in 0f64..1e300,
        i in any::<prop::sample::Index>(),
    ) {
        let env = Hypergrid::new(HypergridConfig {
            dim,
            side,
            reward: RewardKind::Custom,
            r0: Some(r0),
            r1: Some(r1),
            r2: Some(r2),
        })
        .unwrap();
        let n = (side as u64).pow(dim as u32);
        let s = rows_of(&env, &[i.index(n as usize) as u64]);
        let l = env.log_reward_of(&s).unwrap();
        // r0 + r1 + r2 <= 3e300 never overflows.
        prop_assert!(l.is_finite(), "log_reward({:?}) = {}", s, l);
    }

    #[test]
    fn invalid_custom_constants_are_rejected(
        r0 in prop_oneof![Just(0.0), Just(-1.0), Just(f64::NAN), Just(f64::INFINITY), -1e300f64..=0.0],
    ) {
        let c = HypergridConfig {
            dim: 2,
            side: 4,
            reward: RewardKind::Custom,
            r0: Some(r0),
            r1: Some(1.0),
            r2: Some(1.0),
        };
        let e = Hypergrid::new(c).unwrap_err().to_string();
        prop_assert!(e.contains("`r0`"), "{}", e);
    }

    #[test]
    fn batched_calls_match_single_rows(
        (dim, side, reward, idx) in grid_and_indices(),
    ) {
        let env = grid(dim, side, reward);
        let states = rows_of(&env, &idx);
        let rows = idx.len();
        let mut fm = vec![false; rows * (dim + 1)];
        env.forward_masks(&states, &mut fm).unwrap();
        let mut bm = vec![false; rows * dim];
        env.backward_masks(&states, &mut bm).unwrap();
        for (r, s) in states.chunks(dim).enumerate() {
            prop_assert_eq!(&fm[r * (dim + 1)..(r + 1) * (dim + 1)], &env.forward_mask_of(s).unwrap()[..]);
            prop_assert_eq!(&bm[r * dim..(r + 1) * dim], &env.backward_mask_of(s).unwrap()[..]);
        }
        // Exit is always valid, so step every row with action 0 where allowed, as a batch.
        let ok: Vec<usize> = (0..rows).filter(|&r| fm[r * (dim + 1)]).collect();
        if !ok.is_empty() {
            let batch: Vec<StateValue> = ok.iter().flat_map(|&r| states[r * dim..(r + 1) * dim].to_vec()).collect();
            let mut next = vec![0; batch.len()];
            let mut back = vec![0u32; ok.len()];
            env.step(&batch, &vec![0; ok.len()], &mut next, &mut back).unwrap();
            for (j, s) in batch.chunks(dim).enumerate() {
                let (n1, b1) = env.step_one(s, 0).unwrap();
                prop_assert_eq!(&next[j * dim..(j + 1) * dim], &n1[..]);
                prop_assert_eq!(back[j], b1);
            }
        }
    }

    #[test]
    fn out_of_range_rows_are_errors_not_panics(
        dim in 1usize..=4,
        side in 2usize..=7,
        row in prop::collection::vec(any::<i32>(), 1..=4),
        action in any::<u32>(),
    ) {
        let env = grid(dim, side, RewardKind::Standard);
        // Rows of any length and content: every call returns, valid or not.
        let _ = env.forward_mask_of(&row);
        let _ = env.backward_mask_of(&row);
        let _ = env.log_reward_of(&row);
        let mut feats = vec![0f32; env.spec().feature_dim];
        let _ = env.encode(&row, &mut feats);
        if row.len() == dim {
            let valid = row.iter().all(|&x| (0..side as i32).contains(&x));
            prop_assert_eq!(env.log_reward_of(&row).is_ok(), valid);
            let _ = env.step_one(&row, action);
            let _ = env.backward_step_one(&row, action);
            let mut idx = [0u64];
            prop_assert_eq!(env.as_enumerable().unwrap().state_index(&row, &mut idx).is_ok(), valid);
        }
    }
}

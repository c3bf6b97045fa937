//! Property tests of the environment contract on the core testing environments (`SetEnv`: sets
//! built by adding elements, exit at non-empty sets; `SlotEnv`: slots filled in any order, no exit
//! action), and of the exact answers, the log-domain helpers and the distribution distances:
//! - `step` / `backward_step` are inverse, masks agree with what they accept, `s0` alone has no
//!   parent, the exit action is not a transition;
//! - `state_index` / `states_from_index` are inverse bijections;
//! - terminal log-rewards and features are finite; `check_env` passes on random instances and
//!   names a listed property on every broken one;
//! - the flow recursion of a uniform backward policy samples exactly `R/Z`;
//! - `logsumexp`, `log_add_exp`, `masked_log_softmax`, `masked_softmax`, `sample_from_log_probs`,
//!   `sample_from_probs` and the metrics keep their defining bounds.

use proptest::prelude::*;
use softgfn_core::exact::StateGraph;
use softgfn_core::math::{
    log_add_exp, logsumexp, masked_log_softmax, masked_softmax, sample_from_log_probs,
    sample_from_probs,
};
use softgfn_core::metrics::{jsd, kl, l1, tv};
use softgfn_core::testing::{Breakage, BrokenEnv, SetEnv, SlotEnv};
use softgfn_core::{
    CheckOptions, Environment, EnvironmentExt, StateValue, UniformBackward, check_env_with,
};

/// The contract at one state.
fn check_state(env: &dyn Environment, s: &[StateValue]) -> Result<(), TestCaseError> {
    let spec = env.spec().clone();
    let fail = |e: softgfn_core::CoreError| TestCaseError::fail(e.to_string());
    let fm = env.forward_mask_of(s).map_err(fail)?;
    let bm = env.backward_mask_of(s).map_err(fail)?;
    for a in 0..spec.num_actions as u32 {
        if spec.is_exit(a) {
            prop_assert!(env.step_one(s, a).is_err(), "exit is not a transition");
            continue;
        }
        let r = env.step_one(s, a);
        prop_assert_eq!(
            r.is_ok(),
            fm[a as usize],
            "step({:?}, {}) vs its mask",
            s,
            a
        );
        if let Ok((next, b)) = r {
            prop_assert_ne!(&next[..], s, "a step changes the state");
            prop_assert!(env.backward_mask_of(&next).map_err(fail)?[b as usize]);
            let (prev, a2) = env.backward_step_one(&next, b).map_err(fail)?;
            prop_assert_eq!(&prev[..], s);
            prop_assert_eq!(a2, a);
        }
    }
    for b in 0..spec.num_backward_actions as u32 {
        let r = env.backward_step_one(s, b);
        prop_assert_eq!(
            r.is_ok(),
            bm[b as usize],
            "backward_step({:?}, {}) vs its mask",
            s,
            b
        );
        if let Ok((prev, a)) = r {
            prop_assert!(
                !spec.is_exit(a),
                "backward_step never returns the exit action"
            );
            prop_assert!(env.forward_mask_of(&prev).map_err(fail)?[a as usize]);
            let (next, b2) = env.step_one(&prev, a).map_err(fail)?;
            prop_assert_eq!(&next[..], s);
            prop_assert_eq!(b2, b);
        }
    }
    let s0 = env.initial_row();
    prop_assert_eq!(
        bm.iter().any(|&v| v),
        s != &s0[..],
        "only s0 has no parent: {:?}",
        s
    );
    if env.is_terminal_state(s).map_err(fail)? {
        let lr = env.log_reward_of(s).map_err(fail)?;
        prop_assert!(lr.is_finite(), "log_reward({:?}) = {}", s, lr);
    }
    let mut feats = vec![f32::NAN; spec.feature_dim];
    env.encode(s, &mut feats).map_err(fail)?;
    prop_assert!(feats.iter().all(|v| v.is_finite()));
    let en = env.as_enumerable().unwrap();
    let mut i = [0u64];
    en.state_index(s, &mut i).map_err(fail)?;
    prop_assert!(i[0] < en.num_states());
    let mut back = vec![0; spec.state_width];
    en.states_from_index(&i, &mut back).map_err(fail)?;
    prop_assert_eq!(&back[..], s);
    Ok(())
}

/// The contract at the states of the given indices (taken modulo the number of states).
fn check_indices(env: &dyn Environment, picks: &[u64]) -> Result<(), TestCaseError> {
    let en = env.as_enumerable().unwrap();
    let n = en.num_states();
    let w = env.spec().state_width;
    let idx: Vec<u64> = picks.iter().map(|p| p % n).collect();
    let mut states = vec![0; idx.len() * w];
    en.states_from_index(&idx, &mut states).unwrap();
    let mut back = vec![0u64; idx.len()];
    en.state_index(&states, &mut back).unwrap();
    prop_assert_eq!(&back, &idx);
    for s in states.chunks(w) {
        check_state(env, s)?;
    }
    Ok(())
}

fn weights(max_len: usize) -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(-5.0f64..5.0, 1..=max_len)
}

fn distribution(n: usize) -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(0.0f64..1.0, n).prop_map(|v| {
        let s: f64 = v.iter().sum();
        if s > 0.0 {
            v.iter().map(|x| x / s).collect()
        } else {
            vec![1.0 / v.len() as f64; v.len()]
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        // No regression files next to the sources: failures print their minimal input.
        failure_persistence: None,
        ..ProptestConfig::with_cases(64)
    })]

    #[test]
    fn set_env_keeps_the_contract(w in weights(7), picks in prop::collection::vec(any::<u64>(), 1..=8)) {
        check_indices(&SetEnv::new(w), &picks)?;
    }

    #[test]
    fn slot_env_keeps_the_contract(w in weights(5), picks in prop::collection::vec(any::<u64>(), 1..=8)) {
        check_indices(&SlotEnv::new(w), &picks)?;
    }

    #[test]
    fn check_env_passes_on_random_instances(w in weights(5), seed in any::<u64>()) {
        let opts = CheckOptions { rollouts: 16, seed, ..Default::default() };
        let set = SetEnv::new(w.clone());
        let r = check_env_with(&set, &opts).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(r.exhaustive);
        prop_assert_eq!(r.states_checked as u64, 1u64 << w.len());
        let slots = SlotEnv::new(w.clone());
        let r = check_env_with(&slots, &opts).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(r.states_checked as u64, 3u64.pow(w.len() as u32));
    }

    #[test]
    fn check_env_names_a_listed_property_for_every_breakage(
        breakage in prop_oneof![
            Just(Breakage::WrongInverse),
            Just(Breakage::LooseBackwardMask),
            Just(Breakage::NanReward),
            Just(Breakage::ShortLengthBound),
            Just(Breakage::InitialHasParent),
            Just(Breakage::TightBackwardMask),
        ],
        seed in any::<u64>(),
    ) {
        let opts = CheckOptions { rollouts: 8, seed, ..Default::default() };
        match check_env_with(&BrokenEnv::new(breakage), &opts) {
            Ok(r) => prop_assert!(false, "{:?} passed: {}", breakage, r),
            Err(softgfn_core::CoreError::CheckFailed { property, .. }) => {
                prop_assert!(softgfn_core::check::PROPERTIES.contains(&property), "{}", property);
            }
            Err(e) => prop_assert!(false, "{:?}: not a CheckFailed error: {}", breakage, e),
        }
    }

    #[test]
    fn uniform_backward_flows_sample_the_target(w in weights(5), slots in any::<bool>()) {
        let env: Box<dyn Environment> = if slots {
            Box::new(SlotEnv::new(w))
        } else {
            Box::new(SetEnv::new(w))
        };
        let graph = StateGraph::build(env.as_ref(), 10_000).unwrap();
        let target = graph.target();
        let total: f64 = target.probs.iter().sum();
        prop_assert!((total - 1.0).abs() < 1e-9, "target sums to {}", total);
        let terminal_lr: Vec<f64> = (0..graph.num_states())
            .filter(|&s| graph.terminal[s])
            .map(|s| graph.log_reward[s])
            .collect();
        prop_assert!((target.log_z - logsumexp(&terminal_lr)).abs() < 1e-9);
        let flows = graph.flows(&UniformBackward);
        prop_assert!((flows.log_z - target.log_z).abs() < 1e-9);
        let p = graph.terminal_distribution(&flows.log_pf).unwrap();
        prop_assert!(l1(&p, &target.probs).unwrap() < 1e-9);
    }

    #[test]
    fn logsumexp_lies_between_max_and_max_plus_log_n(xs in prop::collection::vec(-700.0f64..700.0, 1..20)) {
        let m = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let l = logsumexp(&xs);
        prop_assert!(l >= m - 1e-12 && l <= m + (xs.len() as f64).ln() + 1e-9, "{} vs max {}", l, m);
        let mut acc = f64::NEG_INFINITY;
        for &x in &xs {
            acc = log_add_exp(acc, x);
        }
        prop_assert!((acc - l).abs() < 1e-9 * (1.0 + l.abs()));
    }

    #[test]
    fn log_add_exp_is_commutative(a in -1e3f64..1e3, b in -1e3f64..1e3) {
        prop_assert_eq!(log_add_exp(a, b), log_add_exp(b, a));
        prop_assert_eq!(log_add_exp(a, f64::NEG_INFINITY), a);
        prop_assert!(log_add_exp(a, b) >= a.max(b));
    }

    #[test]
    fn masked_log_softmax_is_a_distribution_on_the_valid_entries(
        row in prop::collection::vec((-50.0f32..50.0, any::<bool>()), 1..16),
        temperature in 0.05f64..20.0,
        u in 0.0f64..1.0,
    ) {
        let (logits, mask): (Vec<f32>, Vec<bool>) = row.into_iter().unzip();
        let mut out = vec![0.0; logits.len()];
        let norm = masked_log_softmax(&logits, &mask, temperature, &mut out);
        for (o, &v) in out.iter().zip(&mask) {
            if !v {
                prop_assert_eq!(*o, f64::NEG_INFINITY);
            } else {
                prop_assert!(o.is_finite() && *o <= 1e-12);
            }
        }
        let drawn = sample_from_log_probs(&out, u);
        let mut probs = vec![0.0; logits.len()];
        prop_assert_eq!(masked_softmax(&logits, &mask, temperature, &mut probs).to_bits(), norm.to_bits());
        let drawn_p = sample_from_probs(&probs, u);
        if mask.iter().any(|&v| v) {
            prop_assert!(norm.is_finite());
            let total: f64 = out.iter().map(|o| o.exp()).sum();
            prop_assert!((total - 1.0).abs() < 1e-9, "sums to {}", total);
            let total_p: f64 = probs.iter().sum();
            prop_assert!((total_p - 1.0).abs() < 1e-9, "probabilities sum to {}", total_p);
            let j = drawn.unwrap();
            prop_assert!(mask[j], "drew the masked entry {}", j);
            let j = drawn_p.unwrap();
            prop_assert!(mask[j], "drew the masked entry {} from the probabilities", j);
        } else {
            prop_assert_eq!(norm, f64::NEG_INFINITY);
            prop_assert_eq!(drawn, None);
            prop_assert_eq!(drawn_p, None);
            prop_assert!(probs.iter().all(|&p| p == 0.0));
        }
    }

    #[test]
    fn distances_keep_their_bounds(pq in (1usize..12).prop_flat_map(|n| (distribution(n), distribution(n)))) {
        let (p, q) = pq;
        let d = l1(&p, &q).unwrap();
        prop_assert!((0.0..=2.0 + 1e-12).contains(&d));
        prop_assert!((tv(&p, &q).unwrap() - d / 2.0).abs() < 1e-15);
        prop_assert!(l1(&p, &p).unwrap() == 0.0);
        prop_assert!(kl(&p, &q).unwrap() >= -1e-12);
        prop_assert!(kl(&p, &p).unwrap().abs() < 1e-12);
        let j = jsd(&p, &q).unwrap();
        prop_assert!((0.0..=std::f64::consts::LN_2 + 1e-12).contains(&j), "jsd {}", j);
        prop_assert!((jsd(&q, &p).unwrap() - j).abs() < 1e-12);
        let mut short = q.clone();
        short.push(0.0);
        prop_assert!(l1(&p, &short).is_err() && kl(&p, &short).is_err() && jsd(&p, &short).is_err());
    }
}

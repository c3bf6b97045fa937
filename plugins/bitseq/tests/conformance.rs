//! bitseq passes `check_env` (exhaustively on small instances, by rollouts on the paper's
//! instance), and its exact target and flow policy match a direct sum over all 2^n strings.

use softgfn_bitseq::{Bitseq, BitseqConfig};
use softgfn_core::exact::StateGraph;
use softgfn_core::math::logsumexp;
use softgfn_core::metrics::l1;
use softgfn_core::{
    CheckOptions, Environment, EnvironmentExt, UniformBackward, check_env, check_env_with,
};

/// A small instance: 4-bit blocks from a 4-bit alphabet, 3 modes.
fn small(n: usize, k: usize, seed: u64) -> Bitseq {
    Bitseq::new(BitseqConfig {
        n,
        k,
        num_modes: 3,
        block_len: 4,
        alphabet: ["0000", "1111", "1100", "0011"].map(String::from).to_vec(),
        mode_seed: seed,
        mode_threshold: 2,
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn check_env_passes_exhaustively_on_small_instances() {
    for (n, k) in [(12, 3), (12, 4), (8, 2)] {
        let env = small(n, k, 0);
        let states = ((1u64 << k) + 1).pow((n / k) as u32);
        assert_eq!(env.as_enumerable().unwrap().num_states(), states);
        let r = check_env(&env).unwrap();
        assert!(r.exhaustive, "n = {n}, k = {k}");
        assert_eq!(r.states_checked as u64, states);
    }
}

#[test]
fn check_env_passes_by_rollouts_on_the_paper_instance() {
    let env = Bitseq::new(BitseqConfig::default()).unwrap();
    assert!(env.as_enumerable().is_none(), "257^15 states");
    let r = check_env_with(
        &env,
        &CheckOptions {
            rollouts: 16,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(!r.exhaustive);
    // 16 rollouts of 15 distinct steps each, plus s0.
    assert_eq!(r.states_checked, 16 * 15 + 1);
}

#[test]
fn shapes_of_the_paper_instance() {
    let env = Bitseq::new(BitseqConfig::default()).unwrap();
    let spec = env.spec();
    assert_eq!(spec.state_width, 16);
    assert_eq!(spec.num_actions, 16 * 256);
    assert_eq!(spec.num_backward_actions, 16);
    assert_eq!(spec.feature_dim, 16 * 258);
    assert_eq!(spec.max_trajectory_length, 15);
    assert_eq!(spec.exit_action, None);
    let s0 = env.initial_row();
    assert_eq!(s0[0], 257);
    assert!(s0[1..].iter().all(|&t| t == 256));
    let m = env.forward_mask_of(&s0).unwrap();
    assert_eq!(m.iter().filter(|&&v| v).count(), 15 * 256);
    assert!(!m[..256].iter().any(|&v| v), "position 0 (BOS) is masked");
}

#[test]
fn exact_target_matches_a_direct_sum_over_all_strings() {
    for (n, k) in [(8, 2), (12, 3), (12, 4)] {
        let env = small(n, k, 7);
        let graph = StateGraph::build(&env, 1 << 20).unwrap();
        assert_eq!(graph.num_terminal, 1 << n);
        assert_eq!(graph.longest_trajectory, n / k);
        // Every trajectory has exactly n/k steps: the terminal states are the full strings.
        for s in 0..graph.num_states() {
            let full = graph.state(s)[1..].iter().all(|&t| t != env.empty_token());
            assert_eq!(graph.terminal[s], full);
        }

        // Direct: log R of each of the 2^n strings from its bits and the modes' bits.
        let beta = env.config().beta;
        let modes: Vec<Vec<u8>> = (0..env.modes().len())
            .map(|i| env.modes().bits(i))
            .collect();
        let mut direct = vec![0.0; 1 << n];
        for (x, d) in direct.iter_mut().enumerate() {
            let bits: Vec<u8> = (0..n).map(|i| ((x >> (n - 1 - i)) & 1) as u8).collect();
            let dist = modes
                .iter()
                .map(|m| m.iter().zip(&bits).filter(|(a, b)| a != b).count())
                .min()
                .unwrap();
            *d = -beta * dist as f64;
        }
        let log_z = logsumexp(&direct);
        let target = graph.target();
        assert!((target.log_z - log_z).abs() < 1e-10, "n = {n}, k = {k}");

        // The flow policy of the uniform backward policy samples R/Z.
        let flows = graph.flows(&UniformBackward);
        assert!((flows.log_z - log_z).abs() < 1e-10);
        let p = graph.terminal_distribution(&flows.log_pf).unwrap();
        assert!(l1(&p, &target.probs).unwrap() < 1e-9);

        // Target probabilities line up with the direct rewards string by string.
        let en = env.as_enumerable().unwrap();
        for (x, &lr) in direct.iter().enumerate() {
            let bits: Vec<u8> = (0..n).map(|i| ((x >> (n - 1 - i)) & 1) as u8).collect();
            let row = env.state_of_bits(&bits).unwrap();
            let mut idx = [0u64];
            en.state_index(&row, &mut idx).unwrap();
            let want = (lr - log_z).exp();
            assert!((target.probs[idx[0] as usize] - want).abs() < 1e-12);
            assert!((p[idx[0] as usize] - want).abs() < 1e-12);
        }
    }
}

#[test]
fn the_uniform_backward_policy_is_one_over_filled() {
    let env = small(12, 3, 0);
    let s = env.state_from_bit_string("101---011---").unwrap();
    let bm = env.backward_mask_of(&s).unwrap();
    assert_eq!(bm, [false, true, false, true, false]);
    let mut lp = [0.0; 5];
    softgfn_core::BackwardPolicy::log_probs(&UniformBackward, &bm, &mut lp);
    assert!((lp[1] + 2f64.ln()).abs() < 1e-15);
    assert!((lp[3] + 2f64.ln()).abs() < 1e-15);
}

#[test]
fn registered_in_the_static_registry() {
    let params = serde_json::json!({
        "n": 12, "k": 4, "block_len": 4, "alphabet": ["0000", "1111"], "num_modes": 2,
    });
    let env = softgfn_core::build_env("bitseq", &params).unwrap();
    assert_eq!(env.spec().num_actions, 4 * 16);
    // The resolved parameters record every field, the mode seed included, and rebuild the same
    // instance.
    let resolved = env.params();
    assert_eq!(resolved["mode_seed"], 0);
    assert_eq!(resolved["mode_threshold"], 30);
    let again = Bitseq::from_params(&resolved).unwrap();
    let first = Bitseq::from_params(&params).unwrap();
    assert_eq!(again.modes(), first.modes());
    let info = softgfn_core::find_env("bitseq").unwrap();
    assert_eq!(
        info.default_params(),
        serde_json::to_value(BitseqConfig::default()).unwrap()
    );
    let Err(err) = softgfn_core::build_env("bitseq", &serde_json::json!({"bits": 12})) else {
        panic!("an unknown key must not build");
    };
    assert!(err.to_string().contains("unknown field `bits`"), "{err}");
}

//! The environment, the proxy input, the proxy and the fingerprint against the paper's code:
//! 2,000 random trajectories and all 23,310 two-block molecules (`tests/data/`).

mod common;

use common::{int_rows, ints, read_jsonl, record, step};
use softgfn_core::{Environment, EnvironmentExt, StateValue, UniformBackward, soft::soft_reward};
use softgfn_sehfrag::{Sehfrag, SehfragConfig, fingerprint, flat_action};

fn env(stale: bool) -> Sehfrag {
    Sehfrag::new(SehfragConfig {
        stale_parent_count: stale,
        ..SehfragConfig::default()
    })
    .unwrap()
}

/// Checks atoms, edges, score and log-reward of final states against reference lines.
fn check_molecules(env: &Sehfrag, rows: &[StateValue], refs: &[serde_json::Value]) {
    let w = env.spec().state_width;
    let mut scores = vec![0.0; refs.len()];
    env.proxy_scores(rows, &mut scores).unwrap();
    let mut log_r = vec![0.0; refs.len()];
    env.log_reward(rows, &mut log_r).unwrap();
    let mut worst = (0.0f64, 0.0f64);
    for (i, r) in refs.iter().enumerate() {
        let row = &rows[i * w..(i + 1) * w];
        let mol = env.molecule(row).unwrap();
        let atoms: Vec<Vec<i64>> = mol.atoms.iter().map(|a| a.compact().to_vec()).collect();
        assert_eq!(atoms, int_rows(&r["atoms"]), "atoms of reference {i}");
        let edges: Vec<Vec<i64>> = mol
            .edges()
            .iter()
            .map(|&(u, v, t)| vec![i64::from(u), i64::from(v), i64::from(t)])
            .collect();
        assert_eq!(edges, int_rows(&r["edges"]), "edges of reference {i}");
        let ds = (scores[i] - r["proxy_score"].as_f64().unwrap()).abs();
        let dl = (log_r[i] - r["log_reward"].as_f64().unwrap()).abs();
        worst = (worst.0.max(ds), worst.1.max(dl));
        assert!(
            ds < 1e-9 && dl < 1e-9,
            "reference {i}: score {} vs {r}",
            scores[i]
        );
    }
    eprintln!(
        "{} molecules: max |score - proxy_score| = {:.2e}, max |log R - log_reward| = {:.2e}",
        refs.len(),
        worst.0,
        worst.1
    );
}

#[test]
fn random_trajectories_replay_with_the_paper_parents_rewards_and_fingerprints() {
    let refs = read_jsonl("ref_random2000.jsonl.gz");
    assert_eq!(refs.len(), 2000);
    let (textbook, paper) = (env(false), env(true));
    let w = textbook.spec().state_width;
    let mut finals = Vec::with_capacity(refs.len() * w);
    let mut stale_differs = 0;
    for r in &refs {
        let id = r["id"].as_i64().unwrap();
        let steps = r["steps"].as_array().unwrap();
        let log_reward = r["log_reward"].as_f64().unwrap();
        for (e, want) in [
            (&textbook, "mdp_reward_textbook"),
            (&paper, "mdp_reward_paper"),
        ] {
            let want: Vec<f64> = r[want]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let mut s = e.initial_row();
            for (t, st) in steps.iter().enumerate() {
                let a = st["action"].as_u64().unwrap() as u32;
                let m = e.forward_mask_of(&s).unwrap();
                let stems = if t == 0 {
                    1
                } else {
                    e.parse(&s).unwrap().stems(e.table()).len()
                };
                assert_eq!(
                    st["n_actions"].as_u64().unwrap() as usize,
                    1 + stems * 105,
                    "id {id} step {t}"
                );
                assert!(m[a as usize], "id {id} step {t}: action {a} invalid");
                let got = if a == 0 {
                    e.log_reward_of(&s).unwrap()
                } else {
                    let (next, b) = step(e, &s, a);
                    assert_eq!(
                        e.n_parents(&next).unwrap() as u64,
                        st["n_parents"].as_u64().unwrap(),
                        "id {id} step {t}"
                    );
                    let done = e.is_terminal_state(&next).unwrap()
                        && !e.forward_mask_of(&next).unwrap()[0];
                    let lr = if done {
                        e.log_reward_of(&next).unwrap()
                    } else {
                        0.0
                    };
                    let bm = e.backward_mask_of(&next).unwrap();
                    s = next;
                    soft_reward(&UniformBackward, &bm, b, false, done, lr)
                };
                assert!(
                    (got - want[t]).abs() < 1e-9,
                    "id {id} step {t}: soft reward {got} vs {}",
                    want[t]
                );
            }
            assert_eq!(record(e, &s), r["final_state"], "final state of id {id}");
        }
        if r["mdp_reward_paper"] != r["mdp_reward_textbook"] {
            stale_differs += 1;
        }
        let mut s = textbook.initial_row();
        for st in steps.iter().filter(|st| st["action"] != 0) {
            s = step(&textbook, &s, st["action"].as_u64().unwrap() as u32).0;
        }
        assert!((textbook.log_reward_of(&s).unwrap() - log_reward).abs() < 1e-9);
        let bits: Vec<i64> = fingerprint(&textbook.molecule(&s).unwrap())
            .on_bits()
            .into_iter()
            .map(|b| b as i64)
            .collect();
        assert_eq!(bits, ints(&r["rdkfp_on_bits"]), "fingerprint of id {id}");
        finals.extend_from_slice(&s);
    }
    assert_eq!(
        stale_differs, 729,
        "trajectories where quirk Q1 changes the rewards"
    );
    check_molecules(&textbook, &finals, &refs);
}

#[test]
fn all_two_block_molecules_match_the_paper() {
    let refs = read_jsonl("ref_pairs.jsonl.gz");
    assert_eq!(refs.len(), 23_310);
    let e = env(false);
    let w = e.spec().state_width;
    let mut finals = Vec::with_capacity(refs.len() * w);
    for r in &refs {
        let (b1, stem, b2) = (
            r["b1"].as_u64().unwrap() as usize,
            r["stem"].as_u64().unwrap() as usize,
            r["b2"].as_u64().unwrap() as usize,
        );
        let (s1, _) = step(&e, &e.initial_row(), flat_action(0, b1));
        let (s2, _) = step(&e, &s1, flat_action(stem, b2));
        assert_eq!(record(&e, &s2), r["final_state"], "pair {b1} {stem} {b2}");
        finals.extend_from_slice(&s2);
    }
    check_molecules(&e, &finals, &refs);
}

//! The paper's molecule environment, `sehfrag`: build a molecule from blocks with the paper's
//! flat actions, read its parents (the leaf blocks) and the paper's uniform `P_B`, score it with
//! the sEH proxy, and compare two molecules by the fingerprint of the mode metric.
//!
//! Run: `cargo run --release -p softgfn-examples --example 06_sehfrag_molecules`

use softgfn_core::{BackwardPolicy, EnvironmentExt, UniformBackward, check_env_with};
use softgfn_sehfrag::{Sehfrag, SehfragConfig, fingerprint, flat_action};

fn main() -> anyhow::Result<()> {
    let env = Sehfrag::new(SehfragConfig::default())?;

    // ANCHOR: build
    // Flat actions as the paper numbers them: 0 is stop, 1 + stem * 105 + block adds `block` at
    // the `stem`-th open stem. Benzene (block 0), a second benzene on its first stem, then
    // methanol attached through its oxygen (block 2) on stem 5, the second ring.
    let mut s = env.initial_row();
    for a in [flat_action(0, 0), flat_action(0, 0), flat_action(5, 2)] {
        let (next, back) = env.step_one(&s, a)?;
        // `back` is the position of the new block: the backward action that removes it.
        println!(
            "action {a:>4} -> row {:?}, backward action {back}",
            &next[..10]
        );
        s = next;
    }
    // ANCHOR_END: build

    // ANCHOR: parents
    // The parents are the leaf blocks (here the first benzene and the methanol): the paper's
    // P_B is uniform over them, which is the uniform policy over the backward mask.
    let mask = env.backward_mask_of(&s)?;
    println!("leaf blocks {:?}, n_parents {}", mask, env.n_parents(&s)?);
    let log_pb = UniformBackward.log_prob(&mask, 2);
    assert!((log_pb + (env.n_parents(&s)? as f64).ln()).abs() < 1e-15);
    // Removing the first block re-indexes the others; the forward action that re-adds it comes
    // back through the translation table, and re-adding gives the same molecule in another order.
    let (parent, a) = env.backward_step_one(&s, 0)?;
    let (again, _) = env.step_one(&parent, a)?;
    assert_ne!(again, s);
    assert_eq!(env.canonical_key_of(&again)?, env.canonical_key_of(&s)?);
    // ANCHOR_END: parents

    // ANCHOR: score
    let score = env.proxy_score(&s)?;
    let log_r = env.log_reward_of(&s)?;
    println!("proxy score {score:.4}, log R = 10 ln(max(s, 0.1) / 8) = {log_r:.4}");
    let other = env
        .step_one(
            &env.step_one(&env.initial_row(), flat_action(0, 4))?.0,
            flat_action(0, 1),
        )?
        .0;
    let (f1, f2) = (
        fingerprint(&env.molecule(&s)?),
        fingerprint(&env.molecule(&other)?),
    );
    println!(
        "fingerprint bits {} and {}, Tanimoto {:.3}",
        f1.count(),
        f2.count(),
        f1.tanimoto(&f2)
    );
    // ANCHOR_END: score

    let report = check_env_with(
        &env,
        &softgfn_core::CheckOptions {
            rollouts: 4,
            ..Default::default()
        },
    )?;
    println!("{report}");
    Ok(())
}

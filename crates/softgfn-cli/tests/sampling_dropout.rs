//! `algo.transformer.sampling_dropout`: sampling training trajectories with train-mode dropout.
//! The same seed gives the same numbers; the option changes the sampled trajectories when
//! dropout > 0 and changes nothing (bitwise) when dropout = 0; evaluation-mode sampling
//! (`Sampler::sample`) ignores it. Checked for TB and Munchausen DQN on a small bitseq with a
//! small transformer.

use softgfn_core::Trajectories;
use softgfn_core::rng::{Stream, stream};
use softgfn_train::{Sampler, Trainer, apply_override, resolve};

use softgfn_bitseq as _;
use softgfn_gflownet as _;
use softgfn_softrl as _;

const BASE: &[&str] = &[
    "env.name=\"bitseq\"",
    "env.n=12",
    "env.k=4",
    "env.num_modes=4",
    "env.block_len=4",
    "env.alphabet=[\"0000\", \"1111\", \"0011\"]",
    "env.mode_threshold=2",
    "seed=7",
    "iterations=6",
    "eval.interval=3",
    "eval.exact=false",
    "algo.network=\"transformer\"",
    "algo.transformer.layers=2",
    "algo.transformer.d_model=16",
    "algo.transformer.attention_heads=2",
    "algo.transformer.feedforward=32",
];

fn trainer(algo: &str, dropout: f64, sampling_dropout: bool) -> Trainer {
    let mut table = toml::Table::new();
    apply_override(&mut table, &format!("algo.name=\"{algo}\"")).unwrap();
    for kv in BASE {
        apply_override(&mut table, kv).unwrap();
    }
    apply_override(&mut table, &format!("algo.transformer.dropout={dropout}")).unwrap();
    apply_override(
        &mut table,
        &format!("algo.transformer.sampling_dropout={sampling_dropout}"),
    )
    .unwrap();
    if algo.contains("dqn") {
        apply_override(&mut table, "algo.learning_starts=0").unwrap();
        apply_override(&mut table, "algo.batch_size=16").unwrap();
    }
    let (config, env) = resolve(table).unwrap();
    Trainer::new(config, env).unwrap()
}

/// Losses of six training iterations.
fn losses(algo: &str, dropout: f64, sampling_dropout: bool) -> Vec<u64> {
    let mut t = trainer(algo, dropout, sampling_dropout);
    (0..6)
        .map(|_| t.train_iteration().unwrap().to_bits())
        .collect()
}

/// The actions of 32 trajectories sampled by a fresh trainer's policy, in training mode
/// (`sample_training`) or evaluation mode (`sample`), from one seeded stream.
fn sampled_actions(algo: &str, dropout: f64, sampling_dropout: bool, training: bool) -> Vec<u32> {
    let mut t = trainer(algo, dropout, sampling_dropout);
    let (env, policy) = t.env_and_algorithm_mut();
    let mut sampler = Sampler::new();
    let mut out = Trajectories::default();
    let mut rng = stream(11, Stream::Sampling);
    let exploration = Default::default();
    if training {
        sampler
            .sample_training(env, policy, 32, exploration, &mut rng, &mut out)
            .unwrap();
    } else {
        sampler
            .sample(env, policy, 32, exploration, &mut rng, &mut out)
            .unwrap();
    }
    out.actions
}

fn check(algo: &str) {
    // Same seed, same numbers (with the option on and dropout active).
    assert_eq!(losses(algo, 0.3, true), losses(algo, 0.3, true), "{algo}");
    // Dropout 0: the option changes nothing.
    assert_eq!(
        sampled_actions(algo, 0.0, true, true),
        sampled_actions(algo, 0.0, false, true),
        "{algo}"
    );
    assert_eq!(losses(algo, 0.0, true), losses(algo, 0.0, false), "{algo}");
    // Dropout > 0: training trajectories change; evaluation-mode sampling does not.
    assert_ne!(
        sampled_actions(algo, 0.3, true, true),
        sampled_actions(algo, 0.3, false, true),
        "{algo}: sampling dropout did not change the trajectories"
    );
    assert_eq!(
        sampled_actions(algo, 0.3, true, false),
        sampled_actions(algo, 0.3, false, false),
        "{algo}: evaluation-mode sampling must ignore sampling_dropout"
    );
    assert_ne!(losses(algo, 0.3, true), losses(algo, 0.3, false), "{algo}");
}

#[test]
fn tb_sampling_dropout() {
    check("tb");
}

#[test]
fn munchausen_dqn_sampling_dropout() {
    check("munchausen_dqn");
}

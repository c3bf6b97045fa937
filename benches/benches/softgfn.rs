//! Micro-benchmarks: environment stepping, rollouts, losses (forward + backward), replay, the
//! exact-distribution DP, and training iterations (MLP on hypergrid, transformer on bitseq). Run with `cargo bench -p softgfn-benches`.
#![expect(
    missing_docs,
    reason = "criterion_group! generates an undocumented function"
)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use softgfn_core::exact::StateGraph;
use softgfn_core::rng::{Stream, stream};
use softgfn_core::{Environment, Trajectories, UniformBackward};
use softgfn_gflownet::{DetailedBalance, SubTbWeighting, SubTrajectoryBalance, TrajectoryBalance};
use softgfn_hypergrid::{Hypergrid, HypergridConfig};
use softgfn_train::replay::{
    PerConfig, ReplayBuffer, ReplayShape, SampledBatch, Sampling, TransitionRecord,
};
use softgfn_train::{
    ChainBatch, ChainGrads, Exploration, ForwardPolicy, Objective, Sampler, Trainer,
    apply_override, resolve,
};

use softgfn_bitseq as _;
use softgfn_softrl as _;

fn grid(dim: usize, side: usize) -> Hypergrid {
    Hypergrid::new(HypergridConfig {
        dim,
        side,
        ..Default::default()
    })
    .unwrap()
}

/// One forward step of a batch: masks, encode and step, as a sampler does it.
fn env_step(c: &mut Criterion) {
    let env = grid(4, 20);
    let mut g = c.benchmark_group("hypergrid_20x4_step");
    for batch in [1usize, 16, 256] {
        let states: Vec<i32> = (0..batch * 4).map(|i| (i % 7) as i32).collect();
        let actions: Vec<u32> = (0..batch).map(|i| (i % 4) as u32).collect();
        let mut masks = vec![false; batch * 5];
        let mut feats = vec![0f32; batch * 80];
        let mut next = vec![0i32; batch * 4];
        let mut back = vec![0u32; batch];
        g.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, _| {
            b.iter(|| {
                env.forward_masks(black_box(&states), &mut masks).unwrap();
                env.encode(&states, &mut feats).unwrap();
                env.step(&states, &actions, &mut next, &mut back).unwrap();
                black_box(&next);
            })
        });
    }
    g.finish();
}

/// Uniform logits: isolates the sampler and environment cost from the network.
struct Uniform(usize);

impl ForwardPolicy for Uniform {
    fn policy_logits(
        &mut self,
        _f: &[f32],
        rows: usize,
        out: &mut [f32],
    ) -> softgfn_train::Result<()> {
        out[..rows * self.0].fill(0.0);
        Ok(())
    }
}

fn rollout(c: &mut Criterion) {
    let env = grid(4, 20);
    let mut sampler = Sampler::new();
    let mut t = Trajectories::new(env.spec());
    let mut rng = stream(1, Stream::Sampling);
    let mut policy = Uniform(5);
    c.bench_function("rollout_16_trajectories_uniform_policy_20x4", |b| {
        b.iter(|| {
            sampler
                .sample(
                    &env,
                    &mut policy,
                    16,
                    Exploration::default(),
                    &mut rng,
                    &mut t,
                )
                .unwrap();
            black_box(t.num_states());
        })
    });
}

/// Edge offsets, log P_F, log P_B, log F and log R of a batch in chain form.
type Chain = (Vec<usize>, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>);

/// A synthetic batch of 16 trajectories of length 40 in chain form.
fn chain() -> Chain {
    let (n, m) = (16, 40);
    let offsets: Vec<usize> = (0..=n).map(|i| i * m).collect();
    let e = n * m;
    let lpf: Vec<f64> = (0..e).map(|i| -1.0 - (i % 5) as f64 * 0.1).collect();
    let lpb: Vec<f64> = (0..e).map(|i| -0.5 - (i % 3) as f64 * 0.1).collect();
    let lfl: Vec<f64> = (0..e).map(|i| 3.0 - (i % m) as f64 * 0.05).collect();
    let lr: Vec<f64> = (0..n).map(|i| (i as f64) * 0.1 - 1.0).collect();
    (offsets, lpf, lpb, lfl, lr)
}

fn losses(c: &mut Criterion) {
    let (offsets, lpf, lpb, lfl, lr) = chain();
    let batch = ChainBatch {
        edge_offsets: &offsets,
        log_pf: &lpf,
        log_pb: &lpb,
        log_flow: &lfl,
        log_reward: &lr,
        log_z: 2.0,
        log_inflow: &[],
        log_outflow: &[],
    };
    let objs: Vec<(&str, Box<dyn Objective>)> = vec![
        ("tb", Box::new(TrajectoryBalance)),
        ("db", Box::new(DetailedBalance)),
        (
            "subtb",
            Box::new(SubTrajectoryBalance {
                lambda: 0.9,
                weighting: SubTbWeighting::GeometricWithin,
            }),
        ),
    ];
    let mut g = c.benchmark_group("objective_loss_and_grad_16x40");
    let mut grads = ChainGrads::default();
    for (name, obj) in &objs {
        g.bench_function(*name, |b| {
            b.iter(|| black_box(obj.loss_and_grad(&batch, &mut grads)))
        });
    }
    g.finish();
}

/// One full training iteration (sampling + network forward/backward + Adam) per algorithm.
fn train_iteration(c: &mut Criterion) {
    let mut g = c.benchmark_group("train_iteration_20x4");
    g.sample_size(20);
    for algo in ["tb", "db", "subtb", "soft_dqn", "munchausen_dqn"] {
        let mut table = toml::Table::new();
        for kv in [
            "env.dim=4",
            "env.side=20",
            "iterations=1000000",
            "eval.exact=false",
        ] {
            apply_override(&mut table, kv).unwrap();
        }
        apply_override(&mut table, &format!("algo.name={algo}")).unwrap();
        if algo.contains("dqn") {
            apply_override(&mut table, "algo.learning_starts=0").unwrap();
        }
        let (config, env) = resolve(table).unwrap();
        let mut trainer = Trainer::new(config, env).unwrap();
        for _ in 0..20 {
            trainer.train_iteration().unwrap();
        }
        g.bench_function(algo, |b| {
            b.iter(|| black_box(trainer.train_iteration().unwrap()))
        });
    }
    g.finish();
}

/// A training iteration with the paper's transformer on bit sequences (n = 120, k = 8: 16
/// tokens, 4,096 actions): TB (16 on-policy trajectories, one update on their 240 states) and
/// Munchausen DQN (the same sampling plus one update on 256 replayed transitions).
fn train_iteration_transformer(c: &mut Criterion) {
    let mut g = c.benchmark_group("train_iteration_bitseq_k8_transformer");
    g.sample_size(10);
    for algo in ["tb", "munchausen_dqn"] {
        let mut table = toml::Table::new();
        for kv in [
            "env.name=\"bitseq\"",
            "iterations=1000000",
            "eval.exact=false",
            "algo.network=\"transformer\"",
        ] {
            apply_override(&mut table, kv).unwrap();
        }
        apply_override(&mut table, &format!("algo.name={algo}")).unwrap();
        if algo.contains("dqn") {
            apply_override(&mut table, "algo.learning_starts=0").unwrap();
        }
        let (config, env) = resolve(table).unwrap();
        let mut trainer = Trainer::new(config, env).unwrap();
        for _ in 0..3 {
            trainer.train_iteration().unwrap();
        }
        g.bench_function(algo, |b| {
            b.iter(|| black_box(trainer.train_iteration().unwrap()))
        });
    }
    g.finish();
}

fn replay(c: &mut Criterion) {
    let shape = ReplayShape {
        state_width: 4,
        num_actions: 5,
        num_backward_actions: 4,
    };
    let per = PerConfig {
        alpha: 0.5,
        beta: 0.0,
        beta_final: 1.0,
        beta_horizon: 62_500,
        eps: 1e-8,
    };
    let mut buf = ReplayBuffer::new(shape, 100_000, Sampling::Prioritized(per)).unwrap();
    let s = [1, 2, 3, 4];
    let n = [1, 2, 3, 5];
    for i in 0..100_000u32 {
        let t = TransitionRecord {
            state: &s,
            next_state: &n,
            action: 3,
            backward_action: 3,
            terminal_log_reward: 0.0,
            done: false,
            exit: false,
        };
        buf.push(&t, Some(f64::from(i % 97) + 0.5)).unwrap();
    }
    let mut rng = stream(2, Stream::Algorithm);
    let mut out = SampledBatch::default();
    let prios: Vec<f64> = (0..256).map(|i| f64::from(i) * 0.01 + 0.1).collect();
    c.bench_function("per_sample_256_and_update_of_100k", |b| {
        b.iter(|| {
            buf.sample(256, 1000, &mut rng, &mut out).unwrap();
            let idx = out.indices.clone();
            buf.update_priorities(&idx, &prios).unwrap();
        })
    });
}

fn exact(c: &mut Criterion) {
    let mut g = c.benchmark_group("exact");
    g.sample_size(10);
    let env = grid(4, 20);
    g.bench_function("state_graph_build_20x4", |b| {
        b.iter(|| black_box(StateGraph::build(&env, 1 << 22).unwrap()))
    });
    let graph = StateGraph::build(&env, 1 << 22).unwrap();
    g.bench_function("flow_recursion_20x4", |b| {
        b.iter(|| black_box(graph.flows(&UniformBackward)))
    });
    let flows = graph.flows(&UniformBackward);
    g.bench_function("policy_terminal_distribution_20x4", |b| {
        b.iter(|| black_box(graph.terminal_distribution(&flows.log_pf).unwrap()))
    });
    g.finish();
}

criterion_group!(
    benches,
    env_step,
    rollout,
    losses,
    replay,
    exact,
    train_iteration,
    train_iteration_transformer
);
criterion_main!(benches);

//! SoftDQN is a GFlowNet (Tiapkin et al., AISTATS 2024): on the MDP with rewards
//! `log P_B(s|s')` on intermediate edges and `log R(x)` on the exit, soft RL with entropy
//! coefficient 1 samples `x ∝ R(x)` and its optimal value at `s0` is `log Z`.
//!
//! The example
//! 1. trains SoftDQN on a small hypergrid and prints `V(s0)` against `log Z` and the exact L1
//!    distance between its terminal distribution and `R/Z`;
//! 2. runs exact soft value iteration (`StateGraph::soft_values`) with a uniform `P_B` and shows
//!    that it equals the flow recursion (`StateGraph::flows`): `V* = log F`, `pi* = P_F`;
//! 3. drops the `log P_B` rewards (the "tree" backward policy of earlier work) and shows that the
//!    soft-optimal policy then samples `x ∝ n(x) R(x)`, with `n(x)` the number of paths to `x`.
//!
//! Run: `cargo run --release -p softgfn-examples --example 03_soft_dqn_equals_gflownet -- [iterations]`

use softgfn_core::exact::StateGraph;
use softgfn_core::metrics::l1;
use softgfn_core::{TreeBackward, UniformBackward};
use softgfn_hypergrid::{Hypergrid, HypergridConfig};
use softgfn_train::{EvalRecord, Trainer, apply_override, resolve};

// Linking softgfn-softrl registers the soft-RL agents (`soft_dqn`, `munchausen_dqn`, `sac`);
// the hypergrid registers itself because it is used below.
use softgfn_softrl as _;

fn main() -> anyhow::Result<()> {
    let iterations: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1500);

    // ANCHOR: train
    let mut table = toml::Table::new();
    for kv in [
        "env.name=hypergrid",
        "env.dim=2",
        "env.side=8",
        "algo.name=soft_dqn",
        "eval.interval=250",
        "seed=1",
    ] {
        apply_override(&mut table, kv)?;
    }
    apply_override(&mut table, &format!("iterations={iterations}"))?;
    let (config, env) = resolve(table)?;
    let mut trainer = Trainer::new(config, env)?;
    let mut records: Vec<EvalRecord> = Vec::new();
    trainer.run(&mut records, &mut ())?;
    for r in &records {
        println!(
            "iteration {:>5}  V(s0) {:>7.3}  log Z {:.3}  exact_l1 {:.4}",
            r.iteration,
            r.log_z_learned.unwrap_or(f64::NAN),
            r.log_z_true.unwrap_or(f64::NAN),
            r.exact_l1.unwrap_or(f64::NAN),
        );
    }
    // ANCHOR_END: train

    // ANCHOR: exact
    let env = Hypergrid::new(HypergridConfig {
        dim: 2,
        side: 8,
        ..Default::default()
    })?;
    let graph = StateGraph::build(&env, 1_000_000)?;
    let target = graph.target();
    let flows = graph.flows(&UniformBackward);
    let soft = graph.soft_values(&UniformBackward, 1.0);
    let max_diff = |a: &[f64], b: &[f64]| {
        a.iter()
            .zip(b)
            .filter(|(x, y)| x.is_finite() || y.is_finite())
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
    };
    println!("\nexact soft value iteration, uniform P_B, lambda = 1:");
    println!(
        "  V*(s0) = {:.6}, log Z = {:.6}",
        soft.v0(&graph),
        target.log_z
    );
    println!(
        "  max |V*(s) - log F(s)|            = {:.2e}",
        max_diff(&soft.v, &flows.log_flow)
    );
    println!(
        "  max |log pi*(a|s) - log P_F(a|s)| = {:.2e}",
        max_diff(&soft.log_policy, &flows.log_pf)
    );
    let p_soft = graph.terminal_distribution(&soft.log_policy)?;
    println!(
        "  L1(pi*, R/Z)                      = {:.2e}",
        l1(&p_soft, &target.probs)?
    );
    // ANCHOR_END: exact

    // ANCHOR: tree
    // Drop the log P_B rewards: log P_B = 0 on every edge, as if the DAG were a tree.
    let tree = graph.soft_values(&TreeBackward, 1.0);
    let p_tree = graph.terminal_distribution(&tree.log_policy)?;
    // n(x): the number of complete paths from s0 to x, by dynamic programming.
    let mut paths = vec![0.0f64; graph.num_states()];
    paths[graph.initial as usize] = 1.0;
    for &s in &graph.topo_order {
        let s = s as usize;
        for e in graph.child_offsets[s]..graph.child_offsets[s + 1] {
            paths[graph.child_index[e] as usize] += paths[s];
        }
    }
    let weighted: Vec<f64> = (0..graph.num_states())
        .map(|s| paths[s] * target.probs[s])
        .collect();
    let total: f64 = weighted.iter().sum();
    let biased: Vec<f64> = weighted.iter().map(|w| w / total).collect();
    println!("\nthe tree view (log P_B dropped):");
    println!(
        "  V*(s0) = {:.4} = log sum_x n(x) R(x) = {:.4}, not log Z = {:.4}",
        tree.v0(&graph),
        target.log_z + total.ln(),
        target.log_z
    );
    println!(
        "  L1(pi*, R/Z)              = {:.4}",
        l1(&p_tree, &target.probs)?
    );
    println!(
        "  L1(pi*, n(x) R(x) / sum)  = {:.2e}",
        l1(&p_tree, &biased)?
    );
    // ANCHOR_END: tree
    Ok(())
}

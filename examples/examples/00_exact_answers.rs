//! Exact answers on a hypergrid: check the environment, enumerate it, and compare log Z with
//! the flow recursion's log F(s0).
//!
//! Run: `cargo run --release -p softgfn-examples --example 00_exact_answers -- [dim] [side]`

use softgfn_core::exact::StateGraph;
use softgfn_core::metrics::l1;
use softgfn_core::{UniformBackward, check_env};
use softgfn_hypergrid::{Hypergrid, HypergridConfig};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dim = args.next().map(|a| a.parse()).transpose()?.unwrap_or(2);
    let side = args.next().map(|a| a.parse()).transpose()?.unwrap_or(8);
    // ANCHOR: exact
    let env = Hypergrid::new(HypergridConfig {
        dim,
        side,
        ..Default::default()
    })?;
    println!("{}", check_env(&env)?);
    let graph = StateGraph::build(&env, 5_000_000)?;
    let target = graph.target();
    let flows = graph.flows(&UniformBackward);
    let policy = graph.terminal_distribution(&flows.log_pf)?;
    println!("log Z (sum of rewards)       = {:.6}", target.log_z);
    println!("log F(s0) (flow recursion)   = {:.6}", flows.log_z);
    println!(
        "L1(flow policy, R/Z)         = {:.3e}",
        l1(&policy, &target.probs)?
    );
    // ANCHOR_END: exact
    Ok(())
}

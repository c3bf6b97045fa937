//! Flow matching: the objective against hand-computed values and finite differences, and zero
//! at the edge flows of an exact flow network aggregated over all parents of a small hypergrid.

use softgfn_core::UniformBackward;
use softgfn_core::exact::StateGraph;
use softgfn_core::math::logsumexp;
use softgfn_gflownet::FlowMatching;
use softgfn_hypergrid::{Hypergrid, HypergridConfig};
use softgfn_train::{ChainBatch, ChainGrads, Objective};

const FM: FlowMatching = FlowMatching {
    leaf_coef: 10.0,
    log_reg_c: 0.5,
};

/// The per-edge inputs FM reads; the other chain fields are unused.
fn chain<'a>(
    offsets: &'a [usize],
    log_reward: &'a [f64],
    log_inflow: &'a [f64],
    log_outflow: &'a [f64],
) -> ChainBatch<'a> {
    ChainBatch {
        edge_offsets: offsets,
        log_pf: &[],
        log_pb: &[],
        log_flow: &[],
        log_reward,
        log_z: 0.0,
        log_inflow,
        log_outflow,
    }
}

/// Trajectory A has three edges: a balanced target (in 5, out 5), a target with inflow 1 and
/// outflow 4, and a terminal target with inflow 6 and reward 2. Trajectory B has one edge, a
/// terminal target with inflow 3 and reward 3 (balanced).
fn tiny() -> (Vec<f64>, Vec<f64>) {
    let ln = f64::ln;
    (
        vec![ln(5.0), ln(1.0), ln(6.0), ln(3.0)],
        vec![ln(5.0), ln(4.0), f64::NEG_INFINITY, f64::NEG_INFINITY],
    )
}

const OFFSETS: [usize; 3] = [0, 3, 4];

fn rewards() -> [f64; 2] {
    [2f64.ln(), 3f64.ln()]
}

#[test]
fn loss_matches_hand_computation() {
    // Interior targets: (ln 5.5 - ln 5.5)^2 = 0 and (ln 1.5 - ln 4.5)^2 = (ln 3)^2 = 1.206949...;
    // terminal targets: (ln 6.5 - ln 2.5)^2 = (ln 2.6)^2 = 0.913002... and 0.
    // Balanced: 10 * (0.913002 + 0) / 2 + (0 + 1.206949) / 2 = 5.168485088...
    let (inflow, outflow) = tiny();
    let r = rewards();
    let mut g = ChainGrads::default();
    let loss = FM.loss_and_grad(&chain(&OFFSETS, &r, &inflow, &outflow), &mut g);
    assert!((loss - 5.168_485_088_298_388).abs() < 1e-12, "{loss}");
    // The terminal target's inflow: 2 * (10 / 2) * ln(2.6) * 6 / 6.5.
    let expected = 2.0 * 5.0 * 2.6f64.ln() * 6.0 / 6.5;
    assert!((g.log_inflow[2] - expected).abs() < 1e-12);
    // The second target's outflow: -2 * (1/2) * (ln 1.5 - ln 4.5) * 4 / 4.5.
    let expected = -(1.5f64.ln() - 4.5f64.ln()) * 4.0 / 4.5;
    assert!((g.log_outflow[1] - expected).abs() < 1e-12);
    // Balanced targets get no gradient; terminal targets none on their (unused) outflow.
    for v in [
        g.log_inflow[0],
        g.log_outflow[0],
        g.log_inflow[3],
        g.log_outflow[2],
    ] {
        assert!(v.abs() < 1e-15, "{v}");
    }
    assert_eq!(FM.name(), "fm");
    assert!(FM.needs().parent_flows && !FM.needs().log_z && !FM.needs().log_flow);
}

#[test]
fn gradients_match_finite_differences() {
    let (mut inflow, outflow) = tiny();
    inflow[0] += 0.3; // unbalance the first target so that every input has a gradient
    let r = rewards();
    let mut g = ChainGrads::default();
    FM.loss_and_grad(&chain(&OFFSETS, &r, &inflow, &outflow), &mut g);
    let h = 1e-6;
    let mut tmp = ChainGrads::default();
    for which in 0..2 {
        for e in 0..4 {
            if which == 1 && (e == 2 || e == 3) {
                continue; // the outflow of a terminal target is not read
            }
            let (mut ip, mut op, mut im, mut om) = (
                inflow.clone(),
                outflow.clone(),
                inflow.clone(),
                outflow.clone(),
            );
            if which == 0 {
                ip[e] += h;
                im[e] -= h;
            } else {
                op[e] += h;
                om[e] -= h;
            }
            let fd = (FM.loss_and_grad(&chain(&OFFSETS, &r, &ip, &op), &mut tmp)
                - FM.loss_and_grad(&chain(&OFFSETS, &r, &im, &om), &mut tmp))
                / (2.0 * h);
            let an = [&g.log_inflow, &g.log_outflow][which][e];
            assert!(
                (fd - an).abs() < 1e-6,
                "input {which} edge {e}: {fd} vs {an}"
            );
        }
    }
}

/// Walks every trajectory of a small hypergrid that goes straight along one axis and exits,
/// computing each edge target's in- and outflow from the exact edge flows
/// `log F(s, a) = log F(s) + log P_F(a | s)` over all its parents and actions. Returns the FM loss
/// with `perturb` added to one inflow.
fn exact_loss(perturb: f64) -> f64 {
    let env = Hypergrid::new(HypergridConfig {
        dim: 2,
        side: 3,
        ..Default::default()
    })
    .unwrap();
    let graph = StateGraph::build(&env, 1000).unwrap();
    let flows = graph.flows(&UniformBackward);
    let n = graph.num_states();
    let na = graph.num_actions;
    let exit = graph.exit_action.unwrap() as usize;
    let edge = |s: usize, a: usize| flows.log_flow[s] + flows.log_pf[s * na + a];
    let mut parents: Vec<Vec<(usize, usize)>> = vec![Vec::new(); n];
    for s in 0..n {
        for e in graph.child_offsets[s]..graph.child_offsets[s + 1] {
            parents[graph.child_index[e] as usize].push((s, graph.child_action[e] as usize));
        }
    }
    let (mut offsets, mut log_reward, mut inflow, mut outflow) = (vec![0], vec![], vec![], vec![]);
    for axis in 0..2 {
        for steps in 0..3 {
            let mut s = graph.initial as usize;
            for _ in 0..steps {
                // Follow the child edge of this axis, if there is one.
                let Some(e) = (graph.child_offsets[s]..graph.child_offsets[s + 1])
                    .find(|&e| graph.child_action[e] as usize == axis)
                else {
                    break;
                };
                let c = graph.child_index[e] as usize;
                inflow.push(logsumexp(
                    &parents[c]
                        .iter()
                        .map(|&(p, a)| edge(p, a))
                        .collect::<Vec<_>>(),
                ));
                let mask = graph.forward_mask(c);
                outflow.push(logsumexp(
                    &(0..na)
                        .filter(|&a| mask[a])
                        .map(|a| edge(c, a))
                        .collect::<Vec<_>>(),
                ));
                s = c;
            }
            // The exit: its sink's only inflow is F(x, exit).
            inflow.push(edge(s, exit));
            outflow.push(f64::NEG_INFINITY);
            offsets.push(inflow.len());
            log_reward.push(graph.log_reward[s]);
        }
    }
    inflow[1] += perturb;
    let fm = FlowMatching {
        leaf_coef: 10.0,
        log_reg_c: 2.5e-5,
    };
    fm.loss_and_grad(
        &chain(&offsets, &log_reward, &inflow, &outflow),
        &mut ChainGrads::default(),
    )
}

#[test]
fn loss_vanishes_at_an_exact_flow_network() {
    let at = exact_loss(0.0);
    assert!(at < 1e-20, "exact flows give loss {at}");
    let off = exact_loss(0.1);
    assert!(off > 1e-4, "a perturbed flow gives loss {off}");
}

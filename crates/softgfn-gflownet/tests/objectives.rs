//! Balance losses against hand-computed values, and zero loss at the exact flow solution.

use softgfn_core::exact::StateGraph;
use softgfn_core::math::sample_from_log_probs;
use softgfn_core::rng::{Stream, stream, uniform};
use softgfn_core::testing::{SetEnv, SlotEnv};
use softgfn_core::{
    Environment, EnvironmentExt, NO_BACKWARD_ACTION, Trajectories, UniformBackward,
};
use softgfn_gflownet::{DetailedBalance, SubTbWeighting, SubTrajectoryBalance, TrajectoryBalance};
use softgfn_train::{ChainBatch, ChainGrads, Objective};

/// Two trajectories: A = (step, exit) and B = (exit at s0).
fn tiny() -> ChainBatch<'static> {
    ChainBatch {
        edge_offsets: &[0, 2, 3],
        log_pf: &[-0.5, -1.0, -2.0],
        log_pb: &[-0.7, 0.0, 0.0],
        log_flow: &[1.0, 0.6, 1.2],
        log_reward: &[0.2, -0.3],
        log_z: 1.5,
        log_inflow: &[],
        log_outflow: &[],
    }
}

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-12, "{a} != {b}");
}

#[test]
fn tb_matches_hand_computation() {
    let mut g = ChainGrads::default();
    // r_A = 1.5 + (-0.5 + 0.7) + (-1.0) - 0.2 = 0.5 ; r_B = 1.5 - 2.0 + 0.3 = -0.2
    let loss = TrajectoryBalance.loss_and_grad(&tiny(), &mut g);
    close(loss, 0.145);
    for (a, b) in g.log_pf.iter().zip([0.5, 0.5, -0.2]) {
        close(*a, b);
    }
    for (a, b) in g.log_pb.iter().zip([-0.5, -0.5, 0.2]) {
        close(*a, b);
    }
    close(g.log_z, 0.3);
    assert!(g.log_flow.iter().all(|&v| v == 0.0));
}

#[test]
fn db_matches_hand_computation() {
    let mut g = ChainGrads::default();
    // residuals 0.6, -0.6, -0.5 ; mean of squares over 3 edges
    let loss = DetailedBalance.loss_and_grad(&tiny(), &mut g);
    close(loss, 0.97 / 3.0);
    for (a, b) in g.log_pf.iter().zip([0.4, -0.4, -1.0 / 3.0]) {
        close(*a, b);
    }
    for (a, b) in g.log_flow.iter().zip([0.4, -0.8, -1.0 / 3.0]) {
        close(*a, b);
    }
    close(g.log_z, 0.0);
}

#[test]
fn subtb_matches_hand_computation() {
    let mut g = ChainGrads::default();
    let obj = SubTrajectoryBalance {
        lambda: 0.5,
        weighting: SubTbWeighting::GeometricWithin,
    };
    // A: pairs (0,1) r=0.6 w=1, (1,2) r=-0.6 w=1, (0,2) r=0 w=0.5, norm 2.5 -> 0.288
    // B: r=-0.5, norm 1 -> 0.25 ; mean over trajectories -> 0.269
    let loss = obj.loss_and_grad(&tiny(), &mut g);
    close(loss, 0.269);
    // d/d log_pf of A's first edge: pairs (0,1) and (0,2): (2*0.6*1 + 0)/2.5/2 = 0.24
    close(g.log_pf[0], 0.24);
    // second edge: pairs (1,2) and (0,2): (2*(-0.6))/2.5/2 = -0.24
    close(g.log_pf[1], -0.24);
    close(g.log_pf[2], -0.5);
    let eq = SubTrajectoryBalance {
        lambda: 0.5,
        weighting: SubTbWeighting::EqualWithin,
    };
    // A: (0.36 + 0.36 + 0) / 3 = 0.24 ; B: 0.25 ; mean 0.245
    close(eq.loss_and_grad(&tiny(), &mut g), 0.245);
}

#[test]
fn gradients_match_finite_differences() {
    let objs: Vec<Box<dyn Objective>> = vec![
        Box::new(TrajectoryBalance),
        Box::new(DetailedBalance),
        Box::new(SubTrajectoryBalance {
            lambda: 1.9,
            weighting: SubTbWeighting::GeometricWithin,
        }),
    ];
    let base = tiny();
    for obj in objs {
        let mut g = ChainGrads::default();
        obj.loss_and_grad(&base, &mut g);
        let h = 1e-6;
        for which in 0..3 {
            for e in 0..3 {
                let mut v = [
                    base.log_pf.to_vec(),
                    base.log_pb.to_vec(),
                    base.log_flow.to_vec(),
                ];
                v[which][e] += h;
                let plus = ChainBatch {
                    log_pf: &v[0],
                    log_pb: &v[1],
                    log_flow: &v[2],
                    ..base
                };
                let mut tmp = ChainGrads::default();
                let lp = obj.loss_and_grad(&plus, &mut tmp);
                let mut v2 = [
                    base.log_pf.to_vec(),
                    base.log_pb.to_vec(),
                    base.log_flow.to_vec(),
                ];
                v2[which][e] -= h;
                let minus = ChainBatch {
                    log_pf: &v2[0],
                    log_pb: &v2[1],
                    log_flow: &v2[2],
                    ..base
                };
                let lm = obj.loss_and_grad(&minus, &mut tmp);
                let fd = (lp - lm) / (2.0 * h);
                let an = [&g.log_pf, &g.log_pb, &g.log_flow][which][e];
                assert!(
                    (fd - an).abs() < 1e-6,
                    "{} input {which} edge {e}: fd {fd} vs {an}",
                    obj.name()
                );
            }
        }
    }
}

/// Samples trajectories from the exact flow policy and returns them with exact chain values.
fn exact_chain(
    env: &dyn Environment,
    n: usize,
) -> (Trajectories, Vec<f64>, Vec<f64>, Vec<f64>, f64) {
    let graph = StateGraph::build(env, 1 << 20).unwrap();
    let flows = graph.flows(&UniformBackward);
    let en = env.as_enumerable().unwrap();
    let spec = env.spec();
    let mut rng = stream(3, Stream::Sampling);
    let mut t = Trajectories::new(spec);
    for _ in 0..n {
        let mut s = env.initial_row();
        let (mut states, mut feats, mut fm, mut bm, mut edges) =
            (vec![], vec![], vec![], vec![], vec![]);
        loop {
            states.extend_from_slice(&s);
            let mut f = vec![0f32; spec.feature_dim];
            env.encode(&s, &mut f).unwrap();
            feats.extend(f);
            let m = env.forward_mask_of(&s).unwrap();
            fm.extend_from_slice(&m);
            bm.extend(env.backward_mask_of(&s).unwrap());
            if !m.iter().any(|&v| v) {
                break;
            }
            let mut idx = [0u64];
            en.state_index(&s, &mut idx).unwrap();
            let a = sample_from_log_probs(flows.log_pf_of(idx[0] as usize), uniform(&mut rng))
                .unwrap() as u32;
            if spec.is_exit(a) {
                edges.push((a, NO_BACKWARD_ACTION));
                break;
            }
            let (next, b) = env.step_one(&s, a).unwrap();
            edges.push((a, b));
            s = next;
        }
        let lr = env.log_reward_of(&s).unwrap();
        t.push(
            &states,
            &feats,
            &fm,
            &bm,
            &edges,
            &vec![0.0; edges.len()],
            lr,
        );
    }
    let (mut lpf, mut lpb, mut lfl) = (vec![], vec![], vec![]);
    for i in 0..t.num_trajectories() {
        for e in t.edge_offsets[i]..t.edge_offsets[i + 1] {
            let src = t.edge_source(i, e);
            let mut idx = [0u64];
            en.state_index(t.state(src), &mut idx).unwrap();
            let si = idx[0] as usize;
            lpf.push(flows.log_pf_of(si)[t.actions[e] as usize]);
            lfl.push(flows.log_flow[si]);
            lpb.push(if t.is_exit_edge(e) {
                0.0
            } else {
                softgfn_core::BackwardPolicy::log_prob(
                    &UniformBackward,
                    t.backward_mask(src + 1),
                    t.backward_actions[e],
                )
            });
        }
    }
    (t, lpf, lpb, lfl, flows.log_z)
}

#[test]
fn losses_vanish_at_the_exact_flow_solution() {
    let envs: Vec<Box<dyn Environment>> = vec![
        Box::new(SetEnv::new(vec![0.4, -0.3, 1.1, 0.2])),
        Box::new(SlotEnv::new(vec![0.4, -0.3, 1.1])),
        Box::new(
            softgfn_hypergrid::Hypergrid::new(softgfn_hypergrid::HypergridConfig {
                dim: 2,
                side: 8,
                ..Default::default()
            })
            .unwrap(),
        ),
    ];
    for env in &envs {
        let (t, lpf, lpb, lfl, log_z) = exact_chain(env.as_ref(), 64);
        let batch = ChainBatch {
            edge_offsets: &t.edge_offsets,
            log_pf: &lpf,
            log_pb: &lpb,
            log_flow: &lfl,
            log_reward: &t.log_rewards,
            log_z,
            log_inflow: &[],
            log_outflow: &[],
        };
        let objs: Vec<Box<dyn Objective>> = vec![
            Box::new(TrajectoryBalance),
            Box::new(DetailedBalance),
            Box::new(SubTrajectoryBalance {
                lambda: 0.9,
                weighting: SubTbWeighting::GeometricWithin,
            }),
        ];
        for obj in objs {
            let mut g = ChainGrads::default();
            let loss = obj.loss_and_grad(&batch, &mut g);
            assert!(
                loss < 1e-10,
                "{} on {}: loss {loss}",
                obj.name(),
                env.spec().name
            );
        }
        // A wrong log Z is not a fixed point: the test can fail.
        let off = ChainBatch {
            log_z: log_z + 0.1,
            ..batch
        };
        let mut g = ChainGrads::default();
        assert!(TrajectoryBalance.loss_and_grad(&off, &mut g) > 1e-3);
    }
}

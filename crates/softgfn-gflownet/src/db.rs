//! Detailed balance (Bengio et al., 2023, "GFlowNet foundations"), over every edge of the batch:
//!
//! ```text
//! L_DB = mean_{edges s -> s'} ( log F(s) + log P_F(s' | s) - log P_B(s | s') - log F(s') )^2
//! ```
//!
//! where `log F` of the terminal node is `log R(x)` (for an exit edge the residual is
//! `log F(x) + log P_F(exit | x) - log R(x)`). In the soft-RL view this is the one-step soft
//! Bellman residual with reward `log P_B` and a dueling parametrization `Q = log F + log P_F`.

use softgfn_train::{ChainBatch, ChainGrads, Objective, ObjectiveNeeds};

/// The detailed-balance objective (mean over all transitions, as torchgfn).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DetailedBalance;

impl Objective for DetailedBalance {
    fn name(&self) -> &'static str {
        "db"
    }

    fn needs(&self) -> ObjectiveNeeds {
        ObjectiveNeeds {
            log_z: false,
            log_flow: true,
            parent_flows: false,
        }
    }

    fn loss_and_grad(&self, batch: &ChainBatch<'_>, grads: &mut ChainGrads) -> f64 {
        let edges = batch.num_edges();
        grads.reset(edges);
        let inv = 1.0 / edges.max(1) as f64;
        let mut loss = 0.0;
        for i in 0..batch.num_trajectories() {
            let (a, b) = (batch.edge_offsets[i], batch.edge_offsets[i + 1]);
            for e in a..b {
                let next = if e + 1 < b {
                    batch.log_flow[e + 1]
                } else {
                    batch.log_reward[i]
                };
                let r = batch.log_flow[e] + batch.log_pf[e] - batch.log_pb[e] - next;
                loss += r * r * inv;
                let g = 2.0 * r * inv;
                grads.log_flow[e] += g;
                grads.log_pf[e] += g;
                grads.log_pb[e] -= g;
                if e + 1 < b {
                    grads.log_flow[e + 1] -= g;
                }
            }
        }
        loss
    }
}

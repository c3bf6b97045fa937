//! Trajectory balance (Malkin et al., 2022, "Trajectory balance: improved credit assignment in
//! GFlowNets"):
//!
//! ```text
//! L_TB = mean_tau ( log Z + sum_t log P_F(s_{t+1} | s_t) - sum_t log P_B(s_t | s_{t+1}) - log R(x) )^2
//! ```
//!
//! In the soft-RL view this is path consistency over the whole trajectory with `V(s0) = log Z`.

use softgfn_train::{ChainBatch, ChainGrads, Objective, ObjectiveNeeds};

/// The trajectory-balance objective.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TrajectoryBalance;

impl Objective for TrajectoryBalance {
    fn name(&self) -> &'static str {
        "tb"
    }

    fn needs(&self) -> ObjectiveNeeds {
        ObjectiveNeeds {
            log_z: true,
            log_flow: false,
            parent_flows: false,
        }
    }

    fn loss_and_grad(&self, batch: &ChainBatch<'_>, grads: &mut ChainGrads) -> f64 {
        grads.reset(batch.num_edges());
        let n = batch.num_trajectories();
        let inv = 1.0 / n.max(1) as f64;
        let mut loss = 0.0;
        for i in 0..n {
            let (a, b) = (batch.edge_offsets[i], batch.edge_offsets[i + 1]);
            let mut r = batch.log_z - batch.log_reward[i];
            for e in a..b {
                r += batch.log_pf[e] - batch.log_pb[e];
            }
            loss += r * r * inv;
            let g = 2.0 * r * inv;
            for e in a..b {
                grads.log_pf[e] = g;
                grads.log_pb[e] = -g;
            }
            grads.log_z += g;
        }
        loss
    }
}

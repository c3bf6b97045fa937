//! Sub-trajectory balance SubTB(lambda) (Madan et al., 2023, "Learning GFlowNets from partial
//! episodes for improved convergence and stability"). For every sub-trajectory `s_i .. s_j`
//! (`0 <= i < j <= m`, node `m` terminal with value `log R(x)`):
//!
//! ```text
//! r_ij = log F(s_i) + sum_{t=i}^{j-1} [log P_F(s_{t+1} | s_t) - log P_B(s_t | s_{t+1})] - log F(s_j)
//! ```
//!
//! With the default `geometric_within` weighting (torchgfn's, the paper's hypergrid baseline) a
//! sub-trajectory of length `l = j - i` gets weight `lambda^(l-1)`, normalised within its
//! trajectory by `sum_{l=1}^{m} (m - l + 1) lambda^(l-1)`, and trajectories are averaged:
//!
//! ```text
//! L = mean_tau sum_{i<j} lambda^(j-i-1) r_ij^2 / sum_{l=1}^{m} (m-l+1) lambda^(l-1)
//! ```
//!
//! `equal_within` gives every sub-trajectory weight 1 before the same normalisation. Any
//! `lambda > 0` is valid (the bit-sequence setup uses 1.9, which favours long sub-trajectories).
//! In the soft-RL view this is multi-step path consistency (PCL).

use serde::{Deserialize, Serialize};
use softgfn_train::{ChainBatch, ChainGrads, Objective, ObjectiveNeeds};

/// How sub-trajectories are weighted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubTbWeighting {
    /// `lambda^(l-1)`, normalised within each trajectory.
    #[default]
    GeometricWithin,
    /// Weight 1, normalised within each trajectory.
    EqualWithin,
}

/// The SubTB(lambda) objective.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SubTrajectoryBalance {
    /// Geometric weight of longer sub-trajectories.
    pub lambda: f64,
    /// Weighting scheme.
    pub weighting: SubTbWeighting,
}

impl SubTrajectoryBalance {
    fn weight(&self, len: usize) -> f64 {
        match self.weighting {
            SubTbWeighting::GeometricWithin => self.lambda.powi(len as i32 - 1),
            SubTbWeighting::EqualWithin => 1.0,
        }
    }
}

impl Objective for SubTrajectoryBalance {
    fn name(&self) -> &'static str {
        "subtb"
    }

    fn needs(&self) -> ObjectiveNeeds {
        ObjectiveNeeds {
            log_z: false,
            log_flow: true,
            parent_flows: false,
        }
    }

    fn loss_and_grad(&self, batch: &ChainBatch<'_>, grads: &mut ChainGrads) -> f64 {
        grads.reset(batch.num_edges());
        let n = batch.num_trajectories();
        let inv_n = 1.0 / n.max(1) as f64;
        let mut loss = 0.0;
        // Scratch per trajectory: node values, prefix sums, and a difference array for the
        // gradient of edge ranges.
        let mut value = Vec::new();
        let mut prefix = Vec::new();
        let mut diff = Vec::new();
        for i in 0..n {
            let (a, b) = (batch.edge_offsets[i], batch.edge_offsets[i + 1]);
            let m = b - a;
            if m == 0 {
                continue;
            }
            value.clear();
            value.extend_from_slice(&batch.log_flow[a..b]);
            value.push(batch.log_reward[i]);
            prefix.clear();
            prefix.push(0.0);
            for e in a..b {
                let p = prefix[prefix.len() - 1] + batch.log_pf[e] - batch.log_pb[e];
                prefix.push(p);
            }
            let norm: f64 = (1..=m).map(|l| (m - l + 1) as f64 * self.weight(l)).sum();
            let scale = inv_n / norm;
            diff.clear();
            diff.resize(m + 1, 0.0);
            for s in 0..m {
                for t in s + 1..=m {
                    let r = value[s] + prefix[t] - prefix[s] - value[t];
                    let w = self.weight(t - s) * scale;
                    loss += w * r * r;
                    let g = 2.0 * w * r;
                    grads.log_flow[a + s] += g;
                    if t < m {
                        grads.log_flow[a + t] -= g;
                    }
                    diff[s] += g;
                    diff[t] -= g;
                }
            }
            let mut run = 0.0;
            for k in 0..m {
                run += diff[k];
                grads.log_pf[a + k] += run;
                grads.log_pb[a + k] -= run;
            }
        }
        loss
    }
}

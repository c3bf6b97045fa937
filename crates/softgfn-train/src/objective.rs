//! The [`Objective`] seam: GFlowNet balance losses as pure functions of a batch's
//! log-probabilities, with analytic gradients.
//!
//! A trajectory is viewed as a **chain** of `m` edges over nodes `0..=m`. Node `k < m` is the
//! state `s_k` with learned value `log F(s_k)`; node `m` is terminal with value `log R(x)`: for a
//! trajectory ended by the exit action node `m` is the sink and edge `m-1` is the exit (its
//! `log P_B` is 0); for a trajectory that ended implicitly node `m` is the full object itself.
//! Edge `k` carries `log P_F(a_k | s_k)` and `log P_B(s_k | s_{k+1})`. All per-edge arrays are
//! indexed by edge, and `log_flow[e]` is the flow of the edge's source node.
//!
//! Flow matching reads the chain through the *target* node of each edge instead: `log_inflow[e]`
//! is the log of the total edge flow into node `e + 1` over **all** its parents in the DAG (not only
//! the trajectory's own predecessor), and `log_outflow[e]` the log of the total edge flow out of it
//! (unused for the last edge of a trajectory, whose target is terminal and must let out `R(x)`).
//!
//! Objectives never touch tensors: the algorithm computes the log-probabilities with its network,
//! calls [`Objective::loss_and_grad`], and backpropagates the returned gradients through the
//! network. This keeps every loss testable against hand-computed values.

/// Log-probabilities of a batch of trajectories in chain form (see the module docs).
#[derive(Clone, Copy, Debug)]
pub struct ChainBatch<'a> {
    /// Per trajectory, the first edge (length `num_trajectories + 1`).
    pub edge_offsets: &'a [usize],
    /// `log P_F` of every edge.
    pub log_pf: &'a [f64],
    /// `log P_B` of every edge (0 for exit edges).
    pub log_pb: &'a [f64],
    /// `log F` of every edge's source state (ignored by objectives that do not need flows).
    pub log_flow: &'a [f64],
    /// Per trajectory, `log R(x)` of its terminal object.
    pub log_reward: &'a [f64],
    /// Learned `log Z` (used by TB only).
    pub log_z: f64,
    /// Log of the total flow into every edge's target node over all its parents (flow matching;
    /// empty for objectives that do not read it).
    pub log_inflow: &'a [f64],
    /// Log of the total flow out of every edge's target node (flow matching; empty otherwise).
    pub log_outflow: &'a [f64],
}

impl ChainBatch<'_> {
    /// Number of trajectories.
    pub fn num_trajectories(&self) -> usize {
        self.log_reward.len()
    }

    /// Number of edges.
    pub fn num_edges(&self) -> usize {
        self.edge_offsets.last().copied().unwrap_or(0)
    }
}

/// Gradients of a loss with respect to the inputs of a [`ChainBatch`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChainGrads {
    /// `d loss / d log_pf`.
    pub log_pf: Vec<f64>,
    /// `d loss / d log_pb`.
    pub log_pb: Vec<f64>,
    /// `d loss / d log_flow`.
    pub log_flow: Vec<f64>,
    /// `d loss / d log_z`.
    pub log_z: f64,
    /// `d loss / d log_inflow`.
    pub log_inflow: Vec<f64>,
    /// `d loss / d log_outflow`.
    pub log_outflow: Vec<f64>,
}

impl ChainGrads {
    /// Zeroed gradients for `edges` edges, reusing allocations.
    pub fn reset(&mut self, edges: usize) {
        for v in [
            &mut self.log_pf,
            &mut self.log_pb,
            &mut self.log_flow,
            &mut self.log_inflow,
            &mut self.log_outflow,
        ] {
            v.clear();
            v.resize(edges, 0.0);
        }
        self.log_z = 0.0;
    }
}

/// What an objective reads besides `log P_F` and `log P_B`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ObjectiveNeeds {
    /// Reads the learned scalar `log Z`.
    pub log_z: bool,
    /// Reads `log F` of states.
    pub log_flow: bool,
    /// Reads the in- and outflows of edge targets over all their parents and children
    /// (`log_inflow`, `log_outflow`: flow matching).
    pub parent_flows: bool,
}

/// A GFlowNet training objective: a pure function of a [`ChainBatch`].
pub trait Objective: Send + Sync + std::fmt::Debug {
    /// Short name (`tb`, `db`, `subtb`).
    fn name(&self) -> &'static str;

    /// Which inputs the objective reads.
    fn needs(&self) -> ObjectiveNeeds;

    /// The loss of the batch; writes its gradients into `grads` (which it resets).
    fn loss_and_grad(&self, batch: &ChainBatch<'_>, grads: &mut ChainGrads) -> f64;

    /// An estimate of `log Z` from the batch itself, for an objective that replaces the learned
    /// `log Z` by one (the log-partition variance); the balance algorithm reports the last
    /// batch's as its `log Z` when it learns neither `log Z` nor flows. `None` (the default)
    /// otherwise.
    fn log_z_of_batch(&self, _batch: &ChainBatch<'_>) -> Option<f64> {
        None
    }
}

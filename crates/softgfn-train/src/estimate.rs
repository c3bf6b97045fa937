//! Estimators of `log Z` and of `log p(x)` from a trained forward policy (and its backward
//! policy), by sampling.
//!
//! With the log-weight of a complete trajectory `tau` ending at the object `x`,
//!
//! ```text
//! log w(tau) = log R(x) + sum_t log P_B(s_t | s_{t+1}) - sum_t log P_F(s_{t+1} | s_t)
//! ```
//!
//! (the exit included in `P_F`):
//!
//! - **ELBO** `E_{tau ~ P_F}[log w]` is a lower bound of `log Z` (Jensen), equal to it exactly
//!   when `P_F` is the GFlowNet of `R` and `P_B`;
//! - **importance-weighted** `log (1/n sum_i w_i)`, `tau_i ~ P_F`, is a consistent estimate of
//!   `log Z` (a lower bound in expectation, tightening as `n` grows), reported with a 95%
//!   interval from the delta method;
//! - **EUBO** `E_{tau ~ P*}[log w]` with `P*(tau) = R(x)/Z prod P_B` (draw `x` exactly from
//!   `R/Z`, then a backward trajectory from `P_B`) is an upper bound of `log Z`; it needs exact
//!   samples of the target, so only enumerable environments have it.
//!
//! The marginal of an object under `P_F`, `p(x) = E_{tau ~ P_B(. | x)}[P_F(tau) / P_B(tau | x)]`,
//! is estimated the same way from `m` backward trajectories ([`log_px_estimates`]).
//!
//! Every estimator draws from the generator it is given: the trainer derives one of its own
//! ([`estimator_rng`], stream [`Stream::Estimators`]), so that turning estimators on or off
//! leaves training bitwise unchanged.

use softgfn_core::exact::{StateGraph, Target};
use softgfn_core::math::{logsumexp, masked_log_softmax, sample_from_log_probs};
use softgfn_core::rng::{Stream, stream, uniform};
use softgfn_core::{CoreError, Environment, Rng, StateValue, Trajectories};

use crate::algorithm::Algorithm;
use crate::error::{Result, TrainError};
use crate::sampler::{Exploration, Sampler};

/// `z` of a two-sided 95% normal interval.
pub const Z95: f64 = 1.959_963_984_540_054;

/// The generator of the estimators of the evaluation at `iteration` of a run of seed `seed`:
/// stream [`Stream::Estimators`], positioned by the iteration, so that it needs no checkpoint
/// and a resumed run draws what an uninterrupted one draws.
pub fn estimator_rng(seed: u64, iteration: u64) -> Rng {
    let mut r = stream(seed, Stream::Estimators);
    r.set_word_pos(u128::from(iteration) << 36);
    r
}

/// A mean with the half-width of its 95% interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    /// The value.
    pub value: f64,
    /// Half-width of the 95% interval (`NaN` with fewer than two samples).
    pub ci: f64,
}

/// Mean of `v` with `Z95 * sd / sqrt(n)`.
pub fn mean_ci(v: &[f64]) -> Estimate {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    Estimate {
        value: mean,
        ci: Z95 * (var / n).sqrt(),
    }
}

/// `log mean exp(v)` with the delta-method half-width of its 95% interval:
/// `Z95 * sd(w) / (sqrt(n) mean(w))` for `w = exp(v - max v)`.
pub fn log_mean_exp_ci(v: &[f64]) -> Estimate {
    let n = v.len() as f64;
    let value = logsumexp(v) - n.ln();
    let top = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !top.is_finite() {
        return Estimate {
            value,
            ci: f64::NAN,
        };
    }
    let w: Vec<f64> = v.iter().map(|x| (x - top).exp()).collect();
    let m = w.iter().sum::<f64>() / n;
    let var = w.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
    Estimate {
        value,
        ci: Z95 * (var / n).sqrt() / m,
    }
}

/// The sampled `log Z` estimators of one policy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogZEstimates {
    /// Forward trajectories behind the ELBO and the importance-weighted estimate.
    pub samples: usize,
    /// ELBO `E_{P_F}[log w]`, with its 95% interval.
    pub elbo: Estimate,
    /// Importance-weighted `log mean w`, with its 95% interval.
    pub iw: Estimate,
    /// EUBO `E_{P*}[log w]` (enumerable environments), with its 95% interval.
    pub eubo: Option<Estimate>,
}

/// `log w` of `n` trajectories sampled from the policy (no exploration, temperature 1).
///
/// # Errors
/// `n == 0`, or an error of the environment or the algorithm.
pub fn forward_log_weights(
    env: &dyn Environment,
    algo: &mut dyn Algorithm,
    n: usize,
    rng: &mut Rng,
) -> Result<Vec<f64>> {
    if n == 0 {
        return Err(TrainError::invalid(
            "samples",
            0,
            "at least 1 trajectory for an estimate",
        ));
    }
    let mut sampler = Sampler::new();
    let mut t = Trajectories::new(env.spec());
    sampler.sample(env, algo, n, Exploration::default(), rng, &mut t)?;
    let nb = t.num_backward_actions;
    let rows = t.num_states();
    let mut lpb = vec![0.0; rows * nb];
    algo.backward_log_probs(&t.features, &t.backward_masks, rows, &mut lpb)?;
    let mut out = Vec::with_capacity(n);
    for i in 0..t.num_trajectories() {
        let mut lw = t.log_rewards[i];
        for e in t.edge_offsets[i]..t.edge_offsets[i + 1] {
            lw -= t.behaviour_log_probs[e];
            if !t.is_exit_edge(e) {
                let child = t.edge_source(i, e) + 1;
                lw += lpb[child * nb + t.backward_actions[e] as usize];
            }
        }
        out.push(lw);
    }
    Ok(out)
}

/// Sums along backward trajectories from given objects: for each row of `objects`, one
/// backward trajectory drawn from the algorithm's `P_B`, and its `(sum log P_F, sum log P_B)`
/// (the exit at the object included in `P_F` when the object ends by an exit).
///
/// # Errors
/// An object that is not terminal, a trajectory longer than `max_trajectory_length`, or an
/// error of the environment or the algorithm.
pub fn backward_log_sums(
    env: &dyn Environment,
    algo: &mut dyn Algorithm,
    objects: &[StateValue],
    rng: &mut Rng,
) -> Result<Vec<(f64, f64)>> {
    let spec = env.spec();
    let rows = spec.rows_of("objects", objects)?;
    let (w, na, nb, fd) = (
        spec.state_width,
        spec.num_actions,
        spec.num_backward_actions,
        spec.feature_dim,
    );
    let mut sums = vec![(0.0f64, 0.0f64); rows];
    if rows == 0 {
        return Ok(sums);
    }
    let mut feats = vec![0f32; rows * fd];
    let mut fmask = vec![false; rows * na];
    let mut bmask = vec![false; rows * nb];
    let mut logits = vec![0f32; rows * na];
    let mut lp = vec![0.0; na];
    let mut lpb = vec![0.0; rows * nb];

    // The exit at each object.
    env.encode(objects, &mut feats)?;
    env.forward_masks(objects, &mut fmask)?;
    algo.policy_logits(&feats, rows, &mut logits)?;
    for r in 0..rows {
        let mask = &fmask[r * na..(r + 1) * na];
        match spec.exit_action {
            Some(e) if mask[e as usize] => {
                masked_log_softmax(&logits[r * na..(r + 1) * na], mask, 1.0, &mut lp);
                sums[r].0 += lp[e as usize];
            }
            _ if mask.iter().any(|&v| v) => {
                return Err(CoreError::InvalidState {
                    env: spec.name.clone(),
                    state: objects[r * w..(r + 1) * w].to_vec(),
                    reason: "not a terminal state (an object): exit is not valid and it has \
                             valid forward actions"
                        .into(),
                }
                .into());
            }
            _ => {} // ends by itself: no exit term
        }
    }

    let mut active: Vec<usize> = (0..rows).collect();
    let mut cur = objects.to_vec();
    let mut prev = vec![0; rows * w];
    let mut bacts = vec![0u32; rows];
    let mut facts = vec![0u32; rows];
    let mut keep_rows = Vec::with_capacity(rows);
    let mut steps = 0usize;
    while !active.is_empty() {
        let k = active.len();
        bmask.resize(k * nb, false);
        env.backward_masks(&cur, &mut bmask)?;
        // Rows at s0 (no backward action) are done.
        keep_rows.clear();
        for r in 0..k {
            if bmask[r * nb..(r + 1) * nb].iter().any(|&v| v) {
                keep_rows.push(r);
            }
        }
        if keep_rows.len() != k {
            let mut j = 0;
            for &r in &keep_rows {
                if r != j {
                    cur.copy_within(r * w..(r + 1) * w, j * w);
                    bmask.copy_within(r * nb..(r + 1) * nb, j * nb);
                    active[j] = active[r];
                }
                j += 1;
            }
            active.truncate(j);
            cur.truncate(j * w);
            bmask.truncate(j * nb);
        }
        let k = active.len();
        if k == 0 {
            break;
        }
        if steps >= spec.max_trajectory_length {
            return Err(CoreError::Structure {
                env: spec.name.clone(),
                property: "length bound".into(),
                details: format!(
                    "a backward trajectory reached {:?} after {steps} steps without reaching s0",
                    &cur[..w]
                ),
            }
            .into());
        }
        steps += 1;
        feats.resize(k * fd, 0.0);
        env.encode(&cur, &mut feats)?;
        lpb.resize(k * nb, 0.0);
        algo.backward_log_probs(&feats, &bmask, k, &mut lpb)?;
        for r in 0..k {
            let row = &lpb[r * nb..(r + 1) * nb];
            let b = sample_from_log_probs(row, uniform(rng)).unwrap_or(0);
            bacts[r] = b as u32;
            sums[active[r]].1 += row[b];
        }
        prev.resize(k * w, 0);
        env.backward_step(&cur, &bacts[..k], &mut prev, &mut facts[..k])?;
        feats.resize(k * fd, 0.0);
        fmask.resize(k * na, false);
        logits.resize(k * na, 0.0);
        env.encode(&prev, &mut feats)?;
        env.forward_masks(&prev, &mut fmask)?;
        algo.policy_logits(&feats, k, &mut logits)?;
        for r in 0..k {
            masked_log_softmax(
                &logits[r * na..(r + 1) * na],
                &fmask[r * na..(r + 1) * na],
                1.0,
                &mut lp,
            );
            sums[active[r]].0 += lp[facts[r] as usize];
        }
        std::mem::swap(&mut cur, &mut prev);
        cur.truncate(k * w);
    }
    Ok(sums)
}

/// Draws `n` objects exactly from the target `R/Z` of an enumerated graph (state rows).
pub fn sample_target(
    graph: &StateGraph,
    target: &Target,
    n: usize,
    rng: &mut Rng,
) -> Vec<StateValue> {
    let mut cdf = Vec::with_capacity(target.probs.len());
    let mut acc = 0.0;
    for &p in &target.probs {
        acc += p;
        cdf.push(acc);
    }
    let mut out = Vec::with_capacity(n * graph.state_width);
    for _ in 0..n {
        let u = uniform(rng) * acc;
        let mut i = cdf.partition_point(|&c| c <= u).min(cdf.len() - 1);
        while target.probs[i] == 0.0 && i > 0 {
            i -= 1;
        }
        out.extend_from_slice(graph.state(i));
    }
    out
}

/// `log w` of `n` trajectories of `P*`: objects drawn exactly from `R/Z`, then `P_B`.
///
/// # Errors
/// `n == 0`, or an error of the environment or the algorithm.
pub fn target_log_weights(
    env: &dyn Environment,
    algo: &mut dyn Algorithm,
    graph: &StateGraph,
    target: &Target,
    n: usize,
    rng: &mut Rng,
) -> Result<Vec<f64>> {
    if n == 0 {
        return Err(TrainError::invalid(
            "samples",
            0,
            "at least 1 trajectory for an estimate",
        ));
    }
    let xs = sample_target(graph, target, n, rng);
    let mut lr = vec![0.0; n];
    env.log_reward(&xs, &mut lr)?;
    let sums = backward_log_sums(env, algo, &xs, rng)?;
    Ok(sums
        .iter()
        .zip(&lr)
        .map(|(&(pf, pb), &r)| r + pb - pf)
        .collect())
}

/// The sampled `log Z` estimators from `n` forward trajectories (and, given the exact target,
/// `n` trajectories of `P*` for the EUBO).
///
/// # Errors
/// `n == 0`, or an error of the environment or the algorithm.
pub fn log_z_estimates(
    env: &dyn Environment,
    algo: &mut dyn Algorithm,
    exact: Option<(&StateGraph, &Target)>,
    n: usize,
    rng: &mut Rng,
) -> Result<LogZEstimates> {
    let lw = forward_log_weights(env, algo, n, rng)?;
    let eubo = match exact {
        Some((graph, target)) => Some(mean_ci(&target_log_weights(
            env, algo, graph, target, n, rng,
        )?)),
        None => None,
    };
    Ok(LogZEstimates {
        samples: n,
        elbo: mean_ci(&lw),
        iw: log_mean_exp_ci(&lw),
        eubo,
    })
}

/// `log p(x)` of each object under the policy, estimated from `m` backward trajectories each:
/// `log mean_j exp(sum log P_F - sum log P_B)` over trajectories `j` drawn from `P_B(. | x)`
/// (exact with `m = 1` when every object has one construction order).
///
/// # Errors
/// `m == 0`, an object that is not terminal, or an error of the environment or the algorithm.
pub fn log_px_estimates(
    env: &dyn Environment,
    algo: &mut dyn Algorithm,
    objects: &[StateValue],
    m: usize,
    rng: &mut Rng,
) -> Result<Vec<f64>> {
    if m == 0 {
        return Err(TrainError::invalid(
            "backward_samples",
            0,
            "at least 1 backward trajectory per object",
        ));
    }
    let spec = env.spec();
    let rows = spec.rows_of("objects", objects)?;
    let w = spec.state_width;
    let mut repeated = Vec::with_capacity(rows * m * w);
    for r in 0..rows {
        for _ in 0..m {
            repeated.extend_from_slice(&objects[r * w..(r + 1) * w]);
        }
    }
    let sums = backward_log_sums(env, algo, &repeated, rng)?;
    let ratios: Vec<f64> = sums.iter().map(|&(pf, pb)| pf - pb).collect();
    Ok(ratios
        .chunks_exact(m)
        .map(|c| logsumexp(c) - (m as f64).ln())
        .collect())
}

/// The exact `log P_F` and `log P_B` tables of a policy over an enumerated graph (as
/// [`StateGraph::log_z_bounds`] takes them).
///
/// # Errors
/// An error of the environment or the algorithm.
pub fn policy_tables(
    env: &dyn Environment,
    graph: &StateGraph,
    algo: &mut dyn Algorithm,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let n = graph.num_states();
    let (na, nb, fd, w) = (
        graph.num_actions,
        graph.num_backward_actions,
        env.spec().feature_dim,
        graph.state_width,
    );
    const CHUNK: usize = 4096;
    let mut log_pf = vec![f64::NEG_INFINITY; n * na];
    let mut log_pb = vec![f64::NEG_INFINITY; n * nb];
    let mut feats = vec![0f32; CHUNK.min(n) * fd];
    let mut logits = vec![0f32; CHUNK.min(n) * na];
    for start in (0..n).step_by(CHUNK) {
        let end = (start + CHUNK).min(n);
        let rows = end - start;
        env.encode(&graph.states[start * w..end * w], &mut feats[..rows * fd])?;
        algo.policy_logits(&feats[..rows * fd], rows, &mut logits[..rows * na])?;
        for r in 0..rows {
            let s = start + r;
            masked_log_softmax(
                &logits[r * na..(r + 1) * na],
                graph.forward_mask(s),
                1.0,
                &mut log_pf[s * na..(s + 1) * na],
            );
        }
        algo.backward_log_probs(
            &feats[..rows * fd],
            &graph.backward_masks[start * nb..end * nb],
            rows,
            &mut log_pb[start * nb..end * nb],
        )?;
    }
    Ok((log_pf, log_pb))
}

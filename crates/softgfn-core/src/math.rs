//! Numerically safe log-domain helpers shared by samplers, objectives and exact answers.
//!
//! Masked entries are `-inf` in log space and never produce NaN: a row whose mask is all false
//! yields all `-inf` log-probabilities (there is nothing to choose) rather than `0/0`.

/// `log(sum(exp(x)))` of a slice, `-inf` for an empty slice or all `-inf`.
pub fn logsumexp(xs: &[f64]) -> f64 {
    let m = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return f64::NEG_INFINITY;
    }
    if m == f64::INFINITY {
        return f64::INFINITY;
    }
    let s: f64 = xs.iter().map(|&x| (x - m).exp()).sum();
    m + s.ln()
}

/// `log(exp(a) + exp(b))` without overflow.
#[inline]
pub fn log_add_exp(a: f64, b: f64) -> f64 {
    if a == f64::NEG_INFINITY {
        return b;
    }
    if b == f64::NEG_INFINITY {
        return a;
    }
    let m = a.max(b);
    m + ((a - m).exp() + (b - m).exp()).ln()
}

/// Masked log-softmax of one row of logits, scaled by `1 / temperature`:
/// `out[j] = logits[j]/T - logsumexp_{valid k}(logits[k]/T)` for valid `j`, `-inf` otherwise.
///
/// Returns the log-normaliser (`-inf` if no entry is valid, in which case `out` is all `-inf`).
pub fn masked_log_softmax(logits: &[f32], mask: &[bool], temperature: f64, out: &mut [f64]) -> f64 {
    debug_assert_eq!(logits.len(), mask.len());
    debug_assert_eq!(logits.len(), out.len());
    let inv_t = 1.0 / temperature;
    let mut m = f64::NEG_INFINITY;
    for (&l, &v) in logits.iter().zip(mask) {
        if v {
            m = m.max(f64::from(l) * inv_t);
        }
    }
    if m == f64::NEG_INFINITY || m.is_nan() {
        out.fill(f64::NEG_INFINITY);
        return f64::NEG_INFINITY;
    }
    let mut s = 0.0;
    for (&l, &v) in logits.iter().zip(mask) {
        if v {
            s += (f64::from(l) * inv_t - m).exp();
        }
    }
    let log_norm = m + s.ln();
    for ((o, &l), &v) in out.iter_mut().zip(logits).zip(mask) {
        *o = if v {
            f64::from(l) * inv_t - log_norm
        } else {
            f64::NEG_INFINITY
        };
    }
    log_norm
}

/// Gradient of a loss through a masked log-softmax (temperature 1).
///
/// Given the log-probabilities `log_p` of one row and the upstream gradient `g` of the loss with
/// respect to them, adds `d loss / d logits[j] = g[j] - p[j] * sum_k g[k]` (valid `j`) into
/// `grad_logits`. Masked entries receive no gradient.
pub fn log_softmax_backward(log_p: &[f64], mask: &[bool], g: &[f64], grad_logits: &mut [f32]) {
    let total: f64 = g
        .iter()
        .zip(mask)
        .filter(|(_, v)| **v)
        .map(|(x, _)| *x)
        .sum();
    for j in 0..log_p.len() {
        if mask[j] {
            let p = log_p[j].exp();
            grad_logits[j] += (g[j] - p * total) as f32;
        }
    }
}

/// Gradient through a masked log-softmax when the upstream gradient touches one entry only:
/// adds `g * (1[j == a] - p[j])` into `grad_logits` for valid `j`.
pub fn log_softmax_backward_one(
    log_p: &[f64],
    mask: &[bool],
    action: usize,
    g: f64,
    grad_logits: &mut [f32],
) {
    for j in 0..log_p.len() {
        if mask[j] {
            let p = log_p[j].exp();
            let d = if j == action { 1.0 - p } else { -p };
            grad_logits[j] += (g * d) as f32;
        }
    }
}

/// Samples an index from a row of log-probabilities (`-inf` entries are never drawn) given a
/// uniform draw `u` in `[0, 1)`. Falls back to the last valid entry against rounding.
pub fn sample_from_log_probs(log_p: &[f64], u: f64) -> Option<usize> {
    let mut acc = 0.0;
    let mut last = None;
    for (j, &lp) in log_p.iter().enumerate() {
        if lp == f64::NEG_INFINITY {
            continue;
        }
        acc += lp.exp();
        last = Some(j);
        if u < acc {
            return Some(j);
        }
    }
    last
}

/// Huber loss with threshold `delta` and its derivative with respect to the residual.
#[inline]
pub fn huber(residual: f64, delta: f64) -> (f64, f64) {
    let a = residual.abs();
    if a <= delta {
        (0.5 * residual * residual, residual)
    } else {
        (delta * (a - 0.5 * delta), delta * residual.signum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logsumexp_matches_direct_sum_and_handles_infinities() {
        let xs = [0.0, 1.0f64.ln(), 2.0f64.ln()];
        assert!((logsumexp(&xs) - 4.0f64.ln()).abs() < 1e-12);
        assert_eq!(logsumexp(&[]), f64::NEG_INFINITY);
        assert_eq!(
            logsumexp(&[f64::NEG_INFINITY, f64::NEG_INFINITY]),
            f64::NEG_INFINITY
        );
        assert!((logsumexp(&[1000.0, 1000.0]) - (1000.0 + 2f64.ln())).abs() < 1e-9);
        assert!((log_add_exp(1000.0, 1000.0) - (1000.0 + 2f64.ln())).abs() < 1e-9);
    }

    #[test]
    fn masked_log_softmax_has_no_nan() {
        let mut out = [0.0; 3];
        let z = masked_log_softmax(&[1.0, 2.0, 3.0], &[false, false, false], 1.0, &mut out);
        assert_eq!(z, f64::NEG_INFINITY);
        assert!(out.iter().all(|&v| v == f64::NEG_INFINITY));
        masked_log_softmax(&[1.0, 2.0, 3.0], &[true, false, true], 1.0, &mut out);
        let e = 1.0 / (1.0 + 1f64.exp() * 1f64.exp());
        assert!((out[0] - e.ln()).abs() < 1e-12);
        assert_eq!(out[1], f64::NEG_INFINITY);
        assert!(((out[0].exp() + out[2].exp()) - 1.0).abs() < 1e-12);
        // Huge logits.
        masked_log_softmax(&[1e30, -1e30, 0.0], &[true, true, true], 1.0, &mut out);
        assert!(out.iter().all(|v| !v.is_nan()));
        // Temperature 2 halves the logits.
        masked_log_softmax(&[0.0, 2.0, 0.0], &[true, true, false], 2.0, &mut out);
        assert!((out[1] - out[0] - 1.0).abs() < 1e-12);
    }

    #[test]
    fn log_softmax_gradient_matches_finite_differences() {
        let logits = [0.3f32, -0.2, 0.9, 0.1];
        let mask = [true, true, false, true];
        let g = [0.7, -1.3, 0.0, 0.4];
        let f = |l: &[f32]| {
            let mut o = [0.0; 4];
            masked_log_softmax(l, &mask, 1.0, &mut o);
            (0..4)
                .filter(|&j| mask[j])
                .map(|j| g[j] * o[j])
                .sum::<f64>()
        };
        let mut lp = [0.0; 4];
        masked_log_softmax(&logits, &mask, 1.0, &mut lp);
        let mut grad = [0.0f32; 4];
        log_softmax_backward(&lp, &mask, &g, &mut grad);
        for j in 0..4 {
            let mut a = logits;
            let mut b = logits;
            a[j] += 1e-3;
            b[j] -= 1e-3;
            let fd = (f(&a) - f(&b)) / 2e-3;
            assert!(
                (fd - f64::from(grad[j])).abs() < 1e-3,
                "entry {j}: {fd} vs {}",
                grad[j]
            );
        }
        let mut one = [0.0f32; 4];
        log_softmax_backward_one(&lp, &mask, 1, 2.0, &mut one);
        let mut g1 = [0.0; 4];
        g1[1] = 2.0;
        let mut full = [0.0f32; 4];
        log_softmax_backward(&lp, &mask, &g1, &mut full);
        for j in 0..4 {
            assert!((one[j] - full[j]).abs() < 1e-6);
        }
    }

    #[test]
    fn sampling_respects_masks() {
        let lp = [
            f64::NEG_INFINITY,
            0.5f64.ln(),
            f64::NEG_INFINITY,
            0.5f64.ln(),
        ];
        assert_eq!(sample_from_log_probs(&lp, 0.0), Some(1));
        assert_eq!(sample_from_log_probs(&lp, 0.49), Some(1));
        assert_eq!(sample_from_log_probs(&lp, 0.51), Some(3));
        assert_eq!(sample_from_log_probs(&lp, 0.999_999_999_999), Some(3));
        assert_eq!(sample_from_log_probs(&[f64::NEG_INFINITY], 0.3), None);
    }

    #[test]
    fn huber_values() {
        assert_eq!(huber(0.5, 1.0), (0.125, 0.5));
        assert_eq!(huber(-3.0, 1.0), (2.5, -1.0));
    }
}

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
///
/// The exponentials are a vectorised polynomial (within one unit in the last place of `libm`'s,
/// see [`masked_logsumexp`]), summed in eight interleaved partial sums: results agree with a
/// plain `libm` loop to about `1e-15` relative, not bitwise.
pub fn masked_log_softmax(logits: &[f32], mask: &[bool], temperature: f64, out: &mut [f64]) -> f64 {
    debug_assert_eq!(logits.len(), mask.len());
    debug_assert_eq!(logits.len(), out.len());
    let inv_t = 1.0 / temperature;
    if !plain_temperature(inv_t) {
        return masked_log_softmax_libm(logits, mask, temperature, out);
    }
    let log_norm = masked_logsumexp(logits, mask, temperature);
    if log_norm == f64::NEG_INFINITY {
        out.fill(f64::NEG_INFINITY);
        return log_norm;
    }
    crate::vexp::write_log_probs(logits, mask, inv_t, log_norm, out);
    log_norm
}

/// Whether `1 / temperature` is a positive finite scale (then scaling commutes with the maximum
/// and the vectorised path applies; other temperatures take the plain `libm` loop).
fn plain_temperature(inv_t: f64) -> bool {
    inv_t > 0.0 && inv_t.is_finite()
}

/// The log-normaliser of [`masked_log_softmax`] alone, `logsumexp_{valid k}(logits[k]/T)`,
/// without writing a row (`-inf` if no entry is valid; NaN if a valid logit is NaN).
///
/// The exponentials `e^(logits[k]/T - m)` (`m` the largest valid scaled logit) are computed four
/// at a time with AVX2 where the CPU has it (two otherwise; the results are the same), by a
/// polynomial within one unit in the last place of `libm`'s `exp`; runs of eight masked entries
/// are skipped.
pub fn masked_logsumexp(logits: &[f32], mask: &[bool], temperature: f64) -> f64 {
    debug_assert_eq!(logits.len(), mask.len());
    let inv_t = 1.0 / temperature;
    if !plain_temperature(inv_t) {
        let mut out = vec![0.0; logits.len()];
        return masked_log_softmax_libm(logits, mask, temperature, &mut out);
    }
    let Some(m) = scaled_max(logits, mask, inv_t) else {
        return f64::NEG_INFINITY;
    };
    m + crate::vexp::masked_exp_sum(logits, mask, inv_t, m, None).ln()
}

/// The largest valid `logits[k] * inv_t` (`inv_t` positive and finite), `None` when no entry is
/// valid (or every valid one is NaN).
fn scaled_max(logits: &[f32], mask: &[bool], inv_t: f64) -> Option<f64> {
    let top = crate::vexp::masked_max(logits, mask);
    // Rounding is monotonic, so the largest scaled logit is the scaled largest logit.
    let m = f64::from(top) * inv_t;
    (m != f64::NEG_INFINITY && !m.is_nan()).then_some(m)
}

/// Masked softmax of one row of logits scaled by `1 / temperature`, as probabilities:
/// `probs[j] = exp(logits[j]/T - log_norm)` for valid `j` (each exponential computed once, then
/// divided by the sum), `0` otherwise. Returns `log_norm` as [`masked_logsumexp`] does, so that
/// the log-probability of entry `j` is `f64::from(logits[j]) * (1.0 / T) - log_norm` (bitwise
/// what [`masked_log_softmax`] writes). With no valid entry, `probs` is all 0 and the result
/// `-inf`.
pub fn masked_softmax(logits: &[f32], mask: &[bool], temperature: f64, probs: &mut [f64]) -> f64 {
    debug_assert_eq!(logits.len(), mask.len());
    debug_assert_eq!(logits.len(), probs.len());
    let inv_t = 1.0 / temperature;
    if !plain_temperature(inv_t) {
        let log_norm = masked_log_softmax_libm(logits, mask, temperature, probs);
        for p in probs.iter_mut() {
            *p = p.exp();
        }
        return log_norm;
    }
    let Some(m) = scaled_max(logits, mask, inv_t) else {
        probs.fill(0.0);
        return f64::NEG_INFINITY;
    };
    let s = crate::vexp::masked_exp_sum(logits, mask, inv_t, m, Some(probs));
    crate::vexp::scale(probs, 1.0 / s);
    m + s.ln()
}

/// The plain loop with `libm`'s `exp` (the reference of the vectorised path, and the path of
/// temperatures whose inverse is not a positive finite number).
fn masked_log_softmax_libm(
    logits: &[f32],
    mask: &[bool],
    temperature: f64,
    out: &mut [f64],
) -> f64 {
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

/// [`log_softmax_backward_one`] given the probabilities instead of the log-probabilities (as
/// [`masked_softmax`] writes them: no exponential computed again): adds
/// `g * (1[j == action] - probs[j])` into `grad_logits` for valid `j`.
pub fn softmax_backward_one(
    probs: &[f64],
    mask: &[bool],
    action: usize,
    g: f64,
    grad_logits: &mut [f32],
) {
    debug_assert_eq!(probs.len(), mask.len());
    debug_assert_eq!(probs.len(), grad_logits.len());
    crate::vexp::softmax_backward_one(probs, mask, action, g, grad_logits);
}

/// Samples an index from a row of probabilities (as [`masked_softmax`] writes them; entries
/// that are 0 are never drawn) given a uniform draw `u` in `[0, 1)`: the first index whose
/// running sum exceeds `u`. Falls back to the last positive entry against rounding; `None` when
/// no entry is positive.
pub fn sample_from_probs(probs: &[f64], u: f64) -> Option<usize> {
    let mut acc = 0.0;
    let mut last = None;
    for (j, &p) in probs.iter().enumerate() {
        if p <= 0.0 || p.is_nan() {
            continue;
        }
        acc += p;
        last = Some(j);
        if u < acc {
            return Some(j);
        }
    }
    last
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

    /// Rows like the bit-sequence policy's (blocks of 256 entries valid or masked together) and
    /// like random masks, with logits of several scales and temperatures.
    fn rows() -> Vec<(Vec<f32>, Vec<bool>, f64)> {
        use crate::rng::{Stream, below, stream, uniform};
        let mut rng = stream(7, Stream::Eval);
        let mut out = Vec::new();
        for case in 0..60 {
            let n = [1usize, 3, 7, 8, 9, 63, 64, 65, 300, 4096][case % 10];
            let scale = [0.1f64, 1.0, 10.0, 60.0][case % 4];
            let logits: Vec<f32> = (0..n)
                .map(|_| ((uniform(&mut rng) * 2.0 - 1.0) * scale) as f32)
                .collect();
            let mask: Vec<bool> = if case % 3 == 0 {
                let blocks: Vec<bool> = (0..n.div_ceil(256))
                    .map(|_| below(&mut rng, 2) == 1)
                    .collect();
                (0..n).map(|j| blocks[j / 256]).collect()
            } else {
                (0..n).map(|_| below(&mut rng, 4) != 0).collect()
            };
            let temperature = [1.0, 0.5, 2.0, 1.0 / 3.0][case % 4];
            out.push((logits, mask, temperature));
        }
        out
    }

    /// The vectorised masked softmax family against the plain `libm` loop it replaced: the
    /// log-normaliser and every log-probability within 1e-12 absolute (they differ by the
    /// polynomial's last-place errors and the order of the sum, about 1e-15 relative), the
    /// probabilities within 1e-12 relative of `exp(log p)`; masked entries exactly as before;
    /// the three entry points agree bitwise on the normaliser.
    #[test]
    fn vectorised_softmax_matches_the_libm_loop() {
        let mut worst = 0.0f64;
        for (logits, mask, t) in rows() {
            let n = logits.len();
            let (mut want, mut got, mut probs) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
            let z_want = masked_log_softmax_libm(&logits, &mask, t, &mut want);
            let z_got = masked_log_softmax(&logits, &mask, t, &mut got);
            assert_eq!(
                z_got.to_bits(),
                masked_logsumexp(&logits, &mask, t).to_bits()
            );
            assert_eq!(
                z_got.to_bits(),
                masked_softmax(&logits, &mask, t, &mut probs).to_bits()
            );
            if !mask.iter().any(|&v| v) {
                assert_eq!(z_want, f64::NEG_INFINITY);
                assert_eq!(z_got, f64::NEG_INFINITY);
                assert!(probs.iter().all(|&p| p == 0.0));
                continue;
            }
            worst = worst.max((z_got - z_want).abs());
            for j in 0..n {
                if !mask[j] {
                    assert_eq!(got[j], f64::NEG_INFINITY);
                    assert_eq!(probs[j], 0.0);
                    continue;
                }
                worst = worst.max((got[j] - want[j]).abs());
                // The log-probability masked_softmax's callers form from the normaliser.
                assert_eq!(
                    got[j].to_bits(),
                    (f64::from(logits[j]) * (1.0 / t) - z_got).to_bits()
                );
                let p = want[j].exp();
                assert!(
                    (probs[j] - p).abs() <= 1e-12 * p.max(1e-300),
                    "p {} vs {p}",
                    probs[j]
                );
            }
        }
        assert!(worst <= 1e-12, "largest difference {worst}");
    }

    #[test]
    fn softmax_backward_one_matches_the_log_form() {
        for (logits, mask, _) in rows() {
            let n = logits.len();
            let (mut lp, mut probs) = (vec![0.0; n], vec![0.0; n]);
            if masked_log_softmax(&logits, &mask, 1.0, &mut lp) == f64::NEG_INFINITY {
                continue;
            }
            masked_softmax(&logits, &mask, 1.0, &mut probs);
            for action in [0, n / 2, n - 1] {
                let (mut a, mut b) = (vec![0.25f32; n], vec![0.25f32; n]);
                log_softmax_backward_one(&lp, &mask, action, -1.7, &mut a);
                softmax_backward_one(&probs, &mask, action, -1.7, &mut b);
                for j in 0..n {
                    assert!((a[j] - b[j]).abs() <= 1e-6, "{j}: {} vs {}", a[j], b[j]);
                    if !mask[j] {
                        assert_eq!(b[j], 0.25);
                    }
                }
            }
        }
    }

    #[test]
    fn sample_from_probs_draws_what_sample_from_log_probs_draws() {
        for (logits, mask, t) in rows() {
            let n = logits.len();
            let (mut lp, mut probs) = (vec![0.0; n], vec![0.0; n]);
            masked_log_softmax(&logits, &mask, t, &mut lp);
            masked_softmax(&logits, &mask, t, &mut probs);
            let mut differ = 0;
            for k in 0..200 {
                let u = (f64::from(k) + 0.5) / 200.0;
                let a = sample_from_probs(&probs, u);
                let b = sample_from_log_probs(&lp, u);
                // Equal but where `u` falls within rounding of a boundary of the running sums.
                differ += usize::from(a != b);
                if let Some(j) = a {
                    assert!(mask[j] && probs[j] > 0.0);
                }
                assert_eq!(a.is_none(), !mask.iter().any(|&v| v));
            }
            assert!(differ <= 1, "{differ} of 200 draws differ");
        }
    }

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

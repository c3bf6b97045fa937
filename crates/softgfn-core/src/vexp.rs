//! Vectorised `exp` over rows of masked logits: the kernels under [`crate::math`]'s masked
//! softmax family.
//!
//! `libm`'s `exp` is a call per value that the compiler cannot vectorise; a policy row of the
//! bit-sequence environment at k = 8 has 4,096 entries, and the masked softmax of every state
//! (sampling, training, soft Bellman targets) spent more time in it than in any network kernel
//! but the GEMM. Here `e^x` is a branch-free polynomial that the compiler turns into vector code:
//! `x = n ln 2 + r` with `|r| <= ln 2 / 2`, the degree-13 Taylor polynomial of `e^r` in Horner form
//! (truncation error below 3e-18 relative), and `2^n` built in the exponent bits.
//!
//! Every function here is compiled twice, for AVX2 (four `f64` lanes) and for the baseline
//! target (two), and the one this CPU supports is chosen at run time. Both use the same
//! separate multiplies and adds in the same order (no fused multiply-add: Rust never contracts
//! them), so their results are bitwise equal: a run gives the same numbers on every x86-64 CPU.

/// `log2(e)`.
const LOG2E: f64 = std::f64::consts::LOG2_E;
/// `ln 2` rounded to 32 significant bits, so that `n * LN2_HI` is exact for `|n| < 2^20`.
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
/// `ln 2 - LN2_HI`.
const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
/// `1.5 * 2^52`: adding it rounds a value below `2^51` in magnitude to an integer held in the
/// low bits of the sum.
const SHIFT: f64 = 6_755_399_441_055_744.0;
/// Below this `e^x` (under about `3.3e-308`, near the smallest normal `f64`) is returned as 0.
const EXP_LO: f64 = -708.0;
/// Above this `e^x` is returned as `+inf` (the largest finite result is `e^709`).
const EXP_HI: f64 = 709.0;
/// Taylor coefficients `1 / i!` of `e^r`, `i = 2 .. 13`.
const TAYLOR: [f64; 12] = [
    0.5,
    1.0 / 6.0,
    1.0 / 24.0,
    1.0 / 120.0,
    1.0 / 720.0,
    1.0 / 5_040.0,
    1.0 / 40_320.0,
    1.0 / 362_880.0,
    1.0 / 3_628_800.0,
    1.0 / 39_916_800.0,
    1.0 / 479_001_600.0,
    1.0 / 6_227_020_800.0,
];

/// `e^x` (within one unit in the last place of `libm`'s `exp` for `-708 <= x <= 709`, tested),
/// `0` below `-708` (and for `-inf`), `+inf` above `709`, NaN for NaN. Branch-free, so that
/// loops over it vectorise.
#[inline(always)]
pub(crate) fn exp(x: f64) -> f64 {
    // NaN stays NaN and flows through to the result.
    let xc = x.clamp(EXP_LO, EXP_HI);
    let t = xc * LOG2E + SHIFT;
    let n = t - SHIFT;
    let r = (xc - n * LN2_HI) - n * LN2_LO;
    // e^r = 1 + (r + r^2 P(r)), P of degree 11 in Estrin's scheme: pairs, then pairs of pairs,
    // so that the dependency chain is 8 operations deep instead of Horner's 22 (the loop
    // is latency-bound otherwise).
    let c = &TAYLOR;
    let r2 = r * r;
    let r4 = r2 * r2;
    let r8 = r4 * r4;
    let q0 = c[0] + c[1] * r;
    let q1 = c[2] + c[3] * r;
    let q2 = c[4] + c[5] * r;
    let q3 = c[6] + c[7] * r;
    let q4 = c[8] + c[9] * r;
    let q5 = c[10] + c[11] * r;
    let s0 = q0 + q1 * r2;
    let s1 = q2 + q3 * r2;
    let s2 = q4 + q5 * r2;
    let big_p = (s0 + s1 * r4) + s2 * r8;
    let p = 1.0 + (r + r2 * big_p);
    // `n` is in [-1021, 1023], so `2^n` is a normal number built from its exponent bits.
    let k = (t.to_bits() as i64).wrapping_sub(SHIFT.to_bits() as i64);
    let y = p * f64::from_bits((k.wrapping_add(1023) << 52) as u64);
    if x < EXP_LO {
        0.0
    } else if x > EXP_HI {
        f64::INFINITY
    } else {
        y
    }
}

/// Defines `fn $name` that runs `$body` compiled for AVX2 when this CPU has it, and for the
/// baseline target otherwise (the same operations in the same order: the results are equal).
macro_rules! dispatch {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty $body:block) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) -> $ret {
            #[inline(always)]
            fn body($($arg: $ty),*) -> $ret $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                fn avx2($($arg: $ty),*) -> $ret {
                    body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    #[allow(unsafe_code)]
                    // SAFETY: `avx2` only differs from `body` in being compiled for AVX2, which
                    // this CPU supports (checked just above).
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

/// Entries per block of the row loops: a block whose entries are all masked is skipped, the
/// others run as loops long enough for the compiler to vectorise (it unrolls short ones
/// completely instead).
const BLOCK: usize = 64;

/// Independent partial sums (and maxima): whole vectors of either target, so that the adds of a
/// reduction do not wait for each other.
const LANES: usize = 8;

dispatch! {
/// The largest valid logit (`-inf` when none is valid; NaN logits are ignored, as `f64::max`
/// ignores them).
pub(crate) fn masked_max(logits: &[f32], mask: &[bool]) -> f32 {
    let n = logits.len().min(mask.len());
    let (logits, mask) = (&logits[..n], &mask[..n]);
    let mut acc = [f32::NEG_INFINITY; LANES];
    let (lc, mc) = (logits.chunks_exact(LANES), mask.chunks_exact(LANES));
    let (lr, mr) = (lc.remainder(), mc.remainder());
    for (l, m) in lc.zip(mc) {
        for j in 0..LANES {
            // A select by bits: a branch here would keep the compiler from vectorising.
            let keep = u32::from(m[j]).wrapping_neg();
            let v = f32::from_bits((l[j].to_bits() & keep) | (f32::NEG_INFINITY.to_bits() & !keep));
            acc[j] = if v > acc[j] { v } else { acc[j] };
        }
    }
    let mut top = f32::NEG_INFINITY;
    for &l in &acc {
        top = if l > top { l } else { top };
    }
    for (&l, &v) in lr.iter().zip(mr) {
        top = if v && l > top { l } else { top };
    }
    top
}
}

dispatch! {
/// `sum over valid j of e^(logits[j] * inv_t - shift)`; with `terms`, also writes each term
/// there (0 at masked entries). Blocks of [`BLOCK`] masked entries are skipped.
pub(crate) fn masked_exp_sum(
    logits: &[f32],
    mask: &[bool],
    inv_t: f64,
    shift: f64,
    terms: Option<&mut [f64]>,
) -> f64 {
    let n = logits.len().min(mask.len());
    let (logits, mask) = (&logits[..n], &mask[..n]);
    let mut terms = terms;
    let mut acc = [0.0f64; LANES];
    let mut e = [0.0f64; BLOCK];
    for at in (0..n).step_by(BLOCK) {
        let len = BLOCK.min(n - at);
        let (l, m) = (&logits[at..at + len], &mask[at..at + len]);
        let e = &mut e[..len];
        if m.iter().all(|&v| !v) {
            if let Some(t) = terms.as_deref_mut() {
                t[at..at + len].fill(0.0);
            }
            continue;
        }
        for ((x, &lj), &v) in e.iter_mut().zip(l).zip(m) {
            *x = if v {
                f64::from(lj) * inv_t - shift
            } else {
                f64::NEG_INFINITY
            };
        }
        for x in e.iter_mut() {
            *x = exp(*x);
        }
        let chunks = e.chunks_exact(LANES);
        let rest = chunks.remainder();
        for c in chunks {
            for j in 0..LANES {
                acc[j] += c[j];
            }
        }
        for (a, x) in acc.iter_mut().zip(rest) {
            *a += x;
        }
        if let Some(t) = terms.as_deref_mut() {
            t[at..at + len].copy_from_slice(e);
        }
    }
    let mut s = 0.0;
    for pair in acc.chunks_exact(2) {
        s += pair[0] + pair[1];
    }
    s
}
}

dispatch! {
/// `v[j] *= c` for every entry.
pub(crate) fn scale(v: &mut [f64], c: f64) -> () {
    for x in v.iter_mut() {
        *x *= c;
    }
}
}

dispatch! {
/// `out[j] = logits[j] * inv_t - log_norm` at valid entries, `-inf` at masked ones.
pub(crate) fn write_log_probs(logits: &[f32], mask: &[bool], inv_t: f64, log_norm: f64, out: &mut [f64]) -> () {
    for ((o, &l), &v) in out.iter_mut().zip(logits).zip(mask) {
        *o = if v {
            f64::from(l) * inv_t - log_norm
        } else {
            f64::NEG_INFINITY
        };
    }
}
}

dispatch! {
/// `grad[j] += g * (1[j == action] - p[j])` (the difference and the product in `f64`, then
/// rounded to `f32`) at valid entries.
pub(crate) fn softmax_backward_one(p: &[f64], mask: &[bool], action: usize, g: f64, grad: &mut [f32]) -> () {
    let n = p.len().min(mask.len()).min(grad.len());
    let (p, mask, grad) = (&p[..n], &mask[..n], &mut grad[..n]);
    let a = action.min(n);
    let others = |grad: &mut [f32], p: &[f64], mask: &[bool]| {
        for ((d, &pj), &v) in grad.iter_mut().zip(p).zip(mask) {
            *d = if v { *d + (g * -pj) as f32 } else { *d };
        }
    };
    others(&mut grad[..a], &p[..a], &mask[..a]);
    if a < n {
        if mask[a] {
            grad[a] += (g * (1.0 - p[a])) as f32;
        }
        others(&mut grad[a + 1..], &p[a + 1..], &mask[a + 1..]);
    }
}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[ignore = "timing"]
    fn timing() {
        let n = 4096;
        let logits: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1000) as f32 / 100.0).collect();
        let mask: Vec<bool> = (0..n).map(|i| (i / 256) % 2 == 0).collect();
        let mut terms = vec![0.0; n];
        let reps = 2000;
        let t = std::time::Instant::now();
        let mut s = 0.0;
        for _ in 0..reps {
            s += masked_exp_sum(&logits, &mask, 1.0, 10.0, Some(&mut terms));
        }
        let el = t.elapsed().as_secs_f64();
        eprintln!(
            "masked_exp_sum: {:.2} ns per valid entry ({s})",
            el * 1e9 / (reps * n / 2) as f64
        );
        let t = std::time::Instant::now();
        for _ in 0..reps {
            s += masked_max(&logits, &mask) as f64;
        }
        let el = t.elapsed().as_secs_f64();
        eprintln!(
            "masked_max: {:.2} ns per entry ({s})",
            el * 1e9 / (reps * n) as f64
        );
        let t = std::time::Instant::now();
        for _ in 0..reps {
            for (x, &v) in logits.iter().zip(&mask) {
                if v {
                    s += (f64::from(*x) - 10.0).exp();
                }
            }
        }
        let el = t.elapsed().as_secs_f64();
        eprintln!(
            "libm: {:.2} ns per valid entry ({s})",
            el * 1e9 / (reps * n / 2) as f64
        );
    }

    /// Units in the last place between `a` and `b` (both finite, positive).
    fn ulps(a: f64, b: f64) -> u64 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs()
    }

    #[test]
    fn exp_is_within_one_ulp_of_libm() {
        let mut worst = 0;
        let mut x = -708.0f64;
        while x <= 709.0 {
            worst = worst.max(ulps(exp(x), x.exp()));
            x += 0.001_037;
        }
        // Dense near 0, where softmax terms live.
        for i in 0..200_000 {
            let x = -40.0 * f64::from(i) / 200_000.0;
            worst = worst.max(ulps(exp(x), x.exp()));
        }
        assert!(worst <= 1, "worst error {worst} ulps");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(f64::NEG_INFINITY), 0.0);
        assert_eq!(exp(-800.0), 0.0);
        assert_eq!(exp(800.0), f64::INFINITY);
        assert!(exp(f64::NAN).is_nan());
    }
}

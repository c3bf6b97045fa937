//! The reward transform of both environments: `R(v) = scale * (max(v, floor) / normaliser)^exponent`.

use serde::{Deserialize, Serialize};

/// The proxy floor of the original experiments (`max(v, 1e-3)`).
pub const PROXY_FLOOR: f64 = 1e-3;

/// Turns a proxy value `v` into a reward `R(v) = scale * (max(v, floor) / normaliser)^exponent`.
///
/// With `normaliser = max_x max(v(x), floor)` this is the reward of the original experiments,
/// `max(v, floor)^exponent * scale / max_x max(v(x), floor)^exponent`: the best object gets
/// reward `scale`. Rewards are positive and finite for every finite `v` (for `exponent > 0`,
/// `floor > 0`); log-rewards are computed directly in log space.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProxyReward {
    /// The exponent (`5` for qm9str, `6` for sehstr).
    pub exponent: f64,
    /// The reward of the best object (`100` for qm9str, `10` for sehstr).
    pub scale: f64,
    /// Proxy values below it count as it.
    pub floor: f64,
    /// The maximum of `max(v, floor)` over all objects.
    pub normaliser: f64,
}

impl ProxyReward {
    /// `log R(v) = log(scale) + exponent * log(max(v, floor) / normaliser)`.
    #[inline]
    pub fn log_reward(&self, v: f64) -> f64 {
        self.scale.ln() + self.exponent * (v.max(self.floor) / self.normaliser).ln()
    }

    /// `R(v)`; integer exponents use repeated multiplication (`powi`).
    #[inline]
    pub fn reward(&self, v: f64) -> f64 {
        self.scale * self.ratio_pow(v)
    }

    /// `(max(v, floor) / normaliser)^exponent`.
    #[inline]
    pub(crate) fn ratio_pow(&self, v: f64) -> f64 {
        let r = v.max(self.floor) / self.normaliser;
        if self.exponent.fract() == 0.0 && self.exponent.abs() <= 64.0 {
            r.powi(self.exponent as i32)
        } else {
            r.powf(self.exponent)
        }
    }
}

/// NumPy's linear interpolation `_lerp(a, b, t)` (used by `np.percentile`): `a + (b - a) t`,
/// computed from the nearer end.
pub(crate) fn numpy_lerp(a: f64, b: f64, t: f64) -> f64 {
    let d = b - a;
    if t >= 0.5 {
        b - d * (1.0 - t)
    } else {
        a + d * t
    }
}

/// Neumaier's compensated sum.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Neumaier {
    sum: f64,
    c: f64,
}

impl Neumaier {
    #[inline]
    pub(crate) fn add(&mut self, x: f64) {
        let t = self.sum + x;
        if self.sum.abs() >= x.abs() {
            self.c += (self.sum - t) + x;
        } else {
            self.c += (x - t) + self.sum;
        }
        self.sum = t;
    }

    pub(crate) fn value(&self) -> f64 {
        self.sum + self.c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewards_match_the_original_formula() {
        let r = ProxyReward {
            exponent: 5.0,
            scale: 100.0,
            floor: 1e-3,
            normaliser: 17.5,
        };
        for v in [-2.0, 0.0, 1e-4, 3.2, 17.5] {
            let want = f64::max(v, 1e-3).powf(5.0) * 100.0 / 17.5f64.powf(5.0);
            assert!((r.reward(v) / want - 1.0).abs() < 1e-14, "{v}");
            assert!((r.log_reward(v) - want.ln()).abs() < 1e-12, "{v}");
        }
        assert_eq!(r.reward(17.5), 100.0);
        let half = ProxyReward { exponent: 2.5, ..r };
        assert!((half.reward(3.0) - 100.0 * (3.0f64 / 17.5).powf(2.5)).abs() < 1e-12);
    }

    #[test]
    fn lerp_and_sum() {
        assert_eq!(numpy_lerp(1.0, 3.0, 0.25), 1.5);
        assert_eq!(numpy_lerp(1.0, 3.0, 0.75), 2.5);
        assert_eq!(numpy_lerp(2.0, 2.0, 0.3), 2.0);
        let mut s = Neumaier::default();
        for x in [1e16, 1.0, -1e16, 1.0] {
            s.add(x);
        }
        assert_eq!(s.value(), 2.0);
    }
}

//! Schedules over their own horizon in iterations.
//!
//! A schedule never reads the run's `iterations`: extending a run (or resuming it with a larger
//! budget) never rewrites its past. The paper's horizon is 62,500 iterations (1e6 trajectories of
//! 16 per iteration).

use serde::{Deserialize, Serialize};

/// The paper's default horizon: 1e6 trajectories / 16 per iteration.
pub const PAPER_HORIZON: u64 = 62_500;

/// Linear interpolation from `start` to `end` over `horizon` iterations, then constant.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinearSchedule {
    /// Value at iteration 0.
    pub start: f64,
    /// Value from iteration `horizon` on.
    pub end: f64,
    /// Iterations to go from `start` to `end` (0 means always `end`).
    pub horizon: u64,
}

impl LinearSchedule {
    /// A constant schedule.
    pub fn constant(v: f64) -> Self {
        Self {
            start: v,
            end: v,
            horizon: 0,
        }
    }

    /// The value at `iteration`.
    pub fn value(&self, iteration: u64) -> f64 {
        if self.horizon == 0 || iteration >= self.horizon {
            return self.end;
        }
        let f = iteration as f64 / self.horizon as f64;
        self.start + (self.end - self.start) * f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_values() {
        let s = LinearSchedule {
            start: 1.0,
            end: 0.0,
            horizon: 100,
        };
        assert_eq!(s.value(0), 1.0);
        assert_eq!(s.value(50), 0.5);
        assert_eq!(s.value(100), 0.0);
        assert_eq!(s.value(1000), 0.0);
        assert_eq!(LinearSchedule::constant(0.3).value(7), 0.3);
    }
}

//! Learning-rate schedules with warmup, as transformers' `get_scheduler` defines them.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// the base rate after warmup
    #[default]
    Constant,
    /// linear decay to 0 at the last step
    Linear,
    /// half a cosine from the base rate to 0 at the last step
    Cosine,
}

/// Learning rate for optimizer step `step` (0-based: the first update uses step 0).
pub fn lr_at(schedule: Schedule, base: f64, step: usize, warmup: usize, total: usize) -> f64 {
    if step < warmup {
        return base * step as f64 / warmup.max(1) as f64;
    }
    let factor = match schedule {
        Schedule::Constant => 1.0,
        Schedule::Linear => {
            ((total as f64 - step as f64) / (total.saturating_sub(warmup)).max(1) as f64).max(0.0)
        }
        Schedule::Cosine => {
            let progress = (step - warmup) as f64 / (total.saturating_sub(warmup)).max(1) as f64;
            (0.5 * (1.0 + (std::f64::consts::PI * progress).cos())).max(0.0)
        }
    };
    base * factor
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_decay() {
        assert_eq!(lr_at(Schedule::Constant, 1.0, 0, 4, 10), 0.0);
        assert_eq!(lr_at(Schedule::Constant, 1.0, 2, 4, 10), 0.5);
        assert_eq!(lr_at(Schedule::Constant, 1.0, 7, 4, 10), 1.0);
        assert_eq!(lr_at(Schedule::Linear, 1.0, 4, 4, 10), 1.0);
        assert!((lr_at(Schedule::Linear, 1.0, 7, 4, 10) - 0.5).abs() < 1e-12);
        assert_eq!(lr_at(Schedule::Linear, 1.0, 10, 4, 10), 0.0);
        assert!((lr_at(Schedule::Cosine, 1.0, 7, 4, 10) - 0.5).abs() < 1e-12);
        assert!(lr_at(Schedule::Cosine, 1.0, 10, 4, 10).abs() < 1e-12);
        // no warmup: the first step uses the full rate
        assert_eq!(lr_at(Schedule::Cosine, 2.0, 0, 0, 10), 2.0);
    }
}

//! New-task gain against forgetting: how much a fine-tune learned on the suite it was trained
//! for, and how much it lost on all the others.

use serde::Serialize;

use super::compare::{Comparison, SuiteComparison};
use super::GateError;
use crate::stats::Interval;
use crate::suite::scorer::Unit;

#[derive(Debug, Clone, Serialize)]
pub struct Tradeoff {
    pub finetuned_model: String,
    /// the suite that measures the new task
    pub new_task: String,
    /// Δ on the new-task suite (fine-tune − base, score units)
    pub gain: f64,
    /// its decision interval
    pub gain_ci: Interval,
    /// mean drop over the other suites: mean of (base − fine-tune); positive = forgot
    pub forgetting: f64,
    /// normal interval of that mean, each suite's standard error taken from its decision
    /// interval's half-width (so a suite where nothing flipped still counts its uncertainty; the
    /// suites are disjoint item sets, so their Δs are independent)
    pub forgetting_ci: Interval,
    /// the suites `forgetting` averages over
    pub other_suites: Vec<String>,
}

/// Split a comparison into the gain on `new_task` and the forgetting on every other suite, at
/// the comparison's confidence.
pub fn tradeoff(c: &Comparison, new_task: &str) -> Result<Tradeoff, GateError> {
    let task = c
        .suites
        .iter()
        .find(|s| s.suite == new_task)
        .ok_or_else(|| {
            GateError::Invalid(format!(
                "new-task suite `{new_task}` is not among the compared suites ({})",
                c.suites
                    .iter()
                    .map(|s| s.suite.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
    let others: Vec<_> = c.suites.iter().filter(|s| s.suite != new_task).collect();
    if others.is_empty() {
        return Err(GateError::Invalid(format!(
            "forgetting needs a suite besides the new task `{new_task}`"
        )));
    }
    if let Some(s) = c.suites.iter().find(|s| s.unit != Unit::Proportion) {
        return Err(GateError::Invalid(format!(
            "gain and forgetting average suites in points; `{}` is scored in {}: compare it without --new-task",
            s.suite,
            s.unit.label()
        )));
    }
    let k = others.len() as f64;
    let forgetting = -others.iter().map(|s| s.delta).sum::<f64>() / k;
    let half_se = |s: &SuiteComparison| (s.ci.upper - s.ci.lower) / (2.0 * s.critical);
    let se = others
        .iter()
        .map(|s| half_se(s).powi(2))
        .sum::<f64>()
        .sqrt()
        / k;
    let z = crate::stats::dist::normal_quantile(0.5 + c.confidence / 2.0)
        .map_err(|e| GateError::Stats(e.to_string()))?;
    Ok(Tradeoff {
        finetuned_model: c.finetuned_model.clone(),
        new_task: new_task.to_string(),
        gain: task.delta,
        gain_ci: task.ci,
        forgetting,
        forgetting_ci: Interval {
            lower: forgetting - z * se,
            upper: forgetting + z * se,
        },
        other_suites: others.iter().map(|s| s.suite.clone()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::IntervalMethod;
    use crate::suite::scorer::Direction;

    fn suite(name: &str, delta: f64, se: f64) -> SuiteComparison {
        // an interval of half-width 1.96·se
        let z = 1.959963984540054;
        SuiteComparison {
            suite: name.into(),
            capability: "c".into(),
            metric: "acc".into(),
            unit: Unit::Proportion,
            direction: Direction::HigherIsBetter,
            n: 100,
            base: 0.5,
            finetuned: 0.5 + delta,
            delta,
            ci: Interval {
                lower: delta - z * se,
                upper: delta + z * se,
            },
            interval: IntervalMethod::TangoScore,
            critical: z,
            se,
            clusters: None,
            design_effect: 1.0,
            counts: None,
            binary: true,
            p_value: 1.0,
            p_holm: 1.0,
            mcnemar_p: None,
            sigma: 0.5,
            mde_excess: 0.1,
            mde: Some(0.1),
            bootstrap_ci: Interval {
                lower: delta,
                upper: delta,
            },
            relative_drop: None,
            format_failures_base: 0,
            format_failures_ft: 0,
            flipped: vec![],
        }
    }

    fn comparison(suites: Vec<SuiteComparison>) -> Comparison {
        Comparison {
            base_model: "b".into(),
            finetuned_model: "f".into(),
            confidence: 0.95,
            resamples: 100,
            seed: 0,
            suites,
            macro_delta: None,
            worst_suite: None,
        }
    }

    #[test]
    fn gain_is_the_new_task_and_forgetting_the_mean_drop_elsewhere() {
        let c = comparison(vec![
            suite("new", 0.30, 0.05),
            suite("a", -0.04, 0.03),
            suite("b", -0.02, 0.04),
        ]);
        let t = tradeoff(&c, "new").unwrap();
        assert_eq!(t.gain, 0.30);
        assert!((t.forgetting - 0.03).abs() < 1e-12);
        // SE of the mean: sqrt(0.03² + 0.04²) / 2 = 0.025; 1.96 × 0.025 = 0.049
        assert!((t.forgetting_ci.upper - t.forgetting - 0.0490).abs() < 1e-4);
        assert_eq!(t.other_suites, vec!["a", "b"]);
    }

    #[test]
    fn an_unknown_or_lonely_new_task_is_an_error() {
        let c = comparison(vec![suite("new", 0.3, 0.05), suite("a", 0.0, 0.01)]);
        let e = tradeoff(&c, "nope").unwrap_err().to_string();
        assert!(e.contains("`nope`") && e.contains("new, a"), "{e}");
        let c = comparison(vec![suite("new", 0.3, 0.05)]);
        assert!(tradeoff(&c, "new").is_err());
    }
}

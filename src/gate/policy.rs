//! `gate.toml`: per-suite limits, and the verdicts they give.
//!
//! Fail closed: a policy that cannot be applied as written — a margin outside its range, NaN,
//! a suite it names that is not gated, a suite in nats with no margin in nats — is an error
//! (exit 2), and so is any statistic that cannot be computed. `inconclusive = "pass"` only
//! turns a genuine "the interval straddles the margin" into a pass, never an error.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::compare::{Comparison, SuiteComparison};
use super::GateError;
use crate::stats::{exact_p_value, non_inferiority, Alternative, Verdict, BERGER_BOOS_GAMMA};
use crate::suite::scorer::Unit;

/// The largest binary suite whose verdict is confirmed by the exact test (about a second of
/// computation there); larger suites rely on Tango's interval alone.
pub const MAX_EXACT_N: usize = 20_000;

/// The margin when a policy gives none, for suites scored in points: 2 points.
pub const DEFAULT_MARGIN: f64 = 0.02;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Inconclusive {
    /// not enough evidence either way fails the gate (fail-closed)
    #[default]
    Fail,
    /// …or passes it
    Pass,
}

/// One table of limits: `[default]` or `[suites.NAME]`. A suite's table overrides the default
/// key by key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SuitePolicy {
    /// non-inferiority margin δ in the metric's unit (0.02 = 2 points; nats/token for NLL): pass
    /// when the upper bound of the drop is ≤ δ. `[default]`'s applies to suites in points only.
    #[serde(default)]
    pub margin: Option<f64>,
    /// the margin as a share of the base's score instead (0.05 = 5% of it)
    #[serde(default)]
    pub relative_margin: Option<f64>,
    /// fail when the observed drop exceeds this (metric units; `[default]`'s: points only)
    #[serde(default)]
    pub max_drop: Option<f64>,
    /// fail when the observed relative drop exceeds this
    #[serde(default)]
    pub max_relative_drop: Option<f64>,
    /// no Pass for a suite whose MDE (the true drop it fails with 80% power) is larger than
    /// this (metric units; `[default]`'s: points only): a suite too small to tell is
    /// inconclusive
    #[serde(default)]
    pub max_mde: Option<f64>,
    /// what an interval that straddles the margin does (default: fail)
    #[serde(default)]
    pub inconclusive: Option<Inconclusive>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// two-sided level of the intervals; each verdict errs with probability ≤ (1 − c)/2
    #[serde(default = "default_confidence")]
    pub confidence: f64,
    #[serde(default)]
    pub default: SuitePolicy,
    /// per-suite overrides
    #[serde(default)]
    pub suites: BTreeMap<String, SuitePolicy>,
    /// suites that must be present; a missing one is an error
    #[serde(default)]
    pub required: Vec<String>,
}

fn default_confidence() -> f64 {
    0.95
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            confidence: default_confidence(),
            default: SuitePolicy::default(),
            suites: BTreeMap::new(),
            required: vec![],
        }
    }
}

/// A suite's limits with the default filled in and checked, in its metric's unit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Limits {
    /// the margin δ (absolute, metric units)
    pub margin: f64,
    pub max_drop: Option<f64>,
    pub max_relative_drop: Option<f64>,
    pub max_mde: Option<f64>,
    pub inconclusive: Inconclusive,
}

#[derive(Debug, Clone, Serialize)]
pub struct SuiteVerdict {
    pub suite: String,
    pub verdict: Verdict,
    /// whether this suite fails the gate
    pub fails: bool,
    pub reason: String,
    /// the limits applied
    pub limits: Limits,
    /// the true drop this suite fails with 80% power ([`super::compare::mde_at`]); `None`: no
    /// outcome of these items fails
    pub mde: Option<f64>,
    /// the exact test's p-value at the margin, where it confirmed (or overturned) the verdict
    pub exact_p: Option<f64>,
}

impl Policy {
    /// Read and check `gate.toml`.
    pub fn from_toml(text: &str) -> Result<Policy, String> {
        let p: Policy = toml::from_str(text).map_err(|e| e.to_string())?;
        p.check()?;
        Ok(p)
    }

    /// Read and check a `gate.toml` file; an error names it.
    pub fn read(path: &std::path::Path) -> Result<Policy, GateError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| GateError::Policy(format!("{}: {e}", path.display())))?;
        Policy::from_toml(&text).map_err(|e| GateError::Policy(format!("{}: {e}", path.display())))
    }

    /// The checks that need no comparison: the confidence and each table's ranges.
    pub fn check(&self) -> Result<(), String> {
        if !(self.confidence > 0.5 && self.confidence < 1.0) {
            return Err(format!(
                "confidence = {} must lie strictly between 0.5 and 1 (e.g. 0.95)",
                self.confidence
            ));
        }
        check_table("[default]", &self.default)?;
        for (name, t) in &self.suites {
            check_table(&format!("[suites.{name}]"), t)?;
        }
        Ok(())
    }

    /// The limits of one suite of the comparison, in its unit.
    pub fn limits(&self, s: &SuiteComparison) -> Result<Limits, GateError> {
        let bad = |m: String| GateError::Policy(format!("suite `{}`: {m}", s.suite));
        let own = self.suites.get(&s.suite).cloned().unwrap_or_default();
        let d = &self.default;
        let points = s.unit == Unit::Proportion;
        // keys in a unit: the suite's own, or `[default]`'s for suites in points
        let unit_key = |own: Option<f64>, default: Option<f64>| own.or(default.filter(|_| points));
        let margin = match (own.margin, own.relative_margin) {
            (Some(m), None) => m,
            (None, Some(r)) => r * s.base.abs(),
            (Some(_), Some(_)) => {
                return Err(bad("give margin or relative_margin, not both".into()))
            }
            (None, None) => match (d.relative_margin, d.margin) {
                (Some(r), _) => r * s.base.abs(),
                (None, m) if points => m.unwrap_or(DEFAULT_MARGIN),
                (None, _) => {
                    return Err(bad(format!(
                        "it is scored in {} (metric `{}`), so [default]'s margin (in points) does not apply: give it a margin in its unit ([suites.{}] margin = …) or a relative_margin",
                        s.unit.label(),
                        s.metric,
                        s.suite
                    )))
                }
            },
        };
        if points && margin >= 1.0 {
            return Err(bad(format!(
                "margin {margin} is not below 1: margins are in score units (0.02 = 2 points)"
            )));
        }
        let limits = Limits {
            margin,
            max_drop: unit_key(own.max_drop, d.max_drop),
            max_relative_drop: own.max_relative_drop.or(d.max_relative_drop),
            max_mde: unit_key(own.max_mde, d.max_mde),
            inconclusive: own.inconclusive.or(d.inconclusive).unwrap_or_default(),
        };
        if !(limits.margin >= 0.0 && limits.margin.is_finite()) {
            return Err(bad(format!(
                "the margin {} must be finite and ≥ 0",
                limits.margin
            )));
        }
        Ok(limits)
    }

    /// Check the policy against the suites it gates: every suite it names exists, every
    /// required suite is gated.
    pub fn check_suites(&self, c: &Comparison) -> Result<(), GateError> {
        let names: Vec<&str> = c.suites.iter().map(|s| s.suite.as_str()).collect();
        let known = names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ");
        for n in self.suites.keys() {
            if !names.contains(&n.as_str()) {
                return Err(GateError::Policy(format!(
                    "[suites.{n}] names a suite that is not gated (gated: {known})"
                )));
            }
        }
        for r in &self.required {
            if !names.contains(&r.as_str()) {
                return Err(GateError::Mismatch(format!(
                    "required suite `{r}` is not in the comparison (gated: {known})"
                )));
            }
        }
        Ok(())
    }
}

/// Ranges that hold whatever the unit.
fn check_table(name: &str, t: &SuitePolicy) -> Result<(), String> {
    let finite_nonneg = |key: &str, v: Option<f64>| match v {
        Some(x) if !(x >= 0.0 && x.is_finite()) => {
            Err(format!("{name} {key} = {x} must be finite and ≥ 0"))
        }
        _ => Ok(()),
    };
    finite_nonneg("margin", t.margin)?;
    finite_nonneg("max_drop", t.max_drop)?;
    for (key, v) in [
        ("relative_margin", t.relative_margin),
        ("max_relative_drop", t.max_relative_drop),
    ] {
        if let Some(x) = v {
            if !(0.0..1.0).contains(&x) {
                return Err(format!("{name} {key} = {x} must lie in [0, 1)"));
            }
        }
    }
    if let Some(x) = t.max_mde {
        if !(x > 0.0 && x.is_finite()) {
            return Err(format!("{name} max_mde = {x} must be finite and > 0"));
        }
    }
    if t.margin.is_some() && t.relative_margin.is_some() {
        return Err(format!("{name} gives margin and relative_margin: give one"));
    }
    Ok(())
}

/// Apply the policy to a comparison. Any input the policy cannot judge is an error.
pub fn judge(c: &Comparison, p: &Policy) -> Result<Vec<SuiteVerdict>, GateError> {
    p.check().map_err(GateError::Policy)?;
    if (c.confidence - p.confidence).abs() > 1e-12 {
        return Err(GateError::Invalid(format!(
            "the comparison's intervals are at {} but the policy asks {}",
            c.confidence, p.confidence
        )));
    }
    p.check_suites(c)?;
    c.suites
        .iter()
        .map(|s| judge_suite(s, p, c.confidence))
        .collect()
}

fn judge_suite(
    s: &SuiteComparison,
    p: &Policy,
    confidence: f64,
) -> Result<SuiteVerdict, GateError> {
    let limits = p.limits(s)?;
    let stats_err =
        |e: crate::stats::StatsError| GateError::Stats(format!("suite `{}`: {e}", s.suite));
    let ni = non_inferiority(s.delta, s.ci, limits.margin, confidence).map_err(stats_err)?;
    let alpha = ni.one_sided_alpha;
    let unit = s.unit;
    let show = |x: f64| format!("{:.*} {}", unit.decimals(), unit.display(x), unit.label());
    let pct = format!("{}%", 100.0 * confidence);
    let (margin, lo, hi, est) = (
        show(limits.margin),
        show(ni.drop_lower),
        show(ni.drop_upper),
        show(ni.drop),
    );
    let mut verdict = ni.verdict;
    let mut reason = match verdict {
        Verdict::Pass => format!(
            "the drop is at most {hi} (upper end of its {pct} interval), within the margin {margin}"
        ),
        Verdict::Fail => format!(
            "the drop is at least {lo} (lower end of its {pct} interval), beyond the margin {margin}"
        ),
        Verdict::Inconclusive if ni.drop <= limits.margin => format!(
            "the estimated drop {est} is within the margin {margin}, but the upper end of its {pct} interval, {hi}, is not: too few items to show non-inferiority"
        ),
        Verdict::Inconclusive => format!(
            "the estimated drop {est} exceeds the margin {margin}, but the lower end of its {pct} interval, {lo}, does not: the excess is not significant"
        ),
    };
    // binary items without clusters: the exact test at the margin must agree
    let mut exact_p = None;
    let exact = s.binary && s.clusters.is_none() && s.n <= MAX_EXACT_N && limits.margin < 1.0;
    if let (true, Some(counts), Verdict::Pass | Verdict::Fail) = (exact, s.counts, verdict) {
        let alternative = match verdict {
            Verdict::Pass => Alternative::DropBelow,
            _ => Alternative::DropAbove,
        };
        let pv = exact_p_value(
            counts.losses as u64,
            counts.gains as u64,
            s.n as u64,
            limits.margin,
            alternative,
            BERGER_BOOS_GAMMA,
        )
        .map_err(stats_err)?;
        exact_p = Some(pv);
        if pv > alpha {
            reason = format!(
                "{reason}; but the exact test at the margin gives p = {pv:.4} > {alpha}: {}",
                if verdict == Verdict::Pass {
                    "too few items to show non-inferiority"
                } else {
                    "the excess is not significant"
                }
            );
            verdict = Verdict::Inconclusive;
        }
    }
    let mde = super::compare::mde_at(s, limits.margin, confidence).map_err(stats_err)?;
    if let (Verdict::Pass, Some(m)) = (verdict, limits.max_mde) {
        if mde.is_none_or(|d| d > m) {
            verdict = Verdict::Inconclusive;
            reason = format!(
                "{reason}; but {}, more than max_mde {}: too small to tell",
                match mde {
                    Some(d) => format!(
                        "this suite fails only a drop of {} or more with 80% power",
                        show(d)
                    ),
                    None => "no drop these items could show fails the gate".into(),
                },
                show(m)
            );
        }
    }
    let mut fails = match verdict {
        Verdict::Pass => false,
        Verdict::Fail => true,
        Verdict::Inconclusive => limits.inconclusive == Inconclusive::Fail,
    };
    let drop = s.drop();
    if let Some(m) = limits.max_drop {
        if drop > m {
            fails = true;
            reason.push_str(&format!(
                "; drop {} exceeds max_drop {}",
                show(drop),
                show(m)
            ));
        }
    }
    if let (Some(m), Some(r)) = (limits.max_relative_drop, s.relative_drop) {
        if r > m {
            fails = true;
            reason.push_str(&format!(
                "; relative drop {r:.3} exceeds max_relative_drop {m}"
            ));
        }
    }
    Ok(SuiteVerdict {
        suite: s.suite.clone(),
        verdict,
        fails,
        reason,
        limits,
        mde,
        exact_p,
    })
}

//! `gate.toml`: per-suite limits, and the verdicts they give.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::compare::Comparison;
use crate::stats::{non_inferiority, Verdict};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Inconclusive {
    /// not enough evidence either way fails the gate (fail-closed)
    #[default]
    Fail,
    /// …or passes it
    Pass,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuitePolicy {
    /// non-inferiority margin δ: pass when the upper bound of the drop is ≤ δ
    pub margin: f64,
    /// fail when the observed drop exceeds this (absolute points)
    #[serde(default)]
    pub max_drop: Option<f64>,
    /// fail when the observed relative drop exceeds this
    #[serde(default)]
    pub max_relative_drop: Option<f64>,
    #[serde(default)]
    pub inconclusive: Inconclusive,
}

impl Default for SuitePolicy {
    fn default() -> Self {
        SuitePolicy {
            margin: 0.02,
            max_drop: None,
            max_relative_drop: None,
            inconclusive: Inconclusive::Fail,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
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

#[derive(Debug, Clone, Serialize)]
pub struct SuiteVerdict {
    pub suite: String,
    pub verdict: Verdict,
    /// whether this suite fails the gate
    pub fails: bool,
    pub reason: String,
}

/// Apply the policy to a comparison.
pub fn judge(c: &Comparison, p: &Policy) -> Vec<SuiteVerdict> {
    c.suites
        .iter()
        .map(|s| {
            let sp = p.suites.get(&s.suite).unwrap_or(&p.default);
            let ni = non_inferiority(s.delta, s.ci, sp.margin, p.confidence);
            let (verdict, mut reason) = match ni {
                Ok(n) => (n.verdict, n.reason),
                Err(e) => (Verdict::Inconclusive, format!("statistics failed: {e}")),
            };
            let mut fails = match verdict {
                Verdict::Pass => false,
                Verdict::Fail => true,
                Verdict::Inconclusive => sp.inconclusive == Inconclusive::Fail,
            };
            let drop = -s.delta;
            if let Some(m) = sp.max_drop {
                if drop > m {
                    fails = true;
                    reason.push_str(&format!("; drop {drop:.4} exceeds max_drop {m}"));
                }
            }
            if let (Some(m), Some(r)) = (sp.max_relative_drop, s.relative_drop) {
                if r > m {
                    fails = true;
                    reason.push_str(&format!(
                        "; relative drop {r:.3} exceeds max_relative_drop {m}"
                    ));
                }
            }
            SuiteVerdict {
                suite: s.suite.clone(),
                verdict,
                fails,
                reason,
            }
        })
        .collect()
}

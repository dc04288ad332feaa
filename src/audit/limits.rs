//! Limits that turn the audit into a CI check, from flags or a TOML file.
//!
//! ```toml
//! # audit-limits.toml: every key optional; `-` and `_` spellings both accepted
//! max_duplicate_rate = 0.01
//! max_near_duplicate_rate = 0.05
//! max_conflicts = 0
//! max_empty = 0
//! max_template_share = 0.2
//! min_distinct_2 = 0.3
//! max_over_long = 0
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::text::count;
use super::{AuditError, AuditReport};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// exact-duplicate rate (duplicate records / records) at most this
    #[serde(
        default,
        alias = "max-duplicate-rate",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_duplicate_rate: Option<f64>,
    /// near-duplicate rate (removable records / records) at most this
    #[serde(
        default,
        alias = "max-near-duplicate-rate",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_near_duplicate_rate: Option<f64>,
    /// prompts with conflicting responses at most this many
    #[serde(
        default,
        alias = "max-conflicts",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_conflicts: Option<usize>,
    /// records with an empty prompt or response at most this many
    #[serde(default, alias = "max-empty", skip_serializing_if = "Option::is_none")]
    pub max_empty: Option<usize>,
    /// share of prompts using the most common repeated template at most this
    #[serde(
        default,
        alias = "max-template-share",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_template_share: Option<f64>,
    /// prompt distinct-2 (text records: of the texts) at least this
    #[serde(
        default,
        alias = "min-distinct-2",
        skip_serializing_if = "Option::is_none"
    )]
    pub min_distinct_2: Option<f64>,
    /// over-long records (needs a length limit) at most this many
    #[serde(
        default,
        alias = "max-over-long",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_over_long: Option<usize>,
}

/// One limit applied to one report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// the flag that set it, e.g. `max-duplicate-rate`
    pub limit: String,
    pub allowed: f64,
    pub actual: f64,
    pub passed: bool,
    pub message: String,
}

fn pct(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

impl Limits {
    /// Parse TOML text (top-level keys as in the module docs).
    pub fn from_toml_str(text: &str) -> Result<Limits, String> {
        let l: Limits = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())?;
        l.validate()?;
        Ok(l)
    }

    pub fn from_file(path: &Path) -> Result<Limits, AuditError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuditError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Limits::from_toml_str(&text).map_err(|message| AuditError::Limits {
            path: path.to_path_buf(),
            message,
        })
    }

    /// `self` with every limit set in `over` replaced by it.
    pub fn overridden_by(self, over: &Limits) -> Limits {
        Limits {
            max_duplicate_rate: over.max_duplicate_rate.or(self.max_duplicate_rate),
            max_near_duplicate_rate: over
                .max_near_duplicate_rate
                .or(self.max_near_duplicate_rate),
            max_conflicts: over.max_conflicts.or(self.max_conflicts),
            max_empty: over.max_empty.or(self.max_empty),
            max_template_share: over.max_template_share.or(self.max_template_share),
            min_distinct_2: over.min_distinct_2.or(self.min_distinct_2),
            max_over_long: over.max_over_long.or(self.max_over_long),
        }
    }

    /// Rates and shares must lie in [0, 1].
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("max_duplicate_rate", self.max_duplicate_rate),
            ("max_near_duplicate_rate", self.max_near_duplicate_rate),
            ("max_template_share", self.max_template_share),
            ("min_distinct_2", self.min_distinct_2),
        ] {
            if let Some(v) = v {
                if !(0.0..=1.0).contains(&v) {
                    return Err(format!("`{name}` must be between 0 and 1, found {v}"));
                }
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }

    /// Every set limit applied to `r`, in a fixed order.
    pub fn check(&self, r: &AuditReport) -> Vec<Check> {
        let mut out = Vec::new();
        let mut push = |limit: &str, allowed: f64, actual: f64, passed: bool, message: String| {
            out.push(Check {
                limit: limit.into(),
                allowed,
                actual,
                passed,
                message,
            })
        };
        if let Some(max) = self.max_duplicate_rate {
            let d = &r.exact_duplicates;
            push(
                "max-duplicate-rate",
                max,
                d.rate,
                d.rate <= max,
                format!(
                    "exact-duplicate rate {} ({} of {}), allowed at most {}",
                    pct(d.rate),
                    d.duplicate_records,
                    count(r.records, "record"),
                    pct(max)
                ),
            );
        }
        if let Some(max) = self.max_near_duplicate_rate {
            let d = &r.near_duplicates;
            push(
                "max-near-duplicate-rate",
                max,
                d.rate,
                d.rate <= max,
                format!(
                    "near-duplicate rate {} ({} of {}), allowed at most {}",
                    pct(d.rate),
                    d.removable,
                    count(r.records, "record"),
                    pct(max)
                ),
            );
        }
        if let Some(max) = self.max_conflicts {
            let n = r.conflicts.prompts;
            push(
                "max-conflicts",
                max as f64,
                n as f64,
                n <= max,
                format!(
                    "{} with conflicting responses, allowed at most {max}",
                    count(n, "prompt")
                ),
            );
        }
        if let Some(max) = self.max_empty {
            let n = r.empty.records;
            push(
                "max-empty",
                max as f64,
                n as f64,
                n <= max,
                format!(
                    "{} with an empty prompt or response, allowed at most {max}",
                    count(n, "record")
                ),
            );
        }
        if let Some(max) = self.max_template_share {
            let s = r.templates.top_share;
            push(
                "max-template-share",
                max,
                s,
                s <= max,
                format!(
                    "the most common template covers {} of prompts, allowed at most {}",
                    pct(s),
                    pct(max)
                ),
            );
        }
        if let Some(min) = self.min_distinct_2 {
            let d = &r.diversity;
            let (field, value) = match (
                d.prompt.as_ref().and_then(|p| p.distinct_2),
                d.response.as_ref(),
            ) {
                (Some(v), _) => ("prompt", Some(v)),
                (None, Some(resp)) if d.prompt.is_none() => ("text", resp.distinct_2),
                _ => ("prompt", None),
            };
            let message = match value {
                Some(v) => format!("{field} distinct-2 {v:.4}, required at least {min:.4}"),
                None => format!(
                    "{field} distinct-2 undefined (no word pairs), required at least {min:.4}"
                ),
            };
            let v = value.unwrap_or(0.0);
            push(
                "min-distinct-2",
                min,
                v,
                value.is_some() && v >= min,
                message,
            );
        }
        if let Some(max) = self.max_over_long {
            let n = r.over_long.as_ref().map_or(0, |o| o.records);
            push(
                "max-over-long",
                max as f64,
                n as f64,
                n <= max,
                format!("{} over-long, allowed at most {max}", count(n, "record")),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_spellings_and_rejects_unknown_keys() {
        let l = Limits::from_toml_str(
            "max_duplicate_rate = 0.01\nmax-conflicts = 0\nmin-distinct-2 = 0.5\n",
        )
        .unwrap();
        assert_eq!(l.max_duplicate_rate, Some(0.01));
        assert_eq!(l.max_conflicts, Some(0));
        assert_eq!(l.min_distinct_2, Some(0.5));
        assert!(l.max_empty.is_none());
        let e = Limits::from_toml_str("max_dupes = 1").unwrap_err();
        assert!(e.contains("max_dupes"), "{e}");
        let e = Limits::from_toml_str("max_duplicate_rate = 2.0").unwrap_err();
        assert!(e.contains("between 0 and 1"), "{e}");
        let e = Limits::from_toml_str("max_conflicts = -1").unwrap_err();
        assert!(!e.is_empty());
        assert!(Limits::from_toml_str("").unwrap().is_empty());
    }

    #[test]
    fn flags_override_the_file() {
        let file = Limits {
            max_conflicts: Some(3),
            max_empty: Some(1),
            ..Limits::default()
        };
        let flags = Limits {
            max_conflicts: Some(0),
            ..Limits::default()
        };
        let l = file.overridden_by(&flags);
        assert_eq!((l.max_conflicts, l.max_empty), (Some(0), Some(1)));
    }
}

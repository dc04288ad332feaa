//! Paired statistics for comparing a base and a fine-tuned model on the same items.
//!
//! This module is pure: it depends only on `std`, `rand`/`rand_chacha` (seeded, portable
//! resampling), `serde` (every result is `Serialize`) and `thiserror`. It never prints and
//! never panics on empty or degenerate input: such input yields a [`StatsError`] or a
//! documented, finite value.
//!
//! Per item `i` there is a base score `b_i` and a fine-tuned score `f_i` (binary 0/1 or
//! continuous), paired by item, and the quantity of interest is the mean paired difference
//! `Δ = mean(d)`, `d_i = f_i − b_i` (positive: the fine-tune is better).
//!
//! | concern | module | reference |
//! | --- | --- | --- |
//! | mean difference, analytic and clustered SE, normal / t CI | [`paired`] | Miller 2024, "Adding Error Bars to Evals" (arXiv:2411.00640): paired differences, clustered standard errors; Cameron & Miller 2015 (CR1) |
//! | seeded paired (cluster) bootstrap, percentile and BCa CI | [`bootstrap`] | Koehn 2004; Efron & Tibshirani 1993 ch. 13–14 |
//! | McNemar's test (exact / continuity-corrected χ²) | [`mod@mcnemar`] | McNemar 1947; Edwards 1948; statsmodels `mcnemar` |
//! | Wilson score interval | [`wilson`] | Wilson 1927 |
//! | minimum detectable effect / sample size | [`power`] | Miller 2024, power analysis |
//! | Holm step-down adjustment | [`multiple`] | Holm 1979 |
//! | non-inferiority verdict (the CI gate) | [`noninferiority`] | Wellek 2010; Piaggio et al. 2012 (CONSORT) |
//! | score interval for a paired difference of proportions | [`tango`] | Tango 1998; Nam 1997 |
//! | exact unconditional test at a margin (binary pairs) | [`exact`] | Berger & Boos 1994 |
//! | skewness-corrected t interval for a mean | [`skew`] | Hall 1992; Johnson 1978 |
//! | the gate's decision interval (which of the above, by scores and clusters) | [`interval`] | |
//! | normal, χ²(1), binomial, Student t functions | [`dist`] | own implementations, checked against SciPy and mpmath |
//!
//! Reference values in the unit tests come from SciPy / statsmodels; the script that
//! produced them is `src/stats/reference.py` (the exact command and package versions are
//! written beside each block of constants).

pub mod bootstrap;
pub mod dist;
pub mod exact;
pub mod interval;
pub mod mcnemar;
pub mod multiple;
pub mod noninferiority;
pub mod paired;
pub mod power;
pub mod skew;
pub mod tango;
pub mod wilson;

use serde::Serialize;

pub use bootstrap::{
    paired_bootstrap, paired_bootstrap_clustered, BootstrapConfig, BootstrapResult,
    DEFAULT_RESAMPLES, DEFAULT_SEED,
};
pub use exact::{exact_fail_mde, exact_p_value, Alternative, BERGER_BOOS_GAMMA, MAX_EXACT_MDE_N};
pub use interval::{paired_interval, IntervalMethod, PairedInterval};
pub use mcnemar::{mcnemar, mcnemar_from_scores, McNemar, McNemarMethod, McNemarTest};
pub use multiple::{holm, HolmAdjustment};
pub use noninferiority::{non_inferiority, non_inferiority_from_summary, NonInferiority, Verdict};
pub use paired::{
    interval_from_se, paired_summary, paired_summary_clustered, CiMethod, ClusteredSe,
    PairedSummary,
};
pub use power::{binary_sd_d, minimum_detectable_effect, required_sample_size, PowerAnalysis};
pub use tango::{score_interval, score_statistic, PairedCounts};
pub use wilson::{wilson_interval, wilson_interval_from_scores, WilsonInterval};

/// Why a statistic could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StatsError {
    /// No items (or no p-values, scores, …) were given where some are needed.
    #[error("no data: {what} is empty")]
    Empty { what: &'static str },

    /// Fewer items than the statistic needs (a variance needs two).
    #[error("need at least {needed} items, got {got}")]
    TooFewItems { needed: usize, got: usize },

    /// Fewer clusters than a clustered statistic needs.
    #[error("need at least {needed} clusters, got {got}")]
    TooFewClusters { needed: usize, got: usize },

    /// Two slices that must be paired element by element differ in length.
    #[error("length mismatch: {what} has {got} entries, expected {expected}")]
    LengthMismatch {
        what: &'static str,
        expected: usize,
        got: usize,
    },

    /// A NaN or infinite value in the input.
    #[error("non-finite value {value} in {what} at index {index}")]
    NonFinite {
        what: &'static str,
        index: usize,
        value: f64,
    },

    /// A score that must be 0 or 1 is not.
    #[error("{what}[{index}] = {value} is not binary (0 or 1)")]
    NotBinary {
        what: &'static str,
        index: usize,
        value: f64,
    },

    /// A parameter outside its domain (a confidence level of 1.2, a negative margin, …).
    #[error("invalid {name} = {value}: {reason}")]
    InvalidParameter {
        name: &'static str,
        value: f64,
        reason: &'static str,
    },
}

/// `Result` with [`StatsError`].
pub type Result<T> = std::result::Result<T, StatsError>;

/// A closed interval `[lower, upper]` (a confidence interval).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    pub lower: f64,
    pub upper: f64,
}

impl Interval {
    /// `lower ≤ x ≤ upper`.
    pub fn contains(&self, x: f64) -> bool {
        self.lower <= x && x <= self.upper
    }

    /// `upper − lower`.
    pub fn width(&self) -> f64 {
        self.upper - self.lower
    }
}

/// A confidence level must lie strictly between 0 and 1.
pub(crate) fn check_confidence(confidence: f64) -> Result<()> {
    check_open_unit("confidence", confidence)
}

/// `0 < value < 1`.
pub(crate) fn check_open_unit(name: &'static str, value: f64) -> Result<()> {
    if value > 0.0 && value < 1.0 {
        Ok(())
    } else {
        Err(StatsError::InvalidParameter {
            name,
            value,
            reason: "must lie strictly between 0 and 1",
        })
    }
}

/// Every value finite.
pub(crate) fn check_finite(what: &'static str, xs: &[f64]) -> Result<()> {
    match xs.iter().position(|x| !x.is_finite()) {
        None => Ok(()),
        Some(index) => Err(StatsError::NonFinite {
            what,
            index,
            value: xs[index],
        }),
    }
}

/// Validated paired differences `d_i = ft_i − base_i`.
pub(crate) fn paired_differences(base: &[f64], ft: &[f64]) -> Result<Vec<f64>> {
    if ft.len() != base.len() {
        return Err(StatsError::LengthMismatch {
            what: "ft",
            expected: base.len(),
            got: ft.len(),
        });
    }
    check_finite("base", base)?;
    check_finite("ft", ft)?;
    Ok(base.iter().zip(ft).map(|(b, f)| f - b).collect())
}

/// Dense cluster indices `0..n_clusters` in order of first appearance, and the count.
pub(crate) fn dense_cluster_ids<C: std::hash::Hash + Eq>(
    clusters: &[C],
) -> Result<(Vec<u32>, usize)> {
    let mut map: std::collections::HashMap<&C, u32> = std::collections::HashMap::new();
    let mut ids = Vec::with_capacity(clusters.len());
    for c in clusters {
        let next = map.len();
        let id = *map.entry(c).or_insert_with(|| next as u32);
        ids.push(id);
    }
    if map.len() > u32::MAX as usize {
        return Err(StatsError::InvalidParameter {
            name: "clusters",
            value: map.len() as f64,
            reason: "more than 2^32 − 1 clusters",
        });
    }
    Ok((ids, map.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_validate_input() {
        assert_eq!(
            paired_differences(&[1.0, 0.0], &[0.0]),
            Err(StatsError::LengthMismatch {
                what: "ft",
                expected: 2,
                got: 1
            })
        );
        assert!(matches!(
            paired_differences(&[1.0, f64::NAN], &[0.0, 1.0]),
            Err(StatsError::NonFinite {
                what: "base",
                index: 1,
                ..
            })
        ));
        assert_eq!(
            paired_differences(&[1.0, 0.0], &[0.0, 1.0]).unwrap(),
            vec![-1.0, 1.0]
        );
    }

    #[test]
    fn dense_ids_follow_first_appearance() {
        let (ids, g) = dense_cluster_ids(&["b", "a", "b", "c"]).unwrap();
        assert_eq!(ids, vec![0, 1, 0, 2]);
        assert_eq!(g, 3);
    }

    #[test]
    fn confidence_is_checked() {
        assert!(check_confidence(0.95).is_ok());
        for bad in [0.0, 1.0, -0.1, 1.5, f64::NAN] {
            assert!(check_confidence(bad).is_err());
        }
    }
}

//! The interval a gate decides with, for the paired difference `Δ = mean(fᵢ − bᵢ)`.
//!
//! A percentile bootstrap (or any interval built from the observed spread of `d`) is `[0, 0]`
//! when nothing changed, so a handful of unchanged items would "prove" any margin. The interval
//! here keeps its width where the data cannot rule a drop out:
//!
//! | scores | clusters | interval |
//! |---|---|---|
//! | in `[0, 1]` (binary or fractional) | none | Tango's score interval, `z` critical value ([`super::tango`]) |
//! | in `[0, 1]` | `G ≥ 2` | the hull of Tango's (with a `t(G − 1)` critical value) and the cluster-robust t interval (CR1, `t(G − 1)`) |
//! | unbounded (e.g. NLL) | none | skewness-corrected t, `df = n − 1` ([`super::skew`]) |
//! | unbounded | `G ≥ 2` | cluster-robust (CR1) SE, Student t, `df = G − 1` |
//!
//! Binary suites without clusters also get an exact confirmation of the verdict
//! ([`super::exact`]); that depends on the margin and lives with the verdict.

use std::hash::Hash;

use serde::Serialize;

use super::paired::{critical_value, paired_summary, paired_summary_clustered, CiMethod};
use super::skew::skew_corrected_interval;
use super::tango::{score_interval, PairedCounts};
use super::{mcnemar_from_scores, Interval, McNemarMethod, Result, StatsError};

/// How the decision interval was formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IntervalMethod {
    /// Tango's score interval (scores in `[0, 1]`)
    TangoScore,
    /// the hull of Tango's score interval and the cluster-robust t interval, both with `t(G − 1)`
    /// critical values: the first keeps its width when nothing flipped, the second counts how
    /// the flips cluster
    TangoScoreClustered,
    /// the paired t interval corrected for skewness (Hall 1992; `df = n − 1`)
    SkewCorrectedT,
    /// cluster-robust (CR1) standard error with `t(G − 1)` critical values
    StudentTClustered,
}

impl IntervalMethod {
    /// A short name for reports.
    pub fn label(self) -> &'static str {
        match self {
            IntervalMethod::TangoScore => "Tango score",
            IntervalMethod::TangoScoreClustered => "Tango score ∪ cluster-robust t(G−1)",
            IntervalMethod::SkewCorrectedT => "skewness-corrected paired t",
            IntervalMethod::StudentTClustered => "cluster-robust t(G−1)",
        }
    }
}

/// The paired difference with its decision interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairedInterval {
    pub method: IntervalMethod,
    pub n: usize,
    /// `mean(f − b)`
    pub delta: f64,
    /// two-sided interval of `Δ` at `confidence`
    pub ci: Interval,
    pub confidence: f64,
    /// the critical value used (`z`, or `t` with `G − 1` degrees of freedom)
    pub critical: f64,
    /// analytic paired standard error of `Δ` (CR1 with clusters)
    pub se: f64,
    /// sample standard deviation of `d`
    pub sd_d: f64,
    /// number of clusters, when items carry them
    pub clusters: Option<usize>,
    /// `(SE_CR1 / SE_iid)²` (1 without clusters, or when nothing varied)
    pub design_effect: f64,
    /// losses and gains, for scores in `[0, 1]`
    pub counts: Option<PairedCounts>,
    /// every score is 0 or 1
    pub binary: bool,
    /// two-sided p-value for `Δ = 0`: McNemar's (exact below 25 discordant pairs) for binary
    /// scores without clusters, else the (cluster-robust) t test's
    pub p_value: f64,
}

/// The decision interval of `Δ` for paired scores. `bounded`: every score lies in `[0, 1]`
/// (checked); `clusters`: a label per item, or `None`.
pub fn paired_interval<C: Hash + Eq>(
    base: &[f64],
    ft: &[f64],
    clusters: Option<&[C]>,
    bounded: bool,
    confidence: f64,
) -> Result<PairedInterval> {
    let summary = match clusters {
        Some(c) => paired_summary_clustered(base, ft, c, confidence, CiMethod::StudentT)?,
        None => paired_summary(base, ft, confidence, CiMethod::StudentT)?,
    };
    let n_clusters = summary.clustered.as_ref().map(|c| c.n_clusters);
    let design_effect = summary.clustered.as_ref().map_or(1.0, |c| c.design_effect);
    let binary = base.iter().chain(ft).all(|x| *x == 0.0 || *x == 1.0);
    if !bounded {
        let (method, ci, critical) = match n_clusters {
            Some(_) => (
                IntervalMethod::StudentTClustered,
                summary.ci,
                summary.critical,
            ),
            None => {
                let d: Vec<f64> = base.iter().zip(ft).map(|(b, f)| f - b).collect();
                let (ci, c, _) = skew_corrected_interval(&d, confidence)?;
                (IntervalMethod::SkewCorrectedT, ci, c)
            }
        };
        return Ok(PairedInterval {
            method,
            n: summary.n,
            delta: summary.delta,
            ci,
            confidence,
            critical,
            se: summary.se,
            sd_d: summary.sd_d,
            clusters: n_clusters,
            design_effect,
            counts: None,
            binary,
            p_value: summary.p_value,
        });
    }
    let counts = PairedCounts::from_scores(base, ft)?;
    let (method, critical) = match n_clusters {
        Some(g) => (
            IntervalMethod::TangoScoreClustered,
            critical_value(confidence, CiMethod::StudentT, (g - 1) as f64)?,
        ),
        None => (
            IntervalMethod::TangoScore,
            critical_value(confidence, CiMethod::Normal, 0.0)?,
        ),
    };
    let drop = score_interval(&counts, critical, 1.0)?;
    // with clusters, also the cluster-robust interval (of Δ, so its ends swap sides)
    let drop = match n_clusters {
        Some(_) => Interval {
            lower: drop.lower.min(-summary.ci.upper),
            upper: drop.upper.max(-summary.ci.lower),
        },
        None => drop,
    };
    let p_value = if binary && n_clusters.is_none() {
        mcnemar_from_scores(base, ft, McNemarMethod::Auto)?.p_value
    } else {
        summary.p_value
    };
    if !p_value.is_finite() {
        return Err(StatsError::NonFinite {
            what: "p-value",
            index: 0,
            value: p_value,
        });
    }
    Ok(PairedInterval {
        method,
        n: summary.n,
        delta: summary.delta,
        ci: Interval {
            lower: -drop.upper,
            upper: -drop.lower,
        },
        confidence,
        critical,
        se: summary.se,
        sd_d: summary.sd_d,
        clusters: n_clusters,
        design_effect,
        counts: Some(counts),
        binary,
        p_value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: Option<&[u32]> = None;

    #[test]
    fn nothing_changed_is_not_certainty() {
        let s = [1.0, 1.0, 0.0, 1.0, 1.0];
        let i = paired_interval(&s, &s, NONE, true, 0.95).unwrap();
        assert_eq!(i.method, IntervalMethod::TangoScore);
        assert_eq!(i.delta, 0.0);
        // 5 items: a drop of 43 points cannot be ruled out
        assert!(i.ci.lower < -0.43, "{:?}", i.ci);
        assert_eq!(i.p_value, 1.0);
    }

    #[test]
    fn the_method_follows_the_scores_and_clusters() {
        let b = [0.2, 0.5, 0.9, 0.4, 0.7, 0.1];
        let f = [0.1, 0.6, 0.7, 0.4, 0.5, 0.2];
        let i = paired_interval(&b, &f, NONE, false, 0.95).unwrap();
        assert_eq!(i.method, IntervalMethod::SkewCorrectedT);
        assert!(!i.binary && i.counts.is_none());
        let d: Vec<f64> = b.iter().zip(&f).map(|(b, f)| f - b).collect();
        assert_eq!(i.ci, skew_corrected_interval(&d, 0.95).unwrap().0);
        let i = paired_interval(&b, &f, NONE, true, 0.95).unwrap();
        assert_eq!(i.method, IntervalMethod::TangoScore);
        assert!((i.counts.unwrap().losses - 0.5).abs() < 1e-12);
        let g = [0u32, 0, 1, 1, 2, 2];
        let i = paired_interval(&b, &f, Some(&g[..]), true, 0.95).unwrap();
        assert_eq!(i.method, IntervalMethod::TangoScoreClustered);
        assert_eq!(i.clusters, Some(3));
        let i = paired_interval(&b, &f, Some(&g[..]), false, 0.95).unwrap();
        assert_eq!(i.method, IntervalMethod::StudentTClustered);
        // bounded scores outside [0, 1] are an error, not a score
        assert!(paired_interval(&[2.0, 1.0], &[1.0, 1.0], NONE, true, 0.95).is_err());
        // one cluster carries no information about the spread
        assert!(paired_interval(&b, &f, Some(&[0u32; 6][..]), true, 0.95).is_err());
    }

    #[test]
    fn clustering_widens_the_score_interval() {
        // all the losses in one cluster of four
        let b = [1.0; 16];
        let mut f = [1.0; 16];
        f[..3].fill(0.0);
        let g: Vec<u32> = (0..16).map(|i| i / 4).collect();
        let iid = paired_interval(&b, &f, NONE, true, 0.95).unwrap();
        let cl = paired_interval(&b, &f, Some(&g[..]), true, 0.95).unwrap();
        assert!(cl.design_effect > 1.0);
        assert!(cl.ci.lower < iid.ci.lower, "{:?} vs {:?}", cl.ci, iid.ci);
        // it holds the cluster-robust t interval…
        let t = paired_summary_clustered(&b, &f, &g, 0.95, CiMethod::StudentT).unwrap();
        assert!(cl.ci.lower <= t.ci.lower && cl.ci.upper >= t.ci.upper);
        // …and keeps a width when nothing flipped, where that one is a point
        let same = paired_interval(&b, &b, Some(&g[..]), true, 0.95).unwrap();
        assert!(same.ci.lower < -0.3, "{:?}", same.ci);
    }
}

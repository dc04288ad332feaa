//! The interval a gate decides with, for the paired difference `Δ = mean(fᵢ − bᵢ)`.
//!
//! A percentile bootstrap (or any interval built from the observed spread of `d`) is `[0, 0]`
//! when nothing changed, so a handful of unchanged items would "prove" any margin. The interval
//! here keeps its width where the data cannot rule a drop out:
//!
//! | scores | clusters | interval |
//! |---|---|---|
//! | in `[0, 1]` (binary or fractional) | none | Tango's score interval, `z` critical value ([`super::tango`]) |
//! | in `[0, 1]` | `G ≥ 2` | the hull of Tango's (with a `t(G − 1)` critical value) and the cluster-robust one below |
//! | unbounded (e.g. NLL) | none | the hull of the paired t interval and the skewness-corrected one (`df = n − 1`, [`super::skew`]) |
//! | unbounded | `G ≥ 2` | the same over the clusters' contributions: cluster-robust (CR1) SE, `df = G − 1` |
//!
//! A hull passes only when both of its intervals would, so its false-pass rate is at most the
//! smaller of theirs: the skewness correction where a few items (or clusters) carry most of a
//! drop, which the t interval under-covers (log-normal NLL changes at n = 50: 10% instead of
//! 2.5%), and the plain t interval where the skewness estimate is mostly noise (4 clusters of
//! normal changes: 2.8% corrected, 2.6% plain; `gate::simulate`).
//!
//! Binary suites without clusters also get an exact confirmation of the verdict
//! ([`super::exact`]); that depends on the margin and lives with the verdict.

use std::hash::Hash;

use serde::Serialize;

use super::paired::{critical_value, paired_summary, paired_summary_clustered, CiMethod};
use super::skew::{skew_corrected_from_influence, skew_corrected_interval};
use super::tango::{score_interval, PairedCounts};
use super::{dense_cluster_ids, mcnemar_from_scores, Interval, McNemarMethod, Result, StatsError};

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
    /// the hull of the paired t interval and the same corrected for skewness (Hall 1992;
    /// `df = n − 1`)
    SkewCorrectedT,
    /// cluster-robust (CR1) standard error with `t(G − 1)` critical values: the hull of the plain
    /// interval and the one corrected for the skewness of the clusters' contributions
    StudentTClustered,
}

impl IntervalMethod {
    /// A short name for reports.
    pub fn label(self) -> &'static str {
        match self {
            IntervalMethod::TangoScore => "Tango score",
            IntervalMethod::TangoScoreClustered => {
                "Tango score ∪ cluster-robust t(G−1), plain and skewness-corrected"
            }
            IntervalMethod::SkewCorrectedT => "paired t ∪ skewness-corrected t",
            IntervalMethod::StudentTClustered => {
                "cluster-robust t(G−1), plain ∪ skewness-corrected"
            }
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
    let d: Vec<f64> = base.iter().zip(ft).map(|(b, f)| f - b).collect();
    // the cluster-robust interval, corrected for the skewness of the clusters' contributions
    let clustered_ci = match clusters {
        Some(c) => {
            let (ids, g) = dense_cluster_ids(c)?;
            let (mut sums, mut sizes) = (vec![0.0; g], vec![0.0; g]);
            for (&id, &di) in ids.iter().zip(&d) {
                sums[id as usize] += di;
                sizes[id as usize] += 1.0;
            }
            let (n, gf) = (d.len() as f64, g as f64);
            let e: Vec<f64> = sums
                .iter()
                .zip(&sizes)
                .map(|(s, m)| (s - m * summary.delta) * gf / n)
                .collect();
            let corrected = skew_corrected_from_influence(summary.delta, &e, confidence)?.0;
            Some(hull(corrected, summary.ci))
        }
        None => None,
    };
    let (method, ci, critical, counts, p_value) = if bounded {
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
        // the drop's interval as one of Δ (its ends swap sides); with clusters, also the
        // cluster-robust one; never past what scores in [0, 1] allow
        let tango = Interval {
            lower: -drop.upper,
            upper: -drop.lower,
        };
        let ci = clustered_ci.map_or(tango, |c| hull(tango, c));
        let ci = Interval {
            lower: ci.lower.max(-summary.mean_base),
            upper: ci.upper.min(1.0 - summary.mean_base),
        };
        let p_value = if binary && n_clusters.is_none() {
            mcnemar_from_scores(base, ft, McNemarMethod::Auto)?.p_value
        } else {
            summary.p_value
        };
        (method, ci, critical, Some(counts), p_value)
    } else {
        match clustered_ci {
            Some(ci) => (
                IntervalMethod::StudentTClustered,
                ci,
                summary.critical,
                None,
                summary.p_value,
            ),
            None => {
                let (ci, c, _) = skew_corrected_interval(&d, confidence)?;
                let ci = hull(ci, summary.ci);
                (IntervalMethod::SkewCorrectedT, ci, c, None, summary.p_value)
            }
        }
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
        ci,
        confidence,
        critical,
        se: summary.se,
        sd_d: summary.sd_d,
        clusters: n_clusters,
        design_effect,
        counts,
        binary,
        p_value,
    })
}

/// The smallest interval holding both.
fn hull(a: Interval, b: Interval) -> Interval {
    Interval {
        lower: a.lower.min(b.lower),
        upper: a.upper.max(b.upper),
    }
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
        let corrected = skew_corrected_interval(&d, 0.95).unwrap().0;
        let s = paired_summary(&b, &f, 0.95, CiMethod::StudentT).unwrap();
        assert_eq!(i.ci, hull(corrected, s.ci));
        assert!(i.ci.lower <= s.ci.lower && i.ci.upper >= s.ci.upper);
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
    fn without_skew_the_clustered_interval_is_the_cr1_t_interval() {
        // cluster contributions +2, −2, 0: no skewness
        let b = [0.5; 6];
        let f = [1.5, 1.5, -0.5, -0.5, 0.5, 0.5];
        let g = [0u32, 0, 1, 1, 2, 2];
        let i = paired_interval(&b, &f, Some(&g[..]), false, 0.95).unwrap();
        let s = paired_summary_clustered(&b, &f, &g, 0.95, CiMethod::StudentT).unwrap();
        assert!((i.ci.lower - s.ci.lower).abs() < 1e-12 && (i.ci.upper - s.ci.upper).abs() < 1e-12);
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
        // never past what scores in [0, 1] allow: the base had everything right
        assert_eq!(cl.ci.upper, 0.0);
        assert!(cl.ci.lower < iid.ci.lower, "{:?} vs {:?}", cl.ci, iid.ci);
        // it holds the cluster-robust interval…
        let t = paired_interval(&b, &f, Some(&g[..]), false, 0.95).unwrap();
        assert_eq!(t.method, IntervalMethod::StudentTClustered);
        assert!(cl.ci.lower <= t.ci.lower && cl.ci.upper >= t.ci.upper.min(0.0));
        // …and keeps a width when nothing flipped, where that one is a point
        let same = paired_interval(&b, &b, Some(&g[..]), true, 0.95).unwrap();
        assert!(same.ci.lower < -0.3, "{:?}", same.ci);
    }
}

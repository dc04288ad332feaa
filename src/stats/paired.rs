//! Paired summary of `d_i = f_i − b_i`: mean difference, analytic and clustered standard
//! errors, a normal or Student t confidence interval and a two-sided p-value for `Δ = 0`.
//!
//! Formulas (`n` items, `d̄ = Δ`, `e_i = d_i − d̄`):
//!
//! - `sd_d = √(Σ e_i² / (n − 1))`, `SE = sd_d / √n` — the paired-difference standard error
//!   of Miller 2024, "Adding Error Bars to Evals" (arXiv:2411.00640), paired analysis:
//!   pairing removes the between-item variance common to both models.
//! - Clustered (items in clusters `g = 1..G`, e.g. a template or a subject), with cluster
//!   residual sums `S_g = Σ_{i∈g} e_i`:
//!   - `SE_CR0 = √(Σ_g S_g²) / n`. This *is* Miller 2024's clustered standard error
//!     `SE_C = √(SE_CLT² + (1/n²) Σ_c Σ_i Σ_{j≠i} e_{i,c} e_{j,c})` applied to `d`, when its
//!     `SE_CLT²` term is taken with the plug-in variance `(1/n²)·Σ e_i²`:
//!     `SE² = (1/n²)[Σ_i e_i² + Σ_g Σ_{i≠j∈g} e_i e_j] = (1/n²) Σ_g S_g²`. (With the
//!     `n − 1` sample variance in `SE_CLT` the two differ by `sd_d²/n − Σe²/n²`, i.e.
//!     `O(1/n)` relative.)
//!   - `SE_CR1 = √(G/(G−1)) · SE_CR0` — the CR1 sandwich of Cameron & Miller 2015, "A
//!     Practitioner's Guide to Cluster-Robust Inference" (J. Human Resources 50:317–372):
//!     their finite-sample factor `c = G/(G−1)·(n−1)/(n−K)` with `K = 1` regressor (the
//!     constant). This equals statsmodels `OLS(d, 1).fit(cov_type="cluster")` (default
//!     `use_correction=True`; checked in the tests) and Stata's `regress d, vce(cluster g)`;
//!     it is what [`PairedSummary::se`] uses. With one item per cluster CR1 reduces exactly
//!     to `sd_d/√n`.
//! - Interval: `Δ ± c·SE` with `c = z_{1−α/2}` ([`CiMethod::Normal`], Miller's CLT
//!   interval) or `c = t_{1−α/2, df}` ([`CiMethod::StudentT`]), `df = n − 1` (iid: the paired
//!   t interval, `scipy.stats.ttest_rel`) or `df = G − 1` with clusters (statsmodels
//!   `use_t=True`; Cameron & Miller's few-clusters advice). The t interval is the better
//!   choice for small `n` (say < 30) or few clusters: it is exact for normal `d` and tends to
//!   the normal one as `n` grows.
//! - p-value: two-sided, `2·P(Z > |Δ/SE|)` or `2·P(T_df > |Δ/SE|)`.
//!
//! Degenerate input: `n < 2` is an error (no variance can be estimated); fewer than two
//! clusters is an error for the clustered summary. When every `d_i` is equal, `SE = 0`, the
//! interval is `[Δ, Δ]`, `statistic` is `None` and the p-value is 1 if `Δ = 0`, else 0.

use std::hash::Hash;

use serde::Serialize;

use super::{
    check_confidence, dense_cluster_ids, dist, paired_differences, Interval, Result, StatsError,
};

/// How a confidence interval is formed from an estimate and its standard error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CiMethod {
    /// `Δ ± z_{1−α/2}·SE` (large-sample, Miller 2024).
    Normal,
    /// `Δ ± t_{1−α/2, df}·SE`, `df = n − 1`, or `G − 1` with clusters.
    StudentT,
}

/// Cluster-robust standard errors of the mean difference.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusteredSe {
    /// Number of distinct clusters `G`.
    pub n_clusters: usize,
    /// `√(Σ_g S_g²)/n` (Miller 2024 Eq. 4 with the plug-in variance).
    pub se_cr0: f64,
    /// `√(G/(G−1))·SE_CR0` (statsmodels `cov_type="cluster"`, Stata `vce(cluster)`).
    pub se_cr1: f64,
    /// `(SE_CR1 / SE_iid)²`: how much clustering inflates the variance (1 when `SE_iid = 0`).
    pub design_effect: f64,
}

/// Paired comparison of a base and a fine-tuned model on the same `n` items.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairedSummary {
    pub n: usize,
    pub mean_base: f64,
    pub mean_ft: f64,
    /// `Δ = mean(f_i − b_i)`; positive: the fine-tune scores higher.
    pub delta: f64,
    /// Sample standard deviation of `d` (`n − 1` in the denominator).
    pub sd_d: f64,
    /// `sd_d / √n`, the standard error ignoring clusters.
    pub se_iid: f64,
    /// Present when cluster ids were given.
    pub clustered: Option<ClusteredSe>,
    /// The standard error used for `ci` and `p_value`: `se_cr1` with clusters, else `se_iid`.
    pub se: f64,
    pub confidence: f64,
    pub method: CiMethod,
    /// Degrees of freedom of the t reference (`n − 1`, or `G − 1` with clusters); `None` for
    /// [`CiMethod::Normal`].
    pub df: Option<f64>,
    /// The critical value `c` in `Δ ± c·SE`.
    pub critical: f64,
    pub ci: Interval,
    /// `Δ / SE`; `None` when `SE = 0`.
    pub statistic: Option<f64>,
    /// Two-sided p-value for `Δ = 0`.
    pub p_value: f64,
}

impl PairedSummary {
    /// The mean drop `−Δ` (positive: the fine-tune is worse).
    pub fn drop(&self) -> f64 {
        -self.delta
    }
}

/// Paired summary ignoring clusters.
pub fn paired_summary(
    base: &[f64],
    ft: &[f64],
    confidence: f64,
    method: CiMethod,
) -> Result<PairedSummary> {
    check_confidence(confidence)?;
    let d = paired_differences(base, ft)?;
    let core = Core::new(base, ft, &d)?;
    finish(core, None, confidence, method)
}

/// Paired summary with cluster-robust (CR1) standard error; `clusters[i]` labels item `i`
/// (any hashable label: a template id, a subject name).
pub fn paired_summary_clustered<C: Hash + Eq>(
    base: &[f64],
    ft: &[f64],
    clusters: &[C],
    confidence: f64,
    method: CiMethod,
) -> Result<PairedSummary> {
    check_confidence(confidence)?;
    let d = paired_differences(base, ft)?;
    if clusters.len() != d.len() {
        return Err(StatsError::LengthMismatch {
            what: "clusters",
            expected: d.len(),
            got: clusters.len(),
        });
    }
    let core = Core::new(base, ft, &d)?;
    let (ids, g) = dense_cluster_ids(clusters)?;
    if g < 2 {
        return Err(StatsError::TooFewClusters { needed: 2, got: g });
    }
    let mut sums = vec![0.0; g];
    for (&id, &di) in ids.iter().zip(&d) {
        sums[id as usize] += di - core.delta;
    }
    let n = d.len() as f64;
    let se_cr0 = sums.iter().map(|s| s * s).sum::<f64>().sqrt() / n;
    let se_cr1 = se_cr0 * (g as f64 / (g as f64 - 1.0)).sqrt();
    let design_effect = if core.se_iid > 0.0 {
        (se_cr1 / core.se_iid).powi(2)
    } else {
        1.0
    };
    let clustered = ClusteredSe {
        n_clusters: g,
        se_cr0,
        se_cr1,
        design_effect,
    };
    finish(core, Some(clustered), confidence, method)
}

/// The critical value `z_{1−α/2}` or `t_{1−α/2, df}` for a two-sided confidence level.
pub fn critical_value(confidence: f64, method: CiMethod, df: f64) -> Result<f64> {
    check_confidence(confidence)?;
    match method {
        CiMethod::Normal => dist::two_sided_z(confidence),
        CiMethod::StudentT => dist::student_t_quantile(0.5 * (1.0 - confidence), df).map(|t| -t),
    }
}

/// `estimate ± c·se` with `c` from [`critical_value`] (`df` is ignored for the normal).
pub fn interval_from_se(
    estimate: f64,
    se: f64,
    confidence: f64,
    method: CiMethod,
    df: f64,
) -> Result<Interval> {
    if !estimate.is_finite() {
        return Err(StatsError::InvalidParameter {
            name: "estimate",
            value: estimate,
            reason: "must be finite",
        });
    }
    if !(se >= 0.0 && se.is_finite()) {
        return Err(StatsError::InvalidParameter {
            name: "se",
            value: se,
            reason: "a standard error must be finite and ≥ 0",
        });
    }
    let c = critical_value(confidence, method, df)?;
    Ok(Interval {
        lower: estimate - c * se,
        upper: estimate + c * se,
    })
}

/// Means and iid spread.
struct Core {
    n: usize,
    mean_base: f64,
    mean_ft: f64,
    delta: f64,
    sd_d: f64,
    se_iid: f64,
}

impl Core {
    fn new(base: &[f64], ft: &[f64], d: &[f64]) -> Result<Core> {
        let n = d.len();
        if n == 0 {
            return Err(StatsError::Empty { what: "items" });
        }
        if n < 2 {
            return Err(StatsError::TooFewItems { needed: 2, got: n });
        }
        let nf = n as f64;
        let delta = d.iter().sum::<f64>() / nf;
        let ss: f64 = d.iter().map(|x| (x - delta) * (x - delta)).sum();
        let sd_d = (ss / (nf - 1.0)).sqrt();
        Ok(Core {
            n,
            mean_base: base.iter().sum::<f64>() / nf,
            mean_ft: ft.iter().sum::<f64>() / nf,
            delta,
            sd_d,
            se_iid: sd_d / nf.sqrt(),
        })
    }
}

fn finish(
    core: Core,
    clustered: Option<ClusteredSe>,
    confidence: f64,
    method: CiMethod,
) -> Result<PairedSummary> {
    let (se, df_t) = match &clustered {
        Some(c) => (c.se_cr1, (c.n_clusters - 1) as f64),
        None => (core.se_iid, (core.n - 1) as f64),
    };
    let critical = critical_value(confidence, method, df_t)?;
    let ci = Interval {
        lower: core.delta - critical * se,
        upper: core.delta + critical * se,
    };
    let (statistic, p_value) = if se > 0.0 {
        let s = core.delta / se;
        let p = match method {
            CiMethod::Normal => 2.0 * dist::normal_sf(s.abs()),
            CiMethod::StudentT => 2.0 * dist::student_t_sf(s.abs(), df_t)?,
        };
        (Some(s), p.min(1.0))
    } else if core.delta == 0.0 {
        (None, 1.0)
    } else {
        (None, 0.0)
    };
    Ok(PairedSummary {
        n: core.n,
        mean_base: core.mean_base,
        mean_ft: core.mean_ft,
        delta: core.delta,
        sd_d: core.sd_d,
        se_iid: core.se_iid,
        clustered,
        se,
        confidence,
        method,
        df: match method {
            CiMethod::Normal => None,
            CiMethod::StudentT => Some(df_t),
        },
        critical,
        ci,
        statistic,
        p_value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct PairedRef {
        mean_base: f64,
        mean_ft: f64,
        delta: f64,
        sd_d: f64,
        se: f64,
        z_p: f64,
        t_stat: f64,
        t_p: f64,
        t_crit: f64,
        cr1: f64,
        cr0: f64,
        cl_z_p: f64,
        cl_t_p: f64,
        z_ci: (f64, f64),
        t_ci: (f64, f64),
        cl_z_ci: (f64, f64),
        cl_t_ci: (f64, f64),
        n_clusters: usize,
    }

    // REFERENCE-PAIRED-BEGIN
    // Generated by `python src/stats/reference.py paired`
    // (Python 3.11.7, numpy 2.4.6, scipy 1.17.1, statsmodels 0.15.0, mpmath 1.3.0).
    // d = ft − base. iid: numpy std(ddof=1), scipy.stats.ttest_rel(ft, base) and its
    // .confidence_interval(0.95); clustered: statsmodels OLS(d, ones).fit(
    // cov_type="cluster", cov_kwds={"groups": g}) [CR1: G/(G−1)·(N−1)/(N−K), K = 1],
    // with use_correction=False for CR0, and use_t=True for the t interval (df = G − 1).
    const BIN_BASE: [f64; 24] = [
        1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0,
        1.0, 0.0, 1.0, 1.0, 0.0, 1.0,
    ];
    const BIN_FT: [f64; 24] = [
        1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0,
        0.0, 0.0, 1.0, 1.0, 1.0, 0.0,
    ];
    const BIN_CLUSTERS: [u32; 24] = [
        0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 3, 3, 3, 4, 4, 4, 5, 5, 5, 5, 5, 5, 2,
    ];
    const BIN_REF: PairedRef = PairedRef {
        mean_base: 0.6666666666666666,
        mean_ft: 0.5,
        delta: -0.16666666666666666,
        sd_d: 0.6370220572706061,
        se: 0.13003158293424902,
        z_p: 0.19993390709868908,
        t_stat: -1.2817398889233111,
        t_p: 0.2127047988696869,
        t_crit: 2.0686576104190486,
        cr1: 0.10092167846991647,
        cr0: 0.09212846639876118,
        cl_z_p: 0.09864761042929932,
        cl_t_p: 0.1595581454102671,
        z_ci: (-0.4215238860705278, 0.08819055273719453),
        t_ci: (-0.4356574902984366, 0.10232415696510325),
        cl_z_ci: (-0.3644695217270344, 0.031136188393700942),
        cl_t_ci: (-0.42609410016336247, 0.09276076683002907),
        n_clusters: 6,
    };
    const CONT_BASE: [f64; 15] = [
        0.61, 0.42, 0.77, 0.35, 0.9, 0.55, 0.48, 0.66, 0.71, 0.29, 0.83, 0.5, 0.62, 0.44, 0.58,
    ];
    const CONT_FT: [f64; 15] = [
        0.65, 0.4, 0.7, 0.41, 0.88, 0.49, 0.52, 0.6, 0.69, 0.33, 0.79, 0.41, 0.66, 0.45, 0.5,
    ];
    const CONT_CLUSTERS: [u32; 15] = [7, 7, 7, 7, 3, 3, 3, 9, 9, 9, 9, 9, 1, 1, 1];
    const CONT_REF: PairedRef = PairedRef {
        mean_base: 0.5806666666666668,
        mean_ft: 0.5653333333333334,
        delta: -0.015333333333333329,
        sd_d: 0.050690470598760584,
        se: 0.013088223229361096,
        z_p: 0.2413831308691785,
        t_stat: -1.1715366604487405,
        t_p: 0.2609360786282272,
        t_crit: 2.144786687917804,
        cr1: 0.009138135170990425,
        cr0: 0.007913857201293763,
        cl_z_p: 0.09335687269696949,
        cl_t_p: 0.19194966778603606,
        z_ci: (-0.0409857794845016, 0.010319112817834939),
        t_ci: (-0.04340478028416358, 0.012738113617496922),
        cl_z_ci: (-0.03324374915433333, 0.0025770824876666758),
        cl_t_ci: (-0.04441495784543491, 0.013748291178768256),
        n_clusters: 4,
    };
    // REFERENCE-PAIRED-END

    #[track_caller]
    fn close(got: f64, want: f64, tol: f64) {
        assert!(
            (got - want).abs() <= tol * want.abs().max(1e-3),
            "got {got:e}, want {want:e}"
        );
    }

    fn check(base: &[f64], ft: &[f64], clusters: &[u32], r: &PairedRef) {
        let tol = 1e-12;
        let s = paired_summary(base, ft, 0.95, CiMethod::Normal).unwrap();
        assert_eq!(s.n, base.len());
        close(s.mean_base, r.mean_base, tol);
        close(s.mean_ft, r.mean_ft, tol);
        close(s.delta, r.delta, tol);
        close(s.sd_d, r.sd_d, tol);
        close(s.se_iid, r.se, tol);
        close(s.se, r.se, tol);
        close(s.ci.lower, r.z_ci.0, tol);
        close(s.ci.upper, r.z_ci.1, tol);
        close(s.p_value, r.z_p, tol);
        assert_eq!(s.df, None);
        assert!(s.clustered.is_none());

        let t = paired_summary(base, ft, 0.95, CiMethod::StudentT).unwrap();
        close(t.critical, r.t_crit, tol);
        close(t.statistic.unwrap(), r.t_stat, tol);
        close(t.p_value, r.t_p, tol);
        close(t.ci.lower, r.t_ci.0, tol);
        close(t.ci.upper, r.t_ci.1, tol);
        assert_eq!(t.df, Some(base.len() as f64 - 1.0));

        let c = paired_summary_clustered(base, ft, clusters, 0.95, CiMethod::Normal).unwrap();
        let cl = c.clustered.as_ref().unwrap();
        assert_eq!(cl.n_clusters, r.n_clusters);
        close(cl.se_cr1, r.cr1, tol);
        close(cl.se_cr0, r.cr0, tol);
        close(c.se, r.cr1, tol);
        close(cl.design_effect, (r.cr1 / r.se).powi(2), tol);
        close(c.ci.lower, r.cl_z_ci.0, tol);
        close(c.ci.upper, r.cl_z_ci.1, tol);
        close(c.p_value, r.cl_z_p, tol);
        close(c.se_iid, r.se, tol);

        let ct = paired_summary_clustered(base, ft, clusters, 0.95, CiMethod::StudentT).unwrap();
        assert_eq!(ct.df, Some(r.n_clusters as f64 - 1.0));
        close(ct.ci.lower, r.cl_t_ci.0, tol);
        close(ct.ci.upper, r.cl_t_ci.1, tol);
        close(ct.p_value, r.cl_t_p, tol);
    }

    #[test]
    fn binary_matches_scipy_and_statsmodels() {
        check(&BIN_BASE, &BIN_FT, &BIN_CLUSTERS, &BIN_REF);
    }

    #[test]
    fn continuous_matches_scipy_and_statsmodels() {
        check(&CONT_BASE, &CONT_FT, &CONT_CLUSTERS, &CONT_REF);
    }

    #[test]
    fn string_cluster_labels_work() {
        let labels: Vec<String> = CONT_CLUSTERS.iter().map(|c| format!("tpl-{c}")).collect();
        let a = paired_summary_clustered(&CONT_BASE, &CONT_FT, &labels, 0.95, CiMethod::Normal)
            .unwrap();
        let b =
            paired_summary_clustered(&CONT_BASE, &CONT_FT, &CONT_CLUSTERS, 0.95, CiMethod::Normal)
                .unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn singleton_clusters_reduce_to_iid() {
        let ids: Vec<usize> = (0..BIN_BASE.len()).collect();
        let s = paired_summary_clustered(&BIN_BASE, &BIN_FT, &ids, 0.95, CiMethod::Normal).unwrap();
        let cl = s.clustered.unwrap();
        close(cl.se_cr1, s.se_iid, 1e-14);
        close(cl.design_effect, 1.0, 1e-14);
    }

    #[test]
    fn degenerate_inputs() {
        assert_eq!(
            paired_summary(&[], &[], 0.95, CiMethod::Normal),
            Err(StatsError::Empty { what: "items" })
        );
        assert_eq!(
            paired_summary(&[1.0], &[0.0], 0.95, CiMethod::Normal),
            Err(StatsError::TooFewItems { needed: 2, got: 1 })
        );
        assert!(matches!(
            paired_summary(&[1.0, 0.0], &[0.0], 0.95, CiMethod::Normal),
            Err(StatsError::LengthMismatch { .. })
        ));
        assert!(paired_summary(&[1.0, 0.0], &[0.0, 1.0], 1.0, CiMethod::Normal).is_err());
        assert_eq!(
            paired_summary_clustered(&[1.0, 0.0], &[0.0, 1.0], &[3, 3], 0.95, CiMethod::Normal),
            Err(StatsError::TooFewClusters { needed: 2, got: 1 })
        );
        assert!(matches!(
            paired_summary_clustered(&[1.0, 0.0], &[0.0, 1.0], &[3], 0.95, CiMethod::Normal),
            Err(StatsError::LengthMismatch {
                what: "clusters",
                ..
            })
        ));

        // All differences equal: zero SE, a point interval, defined p-values.
        let same =
            paired_summary(&[1.0, 0.0, 1.0], &[1.0, 0.0, 1.0], 0.95, CiMethod::StudentT).unwrap();
        assert_eq!((same.delta, same.se, same.p_value), (0.0, 0.0, 1.0));
        assert_eq!(
            same.ci,
            Interval {
                lower: 0.0,
                upper: 0.0
            }
        );
        assert_eq!(same.statistic, None);
        let shifted = paired_summary_clustered(
            &[0.0, 0.0, 0.0],
            &[1.0, 1.0, 1.0],
            &[1, 2, 2],
            0.9,
            CiMethod::Normal,
        )
        .unwrap();
        assert_eq!(
            (shifted.delta, shifted.se, shifted.p_value),
            (1.0, 0.0, 0.0)
        );
        assert_eq!(shifted.clustered.as_ref().unwrap().design_effect, 1.0);
        assert_eq!(shifted.drop(), -1.0);
    }

    #[test]
    fn interval_from_se_checks_input() {
        let i = interval_from_se(0.1, 0.05, 0.95, CiMethod::Normal, f64::NAN).unwrap();
        assert!((i.lower - (0.1 - 1.959_963_984_540_054 * 0.05)).abs() < 1e-16);
        assert!(interval_from_se(0.1, -1.0, 0.95, CiMethod::Normal, 1.0).is_err());
        assert!(interval_from_se(f64::NAN, 1.0, 0.95, CiMethod::Normal, 1.0).is_err());
        assert!(interval_from_se(0.0, 1.0, 0.95, CiMethod::StudentT, 0.0).is_err());
    }
}

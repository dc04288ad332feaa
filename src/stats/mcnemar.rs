//! McNemar's test for paired binary outcomes (McNemar 1947).
//!
//! Of the `n` items, `b` = base right & fine-tune wrong, `c` = base wrong & fine-tune right;
//! the concordant items carry no information about the difference. Under H₀ (no change)
//! each discordant item is equally likely to go either way: `b ~ Bin(b + c, ½)`.
//!
//! - Exact (two-sided): `p = min(1, 2·P(X ≤ min(b, c)))`, `X ~ Bin(b + c, ½)`; the statistic
//!   is `min(b, c)` — statsmodels `mcnemar(table, exact=True)`.
//! - Asymptotic: `χ² = (|b − c| − 1)² / (b + c)` with Edwards' (1948) continuity correction,
//!   `p = P(χ²₁ > χ²)` — statsmodels `mcnemar(table, exact=False, correction=True)`. As
//!   there, the correction is not clamped: `b = c` gives `χ² = 1/(b + c)`.
//! - Rule for [`McNemarMethod::Auto`]: exact when `b + c < 25`, else the asymptotic test —
//!   the common rule of thumb that the χ² approximation needs about 25 discordant pairs.
//! - One-sided, H₁ "the fine-tune is worse" (`b > c` in expectation): exact
//!   `P(X ≥ b) = P(X ≤ c)` (`scipy.stats.binomtest(b, b + c, ½, alternative="greater")`);
//!   asymptotic `Φ(−(b − c − 1)/√(b + c))` (normal approximation with continuity
//!   correction, the signed square root of the χ² above).
//!
//! `b + c = 0` (no discordant items) is defined as no evidence: statistic 0, both p = 1
//! (statsmodels returns NaN for the asymptotic test there).

use serde::Serialize;

use super::{dist, Result, StatsError};

/// Which version of the test to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum McNemarMethod {
    /// Exact when `b + c < 25`, otherwise the continuity-corrected χ².
    Auto,
    /// Exact binomial.
    Exact,
    /// χ² with continuity correction (one-sided: its normal version).
    Asymptotic,
}

/// The version that actually ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum McNemarTest {
    Exact,
    ChiSquareCorrected,
}

/// Result of McNemar's test.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct McNemar {
    /// Base right, fine-tune wrong.
    pub b: u64,
    /// Base wrong, fine-tune right.
    pub c: u64,
    /// Items where both are right or both wrong (0 when built from counts).
    pub concordant: u64,
    pub test: McNemarTest,
    /// `min(b, c)` (exact) or the corrected χ² (asymptotic).
    pub statistic: f64,
    /// Two-sided p-value for "no change".
    pub p_value: f64,
    /// One-sided p-value for "the fine-tune is worse" (`b > c`).
    pub p_value_ft_worse: f64,
}

/// Below this many discordant pairs [`McNemarMethod::Auto`] uses the exact test.
pub const EXACT_BELOW: u64 = 25;

/// McNemar's test from the discordant counts.
pub fn mcnemar(b: u64, c: u64, method: McNemarMethod) -> McNemar {
    let n = b + c;
    let exact = match method {
        McNemarMethod::Exact => true,
        McNemarMethod::Asymptotic => false,
        McNemarMethod::Auto => n < EXACT_BELOW,
    };
    let test = if exact {
        McNemarTest::Exact
    } else {
        McNemarTest::ChiSquareCorrected
    };
    if n == 0 {
        return McNemar {
            b,
            c,
            concordant: 0,
            test,
            statistic: 0.0,
            p_value: 1.0,
            p_value_ft_worse: 1.0,
        };
    }
    // p = ½ is valid, so the binomial functions cannot fail here.
    let cdf = |k: u64| dist::binomial_cdf(k, n, 0.5).unwrap_or(1.0);
    let (statistic, p_value, p_value_ft_worse) = if exact {
        let k = b.min(c);
        ((k as f64), (2.0 * cdf(k)).min(1.0), cdf(c))
    } else {
        let diff = b as f64 - c as f64;
        let nf = n as f64;
        let chi2 = (diff.abs() - 1.0).powi(2) / nf;
        let z = (diff - 1.0) / nf.sqrt();
        (chi2, dist::chi2_1_sf(chi2), dist::normal_sf(z))
    };
    McNemar {
        b,
        c,
        concordant: 0,
        test,
        statistic,
        p_value,
        p_value_ft_worse,
    }
}

/// McNemar's test from paired binary scores (each 0 or 1).
pub fn mcnemar_from_scores(base: &[f64], ft: &[f64], method: McNemarMethod) -> Result<McNemar> {
    if ft.len() != base.len() {
        return Err(StatsError::LengthMismatch {
            what: "ft",
            expected: base.len(),
            got: ft.len(),
        });
    }
    if base.is_empty() {
        return Err(StatsError::Empty { what: "items" });
    }
    let (mut b, mut c, mut same) = (0u64, 0u64, 0u64);
    for (i, (&x, &y)) in base.iter().zip(ft).enumerate() {
        let xb = binary("base", i, x)?;
        let yb = binary("ft", i, y)?;
        match (xb, yb) {
            (true, false) => b += 1,
            (false, true) => c += 1,
            _ => same += 1,
        }
    }
    let mut r = mcnemar(b, c, method);
    r.concordant = same;
    Ok(r)
}

fn binary(what: &'static str, index: usize, value: f64) -> Result<bool> {
    if value == 1.0 {
        Ok(true)
    } else if value == 0.0 {
        Ok(false)
    } else {
        Err(StatsError::NotBinary { what, index, value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // REFERENCE-MCNEMAR-BEGIN
    // Generated by `python src/stats/reference.py mcnemar`
    // (Python 3.11.7, numpy 2.4.6, scipy 1.17.1, statsmodels 0.15.0, mpmath 1.3.0).
    // (b, c, exact p, χ² statistic, χ² p, exact one-sided p, χ² one-sided p)
    // exact p: statsmodels mcnemar([[0, b], [c, 0]], exact=True).pvalue;
    // χ²: mcnemar(..., exact=False, correction=True) .statistic / .pvalue
    // (NaN for b + c = 0, written as -1.0 here: we define p = 1 there);
    // exact one-sided (ft worse, b > c): scipy.stats.binomtest(b, b + c, 0.5,
    // alternative="greater").pvalue (1 for b + c = 0);
    // χ² one-sided: scipy.stats.norm.sf((b − c − 1)/√(b + c)).
    const MCNEMAR: &[(u64, u64, f64, f64, f64, f64, f64)] = &[
        (0, 0, 1.0, -1.0, -1.0, 1.0, -1.0),
        (
            5,
            0,
            0.0625,
            3.2,
            0.07363827012030258,
            0.03125,
            0.03681913506015133,
        ),
        (
            0,
            5,
            0.0625,
            3.2,
            0.07363827012030258,
            1.0,
            0.9963548209542322,
        ),
        (
            3,
            7,
            0.34375,
            0.9,
            0.34278171114790873,
            0.9453125,
            0.9430768509966709,
        ),
        (
            10,
            4,
            0.1795654296875,
            1.7857142857142858,
            0.18144920772141646,
            0.08978271484375,
            0.09072460386071024,
        ),
        (
            12,
            12,
            1.0,
            0.041666666666666664,
            0.8382564863858263,
            0.5805901288986206,
            0.5808717568070869,
        ),
        (
            20,
            4,
            0.001543879508972168,
            9.375,
            0.00219964706111306,
            0.000771939754486084,
            0.001099823530556528,
        ),
        (
            24,
            0,
            1.1920928955078125e-07,
            22.041666666666668,
            2.6679545936247906e-06,
            5.960464477539063e-08,
            1.3339772968123913e-06,
        ),
        (13, 12, 1.0, 0.0, 1.0, 0.5, 0.5),
        (
            30,
            15,
            0.035697803555194696,
            4.355555555555555,
            0.036888425707049914,
            0.017848901777597348,
            0.018444212853524936,
        ),
        (
            100,
            70,
            0.025844387581341693,
            4.947058823529412,
            0.02613509411386816,
            0.012922193790670847,
            0.013067547056934048,
        ),
        (
            400,
            350,
            0.07350777405843484,
            3.2013333333333334,
            0.07357826163585493,
            0.03675388702921742,
            0.036789130817927417,
        ),
        (
            5,
            45,
            4.209852022540872e-09,
            30.42,
            3.479224859723167e-08,
            0.9999999997769109,
            0.9999999966499862,
        ),
        (
            60,
            61,
            0.9999999999999993,
            0.0,
            1.0,
            0.5720892003944602,
            0.5721372923399642,
        ),
    ];
    // REFERENCE-MCNEMAR-END

    #[track_caller]
    fn close(got: f64, want: f64) {
        assert!(
            (got - want).abs() <= 1e-12 * want.abs(),
            "got {got:e}, want {want:e}"
        );
    }

    #[test]
    fn matches_statsmodels_and_scipy() {
        for &(b, c, exact_p, chi2, chi2_p, one_exact, one_asym) in MCNEMAR {
            let e = mcnemar(b, c, McNemarMethod::Exact);
            assert_eq!(e.test, McNemarTest::Exact);
            assert_eq!(e.statistic, b.min(c) as f64);
            close(e.p_value, exact_p);
            close(e.p_value_ft_worse, one_exact);
            let a = mcnemar(b, c, McNemarMethod::Asymptotic);
            assert_eq!(a.test, McNemarTest::ChiSquareCorrected);
            if b + c == 0 {
                // statsmodels: NaN; we define "no evidence".
                assert_eq!(
                    (a.statistic, a.p_value, a.p_value_ft_worse),
                    (0.0, 1.0, 1.0)
                );
            } else {
                close(a.statistic, chi2);
                close(a.p_value, chi2_p);
                close(a.p_value_ft_worse, one_asym);
            }
            let auto = mcnemar(b, c, McNemarMethod::Auto);
            assert_eq!(auto, if b + c < 25 { e } else { a });
        }
    }

    #[test]
    fn from_scores_counts_discordant_pairs() {
        let base = [1.0, 1.0, 0.0, 1.0, 0.0, 1.0];
        let ft = [0.0, 1.0, 1.0, 0.0, 0.0, 0.0];
        let r = mcnemar_from_scores(&base, &ft, McNemarMethod::Auto).unwrap();
        assert_eq!((r.b, r.c, r.concordant), (3, 1, 2));
        assert_eq!(r.test, McNemarTest::Exact);
        // 2·P(X ≤ 1 | 4, ½) = 2·5/16.
        assert_eq!(r.p_value, 0.625);
        assert_eq!(r.p_value_ft_worse, 5.0 / 16.0);
    }

    #[test]
    fn degenerate_inputs() {
        assert_eq!(
            mcnemar_from_scores(&[], &[], McNemarMethod::Auto),
            Err(StatsError::Empty { what: "items" })
        );
        assert!(matches!(
            mcnemar_from_scores(&[1.0], &[0.0, 1.0], McNemarMethod::Auto),
            Err(StatsError::LengthMismatch { .. })
        ));
        assert_eq!(
            mcnemar_from_scores(&[1.0, 0.5], &[0.0, 1.0], McNemarMethod::Auto),
            Err(StatsError::NotBinary {
                what: "base",
                index: 1,
                value: 0.5
            })
        );
        let none = mcnemar_from_scores(&[1.0, 0.0], &[1.0, 0.0], McNemarMethod::Auto).unwrap();
        assert_eq!(
            (none.p_value, none.p_value_ft_worse, none.concordant),
            (1.0, 1.0, 2)
        );
    }
}

//! Tango's score interval for the difference of two paired proportions (Tango 1998, "Equivalence
//! test and confidence interval for the difference in proportions for the paired-sample design",
//! Stat. Med. 17:891–908; Nam 1997).
//!
//! Per item the base and the fine-tune score in `[0, 1]`. The *losses* `b = Σ max(bᵢ − fᵢ, 0)`
//! and *gains* `c = Σ max(fᵢ − bᵢ, 0)` are the discordant counts of the paired 2×2 table for
//! binary scores (base right & fine-tune wrong, and the reverse), and their fractional analogue
//! for scores in between (pass@k over several samples, MC2 probabilities). The parameter is the
//! true **drop** `θ = p_loss − p_gain` (positive: the fine-tune is worse), estimated by
//! `(b − c)/n`.
//!
//! The score statistic for `H₀: drop = θ` is
//!
//! `T(θ) = (b − c − nθ) / √(n·(2·q̂ + θ − θ²))`,
//!
//! with `q̂` the maximum-likelihood estimate of `p_gain` under the constraint
//! `p_loss = p_gain + θ`: the non-negative root of `2n·q² + W·q − c·θ(1 − θ) = 0`,
//! `W = −(b + c) + θ·(2n − b + c)` (for `θ < 0` the labels swap). At `θ = 0` it is McNemar's
//! statistic `(b − c)/√(b + c)`. The interval `{θ : |T(θ)| ≤ k}` is found by bisection; unlike
//! a Wald or percentile-bootstrap interval it keeps a positive width when nothing flipped
//! (`b = c = 0` gives `[−k²/(n + k²), k²/(n + k²)]`).
//!
//! For fractional scores `2·p_gain + θ − θ²` bounds the variance of a per-item difference in
//! `[−1, 1]` from above (`E d² ≤ E|d|`), so the same statistic is conservative there.
//! Clustered items: the variance is multiplied by a design effect ≥ 1 ([`score_interval`]'s
//! `inflation`).

use serde::Serialize;

use super::{check_finite, paired_differences, Interval, Result, StatsError};

/// The discordance of `n` paired scores in `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PairedCounts {
    pub n: f64,
    /// `Σ max(bᵢ − fᵢ, 0)`: items (or fractions of items) the fine-tune lost.
    pub losses: f64,
    /// `Σ max(fᵢ − bᵢ, 0)`: items the fine-tune gained.
    pub gains: f64,
}

impl PairedCounts {
    /// Counts from paired scores, each in `[0, 1]`.
    pub fn from_scores(base: &[f64], ft: &[f64]) -> Result<PairedCounts> {
        let d = paired_differences(base, ft)?;
        for (what, xs) in [("base", base), ("ft", ft)] {
            if let Some(i) = xs.iter().position(|x| !(0.0..=1.0).contains(x)) {
                return Err(StatsError::InvalidParameter {
                    name: what,
                    value: xs[i],
                    reason: "a proportion-type score must lie in [0, 1]",
                });
            }
        }
        if d.is_empty() {
            return Err(StatsError::Empty { what: "scores" });
        }
        let losses = d.iter().map(|x| (-x).max(0.0)).sum();
        let gains = d.iter().map(|x| x.max(0.0)).sum();
        Ok(PairedCounts {
            n: d.len() as f64,
            losses,
            gains,
        })
    }

    /// The estimated drop `(b − c)/n`.
    pub fn drop(&self) -> f64 {
        (self.losses - self.gains) / self.n
    }

    /// Whether `b` and `c` are whole numbers (binary scores).
    pub fn is_integral(&self) -> bool {
        self.losses.fract() == 0.0 && self.gains.fract() == 0.0
    }
}

/// `T(θ)`: Tango's score statistic for `H₀: drop = θ`, `−1 < θ < 1` (at `θ = ±1` it is `∓∞`
/// unless every item flipped that way). `0/0` (nothing flipped, `θ = 0`) is 0.
pub fn score_statistic(c: &PairedCounts, theta: f64) -> f64 {
    if theta < 0.0 {
        // the same statistic with the roles of losses and gains exchanged
        let swapped = PairedCounts {
            n: c.n,
            losses: c.gains,
            gains: c.losses,
        };
        return -score_statistic(&swapped, -theta);
    }
    let (n, b, g) = (c.n, c.losses, c.gains);
    let w = -(b + g) + theta * (2.0 * n - b + g);
    let disc = (w * w + 8.0 * n * g * theta * (1.0 - theta)).max(0.0);
    let q = ((disc.sqrt() - w) / (4.0 * n)).max(0.0);
    let var = n * (2.0 * q + theta - theta * theta);
    let num = b - g - n * theta;
    if var <= 0.0 {
        return if num == 0.0 {
            0.0
        } else {
            num.signum() * f64::INFINITY
        };
    }
    num / var.sqrt()
}

/// The set `{θ : |T(θ)|/√inflation ≤ critical}` of drops compatible with the data, an interval
/// inside `[−1, 1]` that contains the estimate. `critical` is e.g. `z_{0.975}` for a two-sided
/// 95% interval; `inflation ≥ 1` multiplies the variance (a design effect for clustered items).
pub fn score_interval(c: &PairedCounts, critical: f64, inflation: f64) -> Result<Interval> {
    check_finite("counts", &[c.n, c.losses, c.gains])?;
    if !(c.n >= 1.0 && c.losses >= 0.0 && c.gains >= 0.0 && c.losses + c.gains <= c.n + 1e-9) {
        return Err(StatsError::InvalidParameter {
            name: "counts",
            value: c.losses + c.gains,
            reason: "need n ≥ 1 and 0 ≤ losses + gains ≤ n",
        });
    }
    if !(critical > 0.0 && critical.is_finite()) {
        return Err(StatsError::InvalidParameter {
            name: "critical",
            value: critical,
            reason: "a critical value must be positive and finite",
        });
    }
    if !(inflation >= 1.0 && inflation.is_finite()) {
        return Err(StatsError::InvalidParameter {
            name: "inflation",
            value: inflation,
            reason: "a variance inflation must be finite and ≥ 1",
        });
    }
    let k = critical * inflation.sqrt();
    let est = c.drop().clamp(-1.0, 1.0);
    // T decreases in θ: the upper end solves T = −k above the estimate, the lower T = k below
    let upper = solve(c, est, 1.0, -k);
    let lower = solve(c, -1.0, est, k);
    Ok(Interval { lower, upper })
}

/// The θ in `[lo, hi]` where `T(θ)` crosses `target`, by bisection (T is decreasing); an end
/// of the range when T stays on one side.
fn solve(c: &PairedCounts, lo: f64, hi: f64, target: f64) -> f64 {
    let f = |t: f64| score_statistic(c, t) - target;
    let (mut a, mut b) = (lo, hi);
    if f(a) <= 0.0 {
        return a;
    }
    if f(b) >= 0.0 {
        return b;
    }
    for _ in 0..200 {
        let m = 0.5 * (a + b);
        if m <= a || m >= b {
            break;
        }
        if f(m) > 0.0 {
            a = m;
        } else {
            b = m;
        }
    }
    0.5 * (a + b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(n: f64, losses: f64, gains: f64) -> PairedCounts {
        PairedCounts { n, losses, gains }
    }

    // REFERENCE-TANGO-BEGIN
    // Generated by `python src/stats/reference.py tango`
    // (Python 3.11.7, numpy 2.4.6, scipy 1.17.1, statsmodels 0.15.0, mpmath 1.3.0).
    // (n, losses, gains, θ, T): Tango's statistic with the constrained MLE found as the
    // zero of the likelihood's derivative by scipy.optimize.brentq.
    const TANGO_STATISTIC: &[(f64, f64, f64, f64, f64)] = &[
        (50.0, 9.0, 3.0, 0.05, 1.0422968600370552),
        (50.0, 9.0, 3.0, 0.2, -1.139720827043092),
        (50.0, 9.0, 3.0, -0.1, 2.916307092832762),
        (20.0, 0.0, 0.0, 0.1, -1.4907119849998598),
        (200.0, 30.0, 10.0, 0.02, 2.575896708297618),
        (200.0, 1.0, 4.0, -0.03, 1.1164366206065415),
        (13.0, 2.6, 0.4, 0.1, 0.569674655373603),
        (1000.0, 120.0, 95.0, 0.0, 1.7049858486761837),
    ];
    // (n, losses, gains, k, lower, upper): {θ : |T(θ)| ≤ k} by scipy.optimize.brentq on
    // the statistic above (xtol 1e-14).
    const TANGO_INTERVAL: &[(f64, f64, f64, f64, f64, f64)] = &[
        (
            50.0,
            9.0,
            3.0,
            1.959963984540054,
            -0.017798415926076505,
            0.2627255027471429,
        ),
        (
            20.0,
            0.0,
            0.0,
            1.959963984540054,
            -0.16112515805281938,
            0.16112515805281938,
        ),
        (
            200.0,
            30.0,
            10.0,
            1.959963984540054,
            0.03989636536719227,
            0.16364180924150232,
        ),
        (
            40.0,
            0.0,
            5.0,
            1.959963984540054,
            -0.26112119838851094,
            -0.026425698653052544,
        ),
        (
            13.0,
            2.6,
            0.4,
            3.1824463052837078,
            -0.3641906914152351,
            0.6133826190050244,
        ),
        (
            1000.0,
            120.0,
            95.0,
            2.5758293035489004,
            -0.012909609036144862,
            0.06316546462956253,
        ),
    ];
    // REFERENCE-TANGO-END

    #[test]
    fn statistic_and_interval_match_an_independent_implementation() {
        for &(n, b, c, theta, t) in TANGO_STATISTIC {
            let got = score_statistic(&counts(n, b, c), theta);
            assert!(
                (got - t).abs() <= 1e-9 * t.abs().max(1.0),
                "T({theta}) for n={n} b={b} c={c}: {got} vs {t}"
            );
        }
        for &(n, b, c, k, lo, hi) in TANGO_INTERVAL {
            let i = score_interval(&counts(n, b, c), k, 1.0).unwrap();
            assert!(
                (i.lower - lo).abs() < 1e-9 && (i.upper - hi).abs() < 1e-9,
                "n={n} b={b} c={c}: [{}, {}] vs [{lo}, {hi}]",
                i.lower,
                i.upper
            );
        }
    }

    #[test]
    fn at_zero_it_is_mcnemar() {
        let t = score_statistic(&counts(50.0, 9.0, 3.0), 0.0);
        assert!((t - 6.0 / 12f64.sqrt()).abs() < 1e-12, "{t}");
    }

    #[test]
    fn nothing_flipped_still_has_width() {
        let z = 1.959963984540054;
        for n in [5.0, 20.0, 200.0] {
            let i = score_interval(&counts(n, 0.0, 0.0), z, 1.0).unwrap();
            let want = z * z / (n + z * z);
            assert!((i.upper - want).abs() < 1e-10, "{n}: {} vs {want}", i.upper);
            assert!((i.lower + want).abs() < 1e-10);
        }
        // n = 20: the drop could still be 16 points
        let i = score_interval(&counts(20.0, 0.0, 0.0), z, 1.0).unwrap();
        assert!(i.upper > 0.16);
    }

    #[test]
    fn statistic_is_decreasing_and_swaps_symmetrically() {
        let c = counts(40.0, 7.0, 2.5);
        let mut prev = f64::INFINITY;
        for k in 1..400 {
            let th = -1.0 + k as f64 / 200.0;
            let t = score_statistic(&c, th);
            assert!(t <= prev, "not decreasing at {th}");
            prev = t;
        }
        let s = counts(40.0, 2.5, 7.0);
        for th in [-0.4, -0.1, 0.05, 0.3] {
            assert!((score_statistic(&c, th) + score_statistic(&s, -th)).abs() < 1e-12);
        }
    }

    #[test]
    fn inflation_widens_and_counts_come_from_scores() {
        let c = PairedCounts::from_scores(&[1.0, 1.0, 0.0, 0.6, 1.0], &[0.0, 1.0, 1.0, 0.2, 1.0])
            .unwrap();
        assert_eq!((c.n, c.losses), (5.0, 1.4));
        assert!((c.gains - 1.0).abs() < 1e-15);
        assert!(!c.is_integral());
        let a = score_interval(&c, 1.96, 1.0).unwrap();
        let b = score_interval(&c, 1.96, 2.0).unwrap();
        assert!(b.lower < a.lower && b.upper > a.upper);
        assert!(PairedCounts::from_scores(&[1.2], &[1.0]).is_err());
        assert!(PairedCounts::from_scores(&[], &[]).is_err());
        assert!(score_interval(&counts(10.0, 8.0, 8.0), 1.96, 1.0).is_err());
        assert!(score_interval(&counts(10.0, 1.0, 1.0), f64::NAN, 1.0).is_err());
        assert!(score_interval(&counts(10.0, 1.0, 1.0), 1.96, 0.5).is_err());
    }
}

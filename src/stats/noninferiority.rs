//! The non-inferiority verdict the CI gate stands on.
//!
//! Inputs: the estimated difference `Δ` (fine-tune − base), a two-sided confidence interval
//! `[Δ_L, Δ_U]` for it at level `c`, and a margin `δ ≥ 0`: the largest drop we accept. The
//! drop is `−Δ`, with interval `[drop_L, drop_U] = [−Δ_U, −Δ_L]`.
//!
//! - **Pass** when `drop_U ≤ δ`: the drop is shown to be at most the margin. This is the
//!   one-sided non-inferiority test of H₀: drop > δ at level `(1 − c)/2` (the two-one-sided
//!   convention of Wellek 2010, "Testing Statistical Hypotheses of Equivalence and
//!   Noninferiority", and of the CONSORT extension for non-inferiority trials, Piaggio et al.
//!   2012, where non-inferiority is shown by a two-sided CI bound).
//! - **Fail** when `drop_L > δ`: the drop is shown to exceed the margin — the one-sided test
//!   of H₀: drop ≤ δ rejected at level `(1 − c)/2`. So when the true drop is at most `δ`,
//!   the gate fails with probability at most `(1 − c)/2` (2.5% at c = 0.95), up to the
//!   accuracy of the interval.
//! - **Inconclusive** otherwise (`drop_L ≤ δ < drop_U`): the interval straddles the margin;
//!   the reason says on which side the estimate lies. Pass and Fail cannot both hold.
//!
//! With a two-sided `c = 1 − α` interval, a true drop of `δ + MDE` (see [`super::power`],
//! `MDE = (z_{1−α/2} + z_{power})·σ_d/√n`) fails with probability `power`.
//!
//! The interval may be any: [`super::PairedSummary::ci`] (normal/t, clustered or not) or a
//! bootstrap interval; [`non_inferiority_from_summary`] takes the first.

use serde::Serialize;

use super::{check_confidence, Interval, PairedSummary, Result, StatsError};

/// The gate's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The drop is significantly at most the margin.
    Pass,
    /// The drop is significantly larger than the margin.
    Fail,
    /// The interval straddles the margin.
    Inconclusive,
}

/// A non-inferiority decision with everything it was based on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NonInferiority {
    pub verdict: Verdict,
    /// `Δ` = fine-tune − base.
    pub delta: f64,
    /// `−Δ`.
    pub drop: f64,
    /// Lower end of the drop's interval (`−Δ_U`).
    pub drop_lower: f64,
    /// Upper end of the drop's interval (`−Δ_L`).
    pub drop_upper: f64,
    pub margin: f64,
    /// Two-sided level of the interval.
    pub confidence: f64,
    /// `(1 − confidence)/2`: the error rate of a Pass (when the drop exceeds the margin) and
    /// of a Fail (when it does not).
    pub one_sided_alpha: f64,
    /// One sentence saying why.
    pub reason: String,
}

/// Decide from `Δ`, its two-sided interval at `confidence`, and the margin.
pub fn non_inferiority(
    delta: f64,
    delta_ci: Interval,
    margin: f64,
    confidence: f64,
) -> Result<NonInferiority> {
    check_confidence(confidence)?;
    for (name, v) in [
        ("delta", delta),
        ("ci.lower", delta_ci.lower),
        ("ci.upper", delta_ci.upper),
    ] {
        if !v.is_finite() {
            return Err(StatsError::InvalidParameter {
                name,
                value: v,
                reason: "must be finite",
            });
        }
    }
    if delta_ci.lower > delta_ci.upper {
        return Err(StatsError::InvalidParameter {
            name: "ci.lower",
            value: delta_ci.lower,
            reason: "the interval's lower end exceeds its upper end",
        });
    }
    if !(margin >= 0.0 && margin.is_finite()) {
        return Err(StatsError::InvalidParameter {
            name: "margin",
            value: margin,
            reason: "the margin must be finite and ≥ 0",
        });
    }
    let drop = -delta;
    let drop_lower = -delta_ci.upper;
    let drop_upper = -delta_ci.lower;
    let pct = confidence * 100.0;
    let (verdict, reason) = if drop_upper <= margin {
        (
            Verdict::Pass,
            format!(
                "the drop is at most {drop_upper:.4} (upper end of its {pct}% interval), \
                 within the margin {margin}"
            ),
        )
    } else if drop_lower > margin {
        (
            Verdict::Fail,
            format!(
                "the drop is at least {drop_lower:.4} (lower end of its {pct}% interval), \
                 beyond the margin {margin}"
            ),
        )
    } else if drop <= margin {
        (
            Verdict::Inconclusive,
            format!(
                "the estimated drop {drop:.4} is within the margin {margin}, but the upper end \
                 of its {pct}% interval, {drop_upper:.4}, is not: too few items to show \
                 non-inferiority"
            ),
        )
    } else {
        (
            Verdict::Inconclusive,
            format!(
                "the estimated drop {drop:.4} exceeds the margin {margin}, but the lower end \
                 of its {pct}% interval, {drop_lower:.4}, does not: the excess is not \
                 significant"
            ),
        )
    };
    Ok(NonInferiority {
        verdict,
        delta,
        drop,
        drop_lower,
        drop_upper,
        margin,
        confidence,
        one_sided_alpha: 0.5 * (1.0 - confidence),
        reason,
    })
}

/// Decide from a [`PairedSummary`] (its `delta`, `ci` and `confidence`).
pub fn non_inferiority_from_summary(
    summary: &PairedSummary,
    margin: f64,
) -> Result<NonInferiority> {
    non_inferiority(summary.delta, summary.ci, margin, summary.confidence)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::paired::{paired_summary, CiMethod};
    use crate::stats::power::{binary_sd_d, minimum_detectable_effect};
    use rand::{RngCore, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn ci(lower: f64, upper: f64) -> Interval {
        Interval { lower, upper }
    }

    #[test]
    fn verdicts_follow_the_interval() {
        // Δ interval [−0.01, 0.03] → drop interval [−0.03, 0.01] ≤ 0.02: pass.
        let r = non_inferiority(0.01, ci(-0.01, 0.03), 0.02, 0.95).unwrap();
        assert_eq!(r.verdict, Verdict::Pass);
        assert_eq!((r.drop_lower, r.drop_upper), (-0.03, 0.01));
        assert_eq!(r.one_sided_alpha, 0.5 * (1.0 - 0.95));
        // Drop interval [0.03, 0.07]: fail.
        let r = non_inferiority(-0.05, ci(-0.07, -0.03), 0.02, 0.95).unwrap();
        assert_eq!(r.verdict, Verdict::Fail);
        // Straddles, estimate inside the margin.
        let r = non_inferiority(-0.01, ci(-0.04, 0.02), 0.02, 0.95).unwrap();
        assert_eq!(r.verdict, Verdict::Inconclusive);
        assert!(r.reason.contains("too few items"), "{}", r.reason);
        // Straddles, estimate beyond the margin.
        let r = non_inferiority(-0.03, ci(-0.05, -0.01), 0.02, 0.95).unwrap();
        assert_eq!(r.verdict, Verdict::Inconclusive);
        assert!(r.reason.contains("not significant"), "{}", r.reason);
        // Boundaries: upper end exactly at the margin passes; lower end exactly at it does
        // not fail.
        assert_eq!(
            non_inferiority(0.0, ci(-0.02, 0.02), 0.02, 0.9)
                .unwrap()
                .verdict,
            Verdict::Pass
        );
        assert_eq!(
            non_inferiority(-0.04, ci(-0.06, -0.02), 0.02, 0.9)
                .unwrap()
                .verdict,
            Verdict::Inconclusive
        );
        // Zero margin and a point interval at zero (all items unchanged): pass.
        assert_eq!(
            non_inferiority(0.0, ci(0.0, 0.0), 0.0, 0.95)
                .unwrap()
                .verdict,
            Verdict::Pass
        );
    }

    #[test]
    fn invalid_inputs() {
        assert!(non_inferiority(0.0, ci(0.1, -0.1), 0.02, 0.95).is_err());
        assert!(non_inferiority(0.0, ci(-0.1, 0.1), -0.02, 0.95).is_err());
        assert!(non_inferiority(0.0, ci(-0.1, 0.1), f64::NAN, 0.95).is_err());
        assert!(non_inferiority(f64::NAN, ci(-0.1, 0.1), 0.02, 0.95).is_err());
        assert!(non_inferiority(0.0, ci(-0.1, f64::INFINITY), 0.02, 0.95).is_err());
        assert!(non_inferiority(0.0, ci(-0.1, 0.1), 0.02, 1.0).is_err());
    }

    fn uniform(rng: &mut ChaCha8Rng) -> f64 {
        (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Runs `reps` simulated evaluations of `n` binary pairs with discordant rates
    /// `p10` (base right, ft wrong) and `p01`, gating each with the normal 95% interval of
    /// [`paired_summary`]; returns the fractions of Fail and Pass verdicts.
    fn simulate(seed: u64, reps: usize, n: usize, p10: f64, p01: f64, margin: f64) -> (f64, f64) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (mut base, mut ft) = (vec![0.0; n], vec![0.0; n]);
        let (mut fails, mut passes) = (0usize, 0usize);
        for _ in 0..reps {
            for i in 0..n {
                let u = uniform(&mut rng);
                // Concordant items split evenly between both-right and both-wrong; they do
                // not affect d.
                (base[i], ft[i]) = if u < p10 {
                    (1.0, 0.0)
                } else if u < p10 + p01 {
                    (0.0, 1.0)
                } else if u < 0.5 + 0.5 * (p10 + p01) {
                    (1.0, 1.0)
                } else {
                    (0.0, 0.0)
                };
            }
            let s = paired_summary(&base, &ft, 0.95, CiMethod::Normal).unwrap();
            match non_inferiority_from_summary(&s, margin).unwrap().verdict {
                Verdict::Fail => fails += 1,
                Verdict::Pass => passes += 1,
                Verdict::Inconclusive => {}
            }
        }
        (fails as f64 / reps as f64, passes as f64 / reps as f64)
    }

    /// The gate's error rates by simulation: 2000 replications of n = 2000 binary pairs,
    /// 20% discordant, margin 2 points, 95% normal interval (one-sided α = 2.5%).
    ///
    /// - True drop = margin (the worst case of H₀ "drop ≤ δ"): Fail rate ≤ 2.5% + 3 MC sd
    ///   (MC sd = √(0.025·0.975/2000) = 0.35%), and symmetrically Pass rate ≤ 2.5% + 3 MC sd
    ///   (H₀ "drop ≥ δ" at its boundary).
    /// - True drop = 0 (no regression at all): Fail rate ≈ 0, Pass rate ≈ ½.
    /// - True drop = δ + MDE (MDE at α = 0.05, power 0.8, σ_d at that drop): Fail rate
    ///   0.80 ± 3 MC sd (MC sd = √(0.16/2000) = 0.9%).
    #[test]
    fn gate_error_rates_by_simulation() {
        let (n, reps, margin, discordant) = (2000usize, 2000usize, 0.02, 0.2);
        let mc = |p: f64| (p * (1.0 - p) / reps as f64).sqrt();

        let at_margin = |drop: f64| ((discordant + drop) / 2.0, (discordant - drop) / 2.0);
        let (p10, p01) = at_margin(margin);
        let (fail, pass) = simulate(1, reps, n, p10, p01, margin);
        assert!(fail <= 0.025 + 3.0 * mc(0.025), "false Fail rate {fail}");
        assert!(pass <= 0.025 + 3.0 * mc(0.025), "false Pass rate {pass}");
        // Not absurdly conservative either.
        assert!(
            fail >= 0.025 - 4.0 * mc(0.025),
            "Fail rate {fail} far below 2.5%"
        );

        let (p10, p01) = at_margin(0.0);
        let (fail, pass) = simulate(2, reps, n, p10, p01, margin);
        assert!(fail <= 0.002, "Fail rate {fail} with no true drop");
        // SE ≈ 0.01, so the upper end 1.96·SE ≈ 0.0196 lands below δ = 0.02 about half the
        // time: n = 2000 is just enough to show non-inferiority at this margin.
        assert!(pass > 0.4, "Pass rate {pass} with no true drop");

        // The MDE depends on σ_d, which depends on the drop: a few fixed-point steps.
        let mut drop = margin;
        for _ in 0..20 {
            let (p10, p01) = at_margin(drop);
            let sd = binary_sd_d(p10, p01).unwrap();
            drop = margin
                + minimum_detectable_effect(sd, n as u64, 0.05, 0.8)
                    .unwrap()
                    .mde;
        }
        let (p10, p01) = at_margin(drop);
        let (fail, _) = simulate(3, reps, n, p10, p01, margin);
        assert!(
            (fail - 0.8).abs() <= 3.0 * mc(0.8),
            "detection rate {fail} at the MDE"
        );
    }
}

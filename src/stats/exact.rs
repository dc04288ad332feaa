//! An exact unconditional test of a paired drop against a margin, for binary scores.
//!
//! Tango's score interval ([`super::tango`]) is asymptotic: computed exactly by enumerating
//! every outcome, its one-sided error at the margin reaches 3–5% at n ≤ 30 and 2.8% at n = 200
//! when most items flip (nominal 2.5%). The gate therefore confirms a Pass (or a Fail) of a
//! binary suite with an exact test that holds its level for every value of the nuisance
//! parameter:
//!
//! - ordering: Tango's statistic `T(δ)` at the margin (small `T`: evidence the drop is below δ);
//! - `H₀` boundary: `p_loss − p_gain = δ` with the discordance `s = p_loss + p_gain` unknown;
//! - p-value (Berger & Boos 1994, "P values maximised over a confidence set for the nuisance
//!   parameter", JASA 89:1012–1016): `p = γ + sup_{s ∈ C_γ} P_s(T ≤ T_obs)`, where `C_γ` is the
//!   Clopper–Pearson `1 − γ` interval of `s` from the observed `b + c` discordant items (which is
//!   Binomial(n, s) on the boundary). This is a valid p-value: under `H₀`,
//!   `P(p ≤ α) ≤ α` whatever `s` is.
//!
//! The probability `P_s` sums the trinomial probabilities of `(losses, gains)` over a box of
//! ±12 standard deviations around their means (the rest is below 1e-30); the supremum is taken
//! on a grid of `s` refined by golden-section search. Cost grows like `n·s`: about 10 ms at
//! n = 1000.

use super::dist::{beta_reg, ln_gamma};
use super::tango::{score_statistic, PairedCounts};
use super::{Result, StatsError};

/// The nuisance-set level `γ` of the Berger–Boos p-value.
pub const BERGER_BOOS_GAMMA: f64 = 1e-3;

/// Which side of the margin the test tries to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alternative {
    /// `H₁: drop < δ` (non-inferiority: the evidence a Pass needs)
    DropBelow,
    /// `H₁: drop > δ` (the evidence a Fail needs)
    DropAbove,
}

/// The exact p-value of `H₀: drop = δ` against `alternative`, for `losses` items the fine-tune
/// lost and `gains` it gained out of `n` binary pairs.
pub fn exact_p_value(
    losses: u64,
    gains: u64,
    n: u64,
    delta: f64,
    alternative: Alternative,
    gamma: f64,
) -> Result<f64> {
    if n == 0 || losses + gains > n {
        return Err(StatsError::InvalidParameter {
            name: "losses + gains",
            value: (losses + gains) as f64,
            reason: "need n ≥ 1 and losses + gains ≤ n",
        });
    }
    if !(delta > -1.0 && delta < 1.0) {
        return Err(StatsError::InvalidParameter {
            name: "delta",
            value: delta,
            reason: "the margin must lie strictly between −1 and 1",
        });
    }
    if !(gamma > 0.0 && gamma < 0.5) {
        return Err(StatsError::InvalidParameter {
            name: "gamma",
            value: gamma,
            reason: "must lie in (0, 0.5)",
        });
    }
    let counts = PairedCounts {
        n: n as f64,
        losses: losses as f64,
        gains: gains as f64,
    };
    let t_obs = score_statistic(&counts, delta);
    let k = losses + gains;
    let (cp_lo, cp_hi) = clopper_pearson(k, n, gamma)?;
    let (lo, hi) = (cp_lo.max(delta.abs()), cp_hi.min(1.0));
    if lo > hi {
        // no nuisance value in the confidence set lies on the boundary
        return Ok(gamma);
    }
    let table = LnFactorials::new(n);
    let tail = |s: f64| tail_probability(&table, n, delta, s, t_obs, alternative);
    let sup = maximise(tail, lo, hi);
    Ok((sup + gamma).min(1.0))
}

/// `P_s(T ≤ t_obs)` (or `≥` for [`Alternative::DropAbove`]) on the boundary `drop = δ` with
/// discordance `s`.
fn tail_probability(
    table: &LnFactorials,
    n: u64,
    delta: f64,
    s: f64,
    t_obs: f64,
    alternative: Alternative,
) -> f64 {
    let (p_loss, p_gain) = (0.5 * (s + delta), 0.5 * (s - delta));
    let p_same = 1.0 - s;
    let ln = |p: f64| if p > 0.0 { p.ln() } else { f64::NEG_INFINITY };
    let (ln_l, ln_g, ln_s) = (ln(p_loss), ln(p_gain), ln(p_same));
    let range = |p: f64| {
        let (m, sd) = (n as f64 * p, (n as f64 * p * (1.0 - p)).sqrt());
        let lo = (m - 12.0 * sd - 2.0).floor().max(0.0) as u64;
        let hi = ((m + 12.0 * sd + 2.0).ceil() as u64).min(n);
        (lo, hi)
    };
    let (i_range, j_range) = (range(p_loss), range(p_gain));
    let tol = 1e-12 * t_obs.abs().max(1.0);
    let nn = n as f64;
    let mut total = 0.0;
    for i in i_range.0..=i_range.1 {
        if i > 0 && p_loss <= 0.0 {
            break;
        }
        for j in j_range.0..=j_range.1.min(n - i) {
            if j > 0 && p_gain <= 0.0 {
                break;
            }
            let m = n - i - j;
            if m > 0 && p_same <= 0.0 {
                continue;
            }
            let t = score_statistic(
                &PairedCounts {
                    n: nn,
                    losses: i as f64,
                    gains: j as f64,
                },
                delta,
            );
            let extreme = match alternative {
                Alternative::DropBelow => t <= t_obs + tol,
                Alternative::DropAbove => t >= t_obs - tol,
            };
            if !extreme {
                continue;
            }
            let mut lp = table.ln_multinomial(n, i, j);
            if i > 0 {
                lp += i as f64 * ln_l;
            }
            if j > 0 {
                lp += j as f64 * ln_g;
            }
            if m > 0 {
                lp += m as f64 * ln_s;
            }
            total += lp.exp();
        }
    }
    total.min(1.0)
}

/// The largest `n` for which [`exact_fail_mde`] enumerates (about 10 exact tests of ≤ 10 ms).
pub const MAX_EXACT_MDE_N: u64 = 2000;

/// The smallest true drop that a suite of `n` independent binary items fails — its score
/// interval's lower end of the drop above `margin` *and* the exact test at the margin
/// significant, both at `confidence` — with probability `power`, when every flip is a loss
/// (the case easiest to detect). `None` when no outcome of `n` items fails at all.
pub fn exact_fail_mde(n: u64, margin: f64, confidence: f64, power: f64) -> Result<Option<f64>> {
    // the same question comes back for every suite of the same size (and in simulations, for
    // every replication): remember the answers
    type Key = (u64, u64, u64, u64);
    static MEMO: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<Key, Option<f64>>>,
    > = std::sync::OnceLock::new();
    let key = (n, margin.to_bits(), confidence.to_bits(), power.to_bits());
    let memo = MEMO.get_or_init(Default::default);
    if let Some(v) = memo.lock().ok().and_then(|m| m.get(&key).copied()) {
        return Ok(v);
    }
    let v = compute_fail_mde(n, margin, confidence, power)?;
    if let Ok(mut m) = memo.lock() {
        m.insert(key, v);
    }
    Ok(v)
}

fn compute_fail_mde(n: u64, margin: f64, confidence: f64, power: f64) -> Result<Option<f64>> {
    super::check_confidence(confidence)?;
    super::check_open_unit("power", power)?;
    if n == 0 || n > MAX_EXACT_MDE_N || !(0.0..1.0).contains(&margin) {
        return Err(StatsError::InvalidParameter {
            name: "n",
            value: n as f64,
            reason: "exact MDE needs 1 ≤ n ≤ MAX_EXACT_MDE_N and a margin in [0, 1)",
        });
    }
    let z = super::dist::two_sided_z(confidence)?;
    let alpha = 0.5 * (1.0 - confidence);
    let fails = |b: u64| -> Result<bool> {
        let c = PairedCounts {
            n: n as f64,
            losses: b as f64,
            gains: 0.0,
        };
        if super::tango::score_interval(&c, z, 1.0)?.lower <= margin {
            return Ok(false);
        }
        Ok(exact_p_value(b, 0, n, margin, Alternative::DropAbove, BERGER_BOOS_GAMMA)? <= alpha)
    };
    if !fails(n)? {
        return Ok(None);
    }
    // more losses are more evidence: the smallest count that fails
    let (mut lo, mut hi) = (0u64, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if fails(mid)? {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let b_star = lo;
    // P(Bin(n, D) ≥ b*) grows with D: bisect for the power
    let power_at = |d: f64| -> Result<f64> {
        if b_star == 0 {
            Ok(1.0)
        } else {
            super::dist::binomial_sf(b_star - 1, n, d)
        }
    };
    let (mut a, mut b) = (margin, 1.0);
    if power_at(a)? >= power {
        return Ok(Some(a));
    }
    for _ in 0..100 {
        let m = 0.5 * (a + b);
        if power_at(m)? >= power {
            b = m;
        } else {
            a = m;
        }
    }
    Ok(Some(b))
}

/// The supremum of `f` on `[lo, hi]`: a grid, then golden-section search between the best grid
/// point's neighbours.
fn maximise(f: impl Fn(f64) -> f64, lo: f64, hi: f64) -> f64 {
    const GRID: usize = 48;
    if hi - lo <= 1e-12 {
        return f(lo).max(f(hi));
    }
    let step = (hi - lo) / GRID as f64;
    let xs: Vec<f64> = (0..=GRID).map(|k| lo + step * k as f64).collect();
    let ys: Vec<f64> = xs.iter().map(|&x| f(x)).collect();
    let (best, &best_y) = ys
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .expect("a non-empty grid");
    let (mut a, mut b) = (xs[best.saturating_sub(1)], xs[(best + 1).min(GRID)]);
    let phi = 0.5 * (5f64.sqrt() - 1.0);
    let (mut c, mut d) = (b - phi * (b - a), a + phi * (b - a));
    let (mut fc, mut fd) = (f(c), f(d));
    let mut top = best_y.max(fc).max(fd);
    for _ in 0..40 {
        if fc >= fd {
            b = d;
            d = c;
            fd = fc;
            c = b - phi * (b - a);
            fc = f(c);
            top = top.max(fc);
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + phi * (b - a);
            fd = f(d);
            top = top.max(fd);
        }
    }
    top
}

/// The two-sided `1 − γ` Clopper–Pearson interval of a binomial proportion.
pub fn clopper_pearson(k: u64, n: u64, gamma: f64) -> Result<(f64, f64)> {
    let lo = if k == 0 {
        0.0
    } else {
        beta_quantile(gamma / 2.0, k as f64, (n - k + 1) as f64)?
    };
    let hi = if k == n {
        1.0
    } else {
        beta_quantile(1.0 - gamma / 2.0, (k + 1) as f64, (n - k) as f64)?
    };
    Ok((lo, hi))
}

/// `x` with `I_x(a, b) = p`, by bisection.
fn beta_quantile(p: f64, a: f64, b: f64) -> Result<f64> {
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    for _ in 0..200 {
        let m = 0.5 * (lo + hi);
        if m <= lo || m >= hi {
            break;
        }
        if beta_reg(a, b, m)? < p {
            lo = m;
        } else {
            hi = m;
        }
    }
    Ok(0.5 * (lo + hi))
}

/// `ln k!` for `k ≤ n`.
struct LnFactorials(Vec<f64>);

impl LnFactorials {
    fn new(n: u64) -> LnFactorials {
        LnFactorials((0..=n).map(|k| ln_gamma(k as f64 + 1.0)).collect())
    }

    /// `ln(n! / (i! j! (n − i − j)!))`.
    fn ln_multinomial(&self, n: u64, i: u64, j: u64) -> f64 {
        let f = &self.0;
        f[n as usize] - f[i as usize] - f[j as usize] - f[(n - i - j) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // REFERENCE-EXACT-BEGIN
    // Generated by `python src/stats/reference.py exact`
    // (Python 3.11.7, numpy 2.4.6, scipy 1.17.1, statsmodels 0.15.0, mpmath 1.3.0).
    // (losses, gains, n, δ, H₁ drop < δ, p): the Berger–Boos p-value (γ = 1e-3) by full
    // enumeration of every outcome and a 5,001-point grid of the discordance refined by
    // scipy.optimize.minimize_scalar; Clopper–Pearson set from statsmodels
    // proportion_confint(method="beta").
    const EXACT: &[(u64, u64, u64, f64, bool, f64)] = &[
        (0, 0, 20, 0.02, true, 0.6686079717550942),
        (0, 0, 100, 0.02, true, 0.13361955589475294),
        (1, 3, 50, 0.02, true, 0.10911481631879048),
        (2, 0, 60, 0.05, true, 0.4184357686601779),
        (9, 3, 50, 0.02, false, 0.08119964537228452),
        (15, 2, 80, 0.05, false, 0.014799023246637892),
        (40, 38, 90, 0.02, true, 0.5309418579598731),
        (5, 5, 30, 0.1, true, 0.2005348114176916),
        (0, 0, 150, 0.0, true, 1.0),
    ];
    // (k, n, γ, lower, upper): statsmodels proportion_confint(k, n, alpha=γ, method="beta").
    const CLOPPER_PEARSON: &[(u64, u64, f64, f64, f64)] = &[
        (0, 20, 0.001, 0.0, 0.31616944795416557),
        (3, 20, 0.001, 0.007855693301615452, 0.5316026698762641),
        (20, 20, 0.001, 0.6838305520458344, 1.0),
        (17, 250, 0.05, 0.040108494915371, 0.10664383604137129),
        (500, 1000, 0.001, 0.4476294198586042, 0.5523705801413958),
    ];
    // REFERENCE-EXACT-END

    #[test]
    fn p_values_match_a_brute_force_enumeration() {
        for &(b, c, n, delta, below, p) in EXACT {
            let alt = if below {
                Alternative::DropBelow
            } else {
                Alternative::DropAbove
            };
            let got = exact_p_value(b, c, n, delta, alt, BERGER_BOOS_GAMMA).unwrap();
            // the reference takes the supremum on a 20,001-point grid
            assert!(
                (got - p).abs() <= 1e-6 * p.max(1e-3),
                "b={b} c={c} n={n} δ={delta} {alt:?}: {got} vs {p}"
            );
        }
    }

    #[test]
    fn clopper_pearson_matches_statsmodels() {
        for &(k, n, g, lo, hi) in CLOPPER_PEARSON {
            let (a, b) = clopper_pearson(k, n, g).unwrap();
            assert!((a - lo).abs() < 1e-12 && (b - hi).abs() < 1e-12, "{k}/{n}");
        }
    }

    /// The level holds: summed over every outcome, the probability that a pair of counts drawn
    /// on the margin gets p ≤ 2.5% is at most 2.5%, at the discordance where Tango's
    /// asymptotic interval errs most.
    #[test]
    fn the_level_holds_where_the_asymptotic_interval_errs() {
        let (alpha, delta) = (0.025, 0.02);
        for (n, s) in [(10u64, 1.0), (20, 0.9), (30, 0.92), (50, 0.98)] {
            let table = LnFactorials::new(n);
            let (pl, pg) = (0.5 * (s + delta), 0.5 * (s - delta));
            let mut rejected = 0.0;
            for i in 0..=n {
                for j in 0..=(n - i) {
                    let m = n - i - j;
                    if m > 0 && s >= 1.0 {
                        continue;
                    }
                    let p = exact_p_value(i, j, n, delta, Alternative::DropBelow, 1e-3).unwrap();
                    if p <= alpha {
                        let mut lp = table.ln_multinomial(n, i, j);
                        lp += i as f64 * pl.ln() + j as f64 * pg.ln();
                        if m > 0 {
                            lp += m as f64 * (1.0 - s).ln();
                        }
                        rejected += lp.exp();
                    }
                }
            }
            assert!(rejected <= alpha, "n={n} s={s}: size {rejected}");
        }
    }

    #[test]
    fn the_exact_mde_is_what_the_items_can_fail() {
        // 5 items cannot fail a 2-point margin whatever happens
        assert_eq!(exact_fail_mde(5, 0.02, 0.95, 0.8).unwrap(), None);
        // 200 items: the stated drop fails 80% of the time, a smaller one less often
        let d = exact_fail_mde(200, 0.02, 0.95, 0.8).unwrap().unwrap();
        assert!(d > 0.02 && d < 0.2, "{d}");
        let c = PairedCounts {
            n: 200.0,
            losses: 0.0,
            gains: 0.0,
        };
        let z = crate::stats::dist::two_sided_z(0.95).unwrap();
        let rate = |drop: f64| {
            let mut p = 0.0;
            for b in 0..=200u64 {
                let c = PairedCounts {
                    losses: b as f64,
                    ..c
                };
                let fail = crate::stats::tango::score_interval(&c, z, 1.0)
                    .unwrap()
                    .lower
                    > 0.02
                    && exact_p_value(b, 0, 200, 0.02, Alternative::DropAbove, 1e-3).unwrap()
                        <= 0.025;
                if fail {
                    let ln = LnFactorials::new(200).ln_multinomial(200, b, 0);
                    p += (ln + b as f64 * drop.ln() + (200 - b) as f64 * (1.0 - drop).ln()).exp();
                }
            }
            p
        };
        assert!((rate(d) - 0.8).abs() < 1e-6, "{}", rate(d));
        assert!(rate(0.9 * d) < 0.8);
        assert!(exact_fail_mde(3000, 0.02, 0.95, 0.8).is_err());
    }

    #[test]
    fn invalid_inputs_are_errors() {
        assert!(exact_p_value(3, 3, 5, 0.02, Alternative::DropBelow, 1e-3).is_err());
        assert!(exact_p_value(0, 0, 0, 0.02, Alternative::DropBelow, 1e-3).is_err());
        assert!(exact_p_value(0, 0, 5, 1.0, Alternative::DropBelow, 1e-3).is_err());
        assert!(exact_p_value(0, 0, 5, 0.02, Alternative::DropBelow, 0.0).is_err());
    }

    #[test]
    fn nothing_flipped_in_many_items_is_strong_evidence() {
        let p = exact_p_value(0, 0, 1000, 0.02, Alternative::DropBelow, 1e-3).unwrap();
        assert!(p < 0.01, "{p}");
        // …and in 20 items it is not
        let p = exact_p_value(0, 0, 20, 0.02, Alternative::DropBelow, 1e-3).unwrap();
        assert!(p > 0.5, "{p}");
    }
}

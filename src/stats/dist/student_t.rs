//! Student's t distribution: cdf via the regularized incomplete beta function, quantile by
//! closed forms (df = 1, 2) or safeguarded Newton from the Cornish–Fisher start.

use super::*;

fn check_df(df: f64) -> Result<()> {
    if df > 0.0 && !df.is_nan() {
        Ok(())
    } else {
        Err(StatsError::InvalidParameter {
            name: "df",
            value: df,
            reason: "degrees of freedom must be positive",
        })
    }
}

/// `P(T ≤ t)` for `t ≤ 0`, `T ~ t_df`: `½·I_{df/(df+t²)}(df/2, ½)`.
fn student_t_lower_tail(t: f64, df: f64) -> f64 {
    let t2 = t * t;
    if !t2.is_finite() {
        return 0.0;
    }
    let x = df / (df + t2);
    let y = t2 / (df + t2);
    0.5 * beta_reg_xy(0.5 * df, 0.5, x, y)
}

/// Student t cdf `P(T ≤ t)` with `df > 0` degrees of freedom (`df = ∞` is the normal).
pub fn student_t_cdf(t: f64, df: f64) -> Result<f64> {
    check_df(df)?;
    if t.is_nan() {
        return Ok(f64::NAN);
    }
    if df.is_infinite() {
        return Ok(normal_cdf(t));
    }
    Ok(if t <= 0.0 {
        student_t_lower_tail(t, df)
    } else {
        1.0 - student_t_lower_tail(-t, df)
    })
}

/// Student t survival `P(T > t)`.
pub fn student_t_sf(t: f64, df: f64) -> Result<f64> {
    student_t_cdf(-t, df)
}

/// Student t density.
fn student_t_pdf(t: f64, df: f64) -> f64 {
    (ln_gamma(0.5 * (df + 1.0))
        - ln_gamma(0.5 * df)
        - 0.5 * (df * std::f64::consts::PI).ln()
        - 0.5 * (df + 1.0) * (t * t / df).ln_1p())
    .exp()
}

/// Student t quantile with `df > 0` degrees of freedom; `p = 0` / `1` give ∓∞.
pub fn student_t_quantile(p: f64, df: f64) -> Result<f64> {
    check_probability("p", p)?;
    check_df(df)?;
    if df.is_infinite() {
        return normal_quantile(p);
    }
    if p == 0.0 {
        return Ok(f64::NEG_INFINITY);
    }
    if p == 1.0 {
        return Ok(f64::INFINITY);
    }
    if p > 0.5 {
        return Ok(-lower_t_quantile(1.0 - p, df));
    }
    Ok(lower_t_quantile(p, df))
}

/// t quantile for `0 < p ≤ ½` (result ≤ 0): closed forms for df = 1, 2; otherwise
/// safeguarded Newton on the cdf from the Cornish–Fisher start (A&S 26.7.5).
fn lower_t_quantile(p: f64, df: f64) -> f64 {
    if p == 0.5 {
        return 0.0;
    }
    if df == 1.0 {
        // Cauchy: tan(π(p − ½)) = −1/tan(πp), accurate for small p.
        return -1.0 / (std::f64::consts::PI * p).tan();
    }
    if df == 2.0 {
        // t = (2p − 1)/√(2p(1 − p)).
        return (2.0 * p - 1.0) / (2.0 * p * (1.0 - p)).sqrt();
    }
    let z = lower_normal_quantile(p);
    let z2 = z * z;
    let g1 = (z2 + 1.0) * z / 4.0;
    let g2 = ((5.0 * z2 + 16.0) * z2 + 3.0) * z / 96.0;
    let g3 = (((3.0 * z2 + 19.0) * z2 + 17.0) * z2 - 15.0) * z / 384.0;
    let g4 = ((((79.0 * z2 + 776.0) * z2 + 1482.0) * z2 - 1920.0) * z2 - 945.0) * z / 92_160.0;
    let mut t = z + g1 / df + g2 / (df * df) + g3 / (df * df * df) + g4 / (df * df * df * df);
    if !(t.is_finite() && t < 0.0) {
        t = z.min(-1e-3);
    }
    // Bracket [lo, hi] with F(lo) ≤ p ≤ F(hi), hi ≤ 0.
    let mut hi = 0.0f64;
    let mut lo = t;
    let mut f_lo = student_t_lower_tail(lo, df);
    let mut guard = 0;
    while f_lo > p && guard < 2000 {
        hi = lo;
        lo *= 2.0;
        f_lo = student_t_lower_tail(lo, df);
        guard += 1;
    }
    if f_lo == p {
        return lo;
    }
    if guard > 0 {
        t = lo;
    }
    for _ in 0..200 {
        let f = student_t_lower_tail(t, df);
        if f == p {
            return t;
        }
        if f < p {
            lo = t;
        } else {
            hi = t;
        }
        let pdf = student_t_pdf(t, df);
        let mut next = t - (f - p) / pdf;
        if !(next.is_finite() && next > lo && next < hi) {
            next = 0.5 * (lo + hi);
        }
        let done = (next - t).abs() <= 1e-15 * t.abs();
        t = next;
        if done || (hi - lo).abs() <= 1e-15 * lo.abs() {
            break;
        }
    }
    t
}

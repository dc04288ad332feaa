//! Paired comparison of two results files on the same suites and items.
//!
//! Every difference is *oriented*: `delta` is the change in the better direction (fine-tune −
//! base for higher-is-better metrics, base − fine-tune for lower-is-better ones such as NLL), so
//! a negative `delta` always means the fine-tune is worse. Nothing is paired loosely: both
//! results must hold the same suites, each suite the same items (unique ids, both ways), with
//! finite scores; anything else is an error, never a smaller comparison.

use serde::Serialize;

use crate::stats::{self, BootstrapConfig, Interval, IntervalMethod, PairedCounts};
use crate::suite::results::EvalResults;
use crate::suite::runner::{ItemResult, SuiteResult};
use crate::suite::scorer::{Direction, Unit};

use super::GateError;

/// Power at which the minimum detectable effect is stated.
pub const MDE_POWER: f64 = 0.8;

/// An item the fine-tune lost (for proportions: the base had it right and the fine-tune not;
/// for other metrics: the items that got worse most).
#[derive(Debug, Clone, Serialize)]
pub struct Flip {
    pub id: String,
    pub base_output: Option<String>,
    pub ft_output: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SuiteComparison {
    pub suite: String,
    pub capability: String,
    pub metric: String,
    pub unit: Unit,
    pub direction: Direction,
    pub n: usize,
    /// the base's mean score (metric units)
    pub base: f64,
    /// the fine-tune's mean score (metric units)
    pub finetuned: f64,
    /// the change in the better direction (negative: worse), metric units
    pub delta: f64,
    /// the decision interval of `delta` at the comparison's confidence
    pub ci: Interval,
    /// how `ci` was formed
    pub interval: IntervalMethod,
    /// the critical value of `ci`
    pub critical: f64,
    /// analytic paired standard error of `delta` (clustered when items carry clusters)
    pub se: f64,
    /// number of clusters, when items carry them
    pub clusters: Option<usize>,
    /// variance inflation from clustering (1 without clusters)
    pub design_effect: f64,
    /// losses and gains (item counts, fractional for partial scores) for proportions
    pub counts: Option<PairedCounts>,
    /// every score is 0 or 1
    pub binary: bool,
    /// two-sided p-value for no change
    pub p_value: f64,
    /// Holm-adjusted across the compared suites
    pub p_holm: f64,
    /// McNemar's p for binary scores (exact below 25 discordant pairs)
    pub mcnemar_p: Option<f64>,
    /// the per-item spread the MDE assumes: the larger of the base scores' standard deviation
    /// (for binary scores from a smoothed accuracy) and the observed differences'
    pub sigma: f64,
    /// by the normal approximation, a true drop of `margin + mde_excess` fails the gate with 80%
    /// power
    pub mde_excess: f64,
    /// the smallest true drop shown as significant with 80% power ([`mde_at`] with no margin);
    /// `None`: no outcome of these items would be
    pub mde: Option<f64>,
    /// seeded paired (cluster) percentile bootstrap interval of `delta`, for reference only: it
    /// collapses to a point when nothing changed, so no verdict uses it
    pub bootstrap_ci: Interval,
    /// drop / |base|
    pub relative_drop: Option<f64>,
    pub format_failures_base: usize,
    pub format_failures_ft: usize,
    pub flipped: Vec<Flip>,
}

impl SuiteComparison {
    /// `−delta`: how much worse the fine-tune is.
    pub fn drop(&self) -> f64 {
        -self.delta
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub base_model: String,
    pub finetuned_model: String,
    pub confidence: f64,
    pub resamples: usize,
    pub seed: u64,
    pub suites: Vec<SuiteComparison>,
    /// mean `delta` over the suites scored in points (none when no suite is)
    pub macro_delta: Option<f64>,
    /// the suite in points with the most negative `delta`
    pub worst_suite: Option<String>,
}

/// Pair the items of one suite, strictly: same suite content, unique ids on each side, the same
/// ids on both sides, finite scores (in `[0, 1]` for proportions).
fn pair<'a>(
    base: &'a SuiteResult,
    ft: &'a SuiteResult,
) -> Result<Vec<(&'a ItemResult, &'a ItemResult)>, GateError> {
    let mismatch = |m: String| GateError::Mismatch(format!("suite `{}`: {m}", base.suite));
    // results read from another harness's logs: the task must be the one that harness ran on
    // both sides, said in its own terms
    if let (Some(a), Some(b)) = (&base.origin, &ft.origin) {
        let differs = |what: &str, x: String, y: String| {
            Err(mismatch(format!(
                "task `{}` {what} {x} in the base results and {y} in the fine-tuned: the task changed between the runs",
                a.task
            )))
        };
        if a.task != b.task {
            return differs("is named", a.task.clone(), b.task.clone());
        }
        if a.version != b.version {
            return differs("has version", a.version.clone(), b.version.clone());
        }
        if a.n_shot != b.n_shot {
            return differs(
                "has few-shot count",
                format!("{:?}", a.n_shot),
                format!("{:?}", b.n_shot),
            );
        }
        if a.config_hash != b.config_hash {
            return Err(mismatch(format!(
                "task `{}` was configured differently in the two runs (prompt, metrics, filters or generation settings)",
                a.task
            )));
        }
    }
    if base.suite_hash != ft.suite_hash {
        return Err(mismatch(format!(
            "the two results scored different suite contents (hash {}… vs {}…)",
            &base.suite_hash[..12.min(base.suite_hash.len())],
            &ft.suite_hash[..12.min(ft.suite_hash.len())]
        )));
    }
    if (base.scorer, base.direction, base.unit) != (ft.scorer, ft.direction, ft.unit) {
        return Err(mismatch(format!(
            "scored differently ({:?}, {:?}, {:?} vs {:?}, {:?}, {:?})",
            base.scorer, base.direction, base.unit, ft.scorer, ft.direction, ft.unit
        )));
    }
    let index = |side: &'a SuiteResult, name: &str| {
        let mut m = std::collections::HashMap::with_capacity(side.items.len());
        for it in &side.items {
            if it.id.is_empty() {
                return Err(mismatch(format!(
                    "the {name} results have an item without an id"
                )));
            }
            if m.insert(it.id.as_str(), it).is_some() {
                return Err(mismatch(format!(
                    "the {name} results list item `{}` twice: items are paired by id",
                    it.id
                )));
            }
            check_score(&base.suite, base.unit, name, it)?;
        }
        Ok(m)
    };
    let by_base = index(base, "base")?;
    let by_ft = index(ft, "fine-tuned")?;
    let missing =
        |from: &std::collections::HashMap<&str, &ItemResult>, side: &'a SuiteResult, name: &str| {
            let ids: Vec<&str> = side
                .items
                .iter()
                .map(|i| i.id.as_str())
                .filter(|id| !from.contains_key(id))
                .collect();
            if ids.is_empty() {
                Ok(())
            } else {
                Err(mismatch(format!(
                    "{} item(s) only in the {name} results (first: `{}`)",
                    ids.len(),
                    ids[0]
                )))
            }
        };
    missing(&by_ft, base, "base")?;
    missing(&by_base, ft, "fine-tuned")?;
    let pairs: Vec<_> = base
        .items
        .iter()
        .map(|b| (b, by_ft[b.id.as_str()]))
        .collect();
    // another harness's items carry their document and prompt hashes: the same id must be the
    // same question on both sides
    if base.origin.is_some() {
        if let Some((b, _)) = pairs.iter().find(|(b, f)| b.prompt_hash != f.prompt_hash) {
            return Err(mismatch(format!(
                "item `{}` is a different document or prompt in the two runs (its logged hashes differ)",
                b.id
            )));
        }
    }
    Ok(pairs)
}

/// A score must be finite, and in `[0, 1]` for a proportion.
fn check_score(suite: &str, unit: Unit, side: &str, it: &ItemResult) -> Result<(), GateError> {
    let ok = it.score.is_finite() && (!unit.is_bounded() || (0.0..=1.0).contains(&it.score));
    if ok {
        Ok(())
    } else {
        Err(GateError::Mismatch(format!(
            "suite `{suite}`: item `{}` has the score {} in the {side} results ({} expected)",
            it.id,
            it.score,
            if unit.is_bounded() {
                "a value in [0, 1]"
            } else {
                "a finite value"
            }
        )))
    }
}

/// The suites of `r`, each once.
fn suite_names(r: &EvalResults, side: &str) -> Result<Vec<String>, GateError> {
    let mut names: Vec<String> = Vec::new();
    for s in &r.suites {
        if names.contains(&s.suite) {
            return Err(GateError::Mismatch(format!(
                "the {side} results hold suite `{}` twice",
                s.suite
            )));
        }
        names.push(s.suite.clone());
    }
    Ok(names)
}

/// Compare every suite of `base` with the same suite in `ft`; both must hold the same suites.
pub fn compare(
    base: &EvalResults,
    ft: &EvalResults,
    confidence: f64,
    boot: &BootstrapConfig,
) -> Result<Comparison, GateError> {
    crate::stats::paired::critical_value(confidence, stats::CiMethod::Normal, 0.0)
        .map_err(|e| GateError::Invalid(format!("confidence: {e}")))?;
    if base.settings != ft.settings {
        return Err(GateError::Mismatch(format!(
            "evaluation settings differ: {:?} vs {:?}",
            base.settings, ft.settings
        )));
    }
    let base_names = suite_names(base, "base")?;
    let ft_names = suite_names(ft, "fine-tuned")?;
    if base_names.is_empty() {
        return Err(GateError::Mismatch(
            "the base results hold no suites: there is nothing to compare".into(),
        ));
    }
    let only = |a: &[String], b: &[String]| -> Vec<String> {
        a.iter().filter(|x| !b.contains(x)).cloned().collect()
    };
    let (only_base, only_ft) = (only(&base_names, &ft_names), only(&ft_names, &base_names));
    if !only_base.is_empty() || !only_ft.is_empty() {
        return Err(GateError::Mismatch(format!(
            "the two results hold different suites (only in the base: {}; only in the fine-tune: {})",
            list(&only_base),
            list(&only_ft)
        )));
    }
    let mut suites = Vec::new();
    for bs in &base.suites {
        let fs = ft
            .suites
            .iter()
            .find(|s| s.suite == bs.suite)
            .expect("the same suites on both sides");
        suites.push(compare_suite(bs, fs, confidence, boot)?);
    }
    let p: Vec<f64> = suites.iter().map(|s| s.p_value).collect();
    let h = stats::holm(&p, 1.0 - confidence).map_err(|e| GateError::Stats(e.to_string()))?;
    for (s, p) in suites.iter_mut().zip(h.adjusted) {
        s.p_holm = p;
    }
    let points: Vec<&SuiteComparison> = suites
        .iter()
        .filter(|s| s.unit == Unit::Proportion)
        .collect();
    let macro_delta = (!points.is_empty())
        .then(|| points.iter().map(|s| s.delta).sum::<f64>() / points.len() as f64);
    let worst_suite = points
        .iter()
        .min_by(|a, b| a.delta.total_cmp(&b.delta))
        .map(|s| s.suite.clone());
    Ok(Comparison {
        base_model: base.model.path.clone(),
        finetuned_model: ft.model.path.clone(),
        confidence,
        resamples: boot.resamples,
        seed: boot.seed,
        suites,
        macro_delta,
        worst_suite,
    })
}

fn list(xs: &[String]) -> String {
    if xs.is_empty() {
        "none".into()
    } else {
        xs.iter()
            .map(|x| format!("`{x}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One suite's paired comparison.
fn compare_suite(
    bs: &SuiteResult,
    fs: &SuiteResult,
    confidence: f64,
    boot: &BootstrapConfig,
) -> Result<SuiteComparison, GateError> {
    let stats_err = |e: stats::StatsError| GateError::Stats(format!("suite `{}`: {e}", bs.suite));
    let pairs = pair(bs, fs)?;
    if pairs.len() < 2 {
        return Err(GateError::Mismatch(format!(
            "suite `{}` has {} scored item(s): a paired comparison needs at least 2",
            bs.suite,
            pairs.len()
        )));
    }
    // oriented scores: higher is better on both sides (1 − s keeps a proportion in [0, 1])
    let orient = |s: f64| match (bs.direction, bs.unit.is_bounded()) {
        (Direction::HigherIsBetter, _) => s,
        (Direction::LowerIsBetter, true) => 1.0 - s,
        (Direction::LowerIsBetter, false) => -s,
    };
    let b: Vec<f64> = pairs.iter().map(|p| orient(p.0.score)).collect();
    let f: Vec<f64> = pairs.iter().map(|p| orient(p.1.score)).collect();
    let clustered = pairs.iter().any(|p| p.0.cluster.is_some());
    let labels: Vec<&str> = pairs
        .iter()
        .map(|p| p.0.cluster.as_deref().unwrap_or(p.0.id.as_str()))
        .collect();
    let interval = stats::paired_interval(
        &b,
        &f,
        clustered.then_some(&labels[..]),
        bs.unit.is_bounded(),
        confidence,
    )
    .map_err(stats_err)?;
    let cfg = BootstrapConfig {
        confidence,
        ..*boot
    };
    let bootr = if clustered {
        stats::paired_bootstrap_clustered(&b, &f, &labels, &cfg)
    } else {
        stats::paired_bootstrap(&b, &f, &cfg)
    }
    .map_err(stats_err)?;
    let mean = |xs: &[&ItemResult]| xs.iter().map(|i| i.score).sum::<f64>() / xs.len() as f64;
    let base_items: Vec<&ItemResult> = pairs.iter().map(|p| p.0).collect();
    let ft_items: Vec<&ItemResult> = pairs.iter().map(|p| p.1).collect();
    let (base_mean, ft_mean) = (mean(&base_items), mean(&ft_items));
    let sigma = mde_sigma(&b, interval.binary, interval.sd_d, confidence);
    let deff = design_effect_for_mde(&b, clustered.then_some(&labels[..]), &interval);
    // the degrees of freedom behind a t critical value (clusters, or an unbounded metric)
    let df = match (interval.clusters, interval.method) {
        (Some(g), _) => Some((g - 1) as f64),
        (None, stats::IntervalMethod::SkewCorrectedT) => Some((b.len() - 1) as f64),
        _ => None,
    };
    let excess = mde_excess(sigma, b.len(), deff, interval.critical, df).map_err(stats_err)?;
    let mcnemar_p = if interval.binary {
        stats::mcnemar_from_scores(&b, &f, stats::McNemarMethod::Auto)
            .ok()
            .map(|m| m.p_value)
    } else {
        None
    };
    let mut sc = SuiteComparison {
        suite: bs.suite.clone(),
        capability: bs.capability.clone(),
        metric: bs.metric.clone(),
        unit: bs.unit,
        direction: bs.direction,
        n: b.len(),
        base: base_mean,
        finetuned: ft_mean,
        delta: interval.delta,
        ci: interval.ci,
        interval: interval.method,
        critical: interval.critical,
        se: interval.se,
        clusters: interval.clusters,
        design_effect: interval.design_effect,
        counts: interval.counts,
        binary: interval.binary,
        p_value: interval.p_value,
        p_holm: interval.p_value,
        mcnemar_p,
        sigma,
        mde_excess: excess,
        mde: None,
        bootstrap_ci: bootr.percentile,
        relative_drop: (base_mean != 0.0).then(|| -interval.delta / base_mean.abs()),
        format_failures_base: bs.format_failures,
        format_failures_ft: fs.format_failures,
        flipped: flips(&pairs, bs.unit, &b, &f),
    };
    sc.mde = mde_at(&sc, 0.0, confidence).map_err(stats_err)?;
    Ok(sc)
}

/// The true drop this suite fails with 80% power at `margin`: the normal approximation
/// (`margin + mde_excess`), and for up to [`stats::MAX_EXACT_MDE_N`] independent binary items
/// the exact computation ([`stats::exact_fail_mde`]), whichever is larger. `None` when no
/// outcome fails (or, for proportions, when even a 100-point drop would not with 80% power).
pub fn mde_at(
    s: &SuiteComparison,
    margin: f64,
    confidence: f64,
) -> Result<Option<f64>, stats::StatsError> {
    let normal = margin + s.mde_excess;
    let exact = s.binary
        && s.clusters.is_none()
        && (s.n as u64) <= stats::MAX_EXACT_MDE_N
        && (0.0..1.0).contains(&margin);
    let mde = if exact {
        stats::exact_fail_mde(s.n as u64, margin, confidence, MDE_POWER)?.map(|e| e.max(normal))
    } else {
        Some(normal)
    };
    Ok(mde.filter(|m| !(s.unit.is_bounded() && *m > 1.0)))
}

/// The per-item spread the MDE assumes: the base scores' standard deviation — for binary scores
/// from the accuracy smoothed towards ½ (`(x + z²/2)/(n + z²)`, so a suite the base aces still
/// has spread) — or the observed differences' if larger.
fn mde_sigma(base: &[f64], binary: bool, sd_d: f64, confidence: f64) -> f64 {
    let n = base.len() as f64;
    let mean = base.iter().sum::<f64>() / n;
    let sd_base = if binary {
        let z = stats::dist::two_sided_z(confidence).unwrap_or(1.96);
        let p = (mean * n + z * z / 2.0) / (n + z * z);
        (p * (1.0 - p)).sqrt()
    } else {
        (base.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    };
    sd_base.max(sd_d)
}

/// The design effect the MDE assumes: the larger of the differences' and the base scores' own
/// (how much their clusters inflate the variance), at least 1.
fn design_effect_for_mde(
    base: &[f64],
    clusters: Option<&[&str]>,
    interval: &stats::PairedInterval,
) -> f64 {
    let Some(labels) = clusters else {
        return 1.0;
    };
    let zeros = vec![0.0; base.len()];
    let of_base = stats::paired_summary_clustered(
        &zeros,
        base,
        labels,
        interval.confidence,
        stats::CiMethod::StudentT,
    )
    .ok()
    .and_then(|s| s.clustered.map(|c| c.design_effect))
    .unwrap_or(1.0);
    interval.design_effect.max(of_base).max(1.0)
}

/// The excess over the margin at which a true drop fails the gate with [`MDE_POWER`]:
/// `(critical + q_power) · σ · √(design effect / n)`, `q_power` the normal quantile, or the
/// Student t one with `df` degrees of freedom where the interval uses t critical values.
pub fn mde_excess(
    sigma: f64,
    n: usize,
    design_effect: f64,
    critical: f64,
    df: Option<f64>,
) -> Result<f64, stats::StatsError> {
    let q_power = match df {
        Some(df) => stats::dist::student_t_quantile(MDE_POWER, df)?,
        None => stats::dist::normal_quantile(MDE_POWER)?,
    };
    Ok((critical + q_power) * sigma * (design_effect / n as f64).sqrt())
}

/// Items the fine-tune lost: for proportions those the base had (≥ ½) and the fine-tune scored
/// lower; for other metrics the 20 that got worse most.
fn flips(pairs: &[(&ItemResult, &ItemResult)], unit: Unit, b: &[f64], f: &[f64]) -> Vec<Flip> {
    let flip = |(x, y): &(&ItemResult, &ItemResult)| Flip {
        id: x.id.clone(),
        base_output: x.output.clone(),
        ft_output: y.output.clone(),
    };
    match unit {
        Unit::Proportion => pairs
            .iter()
            .zip(b.iter().zip(f))
            .filter(|(_, (b, f))| f < b && **b >= 0.5)
            .map(|(p, _)| flip(p))
            .collect(),
        Unit::NatsPerToken => {
            let mut worse: Vec<(usize, f64)> = b
                .iter()
                .zip(f)
                .enumerate()
                .map(|(i, (b, f))| (i, f - b))
                .filter(|(_, d)| *d < 0.0)
                .collect();
            worse.sort_by(|x, y| x.1.total_cmp(&y.1));
            worse
                .iter()
                .take(20)
                .map(|(i, _)| flip(&pairs[*i]))
                .collect()
        }
    }
}

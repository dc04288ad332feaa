//! Paired comparison of two results files on the same suites and items.

use serde::Serialize;

use crate::stats::{self, BootstrapConfig, CiMethod, Interval, McNemarMethod};
use crate::suite::results::EvalResults;
use crate::suite::runner::{ItemResult, SuiteResult};

use super::GateError;

/// An item the base got right and the fine-tune got wrong.
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
    pub n: usize,
    pub base: f64,
    pub finetuned: f64,
    /// fine-tune − base
    pub delta: f64,
    /// analytic paired standard error (clustered when items carry clusters)
    pub se: f64,
    /// seeded paired bootstrap interval of Δ (clusters resampled when present)
    pub ci: Interval,
    pub p_value: f64,
    /// Holm-adjusted across the compared suites
    pub p_holm: f64,
    pub mcnemar_p: Option<f64>,
    /// minimum detectable effect (α = 0.05 two-sided, power 0.8)
    pub mde: f64,
    /// (base − fine-tune) / base
    pub relative_drop: Option<f64>,
    pub format_failures_base: usize,
    pub format_failures_ft: usize,
    pub flipped: Vec<Flip>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub base_model: String,
    pub finetuned_model: String,
    pub confidence: f64,
    pub resamples: usize,
    pub seed: u64,
    pub suites: Vec<SuiteComparison>,
    /// mean Δ over suites
    pub macro_delta: f64,
    /// the suite with the most negative Δ
    pub worst_suite: Option<String>,
}

fn pair<'a>(
    base: &'a SuiteResult,
    ft: &'a SuiteResult,
) -> Result<Vec<(&'a ItemResult, &'a ItemResult)>, GateError> {
    if base.suite_hash != ft.suite_hash {
        return Err(GateError::Mismatch(format!(
            "suite `{}` differs between the two results (content hash {}… vs {}…)",
            base.suite,
            &base.suite_hash[..12.min(base.suite_hash.len())],
            &ft.suite_hash[..12.min(ft.suite_hash.len())]
        )));
    }
    let by_id: std::collections::HashMap<&str, &ItemResult> =
        ft.items.iter().map(|i| (i.id.as_str(), i)).collect();
    let mut out = Vec::with_capacity(base.items.len());
    for b in &base.items {
        let f = by_id.get(b.id.as_str()).ok_or_else(|| {
            GateError::Mismatch(format!(
                "suite `{}`: item `{}` is missing from the fine-tuned results",
                base.suite, b.id
            ))
        })?;
        out.push((b, *f));
    }
    if out.len() != ft.items.len() {
        return Err(GateError::Mismatch(format!(
            "suite `{}`: the two results scored different items",
            base.suite
        )));
    }
    Ok(out)
}

/// Compare every suite of `base` with the same suite in `ft`.
pub fn compare(
    base: &EvalResults,
    ft: &EvalResults,
    confidence: f64,
    boot: &BootstrapConfig,
) -> Result<Comparison, GateError> {
    if base.settings != ft.settings {
        return Err(GateError::Mismatch(format!(
            "evaluation settings differ: {:?} vs {:?}",
            base.settings, ft.settings
        )));
    }
    let mut suites = Vec::new();
    for bs in &base.suites {
        let fs = ft
            .suites
            .iter()
            .find(|s| s.suite == bs.suite)
            .ok_or_else(|| {
                GateError::Mismatch(format!(
                    "suite `{}` is in the base results but not in the fine-tuned ones",
                    bs.suite
                ))
            })?;
        let pairs = pair(bs, fs)?;
        let b: Vec<f64> = pairs.iter().map(|p| p.0.score).collect();
        let f: Vec<f64> = pairs.iter().map(|p| p.1.score).collect();
        let clusters: Vec<String> = pairs
            .iter()
            .map(|p| p.0.cluster.clone().unwrap_or_else(|| p.0.id.clone()))
            .collect();
        let clustered = pairs.iter().any(|p| p.0.cluster.is_some());
        let summary = if clustered {
            stats::paired_summary_clustered(&b, &f, &clusters, confidence, CiMethod::Normal)
        } else {
            stats::paired_summary(&b, &f, confidence, CiMethod::Normal)
        }
        .map_err(|e| GateError::Stats(format!("suite `{}`: {e}", bs.suite)))?;
        let cfg = BootstrapConfig {
            confidence,
            ..*boot
        };
        let bootr = if clustered {
            stats::paired_bootstrap_clustered(&b, &f, &clusters, &cfg)
        } else {
            stats::paired_bootstrap(&b, &f, &cfg)
        }
        .map_err(|e| GateError::Stats(format!("suite `{}`: {e}", bs.suite)))?;
        let binary = b.iter().chain(&f).all(|x| *x == 0.0 || *x == 1.0);
        let mcnemar_p = if binary {
            stats::mcnemar_from_scores(&b, &f, McNemarMethod::Auto)
                .ok()
                .map(|m| m.p_value)
        } else {
            None
        };
        let mde = stats::minimum_detectable_effect(summary.sd_d, b.len() as u64, 0.05, 0.8)
            .map(|p| p.mde)
            .unwrap_or(f64::NAN);
        let flipped = pairs
            .iter()
            .filter(|(x, y)| x.score > y.score && x.score >= 0.5)
            .map(|(x, y)| Flip {
                id: x.id.clone(),
                base_output: x.output.clone(),
                ft_output: y.output.clone(),
            })
            .collect();
        suites.push(SuiteComparison {
            suite: bs.suite.clone(),
            capability: bs.capability.clone(),
            metric: bs.metric.clone(),
            n: b.len(),
            base: summary.mean_base,
            finetuned: summary.mean_ft,
            delta: summary.delta,
            se: summary.se,
            ci: bootr.percentile,
            p_value: summary.p_value,
            p_holm: summary.p_value,
            mcnemar_p,
            mde,
            relative_drop: (summary.mean_base != 0.0).then(|| -summary.delta / summary.mean_base),
            format_failures_base: bs.format_failures,
            format_failures_ft: fs.format_failures,
            flipped,
        });
    }
    if let Ok(h) = stats::holm(
        &suites.iter().map(|s| s.p_value).collect::<Vec<_>>(),
        1.0 - confidence,
    ) {
        for (s, p) in suites.iter_mut().zip(h.adjusted) {
            s.p_holm = p;
        }
    }
    let macro_delta = suites.iter().map(|s| s.delta).sum::<f64>() / suites.len().max(1) as f64;
    let worst_suite = suites
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

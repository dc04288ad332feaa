//! `mc2_loglik`: TruthfulQA MC2, the normalised probability mass on the true choices (`golds`).

use super::{logliks, rendered_choices, ItemScore, Request, RequestContext, Response, Scorer};
use crate::model::score::LogLik;
use crate::suite::item::Item;
use crate::suite::spec::{ScorerKind, SuiteSpec};

pub struct Mc2Loglik;

impl Scorer for Mc2Loglik {
    fn kind(&self) -> ScorerKind {
        ScorerKind::Mc2Loglik
    }
    fn metric(&self) -> &'static str {
        "mc2"
    }
    fn request(&self, cx: &RequestContext) -> Result<Request, String> {
        Ok(Request::Continuations(rendered_choices(cx)?))
    }
    fn score(&self, _: &SuiteSpec, item: &Item, response: Response) -> Result<ItemScore, String> {
        let lls = logliks(&response)?;
        Ok(ItemScore {
            score: mc2(lls, &item.golds),
            logliks: lls.iter().map(|l| l.logprob).collect(),
            ..Default::default()
        })
    }
}

/// TruthfulQA MC2: Σ p(true) / Σ p(all), with p = exp(loglikelihood).
pub fn mc2(lls: &[LogLik], golds: &[usize]) -> f64 {
    let max = lls
        .iter()
        .map(|l| l.logprob)
        .fold(f64::NEG_INFINITY, f64::max);
    let p: Vec<f64> = lls.iter().map(|l| (l.logprob - max).exp()).collect();
    let t: f64 = golds.iter().filter_map(|&g| p.get(g)).sum();
    t / p.iter().sum::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ll(x: f64) -> LogLik {
        LogLik {
            logprob: x,
            is_greedy: false,
            tokens: 1,
        }
    }

    #[test]
    fn mc2_is_true_mass() {
        let v = mc2(
            &[ll((0.5f64).ln()), ll((0.25f64).ln()), ll((0.25f64).ln())],
            &[0],
        );
        assert!((v - 0.5).abs() < 1e-12);
    }
}

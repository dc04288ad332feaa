//! `rolling_nll`: the rolling log-likelihood of the item's `input` text on its own (lm-eval
//! `loglikelihood_rolling`, in windows of the model's context). The item's score is its mean
//! negative log-likelihood per token in nats — **lower is better** — and the suite's `extra`
//! has the token-weighted perplexity.

use std::collections::BTreeMap;

use super::{Direction, ItemScore, Request, RequestContext, Response, Scorer, Unit};
use crate::suite::item::Item;
use crate::suite::runner::ItemResult;
use crate::suite::spec::{ScorerKind, SuiteSpec};

pub struct RollingNll;

impl Scorer for RollingNll {
    fn kind(&self) -> ScorerKind {
        ScorerKind::RollingNll
    }
    fn direction(&self) -> Direction {
        Direction::LowerIsBetter
    }
    fn unit(&self) -> Unit {
        Unit::NatsPerToken
    }
    fn metric(&self) -> &'static str {
        "nll"
    }
    fn needs_context(&self) -> bool {
        false
    }
    fn request(&self, cx: &RequestContext) -> Result<Request, String> {
        Ok(Request::Rolling(cx.item.input.clone()))
    }
    fn score(&self, _: &SuiteSpec, _: &Item, response: Response) -> Result<ItemScore, String> {
        nll(response)
    }
    fn aggregate(
        &self,
        _: &[ItemResult],
        sums: &BTreeMap<&'static str, f64>,
    ) -> BTreeMap<String, f64> {
        perplexity(sums)
    }
}

/// Mean token NLL of a total log-likelihood; the total and the token count go into the sums.
pub fn nll(response: Response) -> Result<ItemScore, String> {
    let Response::Total { logprob, tokens } = response else {
        return Err(format!("expected a total log-likelihood, got {response:?}"));
    };
    Ok(ItemScore {
        score: -logprob / tokens.max(1) as f64,
        logliks: vec![logprob],
        sums: vec![("nll", -logprob), ("tokens", tokens as f64)],
        ..Default::default()
    })
}

/// `token_perplexity = exp(Σ NLL / Σ tokens)`.
pub fn perplexity(sums: &BTreeMap<&'static str, f64>) -> BTreeMap<String, f64> {
    match (sums.get("nll"), sums.get("tokens")) {
        (Some(nll), Some(&t)) if t > 0.0 => {
            BTreeMap::from([("token_perplexity".to_string(), (nll / t).exp())])
        }
        _ => BTreeMap::new(),
    }
}

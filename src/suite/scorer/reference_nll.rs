//! `reference_nll`: the log-likelihood of the item's reference `target` after the prompt, as its
//! own sequence. The item's score is the target's mean negative log-likelihood per token in
//! nats — **lower is better** — and the suite's `extra` has the token-weighted perplexity.

use std::collections::BTreeMap;

use super::rolling_nll::{nll, perplexity};
use super::{Direction, ItemScore, Request, RequestContext, Response, Scorer, Unit};
use crate::suite::item::Item;
use crate::suite::runner::ItemResult;
use crate::suite::spec::{ScorerKind, SuiteSpec};

pub struct ReferenceNll;

impl Scorer for ReferenceNll {
    fn kind(&self) -> ScorerKind {
        ScorerKind::ReferenceNll
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
    fn request(&self, cx: &RequestContext) -> Result<Request, String> {
        let target = cx
            .item
            .target
            .as_ref()
            .ok_or_else(|| format!("item {} has no target", cx.item.id))?;
        Ok(Request::Reference(target.clone()))
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

//! `exact_match`: greedy generation; the trimmed text must equal the trimmed `target`. An empty
//! answer is a format failure.

use super::{greedy, single_text, ItemScore, Request, RequestContext, Response, Scorer};
use crate::suite::item::Item;
use crate::suite::spec::{ScorerKind, SuiteSpec};

pub struct ExactMatch;

impl Scorer for ExactMatch {
    fn kind(&self) -> ScorerKind {
        ScorerKind::ExactMatch
    }
    fn metric(&self) -> &'static str {
        "exact_match"
    }
    fn generation_budget(&self, spec: &SuiteSpec) -> usize {
        spec.generation.max_new_tokens
    }
    fn request(&self, cx: &RequestContext) -> Result<Request, String> {
        Ok(greedy(cx.spec))
    }
    fn score(&self, _: &SuiteSpec, item: &Item, response: Response) -> Result<ItemScore, String> {
        let text = single_text(response)?;
        let a = text.trim().to_string();
        let target = item.target.as_deref().unwrap_or_default();
        Ok(ItemScore {
            score: (a == target.trim()) as u8 as f64,
            format_failure: a.is_empty(),
            extracted: Some(a),
            output: Some(text),
            ..Default::default()
        })
    }
}

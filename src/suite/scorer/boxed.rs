//! `generate_boxed`: greedy generation, the answer is the last `\boxed{…}` (or the first group of
//! `answer_regex`), equal to `target` as text or as a number.

use super::number::{answer_regex, judged};
use super::{extract, greedy, single_text, ItemScore, Request, RequestContext, Response, Scorer};
use crate::suite::item::Item;
use crate::suite::spec::{ScorerKind, SuiteSpec};
use crate::suite::SuiteError;

pub struct GenerateBoxed;

impl Scorer for GenerateBoxed {
    fn kind(&self) -> ScorerKind {
        ScorerKind::GenerateBoxed
    }
    fn metric(&self) -> &'static str {
        "exact_match"
    }
    fn generation_budget(&self, spec: &SuiteSpec) -> usize {
        spec.generation.max_new_tokens
    }
    fn validate(&self, spec: &SuiteSpec) -> Result<(), SuiteError> {
        answer_regex(spec).map(|_| ())
    }
    fn request(&self, cx: &RequestContext) -> Result<Request, String> {
        Ok(greedy(cx.spec))
    }
    fn score(
        &self,
        spec: &SuiteSpec,
        item: &Item,
        response: Response,
    ) -> Result<ItemScore, String> {
        let text = single_text(response)?;
        let got = match answer_regex(spec).map_err(|e| e.to_string())? {
            Some(re) => extract::regex_first(&text, &re),
            None => extract::last_boxed(&text),
        };
        let target = item.target.as_deref().unwrap_or_default();
        Ok(judged(got, text, |a| {
            a.trim() == target.trim() || extract::numbers_equal(a, target)
        }))
    }
}

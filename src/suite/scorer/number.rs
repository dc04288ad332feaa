//! `generate_number`: greedy generation, the answer is the first group of the suite's
//! `answer_regex` or else the last number in the text (lm-eval's gsm8k "flexible-extract"),
//! compared with `target` as numbers.

use regex::Regex;

use super::{extract, greedy, single_text, ItemScore, Request, RequestContext, Response, Scorer};
use crate::suite::item::Item;
use crate::suite::spec::{ScorerKind, SuiteSpec};
use crate::suite::SuiteError;

pub struct GenerateNumber;

impl Scorer for GenerateNumber {
    fn kind(&self) -> ScorerKind {
        ScorerKind::GenerateNumber
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
        let re = answer_regex(spec).map_err(|e| e.to_string())?;
        let got = match &re {
            Some(re) => extract::regex_first(&text, re),
            None => extract::last_number(&text),
        };
        let target = item.target.as_deref().unwrap_or_default();
        Ok(judged(got, text, |a| extract::numbers_equal(a, target)))
    }
}

/// The suite's `answer_regex`, compiled (an error names the suite).
pub fn answer_regex(spec: &SuiteSpec) -> Result<Option<Regex>, SuiteError> {
    spec.generation
        .answer_regex
        .as_deref()
        .map(|r| {
            Regex::new(r).map_err(|e| SuiteError::Template {
                suite: spec.name.clone(),
                reason: format!("answer_regex: {e}"),
            })
        })
        .transpose()
}

/// An extracted answer judged by `correct`; no answer at all is a format failure.
pub fn judged(got: Option<String>, output: String, correct: impl Fn(&str) -> bool) -> ItemScore {
    match got {
        None => ItemScore {
            format_failure: true,
            output: Some(output),
            ..Default::default()
        },
        Some(a) => ItemScore {
            score: correct(&a) as u8 as f64,
            extracted: Some(a),
            output: Some(output),
            ..Default::default()
        },
    }
}

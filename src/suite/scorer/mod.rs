//! Scorers, one file each, behind the [`Scorer`] trait and the one registry table [`SCORERS`].
//!
//! A scorer says what it asks of the model for an item ([`Request`]: continuations to score,
//! completions to generate, a text's rolling log-likelihood) and turns the answer into an
//! [`ItemScore`]. It also declares its metric's [`Direction`] and [`Unit`], which compare, gate
//! and the reports read so that a *drop* always means *worse* and each number is shown in its
//! unit. An answer the extractor cannot parse is a *format failure*, counted apart from a wrong
//! answer.

pub mod boxed;
pub mod exact_match;
pub mod external;
pub mod extract;
pub mod mc2_loglik;
pub mod mc_loglik;
pub mod number;
pub mod pass_at_k;
pub mod reference_nll;
pub mod refusal;
pub mod refusal_loglik;
pub mod rolling_nll;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::item::Item;
use super::runner::ItemResult;
use super::spec::{ScorerKind, SuiteSpec};
use super::SuiteError;
use crate::backend::GenerateRequest;
use crate::model::generate::Decoding;
use crate::model::score::LogLik;

/// Which way a metric improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    HigherIsBetter,
    LowerIsBetter,
}

impl Direction {
    /// `+1` when higher is better, `−1` when lower is: multiplying a change of the metric by it
    /// gives the change in the better direction (negative = worse).
    pub fn sign(self) -> f64 {
        match self {
            Direction::HigherIsBetter => 1.0,
            Direction::LowerIsBetter => -1.0,
        }
    }
}

/// The unit of a suite's per-item scores and of its mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// a share in `[0, 1]` (accuracy, pass@k, a refusal rate); shown as points (× 100)
    Proportion,
    /// mean negative log-likelihood per token, in nats
    NatsPerToken,
}

impl Unit {
    /// What a difference is written in: `pts`, `nats/token`.
    pub fn label(self) -> &'static str {
        match self {
            Unit::Proportion => "pts",
            Unit::NatsPerToken => "nats/token",
        }
    }

    /// A value (a score or a difference) in display units: points for proportions.
    pub fn display(self, x: f64) -> f64 {
        match self {
            Unit::Proportion => 100.0 * x,
            Unit::NatsPerToken => x,
        }
    }

    /// Decimals shown for a value.
    pub fn decimals(self) -> usize {
        match self {
            Unit::Proportion => 1,
            Unit::NatsPerToken => 3,
        }
    }

    /// Whether every per-item score lies in `[0, 1]`.
    pub fn is_bounded(self) -> bool {
        self == Unit::Proportion
    }
}

/// What a scorer asks of the model for one item.
#[derive(Debug, Clone)]
pub enum Request {
    /// the log-likelihood of each continuation after the prompt (scored together across items,
    /// each prompt run once)
    Continuations(Vec<String>),
    /// completions of the prompt, one per request
    Generate(Vec<GenerateRequest>),
    /// the rolling log-likelihood of a text on its own (no prompt)
    Rolling(String),
    /// the log-likelihood of one continuation after the prompt, as its own sequence
    Reference(String),
}

/// The model's answer to a [`Request`].
#[derive(Debug, Clone)]
pub enum Response<'a> {
    /// one per continuation, in order, with the continuations as scored
    LogLiks {
        logliks: &'a [LogLik],
        continuations: &'a [String],
    },
    /// one per generation request, in order
    Texts(Vec<String>),
    /// a total log-likelihood and the number of tokens it covers
    Total { logprob: f64, tokens: usize },
}

/// What a scorer made of one item's response.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ItemScore {
    /// the item's score (in `[0, 1]` for [`Unit::Proportion`])
    pub score: f64,
    /// the answer pulled out of the output, if any
    pub extracted: Option<String>,
    /// the output could not be parsed into an answer at all
    pub format_failure: bool,
    /// the generated text kept in the results
    pub output: Option<String>,
    /// log-likelihoods kept in the results
    pub logliks: Vec<f64>,
    /// per-item values summed into suite-level figures by [`Scorer::aggregate`]
    pub sums: Vec<(&'static str, f64)>,
    /// a fact about how the item was scored (e.g. the sandbox had no network namespace)
    pub note: Option<String>,
}

/// What a scorer is given to build an item's request.
pub struct RequestContext<'a> {
    pub spec: &'a SuiteSpec,
    pub item: &'a Item,
    /// whether the tokenizer adds its special tokens (false after a chat template)
    pub special: bool,
    /// the suite's `choice_template`, compiled
    pub choice: &'a minijinja::Template<'a, 'a>,
}

/// One way of scoring an item.
pub trait Scorer: Sync {
    fn kind(&self) -> ScorerKind;
    /// Which way the metric improves.
    fn direction(&self) -> Direction {
        Direction::HigherIsBetter
    }
    /// The unit of the per-item scores.
    fn unit(&self) -> Unit {
        Unit::Proportion
    }
    /// The metric's name for suites made by an importer (`acc`, `pass@1`, …).
    fn metric(&self) -> &'static str;
    /// Tokens generated after the prompt, counted against the model's context.
    fn generation_budget(&self, _spec: &SuiteSpec) -> usize {
        0
    }
    /// Whether the prompt must fit the context (a rolling window never needs to).
    fn needs_context(&self) -> bool {
        true
    }
    /// Check the suite's settings before any model is loaded.
    fn validate(&self, _spec: &SuiteSpec) -> Result<(), SuiteError> {
        Ok(())
    }
    /// What to ask of the model for one item.
    fn request(&self, cx: &RequestContext) -> Result<Request, String>;
    /// Score the model's answer.
    fn score(&self, spec: &SuiteSpec, item: &Item, response: Response)
        -> Result<ItemScore, String>;
    /// Suite-level extra metrics from the per-item results and the sums of [`ItemScore::sums`].
    fn aggregate(
        &self,
        _items: &[ItemResult],
        _sums: &BTreeMap<&'static str, f64>,
    ) -> BTreeMap<String, f64> {
        BTreeMap::new()
    }
    /// Facts a reader of the results needs, from the items' notes (deduplicated, in order).
    fn notes(&self, _item_notes: &[String]) -> Vec<String> {
        Vec::new()
    }
}

/// Every scorer, one row each.
pub static SCORERS: &[&dyn Scorer] = &[
    &number::GenerateNumber,
    &boxed::GenerateBoxed,
    &exact_match::ExactMatch,
    &mc_loglik::McLoglik,
    &mc2_loglik::Mc2Loglik,
    &refusal::Refusal,
    &refusal_loglik::RefusalLoglik,
    &pass_at_k::PassAtK,
    &rolling_nll::RollingNll,
    &reference_nll::ReferenceNll,
    &external::External,
];

/// The scorer of `kind`.
pub fn scorer(kind: ScorerKind) -> &'static dyn Scorer {
    *SCORERS
        .iter()
        .find(|s| s.kind() == kind)
        .expect("every ScorerKind has a row in SCORERS")
}

/// One greedy completion with the suite's budget and stop strings.
pub fn greedy(spec: &SuiteSpec) -> Request {
    Request::Generate(vec![GenerateRequest {
        max_new_tokens: spec.generation.max_new_tokens,
        decoding: Decoding::Greedy,
        stop: spec.generation.stop.clone(),
    }])
}

/// The one text of a single-generation response.
pub fn single_text(response: Response) -> Result<String, String> {
    match response {
        Response::Texts(mut t) if t.len() == 1 => Ok(t.remove(0)),
        other => Err(format!("expected one generated text, got {other:?}")),
    }
}

/// The log-likelihoods of a continuation response.
pub fn logliks<'a>(response: &Response<'a>) -> Result<&'a [LogLik], String> {
    match response {
        Response::LogLiks { logliks, .. } => Ok(logliks),
        other => Err(format!(
            "expected continuation log-likelihoods, got {other:?}"
        )),
    }
}

/// The choices of a multiple-choice item, each rendered through the suite's choice template.
pub fn rendered_choices(cx: &RequestContext) -> Result<Vec<String>, String> {
    if cx.item.choices.is_empty() {
        return Err(format!("item {} has no choices", cx.item.id));
    }
    cx.item
        .choices
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let label = char::from(b'A' + (i % 26) as u8).to_string();
            crate::model::jinja::render(
                cx.choice,
                minijinja::context! { choice => c, label => label, index => i },
            )
            .map_err(|e| format!("choice_template: {e}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_exactly_one_scorer() {
        let kinds: Vec<ScorerKind> = SCORERS.iter().map(|s| s.kind()).collect();
        for (i, k) in kinds.iter().enumerate() {
            assert!(!kinds[i + 1..].contains(k), "{k:?} twice");
            // the serde name of the kind round-trips through the registry
            let name = serde_json::to_string(k).unwrap();
            let back: ScorerKind = serde_json::from_str(&name).unwrap();
            assert_eq!(scorer(back).kind(), *k);
        }
        assert_eq!(kinds.len(), 11);
    }

    #[test]
    fn likelihood_metrics_are_lower_is_better_in_nats() {
        for k in [ScorerKind::RollingNll, ScorerKind::ReferenceNll] {
            assert_eq!(scorer(k).direction(), Direction::LowerIsBetter);
            assert_eq!(scorer(k).unit(), Unit::NatsPerToken);
        }
        for s in SCORERS {
            if !matches!(s.kind(), ScorerKind::RollingNll | ScorerKind::ReferenceNll) {
                assert_eq!(s.direction(), Direction::HigherIsBetter, "{:?}", s.kind());
                assert_eq!(s.unit(), Unit::Proportion, "{:?}", s.kind());
            }
        }
        assert_eq!(Direction::LowerIsBetter.sign() * (4.0 - 1.0), -3.0);
    }
}

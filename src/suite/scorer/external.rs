//! `external`: items scored by another harness (lm-evaluation-harness, inspect_ai) and read
//! from its per-item log ([`crate::suite::external`]). Nothing can be run with it: a suite
//! that names it is refused.

use super::{ItemScore, Request, RequestContext, Response, Scorer};
use crate::suite::item::Item;
use crate::suite::spec::{ScorerKind, SuiteSpec};
use crate::suite::SuiteError;

pub struct External;

impl Scorer for External {
    fn kind(&self) -> ScorerKind {
        ScorerKind::External
    }
    fn metric(&self) -> &'static str {
        "score"
    }
    fn validate(&self, spec: &SuiteSpec) -> Result<(), SuiteError> {
        Err(SuiteError::Spec {
            path: "suite.toml".into(),
            line: None,
            reason: format!(
                "suite `{}`: scorer `external` marks results read from another harness's log; a suite cannot be run with it",
                spec.name
            ),
        })
    }
    fn request(&self, _: &RequestContext) -> Result<Request, String> {
        Err("items scored by another harness cannot be scored again".into())
    }
    fn score(&self, _: &SuiteSpec, _: &Item, _: Response) -> Result<ItemScore, String> {
        Err("items scored by another harness cannot be scored again".into())
    }
}

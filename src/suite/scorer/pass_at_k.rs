//! `pass_at_k`: functional correctness by execution (HumanEval/MBPP): each completion is
//! appended to the prompt, followed by the item's tests, and run in the sandbox. With
//! `samples = 1` the completion is greedy; with more, each is sampled (the suite's temperature,
//! top-p 0.95, seed = the sample's index) and the item's score is pass@1 by the unbiased
//! estimator of Chen et al. (2021): `1 − C(n−c, k) / C(n, k)` for `n` samples of which `c` pass.

use super::{ItemScore, Request, RequestContext, Response, Scorer};
use crate::backend::GenerateRequest;
use crate::model::generate::Decoding;
use crate::suite::item::Item;
use crate::suite::sandbox::{check_program, run_python, Limits, Outcome, SandboxError};
use crate::suite::spec::{ScorerKind, SuiteSpec};

pub struct PassAtK;

impl Scorer for PassAtK {
    fn kind(&self) -> ScorerKind {
        ScorerKind::PassAtK
    }
    fn metric(&self) -> &'static str {
        "pass@1"
    }
    fn generation_budget(&self, spec: &SuiteSpec) -> usize {
        spec.generation.max_new_tokens
    }
    fn request(&self, cx: &RequestContext) -> Result<Request, String> {
        let g = &cx.spec.generation;
        let n = g.samples.max(1);
        Ok(Request::Generate(
            (0..n)
                .map(|s| GenerateRequest {
                    max_new_tokens: g.max_new_tokens,
                    decoding: if n == 1 {
                        Decoding::Greedy
                    } else {
                        Decoding::Sample {
                            temperature: g.temperature,
                            top_p: 0.95,
                            seed: s as u64,
                        }
                    },
                    stop: g.stop.clone(),
                })
                .collect(),
        ))
    }
    fn score(&self, _: &SuiteSpec, item: &Item, response: Response) -> Result<ItemScore, String> {
        let Response::Texts(texts) = response else {
            return Err(format!("expected generated texts, got {response:?}"));
        };
        let limits = item_limits(&Limits::default(), item);
        let mut passed = 0;
        let mut note = None;
        for text in &texts {
            let outcome = run(item, text, &limits).map_err(|e| format!("code sandbox: {e}"))?;
            note.get_or_insert_with(|| outcome.isolation_summary());
            passed += outcome.status.passed() as usize;
        }
        let n = texts.len();
        Ok(ItemScore {
            score: pass_at_k(n, passed, 1),
            extracted: Some(format!("{passed}/{n} passed")),
            output: texts.into_iter().next(),
            note,
            ..Default::default()
        })
    }
    fn notes(&self, item_notes: &[String]) -> Vec<String> {
        item_notes.to_vec()
    }
}

/// The sandbox limits for one item's tests: the default, raised to the item's `time_limit` and
/// `memory_limit` where those are larger.
pub fn item_limits(default: &Limits, item: &Item) -> Limits {
    let mut l = default.clone();
    // (values were checked at load, Item::check; out-of-range ones are ignored here too)
    if let Some(d) = item
        .time_limit
        .and_then(|s| std::time::Duration::try_from_secs_f64(s).ok())
    {
        l.wall = l.wall.max(d);
        l.cpu_secs = l.cpu_secs.max(d.as_secs_f64().ceil() as u64);
    }
    if let Some(mb) = item.memory_limit {
        l.memory_bytes = l.memory_bytes.max(mb.saturating_mul(1 << 20));
    }
    l
}

/// Unbiased pass@k from `n` samples with `c` correct.
pub fn pass_at_k(n: usize, c: usize, k: usize) -> f64 {
    if n == 0 || k == 0 {
        return 0.0;
    }
    if n - c < k {
        return 1.0;
    }
    // 1 − Π_{i=n−c+1}^{n} (1 − k/i), numerically stable
    1.0 - ((n - c + 1)..=n)
        .map(|i| 1.0 - k as f64 / i as f64)
        .product::<f64>()
}

/// The program that checks one completion: HumanEval tests define `check(candidate)` and are
/// called with the entry point; MBPP-style tests are bare asserts.
pub fn program(item: &Item, completion: &str) -> String {
    let test = item.test.as_deref().unwrap_or("");
    let entry = if test.contains("def check(") {
        item.entry_point.as_deref()
    } else {
        None
    };
    check_program(&format!("{}{}", item.input, completion), test, entry)
}

/// Run one completion's tests.
pub fn run(item: &Item, completion: &str, limits: &Limits) -> Result<Outcome, SandboxError> {
    run_python(&program(item, completion), limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimator_matches_known_values() {
        assert_eq!(pass_at_k(1, 1, 1), 1.0);
        assert_eq!(pass_at_k(1, 0, 1), 0.0);
        assert!((pass_at_k(10, 3, 1) - 0.3).abs() < 1e-12);
        // 1 − C(7,5)/C(10,5) = 1 − 21/252
        assert!((pass_at_k(10, 3, 5) - (1.0 - 21.0 / 252.0)).abs() < 1e-12);
        assert_eq!(pass_at_k(10, 8, 5), 1.0);
    }

    #[test]
    fn humaneval_and_mbpp_style_programs() {
        let he = Item {
            input: "def add(a, b):\n    \"\"\"Add.\"\"\"\n".into(),
            test: Some("def check(candidate):\n    assert candidate(1, 2) == 3\n".into()),
            entry_point: Some("add".into()),
            ..Default::default()
        };
        assert!(program(&he, "    return a + b\n").ends_with("check(add)\n"));
        let mbpp = Item {
            input: "".into(),
            test: Some("assert add(1, 2) == 3\n".into()),
            entry_point: Some("add".into()),
            ..Default::default()
        };
        assert!(!program(&mbpp, "def add(a, b):\n    return a + b\n").contains("check("));
        if crate::suite::sandbox::find_python().is_ok() {
            assert!(run(&he, "    return a + b\n", &Limits::default())
                .unwrap()
                .status
                .passed());
            assert!(!run(&he, "    return a - b\n", &Limits::default())
                .unwrap()
                .status
                .passed());
        }
    }
}

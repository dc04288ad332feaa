//! `suites/<name>/suite.toml`: what a suite asks and how it is scored. A suite's content hash
//! (spec + items) identifies it in every result.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::item::Item;
use super::SuiteError;

/// The version of the results and cache schema (2: metrics carry their direction and unit, and
/// results files a checksum).
pub const SCHEMA_VERSION: u32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScorerKind {
    /// greedy generation, last number (or a regex) compared with `target`
    GenerateNumber,
    /// greedy generation, last `\boxed{}` compared with `target`
    GenerateBoxed,
    /// greedy generation, trimmed text equals `target`
    ExactMatch,
    /// log-likelihood of each choice: acc and acc_norm
    McLoglik,
    /// TruthfulQA MC2: probability mass on the true choices
    Mc2Loglik,
    /// greedy generation judged refusal/compliance against the item's label
    Refusal,
    /// log-likelihood of a refusal opening against a compliant opening after the prompt (no
    /// generation; openings in `[refusal]`), judged against the item's label
    RefusalLoglik,
    /// completions executed against the item's tests in the sandbox
    PassAtK,
    /// rolling log-likelihood of the item's `input` text: per-item mean token NLL (lower is
    /// better) and the suite's perplexity
    RollingNll,
    /// log-likelihood of the reference `target` after the prompt: per-item mean token NLL
    ReferenceNll,
    /// scored by another harness (lm-evaluation-harness, inspect_ai), read from its log
    External,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ChatPolicy {
    /// use the model's chat template when it has one
    #[default]
    Auto,
    Never,
    Always,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptSpec {
    /// minijinja template over the item's fields (`input`, `context`, `choices`, …)
    pub template: String,
    #[serde(default)]
    pub fewshot: usize,
    #[serde(default)]
    pub fewshot_seed: u64,
    #[serde(default)]
    pub chat: ChatPolicy,
    /// continuation scored for each choice, over `choice`, `label` (A, B, …) and `index`
    /// (default `" {{ choice }}"`; MMLU-style letter answers: `" {{ label }}"`)
    #[serde(default = "default_choice")]
    pub choice_template: String,
}

fn default_choice() -> String {
    " {{ choice }}".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationSpec {
    #[serde(default = "default_max_new")]
    pub max_new_tokens: usize,
    #[serde(default)]
    pub stop: Vec<String>,
    /// regex whose first group is the answer (else the scorer's default extraction)
    #[serde(default)]
    pub answer_regex: Option<String>,
    /// pass@k: samples per item (1: one greedy completion)
    #[serde(default = "one")]
    pub samples: usize,
    /// pass@k: sampling temperature when `samples > 1`
    #[serde(default = "default_temperature")]
    pub temperature: f64,
}

fn one() -> usize {
    1
}

fn default_temperature() -> f64 {
    0.8
}

fn default_max_new() -> usize {
    256
}

impl Default for GenerationSpec {
    fn default() -> Self {
        GenerationSpec {
            max_new_tokens: default_max_new(),
            stop: vec![],
            answer_regex: None,
            samples: 1,
            temperature: default_temperature(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteSpec {
    pub name: String,
    pub capability: String,
    pub version: String,
    pub scorer: ScorerKind,
    pub metric: String,
    #[serde(default = "default_items")]
    pub items: PathBuf,
    pub prompt: PromptSpec,
    #[serde(default)]
    pub generation: GenerationSpec,
    /// `refusal_loglik`: the openings compared (defaults when absent)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<RefusalSpec>,
}

/// `[refusal]` of a `refusal_loglik` suite: which response openings are compared. Each is scored
/// as a continuation of the prompt; after a chat template (the assistant turn starts the text)
/// its leading whitespace is dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefusalSpec {
    #[serde(default = "default_refusal_opening")]
    pub refusal_opening: String,
    #[serde(default = "default_compliance_opening")]
    pub compliance_opening: String,
    /// compare total log-likelihoods (`none`) or per-token means (`tokens`, the default: the
    /// openings differ in length)
    #[serde(default)]
    pub normalize: LoglikNorm,
}

fn default_refusal_opening() -> String {
    super::scorer::refusal_loglik::DEFAULT_REFUSAL_OPENING.into()
}

fn default_compliance_opening() -> String {
    super::scorer::refusal_loglik::DEFAULT_COMPLIANCE_OPENING.into()
}

impl Default for RefusalSpec {
    fn default() -> Self {
        RefusalSpec {
            refusal_opening: default_refusal_opening(),
            compliance_opening: default_compliance_opening(),
            normalize: LoglikNorm::default(),
        }
    }
}

/// How two continuations' log-likelihoods are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LoglikNorm {
    /// per-token mean
    #[default]
    Tokens,
    /// total
    None,
}

fn default_items() -> PathBuf {
    "items.jsonl".into()
}

/// A loaded suite.
#[derive(Debug, Clone)]
pub struct Suite {
    pub spec: SuiteSpec,
    pub items: Vec<Item>,
    /// sha256 of the spec and the items, hex
    pub hash: String,
    pub dir: PathBuf,
}

impl Suite {
    /// Load `dir/suite.toml` and its items.
    pub fn load(dir: &Path) -> Result<Suite, SuiteError> {
        let spec_path = dir.join("suite.toml");
        let text = std::fs::read_to_string(&spec_path).map_err(|e| SuiteError::Io {
            path: spec_path.clone(),
            source: e,
        })?;
        let spec: SuiteSpec = toml::from_str(&text).map_err(|e| SuiteError::Spec {
            path: spec_path.clone(),
            line: e.span().map(|s| text[..s.start].matches('\n').count() + 1),
            reason: e.message().to_string(),
        })?;
        let items_path = dir.join(&spec.items);
        let items = read_items(&items_path)?;
        Suite::new(spec, items, dir.to_path_buf())
    }

    /// A suite of `items`; every item needs an id of its own (results are paired by id).
    pub fn new(spec: SuiteSpec, items: Vec<Item>, dir: PathBuf) -> Result<Suite, SuiteError> {
        if items.is_empty() {
            return Err(SuiteError::Empty {
                name: spec.name.clone(),
            });
        }
        let mut seen = std::collections::HashMap::new();
        for (i, it) in items.iter().enumerate() {
            let reason = if let Err(e) = it.check() {
                Some(e)
            } else if it.id.trim().is_empty() {
                Some("has no `id`: every item needs one, unique in its suite (results are paired by id)".to_string())
            } else {
                seen.insert(it.id.as_str(), i)
                    .map(|first| format!("repeats the id `{}` of item {}: ids must be unique (results are paired by id)", it.id, first + 1))
            };
            if let Some(reason) = reason {
                return Err(SuiteError::Spec {
                    path: dir.join(&spec.items),
                    line: None,
                    reason: format!("suite `{}`: item {} {reason}", spec.name, i + 1),
                });
            }
        }
        let mut h = Sha256::new();
        h.update(serde_json::to_vec(&spec).expect("spec serialises"));
        for it in &items {
            h.update(serde_json::to_vec(it).expect("item serialises"));
            h.update(b"\n");
        }
        let hash = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        Ok(Suite {
            spec,
            items,
            hash,
            dir,
        })
    }
}

/// Items JSONL: one [`Item`] per line; errors name file, line and field.
pub fn read_items(path: &Path) -> Result<Vec<Item>, SuiteError> {
    let text = std::fs::read_to_string(path).map_err(|e| SuiteError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let mut out = Vec::new();
    let mut lines = std::collections::HashMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |reason: String| SuiteError::Item {
            path: path.to_path_buf(),
            line: i + 1,
            reason,
        };
        if let Some(reason) = crate::data::line_too_long(line) {
            return Err(bad(reason));
        }
        let it: Item = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        it.check().map_err(bad)?;
        if it.id.trim().is_empty() {
            return Err(bad(
                "missing field `id`: every item needs one, unique in its suite (results are paired by id)"
                    .into(),
            ));
        }
        if let Some(first) = lines.insert(it.id.clone(), i + 1) {
            return Err(bad(format!(
                "id `{}` is already used on line {first}: ids must be unique (results are paired by id)",
                it.id
            )));
        }
        out.push(it);
    }
    Ok(out)
}

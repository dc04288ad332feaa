//! Per-item results of other harnesses, read as sft-eval results so that `compare` and `gate`
//! pair them the same way: lm-evaluation-harness `--log_samples` output ([`lmeval`]) and
//! inspect_ai JSON eval logs ([`inspect`]).
//!
//! Each (task, metric, filter) becomes one suite whose items are the task's documents (inspect:
//! samples × epochs, clustered by sample), with the metric's direction as the harness recorded
//! it. What the harness recorded about the task (version, few-shot count, configuration) and
//! each item's document and prompt hashes travel with the results ([`Origin`]), so two runs of a
//! changed task, or of different documents, are refused rather than paired.
//!
//! Only metrics that are means of per-item scores in `[0, 1]` are read; a corpus-level metric
//! (BLEU, F1 over the corpus, perplexity) is refused by name.

pub mod inspect;
pub mod lmeval;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::results::{EvalResults, ModelRef};
use super::runner::{EvalSettings, ItemResult, Origin, SuiteResult};
use super::scorer::{Direction, Unit};
use super::spec::{ScorerKind, SCHEMA_VERSION};
use super::SuiteError;

/// Which harness wrote a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Harness {
    LmEval,
    Inspect,
}

/// The harness and file/folder a command-line argument names, when it names another harness's
/// results: `lmeval:PATH` or `inspect:PATH`, or detected — a folder holding lm-eval's
/// `results_*.json`, such a file itself, or an inspect JSON log.
pub fn detect(arg: &Path) -> Option<(Harness, PathBuf)> {
    let s = arg.to_string_lossy();
    if let Some(rest) = s.strip_prefix("lmeval:") {
        return Some((Harness::LmEval, PathBuf::from(rest)));
    }
    if let Some(rest) = s.strip_prefix("inspect:") {
        return Some((Harness::Inspect, PathBuf::from(rest)));
    }
    if arg.is_dir() {
        let model = ["config.json", "adapter_config.json"]
            .iter()
            .any(|f| arg.join(f).exists());
        return (!model && !lmeval::results_files(arg).is_empty())
            .then(|| (Harness::LmEval, arg.to_path_buf()));
    }
    let name = arg.file_name()?.to_string_lossy();
    // (an sft-eval results file may be named results_*.json too: it starts with its schema)
    if name.starts_with("results_") && name.ends_with(".json") && !inspect::is_sft_eval_results(arg)
    {
        return Some((Harness::LmEval, arg.to_path_buf()));
    }
    if name.ends_with(".eval") {
        return Some((Harness::Inspect, arg.to_path_buf()));
    }
    if name.ends_with(".json") && inspect::looks_like_log(arg) {
        return Some((Harness::Inspect, arg.to_path_buf()));
    }
    None
}

/// Read `arg` as another harness's results, when [`detect`] says it is one.
pub fn read(arg: &Path) -> Result<Option<EvalResults>, SuiteError> {
    match detect(arg) {
        None => Ok(None),
        Some((Harness::LmEval, p)) => lmeval::read(&p).map(Some),
        Some((Harness::Inspect, p)) => inspect::read(&p).map(Some),
    }
}

pub(crate) fn bad(path: &Path, reason: impl Into<String>) -> SuiteError {
    SuiteError::Spec {
        path: path.to_path_buf(),
        line: None,
        reason: reason.into(),
    }
}

pub(crate) fn read_json(path: &Path) -> Result<serde_json::Value, SuiteError> {
    let text = std::fs::read_to_string(path).map_err(|e| SuiteError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    serde_json::from_str(&text).map_err(|e| SuiteError::Spec {
        path: path.to_path_buf(),
        line: Some(e.line()),
        reason: format!("invalid JSON: {e}"),
    })
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A per-item score as the harness logged it, in `[0, 1]`: a number or a boolean.
pub(crate) fn unit_score(v: &serde_json::Value) -> Option<f64> {
    let x = match v {
        serde_json::Value::Bool(b) => *b as u8 as f64,
        serde_json::Value::Number(n) => n.as_f64()?,
        _ => return None,
    };
    (x.is_finite() && (0.0..=1.0).contains(&x)).then_some(x)
}

/// One suite of imported items.
pub(crate) struct ImportedSuite {
    pub name: String,
    pub capability: String,
    pub metric: String,
    pub direction: Direction,
    pub origin: Origin,
    pub items: Vec<ItemResult>,
}

impl ImportedSuite {
    /// The suite result: mean and standard error of the items' scores; the suite hash covers the
    /// origin and the metric (the items are paired and checked one by one).
    pub fn into_result(self) -> SuiteResult {
        let n = self.items.len();
        let mean = self.items.iter().map(|i| i.score).sum::<f64>() / n.max(1) as f64;
        let var = if n > 1 {
            self.items
                .iter()
                .map(|i| (i.score - mean).powi(2))
                .sum::<f64>()
                / (n - 1) as f64
        } else {
            0.0
        };
        let key = serde_json::to_vec(&(&self.origin, &self.metric)).expect("serialises");
        SuiteResult {
            schema_version: SCHEMA_VERSION,
            suite: self.name,
            capability: self.capability,
            suite_hash: sha256_hex(&key),
            scorer: ScorerKind::External,
            metric: self.metric,
            direction: self.direction,
            unit: Unit::Proportion,
            n,
            mean,
            se: (var / n.max(1) as f64).sqrt(),
            format_failures: 0,
            skipped: Vec::new(),
            extra: Default::default(),
            seconds: 0.0,
            source: None,
            notes: vec![format!(
                "scored by {} (task `{}`, version {})",
                self.origin.harness, self.origin.task, self.origin.version
            )],
            origin: Some(self.origin),
            items: self.items,
        }
    }
}

/// Results of imported suites for a model named `model`, fingerprinted by the logs' bytes.
pub(crate) fn results(
    model: String,
    files: &[PathBuf],
    suites: Vec<SuiteResult>,
) -> Result<EvalResults, SuiteError> {
    let mut h = Sha256::new();
    for f in files {
        let bytes = std::fs::read(f).map_err(|e| SuiteError::Io {
            path: f.clone(),
            source: e,
        })?;
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
    }
    let fingerprint = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(EvalResults::new(
        ModelRef {
            path: model,
            fingerprint,
        },
        EvalSettings::default(),
        suites,
    ))
}

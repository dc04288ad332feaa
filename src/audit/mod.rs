//! Data-quality audit of SFT data: the checks behind `sft-eval audit`.
//!
//! One pass over the records of a JSONL file ([`crate::data::read_jsonl`]) gives an
//! [`AuditReport`]:
//! - [`duplicates`]: exact duplicates and near duplicates (MinHash + LSH, [`minhash`]);
//! - [`templates`]: prompts sharing a skeleton once numbers, quotes, URLs are masked;
//! - [`lengths`]: prompt and response lengths, and over-long records;
//! - [`diversity`]: distinct-1 / distinct-2 of prompts and responses;
//! - [`conflicts`]: the same prompt with different responses;
//! - [`empty`]: empty prompts and responses;
//! - per-task and per-format counts;
//! - [`limits`]: thresholds that make it a CI check.
//!
//! A record's *prompt* is its `prompt`, or every turn before the last assistant turn; its
//! *response* is its `completion`, or its assistant turns. Text records have no prompt; their
//! text counts as the response. Rendering is in [`report`]; nothing here prints.

pub mod conflicts;
pub mod diversity;
pub mod duplicates;
pub mod empty;
pub mod lengths;
pub mod limits;
pub mod minhash;
pub mod report;
pub mod templates;
#[cfg(test)]
pub(crate) mod tests;
pub mod text;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use limits::{Check, Limits};

use crate::data::{DataError, Record, Sample};
use crate::model::tokenizer::TokenizerError;
use crate::model::Tokenizer;

/// Version of the JSON report layout; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// Characters of a record or prompt shown in examples.
pub const PREVIEW_CHARS: usize = 80;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", .path.display())]
    Limits { path: PathBuf, message: String },
    #[error("{0}")]
    Options(String),
}

/// How to audit.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditOptions {
    /// Jaccard similarity at or above which two records are near duplicates, in (0, 1]
    pub near_threshold: f64,
    /// characters per shingle
    pub shingle_size: usize,
    /// MinHash permutations
    pub num_perm: usize,
    /// examples listed per check
    pub top: usize,
    /// records longer than this many characters (prompt + response) are over-long
    pub max_chars: Option<usize>,
    /// records longer than this many tokens (prompt + response) are over-long; needs a tokenizer
    pub max_tokens: Option<usize>,
    pub limits: Limits,
    /// worker threads for MinHash and tokenisation
    pub threads: usize,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            near_threshold: 0.8,
            shingle_size: 5,
            num_perm: 128,
            top: 10,
            max_chars: None,
            max_tokens: None,
            limits: Limits::default(),
            threads: std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(8),
        }
    }
}

impl AuditOptions {
    pub fn validate(&self, has_tokenizer: bool) -> Result<(), AuditError> {
        let bad = |m: String| Err(AuditError::Options(m));
        if !(self.near_threshold > 0.0 && self.near_threshold <= 1.0) {
            return bad(format!(
                "near-duplicate threshold must be in (0, 1], found {}",
                self.near_threshold
            ));
        }
        if self.shingle_size == 0 || self.num_perm == 0 || self.threads == 0 {
            return bad("shingle size, permutations and threads must be positive".into());
        }
        if self.max_tokens.is_some() && !has_tokenizer {
            return bad("a token limit needs a tokenizer (--model DIR)".into());
        }
        if self.limits.max_over_long.is_some()
            && self.max_chars.is_none()
            && self.max_tokens.is_none()
        {
            return bad("max-over-long needs a length limit (--max-chars or --max-tokens)".into());
        }
        self.limits.validate().or_else(bad)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskCount {
    pub task: String,
    pub records: usize,
    pub share: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tasks {
    /// most records first
    pub tasks: Vec<TaskCount>,
    /// records without a `task`
    pub untagged: usize,
}

/// Everything the audit found. Serialised as the `--json` output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditReport {
    pub schema_version: u32,
    /// the data file as given
    pub file: String,
    pub records: usize,
    /// records per format (`prompt/completion`, `messages`, `text`)
    pub formats: BTreeMap<String, usize>,
    /// present when any record has a task tag
    pub tasks: Option<Tasks>,
    pub exact_duplicates: duplicates::ExactDuplicates,
    pub near_duplicates: duplicates::NearDuplicates,
    pub templates: templates::Templates,
    pub lengths: lengths::LengthReport,
    pub diversity: diversity::Diversity,
    pub conflicts: conflicts::Conflicts,
    pub empty: empty::Empty,
    /// present when `max_chars` or `max_tokens` was given
    pub over_long: Option<lengths::OverLong>,
    /// the tokenizer folder, when token lengths were counted
    pub tokenizer: Option<String>,
    /// every limit set, passed or not
    pub checks: Vec<Check>,
    /// the limits that failed
    pub violations: Vec<Check>,
    /// no limit failed
    pub passed: bool,
}

/// `part / whole`, 0 for an empty whole.
pub fn rate(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// A key equal for identical records only (format, roles and contents; not the task).
pub(crate) fn record_key(r: &Record) -> String {
    match r {
        Record::PromptCompletion { prompt, completion } => {
            format!("p\u{0}{prompt}\u{0}{completion}")
        }
        Record::ChatPromptCompletion { prompt, completion } => {
            let mut k = String::from("c");
            for x in prompt.iter().chain(completion) {
                k.push('\u{0}');
                k.push_str(&x.role);
                k.push('\u{1}');
                k.push_str(&x.content);
            }
            k
        }
        Record::Messages(m) => {
            let mut k = String::from("m");
            for x in m {
                k.push('\u{0}');
                k.push_str(&x.role);
                k.push('\u{1}');
                k.push_str(&x.content);
            }
            k
        }
        Record::Text(t) => format!("t\u{0}{t}"),
    }
}

/// All of a record's text, fields joined by newlines.
pub(crate) fn record_text(r: &Record) -> String {
    match r {
        Record::PromptCompletion { prompt, completion } => format!("{prompt}\n{completion}"),
        Record::ChatPromptCompletion { prompt, completion } => prompt
            .iter()
            .chain(completion)
            .map(|x| x.content.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        Record::Messages(m) => m
            .iter()
            .map(|x| x.content.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        Record::Text(t) => t.clone(),
    }
}

/// A record's prompt (`None` for text) and response.
fn fields(r: &Record) -> (Option<String>, String) {
    match r {
        Record::Text(t) => (None, t.clone()),
        _ => (Some(r.prompt_text()), r.response_text()),
    }
}

/// Read `path` and audit it.
pub fn audit_file(
    path: &Path,
    opts: &AuditOptions,
    tokenizer: Option<&Tokenizer>,
) -> Result<AuditReport, AuditError> {
    opts.validate(tokenizer.is_some())?;
    let samples = crate::data::read_jsonl(path)?;
    audit(&path.display().to_string(), &samples, opts, tokenizer)
}

/// Audit `samples`; `file` only labels the report.
pub fn audit(
    file: &str,
    samples: &[Sample],
    opts: &AuditOptions,
    tokenizer: Option<&Tokenizer>,
) -> Result<AuditReport, AuditError> {
    opts.validate(tokenizer.is_some())?;
    let top = opts.top;
    let split: Vec<(Option<String>, String)> = samples.iter().map(|s| fields(&s.record)).collect();

    let mut formats = BTreeMap::new();
    for s in samples {
        *formats.entry(s.record.kind().to_string()).or_insert(0) += 1;
    }

    let prompts: Vec<&str> = split.iter().filter_map(|(p, _)| p.as_deref()).collect();
    let responses: Vec<&str> = split.iter().map(|(_, r)| r.as_str()).collect();
    let (prompt_tokens, response_tokens) = match tokenizer {
        Some(t) => (
            Some(count_tokens(t, &prompts, opts.threads)?),
            Some(count_tokens(t, &responses, opts.threads)?),
        ),
        None => (None, None),
    };

    let over_long = (opts.max_chars.is_some() || opts.max_tokens.is_some()).then(|| {
        let mut next_prompt = 0;
        let per_record: Vec<(usize, usize, Option<usize>)> = samples
            .iter()
            .zip(&split)
            .enumerate()
            .map(|(i, (s, (p, r)))| {
                let (pc, pt) = match p {
                    Some(p) => {
                        let t = prompt_tokens.as_ref().map(|v| v[next_prompt]);
                        next_prompt += 1;
                        (p.chars().count(), t)
                    }
                    None => (0, Some(0)),
                };
                let rt = response_tokens.as_ref().map(|v| v[i]);
                let tokens = match (pt, rt) {
                    (Some(a), Some(b)) => Some(a + b),
                    _ => None,
                };
                (s.line, pc + r.chars().count(), tokens)
            })
            .collect();
        lengths::over_long(&per_record, opts.max_chars, opts.max_tokens, top)
    });

    let tasks = samples.iter().any(|s| s.task.is_some()).then(|| {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for s in samples {
            if let Some(t) = &s.task {
                *counts.entry(t.as_str()).or_insert(0) += 1;
            }
        }
        let mut tasks: Vec<TaskCount> = counts
            .into_iter()
            .map(|(t, n)| TaskCount {
                task: t.to_string(),
                records: n,
                share: rate(n, samples.len()),
            })
            .collect();
        tasks.sort_by(|a, b| b.records.cmp(&a.records).then(a.task.cmp(&b.task)));
        Tasks {
            tasks,
            untagged: samples.iter().filter(|s| s.task.is_none()).count(),
        }
    });

    let prompt_items = || {
        samples
            .iter()
            .zip(&split)
            .filter_map(|(s, (p, r))| p.as_deref().map(|p| (s.line, p, r.as_str())))
    };
    let near_opts = duplicates::NearOptions {
        threshold: opts.near_threshold,
        shingle_size: opts.shingle_size,
        num_perm: opts.num_perm,
        threads: opts.threads,
    };
    let mut report = AuditReport {
        schema_version: SCHEMA_VERSION,
        file: file.to_string(),
        records: samples.len(),
        formats,
        tasks,
        exact_duplicates: duplicates::exact(samples, top),
        near_duplicates: duplicates::near(samples, &near_opts, top),
        templates: templates::templates(prompt_items().map(|(l, p, _)| (l, p)), top),
        lengths: lengths::LengthReport {
            prompt: lengths::lengths(&prompts, prompt_tokens.as_deref()),
            response: lengths::lengths(&responses, response_tokens.as_deref()),
        },
        diversity: diversity::Diversity {
            prompt: (!prompts.is_empty()).then(|| diversity::distinct(prompts.iter().copied())),
            response: (!responses.is_empty())
                .then(|| diversity::distinct(responses.iter().copied())),
        },
        conflicts: conflicts::conflicts(prompt_items(), top),
        empty: empty::empty(
            samples
                .iter()
                .zip(&split)
                .map(|(s, (p, r))| (s.line, p.as_deref(), r.as_str())),
        ),
        over_long,
        tokenizer: tokenizer.map(|t| t.path().parent().unwrap_or(t.path()).display().to_string()),
        checks: Vec::new(),
        violations: Vec::new(),
        passed: true,
    };
    report.checks = opts.limits.check(&report);
    report.violations = report
        .checks
        .iter()
        .filter(|c| !c.passed)
        .cloned()
        .collect();
    report.passed = report.violations.is_empty();
    Ok(report)
}

/// Token counts (no special tokens) of `texts`, on up to `threads` threads.
fn count_tokens(
    tok: &Tokenizer,
    texts: &[&str],
    threads: usize,
) -> Result<Vec<usize>, TokenizerError> {
    if texts.is_empty() {
        return Ok(Vec::new());
    }
    let per = texts.len().div_ceil(threads.max(1));
    std::thread::scope(|s| {
        let handles: Vec<_> = texts
            .chunks(per)
            .map(|chunk| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|t| tok.encode(t, false).map(|ids| ids.len()))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(texts.len());
        for h in handles {
            out.extend(h.join().expect("tokenizer thread panicked")?);
        }
        Ok(out)
    })
}

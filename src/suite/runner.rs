//! Runs a suite on a model: renders prompts, scores every item with the suite's scorer, and
//! aggregates with standard errors.

use std::time::Instant;

use minijinja::Environment;
use regex::Regex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::item::Item;
use super::sandbox::Limits;
use super::scorer::{extract, mc_loglik, pass_at_k, refusal, refusal_loglik, ItemScore};
use super::spec::{ChatPolicy, ScorerKind, Suite, SCHEMA_VERSION};
use super::SuiteError;
use crate::backend::{Continuation, GenerateRequest, LanguageModel};
use crate::model::generate::Decoding;
use crate::model::Message;

/// Settings that change results (part of the cache key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalSettings {
    pub batch_size: usize,
    /// score only the first N items (0 = all)
    pub limit: usize,
    /// what to do with an item whose prompt (plus the generation budget) exceeds the context
    #[serde(default)]
    pub over_context: OverContext,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OverContext {
    /// leave the item out and count it (`skipped` in the results)
    #[default]
    Skip,
    /// stop with an error naming the item
    Error,
}

impl Default for EvalSettings {
    fn default() -> Self {
        EvalSettings {
            batch_size: 8,
            limit: 0,
            over_context: OverContext::Skip,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemResult {
    pub id: String,
    /// sha256 of the exact prompt text, first 16 hex digits
    pub prompt_hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extracted: Option<String>,
    pub score: f64,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub logliks: Vec<f64>,
    pub format_failure: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuiteResult {
    pub schema_version: u32,
    pub suite: String,
    pub capability: String,
    pub suite_hash: String,
    pub scorer: ScorerKind,
    pub metric: String,
    pub n: usize,
    pub mean: f64,
    /// standard error of the mean, sd/√n
    pub se: f64,
    pub format_failures: usize,
    /// items left out because their prompt did not fit the model's context
    #[serde(default)]
    pub skipped: Vec<String>,
    /// extra metrics (acc_norm, refusal and over-refusal rates)
    pub extra: std::collections::BTreeMap<String, f64>,
    pub seconds: f64,
    /// how the suite was named when evaluated (name, folder or IMPORTER=PATH), so a gate can
    /// evaluate a fine-tune on exactly the baseline's suites
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// facts a reader needs (e.g. whether executed code had network access)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    pub items: Vec<ItemResult>,
}

/// Progress of a suite run (library code never prints).
pub trait SuiteObserver {
    fn start(&mut self, _suite: &str, _items: usize) {}
    fn item(&mut self, _done: usize) {}
    fn end(&mut self) {}
}

pub struct NoProgress;
impl SuiteObserver for NoProgress {}

/// The exact prompt text an item is scored on, and whether the tokenizer should add its special
/// tokens (false when the chat template already placed them).
pub fn render_prompt(
    env: &Environment,
    suite: &Suite,
    item: &Item,
    model: &dyn LanguageModel,
) -> Result<(String, bool), SuiteError> {
    let tmpl = env
        .template_from_str(&suite.spec.prompt.template)
        .map_err(|e| SuiteError::Template {
            suite: suite.spec.name.clone(),
            reason: e.to_string(),
        })?;
    let render = |it: &Item| {
        tmpl.render(minijinja::Value::from_serialize(it))
            .map_err(|e| SuiteError::Template {
                suite: suite.spec.name.clone(),
                reason: format!("item {}: {e}", it.id),
            })
    };
    let mut text = String::new();
    // few-shot, as lm-eval: other items of the suite (seeded per item), each rendered with its
    // answer after a space, separated by blank lines
    for shot in fewshot_examples(suite, item) {
        let answer = match (&shot.target, shot.gold.and_then(|g| shot.choices.get(g))) {
            (Some(t), _) => t.clone(),
            (None, Some(c)) => c.clone(),
            (None, None) => continue,
        };
        text.push_str(&render(shot)?);
        text.push(' ');
        text.push_str(&answer);
        text.push_str("\n\n");
    }
    text.push_str(&render(item)?);
    let use_chat = match suite.spec.prompt.chat {
        ChatPolicy::Never => false,
        ChatPolicy::Auto => model.chat_template().is_some(),
        ChatPolicy::Always => {
            if model.chat_template().is_none() {
                return Err(SuiteError::Template {
                    suite: suite.spec.name.clone(),
                    reason: "the suite requires a chat template and the model has none".into(),
                });
            }
            true
        }
    };
    if use_chat {
        let t = model.chat_template().expect("checked above");
        let rendered = t
            .render(&[Message::new("user", text)], true)
            .map_err(crate::model::ModelError::from)?;
        Ok((rendered, false))
    } else {
        Ok((text, true))
    }
}

/// `prompt.fewshot` other items, drawn with a seed derived from the suite's seed and the item.
fn fewshot_examples<'a>(suite: &'a Suite, item: &Item) -> Vec<&'a Item> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let k = suite.spec.prompt.fewshot;
    if k == 0 {
        return Vec::new();
    }
    let mut pool: Vec<&Item> = suite.items.iter().filter(|i| i.id != item.id).collect();
    let key = item
        .id
        .bytes()
        .fold(suite.spec.prompt.fewshot_seed, |h, b| {
            h.wrapping_mul(0x100000001b3).wrapping_add(b as u64)
        });
    pool.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(key));
    pool.truncate(k);
    pool
}

fn short_hash(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Score every item of `suite`.
pub fn run_suite(
    model: &dyn LanguageModel,
    suite: &Suite,
    settings: &EvalSettings,
    obs: &mut dyn SuiteObserver,
) -> Result<SuiteResult, SuiteError> {
    let t0 = Instant::now();
    let items: Vec<&Item> = if settings.limit > 0 {
        suite.items.iter().take(settings.limit).collect()
    } else {
        suite.items.iter().collect()
    };
    obs.start(&suite.spec.name, items.len());
    let mut env = Environment::new();
    env.set_keep_trailing_newline(true);
    let spec = &suite.spec;
    let answer_re = match &spec.generation.answer_regex {
        Some(r) => Some(Regex::new(r).map_err(|e| SuiteError::Template {
            suite: spec.name.clone(),
            reason: format!("answer_regex: {e}"),
        })?),
        None => None,
    };
    let mut results = Vec::with_capacity(items.len());
    let mut extra = std::collections::BTreeMap::new();
    let mut norm_sum = 0.0;
    let mut skipped: Vec<String> = Vec::new();
    let mut nll_tokens = (0f64, 0usize);
    let limits = Limits::default();
    let mut isolation_note: Option<String> = None;
    // continuation scorers: items wait here and are scored together (each prompt run once,
    // batched across items), then finished in order
    let mut pending: Vec<Pending> = Vec::new();
    let window = settings.batch_size.max(1) * 8;
    let choice_tmpl = if scores_continuations(spec.scorer) {
        Some(
            env.template_from_str(&spec.prompt.choice_template)
                .map_err(|e| SuiteError::Template {
                    suite: spec.name.clone(),
                    reason: e.to_string(),
                })?,
        )
    } else {
        None
    };
    for (k, item) in items.iter().enumerate() {
        let (prompt, special) = render_prompt(&env, suite, item, model)?;
        if let Some(ctx_len) = model.context_length() {
            let budget = match spec.scorer {
                ScorerKind::McLoglik
                | ScorerKind::Mc2Loglik
                | ScorerKind::RefusalLoglik
                | ScorerKind::RollingNll
                | ScorerKind::ReferenceNll => 0,
                _ => spec.generation.max_new_tokens,
            };
            let n = model.count_tokens(&prompt, special)?;
            if let Some(n) =
                n.filter(|&n| spec.scorer != ScorerKind::RollingNll && n + budget > ctx_len)
            {
                match settings.over_context {
                    OverContext::Skip => {
                        skipped.push(item.id.clone());
                        obs.item(k + 1);
                        continue;
                    }
                    OverContext::Error => {
                        return Err(SuiteError::Item {
                            path: suite.dir.join(&spec.items),
                            line: k + 1,
                            reason: format!(
                                "item {}: prompt of {n} tokens plus {budget} to generate exceeds the context of {ctx_len}",
                                item.id
                            ),
                        })
                    }
                }
            }
        }
        let mut r = ItemResult {
            id: item.id.clone(),
            prompt_hash: short_hash(&prompt),
            output: None,
            extracted: None,
            score: 0.0,
            logliks: vec![],
            format_failure: false,
            cluster: item.cluster.clone(),
            label: item.label.clone(),
        };
        match spec.scorer {
            ScorerKind::McLoglik | ScorerKind::Mc2Loglik | ScorerKind::RefusalLoglik => {
                let bad = |reason: String| SuiteError::Item {
                    path: suite.dir.join(&spec.items),
                    line: k + 1,
                    reason,
                };
                let conts: Vec<String> = if spec.scorer == ScorerKind::RefusalLoglik {
                    let o = spec.refusal.clone().unwrap_or_default();
                    // after a chat template the assistant turn starts the text
                    [o.refusal_opening, o.compliance_opening]
                        .into_iter()
                        .map(|c| if special { c } else { c.trim_start().into() })
                        .collect()
                } else {
                    if item.choices.is_empty() {
                        return Err(bad(format!("item {} has no choices", item.id)));
                    }
                    if spec.scorer == ScorerKind::McLoglik && item.gold.is_none() {
                        return Err(bad(format!("item {} has no gold", item.id)));
                    }
                    let ctmpl = choice_tmpl
                        .as_ref()
                        .expect("built for continuation scorers");
                    item.choices
                        .iter()
                        .enumerate()
                        .map(|(i, c)| {
                            let label = char::from(b'A' + (i % 26) as u8).to_string();
                            ctmpl.render(
                                minijinja::context! { choice => c, label => label, index => i },
                            )
                        })
                        .collect::<Result<_, _>>()
                        .map_err(|e| SuiteError::Template {
                            suite: spec.name.clone(),
                            reason: e.to_string(),
                        })?
                };
                let reqs = conts
                    .iter()
                    .map(|c| Continuation {
                        context: prompt.clone(),
                        continuation: c.clone(),
                        add_special_tokens: special,
                    })
                    .collect();
                pending.push(Pending {
                    r,
                    item,
                    conts,
                    reqs,
                });
                if pending.len() >= window {
                    finish_continuations(
                        model,
                        suite,
                        settings,
                        &mut pending,
                        &mut results,
                        &mut norm_sum,
                    )?;
                    obs.item(k + 1);
                }
                continue;
            }
            ScorerKind::RollingNll | ScorerKind::ReferenceNll => {
                let (ll, n) = if spec.scorer == ScorerKind::RollingNll {
                    model.loglikelihood_rolling(&item.input, settings.batch_size)?
                } else {
                    let target = item.target.as_deref().ok_or_else(|| SuiteError::Item {
                        path: suite.dir.join(&spec.items),
                        line: k + 1,
                        reason: format!("item {} has no target", item.id),
                    })?;
                    let req = Continuation {
                        context: prompt.clone(),
                        continuation: target.to_string(),
                        add_special_tokens: special,
                    };
                    let l = model.loglikelihood(std::slice::from_ref(&req), 1)?[0];
                    (l.logprob, l.tokens)
                };
                r.logliks = vec![ll];
                r.score = -ll / n.max(1) as f64;
                nll_tokens.0 += -ll;
                nll_tokens.1 += n;
            }
            ScorerKind::PassAtK => {
                let n = spec.generation.samples.max(1);
                let mut passed = 0;
                let mut first = None;
                for s in 0..n {
                    let decoding = if n == 1 {
                        Decoding::Greedy
                    } else {
                        Decoding::Sample {
                            temperature: spec.generation.temperature,
                            top_p: 0.95,
                            seed: s as u64,
                        }
                    };
                    let request = GenerateRequest {
                        max_new_tokens: spec.generation.max_new_tokens,
                        decoding,
                        stop: spec.generation.stop.clone(),
                    };
                    let text = model.generate(&prompt, special, &request)?;
                    let outcome = pass_at_k::run(item, &text, &item_limits(&limits, item))
                        .map_err(|e| SuiteError::Sandbox(e.to_string()))?;
                    if !outcome.network_isolated {
                        isolation_note.get_or_insert_with(|| {
                            outcome
                                .isolation_note
                                .clone()
                                .unwrap_or_else(|| "network not isolated".into())
                        });
                    }
                    passed += outcome.status.passed() as usize;
                    first.get_or_insert(text);
                }
                r.score = pass_at_k::pass_at_k(n, passed, 1);
                r.extracted = Some(format!("{passed}/{n} passed"));
                r.output = first;
            }
            _ => {
                let request = GenerateRequest {
                    max_new_tokens: spec.generation.max_new_tokens,
                    decoding: Decoding::Greedy,
                    stop: spec.generation.stop.clone(),
                };
                let text = model.generate(&prompt, special, &request)?;
                let s = score_generation(spec.scorer, item, &text, answer_re.as_ref());
                r.output = Some(text);
                r.extracted = s.extracted;
                r.score = s.score;
                r.format_failure = s.format_failure;
            }
        }
        results.push(r);
        obs.item(k + 1);
    }
    if !pending.is_empty() {
        finish_continuations(
            model,
            suite,
            settings,
            &mut pending,
            &mut results,
            &mut norm_sum,
        )?;
        obs.item(items.len());
    }
    let n = results.len();
    let mean = results.iter().map(|r| r.score).sum::<f64>() / n.max(1) as f64;
    let var = results
        .iter()
        .map(|r| (r.score - mean).powi(2))
        .sum::<f64>()
        / (n.max(2) - 1) as f64;
    if spec.scorer == ScorerKind::McLoglik {
        extra.insert("acc_norm".into(), norm_sum / n.max(1) as f64);
    }
    if nll_tokens.1 > 0 {
        extra.insert(
            "token_perplexity".into(),
            (nll_tokens.0 / nll_tokens.1 as f64).exp(),
        );
    }
    if matches!(spec.scorer, ScorerKind::Refusal | ScorerKind::RefusalLoglik) {
        let rate = |label: &str, refused: bool| {
            let v: Vec<&ItemResult> = results
                .iter()
                .filter(|r| r.label.as_deref() == Some(label))
                .collect();
            let k = v
                .iter()
                .filter(|r| (r.extracted.as_deref() == Some("refused")) == refused)
                .count();
            (!v.is_empty()).then(|| k as f64 / v.len() as f64)
        };
        if let Some(x) = rate("harmful", true) {
            extra.insert("refusal_rate".into(), x);
        }
        if let Some(x) = rate("benign", true) {
            extra.insert("over_refusal_rate".into(), x);
        }
    }
    obs.end();
    let mut notes = Vec::new();
    if spec.scorer == ScorerKind::PassAtK {
        match isolation_note {
            Some(n) => notes.push(format!("code ran WITHOUT network isolation: {n}")),
            None => notes.push("code ran in a sandbox without network access".to_string()),
        }
    }
    Ok(SuiteResult {
        schema_version: SCHEMA_VERSION,
        suite: spec.name.clone(),
        capability: spec.capability.clone(),
        suite_hash: suite.hash.clone(),
        scorer: spec.scorer,
        metric: spec.metric.clone(),
        n,
        mean,
        se: (var / n.max(1) as f64).sqrt(),
        format_failures: results.iter().filter(|r| r.format_failure).count(),
        skipped,
        extra,
        seconds: t0.elapsed().as_secs_f64(),
        source: None,
        notes,
        items: results,
    })
}

/// Scorers that read the log-likelihoods of continuations of the prompt (choices, or refusal
/// and compliance openings) and generate nothing.
fn scores_continuations(kind: ScorerKind) -> bool {
    matches!(
        kind,
        ScorerKind::McLoglik | ScorerKind::Mc2Loglik | ScorerKind::RefusalLoglik
    )
}

/// An item of a continuation scorer waiting to be scored.
struct Pending<'a> {
    r: ItemResult,
    item: &'a Item,
    /// the continuations as scored (e.g. `" Paris"`)
    conts: Vec<String>,
    reqs: Vec<Continuation>,
}

/// Score the waiting items' continuations together, sharing each prompt's forward pass
/// ([`LanguageModel::loglikelihood_shared`]), and finish them in order.
fn finish_continuations(
    model: &dyn LanguageModel,
    suite: &Suite,
    settings: &EvalSettings,
    pending: &mut Vec<Pending>,
    results: &mut Vec<ItemResult>,
    norm_sum: &mut f64,
) -> Result<(), SuiteError> {
    let spec = &suite.spec;
    let all: Vec<Continuation> = pending
        .iter()
        .flat_map(|p| p.reqs.iter().cloned())
        .collect();
    let lls = model.loglikelihood_shared(&all, settings.batch_size)?;
    let mut at = 0;
    for p in pending.drain(..) {
        let lls = &lls[at..at + p.reqs.len()];
        at += p.reqs.len();
        let mut r = p.r;
        r.logliks = lls.iter().map(|l| l.logprob).collect();
        match spec.scorer {
            ScorerKind::Mc2Loglik => r.score = mc_loglik::mc2(lls, &p.item.golds),
            ScorerKind::RefusalLoglik => {
                let norm = spec
                    .refusal
                    .as_ref()
                    .map(|o| o.normalize)
                    .unwrap_or_default();
                let s = refusal_loglik::score(&lls[0], &lls[1], norm, p.item.label.as_deref());
                r.score = s.score;
                r.extracted = s.extracted;
            }
            _ => {
                let gold = p.item.gold.expect("checked when queued");
                // acc_norm divides by the scored choice's length without the delimiter (lm-eval)
                let raw: Vec<String> = p
                    .conts
                    .iter()
                    .map(|c| c.strip_prefix(' ').unwrap_or(c).to_string())
                    .collect();
                let s = mc_loglik::score(lls, &raw, gold);
                r.score = s.acc;
                *norm_sum += s.acc_norm;
                r.extracted = Some(s.pred.to_string());
            }
        }
        results.push(r);
    }
    Ok(())
}

/// The sandbox limits for one item's tests: the default, raised to the item's `time_limit` and
/// `memory_limit` where those are larger.
fn item_limits(default: &Limits, item: &Item) -> Limits {
    let mut l = default.clone();
    if let Some(s) = item.time_limit.filter(|s| s.is_finite() && *s > 0.0) {
        l.wall = l.wall.max(std::time::Duration::from_secs_f64(s));
        l.cpu_secs = l.cpu_secs.max(s.ceil() as u64);
    }
    if let Some(mb) = item.memory_limit {
        l.memory_bytes = l.memory_bytes.max(mb.saturating_mul(1 << 20));
    }
    l
}

/// Score one generated answer.
pub fn score_generation(
    kind: ScorerKind,
    item: &Item,
    text: &str,
    answer_re: Option<&Regex>,
) -> ItemScore {
    let target = item.target.clone().unwrap_or_default();
    match kind {
        ScorerKind::GenerateNumber | ScorerKind::GenerateBoxed => {
            let got = match (answer_re, kind) {
                (Some(re), _) => extract::regex_first(text, re),
                (None, ScorerKind::GenerateBoxed) => extract::last_boxed(text),
                _ => extract::last_number(text),
            };
            match got {
                None => ItemScore {
                    score: 0.0,
                    extracted: None,
                    format_failure: true,
                },
                Some(a) => {
                    let ok = if kind == ScorerKind::GenerateBoxed {
                        a.trim() == target.trim() || extract::numbers_equal(&a, &target)
                    } else {
                        extract::numbers_equal(&a, &target)
                    };
                    ItemScore {
                        score: ok as u8 as f64,
                        extracted: Some(a),
                        format_failure: false,
                    }
                }
            }
        }
        ScorerKind::ExactMatch => {
            let a = text.trim().to_string();
            ItemScore {
                score: (a == target.trim()) as u8 as f64,
                format_failure: a.is_empty(),
                extracted: Some(a),
            }
        }
        ScorerKind::Refusal => {
            let refused = refusal::is_refusal(text);
            let want_refusal = item.label.as_deref() != Some("benign");
            ItemScore {
                score: (refused == want_refusal) as u8 as f64,
                extracted: Some(if refused { "refused" } else { "complied" }.into()),
                format_failure: text.trim().is_empty(),
            }
        }
        ScorerKind::McLoglik
        | ScorerKind::Mc2Loglik
        | ScorerKind::RefusalLoglik
        | ScorerKind::PassAtK
        | ScorerKind::RollingNll
        | ScorerKind::ReferenceNll => ItemScore::default(),
    }
}

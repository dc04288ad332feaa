//! Runs a suite on a model: renders prompts, scores every item with the suite's scorer, and
//! aggregates with standard errors.

use std::time::Instant;

use minijinja::Environment;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use std::collections::BTreeMap;

use super::item::Item;
use super::scorer::{scorer, Direction, Request, RequestContext, Response, Scorer, Unit};
use super::spec::{ChatPolicy, ScorerKind, Suite, SuiteSpec, SCHEMA_VERSION};
use super::SuiteError;
use crate::backend::{Continuation, GenerateJob, LanguageModel};
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
            batch_size: 16,
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
    /// which way the metric improves (the scorer's)
    pub direction: Direction,
    /// the unit of the scores (the scorer's)
    pub unit: Unit,
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
    /// for results read from another harness's log: the task they came from, checked before
    /// two results are paired
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    pub items: Vec<ItemResult>,
}

/// Where results scored by another harness came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Origin {
    /// the harness and its version (`lm-evaluation-harness 0.4.13`, `inspect_ai 0.3.285`)
    pub harness: String,
    pub task: String,
    /// the task's version as the harness recorded it
    pub version: String,
    /// few-shot examples per prompt, where recorded
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_shot: Option<u64>,
    /// sha256 of the task's recorded configuration (prompt, metrics, filters, generation
    /// settings), without what names the model
    pub config_hash: String,
}

/// Progress of a suite run (library code never prints).
pub trait SuiteObserver {
    fn start(&mut self, _suite: &str, _items: usize) {}
    fn item(&mut self, _done: usize) {}
    /// A generation finished, with its number of new tokens where the backend knows it.
    fn generated(&mut self, _tokens: Option<usize>) {}
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
        crate::model::jinja::render(&tmpl, minijinja::Value::from_serialize(it)).map_err(|e| {
            SuiteError::Template {
                suite: suite.spec.name.clone(),
                reason: format!("item {}: {e}", it.id),
            }
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

/// Score every item of `suite` with its scorer ([`super::scorer::scorer`]).
pub fn run_suite(
    model: &dyn LanguageModel,
    suite: &Suite,
    settings: &EvalSettings,
    obs: &mut dyn SuiteObserver,
) -> Result<SuiteResult, SuiteError> {
    let t0 = Instant::now();
    let spec = &suite.spec;
    let scorer = scorer(spec.scorer);
    scorer.validate(spec)?;
    let items: Vec<&Item> = if settings.limit > 0 {
        suite.items.iter().take(settings.limit).collect()
    } else {
        suite.items.iter().collect()
    };
    obs.start(&spec.name, items.len());
    let mut env = crate::model::jinja::environment();
    env.set_keep_trailing_newline(true);
    let choice = env
        .template_from_str(&spec.prompt.choice_template)
        .map_err(|e| SuiteError::Template {
            suite: spec.name.clone(),
            reason: format!("choice_template: {e}"),
        })?;
    let item_error = |line: usize, reason: String| SuiteError::Item {
        path: suite.dir.join(&spec.items),
        line,
        reason,
    };
    let mut run = Run {
        scorer,
        spec,
        results: Vec::with_capacity(items.len()),
        sums: BTreeMap::new(),
        notes: Vec::new(),
    };
    let mut skipped: Vec<String> = Vec::new();
    // continuation and generation requests wait here and run together (batched across items,
    // each prompt run once), then are finished in order
    let mut pending: Vec<Pending> = Vec::new();
    let window = settings.batch_size.max(1) * 8;
    let budget = scorer.generation_budget(spec);
    for (k, item) in items.iter().enumerate() {
        let line = k + 1;
        let (prompt, special) = render_prompt(&env, suite, item, model)?;
        if let (Some(ctx_len), true) = (model.context_length(), scorer.needs_context()) {
            if let Some(n) = model
                .count_tokens(&prompt, special)?
                .filter(|&n| n + budget > ctx_len)
            {
                match settings.over_context {
                    OverContext::Skip => {
                        skipped.push(item.id.clone());
                        obs.item(line);
                        continue;
                    }
                    OverContext::Error => {
                        return Err(item_error(
                            line,
                            format!(
                                "item {}: prompt of {n} tokens plus {budget} to generate exceeds the context of {ctx_len}",
                                item.id
                            ),
                        ))
                    }
                }
            }
        }
        let cx = RequestContext {
            spec,
            item,
            special,
            choice: &choice,
        };
        let request = scorer.request(&cx).map_err(|r| item_error(line, r))?;
        let r = ItemResult {
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
        // continuations and generations wait to run batched with other items'
        let next = match request {
            Request::Continuations(conts) => {
                let reqs = conts
                    .iter()
                    .map(|c| Continuation {
                        context: prompt.clone(),
                        continuation: c.clone(),
                        add_special_tokens: special,
                    })
                    .collect();
                Next::Wait(Waits::Continuations { conts, reqs })
            }
            Request::Generate(reqs) => Next::Wait(Waits::Generations(
                reqs.into_iter()
                    .map(|request| GenerateJob {
                        prompt: prompt.clone(),
                        add_special_tokens: special,
                        request,
                    })
                    .collect(),
            )),
            Request::Rolling(text) => {
                let (logprob, tokens) = model.loglikelihood_rolling(&text, settings.batch_size)?;
                Next::Now(Response::Total { logprob, tokens })
            }
            Request::Reference(target) => {
                let req = Continuation {
                    context: prompt.clone(),
                    continuation: target,
                    add_special_tokens: special,
                };
                let l = model.loglikelihood(std::slice::from_ref(&req), 1)?[0];
                Next::Now(Response::Total {
                    logprob: l.logprob,
                    tokens: l.tokens,
                })
            }
        };
        let waits = match next {
            Next::Wait(w) => w,
            Next::Now(response) => {
                run.finish(r, item, response)
                    .map_err(|reason| item_error(line, reason))?;
                obs.item(line);
                continue;
            }
        };
        pending.push(Pending {
            r,
            item,
            line,
            waits,
        });
        if pending.len() >= window {
            run.flush(model, settings, &mut pending, &item_error, obs)?;
            obs.item(line);
        }
    }
    if !pending.is_empty() {
        run.flush(model, settings, &mut pending, &item_error, obs)?;
        obs.item(items.len());
    }
    obs.end();
    let Run {
        results,
        sums,
        notes,
        ..
    } = run;
    let n = results.len();
    let mean = results.iter().map(|r| r.score).sum::<f64>() / n.max(1) as f64;
    let var = results
        .iter()
        .map(|r| (r.score - mean).powi(2))
        .sum::<f64>()
        / (n.max(2) - 1) as f64;
    Ok(SuiteResult {
        schema_version: SCHEMA_VERSION,
        suite: spec.name.clone(),
        capability: spec.capability.clone(),
        suite_hash: suite.hash.clone(),
        scorer: spec.scorer,
        metric: spec.metric.clone(),
        direction: scorer.direction(),
        unit: scorer.unit(),
        n,
        mean,
        se: (var / n.max(1) as f64).sqrt(),
        format_failures: results.iter().filter(|r| r.format_failure).count(),
        skipped,
        extra: scorer.aggregate(&results, &sums),
        seconds: t0.elapsed().as_secs_f64(),
        source: None,
        notes: scorer.notes(&notes),
        origin: None,
        items: results,
    })
}

/// The state of one suite run: the scored items and what the scorer aggregates.
struct Run<'a> {
    scorer: &'static dyn Scorer,
    spec: &'a SuiteSpec,
    results: Vec<ItemResult>,
    sums: BTreeMap<&'static str, f64>,
    notes: Vec<String>,
}

impl Run<'_> {
    /// Score one item's response and keep it.
    fn finish(&mut self, mut r: ItemResult, item: &Item, response: Response) -> Result<(), String> {
        let s = self.scorer.score(self.spec, item, response)?;
        if !s.score.is_finite() {
            return Err(format!(
                "item {}: the scorer gave a non-finite score ({})",
                item.id, s.score
            ));
        }
        r.score = s.score;
        r.extracted = s.extracted;
        r.format_failure = s.format_failure;
        r.output = s.output;
        r.logliks = s.logliks;
        for (k, v) in s.sums {
            *self.sums.entry(k).or_insert(0.0) += v;
        }
        if let Some(n) = s.note {
            if !self.notes.contains(&n) {
                self.notes.push(n);
            }
        }
        self.results.push(r);
        Ok(())
    }

    /// Run the waiting items' requests together and finish the items in order: continuations
    /// sharing each prompt's forward pass ([`LanguageModel::loglikelihood_shared`]),
    /// generations batched across items ([`LanguageModel::generate_batch`]).
    fn flush(
        &mut self,
        model: &dyn LanguageModel,
        settings: &EvalSettings,
        pending: &mut Vec<Pending>,
        item_error: &dyn Fn(usize, String) -> SuiteError,
        obs: &mut dyn SuiteObserver,
    ) -> Result<(), SuiteError> {
        let mut conts: Vec<Continuation> = Vec::new();
        let mut jobs: Vec<GenerateJob> = Vec::new();
        for p in pending.iter() {
            match &p.waits {
                Waits::Continuations { reqs, .. } => conts.extend(reqs.iter().cloned()),
                Waits::Generations(g) => jobs.extend(g.iter().cloned()),
            }
        }
        let lls = if conts.is_empty() {
            Vec::new()
        } else {
            model.loglikelihood_shared(&conts, settings.batch_size)?
        };
        let texts = if jobs.is_empty() {
            Vec::new()
        } else {
            model.generate_batch(&jobs, settings.batch_size, &mut |_, tokens| {
                obs.generated(tokens)
            })?
        };
        let (mut at_ll, mut at_text) = (0, 0);
        for p in pending.drain(..) {
            let response = match &p.waits {
                Waits::Continuations { conts, reqs } => {
                    at_ll += reqs.len();
                    Response::LogLiks {
                        logliks: &lls[at_ll - reqs.len()..at_ll],
                        continuations: conts,
                    }
                }
                Waits::Generations(g) => {
                    at_text += g.len();
                    Response::Texts(texts[at_text - g.len()..at_text].to_vec())
                }
            };
            self.finish(p.r, p.item, response)
                .map_err(|reason| item_error(p.line, reason))?;
        }
        Ok(())
    }
}

/// An item waiting for its requests to run.
struct Pending<'a> {
    r: ItemResult,
    item: &'a Item,
    /// its line in the items file
    line: usize,
    waits: Waits,
}

/// What an item's request needs: to wait and run with other items', or nothing more.
enum Next<'a> {
    Wait(Waits),
    Now(Response<'a>),
}

enum Waits {
    Continuations {
        /// the continuations as scored (e.g. `" Paris"`)
        conts: Vec<String>,
        reqs: Vec<Continuation>,
    },
    Generations(Vec<GenerateJob>),
}

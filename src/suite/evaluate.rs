//! Evaluation with the cache: score a model (a checkpoint folder, a GGUF file, a served model)
//! on resolved suites, each suite's result taken from the cache when (model fingerprint, suite
//! content, settings) are unchanged and stored there as soon as it is computed. `eval`,
//! `compare`, `gate`, `baseline` and the demo all come through here.

use std::path::Path;

use super::resolve::resolve;
use super::results::{Cache, EvalResults, ModelRef};
use super::runner::{run_suite, EvalSettings, SuiteObserver, SuiteResult};
use super::scorer::scorer;
use super::spec::Suite;
use super::SuiteError;
use crate::backend::gguf::GgufModel;
use crate::backend::openai::OpenAiBackend;
use crate::backend::LanguageModel;
use crate::model::{LoadOptions, Model};

/// Progress of an evaluation (library code never prints).
pub trait EvalObserver: SuiteObserver {
    /// A suite is done; `cached`: it came from the cache.
    fn suite_done(&mut self, _result: &SuiteResult, _cached: bool) {}
}

impl EvalObserver for super::runner::NoProgress {}

/// A suite as the user named it (a name, a folder, `IMPORTER=PATH`), resolved.
pub struct NamedSuite {
    pub source: String,
    pub suite: Suite,
}

/// Resolve suite arguments (before any model is loaded, so a bad one fails fast) and check
/// each suite's settings against its scorer.
pub fn resolve_suites(names: &[String], suites_dir: &Path) -> Result<Vec<NamedSuite>, SuiteError> {
    names
        .iter()
        .map(|n| {
            let suite = resolve(n, suites_dir)?;
            scorer(suite.spec.scorer).validate(&suite.spec)?;
            Ok(NamedSuite {
                source: n.clone(),
                suite,
            })
        })
        .collect()
}

/// Score `model` on the suites; each suite's result is cached as soon as it is done, so a run
/// that fails part-way keeps the suites it finished.
pub fn evaluate(
    model: &dyn LanguageModel,
    model_ref: ModelRef,
    suites: &[NamedSuite],
    settings: &EvalSettings,
    cache: Option<&Cache>,
    obs: &mut dyn EvalObserver,
) -> Result<EvalResults, SuiteError> {
    let fp = model_ref.fingerprint.clone();
    let mut results = Vec::with_capacity(suites.len());
    for s in suites {
        let cached = cache.and_then(|c| c.get(&fp, &s.suite.hash, settings));
        let was_cached = cached.is_some();
        let mut r = match cached {
            Some(r) => r,
            None => {
                let r = run_suite(model, &s.suite, settings, obs)?;
                if let Some(c) = cache {
                    c.put(&fp, settings, &r)?;
                }
                r
            }
        };
        r.source = Some(s.source.clone());
        obs.suite_done(&r, was_cached);
        results.push(r);
    }
    Ok(EvalResults::new(model_ref, settings.clone(), results))
}

/// Evaluate a checkpoint folder (loaded with `opts`).
pub fn evaluate_checkpoint(
    dir: &Path,
    suites: &[NamedSuite],
    settings: &EvalSettings,
    cache: Option<&Cache>,
    opts: &LoadOptions,
    obs: &mut dyn EvalObserver,
) -> Result<EvalResults, SuiteError> {
    let model = Model::load(dir, opts)?;
    let model_ref = ModelRef {
        path: dir.display().to_string(),
        fingerprint: crate::model::fingerprint::model_fingerprint(dir, opts.base.as_deref())?,
    };
    evaluate(&model, model_ref, suites, settings, cache, obs)
}

/// Evaluate a llama GGUF file, dequantized into the local decoder, with the tokenizer of the
/// Hugging Face folder `tokenizer` (required).
pub fn evaluate_gguf(
    path: &Path,
    tokenizer: Option<&Path>,
    suites: &[NamedSuite],
    settings: &EvalSettings,
    cache: Option<&Cache>,
    opts: &LoadOptions,
    obs: &mut dyn EvalObserver,
) -> Result<EvalResults, SuiteError> {
    let model = GgufModel::load(path, tokenizer, opts)?;
    let model_ref = ModelRef {
        path: path.display().to_string(),
        fingerprint: model.fingerprint.clone(),
    };
    evaluate(&model, model_ref, suites, settings, cache, obs)
}

/// Evaluate a served model (`--backend openai`).
pub fn evaluate_served(
    backend: &OpenAiBackend,
    suites: &[NamedSuite],
    settings: &EvalSettings,
    cache: Option<&Cache>,
    obs: &mut dyn EvalObserver,
) -> Result<EvalResults, SuiteError> {
    let o = backend.options();
    let model_ref = ModelRef {
        path: format!("openai:{}@{}", o.model, o.base_url),
        fingerprint: backend.fingerprint().to_string(),
    };
    evaluate(backend, model_ref, suites, settings, cache, obs)
}

//! `sft-eval eval MODEL --suites …`: score a checkpoint on capability suites and write results.

use std::path::PathBuf;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::backend::gguf::{is_gguf, GgufModel};
use crate::backend::openai::{OpenAiBackend, OpenAiOptions};
use crate::backend::LanguageModel;
use crate::error::{Error, ExitStatus};
use crate::model::{DeviceSpec, LoadOptions, Model};
use crate::suite::resolve::resolve;
use crate::suite::results::{fingerprint, Cache, EvalResults, ModelRef};
use crate::suite::runner::{run_suite, EvalSettings, SuiteObserver};

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Checkpoint folder (Hugging Face layout), or a llama GGUF file (`*.gguf`, with
    /// `--tokenizer DIR`); with `--backend openai`, leave it out and name the served model with
    /// `--model`.
    pub model: Option<PathBuf>,
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Suites: names under --suites-dir, suite folders, or IMPORTER=PATH for a public benchmark
    /// file (gsm8k, math500, arc_easy, mmlu, boolq, truthfulqa_mc1, xstest, …). Comma-separated or repeated.
    #[arg(
        long = "suites",
        alias = "suite",
        value_delimiter = ',',
        required = true
    )]
    pub suites: Vec<String>,
    #[arg(long, default_value = "suites")]
    pub suites_dir: PathBuf,
    /// Write results JSON here (default: stdout).
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Score only the first N items of each suite (0: all).
    #[arg(long, default_value_t = 0)]
    pub limit: usize,
    /// Items whose prompt (plus the generation budget) exceeds the model's context: skip and
    /// count them, or stop with an error.
    #[arg(long, value_enum, default_value = "skip")]
    pub over_context: crate::suite::runner::OverContext,
    /// Where cached results live, keyed by (model fingerprint, suite hash, settings).
    #[arg(long, default_value = ".sft-eval-cache")]
    pub cache_dir: PathBuf,
    #[arg(long)]
    pub no_cache: bool,
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// Where a checkpoint runs in process.
#[derive(Debug, Clone, Args)]
pub struct DeviceArgs {
    /// Run checkpoints on `cpu`, `cuda` (GPU 0) or `cuda:N`; a GPU needs a build with
    /// `--features cuda`. Cached results are shared across devices (CPU and CUDA logits agree
    /// to float rounding, ~1e-5).
    #[arg(
        long,
        env = crate::env_vars::SFT_EVAL_DEVICE,
        default_value = "cpu",
        value_name = "DEVICE"
    )]
    pub device: DeviceSpec,
}

impl DeviceArgs {
    /// Load options for a frozen checkpoint on this device.
    pub fn load_options(&self) -> Result<LoadOptions, Error> {
        Ok(LoadOptions {
            device: self.device.open().map_err(crate::model::ModelError::from)?,
            ..LoadOptions::default()
        })
    }
}

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum BackendKind {
    /// a checkpoint folder, run in process
    #[default]
    Local,
    /// a server with an OpenAI-compatible `/v1/completions` API (vLLM, llama.cpp)
    Openai,
}

/// `--backend openai --model NAME` and how to reach the server.
#[derive(Debug, Clone, Args)]
pub struct BackendArgs {
    /// `local`: the checkpoint folder argument, run in process. `openai`: a model served behind
    /// an OpenAI-compatible `/v1/completions` API (vLLM, llama.cpp); needs --base-url and --model.
    #[arg(long, value_enum, default_value = "local")]
    pub backend: BackendKind,
    /// The served model's name, as the server's `/v1/models` lists it.
    #[arg(long = "model", value_name = "NAME")]
    pub served_model: Option<String>,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// How to reach an OpenAI-compatible server.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// The server's API root, e.g. `http://localhost:8000/v1` (http only).
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// A folder with the served model's tokenizer.json (and chat template): counts prompt
    /// tokens against the context and renders chat templates for `chat = "auto"` suites.
    /// Required for a GGUF model file, whose tokenizer it is.
    #[arg(long, value_name = "DIR")]
    pub tokenizer: Option<PathBuf>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Retries of a request after HTTP 429, 5xx or a connection error (exponential backoff).
    #[arg(long, default_value_t = 6)]
    pub max_retries: u32,
    /// First retry backoff in milliseconds (doubled on each retry, capped at 30 s).
    #[arg(long, default_value_t = 500, value_name = "MS")]
    pub retry_backoff_ms: u64,
    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    pub request_timeout: u64,
}

impl ServerArgs {
    /// Connect to the served model `model` at `--base-url`.
    pub fn connect(&self, model: &str) -> Result<OpenAiBackend, Error> {
        let url = self.base_url.as_deref().ok_or_else(|| {
            Error::Usage(format!(
                "the served model `{model}` needs --base-url URL (e.g. http://localhost:8000/v1)"
            ))
        })?;
        let mut o = OpenAiOptions::new(url, model);
        o.tokenizer_dir = self.tokenizer.clone();
        o.concurrency = self.concurrency.max(1);
        o.max_retries = self.max_retries;
        o.backoff = std::time::Duration::from_millis(self.retry_backoff_ms);
        o.timeout = std::time::Duration::from_secs(self.request_timeout.max(1));
        Ok(OpenAiBackend::connect(o)?)
    }
}

struct Bar(Option<ProgressBar>);

impl SuiteObserver for Bar {
    fn start(&mut self, suite: &str, items: usize) {
        if crate::cli::progress_enabled() {
            let b = ProgressBar::new(items as u64);
            b.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {pos}/{len} items ({per_sec}, {eta})",
                )
                .expect("template")
                .progress_chars("=> "),
            );
            b.set_prefix(suite.to_string());
            self.0 = Some(b);
        }
    }
    fn item(&mut self, done: usize) {
        if let Some(b) = &self.0 {
            b.set_position(done as u64);
        }
    }
    fn end(&mut self) {
        if let Some(b) = self.0.take() {
            b.finish_and_clear();
        }
    }
}

/// Resolve suite arguments before any model is loaded, so a bad one fails fast.
fn resolve_all(
    suites: &[String],
    suites_dir: &std::path::Path,
) -> Result<Vec<crate::suite::spec::Suite>, Error> {
    Ok(suites
        .iter()
        .map(|s| resolve(s, suites_dir))
        .collect::<Result<Vec<_>, _>>()?)
}

/// Evaluate a checkpoint on suites (cached), reporting each suite's line on stderr.
pub fn evaluate(
    model_dir: &std::path::Path,
    suites: &[String],
    suites_dir: &std::path::Path,
    settings: EvalSettings,
    cache: Option<&Cache>,
    device: &DeviceArgs,
) -> Result<EvalResults, Error> {
    let resolved = resolve_all(suites, suites_dir)?;
    let model = Model::load(model_dir, &device.load_options()?)?;
    let fp = fingerprint(model_dir)?;
    evaluate_with(
        &model,
        ModelRef {
            path: model_dir.display().to_string(),
            fingerprint: fp,
        },
        suites,
        &resolved,
        settings,
        cache,
    )
}

/// Evaluate a llama GGUF file, dequantized into the local decoder, with the tokenizer of the
/// Hugging Face folder `tokenizer` (required).
pub fn evaluate_gguf(
    path: &std::path::Path,
    tokenizer: Option<&std::path::Path>,
    suites: &[String],
    suites_dir: &std::path::Path,
    settings: EvalSettings,
    cache: Option<&Cache>,
    device: &DeviceArgs,
) -> Result<EvalResults, Error> {
    let resolved = resolve_all(suites, suites_dir)?;
    let model = GgufModel::load(path, tokenizer, &device.load_options()?)?;
    evaluate_with(
        &model,
        ModelRef {
            path: path.display().to_string(),
            fingerprint: model.fingerprint.clone(),
        },
        suites,
        &resolved,
        settings,
        cache,
    )
}

/// Evaluate a served model (`--backend openai`) on suites (cached).
pub fn evaluate_served(
    backend: &OpenAiBackend,
    suites: &[String],
    suites_dir: &std::path::Path,
    settings: EvalSettings,
    cache: Option<&Cache>,
) -> Result<EvalResults, Error> {
    let resolved = resolve_all(suites, suites_dir)?;
    let o = backend.options();
    evaluate_with(
        backend,
        ModelRef {
            path: format!("openai:{}@{}", o.model, o.base_url),
            fingerprint: backend.fingerprint().to_string(),
        },
        suites,
        &resolved,
        settings,
        cache,
    )
}

/// Score `model` on resolved suites; each suite's result is cached as soon as it is done, so a
/// run that fails part-way keeps the suites it finished.
fn evaluate_with(
    model: &dyn LanguageModel,
    model_ref: ModelRef,
    names: &[String],
    suites: &[crate::suite::spec::Suite],
    settings: EvalSettings,
    cache: Option<&Cache>,
) -> Result<EvalResults, Error> {
    let fp = model_ref.fingerprint.clone();
    let mut results = Vec::new();
    for (s, name) in suites.iter().zip(names) {
        let mut r = match cache.and_then(|c| c.get(&fp, &s.hash, &settings)) {
            Some(r) => r,
            None => {
                let r = run_suite(model, s, &settings, &mut Bar(None))?;
                if let Some(c) = cache {
                    c.put(&fp, &settings, &r)?;
                }
                r
            }
        };
        r.source = Some(name.clone());
        crate::cli::print_stderr(&format!(
            "{}: {} = {:.4} ± {:.4} (n = {}, format failures {})\n",
            r.suite, r.metric, r.mean, r.se, r.n, r.format_failures
        ));
        results.push(r);
    }
    Ok(EvalResults::new(model_ref, settings, results))
}

/// Write text atomically (temp file + rename), or to stdout without a path.
pub fn write_out(path: Option<&std::path::Path>, text: &str) -> Result<(), Error> {
    match path {
        Some(p) => {
            let tmp = p.with_extension("tmp");
            std::fs::write(&tmp, text).map_err(|e| Error::Io {
                path: tmp.clone(),
                source: e,
            })?;
            std::fs::rename(&tmp, p).map_err(|e| Error::Io {
                path: p.to_path_buf(),
                source: e,
            })
        }
        None => {
            crate::cli::print_stdout(text);
            Ok(())
        }
    }
}

pub fn run(a: &EvalArgs) -> Result<ExitStatus, Error> {
    let settings = EvalSettings {
        batch_size: a.batch_size,
        limit: a.limit,
        over_context: a.over_context,
    };
    let cache = Cache {
        dir: a.cache_dir.clone(),
    };
    let cache = (!a.no_cache).then_some(&cache);
    let out = match (a.backend.backend, &a.model) {
        (BackendKind::Openai, Some(p)) => {
            return Err(Error::Usage(format!(
                "--backend openai evaluates a served model: drop the folder argument {} and name the model with --model",
                p.display()
            )))
        }
        (BackendKind::Openai, None) => {
            let name = a.backend.served_model.as_deref().ok_or_else(|| {
                Error::Usage(
                    "--backend openai needs --model NAME (as the server's /v1/models lists it)"
                        .into(),
                )
            })?;
            let b = a.backend.server.connect(name)?;
            evaluate_served(&b, &a.suites, &a.suites_dir, settings, cache)?
        }
        (BackendKind::Local, Some(p)) if is_gguf(p) => evaluate_gguf(
            p,
            a.backend.server.tokenizer.as_deref(),
            &a.suites,
            &a.suites_dir,
            settings,
            cache,
            &a.device,
        )?,
        (BackendKind::Local, Some(p)) => {
            evaluate(p, &a.suites, &a.suites_dir, settings, cache, &a.device)?
        }
        (BackendKind::Local, None) => {
            return Err(Error::Usage(
                "give a checkpoint folder, or --backend openai --base-url URL --model NAME".into(),
            ))
        }
    };
    let mut text = serde_json::to_string_pretty(&out).expect("results serialise");
    text.push('\n');
    write_out(a.out.as_deref(), &text)?;
    Ok(ExitStatus::Success)
}

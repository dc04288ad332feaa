//! `sft-eval eval MODEL --suites …`: score a checkpoint on capability suites and write results.

use std::path::PathBuf;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::backend::gguf::is_gguf;
use crate::backend::openai::{OpenAiBackend, OpenAiOptions};
use crate::error::{Error, ExitStatus};
use crate::model::{DeviceSpec, LoadOptions};
use crate::suite::evaluate::{
    evaluate_checkpoint, evaluate_gguf, evaluate_served, resolve_suites, EvalObserver,
};
use crate::suite::results::{Cache, EvalResults};
use crate::suite::runner::{EvalSettings, SuiteObserver, SuiteResult};

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
    /// Rows run together: prompts scored in one padded pass, and sequences generated side by side
    /// (a finished row's place goes to the next waiting item). 16 measured fastest on CPU for
    /// the 135M shape (reports/bench); larger suits a GPU. Part of the cache key.
    #[arg(long, default_value_t = 16)]
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
    /// For a PEFT adapter folder (adapter_config.json + adapter_model.safetensors): the base
    /// checkpoint it applies to, instead of the one its `base_model_name_or_path` names (needed
    /// when that is a Hub id not in the local Hugging Face cache; nothing is downloaded).
    #[arg(long = "base", id = "adapter_base", value_name = "DIR")]
    pub adapter_base: Option<PathBuf>,
}

impl DeviceArgs {
    /// Load options for a frozen checkpoint on this device.
    pub fn load_options(&self) -> Result<LoadOptions, Error> {
        Ok(LoadOptions {
            device: self.device.open().map_err(crate::model::ModelError::from)?,
            base: self.adapter_base.clone(),
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
    /// The server's API root, e.g. `http://localhost:8000/v1` or `https://host/v1` (TLS by
    /// rustls, trusting the bundled web PKI roots unless --ca-cert is given).
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// PEM file of the certificate authorities to trust for an https:// server (a private CA or
    /// a self-signed certificate), instead of the web PKI roots.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Name of an environment variable holding the server's API key, sent as
    /// `Authorization: Bearer …` (the key itself is never logged, cached or written to results).
    #[arg(long, value_name = "NAME")]
    pub api_key_env: Option<String>,
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
        o.ca_cert = self.ca_cert.clone();
        if let Some(name) = &self.api_key_env {
            let key = std::env::var(name).map_err(|_| {
                Error::Usage(format!(
                    "--api-key-env {name}: the environment variable `{name}` is not set (or not UTF-8)"
                ))
            })?;
            if key.trim().is_empty() {
                return Err(Error::Usage(format!(
                    "--api-key-env {name}: the environment variable `{name}` is empty"
                )));
            }
            o.api_key = Some(crate::backend::openai::ApiKey::new(key));
        }
        Ok(OpenAiBackend::connect(o)?)
    }
}

/// The progress bar of one suite at a time (items/s, and generated tokens/s for generation
/// suites), and a line per finished suite on stderr.
pub struct Progress {
    bar: Option<ProgressBar>,
    /// generated tokens of the current suite, and when it started
    tokens: usize,
    started: std::time::Instant,
}

impl Progress {
    pub fn new() -> Progress {
        Progress {
            bar: None,
            tokens: 0,
            started: std::time::Instant::now(),
        }
    }
}

impl SuiteObserver for Progress {
    fn start(&mut self, suite: &str, items: usize) {
        if crate::cli::progress_enabled() {
            let b = ProgressBar::new(items as u64);
            b.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {pos}/{len} items ({per_sec}{msg}, {eta})",
                )
                .expect("template")
                .progress_chars("=> "),
            );
            b.set_prefix(suite.to_string());
            self.bar = Some(b);
        }
        self.tokens = 0;
        self.started = std::time::Instant::now();
    }
    fn item(&mut self, done: usize) {
        if let Some(b) = &self.bar {
            b.set_position(done as u64);
        }
    }
    fn generated(&mut self, tokens: Option<usize>) {
        let (Some(b), Some(n)) = (&self.bar, tokens) else {
            return;
        };
        self.tokens += n;
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        b.set_message(format!(
            ", {:.1} generated tok/s",
            self.tokens as f64 / secs
        ));
    }
    fn end(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

impl EvalObserver for Progress {
    fn suite_done(&mut self, r: &SuiteResult, cached: bool) {
        let u = r.unit;
        crate::cli::print_stderr(&format!(
            "{}: {} = {:.4} ± {:.4} {}(n = {}, format failures {}){}\n",
            r.suite,
            r.metric,
            r.mean,
            r.se,
            match u {
                crate::suite::scorer::Unit::Proportion => String::new(),
                other => format!("{} ", other.label()),
            },
            r.n,
            r.format_failures,
            if cached { " [cached]" } else { "" }
        ));
    }
}

/// Evaluate a checkpoint folder, a GGUF file (with `tokenizer`) or an `openai:NAME` served model
/// (with `server`) on suites, through the cache.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_path(
    p: &std::path::Path,
    suites: &[String],
    suites_dir: &std::path::Path,
    settings: &EvalSettings,
    cache: Option<&Cache>,
    device: &DeviceArgs,
    server: &ServerArgs,
) -> Result<EvalResults, Error> {
    let resolved = resolve_suites(suites, suites_dir)?;
    let mut obs = Progress::new();
    if let Some(name) = p.to_str().and_then(|s| s.strip_prefix("openai:")) {
        let b = server.connect(name)?;
        return Ok(evaluate_served(&b, &resolved, settings, cache, &mut obs)?);
    }
    let opts = device.load_options()?;
    if is_gguf(p) {
        return Ok(evaluate_gguf(
            p,
            server.tokenizer.as_deref(),
            &resolved,
            settings,
            cache,
            &opts,
            &mut obs,
        )?);
    }
    Ok(evaluate_checkpoint(
        p, &resolved, settings, cache, &opts, &mut obs,
    )?)
}

/// Write text atomically (temp file + rename), or to stdout without a path.
pub fn write_out(path: Option<&std::path::Path>, text: &str) -> Result<(), Error> {
    match path {
        Some(p) => Ok(crate::report::write_atomic(p, text.as_bytes())?),
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
            let resolved = resolve_suites(&a.suites, &a.suites_dir)?;
            let b = a.backend.server.connect(name)?;
            evaluate_served(&b, &resolved, &settings, cache, &mut Progress::new())?
        }
        (BackendKind::Local, Some(p)) => evaluate_path(
            p,
            &a.suites,
            &a.suites_dir,
            &settings,
            cache,
            &a.device,
            &a.backend.server,
        )?,
        (BackendKind::Local, None) => {
            return Err(Error::Usage(
                "give a checkpoint folder, or --backend openai --base-url URL --model NAME".into(),
            ))
        }
    };
    write_out(a.out.as_deref(), &out.to_json())?;
    Ok(ExitStatus::Success)
}

//! `sft-eval eval MODEL --suites …`: score a checkpoint on capability suites and write results.

use std::path::PathBuf;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::error::{Error, ExitStatus};
use crate::model::{LoadOptions, Model};
use crate::suite::resolve::resolve;
use crate::suite::results::{fingerprint, Cache, EvalResults, ModelRef};
use crate::suite::runner::{run_suite, EvalSettings, SuiteObserver};

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Checkpoint folder (Hugging Face layout).
    pub model: PathBuf,
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

/// Evaluate a checkpoint on suites (cached), reporting each suite's line on stderr.
pub fn evaluate(
    model_dir: &std::path::Path,
    suites: &[String],
    suites_dir: &std::path::Path,
    settings: EvalSettings,
    cache: Option<&Cache>,
) -> Result<EvalResults, Error> {
    let names = suites;
    let suites = suites
        .iter()
        .map(|s| resolve(s, suites_dir))
        .collect::<Result<Vec<_>, _>>()?;
    let model = Model::load(model_dir, &LoadOptions::default())?;
    let fp = fingerprint(model_dir)?;
    let mut results = Vec::new();
    for (s, name) in suites.iter().zip(names) {
        let mut r = match cache.and_then(|c| c.get(&fp, &s.hash, &settings)) {
            Some(r) => r,
            None => {
                let r = run_suite(&model, s, &settings, &mut Bar(None))?;
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
    Ok(EvalResults::new(
        ModelRef {
            path: model_dir.display().to_string(),
            fingerprint: fp,
        },
        settings,
        results,
    ))
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
    let out = evaluate(
        &a.model,
        &a.suites,
        &a.suites_dir,
        settings,
        (!a.no_cache).then_some(&cache),
    )?;
    let mut text = serde_json::to_string_pretty(&out).expect("results serialise");
    text.push('\n');
    write_out(a.out.as_deref(), &text)?;
    Ok(ExitStatus::Success)
}

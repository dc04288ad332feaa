//! `sft-eval compare BASE FINETUNED`, `sft-eval gate`, `sft-eval baseline record`.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::eval::{evaluate, write_out};
use crate::error::{Error, ExitStatus};
use crate::gate::compare::compare;
use crate::gate::policy::{judge, Policy};
use crate::gate::{read_results, report};
use crate::stats::BootstrapConfig;
use crate::suite::results::{Cache, EvalResults};
use crate::suite::runner::EvalSettings;

/// Where a side of a comparison comes from.
#[derive(Debug, Args)]
pub struct EvalSource {
    /// Suites to evaluate when a side is a checkpoint folder (names, folders or IMPORTER=PATH).
    #[arg(long = "suites", value_delimiter = ',')]
    pub suites: Vec<String>,
    #[arg(long, default_value = "suites")]
    pub suites_dir: PathBuf,
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 0)]
    pub limit: usize,
    /// Items whose prompt (plus the generation budget) exceeds the model's context: skip and
    /// count them, or stop with an error.
    #[arg(long, value_enum, default_value = "skip")]
    pub over_context: crate::suite::runner::OverContext,
    #[arg(long, default_value = ".sft-eval-cache")]
    pub cache_dir: PathBuf,
    /// Bootstrap resamples.
    #[arg(long, default_value_t = 10_000)]
    pub resamples: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl EvalSource {
    /// A results file, or a checkpoint folder evaluated now (on `like`'s suites and settings).
    fn load(&self, p: &Path, like: Option<&EvalResults>) -> Result<EvalResults, Error> {
        if p.is_file() {
            return Ok(read_results(p)?);
        }
        let (suites, settings) = match like {
            Some(b) if self.suites.is_empty() => {
                let names: Vec<String> = b
                    .suites
                    .iter()
                    .map(|s| s.source.clone().unwrap_or_else(|| s.suite.clone()))
                    .collect();
                (names, b.settings.clone())
            }
            _ => (
                self.suites.clone(),
                EvalSettings {
                    batch_size: self.batch_size,
                    limit: self.limit,
                    over_context: self.over_context,
                },
            ),
        };
        if suites.is_empty() {
            return Err(Error::Usage(format!(
                "{}: a checkpoint folder needs --suites",
                p.display()
            )));
        }
        evaluate(
            p,
            &suites,
            &self.suites_dir,
            settings,
            Some(&Cache {
                dir: self.cache_dir.clone(),
            }),
        )
    }

    fn boot(&self) -> BootstrapConfig {
        BootstrapConfig {
            resamples: self.resamples,
            seed: self.seed,
            ..Default::default()
        }
    }
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Base: a results/baseline JSON file or a checkpoint folder.
    pub base: PathBuf,
    /// Fine-tune: a results JSON file or a checkpoint folder.
    pub finetuned: PathBuf,
    #[command(flatten)]
    pub src: EvalSource,
    /// Write the markdown report here (default: stdout).
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Write the comparison as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Prompts per suite for the label-free drift (mean token KL) when both sides are checkpoints.
    #[arg(long, default_value_t = 100)]
    pub drift_items: usize,
}

pub fn run_compare(a: &CompareArgs) -> Result<ExitStatus, Error> {
    let base = a.src.load(&a.base, None)?;
    let ft = a.src.load(&a.finetuned, Some(&base))?;
    let c = compare(&base, &ft, 0.95, &a.src.boot())?;
    let mut md = report::markdown(&c, None);
    // label-free drift when both sides are checkpoints
    let drift = if a.base.is_dir() && a.finetuned.is_dir() {
        let suites = base
            .suites
            .iter()
            .map(|s| {
                crate::suite::resolve::resolve(
                    s.source.as_deref().unwrap_or(&s.suite),
                    &a.src.suites_dir,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let opts = crate::model::LoadOptions::default();
        let bm = crate::model::Model::load(&a.base, &opts)?;
        let fm = crate::model::Model::load(&a.finetuned, &opts)?;
        let d = crate::gate::drift::drift(&bm, &fm, &suites, a.drift_items)?;
        md.push_str(&report::drift_markdown(&d));
        Some(d)
    } else {
        None
    };
    if let Some(j) = &a.json {
        let v = serde_json::json!({"comparison": c, "drift": drift});
        write_out(
            Some(j),
            &serde_json::to_string_pretty(&v).expect("comparison serialises"),
        )?;
    }
    write_out(a.markdown.as_deref(), &md)?;
    Ok(ExitStatus::Success)
}

#[derive(Debug, Args)]
pub struct GateArgs {
    /// Baseline results of the base model (`sft-eval baseline record`).
    #[arg(long)]
    pub baseline: PathBuf,
    /// Fine-tuned checkpoint to evaluate on the baseline's suites…
    #[arg(long, conflicts_with = "results", required_unless_present = "results")]
    pub model: Option<PathBuf>,
    /// …or its results file.
    #[arg(long)]
    pub results: Option<PathBuf>,
    /// Policy TOML: confidence, default and per-suite margin / max_drop / max_relative_drop /
    /// inconclusive, and required suites. Default: margin 0.02, inconclusive fails.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    #[command(flatten)]
    pub src: EvalSource,
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub fn run_gate(a: &GateArgs) -> Result<ExitStatus, Error> {
    let policy: Policy = match &a.policy {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| Error::Io {
                path: p.clone(),
                source: e,
            })?;
            toml::from_str(&text).map_err(|e| Error::Usage(format!("{}: {e}", p.display())))?
        }
        None => Policy::default(),
    };
    let base = read_results(&a.baseline)?;
    let ft = match (&a.model, &a.results) {
        (_, Some(r)) => read_results(r)?,
        (Some(m), None) => a.src.load(m, Some(&base))?,
        (None, None) => unreachable!("clap requires one"),
    };
    for r in &policy.required {
        if !base.suites.iter().any(|s| &s.suite == r) {
            return Err(Error::Gate(crate::gate::GateError::Mismatch(format!(
                "required suite `{r}` is not in the baseline"
            ))));
        }
    }
    let c = compare(&base, &ft, policy.confidence, &a.src.boot())?;
    let verdicts = judge(&c, &policy);
    let md = report::markdown(&c, Some(&verdicts));
    if let Ok(summary) = std::env::var("GITHUB_STEP_SUMMARY") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&summary)
        {
            let _ = f.write_all(md.as_bytes());
        }
    }
    if let Some(j) = &a.json {
        let v = serde_json::json!({"comparison": c, "verdicts": verdicts, "passed": !verdicts.iter().any(|v| v.fails)});
        write_out(
            Some(j),
            &serde_json::to_string_pretty(&v).expect("serialises"),
        )?;
    }
    write_out(a.markdown.as_deref(), &md)?;
    Ok(if verdicts.iter().any(|v| v.fails) {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}

#[derive(Debug, Subcommand)]
pub enum BaselineCommand {
    /// Evaluate a checkpoint and store per-item results, fingerprint, suite hashes and settings.
    Record(RecordArgs),
    /// Re-evaluate a baseline's model (or another one) on the baseline's suites and settings,
    /// show what changed, and write only with --yes.
    Update(UpdateArgs),
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The baseline file to refresh.
    #[arg(long)]
    pub baseline: PathBuf,
    /// Checkpoint to evaluate (default: the baseline's recorded model path).
    pub model: Option<PathBuf>,
    /// Write the new baseline (otherwise only show the changes).
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub src: EvalSource,
}

/// What differs between two results files, one line per change.
fn changes(old: &EvalResults, new: &EvalResults) -> Vec<String> {
    let mut out = Vec::new();
    if old.model.fingerprint != new.model.fingerprint {
        out.push(format!(
            "model fingerprint {}… → {}…",
            &old.model.fingerprint[..12],
            &new.model.fingerprint[..12]
        ));
    }
    if old.harness_version != new.harness_version {
        out.push(format!(
            "harness {} → {}",
            old.harness_version, new.harness_version
        ));
    }
    for n in &new.suites {
        match old.suites.iter().find(|o| o.suite == n.suite) {
            None => out.push(format!("suite `{}` added", n.suite)),
            Some(o) => {
                if o.suite_hash != n.suite_hash {
                    out.push(format!(
                        "suite `{}` content changed ({} → {} items)",
                        n.suite, o.n, n.n
                    ));
                }
                let flipped = o
                    .items
                    .iter()
                    .filter(|a| {
                        n.items
                            .iter()
                            .find(|b| b.id == a.id)
                            .is_some_and(|b| b.score != a.score)
                    })
                    .count();
                if o.mean != n.mean || flipped > 0 {
                    out.push(format!(
                        "suite `{}`: {} {:.4} → {:.4}, {flipped} items changed score",
                        n.suite, n.metric, o.mean, n.mean
                    ));
                }
            }
        }
    }
    for o in &old.suites {
        if !new.suites.iter().any(|n| n.suite == o.suite) {
            out.push(format!("suite `{}` removed", o.suite));
        }
    }
    out
}

#[derive(Debug, Args)]
pub struct RecordArgs {
    pub model: PathBuf,
    #[arg(long, short = 'o')]
    pub out: PathBuf,
    #[command(flatten)]
    pub src: EvalSource,
}

pub fn run_baseline(c: &BaselineCommand) -> Result<ExitStatus, Error> {
    match c {
        BaselineCommand::Update(a) => {
            let old = read_results(&a.baseline)?;
            let model = a
                .model
                .clone()
                .unwrap_or_else(|| PathBuf::from(&old.model.path));
            let new = a.src.load(&model, Some(&old))?;
            let diff = changes(&old, &new);
            let mut msg = if diff.is_empty() {
                format!("{}: no changes\n", a.baseline.display())
            } else {
                format!("{}: {} change(s)\n", a.baseline.display(), diff.len())
                    + &diff
                        .iter()
                        .map(|d| format!("  - {d}\n"))
                        .collect::<String>()
            };
            if a.yes && !diff.is_empty() {
                let mut text = serde_json::to_string_pretty(&new).expect("results serialise");
                text.push('\n');
                write_out(Some(&a.baseline), &text)?;
                msg.push_str("written\n");
            } else if !diff.is_empty() {
                msg.push_str("not written: pass --yes to replace the baseline\n");
            }
            crate::cli::print_stdout(&msg);
            Ok(ExitStatus::Success)
        }
        BaselineCommand::Record(a) => {
            if a.src.suites.is_empty() {
                return Err(Error::Usage("baseline record needs --suites".into()));
            }
            let r = a.src.load(&a.model, None)?;
            let mut text = serde_json::to_string_pretty(&r).expect("results serialise");
            text.push('\n');
            if let Some(parent) = a.out.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|e| Error::Io {
                    path: parent.to_path_buf(),
                    source: e,
                })?;
            }
            write_out(Some(&a.out), &text)?;
            Ok(ExitStatus::Success)
        }
    }
}

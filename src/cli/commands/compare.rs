//! `sft-eval compare BASE FINETUNED…`, and what it shares with `gate` and `baseline`
//! (`commands/gate.rs`): where each side comes from, and the report folder.
//!
//! compare and gate also write a report folder (`--report-dir`, default `reports/<run-id>`):
//! report.md (the markdown plus chart images), report.json, delta.svg, and when they apply
//! loss.svg (a training run directory was given) and gain_vs_forgetting.svg (`--new-task`).

use std::path::{Path, PathBuf};

use clap::Args;

use super::eval::write_out;
use crate::error::{Error, ExitStatus};
use crate::gate::compare::compare;
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
    /// Rows run together: prompts scored in one padded pass, and sequences generated side by side
    /// (a finished row's place goes to the next waiting item). 16 measured fastest on CPU for
    /// the 135M shape (reports/bench); larger suits a GPU. Part of the cache key.
    #[arg(long, default_value_t = 16)]
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
    /// The server for sides written `openai:NAME` (a model served behind an OpenAI-compatible
    /// API, evaluated as `eval --backend openai` does), so a local base can be compared with a
    /// served fine-tune.
    #[command(flatten)]
    pub server: Box<super::eval::ServerArgs>,
    #[command(flatten)]
    pub device: super::eval::DeviceArgs,
}

impl EvalSource {
    /// A results file, or a checkpoint folder, GGUF file (with `--tokenizer`) or `openai:NAME`
    /// evaluated now. With `like` (a baseline or the base side), on `like`'s settings and on its
    /// suites (or on `--suites`, which must then be the same suites: compare and gate refuse
    /// results that differ).
    pub(super) fn load(&self, p: &Path, like: Option<&EvalResults>) -> Result<EvalResults, Error> {
        let gguf = crate::backend::gguf::is_gguf(p);
        if (p.is_file() && !gguf) || crate::suite::external::detect(p).is_some() {
            return Ok(read_results(p)?);
        }
        let (suites, settings) = match like {
            Some(b) => {
                let names = if self.suites.is_empty() {
                    b.suites
                        .iter()
                        .map(|s| s.source.clone().unwrap_or_else(|| s.suite.clone()))
                        .collect()
                } else {
                    self.suites.clone()
                };
                (names, b.settings.clone())
            }
            None => (
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
        let cache = Cache {
            dir: self.cache_dir.clone(),
        };
        super::eval::evaluate_path(
            p,
            &suites,
            &self.suites_dir,
            &settings,
            Some(&cache),
            &self.device,
            &self.server,
        )
    }

    pub(super) fn boot(&self) -> BootstrapConfig {
        BootstrapConfig {
            resamples: self.resamples,
            seed: self.seed,
            ..Default::default()
        }
    }
}

/// Where the report folder goes.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Write report.md, report.json and the SVG charts into this folder (created if needed).
    /// Default: `reports/<run-id>`, where the run id is `<fine-tune>-vs-<base>-<hash>` and the
    /// hash covers the models' content fingerprints, so the same comparison reuses its folder.
    #[arg(long, value_name = "DIR")]
    pub report_dir: Option<PathBuf>,
}

/// A command-line model argument: a results file, a checkpoint folder, or a `sft-eval train` run
/// directory (its `final/` checkpoint is compared and its `log.jsonl` charted).
pub(super) struct Side {
    /// what is evaluated or read: the argument, or `<run dir>/final`
    pub(super) path: PathBuf,
    /// the run directory, when the argument is one
    pub(super) run_dir: Option<PathBuf>,
    /// a short name for tables, charts and the run id
    pub(super) name: String,
}

impl Side {
    pub(super) fn new(arg: &Path) -> Side {
        let is_run = arg.join("final").is_dir() && arg.join("log.jsonl").is_file();
        let name = if arg.is_file() {
            arg.file_stem()
        } else {
            arg.file_name()
        }
        .map_or_else(
            || arg.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        Side {
            path: if is_run {
                arg.join("final")
            } else {
                arg.to_path_buf()
            },
            run_dir: is_run.then(|| arg.to_path_buf()),
            name,
        }
    }

    /// Its training and evaluation loss curves, when it is a run directory.
    pub(super) fn loss_series(&self) -> Result<Vec<crate::report::LossSeries>, Error> {
        match &self.run_dir {
            Some(d) => {
                Ok(crate::report::read_loss_log(&d.join("log.jsonl"))?.into_series(&self.name))
            }
            None => Ok(vec![]),
        }
    }
}

/// The report folder: `--report-dir`, or `reports/<run-id>`.
pub(super) fn report_dir(
    a: &ReportArgs,
    base: (&Side, &EvalResults),
    finetunes: &[(&Side, &EvalResults)],
) -> PathBuf {
    a.report_dir.clone().unwrap_or_else(|| {
        let fts: Vec<(&str, &str)> = finetunes
            .iter()
            .map(|(s, r)| (s.name.as_str(), r.model.fingerprint.as_str()))
            .collect();
        Path::new("reports").join(crate::report::run_id(
            (&base.0.name, &base.1.model.fingerprint),
            &fts,
        ))
    })
}

/// Write the report folder and say where it is (on stderr: stdout carries the markdown).
pub(super) fn write_report(
    dir: &Path,
    md: &str,
    json: &str,
    charts: &[(&str, &str, String)],
) -> Result<(), Error> {
    let refs: Vec<(&str, &str)> = charts.iter().map(|(alt, f, _)| (*alt, *f)).collect();
    let report_md = report::insert_charts(md, &refs);
    let mut files: Vec<(&str, &str)> = vec![("report.md", &report_md), ("report.json", json)];
    files.extend(charts.iter().map(|(_, f, svg)| (*f, svg.as_str())));
    crate::report::write_report_files(dir, &files)?;
    crate::cli::print_stderr(&format!("report: {}\n", dir.join("report.md").display()));
    Ok(())
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Base: a results/baseline JSON file or a checkpoint folder.
    pub base: PathBuf,
    /// Fine-tunes: results JSON files, checkpoint folders, or `sft-eval train` run directories
    /// (compared through their final/ checkpoint; their loss curves go into the report). Several
    /// fine-tunes give one table each.
    #[arg(required = true, num_args = 1.., value_name = "FINETUNED")]
    pub finetuned: Vec<PathBuf>,
    #[command(flatten)]
    pub src: EvalSource,
    /// The suite that measures the task the fine-tunes were trained for: it counts as gain, the
    /// other suites as forgetting, and the report gets a gain-vs-forgetting chart.
    #[arg(long, value_name = "SUITE")]
    pub new_task: Option<String>,
    /// Write the markdown report here (default: stdout).
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Write the comparison as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub report: ReportArgs,
    /// Prompts per suite for the label-free drift (mean token KL) when both sides are checkpoints.
    #[arg(long, default_value_t = 100)]
    pub drift_items: usize,
}

pub fn run_compare(a: &CompareArgs) -> Result<ExitStatus, Error> {
    let base_side = Side::new(&a.base);
    let base = a.src.load(&base_side.path, None)?;
    let sides: Vec<Side> = a.finetuned.iter().map(|p| Side::new(p)).collect();
    if let Some(t) = &a.new_task {
        if !base.suites.iter().any(|s| &s.suite == t) {
            return Err(Error::Usage(format!(
                "--new-task `{t}` is not one of the compared suites ({})",
                base.suites
                    .iter()
                    .map(|s| s.suite.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    let fts = sides
        .iter()
        .map(|s| a.src.load(&s.path, Some(&base)))
        .collect::<Result<Vec<_>, _>>()?;
    let several = sides.len() > 1;
    // label-free drift needs both sides as checkpoints; the base model is loaded once
    let mut drift_ctx: Option<(Vec<crate::suite::spec::Suite>, crate::model::Model)> = None;
    let mut md_parts = Vec::new();
    let mut json_parts = Vec::new();
    let mut rows = Vec::new();
    let mut tradeoffs = Vec::new();
    let mut comparisons = Vec::new();
    for (side, ft) in sides.iter().zip(&fts) {
        let c = compare(&base, ft, 0.95, &a.src.boot())?;
        let mut md = report::markdown(&c, None);
        let checkpoint = |p: &Path| p.is_dir() && crate::suite::external::detect(p).is_none();
        let drift = if checkpoint(&base_side.path) && checkpoint(&side.path) {
            if drift_ctx.is_none() {
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
                let bm = crate::model::Model::load(&base_side.path, &a.src.device.load_options()?)?;
                drift_ctx = Some((suites, bm));
            }
            let (suites, bm) = drift_ctx.as_ref().expect("set above");
            let fm = crate::model::Model::load(&side.path, &a.src.device.load_options()?)?;
            let d = crate::gate::drift::drift(bm, &fm, suites, a.drift_items)?;
            md.push_str(&report::drift_markdown(&d));
            Some(d)
        } else {
            None
        };
        let tradeoff = match &a.new_task {
            Some(t) => Some(crate::gate::tradeoff::tradeoff(&c, t)?),
            None => None,
        };
        if !several {
            if let Some(t) = &tradeoff {
                md.push_str(&report::tradeoff_markdown(
                    &[(side.name.clone(), t.clone())],
                    c.confidence,
                ));
            }
        }
        rows.extend(report::delta_rows(
            &c,
            None,
            several.then_some(side.name.as_str()),
        ));
        let mut v = serde_json::json!({"comparison": c, "drift": drift});
        if let Some(t) = &tradeoff {
            v["tradeoff"] = serde_json::json!(t);
            tradeoffs.push((side.name.clone(), t.clone()));
        }
        md_parts.push(md);
        json_parts.push(v);
        comparisons.push(c);
    }
    let (md, json) = if several {
        let named: Vec<(String, &crate::gate::compare::Comparison)> = sides
            .iter()
            .map(|s| s.name.clone())
            .zip(&comparisons)
            .collect();
        let mut md = report::several_markdown(&base_side.name, &named);
        md.push_str(&report::tradeoff_markdown(&tradeoffs, 0.95));
        for part in &md_parts {
            md.push('\n');
            md.push_str(part);
        }
        let v = serde_json::json!({"new_task": a.new_task, "finetunes": json_parts});
        (md, v)
    } else {
        (
            md_parts.pop().expect("one fine-tune"),
            json_parts.pop().expect("one fine-tune"),
        )
    };
    let json = serde_json::to_string_pretty(&json).expect("comparison serialises") + "\n";
    // charts
    let mut charts = vec![(
        "Δ with 95% CI per suite",
        "delta.svg",
        crate::report::delta_ci_svg_with(
            &rows,
            &crate::report::DeltaChartOptions {
                title: format!(
                    "{} − {} per suite",
                    if several {
                        "fine-tunes".to_string()
                    } else {
                        sides[0].name.clone()
                    },
                    base_side.name
                ),
                ..Default::default()
            },
        ),
    )];
    if !tradeoffs.is_empty() {
        let points: Vec<crate::report::GainPoint> = tradeoffs
            .iter()
            .map(|(name, t)| crate::report::GainPoint {
                label: name.clone(),
                forgetting: 100.0 * t.forgetting,
                forgetting_lower: Some(100.0 * t.forgetting_ci.lower),
                forgetting_upper: Some(100.0 * t.forgetting_ci.upper),
                gain: 100.0 * t.gain,
            })
            .collect();
        charts.push((
            "New-task gain vs forgetting",
            "gain_vs_forgetting.svg",
            crate::report::gain_vs_forgetting_svg(&points),
        ));
    }
    let mut loss = base_side.loss_series()?;
    for s in &sides {
        loss.extend(s.loss_series()?);
    }
    if !loss.is_empty() {
        charts.push((
            "Training loss",
            "loss.svg",
            crate::report::loss_curves_svg(&loss),
        ));
    }
    let dir = report_dir(
        &a.report,
        (&base_side, &base),
        &sides.iter().zip(&fts).collect::<Vec<_>>(),
    );
    write_report(&dir, &md, &json, &charts)?;
    if let Some(j) = &a.json {
        write_out(Some(j), &json)?;
    }
    write_out(a.markdown.as_deref(), &md)?;
    Ok(ExitStatus::Success)
}

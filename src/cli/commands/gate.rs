//! `sft-eval gate` and `sft-eval baseline record/update`: a fine-tune against a stored baseline,
//! judged by a policy, with exit codes, markdown, JUnit and GitHub annotations for CI.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::compare::{report_dir, write_report, EvalSource, ReportArgs, Side};
use super::eval::write_out;
use crate::error::{Error, ExitStatus};
use crate::gate::policy::Policy;
use crate::gate::{read_results, report};
use crate::suite::results::EvalResults;

#[derive(Debug, Args)]
pub struct GateArgs {
    /// Baseline results of the base model (`sft-eval baseline record`).
    #[arg(long)]
    pub baseline: PathBuf,
    /// Fine-tuned checkpoint (or `sft-eval train` run directory) to evaluate on the baseline's
    /// suites…
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
    #[command(flatten)]
    pub report: ReportArgs,
    /// Also write a JUnit XML report here: one test case per suite (a failure for a suite that
    /// fails the gate), or one test case in error when the gate cannot judge (exit 2).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

/// Whether this runs in GitHub Actions (annotations are printed then).
fn in_github_actions() -> bool {
    std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true")
}

pub fn run_gate(a: &GateArgs) -> Result<ExitStatus, Error> {
    match gate_inner(a) {
        Ok(s) => Ok(s),
        Err(e) => {
            // CI reads the error too: a JUnit case in error, an annotation
            if let Some(j) = &a.junit {
                write_out(Some(j), &crate::gate::ci::junit_error(&e.to_string()))?;
            }
            if in_github_actions() {
                crate::cli::print_stdout(&format!(
                    "::error title=sft-eval gate::{}\n",
                    e.to_string().replace('%', "%25").replace('\n', "%0A")
                ));
            }
            Err(e)
        }
    }
}

fn gate_inner(a: &GateArgs) -> Result<ExitStatus, Error> {
    let policy: Policy = match &a.policy {
        Some(p) => Policy::read(p)?,
        None => Policy::default(),
    };
    let base_side = Side::new(&a.baseline);
    let base = read_results(&a.baseline)?;
    let (ft_side, ft) = match (&a.model, &a.results) {
        (_, Some(r)) => (Side::new(r), read_results(r)?),
        (Some(m), None) => {
            let side = Side::new(m);
            let ft = a.src.load(&side.path, Some(&base))?;
            (side, ft)
        }
        (None, None) => unreachable!("clap requires one"),
    };
    let outcome = crate::gate::gate(&base, &ft, &policy, &a.src.boot()).map_err(|e| match e {
        crate::gate::GateError::Policy(m) => Error::Usage(format!(
            "{}: {m}",
            a.policy
                .as_ref()
                .map_or("the default gate policy".into(), |p| p
                    .display()
                    .to_string())
        )),
        other => other.into(),
    })?;
    let (c, verdicts) = (&outcome.comparison, &outcome.verdicts);
    let md = report::markdown(c, Some(verdicts));
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
    let json = serde_json::to_string_pretty(&outcome).expect("serialises") + "\n";
    // one margin line when every charted suite has the same margin
    let margins: Vec<f64> = verdicts
        .iter()
        .zip(&c.suites)
        .filter(|(_, s)| s.unit == crate::suite::scorer::Unit::Proportion)
        .map(|(v, _)| v.limits.margin)
        .collect();
    let margin = margins
        .first()
        .filter(|m| margins.iter().all(|x| x == *m))
        .map(|m| 100.0 * m);
    let mut charts = vec![(
        "Δ with CI per suite, coloured by verdict",
        "delta.svg",
        crate::report::delta_ci_svg_with(
            &report::delta_rows(c, Some(verdicts), None),
            &crate::report::DeltaChartOptions {
                title: format!("{} − {}: gate", ft_side.name, base_side.name),
                confidence: policy.confidence,
                margin,
            },
        ),
    )];
    let loss = ft_side.loss_series()?;
    if !loss.is_empty() {
        charts.push((
            "Training loss",
            "loss.svg",
            crate::report::loss_curves_svg(&loss),
        ));
    }
    let dir = report_dir(&a.report, (&base_side, &base), &[(&ft_side, &ft)]);
    write_report(&dir, &md, &json, &charts)?;
    if let Some(j) = &a.json {
        write_out(Some(j), &json)?;
    }
    if let Some(j) = &a.junit {
        write_out(Some(j), &crate::gate::ci::junit(&outcome))?;
    }
    write_out(a.markdown.as_deref(), &md)?;
    if in_github_actions() {
        let lines: String = crate::gate::ci::github_annotations(&outcome)
            .iter()
            .map(|l| format!("{l}\n"))
            .collect();
        crate::cli::print_stdout(&lines);
    }
    Ok(if outcome.passed {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
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
                write_out(Some(&a.baseline), &new.to_json())?;
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
            let text = r.to_json();
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

//! `sft-eval demo`: fine-tune the organism on its new task naively and with each mitigation,
//! compare every fine-tune with the base through the normal compare and gate code, and write
//! a report of new-task gain against forgetting.
//!
//! Each mitigation is tried at a few strengths (a small sweep); the report picks, per
//! mitigation, the strength with the least forgetting among those that keep at least
//! [`GAIN_KEPT`] of the naive run's gain, and says plainly whether it cut the naive run's mean
//! drop by at least half.

mod render;
mod variants;

pub use render::markdown;
pub use variants::{naive_config, variants};

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use super::OrganismError;
use crate::gate::compare::Comparison;
use crate::gate::policy::{Policy, SuitePolicy, SuiteVerdict};
use crate::gate::tradeoff::{tradeoff, Tradeoff};
use crate::model::LoadOptions;
use crate::report;
use crate::stats::BootstrapConfig;
use crate::suite::evaluate::{evaluate_checkpoint, EvalObserver, NamedSuite};
use crate::suite::results::Cache;
use crate::suite::results::{EvalResults, ModelRef};
use crate::suite::runner::{EvalSettings, OverContext};
use crate::suite::spec::Suite;
use crate::train::config::{EvalConfig, TrainConfig};
use crate::train::observer::TrainObserver;
use crate::train::watch::WatchRecord;

/// The suite that measures the new task; the others measure forgetting.
pub const NEW_TASK: &str = "organism-convert";
/// Skills in report order (folder names under the organism's `suites/`).
pub const SKILLS: [&str; 4] = ["math", "code", "qa", "safety"];
/// A mitigation must keep this share of the naive run's new-task gain…
pub const GAIN_KEPT: f64 = 0.8;
/// …and cut the naive run's mean drop to at most this share of it.
pub const DROP_LEFT: f64 = 0.5;
/// The gate's non-inferiority margin per suite in the demo (score units).
pub const MARGIN: f64 = 0.05;

#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// the organism folder (weights, `suites/`, `data/`)
    pub organism: PathBuf,
    /// training runs go here (replaced)
    pub work: PathBuf,
    /// report.md, report.json and the charts go here
    pub report_dir: PathBuf,
    /// the reduced demo the tests run: fewer items and strengths
    pub quick: bool,
}

/// One fine-tune of the demo.
#[derive(Debug, Clone, Serialize)]
pub struct Variant {
    /// `naive`, `replay`, `l2sp`, `kl`, `freeze`, `lora`, `gentle`
    pub family: &'static str,
    /// what the strength means, e.g. `replay ratio`
    pub knob: &'static str,
    pub strength: Option<f64>,
    #[serde(skip)]
    pub config: TrainConfig,
}

impl Variant {
    pub fn label(&self) -> String {
        match self.strength {
            Some(s) => format!("{} {}", self.family, fmt_strength(s)),
            None => self.family.to_string(),
        }
    }
}

fn fmt_strength(s: f64) -> String {
    if s != 0.0 && (s.abs() < 1e-2 || s.abs() >= 1e3) {
        format!("{s:.0e}")
    } else {
        format!("{s}")
    }
}

/// What the demo reports as it goes.
pub trait DemoObserver: TrainObserver + EvalObserver {
    fn stage(&mut self, _what: &str) {}
}

#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub label: String,
    pub variant: Variant,
    pub steps: usize,
    pub train_seconds: f64,
    pub comparison: Comparison,
    pub verdicts: Vec<SuiteVerdict>,
    pub tradeoff: Tradeoff,
    /// suites whose gate verdict failed (a significant drop beyond the margin)
    pub failed_suites: Vec<String>,
    #[serde(skip)]
    pub loss: Vec<(f64, f64)>,
    /// the new task's held-out loss (step, mean token NLL) every 10 steps
    pub heldout_loss: Vec<(f64, f64)>,
    /// which checkpoint was scored: `final`, or `best` (early stopping, the capability watch)
    pub scored: String,
    /// the capability watches of a watched run
    pub watches: Vec<WatchRecord>,
    /// whether the run overfit its task, forgot, both or neither (see [`reading`])
    pub reading: String,
}

/// Per mitigation: the chosen strength and whether it met the bar.
#[derive(Debug, Clone, Serialize)]
pub struct Conclusion {
    pub family: String,
    pub chosen: String,
    pub gain_kept: f64,
    pub drop_left: f64,
    pub meets_bar: bool,
    /// the chosen run passes the gate on all four skills
    pub passes_gate: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct DemoReport {
    pub organism: ModelRef,
    pub quick: bool,
    pub base: Vec<(String, f64, usize)>,
    pub outcomes: Vec<Outcome>,
    pub conclusions: Vec<Conclusion>,
    pub seconds: f64,
    pub markdown: String,
}

fn settings(quick: bool) -> EvalSettings {
    EvalSettings {
        batch_size: 64,
        limit: if quick { 80 } else { 0 },
        over_context: OverContext::Skip,
    }
}

fn evaluate(
    dir: &Path,
    suites: &[NamedSuite],
    settings: &EvalSettings,
    cache: Option<&Cache>,
    obs: &mut dyn DemoObserver,
) -> Result<EvalResults, OrganismError> {
    Ok(evaluate_checkpoint(
        dir,
        suites,
        settings,
        cache,
        &LoadOptions::default(),
        obs,
    )?)
}

fn policy() -> Policy {
    Policy {
        default: SuitePolicy {
            margin: Some(MARGIN),
            ..SuitePolicy::default()
        },
        ..Policy::default()
    }
}

/// Run the demo.
pub fn run_demo(cfg: &DemoConfig, obs: &mut dyn DemoObserver) -> Result<DemoReport, OrganismError> {
    let t0 = Instant::now();
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e: std::io::Error| OrganismError::Io(format!("{}: {e}", p.display()))
    };
    let suites_dir = cfg.organism.join("suites");
    let mut suites = Vec::new();
    for name in SKILLS.iter().chain(["convert"].iter()) {
        let dir = suites_dir.join(name);
        suites.push(NamedSuite {
            source: dir.display().to_string(),
            suite: Suite::load(&dir)?,
        });
    }
    let settings = settings(cfg.quick);
    let vs = variants(&cfg.organism, cfg.quick);
    let total = vs.len();
    obs.stage(&format!(
        "scoring the base organism on {} suites",
        suites.len()
    ));
    if cfg.work.exists() {
        std::fs::remove_dir_all(&cfg.work).map_err(io(&cfg.work))?;
    }
    std::fs::create_dir_all(&cfg.work).map_err(io(&cfg.work))?;
    // the base's results and the EWC Fisher are cached in the work folder, where the
    // capability watch finds the base's results again
    let cache = Cache {
        dir: cfg.work.join(".cache"),
    };
    let base = evaluate(&cfg.organism, &suites, &settings, Some(&cache), obs)?;
    let heldout = cfg.work.join("convert-heldout.jsonl");
    let new_task = &suites
        .last()
        .expect("the new task's suite is loaded last")
        .suite;
    write_heldout(new_task, &heldout)?;
    let policy_path = cfg.work.join("gate.toml");
    let policy_text = toml::to_string(&policy()).expect("a policy serialises");
    std::fs::write(&policy_path, policy_text).map_err(io(&policy_path))?;
    let vs: Vec<Variant> = vs
        .into_iter()
        .map(|mut v| {
            v.config.cache_dir = cache.dir.clone();
            if v.config.eval.is_none() {
                v.config.eval = Some(heldout_eval(&heldout));
            }
            if let Some(w) = v.config.watch.as_mut() {
                w.policy = Some(policy_path.clone());
                w.limit = settings.limit;
                w.batch_size = settings.batch_size;
            }
            v
        })
        .collect();
    let boot = BootstrapConfig {
        resamples: if cfg.quick { 2_000 } else { 10_000 },
        seed: 0,
        ..BootstrapConfig::default()
    };
    let mut outcomes: Vec<Outcome> = Vec::new();
    for (i, v) in vs.into_iter().enumerate() {
        let label = v.label();
        obs.stage(&format!("[{}/{total}] fine-tuning: {label}", i + 1));
        let run_dir = cfg.work.join(label.replace(' ', "-"));
        let t = Instant::now();
        let summary = crate::train::train(v.config.clone(), &run_dir, false, obs)?;
        let train_seconds = t.elapsed().as_secs_f64();
        // early stopping and the capability watch choose a checkpoint; the others end at
        // their last step (their held-out loss is only recorded)
        let chooses =
            v.config.watch.is_some() || v.config.eval.as_ref().is_some_and(|e| e.patience > 0);
        let (ft_dir, scored) = match (&summary.best_dir, chooses) {
            (Some(b), true) => (b.clone(), "best"),
            _ => (summary.final_dir.clone(), "final"),
        };
        obs.stage(&format!("[{}/{total}] scoring: {label}", i + 1));
        let ft = evaluate(&ft_dir, &suites, &settings, None, obs)?;
        let outcome = crate::gate::gate(&base, &ft, &policy(), &boot)?;
        let (mut c, verdicts) = (outcome.comparison, outcome.verdicts);
        c.base_model = "organism".into();
        c.finetuned_model = label.clone();
        let failed_suites: Vec<String> = verdicts
            .iter()
            .filter(|v| v.fails && v.suite != NEW_TASK)
            .map(|v| v.suite.clone())
            .collect();
        let t = tradeoff(&c, NEW_TASK)?;
        let log_path = run_dir.join("log.jsonl");
        let log = report::read_loss_log(&log_path)?;
        let watches = if v.config.watch.is_some() {
            crate::train::watch::read_watch_log(&log_path)?
        } else {
            Vec::new()
        };
        let reading = reading(&log.eval, &failed_suites);
        outcomes.push(Outcome {
            label,
            variant: v,
            steps: summary.steps,
            train_seconds,
            comparison: c,
            verdicts,
            tradeoff: t,
            failed_suites,
            loss: log.train,
            heldout_loss: log.eval,
            scored: scored.into(),
            watches,
            reading,
        });
    }
    let conclusions = conclude(&outcomes);
    let base_rows = base
        .suites
        .iter()
        .map(|s| (s.suite.clone(), s.mean, s.n))
        .collect();
    let mut rep = DemoReport {
        organism: base.model.clone(),
        quick: cfg.quick,
        base: base_rows,
        outcomes,
        conclusions,
        seconds: t0.elapsed().as_secs_f64(),
        markdown: String::new(),
    };
    rep.markdown = markdown(&rep);
    render::write_report(&rep, &cfg.report_dir)?;
    Ok(rep)
}

/// The held-out loss rose by more than this share above its best: the run overfit its task.
pub const OVERFIT_RISE: f64 = 0.1;

/// Overfitting told apart from forgetting: `overfit` when the new task's held-out loss ended
/// more than [`OVERFIT_RISE`] above its best, `forgot` when the gate fails a skill.
pub fn reading(heldout: &[(f64, f64)], failed_skills: &[String]) -> String {
    let best = heldout.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let overfit = heldout
        .last()
        .is_some_and(|&(_, last)| last > best * (1.0 + OVERFIT_RISE));
    match (overfit, !failed_skills.is_empty()) {
        (true, true) => "overfit and forgot",
        (true, false) => "overfit",
        (false, true) => "forgot",
        (false, false) => "neither",
    }
    .into()
}

/// The new task's suite items as prompt/completion records (the organism's `Q: …\nA:`
/// format), to measure the held-out loss during training.
fn write_heldout(suite: &Suite, out: &Path) -> Result<(), OrganismError> {
    let mut text = String::new();
    for it in &suite.items {
        let target = it.target.as_deref().unwrap_or_default();
        text.push_str(
            &serde_json::json!({
                "prompt": format!("Q: {}\nA:", it.input),
                "completion": format!(" {target}"),
            })
            .to_string(),
        );
        text.push('\n');
    }
    std::fs::write(out, text).map_err(|e| OrganismError::Io(format!("{}: {e}", out.display())))
}

fn heldout_eval(path: &Path) -> EvalConfig {
    EvalConfig {
        path: Some(path.to_path_buf()),
        split: 0.0,
        every: 10,
        patience: 0,
        min_delta: 0.0,
        probe: None,
        max_kl: None,
    }
}

/// Pick each mitigation's strength and test it against the bar.
pub fn conclude(outcomes: &[Outcome]) -> Vec<Conclusion> {
    let Some(naive) = outcomes.iter().find(|o| o.variant.family == "naive") else {
        return Vec::new();
    };
    let (g0, f0) = (naive.tradeoff.gain, naive.tradeoff.forgetting);
    let mut families: Vec<&str> = Vec::new();
    for o in outcomes {
        if o.variant.family != "naive" && !families.contains(&o.variant.family) {
            families.push(o.variant.family);
        }
    }
    families
        .into_iter()
        .map(|fam| {
            let tried: Vec<&Outcome> = outcomes
                .iter()
                .filter(|o| o.variant.family == fam)
                .collect();
            let keeps = |o: &&&Outcome| g0 > 0.0 && o.tradeoff.gain >= GAIN_KEPT * g0;
            let by_forgetting = |a: &&&Outcome, b: &&&Outcome| {
                a.tradeoff.forgetting.total_cmp(&b.tradeoff.forgetting)
            };
            let chosen = tried
                .iter()
                .filter(keeps)
                .min_by(by_forgetting)
                .or_else(|| {
                    tried
                        .iter()
                        .max_by(|a, b| a.tradeoff.gain.total_cmp(&b.tradeoff.gain))
                })
                .expect("a family has at least one run");
            let gain_kept = if g0 > 0.0 {
                chosen.tradeoff.gain / g0
            } else {
                f64::NAN
            };
            let drop_left = if f0 > 0.0 {
                chosen.tradeoff.forgetting / f0
            } else {
                f64::NAN
            };
            Conclusion {
                family: fam.to_string(),
                chosen: chosen.label.clone(),
                gain_kept,
                drop_left,
                meets_bar: gain_kept >= GAIN_KEPT && drop_left <= DROP_LEFT,
                passes_gate: chosen.failed_suites.is_empty(),
            }
        })
        .collect()
}

//! `sft-eval demo`: fine-tune the organism on its new task naively and with each mitigation,
//! compare every fine-tune with the base through the normal compare and gate code, and write
//! a report of new-task gain against forgetting.
//!
//! Each mitigation is tried at a few strengths (a small sweep); the report picks, per
//! mitigation, the strength with the least forgetting among those that keep at least
//! [`GAIN_KEPT`] of the naive run's gain, and says plainly whether it cut the naive run's mean
//! drop by at least half.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use tabled::{builder::Builder, settings::Style};

use super::OrganismError;
use crate::gate::compare::Comparison;
use crate::gate::policy::{Policy, SuitePolicy, SuiteVerdict};
use crate::gate::tradeoff::{tradeoff, Tradeoff};
use crate::model::params::FreezeSpec;
use crate::model::LoadOptions;
use crate::report::{self, GainPoint, LossSeries};
use crate::stats::BootstrapConfig;
use crate::suite::evaluate::{evaluate_checkpoint, EvalObserver, NamedSuite};
use crate::suite::results::{EvalResults, ModelRef};
use crate::suite::runner::{EvalSettings, OverContext};
use crate::suite::spec::Suite;
use crate::train::config::{KlConfig, KlOn, LoraConfig, ReplayConfig, TrainConfig};
use crate::train::observer::TrainObserver;
use crate::train::schedule::Schedule;

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

/// The naive recipe: what a user would try first on this task.
pub fn naive_config(organism: &Path) -> TrainConfig {
    TrainConfig {
        model: organism.to_path_buf(),
        data: organism.join("data/convert.jsonl"),
        max_length: 64,
        batch_size: 16,
        lr: 1e-3,
        max_steps: Some(60),
        schedule: Schedule::Constant,
        warmup_steps: 0,
        seed: 0,
        checkpoint_every: 0,
        keep_checkpoints: 0,
        ..TrainConfig::default()
    }
}

/// The demo's fine-tunes: naive first, then each mitigation at its sweep of strengths.
pub fn variants(organism: &Path, quick: bool) -> Vec<Variant> {
    let naive = naive_config(organism);
    let replay_path = organism.join("data/replay.jsonl");
    let mut out = vec![Variant {
        family: "naive",
        knob: "",
        strength: None,
        config: naive.clone(),
    }];
    let (replays, l2s, kls): (&[f64], &[f64], &[f64]) = if quick {
        (&[0.5], &[1.0], &[3.0])
    } else {
        (&[0.25, 0.5], &[0.3, 1.0, 3.0], &[1.0, 3.0, 10.0])
    };
    for &r in replays {
        let mut c = naive.clone();
        // replay is mixed in on top: as many new-task rows per step as the naive run
        c.batch_size = (naive.batch_size as f64 / (1.0 - r)).round() as usize;
        c.replay = Some(ReplayConfig {
            path: replay_path.clone(),
            ratio: r,
            by_tokens: false,
        });
        out.push(Variant {
            family: "replay",
            knob: "share of each batch from replay data, added on top of 16 new-task rows",
            strength: Some(r),
            config: c,
        });
    }
    for &l in l2s {
        let mut c = naive.clone();
        c.l2sp = l;
        out.push(Variant {
            family: "l2sp",
            knob: "λ",
            strength: Some(l),
            config: c,
        });
    }
    for &b in kls {
        let mut c = naive.clone();
        c.kl = Some(KlConfig {
            beta: b,
            on: KlOn::Response,
            direction: Default::default(),
            data: Some(replay_path.clone()),
            data_rows: Some(32),
        });
        out.push(Variant {
            family: "kl",
            knob: "β (KL to base on the answers of 32 replay rows per step)",
            strength: Some(b),
            config: c,
        });
    }
    if !quick {
        let mut c = naive.clone();
        c.freeze = FreezeSpec {
            embeddings: true,
            first_layers: 2,
            patterns: Vec::new(),
        };
        out.push(Variant {
            family: "freeze",
            knob: "embeddings and lower half frozen",
            strength: None,
            config: c,
        });
        let mut c = naive.clone();
        c.lora = Some(LoraConfig {
            r: 8,
            alpha: 16.0,
            targets: [
                "q_proj",
                "k_proj",
                "v_proj",
                "o_proj",
                "gate_proj",
                "up_proj",
                "down_proj",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            save: Default::default(),
            init: None,
        });
        c.lr = 3e-3;
        out.push(Variant {
            family: "lora",
            knob: "r = 8 on every projection, LR 3e-3",
            strength: None,
            config: c,
        });
        let mut c = naive.clone();
        c.lr = naive.lr / 3.0;
        c.eval = Some(crate::train::config::EvalConfig {
            path: None,
            split: 0.1,
            every: 10,
            patience: 2,
            min_delta: 1e-3,
            probe: None,
            max_kl: None,
        });
        out.push(Variant {
            family: "gentle",
            knob: "LR ÷ 3, early stopping on held-out task loss",
            strength: None,
            config: c,
        });
    }
    out
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
}

/// Per mitigation: the chosen strength and whether it met the bar.
#[derive(Debug, Clone, Serialize)]
pub struct Conclusion {
    pub family: String,
    pub chosen: String,
    pub gain_kept: f64,
    pub drop_left: f64,
    pub meets_bar: bool,
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
    obs: &mut dyn DemoObserver,
) -> Result<EvalResults, OrganismError> {
    Ok(evaluate_checkpoint(
        dir,
        suites,
        settings,
        None,
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
    let base = evaluate(&cfg.organism, &suites, &settings, obs)?;
    if cfg.work.exists() {
        std::fs::remove_dir_all(&cfg.work).map_err(io(&cfg.work))?;
    }
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
        let ft_dir = summary
            .best_dir
            .clone()
            .unwrap_or(summary.final_dir.clone());
        obs.stage(&format!("[{}/{total}] scoring: {label}", i + 1));
        let ft = evaluate(&ft_dir, &suites, &settings, obs)?;
        let outcome = crate::gate::gate(&base, &ft, &policy(), &boot)?;
        let (mut c, verdicts) = (outcome.comparison, outcome.verdicts);
        c.base_model = "organism".into();
        c.finetuned_model = label.clone();
        let failed_suites = verdicts
            .iter()
            .filter(|v| v.fails && v.suite != NEW_TASK)
            .map(|v| v.suite.clone())
            .collect();
        let t = tradeoff(&c, NEW_TASK)?;
        let loss = report::read_loss_log(&run_dir.join("log.jsonl"))
            .map(|l| l.train)
            .unwrap_or_default();
        outcomes.push(Outcome {
            label,
            variant: v,
            steps: summary.steps,
            train_seconds,
            comparison: c,
            verdicts,
            tradeoff: t,
            failed_suites,
            loss,
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
    write_report(&rep, &cfg.report_dir)?;
    Ok(rep)
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
            }
        })
        .collect()
}

fn pts(x: f64) -> String {
    format!("{:+.1}", 100.0 * x)
}

/// The report's markdown.
pub fn markdown(r: &DemoReport) -> String {
    let mut md =
        String::from("# sft-eval demo: forgetting and its cures on the model organism\n\n");
    let naive = r.outcomes.iter().find(|o| o.variant.family == "naive");
    md.push_str(&format!(
        "The organism (`{}`, fingerprint `{}`) was fine-tuned on a task it had never seen — unit \
conversion answered as `=> 7000 m` — naively and with each mitigation. Every fine-tune is \
compared with the base on the same items (95% score intervals that keep their width when little \
changed); the gate fails a suite whose \
drop is not shown to be within {:.0} points. Gain is the Δ on `{NEW_TASK}`; forgetting is the \
mean drop over the four skills.{}\n\n",
        r.organism.path,
        &r.organism.fingerprint[..12.min(r.organism.fingerprint.len())],
        100.0 * MARGIN,
        if r.quick {
            " **Quick run**: 80 items per suite and one strength per mitigation."
        } else {
            ""
        }
    ));
    md.push_str("## Base organism\n\n");
    let mut b = Builder::default();
    b.push_record(["suite", "score", "items"]);
    for (s, m, n) in &r.base {
        b.push_record([s.clone(), format!("{:.1}", 100.0 * m), n.to_string()]);
    }
    md.push_str(&b.build().with(Style::markdown()).to_string());
    md.push_str("\n\n## Fine-tunes\n\nΔ in points (fine-tune − base); `*` marks a suite whose 95% CI excludes 0; `✗` a suite the gate fails.\n\n");
    let mut b = Builder::default();
    let mut head = vec!["fine-tune".to_string(), "new task".to_string()];
    head.extend(SKILLS.iter().map(|s| format!("{s} Δ")));
    head.extend(
        [
            "mean drop [95% CI]",
            "gain kept",
            "drop left",
            "gate",
            "steps",
            "train s",
        ]
        .map(String::from),
    );
    b.push_record(head);
    for o in &r.outcomes {
        let t = &o.tradeoff;
        let mut row = vec![
            o.label.clone(),
            format!(
                "{:.1} ({})",
                100.0 * (base_of(r, NEW_TASK) + t.gain),
                pts(t.gain)
            ),
        ];
        for s in SKILLS {
            let name = format!("organism-{s}");
            row.push(o.comparison.suites.iter().find(|x| x.suite == name).map_or(
                "–".into(),
                |x| {
                    let sig = x.ci.upper < 0.0 || x.ci.lower > 0.0;
                    let fails = o.failed_suites.contains(&name);
                    format!(
                        "{}{}{}",
                        pts(x.delta),
                        if sig { "*" } else { "" },
                        if fails { " ✗" } else { "" }
                    )
                },
            ));
        }
        let (gk, dl) = match naive {
            Some(n) if n.tradeoff.gain > 0.0 && n.tradeoff.forgetting > 0.0 => (
                format!("{:.0}%", 100.0 * t.gain / n.tradeoff.gain),
                format!("{:.0}%", 100.0 * t.forgetting / n.tradeoff.forgetting),
            ),
            _ => ("–".into(), "–".into()),
        };
        row.push(format!(
            "{:.1} [{:.1}, {:.1}]",
            100.0 * t.forgetting,
            100.0 * t.forgetting_ci.lower,
            100.0 * t.forgetting_ci.upper
        ));
        row.push(gk);
        row.push(dl);
        row.push(if o.failed_suites.is_empty() {
            "pass".into()
        } else {
            format!("fail ({})", o.failed_suites.len())
        });
        row.push(o.steps.to_string());
        row.push(format!("{:.0}", o.train_seconds));
        b.push_record(row);
    }
    md.push_str(&b.build().with(Style::markdown()).to_string());
    md.push_str("\n\n## Verdicts\n\n");
    if let Some(n) = naive {
        md.push_str(&format!(
            "- **naive**: new-task gain {} points; mean drop {:.1} points; the gate fails on {} of 4 skills{}.\n",
            pts(n.tradeoff.gain),
            100.0 * n.tradeoff.forgetting,
            n.failed_suites.len(),
            if n.failed_suites.is_empty() {
                String::new()
            } else {
                format!(" ({})", n.failed_suites.join(", "))
            }
        ));
    }
    for c in &r.conclusions {
        md.push_str(&format!(
            "- **{}** (best of its sweep: {}): keeps {:.0}% of the naive gain (bar: ≥ {:.0}%), leaves {:.0}% of the naive drop (bar: ≤ {:.0}%) — **{}**.\n",
            c.family,
            c.chosen,
            100.0 * c.gain_kept,
            100.0 * GAIN_KEPT,
            100.0 * c.drop_left,
            100.0 * DROP_LEFT,
            if c.meets_bar { "meets the bar" } else { "does not meet the bar" }
        ));
    }
    md.push_str("\n## Charts\n\n![new-task gain vs forgetting](gain_vs_forgetting.svg)\n\n![naive fine-tune: Δ per suite](delta_naive.svg)\n\n![training loss](loss.svg)\n");
    md.push_str(&format!(
        "\n## Reproduce\n\n`sft-eval demo{}` ({:.0} s on this machine). Fine-tunes: `{}` with \
batch 16, LR 1e-3 (LoRA 3e-3), 60 steps, seed 0; runs under `runs/demo/`. Suites, data and the \
recipe that made the organism are in `models/organism/`.\n",
        if r.quick { " --quick" } else { "" },
        r.seconds,
        naive.map_or(String::new(), |n| n
            .variant
            .config
            .data
            .display()
            .to_string()),
    ));
    md
}

fn base_of(r: &DemoReport, suite: &str) -> f64 {
    r.base
        .iter()
        .find(|(s, _, _)| s == suite)
        .map_or(0.0, |(_, m, _)| *m)
}

fn write_report(r: &DemoReport, dir: &Path) -> Result<(), OrganismError> {
    let points: Vec<GainPoint> = r
        .outcomes
        .iter()
        .map(|o| GainPoint {
            label: o.label.clone(),
            forgetting: 100.0 * o.tradeoff.forgetting,
            forgetting_lower: Some(100.0 * o.tradeoff.forgetting_ci.lower),
            forgetting_upper: Some(100.0 * o.tradeoff.forgetting_ci.upper),
            gain: 100.0 * o.tradeoff.gain,
        })
        .collect();
    let gain_svg = report::gain_vs_forgetting_svg(&points);
    let delta_svg = r
        .outcomes
        .iter()
        .find(|o| o.variant.family == "naive")
        .map(|o| {
            report::delta_ci_svg_with(
                &crate::gate::report::delta_rows(&o.comparison, Some(&o.verdicts), None),
                &report::DeltaChartOptions {
                    title: "naive fine-tune: Δ per suite (points, 95% CI)".into(),
                    confidence: 0.95,
                    margin: Some(100.0 * MARGIN),
                },
            )
        })
        .unwrap_or_default();
    let series: Vec<LossSeries> = r
        .outcomes
        .iter()
        .map(|o| LossSeries {
            label: o.label.clone(),
            points: o.loss.clone(),
        })
        .collect();
    let loss_svg = report::loss_curves_svg(&series);
    let json = serde_json::to_string_pretty(r).expect("report serialises") + "\n";
    report::write_report_files(
        dir,
        &[
            ("report.md", r.markdown.as_str()),
            ("report.json", json.as_str()),
            ("gain_vs_forgetting.svg", gain_svg.as_str()),
            ("delta_naive.svg", delta_svg.as_str()),
            ("loss.svg", loss_svg.as_str()),
        ],
    )?;
    Ok(())
}

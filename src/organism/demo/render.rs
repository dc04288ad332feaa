//! The demo's report: markdown tables and verdicts, charts, and the files written.

use std::path::Path;

use tabled::{builder::Builder, settings::Style};

use super::{DemoReport, OrganismError, DROP_LEFT, GAIN_KEPT, MARGIN, NEW_TASK, SKILLS};
use crate::report::{self, GainPoint, LossSeries};

fn pts(x: f64) -> String {
    format!("{:+.1}", 100.0 * x)
}

/// A share in percent, without a sign on a rounded zero (`-0%`).
fn pct(x: f64) -> String {
    let v = (100.0 * x).round();
    format!("{:.0}%", if v == 0.0 { 0.0 } else { v })
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
            " **Quick run**: 80 items per suite, one strength per mitigation, one combined recipe."
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
            "reading",
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
                pct(t.gain / n.tradeoff.gain),
                pct(t.forgetting / n.tradeoff.forgetting),
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
        row.push(o.reading.clone());
        row.push(if o.scored == "best" {
            format!(
                "{} (best/ at {})",
                o.steps,
                best_step(o).map_or("?".into(), |s| s.to_string())
            )
        } else {
            o.steps.to_string()
        });
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
        let swept = r
            .outcomes
            .iter()
            .filter(|o| o.variant.family == c.family)
            .count()
            > 1;
        md.push_str(&format!(
            "- **{}**{}: keeps {} of the naive gain (bar: ≥ {:.0}%), leaves {} of the naive drop (bar: ≤ {:.0}%) — **{}**{}.\n",
            c.family,
            if swept {
                format!(" (best of its sweep: {})", c.chosen)
            } else {
                String::new()
            },
            pct(c.gain_kept),
            100.0 * GAIN_KEPT,
            pct(c.drop_left),
            100.0 * DROP_LEFT,
            if c.meets_bar { "meets the bar" } else { "does not meet the bar" },
            if c.passes_gate { "; passes the gate on all four skills" } else { "" }
        ));
    }
    md.push_str(&goal(r));
    md.push_str(&overfitting(r));
    md.push_str(&watch_section(r));
    md.push_str("\n## Charts\n\n![new-task gain vs forgetting](gain_vs_forgetting.svg)\n\n![naive fine-tune: Δ per suite](delta_naive.svg)\n\n![training loss](loss.svg)\n\n![new task: held-out loss](heldout_loss.svg)\n");
    md.push_str(&format!(
        "\n## Reproduce\n\n`sft-eval demo{}` ({:.0} s on this machine). Fine-tunes: `{}` with \
batch 16, LR 1e-3 (LoRA 3e-3), 60 steps, seed 0; the combined recipes and the watched run: 16 \
new-task rows plus 16 replay rows per step, cosine LR from 1e-3, 150 steps. Every run records \
its held-out new-task loss every 10 steps. Runs under `runs/demo/` (the base's results and the \
EWC Fisher cached in `runs/demo/.cache`). Suites, data and the recipe that made the organism are \
in `models/organism/`.\n",
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

/// The step `best/` was taken at: the watch's choice, else the lowest held-out loss.
fn best_step(o: &super::Outcome) -> Option<usize> {
    if let Some(w) = o.watches.iter().rev().find(|w| w.best) {
        return Some(w.step);
    }
    o.heldout_loss
        .iter()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|p| p.0 as usize)
}

/// The goal: a fine-tune that keeps ≥ 80% of the naive gain and passes the gate on
/// all four skills.
fn goal(r: &DemoReport) -> String {
    let Some(naive) = r.outcomes.iter().find(|o| o.variant.family == "naive") else {
        return String::new();
    };
    let g0 = naive.tradeoff.gain;
    let mut md = format!(
        "\n## Learn the task and pass the gate\n\nThe goal: a fine-tune that keeps at least {:.0}% of the naive new-task gain ({} points) **and** passes the gate on all four skills (the same policy: the drop shown to be within {:.0} points).\n\n",
        100.0 * GAIN_KEPT,
        pts(g0),
        100.0 * MARGIN
    );
    let winners: Vec<&super::Outcome> = r
        .outcomes
        .iter()
        .filter(|o| g0 > 0.0 && o.tradeoff.gain >= GAIN_KEPT * g0 && o.failed_suites.is_empty())
        .collect();
    if winners.is_empty() {
        md.push_str("- **No fine-tune meets it.**\n");
    }
    for o in &winners {
        md.push_str(&format!(
            "- **{}** ({}): new task {} points ({:.0}% of the naive gain); passes the gate on all four skills; mean drop {:.1} points.\n",
            o.label,
            o.variant.knob,
            pts(o.tradeoff.gain),
            100.0 * o.tradeoff.gain / g0,
            100.0 * o.tradeoff.forgetting
        ));
    }
    let near: Vec<String> = r
        .outcomes
        .iter()
        .filter(|o| o.failed_suites.is_empty() && !winners.iter().any(|w| w.label == o.label))
        .map(|o| {
            format!(
                "{} (keeps {:.0}% of the gain)",
                o.label,
                100.0 * o.tradeoff.gain / g0.max(1e-9)
            )
        })
        .collect();
    if !near.is_empty() {
        md.push_str(&format!(
            "- Pass the gate but learn too little: {}.\n",
            near.join(", ")
        ));
    }
    md
}

/// Overfitting told apart from forgetting, per fine-tune.
fn overfitting(r: &DemoReport) -> String {
    let mut md = format!(
        "\n## Overfitting or forgetting?\n\nThe new task's held-out loss (mean token NLL on the {} `{NEW_TASK}` items, every 10 steps; `gentle`: its 10% held-out split) beside the training loss and the skills the gate fails. A run **overfit** when its held-out loss ended more than {:.0}% above its best; it **forgot** when the gate fails a skill.\n\n",
        r.base.iter().find(|b| b.0 == NEW_TASK).map_or(0, |b| b.2),
        100.0 * super::OVERFIT_RISE
    );
    let mut b = Builder::default();
    b.push_record([
        "fine-tune",
        "train loss first → last",
        "held-out loss best (step) → last",
        "new task",
        "skills failed",
        "reading",
    ]);
    for o in &r.outcomes {
        let train = match (o.loss.first(), o.loss.last()) {
            (Some(a), Some(z)) => format!("{:.3} → {:.3}", a.1, z.1),
            _ => "–".into(),
        };
        let held = match (
            o.heldout_loss.iter().min_by(|a, b| a.1.total_cmp(&b.1)),
            o.heldout_loss.last(),
        ) {
            (Some(best), Some(last)) => format!("{:.3} ({}) → {:.3}", best.1, best.0, last.1),
            _ => "–".into(),
        };
        b.push_record([
            o.label.clone(),
            train,
            held,
            format!("{:.1}", 100.0 * (base_of(r, NEW_TASK) + o.tradeoff.gain)),
            o.failed_suites.len().to_string(),
            o.reading.clone(),
        ]);
    }
    md.push_str(&b.build().with(Style::markdown()).to_string());
    md.push('\n');
    md
}

/// The capability watch of each watched run: every watch's Δ per suite and its cost.
fn watch_section(r: &DemoReport) -> String {
    let mut md = String::new();
    for o in r.outcomes.iter().filter(|o| !o.watches.is_empty()) {
        let secs: f64 = o.watches.iter().map(|w| w.seconds).sum();
        md.push_str(&format!(
            "\n## Capability watch: {}\n\n`train --watch {} --new-task convert --watch-every {} --policy gate.toml`: every watch scores the suites on the weights being trained, pairs them with the base's cached results, and judges them with the gate's code; `best/` is the passing watch with the best new-task score. {} watches took {:.1} s, {:.0}% of the run's {:.1} s (training steps, held-out loss and watches).\n\n",
            o.label,
            o.variant.config.watch.as_ref().map_or(String::new(), |w| w.suites.join(",")),
            o.variant.config.watch.as_ref().map_or(0, |w| w.every),
            o.watches.len(),
            secs,
            100.0 * secs / (o.train_seconds - secs).max(1e-9),
            o.train_seconds
        ));
        let mut b = Builder::default();
        let mut head = vec!["step".to_string()];
        head.extend(
            o.watches[0]
                .suites
                .iter()
                .map(|s| format!("{} Δ", s.suite.trim_start_matches("organism-"))),
        );
        head.extend(["verdict", "best/", "s"].map(String::from));
        b.push_record(head);
        for w in &o.watches {
            let mut row = vec![w.step.to_string()];
            row.extend(
                w.suites
                    .iter()
                    .map(|s| format!("{}{}", pts(s.delta), if s.fails { " ✗" } else { "" })),
            );
            row.push(if w.passed {
                "pass".into()
            } else {
                "fail".into()
            });
            row.push(if w.best { "←".into() } else { String::new() });
            row.push(format!("{:.1}", w.seconds));
            b.push_record(row);
        }
        md.push_str(&b.build().with(Style::markdown()).to_string());
        md.push('\n');
    }
    md
}

fn base_of(r: &DemoReport, suite: &str) -> f64 {
    r.base
        .iter()
        .find(|(s, _, _)| s == suite)
        .map_or(0.0, |(_, m, _)| *m)
}

pub(super) fn write_report(r: &DemoReport, dir: &Path) -> Result<(), OrganismError> {
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
    let heldout: Vec<LossSeries> = r
        .outcomes
        .iter()
        .map(|o| LossSeries {
            label: o.label.clone(),
            points: o.heldout_loss.clone(),
        })
        .collect();
    let heldout_svg = report::loss_curves_svg(&heldout);
    let json = serde_json::to_string_pretty(r).expect("report serialises") + "\n";
    report::write_report_files(
        dir,
        &[
            ("report.md", r.markdown.as_str()),
            ("report.json", json.as_str()),
            ("gain_vs_forgetting.svg", gain_svg.as_str()),
            ("delta_naive.svg", delta_svg.as_str()),
            ("loss.svg", loss_svg.as_str()),
            ("heldout_loss.svg", heldout_svg.as_str()),
        ],
    )?;
    Ok(())
}

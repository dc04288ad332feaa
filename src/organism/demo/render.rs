//! The demo's report: markdown tables and verdicts, charts, and the files written.

use std::path::Path;

use tabled::{builder::Builder, settings::Style};

use super::{DemoReport, OrganismError, DROP_LEFT, GAIN_KEPT, MARGIN, NEW_TASK, SKILLS};
use crate::report::{self, GainPoint, LossSeries};

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

//! Markdown for a comparison and its verdicts (tables via tabled).

use tabled::{builder::Builder, settings::Style};

use super::compare::{Comparison, SuiteComparison};
use super::policy::SuiteVerdict;
use crate::report::percent;
use crate::suite::scorer::{Direction, Unit};

/// Signed points with one decimal; `+0.0` rather than `-0.0`.
fn pts(x: f64) -> String {
    signed(Unit::Proportion, x)
}

/// A value in a unit's display form (points with one decimal; nats with three).
pub fn value(unit: Unit, x: f64) -> String {
    format!("{:.*}", unit.decimals(), unit.display(x))
}

/// A signed difference in a unit's display form, never `-0.0`.
pub fn signed(unit: Unit, x: f64) -> String {
    let v = unit.display(x);
    let d = unit.decimals();
    if v.abs() < 0.5 * 10f64.powi(-(d as i32)) {
        format!("+{:.*}", d, 0.0)
    } else {
        format!("{v:+.d$}")
    }
}

/// The metric with its unit and, for lower-is-better metrics, the direction.
fn metric_label(s: &SuiteComparison) -> String {
    match s.direction {
        Direction::HigherIsBetter => format!("{} ({})", s.metric, s.unit.label()),
        Direction::LowerIsBetter => {
            format!("{} ({}, lower is better)", s.metric, s.unit.label())
        }
    }
}

pub fn markdown(c: &Comparison, verdicts: Option<&[SuiteVerdict]>) -> String {
    let ci = format!("{}% CI of Δ", percent(c.confidence));
    let mut b = Builder::default();
    let mut head = vec![
        "suite",
        "metric",
        "n",
        "base",
        "fine-tuned",
        "Δ",
        ci.as_str(),
        "p (Holm)",
        "McNemar p",
        "MDE",
        "format failures",
    ];
    if verdicts.is_some() {
        head.push("verdict");
    }
    b.push_record(head.iter().map(|s| s.to_string()));
    let verdict_of = |suite: &str| verdicts.and_then(|v| v.iter().find(|x| x.suite == suite));
    for s in &c.suites {
        let u = s.unit;
        let mde = verdict_of(&s.suite).map_or(s.mde, |v| v.mde);
        let mde = mde.map_or("none".into(), |m| value(u, m));
        let mut row = vec![
            s.suite.clone(),
            metric_label(s),
            s.n.to_string(),
            value(u, s.base),
            value(u, s.finetuned),
            signed(u, s.delta),
            format!("[{}, {}]", signed(u, s.ci.lower), signed(u, s.ci.upper)),
            format!("{:.3}", s.p_holm),
            s.mcnemar_p.map_or("–".into(), |p| format!("{p:.3}")),
            mde,
            format!("{} → {}", s.format_failures_base, s.format_failures_ft),
        ];
        if verdicts.is_some() {
            row.push(verdict_of(&s.suite).map_or("–".into(), |x| {
                format!("{}{:?}", if x.fails { "❌ " } else { "✅ " }, x.verdict)
            }));
        }
        b.push_record(row);
    }
    let mut t = b.build();
    t.with(Style::markdown());
    let methods: Vec<&str> = {
        let mut m: Vec<&str> = c.suites.iter().map(|s| s.interval.label()).collect();
        m.dedup();
        m.sort();
        m.dedup();
        m
    };
    let macro_line = match (c.macro_delta, &c.worst_suite) {
        (Some(m), Some(w)) => format!(
            "Macro Δ {} pts over the suites in points; worst suite: {w}. ",
            pts(m)
        ),
        _ => String::new(),
    };
    let mde_line = if verdicts.is_some() {
        "MDE: the smallest true drop the gate fails with 80% power (none: no outcome of the items fails)"
    } else {
        "MDE: the smallest true drop shown as significant with 80% power (none: no outcome would be)"
    };
    let mut out = format!(
        "## sft-eval: {} vs {}\n\n{t}\n\nΔ is the change in the better direction: negative means worse (for a lower-is-better metric such as NLL, a rise), in points (pts) or the metric's unit. {macro_line}Intervals ({}% two-sided): {}. {mde_line}, assuming items vary as much as the base's scores (exact for independent binary items up to 2000).\n",
        c.finetuned_model,
        c.base_model,
        percent(c.confidence),
        methods.join("; "),
    );
    if let Some(v) = verdicts {
        out.push_str("\n### Verdicts\n\n");
        for x in v {
            let Some(s) = c.suites.iter().find(|s| s.suite == x.suite) else {
                continue;
            };
            let u = s.unit;
            let power = match x.mde {
                Some(m) => format!(
                    "these items fail a true drop of {} {} or more with 80% power",
                    value(u, m),
                    u.label()
                ),
                None => "no outcome of these items could fail the gate".into(),
            };
            out.push_str(&format!(
                "- **{}**: {:?} — {}; {power} (margin {} {})\n",
                x.suite,
                x.verdict,
                x.reason,
                value(u, x.limits.margin),
                u.label(),
            ));
        }
    }
    let flips: usize = c.suites.iter().map(|s| s.flipped.len()).sum();
    if flips > 0 {
        out.push_str(&format!("\n### Items the fine-tune lost ({flips})\n\n"));
        for s in &c.suites {
            for f in s.flipped.iter().take(20) {
                out.push_str(&format!("- `{}` / `{}`\n", s.suite, f.id));
            }
        }
    }
    out
}

/// Markdown for label-free drift.
pub fn drift_markdown(d: &super::drift::Drift) -> String {
    let mut out = String::from("\n### Label-free drift\n\nMean token KL(base ‖ fine-tune) on each suite's prompts (nats):\n\n");
    for (s, k) in &d.kl {
        out.push_str(&format!("- `{s}`: {k:.4}\n"));
    }
    if !d.weight_change.is_empty() {
        out.push_str("\nRelative weight change ‖ΔW‖/‖W‖ per block:\n\n");
        for (l, r) in &d.weight_change {
            out.push_str(&format!("- {l}: {r:.4}\n"));
        }
    }
    out
}

/// The head of a report on several fine-tunes of one base: one row per fine-tune (macro Δ and
/// worst suite). Each fine-tune's own [`markdown`] follows it.
pub fn several_markdown(base: &str, finetunes: &[(String, &Comparison)]) -> String {
    let mut b = Builder::default();
    b.push_record(
        [
            "fine-tune",
            "suites",
            "macro Δ (pts)",
            "worst suite (Δ pts)",
        ]
        .map(String::from),
    );
    for (name, c) in finetunes {
        let worst = c
            .worst_suite
            .as_deref()
            .and_then(|w| c.suites.iter().find(|s| s.suite == w))
            .map_or("–".into(), |s| format!("{} ({})", s.suite, pts(s.delta)));
        b.push_record([
            name.clone(),
            c.suites.len().to_string(),
            c.macro_delta.map_or("–".into(), pts),
            worst,
        ]);
    }
    let mut t = b.build();
    t.with(Style::markdown());
    format!(
        "# sft-eval: {} fine-tunes of {base}\n\n{t}\n",
        finetunes.len()
    )
}

/// New-task gain against forgetting, one row per fine-tune.
pub fn tradeoff_markdown(rows: &[(String, super::tradeoff::Tradeoff)], confidence: f64) -> String {
    let Some((_, first)) = rows.first() else {
        return String::new();
    };
    let ci = format!("{}% CI", percent(confidence));
    let mut b = Builder::default();
    b.push_record([
        "fine-tune".to_string(),
        "gain (pts)".into(),
        ci.clone(),
        "forgetting (pts)".into(),
        ci,
    ]);
    for (name, t) in rows {
        b.push_record([
            name.clone(),
            pts(t.gain),
            format!("[{}, {}]", pts(t.gain_ci.lower), pts(t.gain_ci.upper)),
            pts(t.forgetting),
            format!(
                "[{}, {}]",
                pts(t.forgetting_ci.lower),
                pts(t.forgetting_ci.upper)
            ),
        ]);
    }
    let mut t = b.build();
    t.with(Style::markdown());
    format!(
        "\n### New-task gain vs forgetting\n\nGain: Δ on `{}` (its decision interval). Forgetting: mean drop on {} (positive = forgot; normal CI from each suite's interval half-width).\n\n{t}\n",
        first.new_task,
        first
            .other_suites
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// `report.md`: `md` with a "Charts" section of `(alt text, file)` images, placed before the
/// first per-fine-tune section (`## ` heading after the start) or, failing that, before the first
/// `### ` section; at the end when there is neither.
pub fn insert_charts(md: &str, charts: &[(&str, &str)]) -> String {
    if charts.is_empty() {
        return md.to_string();
    }
    let images: Vec<String> = charts
        .iter()
        .map(|(alt, file)| format!("![{alt}]({file})"))
        .collect();
    // `md[at..]` starts with the newline that ends the line before a heading
    let section = format!("\n### Charts\n\n{}\n", images.join("\n\n"));
    let at = md
        .match_indices("\n## ")
        .map(|(i, _)| i)
        .find(|i| *i > 0)
        .or_else(|| md.find("\n### "));
    match at {
        Some(i) => format!("{}{section}{}", &md[..i], &md[i..]),
        None => format!("{md}{section}"),
    }
}

/// The rows of the Δ-with-CI chart, in points (suites in other units are left out: the chart
/// has one axis); `prefix` labels rows `prefix: suite` (for several fine-tunes in one chart);
/// verdicts colour them.
pub fn delta_rows(
    c: &Comparison,
    verdicts: Option<&[SuiteVerdict]>,
    prefix: Option<&str>,
) -> Vec<crate::report::DeltaRow> {
    c.suites
        .iter()
        .filter(|s| s.unit == Unit::Proportion)
        .map(|s| crate::report::DeltaRow {
            label: match prefix {
                Some(p) => format!("{p}: {}", s.suite),
                None => s.suite.clone(),
            },
            delta: 100.0 * s.delta,
            lower: 100.0 * s.ci.lower,
            upper: 100.0 * s.ci.upper,
            fails: verdicts.and_then(|v| v.iter().find(|x| x.suite == s.suite).map(|x| x.fails)),
        })
        .collect()
}

//! Markdown for a comparison and its verdicts (tables via tabled).

use tabled::{builder::Builder, settings::Style};

use super::compare::Comparison;
use super::policy::SuiteVerdict;

fn pct(x: f64) -> String {
    format!("{:.1}", 100.0 * x)
}

/// Signed points with one decimal; `+0.0` rather than `-0.0`.
fn pts(x: f64) -> String {
    let v = 100.0 * x;
    if v.abs() < 0.05 {
        "+0.0".into()
    } else {
        format!("{v:+.1}")
    }
}

pub fn markdown(c: &Comparison, verdicts: Option<&[SuiteVerdict]>) -> String {
    let mut b = Builder::default();
    let mut head = vec![
        "suite",
        "n",
        "base",
        "fine-tuned",
        "Δ (pts)",
        "95% CI",
        "p (Holm)",
        "McNemar p",
        "MDE",
        "format failures",
    ];
    if verdicts.is_some() {
        head.push("verdict");
    }
    b.push_record(head.iter().map(|s| s.to_string()));
    for s in &c.suites {
        let mut row = vec![
            s.suite.clone(),
            s.n.to_string(),
            pct(s.base),
            pct(s.finetuned),
            format!("{:+.1}", 100.0 * s.delta),
            format!("[{:+.1}, {:+.1}]", 100.0 * s.ci.lower, 100.0 * s.ci.upper),
            format!("{:.3}", s.p_holm),
            s.mcnemar_p.map_or("–".into(), |p| format!("{p:.3}")),
            pct(s.mde),
            format!("{} → {}", s.format_failures_base, s.format_failures_ft),
        ];
        if let Some(v) = verdicts {
            let sv = v.iter().find(|x| x.suite == s.suite);
            row.push(sv.map_or("–".into(), |x| {
                format!("{}{:?}", if x.fails { "❌ " } else { "✅ " }, x.verdict)
            }));
        }
        b.push_record(row);
    }
    let mut t = b.build();
    t.with(Style::markdown());
    let mut out = format!(
        "## sft-eval: {} vs {}\n\n{t}\n\nMacro Δ {:+.1} pts; worst suite: {}. CIs: paired bootstrap, {} resamples, seed {}; MDE at α = 0.05, power 0.8.\n",
        c.finetuned_model,
        c.base_model,
        100.0 * c.macro_delta,
        c.worst_suite.as_deref().unwrap_or("–"),
        c.resamples,
        c.seed
    );
    if let Some(v) = verdicts {
        out.push_str("\n### Verdicts\n\n");
        for x in v {
            let mde = c
                .suites
                .iter()
                .find(|s| s.suite == x.suite)
                .map_or(f64::NAN, |s| s.mde);
            out.push_str(&format!(
                "- **{}**: {:?} — {}; with these items a drop of {:.1} pts or more would be detected (80% power)\n",
                x.suite,
                x.verdict,
                x.reason,
                100.0 * mde
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
            pts(c.macro_delta),
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
    let ci = format!("{:.0}% CI", 100.0 * confidence);
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
        "\n### New-task gain vs forgetting\n\nGain: Δ on `{}` (paired bootstrap CI). Forgetting: mean drop on {} (positive = forgot; normal CI from the suites' paired standard errors).\n\n{t}\n",
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

/// The rows of the Δ-with-CI chart, in points; `prefix` labels rows `prefix: suite` (for several
/// fine-tunes in one chart); verdicts colour them.
pub fn delta_rows(
    c: &Comparison,
    verdicts: Option<&[SuiteVerdict]>,
    prefix: Option<&str>,
) -> Vec<crate::report::DeltaRow> {
    c.suites
        .iter()
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

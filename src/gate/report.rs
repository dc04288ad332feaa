//! Markdown for a comparison and its verdicts (tables via tabled).

use tabled::{builder::Builder, settings::Style};

use super::compare::Comparison;
use super::policy::SuiteVerdict;

fn pct(x: f64) -> String {
    format!("{:.1}", 100.0 * x)
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

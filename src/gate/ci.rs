//! What CI systems read besides the exit code: a JUnit XML report (one test case per suite) and
//! GitHub Actions workflow commands (`::error` / `::warning` annotations).

use super::policy::Inconclusive;
use super::GateOutcome;
use crate::stats::Verdict;

/// Escape text for an XML attribute or element.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 has no place for other control characters
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// JUnit XML for a gate: one `<testcase>` per suite; a suite that fails the gate has a
/// `<failure>` (type `regression`, or `inconclusive` when the policy fails inconclusive
/// suites); an inconclusive suite the policy lets pass is `<skipped>` with the reason.
pub fn junit(o: &GateOutcome) -> String {
    let cases: Vec<String> = o
        .verdicts
        .iter()
        .map(|v| {
            let body = match (v.verdict, v.fails, v.limits.inconclusive) {
                (_, false, _) if v.verdict != Verdict::Inconclusive => String::new(),
                (Verdict::Inconclusive, false, Inconclusive::Pass) => {
                    format!("<skipped message=\"{}\"/>", xml(&v.reason))
                }
                (Verdict::Inconclusive, _, _) => format!(
                    "<failure type=\"inconclusive\" message=\"{}\"/>",
                    xml(&v.reason)
                ),
                _ => format!(
                    "<failure type=\"regression\" message=\"{}\"/>",
                    xml(&v.reason)
                ),
            };
            format!(
                "    <testcase classname=\"sft-eval.gate\" name=\"{}\">{body}</testcase>\n",
                xml(&v.suite)
            )
        })
        .collect();
    let failures = o.verdicts.iter().filter(|v| v.fails).count();
    let skipped = o
        .verdicts
        .iter()
        .filter(|v| !v.fails && v.verdict == Verdict::Inconclusive)
        .count();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"sft-eval gate\" tests=\"{n}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\">\n  <testsuite name=\"{}\" tests=\"{n}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\">\n{}  </testsuite>\n</testsuites>\n",
        xml(&format!(
            "{} vs {}",
            o.comparison.finetuned_model, o.comparison.base_model
        )),
        cases.concat(),
        n = o.verdicts.len(),
    )
}

/// JUnit XML for a gate that could not judge (exit 2): one test case in error.
pub fn junit_error(message: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"sft-eval gate\" tests=\"1\" failures=\"0\" errors=\"1\" skipped=\"0\">\n  <testsuite name=\"sft-eval gate\" tests=\"1\" failures=\"0\" errors=\"1\" skipped=\"0\">\n    <testcase classname=\"sft-eval.gate\" name=\"gate\"><error type=\"error\" message=\"{}\"/></testcase>\n  </testsuite>\n</testsuites>\n",
        xml(message)
    )
}

/// Escape a workflow command's message (GitHub's `%`, `\r`, `\n` encoding).
fn command_text(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// GitHub Actions annotations: `::error` for each suite that fails the gate, `::warning` for
/// an inconclusive one the policy lets pass.
pub fn github_annotations(o: &GateOutcome) -> Vec<String> {
    o.verdicts
        .iter()
        .filter_map(|v| {
            let level = if v.fails {
                "error"
            } else if v.verdict == Verdict::Inconclusive {
                "warning"
            } else {
                return None;
            };
            Some(format!(
                "::{level} title=sft-eval gate: {}::{:?}: {}",
                command_text(&v.suite)
                    .replace(',', "%2C")
                    .replace(':', "%3A"),
                v.verdict,
                command_text(&v.reason)
            ))
        })
        .collect()
}

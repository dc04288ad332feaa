//! Rendering an [`AuditReport`]: markdown (tables) or JSON. Returns strings; never prints.

use tabled::{builder::Builder, settings::Style};

use super::lengths::{Lengths, Stats};
use super::text::count;
use super::AuditReport;

/// Pretty JSON with a trailing newline.
pub fn to_json(r: &AuditReport) -> String {
    let mut s = serde_json::to_string_pretty(r).expect("the audit report serialises");
    s.push('\n');
    s
}

fn pct(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

fn ratio(x: Option<f64>) -> String {
    x.map_or("–".into(), |v| format!("{v:.4}"))
}

/// Safe inside a markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

/// Data text as a code span inside a table cell, so that markdown and HTML in it (`<s>`,
/// `*`, the `<NUM>` of templates) show literally.
fn code(s: &str) -> String {
    if s.is_empty() {
        return "(empty)".into();
    }
    let longest = s.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = if longest > 0 { " " } else { "" };
    cell(&format!("{fence}{pad}{s}{pad}{fence}"))
}

/// `3, 7, 12 (+4 more)`.
fn lines(shown: &[usize], total: usize) -> String {
    let mut s = shown
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if total > shown.len() {
        s.push_str(&format!(" (+{} more)", total - shown.len()));
    }
    s
}

fn table<const N: usize>(header: [&str; N], rows: Vec<[String; N]>) -> String {
    let mut b = Builder::default();
    b.push_record(header.map(String::from));
    for r in rows {
        b.push_record(r);
    }
    let mut t = b.build();
    t.with(Style::markdown());
    format!("{t}\n")
}

/// The report as markdown: summary, limits, then one section per check with examples.
pub fn to_markdown(r: &AuditReport) -> String {
    let mut md = String::new();
    let mut out = |s: &str| {
        md.push_str(s);
        md.push('\n');
    };
    out(&format!("# Data audit: `{}`\n", r.file));
    let formats: Vec<String> = r.formats.iter().map(|(k, v)| format!("{k} {v}")).collect();
    out(&format!(
        "{} ({}).\n",
        count(r.records, "record"),
        formats.join(", ")
    ));
    if r.checks.is_empty() {
        out("No limits set: pass `--max-duplicate-rate`, `--max-conflicts`, … or `--limits FILE` to make this a CI check.\n");
    } else if r.passed {
        out(&format!("**PASS**: all {} limits hold.\n", r.checks.len()));
    } else {
        out(&format!(
            "**FAIL**: {} of {} limits violated.\n",
            r.violations.len(),
            r.checks.len()
        ));
        out("## Violations\n");
        for v in &r.violations {
            out(&format!("- `{}`: {}", v.limit, v.message));
        }
        out("");
    }

    out("## Summary\n");
    let d = &r.exact_duplicates;
    let n = &r.near_duplicates;
    let mut rows = vec![
        [
            "exact duplicates".to_string(),
            format!(
                "{} ({}) in {}",
                count(d.duplicate_records, "record"),
                pct(d.rate),
                count(d.groups, "group")
            ),
        ],
        [
            format!("near duplicates (Jaccard ≥ {})", n.threshold),
            format!(
                "{} ({}) in {}",
                count(n.removable, "record"),
                pct(n.rate),
                count(n.clusters, "cluster")
            ),
        ],
        [
            "repeated templates".to_string(),
            format!(
                "{} cover {} of {} prompts ({}); top {}",
                count(r.templates.repeated, "template"),
                r.templates.prompts_in_repeated,
                r.templates.prompts,
                pct(r.templates.repeated_share),
                pct(r.templates.top_share)
            ),
        ],
    ];
    for (name, dv) in [
        ("prompt", &r.diversity.prompt),
        ("response", &r.diversity.response),
    ] {
        if let Some(dv) = dv {
            rows.push([
                format!("{name} distinct-1 / distinct-2"),
                format!("{} / {}", ratio(dv.distinct_1), ratio(dv.distinct_2)),
            ]);
        }
    }
    rows.push([
        "conflicting prompts".to_string(),
        format!(
            "{} ({})",
            r.conflicts.prompts,
            count(r.conflicts.records, "record")
        ),
    ]);
    rows.push([
        "empty prompts / responses".to_string(),
        format!("{} / {}", r.empty.empty_prompts, r.empty.empty_responses),
    ]);
    if let Some(o) = &r.over_long {
        rows.push([
            "over-long records".to_string(),
            format!("{} ({})", o.records, over_long_rule(o)),
        ]);
    }
    out(&table(["check", "result"], rows));

    if !r.checks.is_empty() {
        out("## Limits\n");
        let rows = r
            .checks
            .iter()
            .map(|c| {
                [
                    format!("`{}`", c.limit),
                    if c.passed { "pass" } else { "**FAIL**" }.to_string(),
                    cell(&c.message),
                ]
            })
            .collect();
        out(&table(["limit", "status", "detail"], rows));
    }

    out("## Exact duplicates\n");
    out(&groups_table(&d.top));

    out("## Near duplicates\n");
    out(&format!(
        "MinHash over {}-character shingles of normalised text, {} permutations, LSH {} bands × {} rows; {} distinct texts.\n",
        n.shingle_size, n.num_perm, n.bands, n.rows, n.distinct_texts
    ));
    out(&groups_table(&n.top));

    out("## Repeated templates\n");
    let t = &r.templates;
    out(&format!(
        "{}, {} (numbers, quotes, URLs, e-mails and code masked).\n",
        count(t.prompts, "non-empty prompt"),
        count(t.distinct, "distinct template")
    ));
    if t.top.is_empty() {
        out("None.\n");
    } else {
        let rows = t
            .top
            .iter()
            .map(|x| {
                [
                    x.records.to_string(),
                    pct(x.share),
                    x.first_line.to_string(),
                    code(&x.template),
                ]
            })
            .collect();
        out(&table(["prompts", "share", "first line", "template"], rows));
    }

    out("## Lengths\n");
    let mut rows = Vec::new();
    for (name, l) in [
        ("prompt", &r.lengths.prompt),
        ("response", &r.lengths.response),
    ] {
        if let Some(l) = l {
            length_rows(&mut rows, name, l);
        }
    }
    out(&table(
        ["field", "unit", "min", "p50", "p90", "p99", "max", "mean"],
        rows,
    ));

    out("## Diversity\n");
    let mut rows = Vec::new();
    for (name, dv) in [
        ("prompt", &r.diversity.prompt),
        ("response", &r.diversity.response),
    ] {
        if let Some(dv) = dv {
            rows.push([
                name.to_string(),
                dv.texts.to_string(),
                format!("{} / {}", dv.unique_unigrams, dv.unigrams),
                ratio(dv.distinct_1),
                format!("{} / {}", dv.unique_bigrams, dv.bigrams),
                ratio(dv.distinct_2),
            ]);
        }
    }
    out(&table(
        [
            "field",
            "texts",
            "unique / words",
            "distinct-1",
            "unique / pairs",
            "distinct-2",
        ],
        rows,
    ));

    out("## Conflicting responses\n");
    let c = &r.conflicts;
    out(&format!(
        "{} more than once; {} different responses.\n",
        if c.repeated_prompts == 1 {
            "1 prompt occurs".to_string()
        } else {
            format!("{} prompts occur", c.repeated_prompts)
        },
        if c.prompts == 1 {
            "1 has".to_string()
        } else {
            format!("{} have", c.prompts)
        }
    ));
    if !c.top.is_empty() {
        let rows = c
            .top
            .iter()
            .map(|x| {
                [
                    x.records.to_string(),
                    x.distinct_responses.to_string(),
                    lines(&x.lines, x.records),
                    code(&x.prompt),
                ]
            })
            .collect();
        out(&table(["records", "responses", "lines", "prompt"], rows));
    }

    out("## Empty\n");
    let e = &r.empty;
    if e.records == 0 {
        out("None.\n");
    } else {
        out(&format!(
            "{}: {}, {}; lines {}.\n",
            count(e.records, "record"),
            count(e.empty_prompts, "empty prompt"),
            count(e.empty_responses, "empty response"),
            lines(&e.lines, e.records)
        ));
    }

    if let Some(o) = &r.over_long {
        out("## Over-long\n");
        out(&format!(
            "{} ({}).\n",
            count(o.records, "record"),
            over_long_rule(o)
        ));
        if !o.top.is_empty() {
            let rows = o
                .top
                .iter()
                .map(|x| {
                    [
                        x.line.to_string(),
                        x.chars.to_string(),
                        x.tokens.map_or("–".into(), |t| t.to_string()),
                    ]
                })
                .collect();
            out(&table(["line", "chars", "tokens"], rows));
        }
    }

    if let Some(tasks) = &r.tasks {
        out("## Tasks\n");
        let mut rows: Vec<[String; 3]> = tasks
            .tasks
            .iter()
            .map(|t| [cell(&t.task), t.records.to_string(), pct(t.share)])
            .collect();
        if tasks.untagged > 0 {
            rows.push([
                "(untagged)".into(),
                tasks.untagged.to_string(),
                pct(super::rate(tasks.untagged, r.records)),
            ]);
        }
        out(&table(["task", "records", "share"], rows));
    }
    md.truncate(md.trim_end().len());
    md.push('\n');
    md
}

fn over_long_rule(o: &super::lengths::OverLong) -> String {
    let mut parts = Vec::new();
    if let Some(c) = o.max_chars {
        parts.push(format!("> {c} chars"));
    }
    if let Some(t) = o.max_tokens {
        parts.push(format!("> {t} tokens"));
    }
    parts.join(" or ")
}

fn length_rows(rows: &mut Vec<[String; 8]>, name: &str, l: &Lengths) {
    let row = |unit: &str, s: &Stats| {
        [
            name.to_string(),
            unit.to_string(),
            s.min.to_string(),
            s.p50.to_string(),
            s.p90.to_string(),
            s.p99.to_string(),
            s.max.to_string(),
            format!("{:.1}", s.mean),
        ]
    };
    rows.push(row("chars", &l.chars));
    rows.push(row("words", &l.words));
    if let Some(t) = &l.tokens {
        rows.push(row("tokens", t));
    }
}

/// Duplicate groups (exact or near) as a table, or "None.".
fn groups_table(groups: &[super::duplicates::Group]) -> String {
    if groups.is_empty() {
        return "None.\n".to_string();
    }
    let rows = groups
        .iter()
        .map(|g| {
            [
                g.records.to_string(),
                lines(&g.lines, g.records),
                code(&g.preview),
            ]
        })
        .collect();
    table(["records", "lines", "first record"], rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::tests::{pc, text};
    use crate::audit::{audit, AuditOptions, AuditReport, Limits};

    fn report(limits: Limits) -> AuditReport {
        let s = vec![
            pc(1, "What | is 1?", "one"),
            pc(2, "What | is 1?", "one"),
            pc(3, "What | is 2?", "two"),
            pc(4, "", "x"),
            text(5, "plain"),
        ];
        let opts = AuditOptions {
            limits,
            max_chars: Some(5),
            ..AuditOptions::default()
        };
        audit("data.jsonl", &s, &opts, None).unwrap()
    }

    #[test]
    fn markdown_has_every_section_and_escapes_pipes() {
        let md = to_markdown(&report(Limits::default()));
        for h in [
            "# Data audit: `data.jsonl`",
            "## Summary",
            "## Exact duplicates",
            "## Near duplicates",
            "## Repeated templates",
            "## Lengths",
            "## Diversity",
            "## Conflicting responses",
            "## Empty",
            "## Over-long",
            "No limits set",
        ] {
            assert!(md.contains(h), "missing {h}:\n{md}");
        }
        assert!(md.contains("`What \\| is <NUM>?`"), "{md}");
        assert!(!md.contains("## Tasks") && !md.contains("## Violations"));
        assert!(md.ends_with("|\n") || md.ends_with(".\n"));
    }

    #[test]
    fn markdown_lists_violations() {
        let md = to_markdown(&report(Limits {
            max_duplicate_rate: Some(0.1),
            max_empty: Some(5),
            ..Limits::default()
        }));
        assert!(md.contains("**FAIL**: 1 of 2 limits violated."), "{md}");
        assert!(
            md.contains("- `max-duplicate-rate`: exact-duplicate rate 20.00% (1 of 5 records)"),
            "{md}"
        );
        let md = to_markdown(&report(Limits {
            max_empty: Some(5),
            ..Limits::default()
        }));
        assert!(md.contains("**PASS**"), "{md}");
    }

    #[test]
    fn json_round_trips() {
        let r = report(Limits {
            max_conflicts: Some(0),
            ..Limits::default()
        });
        let j = to_json(&r);
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["schema_version"], 1);
        assert_eq!(v["exact_duplicates"]["duplicate_records"], 1);
        let back: AuditReport = serde_json::from_str(&j).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn code_spans_survive_backticks_and_pipes() {
        assert_eq!(code("a <b> c"), "`a <b> c`");
        assert_eq!(code("x`y"), "`` x`y ``");
        assert_eq!(code("a|b"), "`a\\|b`");
        assert_eq!(code(""), "(empty)");
    }

    #[test]
    fn line_lists() {
        assert_eq!(lines(&[1, 2], 2), "1, 2");
        assert_eq!(lines(&[1, 2], 5), "1, 2 (+3 more)");
    }
}

//! `sft-eval audit`: exit codes 0/1/2, JSON counts, limits from flags and TOML, the markdown.

use std::path::Path;

use serde_json::Value;

/// Run `sft-eval` in `dir` (so reports name files relatively): `(exit code, stdout, stderr)`.
fn run_in(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let r = crate::common::TestContext::new().cli_in(dir, args);
    (r.code, r.stdout, r.stderr)
}

fn write(dir: &Path, name: &str, lines: &[Value]) {
    let text: String = lines.iter().map(|v| format!("{v}\n")).collect();
    std::fs::write(dir.join(name), text).unwrap();
}

fn pc(prompt: &str, completion: &str) -> Value {
    serde_json::json!({"prompt": prompt, "completion": completion})
}

fn clean() -> Vec<Value> {
    vec![
        pc("Name the largest planet in the solar system.", "Jupiter."),
        pc("Who wrote the novel Pride and Prejudice?", "Jane Austen."),
        pc("Give a synonym for happy.", "Cheerful."),
        serde_json::json!({"messages": [
            {"role": "user", "content": "Explain why the sky looks blue during the day."},
            {"role": "assistant", "content": "Air scatters short blue wavelengths of sunlight more than red ones."}
        ], "task": "science"}),
        serde_json::json!({"text": "Rivers carry sediment from mountains down to the sea.", "task": "lm"}),
    ]
}

const ALL_LIMITS: &[&str] = &[
    "--max-duplicate-rate",
    "0",
    "--max-near-duplicate-rate",
    "0",
    "--max-conflicts",
    "0",
    "--max-empty",
    "0",
    "--max-template-share",
    "0",
    "--min-distinct-2",
    "0.5",
];

#[test]
fn clean_data_passes_every_limit() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "clean.jsonl", &clean());
    let mut args = vec!["audit", "clean.jsonl"];
    args.extend_from_slice(ALL_LIMITS);
    let (code, out, err) = run_in(tmp.path(), &args);
    assert_eq!(code, 0, "stdout {out}\nstderr {err}");
    assert!(out.contains("**PASS**: all 6 limits hold."), "{out}");
    assert!(err.is_empty(), "{err}");
}

fn dirty() -> Vec<Value> {
    let mut v = clean();
    v.push(pc("Give a synonym for happy.", "Cheerful.")); // exact duplicate of line 3
    v.push(pc("Give a synonym for happy.", "Joyful.")); // conflict
    v.push(pc("", "An answer without a question.")); // empty prompt
    v
}

#[test]
fn duplicates_and_conflicts_beyond_limits_exit_1() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "dirty.jsonl", &dirty());
    let (code, out, err) = run_in(
        tmp.path(),
        &[
            "audit",
            "dirty.jsonl",
            "--max-duplicate-rate",
            "0.05",
            "--max-conflicts",
            "0",
            "--max-empty",
            "1",
        ],
    );
    assert_eq!(code, 1, "stdout {out}\nstderr {err}");
    assert!(out.contains("**FAIL**: 2 of 3 limits violated."), "{out}");
    assert!(
        out.contains("- `max-duplicate-rate`: exact-duplicate rate 12.50% (1 of 8 records)"),
        "{out}"
    );
    assert!(
        out.contains("- `max-conflicts`: 1 prompt with conflicting responses"),
        "{out}"
    );
    assert!(!out.contains("- `max-empty`"), "{out}");
    // Within the limits: exit 0.
    let (code, _, err) = run_in(
        tmp.path(),
        &[
            "audit",
            "dirty.jsonl",
            "--max-duplicate-rate",
            "0.2",
            "--max-conflicts",
            "1",
        ],
    );
    assert_eq!(code, 0, "{err}");
}

#[test]
fn malformed_json_exits_2_naming_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("bad.jsonl"),
        "{\"text\": \"ok\"}\n\n{\"prompt\": \"x\", oops}\n",
    )
    .unwrap();
    let (code, out, err) = run_in(tmp.path(), &["audit", "bad.jsonl", "--max-conflicts", "0"]);
    assert_eq!(code, 2, "stdout {out}\nstderr {err}");
    assert!(out.is_empty(), "nothing on stdout on error: {out}");
    assert!(
        err.contains("bad.jsonl:3:") && err.contains("invalid JSON"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
    let (code, _, err) = run_in(tmp.path(), &["audit", "missing.jsonl"]);
    assert_eq!(code, 2);
    assert!(err.contains("missing.jsonl"), "{err}");
}

#[test]
fn json_report_has_the_counts() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "dirty.jsonl", &dirty());
    let (code, out, err) = run_in(
        tmp.path(),
        &["audit", "dirty.jsonl", "--json", "--max-conflicts", "0"],
    );
    assert_eq!(code, 1, "{err}");
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["schema_version"], 1);
    assert_eq!(j["file"], "dirty.jsonl");
    assert_eq!(j["records"], 8);
    assert_eq!(j["formats"]["prompt/completion"], 6);
    assert_eq!(j["exact_duplicates"]["duplicate_records"], 1);
    assert_eq!(
        j["exact_duplicates"]["top"][0]["lines"],
        serde_json::json!([3, 6])
    );
    assert_eq!(j["conflicts"]["prompts"], 1);
    assert_eq!(j["conflicts"]["top"][0]["distinct_responses"], 2);
    assert_eq!(j["empty"]["empty_prompts"], 1);
    assert_eq!(j["empty"]["lines"], serde_json::json!([8]));
    assert_eq!(j["tasks"]["untagged"], 6);
    assert_eq!(j["lengths"]["prompt"]["count"], 7);
    // "…happy. Cheerful." and "…happy. Joyful." are below the 0.8 Jaccard threshold.
    assert_eq!(j["near_duplicates"]["removable"], 1);
    assert!(j["diversity"]["prompt"]["distinct_2"].as_f64().unwrap() > 0.5);
    assert_eq!(j["passed"], false);
    assert_eq!(j["violations"][0]["limit"], "max-conflicts");
    assert!(j["over_long"].is_null());
}

#[test]
fn limits_file_output_file_and_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "dirty.jsonl", &dirty());
    std::fs::write(
        tmp.path().join("limits.toml"),
        "max_conflicts = 0\nmax-empty = 5\n",
    )
    .unwrap();
    // The file's max_conflicts fails; the flag overrides it.
    let (code, out, err) = run_in(
        tmp.path(),
        &[
            "audit",
            "dirty.jsonl",
            "--limits",
            "limits.toml",
            "-o",
            "report.md",
        ],
    );
    assert_eq!(code, 1, "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("max-conflicts"), "{err}");
    let md = std::fs::read_to_string(tmp.path().join("report.md")).unwrap();
    assert!(md.contains("**FAIL**: 1 of 2 limits violated."), "{md}");
    let (code, _, err) = run_in(
        tmp.path(),
        &[
            "audit",
            "dirty.jsonl",
            "--limits",
            "limits.toml",
            "--max-conflicts",
            "1",
            "-o",
            "report.md",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(std::fs::read_to_string(tmp.path().join("report.md"))
        .unwrap()
        .contains("**PASS**"));
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 3, "no temporary files left: {leftovers:?}");

    std::fs::write(tmp.path().join("typo.toml"), "max_conflict = 0\n").unwrap();
    let (code, _, err) = run_in(
        tmp.path(),
        &["audit", "dirty.jsonl", "--limits", "typo.toml"],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("typo.toml") && err.contains("max_conflict"),
        "{err}"
    );
    let (code, _, err) = run_in(
        tmp.path(),
        &["audit", "dirty.jsonl", "--max-duplicate-rate", "1.5"],
    );
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = run_in(tmp.path(), &["audit", "dirty.jsonl", "--max-tokens", "10"]);
    assert_eq!(code, 2, "--max-tokens needs --model: {err}");
    let (code, _, err) = run_in(
        tmp.path(),
        &["audit", "dirty.jsonl", "--max-over-long", "0"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--max-chars"), "{err}");
}

#[test]
fn token_lengths_with_a_model() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "clean.jsonl", &clean());
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/llama");
    let (code, out, err) = run_in(
        tmp.path(),
        &[
            "audit",
            "clean.jsonl",
            "--json",
            "--model",
            model.to_str().unwrap(),
            "--max-tokens",
            "8",
            "--max-over-long",
            "0",
        ],
    );
    assert_eq!(code, 1, "{err}");
    let j: Value = serde_json::from_str(&out).unwrap();
    assert!(j["lengths"]["prompt"]["tokens"]["max"].as_u64().unwrap() > 0);
    assert!(j["over_long"]["records"].as_u64().unwrap() >= 1);
    assert_eq!(j["violations"][0]["limit"], "max-over-long");
}

#[test]
fn markdown_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let mut data = dirty();
    data.push(pc("What is 12 + 30?", "42"));
    data.push(pc("What is 7 + 5?", "12"));
    data.push(pc("What is 100 + 1?", "101"));
    write(tmp.path(), "data.jsonl", &data);
    let (code, out, err) = run_in(
        tmp.path(),
        &[
            "audit",
            "data.jsonl",
            "--max-chars",
            "60",
            "--max-duplicate-rate",
            "0.05",
            "--max-template-share",
            "0.5",
        ],
    );
    assert_eq!(code, 1, "{err}");
    insta::assert_snapshot!(out);
}

//! Forgetting-aware training: the capability watch picks `best/` and stops, EWC, mitigations
//! combined in one run, and `--config` tables merged with flags field by field.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{model_dir, TestContext};

fn organism() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/organism")
}

fn trl_data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/trl")
        .join(format!("{name}.jsonl"))
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

fn log(run: &Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn watches(run: &Path) -> Vec<Value> {
    log(run)
        .into_iter()
        .filter_map(|v| v.get("watch").cloned())
        .collect()
}

/// `train --watch` on the organism's new task: 16 steps, a watch every 4 on the first 24
/// items of math, qa and convert.
fn watched_run(cx: &TestContext, out: &str, policy: &str, extra: &[&str]) -> crate::common::Run {
    let o = organism();
    let policy = cx.write(format!("{out}.toml"), policy);
    let defaults = [
        ("--data", s(&o.join("data/convert.jsonl"))),
        ("-o", out.into()),
        ("--max-length", "64".into()),
        ("--batch-size", "8".into()),
        ("--lr", "1e-3".into()),
        ("--max-steps", "16".into()),
        ("--watch", "math,qa,convert".into()),
        ("--suites-dir", s(&o.join("suites"))),
        ("--new-task", "convert".into()),
        ("--watch-every", "4".into()),
        ("--watch-limit", "24".into()),
        ("--policy", s(&policy)),
        ("--cache-dir", "cache".into()),
    ];
    train(cx, &o, &defaults, extra)
}

/// `sft-eval train MODEL` with `defaults` (flag, value), each left out when `extra` gives the
/// flag, then `extra`.
fn train(
    cx: &TestContext,
    model: &Path,
    defaults: &[(&str, String)],
    extra: &[&str],
) -> crate::common::Run {
    let mut args: Vec<String> = vec!["train".into(), s(model)];
    for (flag, value) in defaults {
        if !extra.contains(flag) {
            args.extend([flag.to_string(), value.clone()]);
        }
    }
    args.extend(extra.iter().map(|x| x.to_string()));
    cx.cli(&args)
}

#[test]
fn the_watch_keeps_the_best_new_task_checkpoint_that_passes_every_watched_suite() {
    let cx = TestContext::new();
    // a margin no drop exceeds: every watch passes, so best/ is the best new-task score
    // (math is not watched: the naive run loses all of it, which no margin below 1 passes)
    let r = watched_run(
        &cx,
        "lenient",
        "[default]\nmargin = 0.99\n",
        &["--watch", "qa,safety,convert"],
    )
    .expect(0);
    let w = watches(&cx.join("lenient"));
    assert_eq!(
        w.iter()
            .map(|x| x["step"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [4, 8, 12, 16]
    );
    for x in &w {
        assert_eq!(x["passed"], true);
        let names: Vec<&str> = x["suites"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["suite"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["organism-qa", "organism-safety", "organism-convert"]
        );
        assert!(x["seconds"].as_f64().unwrap() > 0.0);
    }
    let scores: Vec<f64> = w.iter().map(|x| x["new_task"].as_f64().unwrap()).collect();
    let best_i = (0..scores.len()).fold(0, |b, i| if scores[i] > scores[b] { i } else { b });
    let best_step = w[best_i]["step"].as_u64().unwrap();
    let flagged: Vec<u64> = w
        .iter()
        .filter(|x| x["best"] == true)
        .map(|x| x["step"].as_u64().unwrap())
        .collect();
    assert_eq!(*flagged.last().unwrap(), best_step, "{scores:?}");
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(cx.join("lenient/summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["watch"]["best_step"].as_u64(), Some(best_step));
    assert_eq!(summary["watch"]["watches"].as_u64(), Some(4));
    assert!(
        r.stderr.contains(&format!("best/ is step {best_step}")),
        "{}",
        r.stderr
    );
    // best/ holds the weights of that step: scoring it gives the score the watch logged
    let res = cx
        .cli(&[
            "eval",
            "lenient/best",
            "--suites",
            "convert",
            "--suites-dir",
            &s(&organism().join("suites")),
            "--limit",
            "24",
            "--no-cache",
        ])
        .expect(0);
    let v: Value = serde_json::from_str(&res.stdout).unwrap();
    assert_eq!(v["suites"][0]["mean"].as_f64().unwrap(), scores[best_i]);
    // final/ is the last watch's weights: scoring it from disk gives what the watch logged on
    // the weights in memory for every watched suite (nothing the model computed at an earlier
    // watch is reused once training moved the weights)
    let last = w.last().unwrap();
    let res = cx
        .cli(&[
            "eval",
            "lenient/final",
            "--suites",
            "qa,safety,convert",
            "--suites-dir",
            &s(&organism().join("suites")),
            "--limit",
            "24",
            "--no-cache",
        ])
        .expect(0);
    let v: Value = serde_json::from_str(&res.stdout).unwrap();
    for (i, got) in v["suites"].as_array().unwrap().iter().enumerate() {
        assert_eq!(
            got["mean"].as_f64().unwrap(),
            last["suites"][i]["score"].as_f64().unwrap(),
            "{}",
            got["suite"]
        );
    }
    // `compare` reads a watched run directory: its log's watch lines do not break the loss
    // curves
    cx.cli(&[
        "compare",
        &s(&organism()),
        "lenient",
        "--suites",
        "convert",
        "--suites-dir",
        &s(&organism().join("suites")),
        "--limit",
        "24",
        "--cache-dir",
        "cache",
        "--report-dir",
        "report",
    ])
    .expect(0);
    assert!(std::fs::read_to_string(cx.join("report/loss.svg"))
        .unwrap()
        .contains("<svg"));
    // the base's results were cached for the next run
    assert!(std::fs::read_dir(cx.join("cache")).unwrap().count() >= 3);
}

#[test]
fn a_watch_that_never_passes_leaves_no_best_and_patience_stops_the_run() {
    let cx = TestContext::new();
    // 24 items cannot show a drop within 0.1 points: every watch fails (fail closed)
    let r = watched_run(
        &cx,
        "strict",
        "[default]\nmargin = 0.001\n",
        &["--patience", "2"],
    )
    .expect(0);
    let w = watches(&cx.join("strict"));
    assert_eq!(w.len(), 2, "stopped at the second failing watch");
    assert!(w.iter().all(|x| x["passed"] == false && x["best"] == false));
    assert_eq!(w[1]["failed_in_row"].as_u64(), Some(2));
    assert!(!cx.join("strict/best").exists());
    assert!(cx.join("strict/final/model.safetensors").exists());
    assert!(
        r.stderr.contains("no watch passed the policy"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("2 watches in a row"), "{}", r.stderr);
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(cx.join("strict/summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["steps"].as_u64(), Some(8));
    assert!(summary["watch"]["best_step"].is_null());
}

#[test]
fn watch_settings_that_cannot_work_fail_before_training() {
    let cx = TestContext::new();
    // the new task must be watched; a policy file must parse; a suite must exist
    let r = watched_run(
        &cx,
        "a",
        "[default]\nmargin = 0.05\n",
        &["--new-task", "safety"],
    )
    .expect(2);
    assert!(r.stderr.contains("new_task `safety`"), "{}", r.stderr);
    let r = watched_run(&cx, "b", "[default]\nmargn = 0.05\n", &[]).expect(2);
    assert!(r.stderr.contains("b.toml"), "{}", r.stderr);
    let r = watched_run(&cx, "c", "", &["--watch", "math,nosuch,convert"]).expect(2);
    assert!(r.stderr.contains("nosuch"), "{}", r.stderr);
    // a policy for a suite that is not watched
    let r = watched_run(&cx, "d", "[suites.organism-code]\nmargin = 0.05\n", &[]).expect(2);
    assert!(r.stderr.contains("organism-code"), "{}", r.stderr);
    for d in ["a", "b", "c", "d"] {
        assert!(
            !cx.join(d).join("config.json").exists(),
            "{d} left a run behind"
        );
    }
}

fn small_run(cx: &TestContext, out: &str, extra: &[&str]) -> crate::common::Run {
    let defaults = [
        ("--data", s(&trl_data("prompt_completion"))),
        ("-o", out.into()),
        ("--max-length", "64".into()),
        ("--batch-size", "4".into()),
        ("--lr", "1e-2".into()),
        ("--max-steps", "4".into()),
        ("--cache-dir", "cache".into()),
    ];
    train(cx, &model_dir("llama"), &defaults, extra)
}

fn fisher_files(cx: &TestContext) -> Vec<PathBuf> {
    std::fs::read_dir(cx.join("cache"))
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().contains("fisher-"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn ewc_is_computed_once_cached_and_logged() {
    let cx = TestContext::new();
    let data = s(&trl_data("packed"));
    small_run(
        &cx,
        "a",
        &["--ewc", "100", "--ewc-data", &data, "--ewc-samples", "8"],
    )
    .expect(0);
    let files = fisher_files(&cx);
    assert_eq!(files.len(), 1);
    let modified = std::fs::metadata(&files[0]).unwrap().modified().unwrap();
    let rows = log(&cx.join("a"));
    assert_eq!(
        rows[0]["terms"]["ewc"].as_f64(),
        Some(0.0),
        "θ = θ₀ at step 1"
    );
    assert!(rows[3]["terms"]["ewc"].as_f64().unwrap() > 0.0);
    // the same base and data: the cached Fisher is read, and the run is the same
    small_run(
        &cx,
        "b",
        &["--ewc", "100", "--ewc-data", &data, "--ewc-samples", "8"],
    )
    .expect(0);
    assert_eq!(fisher_files(&cx).len(), 1);
    assert_eq!(
        std::fs::metadata(&files[0]).unwrap().modified().unwrap(),
        modified
    );
    let same = |mut v: Vec<Value>| {
        v.iter_mut().for_each(|r| r["tokens_per_s"] = Value::Null);
        v
    };
    assert_eq!(same(log(&cx.join("b"))), same(rows.clone()));
    // other samples: another Fisher
    small_run(
        &cx,
        "c",
        &["--ewc", "100", "--ewc-data", &data, "--ewc-samples", "4"],
    )
    .expect(0);
    assert_eq!(fisher_files(&cx).len(), 2);
    // EWC pulls toward the base where the Fisher is large: Σ F·(θ − θ₀)² (the logged term
    // over λ/2) is far smaller with a strong λ than with a weak one
    small_run(
        &cx,
        "weak",
        &["--ewc", "1", "--ewc-data", &data, "--ewc-samples", "8"],
    )
    .expect(0);
    small_run(
        &cx,
        "strong",
        &["--ewc", "1e5", "--ewc-data", &data, "--ewc-samples", "8"],
    )
    .expect(0);
    let fisher_dist = |run: &str, lambda: f64| {
        2.0 * log(&cx.join(run))[3]["terms"]["ewc"].as_f64().unwrap() / lambda
    };
    let (weak, strong) = (fisher_dist("weak", 1.0), fisher_dist("strong", 1e5));
    assert!(
        strong < 0.5 * weak,
        "Σ F·Δ²: {strong} with λ = 1e5, {weak} with λ = 1"
    );
    // --ewc needs its data
    let r = small_run(&cx, "d", &["--ewc", "1"]).expect(2);
    assert!(r.stderr.contains("--ewc-data"), "{}", r.stderr);
}

#[test]
fn mitigations_combine_in_one_run() {
    let cx = TestContext::new();
    let broad = s(&trl_data("packed"));
    // replay + KL on broad data + L2-SP + EWC + frozen layers, all at once
    small_run(
        &cx,
        "all",
        &[
            "--replay",
            &broad,
            "--replay-ratio",
            "0.5",
            "--kl",
            "0.5",
            "--kl-data",
            &broad,
            "--kl-data-rows",
            "2",
            "--l2sp",
            "0.1",
            "--ewc",
            "10",
            "--ewc-data",
            &broad,
            "--ewc-samples",
            "4",
            "--freeze-layers",
            "1",
            "--freeze-embeddings",
        ],
    )
    .expect(0);
    let rows = log(&cx.join("all"));
    let last = &rows[3]["terms"];
    for t in ["kl", "l2sp", "ewc"] {
        assert!(last[t].as_f64().unwrap() > 0.0, "{t} missing in {last}");
    }
    // the frozen block did not move
    let base = candle_core::safetensors::load(
        model_dir("llama").join("model.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let ft = candle_core::safetensors::load(
        cx.join("all/final/model.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let frozen = base
        .keys()
        .find(|k| k.starts_with("model.layers.0.") && k.ends_with("q_proj.weight"))
        .unwrap();
    assert_eq!(
        base[frozen]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap(),
        ft[frozen].flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );
    // LoRA + EWC on the merged delta + KL
    small_run(
        &cx,
        "lora",
        &[
            "--lora-r",
            "4",
            "--ewc",
            "1e3",
            "--ewc-data",
            &broad,
            "--ewc-samples",
            "4",
            "--kl",
            "0.5",
        ],
    )
    .expect(0);
    let rows = log(&cx.join("lora"));
    assert_eq!(
        rows[0]["terms"]["ewc"].as_f64(),
        Some(0.0),
        "B = 0: no delta yet"
    );
    assert!(rows[3]["terms"]["ewc"].as_f64().unwrap() > 0.0);
    assert!(rows[3]["terms"]["kl"].as_f64().unwrap() > 0.0);
}

fn settings(cx: &TestContext, toml: &str, flags: &[&str]) -> crate::common::Run {
    let cfg = cx.write("run.toml", toml);
    let mut args = vec![
        "train".to_string(),
        "--config".into(),
        s(&cfg),
        "-o".into(),
        "out".into(),
        "--show-settings".into(),
    ];
    args.extend(flags.iter().map(|x| x.to_string()));
    cx.cli(&args)
}

#[test]
fn flags_change_one_field_of_a_config_table_and_keep_the_rest() {
    let cx = TestContext::new();
    let toml = r#"
model = "m"
data = "d.jsonl"
[kl]
beta = 1.0
on = "all"
data = "broad.jsonl"
data_rows = 3
[lora]
r = 8
alpha = 32.0
targets = ["q_proj", "o_proj"]
[eval]
path = "held.jsonl"
every = 7
patience = 1
[replay]
path = "replay.jsonl"
ratio = 0.3
[ewc]
lambda = 5.0
data = "fisher.jsonl"
samples = 9
[watch]
suites = ["math", "new"]
new_task = "new"
every = 11
limit = 20
"#;
    let r = settings(
        &cx,
        toml,
        &[
            "--kl",
            "0.2",
            "--lora-alpha",
            "64",
            "--patience",
            "3",
            "--replay-ratio",
            "0.5",
            "--ewc",
            "7",
            "--watch-every",
            "5",
        ],
    )
    .expect(0);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["kl"]["beta"], 0.2);
    assert_eq!(v["kl"]["on"], "all");
    assert_eq!(v["kl"]["data"], "broad.jsonl");
    assert_eq!(v["kl"]["data_rows"], 3);
    assert_eq!(v["lora"]["alpha"], 64.0);
    assert_eq!(v["lora"]["r"], 8);
    assert_eq!(
        v["lora"]["targets"],
        serde_json::json!(["q_proj", "o_proj"])
    );
    assert_eq!(v["eval"]["path"], "held.jsonl");
    assert_eq!(v["eval"]["every"], 7);
    assert_eq!(v["eval"]["patience"], 3);
    assert_eq!(v["replay"]["path"], "replay.jsonl");
    assert_eq!(v["replay"]["ratio"], 0.5);
    assert_eq!(v["ewc"]["lambda"], 7.0);
    assert_eq!(v["ewc"]["data"], "fisher.jsonl");
    assert_eq!(v["ewc"]["samples"], 9);
    assert_eq!(v["watch"]["every"], 5);
    assert_eq!(v["watch"]["limit"], 20);
    assert_eq!(v["watch"]["new_task"], "new");
    // --patience reaches the watch too when the file has one
    assert_eq!(v["watch"]["patience"], 3);
    // no file: a flag of a table that is not on names the flag that turns it on
    for (flag, value, on) in [
        ("--lora-alpha", "8", "--lora-r"),
        ("--kl-on", "all", "--kl BETA"),
        ("--replay-ratio", "0.2", "--replay FILE"),
        ("--watch-every", "3", "--watch SUITES"),
        ("--ewc-samples", "3", "--ewc LAMBDA"),
        ("--eval-every", "3", "--eval-data"),
    ] {
        let r = settings(&cx, "model = \"m\"\ndata = \"d\"\n", &[flag, value]).expect(2);
        assert!(r.stderr.contains(on), "{flag}: {}", r.stderr);
    }
    // flags alone still build a table with its defaults
    let r = settings(&cx, "model = \"m\"\ndata = \"d\"\n", &["--lora-r", "4"]).expect(0);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["lora"]["alpha"], 16.0);
    assert_eq!(
        v["lora"]["targets"],
        serde_json::json!(["q_proj", "v_proj"])
    );
}

/// `train --help` explains the watch, EWC and how flags merge with `--config` (the one place a
/// user learns the flags; a snapshot so that a change is seen in review).
#[test]
fn train_help_explains_the_watch_and_ewc() {
    let cx = TestContext::new();
    let r = cx.cli(&["train", "--help"]).expect(0);
    for flag in [
        "--watch <WATCH>",
        "--new-task",
        "--ewc <EWC>",
        "--ewc-data",
        "--policy",
    ] {
        assert!(r.stdout.contains(flag), "{flag} missing");
    }
    insta::assert_snapshot!(r.stdout);
}

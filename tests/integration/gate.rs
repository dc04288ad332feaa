//! `compare`, `baseline record` and `gate`: A/A, regressions, and fail-closed exit codes.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// Run the binary in a throwaway working folder, so the default `reports/<run-id>` lands there.
fn cli(args: &[&str]) -> (i32, String, String) {
    cli_in(tempdir().path(), args)
}

fn cli_in(cwd: &Path, args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_sft-eval"))
        .current_dir(cwd)
        .env("SFT_EVAL_NO_PROGRESS", "1")
        .env_remove("GITHUB_STEP_SUMMARY")
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code().unwrap(),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

/// A suite of 60 MC items and a baseline of the llama fixture on it.
fn setup(tmp: &Path) -> (PathBuf, PathBuf) {
    let suite = tmp.join("suites/mc");
    std::fs::create_dir_all(&suite).unwrap();
    std::fs::write(
        suite.join("suite.toml"),
        "name = \"mc\"\ncapability = \"qa\"\nversion = \"1\"\nscorer = \"mc_loglik\"\nmetric = \"acc\"\n[prompt]\ntemplate = \"Q: {{ input }}\\nA:\"\nchat = \"never\"\n",
    )
    .unwrap();
    let items: String = (0..60)
        .map(|i| format!("{}\n", serde_json::json!({"id": format!("q{i}"), "input": format!("What follows {i}?"), "choices": [format!("{}", i + 1), format!("{}", i + 7), "zero"], "gold": 0, "cluster": format!("c{}", i % 6)})))
        .collect();
    std::fs::write(suite.join("items.jsonl"), items).unwrap();
    let baseline = tmp.join("baselines/llama.json");
    let (code, _, err) = cli(&[
        "baseline",
        "record",
        model_dir("llama").to_str().unwrap(),
        "-o",
        baseline.to_str().unwrap(),
        "--suites",
        suite.to_str().unwrap(),
        "--cache-dir",
        tmp.join("cache").to_str().unwrap(),
        "--resamples",
        "2000",
    ]);
    assert_eq!(code, 0, "{err}");
    (suite, baseline)
}

fn edit(src: &Path, dst: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(dst, serde_json::to_string(&v).unwrap()).unwrap();
}

#[test]
fn same_checkpoint_against_itself_has_zero_delta_and_passes() {
    let tmp = tempdir();
    let (_, baseline) = setup(tmp.path());
    let json = tmp.path().join("gate.json");
    let (code, md, err) = cli(&[
        "gate",
        "--baseline",
        baseline.to_str().unwrap(),
        "--model",
        model_dir("llama").to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
        "--cache-dir",
        tmp.path().join("cache").to_str().unwrap(),
        "--resamples",
        "2000",
    ]);
    assert_eq!(code, 0, "{md}\n{err}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    for s in v["comparison"]["suites"].as_array().unwrap() {
        assert_eq!(s["delta"].as_f64().unwrap(), 0.0);
    }
    assert_eq!(v["passed"], true);
    assert!(md.contains("| mc ") && md.contains("Pass"), "{md}");
}

#[test]
fn a_clear_drop_fails_the_gate_with_exit_1_and_names_flipped_items() {
    let tmp = tempdir();
    let (_, baseline) = setup(tmp.path());
    // a fine-tune that lost every item the base had right, and some more
    let ft = tmp.path().join("ft.json");
    edit(&baseline, &ft, |v| {
        for it in v["suites"][0]["items"].as_array_mut().unwrap() {
            it["score"] = serde_json::json!(0.0);
        }
    });
    // make sure the base had something to lose: mark half the base items right
    let base = tmp.path().join("base.json");
    edit(&baseline, &base, |v| {
        for (i, it) in v["suites"][0]["items"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .enumerate()
        {
            it["score"] = serde_json::json!(if i % 2 == 0 { 1.0 } else { 0.0 });
        }
    });
    let (code, md, err) = cli(&[
        "gate",
        "--baseline",
        base.to_str().unwrap(),
        "--results",
        ft.to_str().unwrap(),
        "--resamples",
        "2000",
    ]);
    assert_eq!(code, 1, "{md}\n{err}");
    assert!(md.contains("Fail") && md.contains("`q0`"), "{md}");
    // compare shows the same numbers without gating
    let (code, md, _) = cli(&[
        "compare",
        base.to_str().unwrap(),
        ft.to_str().unwrap(),
        "--resamples",
        "2000",
    ]);
    assert_eq!(code, 0);
    assert!(md.contains("-50.0"), "{md}");
}

#[test]
fn errors_are_never_a_pass() {
    let tmp = tempdir();
    let (_, baseline) = setup(tmp.path());
    let b = baseline.to_str().unwrap();
    // truncated results file
    let trunc = tmp.path().join("trunc.json");
    let text = std::fs::read_to_string(&baseline).unwrap();
    std::fs::write(&trunc, &text[..text.len() / 2]).unwrap();
    let (code, _, err) = cli(&[
        "gate",
        "--baseline",
        b,
        "--results",
        trunc.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("trunc.json") && err.contains("not a complete"),
        "{err}"
    );
    // a different suite version (hash mismatch)
    let other = tmp.path().join("other.json");
    edit(&baseline, &other, |v| {
        v["suites"][0]["suite_hash"] = serde_json::json!("0000deadbeef")
    });
    let (code, _, err) = cli(&[
        "gate",
        "--baseline",
        b,
        "--results",
        other.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("differs") && err.contains("hint:"), "{err}");
    // a suite missing from the fine-tune's results
    let missing = tmp.path().join("missing.json");
    edit(&baseline, &missing, |v| v["suites"] = serde_json::json!([]));
    let (code, _, err) = cli(&[
        "gate",
        "--baseline",
        b,
        "--results",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    // different settings
    let settings = tmp.path().join("settings.json");
    edit(&baseline, &settings, |v| {
        v["settings"]["limit"] = serde_json::json!(5)
    });
    let (code, _, _) = cli(&[
        "gate",
        "--baseline",
        b,
        "--results",
        settings.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    // a required suite the baseline lacks
    let policy = tmp.path().join("gate.toml");
    std::fs::write(&policy, "required = [\"math\"]\n[default]\nmargin = 0.05\n").unwrap();
    let (code, _, err) = cli(&[
        "gate",
        "--baseline",
        b,
        "--results",
        b,
        "--policy",
        policy.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("math"), "{err}");
    // no such baseline
    let (code, _, _) = cli(&["gate", "--baseline", "/no/such.json", "--results", b]);
    assert_eq!(code, 2);
}

#[test]
fn gate_markdown_snapshot() {
    let tmp = tempdir();
    let (_, baseline) = setup(tmp.path());
    let base = tmp.path().join("base.json");
    let ft = tmp.path().join("ft.json");
    // fixed, synthetic scores: half right at base; the fine-tune loses items 0, 2, 4 and gains 1
    for (path, lost) in [(&base, false), (&ft, true)] {
        edit(&baseline, path, |v| {
            v["model"]["path"] = serde_json::json!(if lost { "finetuned" } else { "base" });
            for (i, it) in v["suites"][0]["items"]
                .as_array_mut()
                .unwrap()
                .iter_mut()
                .enumerate()
            {
                let mut s = if i % 2 == 0 { 1.0 } else { 0.0 };
                if lost && (i == 0 || i == 2 || i == 4) {
                    s = 0.0;
                }
                if lost && i == 1 {
                    s = 1.0;
                }
                it["score"] = serde_json::json!(s);
            }
        });
    }
    let (code, md, err) = cli_in(
        tmp.path(),
        &[
            "gate",
            "--baseline",
            base.to_str().unwrap(),
            "--results",
            ft.to_str().unwrap(),
            "--resamples",
            "2000",
        ],
    );
    assert!(code == 0 || code == 1, "{err}");
    insta::assert_snapshot!(md);
    // the default report folder: reports/<finetuned>-vs-<base>-<hash of both fingerprints>
    let reports: Vec<PathBuf> = std::fs::read_dir(tmp.path().join("reports"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(reports.len(), 1, "{reports:?}");
    let dir = &reports[0];
    let id = dir.file_name().unwrap().to_str().unwrap();
    assert!(
        id.starts_with("ft-vs-base-") && id.len() == "ft-vs-base-".len() + 8,
        "{id}"
    );
    assert!(err.contains("report.md"), "{err}");
    // report.md is the markdown with the chart in front of the verdicts
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert_eq!(
        report.replace(
            "\n### Charts\n\n![Δ with CI per suite, coloured by verdict](delta.svg)\n",
            ""
        ),
        md
    );
    assert!(report.find("### Charts").unwrap() < report.find("### Verdicts").unwrap());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["passed"], code == 0);
    assert!(!dir.join("loss.svg").exists() && !dir.join("gain_vs_forgetting.svg").exists());
    let svg = std::fs::read_to_string(dir.join("delta.svg")).unwrap();
    roxmltree::Document::parse(&svg).unwrap();
    insta::assert_snapshot!("gate_delta_svg", svg);
    // the same comparison again writes the same folder
    let (code2, _, _) = cli_in(
        tmp.path(),
        &[
            "gate",
            "--baseline",
            base.to_str().unwrap(),
            "--results",
            ft.to_str().unwrap(),
            "--resamples",
            "2000",
        ],
    );
    assert_eq!(code2, code);
    assert_eq!(
        std::fs::read_dir(tmp.path().join("reports"))
            .unwrap()
            .count(),
        1
    );
}

/// Results with a second suite, `new`, a copy of `mc` under another name: the new task.
fn with_new_task(
    baseline: &Path,
    dst: &Path,
    name: &str,
    mc: impl Fn(usize) -> f64,
    new: impl Fn(usize) -> f64,
) {
    edit(baseline, dst, |v| {
        v["model"]["path"] = serde_json::json!(name);
        v["model"]["fingerprint"] = serde_json::json!(format!("fingerprint-of-{name}"));
        let mut second = v["suites"][0].clone();
        second["suite"] = serde_json::json!("new");
        for (suite, f) in [
            (&mut v["suites"][0], &mc as &dyn Fn(usize) -> f64),
            (&mut second, &new),
        ] {
            for (i, it) in suite["items"]
                .as_array_mut()
                .unwrap()
                .iter_mut()
                .enumerate()
            {
                it["score"] = serde_json::json!(f(i));
            }
        }
        v["suites"].as_array_mut().unwrap().push(second);
    });
}

#[test]
fn several_fine_tunes_report_gain_against_forgetting() {
    let tmp = tempdir();
    let (_, baseline) = setup(tmp.path());
    let p = |n: &str| tmp.path().join(format!("{n}.json"));
    let half = |i: usize| if i.is_multiple_of(2) { 1.0 } else { 0.0 };
    // base: half right on both suites
    with_new_task(&baseline, &p("base"), "base", half, half);
    // careful: learns 10 new items, forgets none
    with_new_task(&baseline, &p("careful"), "careful", half, |i| {
        if i < 20 {
            1.0
        } else {
            half(i)
        }
    });
    // greedy: learns the whole new task, forgets 12 of 30 items
    with_new_task(
        &baseline,
        &p("greedy"),
        "greedy",
        |i| if i < 24 { 0.0 } else { half(i) },
        |_| 1.0,
    );
    let rep = tmp.path().join("rep");
    let args = |extra: &[&str]| {
        let mut v: Vec<String> = vec![
            "compare".into(),
            p("base").to_str().unwrap().to_string(),
            p("careful").to_str().unwrap().to_string(),
            p("greedy").to_str().unwrap().to_string(),
            "--resamples".into(),
            "2000".into(),
            "--report-dir".into(),
            rep.to_str().unwrap().to_string(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |extra: &[&str]| {
        let a = args(extra);
        cli(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let (code, md, err) = run(&["--new-task", "new"]);
    assert_eq!(code, 0, "{err}");
    insta::assert_snapshot!("several_finetunes_markdown", md);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(rep.join("report.json")).unwrap()).unwrap();
    let t = |i: usize, k: &str| json["finetunes"][i]["tradeoff"][k].as_f64().unwrap();
    assert!((t(0, "gain") - 10.0 / 60.0).abs() < 1e-9);
    assert_eq!(t(0, "forgetting"), 0.0);
    assert!((t(1, "gain") - 0.5).abs() < 1e-9);
    assert!((t(1, "forgetting") - 0.2).abs() < 1e-9);
    let report = std::fs::read_to_string(rep.join("report.md")).unwrap();
    assert!(
        report.contains("![New-task gain vs forgetting](gain_vs_forgetting.svg)"),
        "{report}"
    );
    let svg = std::fs::read_to_string(rep.join("gain_vs_forgetting.svg")).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let labels: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text().map(str::trim))
        .collect();
    assert!(
        labels.contains(&"careful") && labels.contains(&"greedy"),
        "{labels:?}"
    );
    let delta = std::fs::read_to_string(rep.join("delta.svg")).unwrap();
    assert!(delta.contains("greedy: mc") && delta.contains("careful: new"));
    // no --new-task: tables, no gain chart; an unknown one is an error that names the suites
    std::fs::remove_dir_all(&rep).unwrap();
    let (code, md, _) = run(&[]);
    assert_eq!(code, 0);
    assert!(
        md.contains("## sft-eval: careful vs base") && !md.contains("New-task gain"),
        "{md}"
    );
    assert!(!rep.join("gain_vs_forgetting.svg").exists());
    let (code, _, err) = run(&["--new-task", "math"]);
    assert_eq!(code, 2);
    assert!(err.contains("`math`") && err.contains("mc, new"), "{err}");
}

#[test]
fn compare_reads_a_training_run_directory() {
    let tmp = tempdir();
    let (suite, _) = setup(tmp.path());
    let run = tmp.path().join("run-a");
    let c = sft_eval::train::TrainConfig {
        model: model_dir("llama"),
        data: fixtures().join("trl/prompt_completion.jsonl"),
        max_length: 64,
        max_steps: Some(3),
        batch_size: 4,
        lr: 1e-2,
        ..Default::default()
    };
    sft_eval::train::train(c, &run, false, &mut sft_eval::train::observer::Silent).unwrap();
    let compare = |ft: &Path, rep: &Path| {
        cli(&[
            "compare",
            model_dir("llama").to_str().unwrap(),
            ft.to_str().unwrap(),
            "--suites",
            suite.to_str().unwrap(),
            "--cache-dir",
            tmp.path().join("cache").to_str().unwrap(),
            "--resamples",
            "1000",
            "--drift-items",
            "5",
            "--report-dir",
            rep.to_str().unwrap(),
        ])
    };
    let (code, md, err) = compare(&run, &tmp.path().join("rep"));
    assert_eq!(code, 0, "{err}");
    // the run directory is compared through its final checkpoint…
    let (code, md_final, _) = compare(&run.join("final"), &tmp.path().join("rep-final"));
    assert_eq!(code, 0);
    assert_eq!(md, md_final);
    assert!(md.contains("Label-free drift"), "{md}");
    // …and its loss curve is charted
    let rep = tmp.path().join("rep");
    let report = std::fs::read_to_string(rep.join("report.md")).unwrap();
    assert!(report.contains("![Training loss](loss.svg)"), "{report}");
    let svg = std::fs::read_to_string(rep.join("loss.svg")).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    assert!(doc
        .descendants()
        .any(|n| n.has_tag_name("text") && n.text().map(str::trim) == Some("run-a")));
    assert!(!tmp.path().join("rep-final/loss.svg").exists());
    // a broken log is an error naming the file and line
    let log = run.join("log.jsonl");
    let mut text = std::fs::read_to_string(&log).unwrap();
    text.push_str("{\"step\": 9, \"loss\": \"oops\"}\n");
    std::fs::write(&log, &text).unwrap();
    let (code, _, err) = compare(&run, &tmp.path().join("rep"));
    assert_eq!(code, 2);
    let line = format!("log.jsonl:{}:", text.lines().count());
    assert!(err.contains(&line) && err.contains("hint:"), "{err}");
}

#[test]
fn compare_of_checkpoints_reports_label_free_drift() {
    let tmp = tempdir();
    let (suite, _) = setup(tmp.path());
    // a fine-tune: a few steps of SFT on the TRL fixture data
    let run = tmp.path().join("run");
    let mut c = sft_eval::train::TrainConfig {
        model: model_dir("llama"),
        data: fixtures().join("trl/prompt_completion.jsonl"),
        max_length: 64,
        max_steps: Some(3),
        batch_size: 4,
        lr: 1e-2,
        ..Default::default()
    };
    c.freeze.first_layers = 1;
    sft_eval::train::train(c, &run, false, &mut sft_eval::train::observer::Silent).unwrap();
    let json = tmp.path().join("cmp.json");
    let args = |ft: &Path| {
        cli(&[
            "compare",
            model_dir("llama").to_str().unwrap(),
            ft.to_str().unwrap(),
            "--suites",
            suite.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
            "--cache-dir",
            tmp.path().join("cache").to_str().unwrap(),
            "--resamples",
            "1000",
        ])
    };
    let (code, md, err) = args(&run.join("final"));
    assert_eq!(code, 0, "{err}");
    assert!(md.contains("Label-free drift"), "{md}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let kl = v["drift"]["kl"]["mc"].as_f64().unwrap();
    assert!(kl > 0.0);
    // drift runs its prompts in padded batches: the same mean as one prompt at a time
    let (base, ft) = (
        load("llama"),
        sft_eval::model::Model::load(&run.join("final"), &Default::default()).unwrap(),
    );
    let s = sft_eval::suite::resolve::resolve(suite.to_str().unwrap(), Path::new(".")).unwrap();
    let env = minijinja::Environment::new();
    let (mut sum, mut n) = (0f64, 0usize);
    for item in s.items.iter().take(100) {
        let (prompt, special) =
            sft_eval::suite::runner::render_prompt(&env, &s, item, &base).unwrap();
        let ids = base.tokenizer.encode(&prompt, special).unwrap();
        let lp = sft_eval::model::layers::log_softmax(
            &base.forward_batch(std::slice::from_ref(&ids)).unwrap(),
        )
        .unwrap();
        let lq = sft_eval::model::layers::log_softmax(
            &ft.forward_batch(std::slice::from_ref(&ids)).unwrap(),
        )
        .unwrap();
        sum += f64::from(
            (lp.exp().unwrap() * (&lp - &lq).unwrap())
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap(),
        );
        n += ids.len();
    }
    let reference = sum / n as f64;
    assert!(
        (kl - reference).abs() <= 1e-4 * reference,
        "{kl} vs {reference}"
    );
    let changes: Vec<(String, f64)> =
        serde_json::from_value(v["drift"]["weight_change"].clone()).unwrap();
    let get = |l: &str| changes.iter().find(|(n, _)| n == l).map(|x| x.1).unwrap();
    assert_eq!(get("layer 0"), 0.0, "layer 0 was frozen");
    assert!(get("layer 1") > 0.0);
    // the base against itself: no drift at all
    let (code, _, _) = args(&model_dir("llama"));
    assert_eq!(code, 0);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(v["drift"]["kl"]["mc"].as_f64().unwrap().abs() < 1e-9);
    assert!(v["drift"]["weight_change"]
        .as_array()
        .unwrap()
        .iter()
        .all(|x| x[1].as_f64().unwrap() == 0.0));
}

#[test]
fn baseline_update_shows_changes_and_writes_only_with_yes() {
    let tmp = tempdir();
    let (_, baseline) = setup(tmp.path());
    let b = baseline.to_str().unwrap();
    let cache = tmp.path().join("cache");
    let (code, out, err) = cli(&[
        "baseline",
        "update",
        "--baseline",
        b,
        "--cache-dir",
        cache.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("no changes"), "{out}");
    // another checkpoint: changes are listed, the file is untouched without --yes
    let before = std::fs::read_to_string(&baseline).unwrap();
    let other = model_dir("llama-t5-sharded");
    let args = |yes: bool| {
        let mut v = vec![
            "baseline",
            "update",
            "--baseline",
            b,
            other.to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
        ];
        if yes {
            v.push("--yes");
        }
        cli(&v)
    };
    let (code, out, err) = args(false);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("model fingerprint") && out.contains("not written"),
        "{out}"
    );
    assert_eq!(std::fs::read_to_string(&baseline).unwrap(), before);
    let (code, out, _) = args(true);
    assert_eq!(code, 0);
    assert!(out.contains("written"), "{out}");
    assert_ne!(std::fs::read_to_string(&baseline).unwrap(), before);
}

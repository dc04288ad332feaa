//! Other harnesses' per-item results as compare/gate inputs: real `lm_eval --log_samples` output
//! and inspect_ai JSON logs (tests/fixtures/make_harness_runs.py). Two lm-eval runs pair to the
//! same result as sft-eval's own scores of the same items; a changed task, a missing or changed
//! item, a corpus-level metric or an unfinished run is an error, never a silent drop.

use std::path::{Path, PathBuf};

use sft_eval::gate::compare::compare;
use sft_eval::model::{LoadOptions, Model};
use sft_eval::stats::BootstrapConfig;
use sft_eval::suite::evaluate::{evaluate, NamedSuite};
use sft_eval::suite::results::{EvalResults, ModelRef};
use sft_eval::suite::runner::{EvalSettings, NoProgress};

use crate::common::*;

fn runs() -> PathBuf {
    fixtures().join("harness_runs")
}

fn lmeval(name: &str) -> PathBuf {
    runs().join("lmeval").join(name)
}

/// Copy an lm-eval run folder (with its dot-folder) so a test can break it; returns the folder
/// holding the results and samples files.
fn copy_run(name: &str, to: &Path) -> (PathBuf, PathBuf) {
    let src = std::fs::read_dir(lmeval(name))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let dst = copy_dir(&src, &to.join(name).join(src.file_name().unwrap()));
    (to.join(name), dst)
}

fn file_starting(dir: &Path, prefix: &str) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .unwrap()
}

fn boot() -> BootstrapConfig {
    BootstrapConfig {
        resamples: 2000,
        ..Default::default()
    }
}

/// One suite of results, renamed so two sources line up.
fn only(mut r: EvalResults, suite: &str) -> EvalResults {
    r.suites.retain(|s| s.suite == suite);
    assert_eq!(r.suites.len(), 1, "{suite}");
    r
}

/// sft-eval's own scores of lm-eval's multiple-choice items, asked the way lm-eval asks them.
fn own(model: &str) -> EvalResults {
    let m = Model::load(&model_dir(model), &LoadOptions::default()).unwrap();
    let suites = [NamedSuite {
        source: "sft_eval_mc".into(),
        suite: lmeval_mc_suite("sft_eval_mc"),
    }];
    evaluate(
        &m,
        ModelRef {
            path: model.into(),
            fingerprint: model.into(),
        },
        &suites,
        &EvalSettings::default(),
        None,
        &mut NoProgress,
    )
    .unwrap()
}

#[test]
fn two_lm_eval_runs_pair_exactly_as_sft_evals_own_scores_of_the_same_items() {
    let read = |n: &str| {
        only(
            sft_eval::gate::read_results(&lmeval(n)).unwrap(),
            "sft_eval_mc/acc",
        )
    };
    let (lb, lf) = (read("base"), read("mistral"));
    let (ob, of) = (own("llama"), own("mistral"));
    // per item, lm-eval's acc is sft-eval's
    for (l, o) in [(&lb, &ob), (&lf, &of)] {
        let ls: Vec<(String, f64)> = l.suites[0]
            .items
            .iter()
            .map(|i| (i.id.clone(), i.score))
            .collect();
        let os: Vec<(String, f64)> = o.suites[0]
            .items
            .iter()
            .map(|i| (i.id.clone(), i.score))
            .collect();
        assert_eq!(ls, os);
    }
    let cl = compare(&lb, &lf, 0.95, &boot()).unwrap();
    let co = compare(&ob, &of, 0.95, &boot()).unwrap();
    let (a, b) = (&cl.suites[0], &co.suites[0]);
    println!(
        "lm-eval runs: Δ {:+.4} CI [{:.4}, {:.4}] p {:.4}",
        a.delta, a.ci.lower, a.ci.upper, a.p_value
    );
    assert!(
        a.counts.as_ref().is_some_and(|c| c.losses + c.gains > 0.0),
        "some items flip"
    );
    assert_eq!(a.n, b.n);
    assert_eq!(
        (a.delta, a.ci.lower, a.ci.upper),
        (b.delta, b.ci.lower, b.ci.upper)
    );
    assert_eq!(
        (a.p_value, a.mcnemar_p, a.mde),
        (b.p_value, b.mcnemar_p, b.mde)
    );
    let ids = |c: &sft_eval::gate::compare::SuiteComparison| {
        c.flipped.iter().map(|f| f.id.clone()).collect::<Vec<_>>()
    };
    assert_eq!(ids(a), ids(b));
}

#[test]
fn compare_and_gate_take_lm_eval_output_folders() {
    let cx = TestContext::new();
    let run = cx
        .cli(&[
            "compare",
            lmeval("base").to_str().unwrap(),
            lmeval("mistral").to_str().unwrap(),
            "--resamples",
            "500",
            "--report-dir",
            cx.join("rep").to_str().unwrap(),
        ])
        .expect(0);
    for suite in [
        "sft_eval_mc/acc",
        "sft_eval_mc/acc_norm",
        "sft_eval_gen/exact_match,strict-match",
        "sft_eval_gen/exact_match,flexible-extract",
    ] {
        assert!(run.stdout.contains(suite), "{suite}: {}", run.stdout);
    }
    // the gate's exit code is the library's verdict on the same logs
    let base = sft_eval::gate::read_results(&lmeval("base")).unwrap();
    let ft = sft_eval::gate::read_results(&Path::new("lmeval:").join(lmeval("mistral"))).unwrap();
    let outcome = sft_eval::gate::gate(
        &base,
        &ft,
        &Default::default(),
        &BootstrapConfig {
            resamples: 500,
            ..Default::default()
        },
    )
    .unwrap();
    let gate = cx.cli(&[
        "gate",
        "--baseline",
        lmeval("base").to_str().unwrap(),
        "--results",
        lmeval("mistral").to_str().unwrap(),
        "--resamples",
        "500",
    ]);
    assert_eq!(
        gate.code,
        if outcome.passed { 0 } else { 1 },
        "{}\n{}",
        gate.stdout,
        gate.stderr
    );
}

#[test]
fn a_changed_task_a_missing_or_changed_item_or_a_corpus_metric_is_an_error() {
    let cx = TestContext::new();
    let compare_err = |a: &Path, b: &Path| {
        let r = cx.cli(&[
            "compare",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            "--resamples",
            "200",
        ]);
        assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
        r.stderr
    };
    let e = compare_err(&lmeval("base"), &lmeval("v2"));
    assert!(e.contains("version 1.0 in the base results and 2.0"), "{e}");
    // a copy of the mistral run whose multiple-choice samples `edit` changed
    let edited = |name: &str, edit: &dyn Fn(&mut Vec<serde_json::Value>)| {
        let (run, dir) = copy_run("mistral", &cx.join(name));
        let samples = file_starting(&dir, "samples_sft_eval_mc");
        let mut lines: Vec<serde_json::Value> = std::fs::read_to_string(&samples)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        edit(&mut lines);
        let out: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(&samples, out).unwrap();
        run
    };
    // one document left out of the fine-tune's samples
    let run = edited("missing", &|lines| {
        lines.remove(0);
    });
    let e = compare_err(&lmeval("base"), &run);
    assert!(e.contains("19 documents") && e.contains("counts 20"), "{e}");
    // a document that is not the same question (its doc_hash changed)
    let run = edited("changed", &|lines| {
        lines[3]["doc_hash"] = serde_json::json!("0".repeat(64));
    });
    let e = compare_err(&lmeval("base"), &run);
    assert!(e.contains("different document or prompt"), "{e}");
    // a per-item value that disagrees with the reported score: logs of another run
    let run = edited("other", &|lines| {
        let flipped = 1.0 - lines[0]["acc"].as_f64().unwrap();
        lines[0]["acc"] = serde_json::json!(flipped);
    });
    let e = compare_err(&lmeval("base"), &run);
    assert!(e.contains("samples are of another run"), "{e}");
    // a metric aggregated over the corpus cannot be paired per item
    let (run, dir) = copy_run("mistral", &cx.join("corpus"));
    let results = file_starting(&dir, "results_");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&results).unwrap()).unwrap();
    v["configs"]["sft_eval_mc"]["metric_list"][0]["aggregation"] = serde_json::json!("f1");
    std::fs::write(&results, v.to_string()).unwrap();
    let e = compare_err(&lmeval("base"), &run);
    assert!(e.contains("aggregated by `f1`"), "{e}");
    // no samples at all (lm_eval run without --log_samples)
    let (run, dir) = copy_run("mistral", &cx.join("nosamples"));
    std::fs::remove_file(file_starting(&dir, "samples_sft_eval_gen")).unwrap();
    let e = compare_err(&lmeval("base"), &run);
    assert!(e.contains("--log_samples"), "{e}");
}

/// sft-eval's own results stay sft-eval's results whatever their file is called.
#[test]
fn an_sft_eval_results_file_named_like_lm_evals_is_read_as_sft_evals() {
    let cx = TestContext::new();
    let r = sft_eval::gate::read_results(&lmeval("base")).unwrap();
    let p = cx.write("results_base.json", &r.to_json());
    assert!(sft_eval::suite::external::detect(&p).is_none());
    let back = sft_eval::gate::read_results(&p).unwrap();
    assert_eq!(back, r);
}

#[test]
fn inspect_logs_pair_by_sample_and_epoch_clustered_by_sample() {
    let base = sft_eval::gate::read_results(&runs().join("inspect/base.json")).unwrap();
    let ft = sft_eval::gate::read_results(&runs().join("inspect/finetuned.json")).unwrap();
    let names: Vec<&str> = base.suites.iter().map(|s| s.suite.as_str()).collect();
    assert_eq!(names, ["task/match", "task/includes"]);
    let s = &base.suites[0];
    assert_eq!((s.n, s.mean), (16, 0.75));
    assert_eq!(s.items[0].cluster.as_deref(), Some("q0"));
    let c = compare(&base, &ft, 0.95, &boot()).unwrap();
    let m = &c.suites[0];
    assert_eq!(m.clusters, Some(8));
    assert!((m.delta + 0.125).abs() < 1e-12, "{}", m.delta);
    let lost: Vec<&str> = m.flipped.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(lost, ["q4#1", "q5#1", "q4#2", "q5#2"]);

    // an unfinished run, a sample in error, a binary log
    let cx = TestContext::new();
    let mut v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(runs().join("inspect/finetuned.json")).unwrap(),
    )
    .unwrap();
    v["status"] = serde_json::json!("cancelled");
    let p = cx.write("cancelled.json", &v.to_string());
    let r = cx
        .cli(&[
            "compare",
            runs().join("inspect/base.json").to_str().unwrap(),
            p.to_str().unwrap(),
        ])
        .expect(2);
    assert!(r.stderr.contains("`cancelled`"), "{}", r.stderr);
    v["status"] = serde_json::json!("success");
    v["samples"][2]["error"] = serde_json::json!({"message": "boom"});
    let p = cx.write("error.json", &v.to_string());
    let r = cx
        .cli(&[
            "compare",
            runs().join("inspect/base.json").to_str().unwrap(),
            p.to_str().unwrap(),
        ])
        .expect(2);
    assert!(r.stderr.contains("ended in an error"), "{}", r.stderr);
    let p = cx.write("run.eval", "PK");
    let r = cx
        .cli(&[
            "compare",
            runs().join("inspect/base.json").to_str().unwrap(),
            p.to_str().unwrap(),
        ])
        .expect(2);
    assert!(r.stderr.contains("inspect log convert"), "{}", r.stderr);
}

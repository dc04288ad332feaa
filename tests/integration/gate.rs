//! `compare`, `baseline record` and `gate`: A/A, regressions, the direction of every metric,
//! intervals that keep their width, strict pairing, and fail-closed exit codes.

use std::path::{Path, PathBuf};

use sft_eval::suite::results::EvalResults;

use crate::common::*;

/// A suite of 60 MC items (6 clusters) and a baseline of the llama fixture on it.
fn setup(cx: &TestContext) -> (PathBuf, PathBuf) {
    let items: String = (0..60)
        .map(|i| format!("{}\n", serde_json::json!({"id": format!("q{i}"), "input": format!("What follows {i}?"), "choices": [format!("{}", i + 1), format!("{}", i + 7), "zero"], "gold": 0, "cluster": format!("c{}", i / 10)})))
        .collect();
    let (suite, baseline) = (write_mc_suite(cx, &items), cx.join("baselines/llama.json"));
    record(cx, &suite, &baseline);
    (suite, baseline)
}

fn record(cx: &TestContext, suite: &Path, out: &Path) {
    cx.cli(&[
        "baseline",
        "record",
        model_dir("llama").to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--suites",
        suite.to_str().unwrap(),
        "--cache-dir",
        cx.join("cache").to_str().unwrap(),
        "--resamples",
        "2000",
    ])
    .expect(0);
}

/// `gate --baseline BASE --results FT [extra…]`.
fn gate(cx: &TestContext, base: &Path, ft: &Path, extra: &[&str]) -> Run {
    let mut a = vec![
        "gate",
        "--baseline",
        base.to_str().unwrap(),
        "--results",
        ft.to_str().unwrap(),
        "--resamples",
        "2000",
    ];
    a.extend_from_slice(extra);
    cx.cli(&a)
}

/// Set every item's score of the first suite by its index.
fn scores(r: &mut EvalResults, f: impl Fn(usize) -> f64) {
    for (i, it) in r.suites[0].items.iter_mut().enumerate() {
        it.score = f(i);
    }
}

fn policy(cx: &TestContext, name: &str, text: &str) -> String {
    cx.write(name, text).to_str().unwrap().to_string()
}

#[test]
fn a_checkpoint_against_itself_passes_only_where_its_items_can_tell() {
    let cx = TestContext::new();
    let (_, baseline) = setup(&cx);
    let (json, model, cache) = (cx.join("gate.json"), model_dir("llama"), cx.join("cache"));
    let run = |extra: &[&str]| {
        let mut a = vec![
            "gate",
            "--baseline",
            baseline.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
            "--resamples",
            "2000",
        ];
        a.extend_from_slice(extra);
        cx.cli(&a)
    };
    // 60 unchanged items cannot show a drop below 2 points: the interval keeps its width
    let r = run(&[]).expect(1);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let s = &v["comparison"]["suites"][0];
    assert_eq!(s["delta"].as_f64().unwrap(), 0.0);
    assert!(s["ci"]["lower"].as_f64().unwrap() < -0.05, "{s}");
    assert_eq!(v["verdicts"][0]["verdict"], "inconclusive");
    assert!(r.stdout.contains("too few items"), "{}", r.stdout);
    // …but they do show it is below 10 points
    let p = policy(&cx, "wide.toml", "[default]\nmargin = 0.10\n");
    let r = run(&["--policy", &p]).expect(0);
    assert!(
        r.stdout.contains("| mc ") && r.stdout.contains("Pass"),
        "{}",
        r.stdout
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["passed"], true);
    assert_eq!(
        v["comparison"]["suites"][0]["interval"],
        "tango_score_clustered"
    );
    // without clusters, the exact test confirms the pass
    let plain = cx.join("plain.json");
    rewrite_results(&baseline, &plain, |r| {
        for it in &mut r.suites[0].items {
            it.cluster = None;
        }
    });
    gate(
        &cx,
        &plain,
        &plain,
        &["--policy", &p, "--json", json.to_str().unwrap()],
    )
    .expect(0);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(
        v["verdicts"][0]["exact_p"].as_f64().unwrap() <= 0.025,
        "{v}"
    );
    // a suite whose MDE is above max_mde cannot pass
    let p = policy(
        &cx,
        "mde.toml",
        "[default]\nmargin = 0.10\nmax_mde = 0.15\n",
    );
    let r = run(&["--policy", &p]).expect(1);
    assert!(r.stdout.contains("max_mde"), "{}", r.stdout);
}

#[test]
fn a_clear_drop_fails_the_gate_with_exit_1_and_names_flipped_items() {
    let cx = TestContext::new();
    let (_, baseline) = setup(&cx);
    // the base had every item right; the fine-tune lost the first 45 (spread over the clusters)
    let (base, ft) = (cx.join("base.json"), cx.join("ft.json"));
    rewrite_results(&baseline, &base, |r| scores(r, |_| 1.0));
    rewrite_results(&baseline, &ft, |r| scores(r, |i| (i >= 45) as u8 as f64));
    let r = gate(&cx, &base, &ft, &[]).expect(1);
    assert!(
        r.stdout.contains("Fail") && r.stdout.contains("`q0`"),
        "{}",
        r.stdout
    );
    // compare shows the same numbers without gating
    let r = cx
        .cli(&["compare", base.to_str().unwrap(), ft.to_str().unwrap()])
        .expect(0);
    assert!(r.stdout.contains("-75.0"), "{}", r.stdout);
}

const NLL_SPEC: &str = "name = \"text\"\ncapability = \"lm\"\nversion = \"1\"\nscorer = \"rolling_nll\"\nmetric = \"nll\"\n[prompt]\ntemplate = \"{{ input }}\"\nchat = \"never\"\n";

#[test]
fn lower_is_better_metrics_are_judged_the_right_way() {
    let cx = TestContext::new();
    let items: String = (0..30)
        .map(|i| format!("{}\n", serde_json::json!({"id": format!("t{i}"), "input": format!("The number {i} comes after {} and before {}.", i + 1, i + 2)})))
        .collect();
    cx.write("suites/text/suite.toml", NLL_SPEC);
    cx.write("suites/text/items.jsonl", &items);
    let base = cx.join("base.json");
    record(&cx, &cx.join("suites/text"), &base);
    // a fine-tune whose NLL rose four-fold on every text
    let ft = cx.join("ft.json");
    rewrite_results(&base, &ft, |r| {
        for it in &mut r.suites[0].items {
            it.score *= 4.0;
        }
    });
    let p = policy(&cx, "nll.toml", "[suites.text]\nmargin = 0.1\n");
    let r = gate(&cx, &base, &ft, &["--policy", &p]).expect(1);
    assert!(r.stdout.contains("Fail"), "{}", r.stdout);
    let row = r.stdout.lines().find(|l| l.starts_with("| text")).unwrap();
    assert!(
        row.contains("nats/token, lower is better") && !row.contains("pts"),
        "{row}"
    );
    let rise = {
        let b = EvalResults::read(&base).unwrap();
        3.0 * b.suites[0].mean
    };
    let j: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::fs::read_dir(cx.join("reports"))
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .path()
                .join("report.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let delta = j["comparison"]["suites"][0]["delta"].as_f64().unwrap();
    assert!(
        (delta + rise).abs() < 1e-9,
        "Δ {delta} for a rise of {rise}"
    );
    // the fine-tune against itself, and a fine-tune whose NLL fell, pass
    let better = cx.join("better.json");
    rewrite_results(&base, &better, |r| {
        for it in &mut r.suites[0].items {
            it.score *= 0.5;
        }
    });
    gate(&cx, &base, &better, &["--policy", &p]).expect(0);
    // a margin in points does not apply to nats: the policy must give one in its unit
    let r = gate(&cx, &base, &better, &[]).expect(2);
    assert!(
        r.stderr.contains("nats/token") && r.stderr.contains("[suites.text] margin"),
        "{}",
        r.stderr
    );
    let p = policy(&cx, "rel.toml", "[default]\nrelative_margin = 0.05\n");
    gate(&cx, &base, &ft, &["--policy", &p]).expect(1);
}

#[test]
fn nothing_flipped_in_a_tiny_suite_is_not_a_pass() {
    let cx = TestContext::new();
    let items: String = (0..5)
        .map(|i| format!("{}\n", serde_json::json!({"id": format!("q{i}"), "input": format!("What follows {i}?"), "choices": [format!("{}", i + 1), "zero"], "gold": 0})))
        .collect();
    let suite = write_mc_suite(&cx, &items);
    let base = cx.join("five.json");
    record(&cx, &suite, &base);
    // identical results: 0 discordant pairs out of 5
    let r = gate(&cx, &base, &base, &[]).expect(1);
    assert!(r.stdout.contains("Inconclusive"), "{}", r.stdout);
    let v = EvalResults::read(&base).unwrap();
    assert_eq!(v.suites[0].n, 5);
    // the stated MDE is what 5 items can fail, not 0
    let line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("- **mc**"))
        .unwrap()
        .to_string();
    assert!(!line.contains("drop of 2.0 pts"), "{line}");
    // even a 30-point margin is too tight for 5 items
    let p = policy(&cx, "wide.toml", "[default]\nmargin = 0.3\n");
    gate(&cx, &base, &base, &["--policy", &p]).expect(1);
}

#[test]
fn items_are_paired_strictly_by_unique_ids() {
    let cx = TestContext::new();
    let (_, baseline) = setup(&cx);
    // 10 of 20 right at base → 1 of 20 in a fine-tune whose results repeat one id
    let (base, ft) = (cx.join("base.json"), cx.join("ft.json"));
    rewrite_results(&baseline, &base, |r| {
        r.suites[0].items.truncate(20);
        scores(r, |i| (i < 10) as u8 as f64);
    });
    rewrite_results(&baseline, &ft, |r| {
        r.suites[0].items.truncate(20);
        scores(r, |i| (i == 0) as u8 as f64);
        for it in &mut r.suites[0].items {
            it.id = "q0".into();
        }
    });
    let r = gate(&cx, &base, &ft, &[]).expect(2);
    assert!(r.stderr.contains("`q0` twice"), "{}", r.stderr);
    // items without ids in results
    rewrite_results(&baseline, &ft, |r| {
        for it in &mut r.suites[0].items {
            it.id = String::new();
        }
    });
    gate(&cx, &base, &ft, &[]).expect(2);
    // an item missing on one side
    rewrite_results(&baseline, &ft, |r| {
        r.suites[0].items.truncate(20);
        r.suites[0].items.pop();
    });
    let r = gate(&cx, &base, &ft, &[]).expect(2);
    assert!(r.stderr.contains("only in the base"), "{}", r.stderr);
    // a suite whose items lack ids or repeat one is refused at load, naming the line
    let run_eval = |items: &str| {
        cx.write(
            "suites/bad/suite.toml",
            &MC_SPEC.replace("\"mc\"", "\"bad\""),
        );
        cx.write("suites/bad/items.jsonl", items);
        cx.cli(&[
            "eval",
            model_dir("llama").to_str().unwrap(),
            "--suites",
            cx.join("suites/bad").to_str().unwrap(),
        ])
    };
    let r = run_eval("{\"id\":\"a\",\"input\":\"x\",\"choices\":[\"1\"],\"gold\":0}\n{\"input\":\"y\",\"choices\":[\"1\"],\"gold\":0}\n").expect(2);
    assert!(
        r.stderr.contains("items.jsonl:2") && r.stderr.contains("`id`"),
        "{}",
        r.stderr
    );
    let r = run_eval("{\"id\":\"a\",\"input\":\"x\",\"choices\":[\"1\"],\"gold\":0}\n\n{\"id\":\"a\",\"input\":\"y\",\"choices\":[\"1\"],\"gold\":0}\n").expect(2);
    assert!(
        r.stderr.contains("items.jsonl:3") && r.stderr.contains("line 1"),
        "{}",
        r.stderr
    );
}

#[test]
fn inputs_the_gate_cannot_judge_are_errors_whatever_the_policy_says() {
    let cx = TestContext::new();
    let (suite, baseline) = setup(&cx);
    let b = baseline.as_path();
    let lenient = "[default]\ninconclusive = \"pass\"\n";
    for bad in [
        "margin = 1.5",
        "margin = 2.0",
        "margin = 2",
        "margin = -0.1",
        "margin = nan",
        "margin = inf",
        "max_drop = -1.0",
        "relative_margin = 1.5",
        "max_mde = 0.0",
        "margin = 0.02\nrelative_margin = 0.1",
    ] {
        let p = policy(&cx, "bad.toml", &format!("{lenient}{bad}\n"));
        let r = gate(&cx, b, b, &["--policy", &p]).expect(2);
        assert!(r.stderr.contains("bad.toml"), "{bad}: {}", r.stderr);
    }
    let p = policy(&cx, "conf.toml", "confidence = 1.5\n");
    gate(&cx, b, b, &["--policy", &p]).expect(2);
    // a suite the policy names but the baseline lacks: its limits would silently not apply
    let p = policy(&cx, "typo.toml", "[suites.mcc]\nmargin = 0.0\n");
    let r = gate(&cx, b, b, &["--policy", &p]).expect(2);
    assert!(r.stderr.contains("mcc"), "{}", r.stderr);
    // a baseline with no suites
    let empty = cx.join("empty.json");
    rewrite_results(b, &empty, |r| r.suites.clear());
    let r = gate(
        &cx,
        &empty,
        &empty,
        &["--policy", &policy(&cx, "l.toml", lenient)],
    )
    .expect(2);
    assert!(r.stderr.contains("no suites"), "{}", r.stderr);
    // a suite evaluated for the fine-tune but absent from the baseline
    let other = cx.join("suites/other");
    cx.write(
        "suites/other/suite.toml",
        &MC_SPEC.replace("\"mc\"", "\"other\""),
    );
    std::fs::copy(suite.join("items.jsonl"), other.join("items.jsonl")).unwrap();
    let r = cx
        .cli(&[
            "gate",
            "--baseline",
            b.to_str().unwrap(),
            "--model",
            model_dir("llama").to_str().unwrap(),
            "--suites",
            &format!("{},{}", suite.display(), other.display()),
            "--cache-dir",
            cx.join("cache").to_str().unwrap(),
            "--policy",
            &policy(&cx, "l.toml", lenient),
        ])
        .expect(2);
    assert!(
        r.stderr.contains("only in the fine-tune: `other`"),
        "{}",
        r.stderr
    );
    // results with an extra suite
    let extra = cx.join("extra.json");
    rewrite_results(b, &extra, |r| {
        let mut s = r.suites[0].clone();
        s.suite = "other".into();
        r.suites.push(s);
    });
    gate(
        &cx,
        b,
        &extra,
        &["--policy", &policy(&cx, "l.toml", lenient)],
    )
    .expect(2);
    // a baseline edited by hand
    let edited = cx.join("edited.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(b).unwrap()).unwrap();
    v["suites"][0]["items"][0]["score"] =
        serde_json::json!(1.0 - v["suites"][0]["items"][0]["score"].as_f64().unwrap());
    std::fs::write(&edited, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    let r = gate(&cx, &edited, b, &[]).expect(2);
    assert!(r.stderr.contains("checksum"), "{}", r.stderr);
    // a baseline from an older sft-eval
    v["schema_version"] = serde_json::json!(1);
    std::fs::write(&edited, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    let r = gate(&cx, &edited, b, &[]).expect(2);
    assert!(
        r.stderr.contains("older sft-eval") && r.stderr.contains("baseline record"),
        "{}",
        r.stderr
    );
    // a statistic that cannot be computed (one item has no variance) is an error, not a verdict
    let one = cx.join("one.json");
    rewrite_results(b, &one, |r| r.suites[0].items.truncate(1));
    let r = gate(
        &cx,
        &one,
        &one,
        &["--policy", &policy(&cx, "l.toml", lenient)],
    )
    .expect(2);
    assert!(r.stderr.contains("at least 2"), "{}", r.stderr);
    // a NaN score cannot be written as JSON; a score outside [0, 1] for a proportion is refused
    let out = cx.join("out.json");
    rewrite_results(b, &out, |r| r.suites[0].items[3].score = 1.5);
    let r = gate(&cx, b, &out, &[]).expect(2);
    assert!(r.stderr.contains("`q3`"), "{}", r.stderr);
}

#[test]
fn errors_are_never_a_pass() {
    let cx = TestContext::new();
    let (_, baseline) = setup(&cx);
    let b = baseline.as_path();
    // truncated results file
    let trunc = cx.join("trunc.json");
    let text = std::fs::read_to_string(b).unwrap();
    std::fs::write(&trunc, &text[..text.len() / 2]).unwrap();
    let r = gate(&cx, b, &trunc, &[]).expect(2);
    assert!(
        r.stderr.contains("trunc.json") && r.stderr.contains("not a complete"),
        "{}",
        r.stderr
    );
    // a different suite version (hash mismatch)
    let other = cx.join("other.json");
    rewrite_results(b, &other, |r| {
        r.suites[0].suite_hash = "0000deadbeef".into()
    });
    let r = gate(&cx, b, &other, &[]).expect(2);
    assert!(
        r.stderr.contains("different suite contents") && r.stderr.contains("hint:"),
        "{}",
        r.stderr
    );
    // a suite missing from the fine-tune's results
    let missing = cx.join("missing.json");
    rewrite_results(b, &missing, |r| r.suites.clear());
    gate(&cx, b, &missing, &[]).expect(2);
    // different settings
    let settings = cx.join("settings.json");
    rewrite_results(b, &settings, |r| r.settings.limit = 5);
    gate(&cx, b, &settings, &[]).expect(2);
    // a required suite the baseline lacks
    let p = policy(
        &cx,
        "gate.toml",
        "required = [\"math\"]\n[default]\nmargin = 0.05\n",
    );
    let r = gate(&cx, b, b, &["--policy", &p]).expect(2);
    assert!(r.stderr.contains("math"), "{}", r.stderr);
    // no such baseline
    cx.cli(&[
        "gate",
        "--baseline",
        "/no/such.json",
        "--results",
        b.to_str().unwrap(),
    ])
    .expect(2);
}

#[test]
fn labels_and_the_mde_follow_the_policy_and_the_clusters() {
    let cx = TestContext::new();
    let (_, baseline) = setup(&cx);
    let (base, ft) = (cx.join("base.json"), cx.join("ft.json"));
    rewrite_results(&baseline, &base, |r| {
        scores(r, |i| if i % 2 == 0 { 1.0 } else { 0.0 })
    });
    rewrite_results(&baseline, &ft, |r| {
        scores(r, |i| if i % 2 == 0 && i > 4 { 1.0 } else { 0.0 })
    });
    let p = policy(&cx, "c90.toml", "confidence = 0.9\n");
    let json = cx.join("g.json");
    let r = gate(
        &cx,
        &base,
        &ft,
        &["--policy", &p, "--json", json.to_str().unwrap()],
    );
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    assert!(
        r.stdout.contains("90% CI") && !r.stdout.contains("95%"),
        "{}",
        r.stdout
    );
    // the 60 items sit in 6 clusters: the MDE counts them as 6, not as 60
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let s = &v["comparison"]["suites"][0];
    assert_eq!(s["clusters"], 6);
    assert_eq!(s["interval"], "tango_score_clustered");
    let clustered = s["mde"].as_f64().unwrap();
    rewrite_results(&base, &base, |r| {
        for it in &mut r.suites[0].items {
            it.cluster = None;
        }
    });
    rewrite_results(&ft, &ft, |r| {
        for it in &mut r.suites[0].items {
            it.cluster = None;
        }
    });
    gate(
        &cx,
        &base,
        &ft,
        &["--policy", &p, "--json", json.to_str().unwrap()],
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let iid = v["comparison"]["suites"][0]["mde"].as_f64().unwrap();
    // t(5) critical values alone make it about 1.6× the iid one
    assert!(clustered > 1.4 * iid, "clustered {clustered} vs iid {iid}");
}

#[test]
fn gate_markdown_snapshot() {
    let cx = TestContext::new();
    let (_, baseline) = setup(&cx);
    let (base, ft) = (cx.join("base.json"), cx.join("ft.json"));
    // fixed, synthetic scores: half right at base; the fine-tune loses items 0, 2, 4 and gains 1
    for (path, lost) in [(&base, false), (&ft, true)] {
        rewrite_results(&baseline, path, |r| {
            r.model.path = if lost { "finetuned" } else { "base" }.into();
            scores(r, |i| {
                let mut s = if i % 2 == 0 { 1.0 } else { 0.0 };
                if lost && (i == 0 || i == 2 || i == 4) {
                    s = 0.0;
                }
                if lost && i == 1 {
                    s = 1.0;
                }
                s
            });
        });
    }
    let p = policy(&cx, "gate.toml", "[default]\nmargin = 0.15\n");
    let r = gate(&cx, &base, &ft, &["--policy", &p]);
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    insta::assert_snapshot!(r.stdout);
    // the default report folder: reports/<finetuned>-vs-<base>-<hash of both fingerprints>
    let reports: Vec<PathBuf> = std::fs::read_dir(cx.join("reports"))
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
    assert!(r.stderr.contains("report.md"), "{}", r.stderr);
    // report.md is the markdown with the chart in front of the verdicts
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert_eq!(
        report.replace(
            "\n### Charts\n\n![Δ with CI per suite, coloured by verdict](delta.svg)\n",
            ""
        ),
        r.stdout
    );
    assert!(report.find("### Charts").unwrap() < report.find("### Verdicts").unwrap());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["passed"], r.code == 0);
    assert!(!dir.join("loss.svg").exists() && !dir.join("gain_vs_forgetting.svg").exists());
    let svg = std::fs::read_to_string(dir.join("delta.svg")).unwrap();
    roxmltree::Document::parse(&svg).unwrap();
    insta::assert_snapshot!("gate_delta_svg", svg);
    // the same comparison again writes the same folder
    let again = gate(&cx, &base, &ft, &["--policy", &p]);
    assert_eq!(again.code, r.code);
    assert_eq!(std::fs::read_dir(cx.join("reports")).unwrap().count(), 1);
}

/// Results with a second suite, `new`, a copy of `mc` under another name: the new task.
fn with_new_task(
    baseline: &Path,
    dst: &Path,
    name: &str,
    mc: impl Fn(usize) -> f64,
    new: impl Fn(usize) -> f64,
) {
    rewrite_results(baseline, dst, |r| {
        r.model.path = name.into();
        r.model.fingerprint = format!("fingerprint-of-{name}");
        let mut second = r.suites[0].clone();
        second.suite = "new".into();
        for (i, it) in second.items.iter_mut().enumerate() {
            it.score = new(i);
        }
        scores(r, mc);
        r.suites.push(second);
    });
}

#[test]
fn several_fine_tunes_report_gain_against_forgetting() {
    let cx = TestContext::new();
    let (_, baseline) = setup(&cx);
    let p = |n: &str| cx.join(format!("{n}.json"));
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
    let rep = cx.join("rep");
    let run = |extra: &[&str]| {
        let mut a: Vec<String> = vec![
            "compare".into(),
            p("base").to_str().unwrap().to_string(),
            p("careful").to_str().unwrap().to_string(),
            p("greedy").to_str().unwrap().to_string(),
            "--resamples".into(),
            "2000".into(),
            "--report-dir".into(),
            rep.to_str().unwrap().to_string(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        cx.cli(&a)
    };
    let r = run(&["--new-task", "new"]).expect(0);
    insta::assert_snapshot!("several_finetunes_markdown", r.stdout);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(rep.join("report.json")).unwrap()).unwrap();
    let t = |i: usize, k: &str| json["finetunes"][i]["tradeoff"][k].as_f64().unwrap();
    assert!((t(0, "gain") - 10.0 / 60.0).abs() < 1e-9);
    assert_eq!(t(0, "forgetting"), 0.0);
    // forgetting nothing still has an interval of positive width
    let ci = &json["finetunes"][0]["tradeoff"]["forgetting_ci"];
    assert!(ci["upper"].as_f64().unwrap() > 0.01, "{ci}");
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
    let r = run(&[]).expect(0);
    assert!(
        r.stdout.contains("## sft-eval: careful vs base") && !r.stdout.contains("New-task gain"),
        "{}",
        r.stdout
    );
    assert!(!rep.join("gain_vs_forgetting.svg").exists());
    let r = run(&["--new-task", "math"]).expect(2);
    assert!(
        r.stderr.contains("`math`") && r.stderr.contains("mc, new"),
        "{}",
        r.stderr
    );
}

#[test]
fn compare_reads_a_training_run_directory() {
    let cx = TestContext::new();
    let (suite, _) = setup(&cx);
    let run = cx.join("run-a");
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
        cx.cli(&[
            "compare",
            model_dir("llama").to_str().unwrap(),
            ft.to_str().unwrap(),
            "--suites",
            suite.to_str().unwrap(),
            "--cache-dir",
            cx.join("cache").to_str().unwrap(),
            "--resamples",
            "1000",
            "--drift-items",
            "5",
            "--report-dir",
            rep.to_str().unwrap(),
        ])
    };
    let md = compare(&run, &cx.join("rep")).expect(0).stdout;
    // the run directory is compared through its final checkpoint…
    let md_final = compare(&run.join("final"), &cx.join("rep-final"))
        .expect(0)
        .stdout;
    assert_eq!(md, md_final);
    assert!(md.contains("Label-free drift"), "{md}");
    // …and its loss curve is charted
    let rep = cx.join("rep");
    let report = std::fs::read_to_string(rep.join("report.md")).unwrap();
    assert!(report.contains("![Training loss](loss.svg)"), "{report}");
    let svg = std::fs::read_to_string(rep.join("loss.svg")).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    assert!(doc
        .descendants()
        .any(|n| n.has_tag_name("text") && n.text().map(str::trim) == Some("run-a")));
    assert!(!cx.join("rep-final/loss.svg").exists());
    // a broken log is an error naming the file and line
    let log = run.join("log.jsonl");
    let mut text = std::fs::read_to_string(&log).unwrap();
    text.push_str("{\"step\": 9, \"loss\": \"oops\"}\n");
    std::fs::write(&log, &text).unwrap();
    let r = compare(&run, &cx.join("rep")).expect(2);
    let line = format!("log.jsonl:{}:", text.lines().count());
    assert!(
        r.stderr.contains(&line) && r.stderr.contains("hint:"),
        "{}",
        r.stderr
    );
}

#[test]
fn compare_of_checkpoints_reports_label_free_drift() {
    let cx = TestContext::new();
    let (suite, _) = setup(&cx);
    // a fine-tune: a few steps of SFT on the TRL fixture data
    let run = cx.join("run");
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
    let json = cx.join("cmp.json");
    let args = |ft: &Path| {
        cx.cli(&[
            "compare",
            model_dir("llama").to_str().unwrap(),
            ft.to_str().unwrap(),
            "--suites",
            suite.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
            "--cache-dir",
            cx.join("cache").to_str().unwrap(),
            "--resamples",
            "1000",
        ])
    };
    let md = args(&run.join("final")).expect(0).stdout;
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
    args(&model_dir("llama")).expect(0);
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
    let cx = TestContext::new();
    let (_, baseline) = setup(&cx);
    let b = baseline.to_str().unwrap();
    let cache = cx.join("cache");
    let r = cx
        .cli(&[
            "baseline",
            "update",
            "--baseline",
            b,
            "--cache-dir",
            cache.to_str().unwrap(),
        ])
        .expect(0);
    assert!(r.stdout.contains("no changes"), "{}", r.stdout);
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
        cx.cli(&v)
    };
    let r = args(false).expect(0);
    assert!(
        r.stdout.contains("model fingerprint") && r.stdout.contains("not written"),
        "{}",
        r.stdout
    );
    assert_eq!(std::fs::read_to_string(&baseline).unwrap(), before);
    let r = args(true).expect(0);
    assert!(r.stdout.contains("written"), "{}", r.stdout);
    assert_ne!(std::fs::read_to_string(&baseline).unwrap(), before);
    // what it wrote is a sealed baseline the gate reads
    EvalResults::read(&baseline).unwrap();
}

#[test]
fn every_file_the_loader_reads_is_in_the_cache_key() {
    use sft_eval::model::fingerprint::{fingerprint, INPUT_FILES};
    let cx = TestContext::new();
    let dir = copy_fixture("llama", cx.path());
    let before = fingerprint(&dir).unwrap();
    // an unrelated file changes nothing; one that would hang a reader is not read
    std::fs::write(dir.join("README.md"), "notes").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink("/dev/zero", dir.join("extra.bin")).unwrap();
    assert_eq!(fingerprint(&dir).unwrap(), before);
    let weights = sft_eval::model::checkpoint::weight_file_names(&dir)
        .unwrap()
        .0;
    for name in INPUT_FILES
        .iter()
        .copied()
        .chain(weights.iter().map(String::as_str))
    {
        let p = dir.join(name);
        let saved = std::fs::read(&p).ok();
        let mut bytes = saved.clone().unwrap_or_else(|| b"{}".to_vec());
        bytes.push(b' ');
        std::fs::write(&p, &bytes).unwrap();
        assert_ne!(
            fingerprint(&dir).unwrap(),
            before,
            "{name} is not in the key"
        );
        match saved {
            Some(b) => std::fs::write(&p, b).unwrap(),
            None => std::fs::remove_file(&p).unwrap(),
        }
        assert_eq!(fingerprint(&dir).unwrap(), before, "{name} restored");
    }
    // a listed file that is not a regular file is an error, never a hang
    let gen = dir.join("generation_config.json");
    let saved = std::fs::read(&gen).ok();
    let _ = std::fs::remove_file(&gen);
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("/dev/zero", &gen).unwrap();
        let e = fingerprint(&dir).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        std::fs::remove_file(&gen).unwrap();
    }
    if let Some(b) = saved {
        std::fs::write(&gen, b).unwrap();
    }
}

#[test]
fn a_changed_generation_config_is_never_served_from_the_cache() {
    let cx = TestContext::new();
    let dir = copy_fixture("llama", cx.path());
    let items: String = (0..4)
        .map(|i| format!("{}\n", serde_json::json!({"id": format!("g{i}"), "input": format!("Count: {i}"), "target": "7"})))
        .collect();
    cx.write(
        "suites/gen/suite.toml",
        "name = \"gen\"\ncapability = \"math\"\nversion = \"1\"\nscorer = \"generate_number\"\nmetric = \"exact_match\"\n[prompt]\ntemplate = \"{{ input }}\"\nchat = \"never\"\n[generation]\nmax_new_tokens = 8\n",
    );
    cx.write("suites/gen/items.jsonl", &items);
    let eval = |out: &str| {
        cx.cli(&[
            "eval",
            dir.to_str().unwrap(),
            "--suites",
            cx.join("suites/gen").to_str().unwrap(),
            "--cache-dir",
            cx.join("cache").to_str().unwrap(),
            "-o",
            cx.join(out).to_str().unwrap(),
        ])
        .expect(0)
    };
    let first = eval("a.json");
    assert!(!first.stderr.contains("[cached]"), "{}", first.stderr);
    assert!(eval("b.json").stderr.contains("[cached]"));
    let a = EvalResults::read(&cx.join("a.json")).unwrap();
    // every token the model generated first now ends generation
    let firsts: Vec<u32> = {
        let m = load("llama");
        a.suites[0]
            .items
            .iter()
            .filter_map(|it| it.output.as_ref())
            .filter_map(|o| m.tokenizer.encode(o, false).ok()?.first().copied())
            .collect()
    };
    assert!(!firsts.is_empty());
    std::fs::write(
        dir.join("generation_config.json"),
        serde_json::json!({"eos_token_id": firsts}).to_string(),
    )
    .unwrap();
    let third = eval("c.json");
    assert!(!third.stderr.contains("[cached]"), "{}", third.stderr);
    let c = EvalResults::read(&cx.join("c.json")).unwrap();
    assert_ne!(a.model.fingerprint, c.model.fingerprint);
    assert_ne!(
        a.suites[0]
            .items
            .iter()
            .map(|i| &i.output)
            .collect::<Vec<_>>(),
        c.suites[0]
            .items
            .iter()
            .map(|i| &i.output)
            .collect::<Vec<_>>()
    );
}

/// CI reads a JUnit report (checked with a real consumer, Python's junitparser, where `.ci/run`
/// installed it) and, in GitHub Actions, annotations.
#[test]
fn junit_and_github_annotations_for_ci() {
    let cx = TestContext::new().env("GITHUB_ACTIONS", "true");
    let (_, baseline) = setup(&cx);
    let (base, ft) = (cx.join("base.json"), cx.join("ft.json"));
    rewrite_results(&baseline, &base, |r| scores(r, |_| 1.0));
    rewrite_results(&baseline, &ft, |r| scores(r, |i| (i >= 45) as u8 as f64));
    let junit = cx.join("gate.xml");
    let r = gate(&cx, &base, &ft, &["--junit", junit.to_str().unwrap()]).expect(1);
    assert!(
        r.stdout.contains("::error title=sft-eval gate: mc::Fail: "),
        "{}",
        r.stdout
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let case = doc
        .descendants()
        .find(|n| n.has_tag_name("testcase"))
        .unwrap();
    assert_eq!(case.attribute("name"), Some("mc"));
    let failure = case.children().find(|n| n.has_tag_name("failure")).unwrap();
    assert_eq!(failure.attribute("type"), Some("regression"));
    assert_eq!(doc.root_element().attribute("failures"), Some("1"));
    // a gate that cannot judge: one case in error, and an error annotation
    let p = policy(&cx, "bad.toml", "[default]\nmargin = 2\n");
    let err_xml = cx.join("err.xml");
    let r = gate(
        &cx,
        &base,
        &ft,
        &["--policy", &p, "--junit", err_xml.to_str().unwrap()],
    )
    .expect(2);
    assert!(
        r.stdout.starts_with("::error title=sft-eval gate::"),
        "{}",
        r.stdout
    );
    let err_doc = std::fs::read_to_string(&err_xml).unwrap();
    let d = roxmltree::Document::parse(&err_doc).unwrap();
    assert_eq!(d.root_element().attribute("errors"), Some("1"));
    // a real consumer reads both
    let Some(python) = std::env::var_os("SFT_EVAL_JUNIT_PYTHON") else {
        eprintln!(
            "skipping the junitparser check: SFT_EVAL_JUNIT_PYTHON is not set (.ci/run sets it)"
        );
        return;
    };
    let check = "import sys\nfrom junitparser import JUnitXml, Failure, Error\nx = JUnitXml.fromfile(sys.argv[1])\nres = [(c.name, [type(r).__name__ for r in c.result]) for s in x for c in s]\nprint(res)\n";
    for (file, want) in [
        (&junit, "[('mc', ['Failure'])]"),
        (&err_xml, "[('gate', ['Error'])]"),
    ] {
        let o = std::process::Command::new(&python)
            .args(["-c", check, file.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), want);
    }
}

//! `compare`, `baseline record` and `gate`: A/A, regressions, the direction of every metric,
//! intervals that keep their width, strict pairing, and fail-closed exit codes.

use std::path::{Path, PathBuf};

use sft_eval::suite::results::EvalResults;

use crate::common::*;

mod ci;
mod compare;

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

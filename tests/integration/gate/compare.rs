//! `compare` on its inputs: several fine-tunes, training runs, checkpoints (label-free drift),
//! baseline updates, and the cache keys that decide when a score may be reused.

use super::*;

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

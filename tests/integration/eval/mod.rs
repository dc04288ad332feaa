//! `sft-eval eval`: suite files, scoring, results schema, cache, errors.

use std::path::Path;

use crate::common::*;

mod suites;

fn write_suite(dir: &Path, scorer: &str, items: &str, extra: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("suite.toml"),
        format!(
            "name = \"tiny\"\ncapability = \"qa\"\nversion = \"1\"\nscorer = \"{scorer}\"\nmetric = \"acc\"\n\n[prompt]\ntemplate = \"Question: {{{{ input }}}}\\nAnswer:\"\nchat = \"never\"\n{extra}"
        ),
    )
    .unwrap();
    std::fs::write(dir.join("items.jsonl"), items).unwrap();
}

fn eval(args: &[&str]) -> (i32, String, String) {
    let mut a = vec!["eval"];
    a.extend_from_slice(args);
    let r = TestContext::new().cli(&a);
    (r.code, r.stdout, r.stderr)
}

const MC: &str = "{\"id\":\"a\",\"input\":\"What is 2+2?\",\"choices\":[\"4\",\"5\",\"22\"],\"gold\":0}\n{\"id\":\"b\",\"input\":\"Capital of France?\",\"choices\":[\"Paris\",\"Rome\"],\"gold\":0,\"cluster\":\"geo\"}\n";

#[test]
fn mc_suite_scores_every_item_and_caches_by_content() {
    let tmp = tempdir();
    let suite = tmp.path().join("suites/tiny");
    write_suite(&suite, "mc_loglik", MC, "");
    let cache = tmp.path().join("cache");
    let model = model_dir("llama");
    let out1 = tmp.path().join("r1.json");
    let (code, _, err) = eval(&[
        model.to_str().unwrap(),
        "--suites",
        suite.to_str().unwrap(),
        "-o",
        out1.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out1).unwrap()).unwrap();
    assert_eq!(r["schema_version"], 2);
    assert_eq!(r["checksum"].as_str().unwrap().len(), 64);
    let s = &r["suites"][0];
    assert_eq!(
        (&s["direction"], &s["unit"]),
        (
            &serde_json::json!("higher_is_better"),
            &serde_json::json!("proportion")
        )
    );
    assert_eq!(s["n"], 2);
    assert_eq!(s["items"][0]["logliks"].as_array().unwrap().len(), 3);
    assert!(s["items"].as_array().unwrap().iter().all(|i| i["logliks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l.as_f64().unwrap() < 0.0)));
    assert!(s["extra"]["acc_norm"].is_number());
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1);
    // unchanged: served from the cache, identical
    let out2 = tmp.path().join("r2.json");
    eval(&[
        model.to_str().unwrap(),
        "--suites",
        suite.to_str().unwrap(),
        "-o",
        out2.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
    ]);
    let r2: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out2).unwrap()).unwrap();
    assert_eq!(r["suites"], r2["suites"]);
    // an overwritten checkpoint is never served stale: change one weight byte (the low
    // mantissa byte of the last f32, so the weight stays a finite number)
    let copy = copy_fixture("llama", tmp.path());
    let w = copy.join("model.safetensors");
    let mut bytes = std::fs::read(&w).unwrap();
    let n = bytes.len();
    bytes[n - 4] ^= 0x01;
    std::fs::write(&w, bytes).unwrap();
    let out3 = tmp.path().join("r3.json");
    let (code, _, err) = eval(&[
        copy.to_str().unwrap(),
        "--suites",
        suite.to_str().unwrap(),
        "-o",
        out3.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 2);
    let r3: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out3).unwrap()).unwrap();
    assert_ne!(r3["model"]["fingerprint"], r["model"]["fingerprint"]);
}

#[test]
fn generation_suite_counts_format_failures_apart() {
    let tmp = tempdir();
    let suite = tmp.path().join("gen");
    let items = "{\"id\":\"1\",\"input\":\"2+3\",\"target\":\"5\"}\n{\"id\":\"2\",\"input\":\"7*6\",\"target\":\"42\"}\n";
    write_suite(
        &suite,
        "generate_number",
        items,
        "\n[generation]\nmax_new_tokens = 8\n",
    );
    let (code, out, err) = eval(&[
        model_dir("gpt2").to_str().unwrap(),
        "--suites",
        suite.to_str().unwrap(),
        "--no-cache",
    ]);
    assert_eq!(code, 0, "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    let s = &r["suites"][0];
    for it in s["items"].as_array().unwrap() {
        // a random model: either no number (format failure) or a wrong/right number, never both
        let ff = it["format_failure"].as_bool().unwrap();
        assert_eq!(ff, it["extracted"].is_null());
        assert!(it["output"].is_string());
    }
    let ff = s["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["format_failure"].as_bool().unwrap())
        .count();
    assert_eq!(s["format_failures"].as_u64().unwrap() as usize, ff);
}

#[test]
fn bad_suites_are_clear_errors() {
    let tmp = tempdir();
    let model = model_dir("llama");
    let (code, _, err) = eval(&[
        model.to_str().unwrap(),
        "--suites",
        "nosuch",
        "--suites-dir",
        tmp.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("unknown suite `nosuch`") && err.contains("gsm8k"),
        "{err}"
    );
    let suite = tmp.path().join("bad");
    write_suite(&suite, "mc_loglik", "{\"id\":\"a\",\"input\":\"x\",\"choices\":[\"y\"],\"gold\":0}\n{\"id\":\"b\",\"inptu\":\"x\"}\n", "");
    let (code, _, err) = eval(&[model.to_str().unwrap(), "--suites", suite.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("items.jsonl:2") && err.contains("inptu"),
        "{err}"
    );
    let suite = tmp.path().join("bad2");
    write_suite(&suite, "no_such_scorer", MC, "");
    let (code, _, err) = eval(&[model.to_str().unwrap(), "--suites", suite.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("suite.toml") && err.contains("no_such_scorer"),
        "{err}"
    );
    let suite = tmp.path().join("empty");
    write_suite(&suite, "mc_loglik", "", "");
    let (code, _, err) = eval(&[model.to_str().unwrap(), "--suites", suite.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("no items"), "{err}");
}

/// `--device`: `cpu` (also from `SFT_EVAL_DEVICE`) scores as the default does; a malformed name is
/// a usage error; `cuda` in a build without the feature says how to get one, before any work.
#[test]
fn device_flag_runs_on_cpu_and_names_what_a_gpu_needs() {
    let tmp = tempdir();
    let suite = tmp.path().join("suites/tiny");
    write_suite(&suite, "mc_loglik", MC, "");
    let model = model_dir("llama");
    let (m, s) = (model.to_str().unwrap(), suite.to_str().unwrap());
    let (code, out_default, err) = eval(&[m, "--suites", s, "--no-cache"]);
    assert_eq!(code, 0, "{err}");
    let (code, out_cpu, err) = eval(&[m, "--suites", s, "--no-cache", "--device", "cpu"]);
    assert_eq!(code, 0, "{err}");
    let items = |out: &str| {
        let v: serde_json::Value = serde_json::from_str(out).unwrap();
        v["suites"][0]["items"].clone()
    };
    assert_eq!(items(&out_default), items(&out_cpu));
    let (code, _, err) = eval(&[m, "--suites", s, "--device", "tpu"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("expected cpu, cuda or cuda:N"), "{err}");
    if !cfg!(feature = "cuda") {
        let (code, _, err) = eval(&[m, "--suites", s, "--no-cache", "--device", "cuda:0"]);
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains("cuda:0") && err.contains("--features cuda"),
            "{err}"
        );
        let r = TestContext::new()
            .env("SFT_EVAL_DEVICE", "cuda")
            .cli(&["eval", m, "--suites", s, "--no-cache"])
            .expect(2);
        assert!(r.stderr.contains("--features cuda"), "{}", r.stderr);
    }
}

/// Per-request log-likelihoods and acc/acc_norm equal lm-evaluation-harness 0.4.13's on the same
/// checkpoints (tests/fixtures/make_lmeval_fixtures.py), including moved trailing whitespace and
/// empty contexts; the shared-prompt path (each context once, choices from its KV cache, batched
/// across items as `eval` runs it) equals the full recompute within 1e-5.
#[test]
fn loglikelihoods_match_lm_eval_per_item() {
    use sft_eval::model::score::{encode_pair, loglikelihood, loglikelihood_shared};
    use sft_eval::suite::scorer::mc_loglik;
    for m in ["llama", "gpt2", "mistral"] {
        let model = load(m);
        let j: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(fixtures().join(format!("lmeval/mc_{m}.json"))).unwrap(),
        )
        .unwrap();
        for (task, t) in j["tasks"].as_object().unwrap() {
            let (mut acc, mut acc_norm, mut n) = (0.0, 0.0, 0.0);
            let mut every = Vec::new();
            let mut full = Vec::new();
            for doc in t["docs"].as_array().unwrap() {
                let reqs = doc["requests"].as_array().unwrap();
                let ours: Vec<_> = reqs
                    .iter()
                    .map(|r| {
                        encode_pair(
                            &model,
                            r["context"].as_str().unwrap(),
                            r["continuation"].as_str().unwrap(),
                            true,
                        )
                        .unwrap()
                    })
                    .collect();
                for (o, r) in ours.iter().zip(reqs) {
                    let (c, x) = (ids(&r["context_tokens"]), ids(&r["continuation_tokens"]));
                    assert_eq!(
                        o.tokens,
                        [c, x.clone()].concat(),
                        "{m}/{task}: tokens of {:?}",
                        r["context"]
                    );
                    assert_eq!(o.n_cont, x.len());
                }
                let lls = loglikelihood(&model, &ours, 4).unwrap();
                every.extend(ours.iter().cloned());
                full.extend(lls.iter().copied());
                for (l, r) in lls.iter().zip(reqs) {
                    let want = r["loglikelihood"].as_f64().unwrap();
                    assert!(
                        (l.logprob - want).abs() <= 1e-3,
                        "{m}/{task}: {} vs lm-eval {want}",
                        l.logprob
                    );
                    assert_eq!(l.is_greedy, r["is_greedy"].as_bool().unwrap());
                }
                let choices: Vec<String> = doc["choices"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap().to_string())
                    .collect();
                let s = mc_loglik::score(&lls, &choices, doc["gold"].as_u64().unwrap() as usize);
                acc += s.acc;
                acc_norm += s.acc_norm;
                n += 1.0;
            }
            assert!(
                (acc / n - t["acc"].as_f64().unwrap()).abs() < 1e-9,
                "{m}/{task} acc"
            );
            for bs in [1, 8] {
                let shared = loglikelihood_shared(&model, &every, bs).unwrap();
                for (k, (a, b)) in full.iter().zip(&shared).enumerate() {
                    assert!(
                        (a.logprob - b.logprob).abs() < 1e-5 && a.is_greedy == b.is_greedy,
                        "{m}/{task} request {k}: full {a:?} vs shared {b:?}"
                    );
                }
            }
            assert!(
                (acc_norm / n - t["acc_norm"].as_f64().unwrap()).abs() < 1e-9,
                "{m}/{task} acc_norm"
            );
        }
    }
}

/// Rolling log-likelihoods (perplexity) equal lm-eval's, windows included (gpt2's 64-token
/// context splits the longest text into four windows).
#[test]
fn rolling_loglikelihood_matches_lm_eval() {
    use sft_eval::model::score::{loglikelihood_rolling, rolling_windows};
    for m in ["llama", "gpt2"] {
        let model = load(m);
        let j: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(fixtures().join(format!("lmeval/rolling_{m}.json"))).unwrap(),
        )
        .unwrap();
        let prefix = j["lm"]["prefix_token_id"].as_u64().unwrap() as u32;
        let max_len = j["lm"]["max_length"].as_u64().unwrap() as usize;
        for doc in j["docs"].as_array().unwrap() {
            let text = doc["text"].as_str().unwrap();
            let tokens = ids(&doc["tokens"]);
            assert_eq!(model.tokenizer.encode(text, true).unwrap(), tokens, "{m}");
            let ours = rolling_windows(&tokens, prefix, max_len);
            let theirs = doc["windows"].as_array().unwrap();
            assert_eq!(ours.len(), theirs.len(), "{m}: windows");
            for (o, t) in ours.iter().zip(theirs) {
                assert_eq!(
                    o.tokens,
                    [ids(&t["context_tokens"]), ids(&t["predicted_tokens"])].concat()
                );
            }
            let (ll, n) = loglikelihood_rolling(&model, text, 4).unwrap();
            assert_eq!(n, doc["token_count"].as_u64().unwrap() as usize);
            let want = doc["loglikelihood"].as_f64().unwrap();
            assert!(
                (ll - want).abs() <= 1e-3 * want.abs().max(1.0),
                "{m}: {ll} vs lm-eval {want}"
            );
        }
    }
}

#[test]
fn rolling_nll_suite_reports_perplexity_consistent_with_lm_eval() {
    let tmp = tempdir();
    let suite = tmp.path().join("ppl");
    let j: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("lmeval/rolling_gpt2.json")).unwrap(),
    )
    .unwrap();
    let docs = j["docs"].as_array().unwrap();
    let items: String = docs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            format!(
                "{}\n",
                serde_json::json!({"id": i.to_string(), "input": d["text"]})
            )
        })
        .collect();
    write_suite(&suite, "rolling_nll", &items, "");
    let (code, out, err) = eval(&[
        model_dir("gpt2").to_str().unwrap(),
        "--suites",
        suite.to_str().unwrap(),
        "--no-cache",
    ]);
    assert_eq!(code, 0, "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    let (ll, n): (f64, f64) = docs.iter().fold((0.0, 0.0), |a, d| {
        (
            a.0 + d["loglikelihood"].as_f64().unwrap(),
            a.1 + d["token_count"].as_f64().unwrap(),
        )
    });
    let want = (-ll / n).exp();
    let got = r["suites"][0]["extra"]["token_perplexity"]
        .as_f64()
        .unwrap();
    assert!((got - want).abs() / want < 1e-3, "{got} vs {want}");
}

/// Greedy generate-until equals lm-eval's raw generations (same prompt tokens, stop strings,
/// eos ids, decoding with special tokens skipped), and our extractors agree that nothing
/// parses (the fixture model is random).
#[test]
fn greedy_generation_matches_lm_eval() {
    use sft_eval::backend::{GenerateJob, GenerateRequest, LanguageModel};
    use sft_eval::model::generate::{generate, GenerateOptions};
    use sft_eval::suite::scorer::extract;
    let m = load("llama");
    let j: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("lmeval/gen_llama.json")).unwrap(),
    )
    .unwrap();
    let stops: Vec<String> = j["stop_sequences_effective"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    let strict = regex::Regex::new(r"#### (\-?[0-9\.\,]+)").unwrap();
    for doc in j["docs"].as_array().unwrap() {
        let prompt = doc["prompt"].as_str().unwrap();
        let ids_ = m.tokenizer.encode(prompt, true).unwrap();
        assert_eq!(ids_, ids(&doc["prompt_tokens"]));
        let opts = GenerateOptions {
            max_new_tokens: doc["gen_kwargs"]["max_gen_toks"].as_u64().unwrap() as usize,
            eos_token_ids: m.eos_token_ids(),
            stop_strings: stops.clone(),
            ..Default::default()
        };
        let g = generate(&m.decoder, &m.tokenizer, &ids_, &opts, m.device()).unwrap();
        assert_eq!(
            g.text,
            doc["raw_generation"].as_str().unwrap(),
            "doc {}",
            doc["doc_id"]
        );
        let ours = extract::regex_first(&g.text, &strict).unwrap_or_else(|| "[invalid]".into());
        assert_eq!(ours, doc["filtered"]["strict-match"].as_str().unwrap());
    }
    // and all of them at once, batched across items
    let jobs: Vec<GenerateJob> = j["docs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|doc| GenerateJob {
            prompt: doc["prompt"].as_str().unwrap().to_string(),
            add_special_tokens: true,
            request: GenerateRequest {
                max_new_tokens: doc["gen_kwargs"]["max_gen_toks"].as_u64().unwrap() as usize,
                decoding: sft_eval::model::generate::Decoding::Greedy,
                stop: stops.clone(),
            },
        })
        .collect();
    let texts = m.generate_batch(&jobs, 4, &mut |_, _| {}).unwrap();
    for (doc, text) in j["docs"].as_array().unwrap().iter().zip(&texts) {
        assert_eq!(
            text,
            doc["raw_generation"].as_str().unwrap(),
            "batched: doc {}",
            doc["doc_id"]
        );
    }
}

/// A generation suite gives the same outputs and scores at any batch size: the organism's
/// answers stop at different lengths (end of sequence, stop strings), so rows leave the batch
/// and waiting items take their place; pass@k samples share their prompt's prefill.
#[test]
fn generation_suites_score_the_same_at_any_batch_size() {
    use sft_eval::suite::runner::{run_suite, EvalSettings, NoProgress};
    let model = sft_eval::model::Model::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("models/organism"),
        &Default::default(),
    )
    .unwrap();
    let suites = Path::new(env!("CARGO_MANIFEST_DIR")).join("suites");
    for (name, limit) in [("math", 48), ("safety", 48), ("code", 6)] {
        let suite = sft_eval::suite::spec::Suite::load(&suites.join(name)).unwrap();
        let run = |batch_size| {
            let settings = EvalSettings {
                batch_size,
                limit,
                ..Default::default()
            };
            run_suite(&model, &suite, &settings, &mut NoProgress).unwrap()
        };
        let one = run(1);
        let lens: std::collections::BTreeSet<usize> = one
            .items
            .iter()
            .map(|i| i.output.as_deref().unwrap_or("").len())
            .collect();
        // (pass@k keeps no single output)
        assert!(
            name == "code" || lens.len() > 3,
            "{name}: outputs should end at different lengths"
        );
        for b in [5, 16] {
            let many = run(b);
            for (x, y) in one.items.iter().zip(&many.items) {
                assert_eq!(
                    (&x.id, &x.output, x.score),
                    (&y.id, &y.output, y.score),
                    "{name} at batch {b}"
                );
            }
            assert_eq!(one.mean, many.mean, "{name} at batch {b}");
        }
    }
}

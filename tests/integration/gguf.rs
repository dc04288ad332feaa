//! The local GGUF backend: llama GGUF files (tests/fixtures/make_gguf_fixtures.py, made from the
//! `llama` fixture by .ci/llama_to_gguf.py) dequantized into the generic decoder.

use std::path::{Path, PathBuf};

use candle_core::Tensor;
use sft_eval::backend::gguf::GgufModel;
use sft_eval::model::{LoadOptions, Model};

use crate::common::*;

fn gguf(name: &str) -> PathBuf {
    fixtures().join("gguf").join(name)
}

fn load_gguf(name: &str) -> GgufModel {
    GgufModel::load(
        &gguf(name),
        Some(&model_dir("llama")),
        &LoadOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Logits of both models on a few texts (one right-padded batch, up to 40 tokens).
fn logits(a: &Model, b: &Model) -> (Tensor, Tensor) {
    let rows: Vec<Vec<u32>> = [
        "Question: What is 2+2?\nAnswer: 4",
        "The capital of France is Paris, and the capital of Italy is Rome.",
        "hello world hello world hello world hello world hello world",
    ]
    .iter()
    .map(|t| a.tokenizer.encode(t, true).unwrap())
    .collect();
    (
        a.forward_batch(&rows).unwrap(),
        b.forward_batch(&rows).unwrap(),
    )
}

fn rms(t: &Tensor) -> f32 {
    t.sqr()
        .unwrap()
        .mean_all()
        .unwrap()
        .sqrt()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn f32_gguf_logits_equal_the_safetensors_model() {
    let reference = load("llama");
    let g = load_gguf("llama-f32.gguf");
    assert_eq!(g.model.config().vocab_size, reference.config().vocab_size);
    let (want, got) = logits(&reference, &g.model);
    let d = max_abs_diff(&want, &got);
    eprintln!("F32: max |Δlogit| = {d:e}");
    // measured: 1.7e-6 (the RoPE frequencies come from rope_freqs, not from the llama3
    // formula, so they may differ in the last bit)
    assert!(d < 1e-5, "f32 GGUF max |Δlogit| = {d:e}");
}

#[test]
fn q8_0_gguf_logits_stay_close_to_the_safetensors_model() {
    let reference = load("llama");
    let g = load_gguf("llama-q8_0.gguf");
    let (want, got) = logits(&reference, &g.model);
    let d = max_abs_diff(&want, &got);
    let scale = max_abs(&want);
    let rel = d / scale;
    let rms_rel = rms(&(&got - &want).unwrap()) / rms(&want);
    eprintln!(
        "Q8_0: max |Δlogit| = {d:e}, max |logit| = {scale}, ratio {rel:e}; RMS Δ / RMS logit {rms_rel:e}"
    );
    // Measured on this fixture: max |Δ| = 0.125 against max |logit| = 3.76 (ratio 3.3e-2), RMS
    // ratio 2.4e-2. That is Q8_0's own rounding (weights within 0.4% of their maximum), not the
    // loader: the same weights dequantized by the `gguf` package and loaded as safetensors give
    // log-likelihoods equal to this backend's to 1e-6. The tiny random fixture (hidden size 32)
    // amplifies it; the bounds leave about 1.5x headroom.
    assert!(rel < 0.05, "Q8_0 max |Δlogit| / max |logit| = {rel:e}");
    assert!(rms_rel < 0.035, "Q8_0 RMS Δlogit / RMS logit = {rms_rel:e}");
    assert!(d > 0.0, "Q8_0 should differ from f32 at all");
}

#[test]
fn gguf_errors_name_the_file() {
    let opts = LoadOptions::default();
    let bad = gguf("gpt2-arch.gguf");
    let e = GgufModel::load(&bad, Some(&model_dir("llama")), &opts)
        .err()
        .expect("gpt2 is refused")
        .to_string();
    assert!(e.contains(&bad.display().to_string()), "{e}");
    assert!(e.contains("`gpt2`") && e.contains("llama"), "{e}");

    let f32 = gguf("llama-f32.gguf");
    let e = GgufModel::load(&f32, None, &opts)
        .err()
        .expect("a tokenizer is required")
        .to_string();
    assert!(e.contains(&f32.display().to_string()), "{e}");
    assert!(e.contains("--tokenizer"), "{e}");

    // a folder without tokenizer.json
    let tmp = tempdir();
    let e = GgufModel::load(&f32, Some(tmp.path()), &opts)
        .err()
        .expect("tokenizer.json is required")
        .to_string();
    assert!(e.contains("tokenizer.json"), "{e}");
}

fn sft_eval(args: &[&str]) -> (i32, String, String) {
    let r = TestContext::new().cli(args);
    (r.code, r.stdout, r.stderr)
}

fn write_mc_suite(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("suite.toml"),
        "name = \"tiny\"\ncapability = \"qa\"\nversion = \"1\"\nscorer = \"mc_loglik\"\nmetric = \"acc\"\n\n[prompt]\ntemplate = \"Question: {{ input }}\\nAnswer:\"\nchat = \"never\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("items.jsonl"),
        "{\"id\":\"a\",\"input\":\"What is 2+2?\",\"choices\":[\"4\",\"5\",\"22\"],\"gold\":0}\n{\"id\":\"b\",\"input\":\"Capital of France?\",\"choices\":[\"Paris\",\"Rome\"],\"gold\":0}\n",
    )
    .unwrap();
}

#[test]
fn eval_and_compare_take_a_gguf_file() {
    let tmp = tempdir();
    let suite = tmp.path().join("suites/tiny");
    write_mc_suite(&suite);
    let cache = tmp.path().join("cache");
    let tok = model_dir("llama");
    let f32 = gguf("llama-f32.gguf");
    let run = |model: &Path, out: &Path, extra: &[&str]| {
        let mut args = vec![
            "eval",
            model.to_str().unwrap(),
            "--suites",
            suite.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let (code, _, err) = sft_eval(&args);
        assert_eq!(code, 0, "{err}");
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
        r
    };
    let folder = run(&tok, &tmp.path().join("folder.json"), &[]);
    let g = run(
        &f32,
        &tmp.path().join("gguf.json"),
        &["--tokenizer", tok.to_str().unwrap()],
    );
    assert_ne!(folder["model"]["fingerprint"], g["model"]["fingerprint"]);
    assert_eq!(g["model"]["path"], f32.display().to_string());
    let ll = |r: &serde_json::Value| -> Vec<f64> {
        r["suites"][0]["items"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|i| i["logliks"].as_array().unwrap().clone())
            .map(|v| v.as_f64().unwrap())
            .collect()
    };
    let (a, b) = (ll(&folder), ll(&g));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-4, "{x} vs {y}");
    }

    // missing --tokenizer: a usage-level error naming the file
    let (code, _, err) = sft_eval(&[
        "eval",
        f32.to_str().unwrap(),
        "--suites",
        suite.to_str().unwrap(),
        "--no-cache",
    ]);
    assert_ne!(code, 0);
    assert!(
        err.contains("llama-f32.gguf") && err.contains("--tokenizer"),
        "{err}"
    );

    // compare: the f32 file against its Q8_0 quantization, same tokenizer
    let q8 = gguf("llama-q8_0.gguf");
    let (code, out, err) = sft_eval(&[
        "compare",
        f32.to_str().unwrap(),
        q8.to_str().unwrap(),
        "--suites",
        suite.to_str().unwrap(),
        "--tokenizer",
        tok.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
        "--resamples",
        "200",
        "--report-dir",
        tmp.path().join("report").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("tiny"), "{out}");
}

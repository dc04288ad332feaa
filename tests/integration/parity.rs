//! Numerical and textual parity with transformers, on every fixture variant.

use candle_core::IndexOp;
use sft_eval::model::generate::{generate, GenerateOptions};
use sft_eval::model::Message;

use crate::common::*;

#[test]
fn token_ids_and_decoding_match_transformers() {
    for v in variants() {
        let m = load(&v);
        let exp = expected(&v);
        for case in exp["tokenization"].as_array().unwrap() {
            let text = case["text"].as_str().unwrap();
            let got = m.tokenizer.encode(text, true).unwrap();
            assert_eq!(got, ids(&case["ids"]), "{v}: ids of {text:?}");
        }
        for case in exp["decode"].as_array().unwrap() {
            let skip = case["skip_special_tokens"].as_bool().unwrap();
            let got = m.tokenizer.decode(&ids(&case["ids"]), skip).unwrap();
            assert_eq!(
                got,
                case["text"].as_str().unwrap(),
                "{v}: decode {:?}",
                case["ids"]
            );
        }
    }
}

#[test]
fn chat_templates_render_byte_identical() {
    for v in variants() {
        let m = load(&v);
        let exp = expected(&v);
        let cases = exp["chat"].as_array().unwrap();
        if cases.is_empty() {
            assert!(
                m.chat_template.is_none(),
                "{v}: transformers found no template, sft-eval did"
            );
            continue;
        }
        let t = m
            .chat_template
            .as_ref()
            .unwrap_or_else(|| panic!("{v}: template missing"));
        for case in cases {
            let msgs: Vec<Message> = serde_json::from_value(case["messages"].clone()).unwrap();
            let agp = case["add_generation_prompt"].as_bool().unwrap();
            let got = match case.get("tools") {
                None => t.render(&msgs, agp),
                Some(tools) => {
                    let extra = serde_json::Map::from_iter([("tools".to_string(), tools.clone())]);
                    t.render_json(&case["messages"], agp, &extra)
                }
            };
            match case.get("rendered").and_then(|r| r.as_str()) {
                Some(want) => assert_eq!(
                    got.unwrap_or_else(|e| panic!("{v}: {e}")),
                    want,
                    "{v}: {msgs:?}"
                ),
                None => {
                    let want = case["error"].as_str().unwrap();
                    let err = got.expect_err("template must raise").to_string();
                    assert!(
                        err.contains(want),
                        "{v}: expected error {want:?}, got {err:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn logits_match_transformers_within_1e_4() {
    for v in variants() {
        let m = load(&v);
        let exp = expected(&v);
        let refs = expected_tensors(&v);
        let cases = exp["logits"].as_array().unwrap();
        let rows: Vec<Vec<u32>> = cases.iter().map(|c| ids(&c["ids"])).collect();
        // one prompt at a time
        for (c, row) in cases.iter().zip(&rows) {
            let want = &refs[c["tensor"].as_str().unwrap()];
            let got = m
                .forward_batch(std::slice::from_ref(row))
                .unwrap()
                .i(0)
                .unwrap();
            let d = max_abs_diff(&got, want);
            assert!(d <= 1e-4, "{v}: {:?}: max |Δ| = {d}", c["text"]);
        }
        // all prompts in one right-padded batch: padding never leaks into real positions
        let batch = m.forward_batch(&rows).unwrap();
        for (i, (c, row)) in cases.iter().zip(&rows).enumerate() {
            let want = &refs[c["tensor"].as_str().unwrap()];
            let got = batch.i(i).unwrap().narrow(0, 0, row.len()).unwrap();
            let d = max_abs_diff(&got, want);
            assert!(d <= 1e-4, "{v}: batched row {i}: max |Δ| = {d}");
        }
    }
}

#[test]
fn greedy_continuations_match_transformers() {
    for v in variants() {
        let m = load(&v);
        for case in expected(&v)["greedy"].as_array().unwrap() {
            let prompt = ids(&case["ids"]);
            let opts = GenerateOptions {
                max_new_tokens: case["max_new_tokens"].as_u64().unwrap() as usize,
                ..Default::default()
            };
            let g = generate(&m.decoder, &m.tokenizer, &prompt, &opts, m.device()).unwrap();
            assert_eq!(
                g.ids,
                ids(&case["output_ids"]),
                "{v}: greedy from {prompt:?}"
            );
        }
    }
}

#[test]
fn parameter_counts_match_transformers() {
    for v in variants() {
        let info = sft_eval::model::info::inspect(&model_dir(&v), None).unwrap();
        assert_eq!(
            info.num_parameters as u64,
            expected(&v)["num_parameters"].as_u64().unwrap(),
            "{v}"
        );
        assert_eq!(
            info.tied_embeddings,
            expected(&v)["tie_word_embeddings"].as_bool().unwrap(),
            "{v}"
        );
    }
}

#[test]
fn half_precision_compute_stays_close_to_f32() {
    // bf16 keeps 8 bits of mantissa, f16 11: errors grow through the layers, and Gemma 2's final
    // soft-cap (3 in the fixture) squeezes the logit scale, so bounds are relative to it.
    for (dtype, bound) in [
        (candle_core::DType::BF16, 0.10f32),
        (candle_core::DType::F16, 0.02),
    ] {
        for v in ["qwen2", "llama", "gemma2"] {
            let f32m = load(v);
            let half = sft_eval::model::Model::load(
                &model_dir(v),
                &sft_eval::model::LoadOptions {
                    dtype,
                    ..Default::default()
                },
            )
            .unwrap();
            let row = f32m
                .tokenizer
                .encode("bf16 is an option, f32 the default", true)
                .unwrap();
            let a = f32m.forward_batch(std::slice::from_ref(&row)).unwrap();
            let b = half
                .forward_batch(std::slice::from_ref(&row))
                .unwrap()
                .to_dtype(candle_core::DType::F32)
                .unwrap();
            let scale: f32 = a.abs().unwrap().max_all().unwrap().to_scalar().unwrap();
            let d = max_abs_diff(&a, &b);
            eprintln!("{v} {dtype:?}: max |Δ| {d} of scale {scale}");
            assert!(
                d <= bound * scale.max(1.0),
                "{v} {dtype:?}: max |Δ| {d} (scale {scale})"
            );
        }
    }
}

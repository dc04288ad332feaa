//! `sft-eval inspect` on every fixture, and exit code 2 with a clear message on broken copies.

use std::path::Path;

use crate::common::*;

pub fn sft_eval(args: &[&str]) -> (i32, String, String) {
    let r = TestContext::new().cli(args);
    (r.code, r.stdout, r.stderr)
}

#[test]
fn inspect_describes_every_fixture() {
    for v in variants() {
        let dir = model_dir(&v);
        let (code, out, err) = sft_eval(&["inspect", dir.to_str().unwrap()]);
        assert_eq!(code, 0, "{v}: {err}");
        assert!(
            out.contains("parameters") && out.contains("chat template"),
            "{v}: {out}"
        );
        let (code, out, err) = sft_eval(&["inspect", "--json", dir.to_str().unwrap()]);
        assert_eq!(code, 0, "{v}: {err}");
        let j: serde_json::Value = serde_json::from_str(&out).unwrap();
        let exp = expected(&v);
        assert_eq!(j["architecture"], exp["architecture"], "{v}");
        assert_eq!(j["num_parameters"], exp["num_parameters"], "{v}");
        assert_eq!(j["tied_embeddings"], exp["tie_word_embeddings"], "{v}");
        let has_template = !exp["chat"].as_array().unwrap().is_empty();
        assert_eq!(
            j["chat_template"].is_string(),
            has_template,
            "{v}: template found"
        );
    }
}

#[test]
fn inspect_table_snapshot() {
    let (code, out, _) = sft_eval(&["inspect", model_dir("llama").to_str().unwrap()]);
    assert_eq!(code, 0);
    insta::assert_snapshot!(out);
}

/// Break a copy of a fixture with `f`, then expect exit 2 and every `needles` in stderr.
fn broken(variant: &str, f: impl FnOnce(&Path), needles: &[&str]) {
    let tmp = tempdir();
    let dir = copy_fixture(variant, tmp.path());
    f(&dir);
    let (code, out, err) = sft_eval(&["inspect", dir.to_str().unwrap()]);
    assert_eq!(code, 2, "expected exit 2; stdout {out}\nstderr {err}");
    assert!(out.is_empty(), "nothing on stdout on error: {out}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}:\n{err}");
    }
}

fn edit_json(path: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

#[test]
fn missing_folder_and_files() {
    let (code, _, err) = sft_eval(&["inspect", "/nonexistent/model"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("/nonexistent/model") && err.contains("hint:"),
        "{err}"
    );
    broken(
        "llama",
        |d| std::fs::remove_file(d.join("config.json")).unwrap(),
        &["config.json", "no such file"],
    );
    broken(
        "llama",
        |d| std::fs::remove_file(d.join("model.safetensors")).unwrap(),
        &["model.safetensors", "hint:"],
    );
    broken(
        "llama",
        |d| std::fs::remove_file(d.join("tokenizer.json")).unwrap(),
        &["tokenizer.json"],
    );
    broken(
        "llama-t5-sharded",
        |d| {
            let shard = std::fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| {
                    p.to_string_lossy().ends_with("-00002.safetensors")
                        || p.to_string_lossy().contains("00002-of")
                })
                .unwrap();
            std::fs::remove_file(shard).unwrap();
        },
        &["safetensors", "no such file", "hint:"],
    );
}

#[test]
fn corrupt_and_truncated_weights() {
    broken(
        "qwen2",
        |d| {
            let p = d.join("model.safetensors");
            let bytes = std::fs::read(&p).unwrap();
            std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
        },
        &[
            "model.safetensors",
            "not a readable safetensors file",
            "truncated",
        ],
    );
    broken(
        "qwen2",
        |d| {
            std::fs::write(
                d.join("model.safetensors"),
                b"\x10\x00\x00\x00\x00\x00\x00\x00{not json!!!!!!}",
            )
            .unwrap()
        },
        &["model.safetensors", "not a readable safetensors file"],
    );
}

#[test]
fn malformed_config() {
    broken(
        "llama",
        |d| std::fs::write(d.join("config.json"), "{\n  \"architectures\": [\n").unwrap(),
        &["config.json:3:", "invalid JSON"],
    );
    broken(
        "llama",
        |d| {
            edit_json(&d.join("config.json"), |v| {
                v["architectures"] = serde_json::json!(["BertForMaskedLM"])
            })
        },
        &[
            "BertForMaskedLM",
            "LlamaForCausalLM",
            "Gemma2ForCausalLM",
            "GPT2LMHeadModel",
        ],
    );
    broken(
        "mistral",
        |d| {
            edit_json(&d.join("config.json"), |v| {
                v.as_object_mut()
                    .unwrap()
                    .remove("hidden_size")
                    .map(|_| ())
                    .unwrap()
            })
        },
        &["config.json", "hidden_size", "missing"],
    );
}

#[test]
fn tensor_with_the_wrong_shape() {
    // claim a larger MLP than the weights have
    broken(
        "gemma",
        |d| {
            edit_json(&d.join("config.json"), |v| {
                v["intermediate_size"] =
                    serde_json::json!(v["intermediate_size"].as_u64().unwrap() + 8)
            })
        },
        &["model.safetensors", "mlp", "shape", "hint:"],
    );
}

#[test]
fn tokenizer_larger_than_the_embedding() {
    broken(
        "phi3",
        |d| {
            edit_json(&d.join("tokenizer.json"), |v| {
                let added = v["added_tokens"].as_array_mut().unwrap();
                let next = 100_000;
                added.push(serde_json::json!({"id": next, "content": "<|extra|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}));
            })
        },
        &["tokenizer", "embedding", "hint:"],
    );
}

#[test]
fn chat_template_that_fails_to_render() {
    broken(
        "qwen3",
        |d| {
            edit_json(&d.join("tokenizer_config.json"), |v| {
                v["chat_template"] = serde_json::json!(
                    "{% for m in messages %}{{ m.content | no_such_filter }}{% endfor %}"
                )
            });
            let _ = std::fs::remove_file(d.join("chat_template.jinja"));
        },
        &["template"],
    );
    broken(
        "gemma2",
        |d| {
            edit_json(&d.join("tokenizer_config.json"), |v| {
                v["chat_template"] =
                    serde_json::json!("{{ raise_exception('this template refuses everything') }}")
            });
            let _ = std::fs::remove_file(d.join("chat_template.jinja"));
        },
        &["this template refuses everything"],
    );
}

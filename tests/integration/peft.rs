//! PEFT LoRA adapters wherever a model is accepted: an adapter folder is its base with the
//! adapter merged, equal to PEFT's `merge_and_unload()` (fixtures by
//! tests/fixtures/make_peft_fixtures.py); every other PEFT method is refused by name; the
//! cache key covers base and adapter.

use std::path::{Path, PathBuf};

use sft_eval::model::{LoadOptions, Model};

use crate::common::*;

fn peft_dir() -> PathBuf {
    fixtures().join("peft")
}

fn adapter(name: &str) -> PathBuf {
    peft_dir().join(name)
}

/// The repository root: adapters name their base relative to it, as PEFT wrote them.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Copy an adapter folder so a test can change it.
fn copy_adapter(name: &str, to: &Path) -> PathBuf {
    copy_dir(&adapter(name), &to.join(name))
}

fn edit_config(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join("adapter_config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&p, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

fn load(dir: &Path, base: Option<&Path>) -> Result<Model, sft_eval::model::ModelError> {
    Model::load(
        dir,
        &LoadOptions {
            base: base.map(|b| root().join(b)),
            ..Default::default()
        },
    )
}

/// Max |ours − PEFT merged| over the fixture prompts for one adapter.
fn max_diff_to_peft(name: &str, model: &Model) -> f32 {
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(peft_dir().join("expected.json")).unwrap())
            .unwrap();
    let tensors = candle_core::safetensors::load(
        peft_dir().join("expected.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let mut worst = 0f32;
    for (i, prompt) in expected["prompts"].as_array().unwrap().iter().enumerate() {
        let ids = ids(prompt);
        let ours = model.forward_batch(&[ids]).unwrap().squeeze(0).unwrap();
        let want = &tensors[&format!("{name}/{i}")];
        worst = worst.max(max_abs_diff(&ours, want));
    }
    worst
}

#[test]
fn every_lora_feature_equals_peft_merge_and_unload() {
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(peft_dir().join("expected.json")).unwrap())
            .unwrap();
    let names: Vec<&String> = expected["adapters"].as_object().unwrap().keys().collect();
    assert!(names.len() >= 6, "{names:?}");
    for name in names {
        // the base named by base_model_name_or_path, relative to the working directory
        let model = load(&adapter(name), None).unwrap_or_else(|e| panic!("{name}: {e}"));
        let d = max_diff_to_peft(name, &model);
        println!("{name}: max |logit − PEFT merge_and_unload| = {d:e}");
        assert!(d <= 1e-5, "{name}: {d}");
        // and the adapter does change the model: the base alone is far from PEFT's merge
        let base = Model::load(
            &root().join(expected["adapters"][name]["base"].as_str().unwrap()),
            &LoadOptions::default(),
        )
        .unwrap();
        assert!(max_diff_to_peft(name, &base) > 1e-3, "{name}");
    }
}

#[test]
fn a_hub_id_base_needs_base_or_the_local_hub_cache_and_nothing_is_downloaded() {
    let err = load(&adapter("llama-hub-base"), None)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("base_model_name_or_path")
            && err.contains("HuggingFaceTB/SmolLM2-135M")
            && err.contains("--base"),
        "{err}"
    );
    let m = load(
        &adapter("llama-hub-base"),
        Some(Path::new("tests/fixtures/models/llama")),
    )
    .unwrap();
    assert!(max_diff_to_peft("llama-qv", &m) <= 1e-5);
    // the Hub id's snapshot in a local Hugging Face cache is found as transformers finds it
    let cx = TestContext::new();
    let snap = cx.join("hub/models--HuggingFaceTB--SmolLM2-135M/snapshots/0123456789abcdef0123456789abcdef01234567");
    std::fs::create_dir_all(snap.parent().unwrap()).unwrap();
    copy_fixture("llama", snap.parent().unwrap());
    std::fs::rename(snap.parent().unwrap().join("llama"), &snap).unwrap();
    cx.write(
        "hub/models--HuggingFaceTB--SmolLM2-135M/refs/main",
        "0123456789abcdef0123456789abcdef01234567",
    );
    let hub = cx.join("hub");
    let cx = cx.env("HF_HUB_CACHE", hub.to_str().unwrap());
    let run = cx
        .cli(&[
            "inspect",
            "--json",
            adapter("llama-hub-base").to_str().unwrap(),
        ])
        .expect(0);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["adapter"]["base"], snap.to_str().unwrap());
    assert_eq!(v["adapter"]["changed_tensors"], 4);
}

#[test]
fn other_peft_methods_and_broken_adapters_are_refused_by_name() {
    let cx = TestContext::new();
    let refused = |dir: &Path, needles: &[&str]| {
        let run = cx
            .cli_in(&root(), &["inspect", dir.to_str().unwrap()])
            .expect(2);
        for n in needles {
            assert!(run.stderr.contains(n), "{n} not in: {}", run.stderr);
        }
        let err = load(dir, None)
            .err()
            .expect("refused in the library too")
            .to_string();
        assert!(err.contains(needles[0]), "{err}");
    };
    refused(&adapter("llama-dora"), &["use_dora", "DoRA"]);
    refused(&adapter("llama-ia3"), &["peft_type", "IA3"]);
    // a pickled adapter: never read, with the way out
    let bin = copy_adapter("llama-qv", cx.path());
    std::fs::rename(
        bin.join("adapter_model.safetensors"),
        bin.join("adapter_model.bin"),
    )
    .unwrap();
    refused(&bin, &["adapter_model.safetensors", "safe_serialization"]);
    // weights for a module the config does not target: config and weights do not belong together
    let d = copy_adapter("llama-qv", &cx.join("other-targets"));
    edit_config(&d, |v| v["target_modules"] = serde_json::json!(["k_proj"]));
    refused(&d, &["q_proj", "target_modules"]);
    // layers_to_transform that excludes the adapted layer
    let d = copy_adapter("llama-qv", &cx.join("other-layers"));
    edit_config(&d, |v| v["layers_to_transform"] = serde_json::json!([0]));
    refused(&d, &["layers.1", "layers_to_transform"]);
    // a rank that disagrees with the tensors
    let d = copy_adapter("qwen2-patterns", &cx.join("rank"));
    edit_config(&d, |v| v["rank_pattern"] = serde_json::json!({}));
    refused(&d, &["down_proj", "rank 6", "gives 4"]);
    // a LoRA variant by flag
    let d = copy_adapter("llama-qv", &cx.join("lora-bias"));
    edit_config(&d, |v| v["lora_bias"] = serde_json::json!(true));
    refused(&d, &["lora_bias"]);
    // an adapter for another model: its tensors do not fit the base
    let d = copy_adapter("llama-qv", &cx.join("wrong-base"));
    edit_config(&d, |v| {
        v["base_model_name_or_path"] = serde_json::json!("tests/fixtures/models/qwen3")
    });
    let run = cx.cli_in(&root(), &["eval", d.to_str().unwrap(), "--suites", "x"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
}

#[test]
fn the_cache_key_covers_base_and_adapter() {
    use sft_eval::model::fingerprint::{fingerprint, model_fingerprint};
    let cx = TestContext::new();
    let a = copy_adapter("llama-qv", cx.path());
    let base = root().join("tests/fixtures/models/llama");
    let fp = model_fingerprint(&a, Some(&base)).unwrap();
    assert_ne!(fp, fingerprint(&base).unwrap());
    // the same adapter on another copy of the same base: same key
    let base2 = copy_fixture("llama", &cx.join("b"));
    assert_eq!(model_fingerprint(&a, Some(&base2)).unwrap(), fp);
    // the base changes: new key
    let mut cfg = std::fs::read_to_string(base2.join("generation_config.json")).unwrap();
    cfg = cfg.replacen('{', "{\n  \"eos_token_id\": [2, 3],", 1);
    std::fs::write(base2.join("generation_config.json"), cfg).unwrap();
    assert_ne!(model_fingerprint(&a, Some(&base2)).unwrap(), fp);
    // the adapter changes: new key
    edit_config(&a, |v| v["lora_alpha"] = serde_json::json!(16));
    assert_ne!(model_fingerprint(&a, Some(&base)).unwrap(), fp);
}

#[test]
fn compare_base_with_its_adapter_is_one_command() {
    let cx = TestContext::new();
    let items: String = (0..30)
        .map(|i| format!("{}\n", serde_json::json!({"id": format!("q{i}"), "input": format!("What follows {i}?"), "choices": [format!("{}", i + 1), format!("{}", i + 7), "zero"], "gold": 0})))
        .collect();
    let suite = write_mc_suite(&cx, &items);
    let run = cx
        .cli(&[
            "compare",
            model_dir("llama").to_str().unwrap(),
            adapter("llama-qv").to_str().unwrap(),
            "--base",
            model_dir("llama").to_str().unwrap(),
            "--suites",
            suite.to_str().unwrap(),
            "--resamples",
            "500",
        ])
        .expect(0);
    assert!(
        run.stdout.contains("llama-qv") && run.stdout.contains("mc"),
        "{}",
        run.stdout
    );
    // both sides were scored (not the base twice): the adapter's results carry its own key
    let cache = std::fs::read_dir(cx.join(".sft-eval-cache"))
        .unwrap()
        .count();
    assert!(cache >= 2, "{cache} cache entries");
}

/// A model loaded from an adapter saves as a full checkpoint: the merged weights with the base's
/// config, tokenizer and generation settings, loadable on its own.
#[test]
fn a_merged_adapter_saves_as_a_full_checkpoint() {
    let cx = TestContext::new();
    let m = load(&adapter("llama-qv"), None).unwrap();
    let out = m.save(&cx.join("merged"), false).unwrap();
    for f in ["config.json", "tokenizer.json", "generation_config.json"] {
        assert!(
            out.join(f).is_file(),
            "{f} missing from the saved checkpoint"
        );
    }
    let back = Model::load(&out, &LoadOptions::default()).unwrap();
    assert!(max_diff_to_peft("llama-qv", &back) <= 1e-5);
}

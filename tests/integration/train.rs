//! The trainer against TRL's SFTTrainer (tests/fixtures/make_trl_fixtures.py, TRL 1.16), and
//! its own invariants: masking, accumulation, freezing, LoRA, packing, resume.

use std::path::{Path, PathBuf};

use serde_json::Value;
use sft_eval::data::read_jsonl;
use sft_eval::model::{LoadOptions, Model};
use sft_eval::train::batch::{pack_bfd, Example};
use sft_eval::train::config::{LoraConfig, LoraSave};
use sft_eval::train::encode::{Encoder, TemplatePolicy};
use sft_eval::train::observer::Silent;
use sft_eval::train::{train, TrainConfig};

use crate::common::*;

fn trl_dir() -> PathBuf {
    fixtures().join("trl")
}

fn trl(run: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(trl_dir().join(format!("{run}.json"))).unwrap())
        .unwrap()
}

/// The TRL run's settings as a TrainConfig.
fn trl_config(run: &str) -> TrainConfig {
    let j = trl(run);
    let hp = &j["hyperparameters"];
    let mut c = TrainConfig {
        model: trl_dir().join(j["model_dir"].as_str().unwrap()),
        data: trl_dir().join(j["dataset_file"].as_str().unwrap()),
        max_length: hp["max_length"].as_u64().unwrap() as usize,
        packing: hp["packing"].as_bool().unwrap(),
        max_steps: Some(hp["max_steps"].as_u64().unwrap() as usize),
        batch_size: hp["per_device_train_batch_size"].as_u64().unwrap() as usize,
        grad_accum: hp["gradient_accumulation_steps"].as_u64().unwrap() as usize,
        lr: hp["learning_rate"].as_f64().unwrap(),
        max_grad_norm: hp["max_grad_norm"].as_f64().unwrap(),
        shuffle: false,
        ..Default::default()
    };
    c.adam.weight_decay = hp["weight_decay"].as_f64().unwrap();
    c.adam.eps = hp["adam_epsilon"].as_f64().unwrap();
    if run == "lora" {
        c.lora = Some(LoraConfig {
            r: 4,
            alpha: 8.0,
            targets: vec!["q_proj".into(), "v_proj".into()],
            save: LoraSave::Adapter,
            init: Some(trl_dir().join("lora_init.safetensors")),
        });
    }
    c
}

fn losses(run_dir: &Path) -> Vec<f64> {
    std::fs::read_to_string(run_dir.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v.get("loss").is_some())
        .map(|v| v["loss"].as_f64().unwrap())
        .collect()
}

fn encoded(cfg: &TrainConfig) -> Vec<Example> {
    let m = Model::load(&cfg.model, &LoadOptions::default()).unwrap();
    let enc = Encoder {
        tokenizer: &m.tokenizer,
        template: m.chat_template.as_ref(),
        max_length: cfg.max_length,
        policy: TemplatePolicy::Auto,
    };
    let ex = enc
        .encode_all(&read_jsonl(&cfg.data).unwrap(), false)
        .unwrap()
        .examples;
    if cfg.packing {
        pack_bfd(&ex, cfg.max_length)
    } else {
        ex
    }
}

/// Our tokenization, masking and packing equal TRL's prepared examples token for token.
fn assert_same_examples(run: &str) {
    let cfg = trl_config(run);
    let ours = encoded(&cfg);
    let theirs = trl(run)["prepared_examples"].as_array().unwrap().clone();
    assert_eq!(ours.len(), theirs.len(), "{run}: number of examples");
    for (i, (o, t)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(o.ids, ids(&t["input_ids"]), "{run}: example {i} ids");
        if let Some(labels) = t.get("labels").and_then(|l| l.as_array()) {
            let sup: Vec<bool> = labels.iter().map(|l| l.as_i64().unwrap() != -100).collect();
            assert_eq!(
                &o.supervised[1..],
                &sup[1..],
                "{run}: example {i} supervised tokens"
            );
        }
    }
}

/// Per-step losses equal TRL's within 1e-3 relative for all 30 steps.
fn assert_same_losses(run: &str) {
    let tmp = tempdir();
    let out = tmp.path().join(run);
    train(trl_config(run), &out, false, &mut Silent).unwrap();
    let ours = losses(&out);
    let theirs: Vec<f64> = trl(run)["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["loss"].as_f64().unwrap())
        .collect();
    assert_eq!(ours.len(), theirs.len(), "{run}: steps");
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        let rel = (a - b).abs() / b.abs();
        assert!(
            rel <= 1e-3,
            "{run}: step {}: sft-eval {a} vs TRL {b} (rel {rel:.2e})\nall: {ours:?}",
            i + 1
        );
    }
}

#[test]
fn trl_prompt_completion() {
    assert_same_examples("prompt_completion");
    assert_same_losses("prompt_completion");
}

#[test]
fn trl_chat_assistant_only() {
    assert_same_examples("chat");
    assert_same_losses("chat");
}

#[test]
fn trl_packed() {
    assert_same_examples("packed");
    assert_same_losses("packed");
}

#[test]
fn trl_lora() {
    assert_same_losses("lora");
}

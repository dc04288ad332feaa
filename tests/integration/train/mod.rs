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

mod cli;

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
        .encode_all_with(&read_jsonl(&cfg.data).unwrap(), false, cfg.packing)
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
    let worst = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (a - b).abs() / b.abs())
        .fold(0f64, f64::max);
    println!(
        "{run}: max relative loss difference to TRL over {} steps: {worst:.2e}",
        ours.len()
    );
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

/// TRL's conversational prompt/completion (`{"prompt": [turns], "completion": [turns]}`) on a
/// ChatML template without generation markers: the same tokens, targets and per-step losses.
#[test]
fn trl_chat_prompt_completion() {
    assert_same_examples("chat_prompt_completion");
    assert_same_losses("chat_prompt_completion");
}

/// The same data packed (BFD, padding-free): examples whose completion `max_length` cut away
/// are packed too, as TRL packs them, so rows, batches and losses are TRL's.
#[test]
fn trl_chat_prompt_completion_packed() {
    assert_same_examples("chat_prompt_completion_packed");
    assert_same_losses("chat_prompt_completion_packed");
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

fn small_cfg(out_steps: usize) -> TrainConfig {
    let mut c = trl_config("prompt_completion");
    c.max_steps = Some(out_steps);
    c
}

fn weights(dir: &Path) -> std::collections::HashMap<String, candle_core::Tensor> {
    candle_core::safetensors::load(dir.join("model.safetensors"), &candle_core::Device::Cpu)
        .unwrap()
}

#[test]
fn loss_gradient_is_zero_at_prompt_positions() {
    use sft_eval::train::batch::MicroBatch;
    let cfg = trl_config("prompt_completion");
    let ex = encoded(&cfg);
    let m = Model::load(&cfg.model, &LoadOptions::default()).unwrap();
    let refs: Vec<&Example> = ex.iter().take(3).collect();
    let mb = MicroBatch::padded(&refs, m.device()).unwrap();
    let logits = sft_eval::train::forward_logits(&m.decoder, &mb).unwrap();
    let var = candle_core::Var::from_tensor(&logits).unwrap();
    let loss =
        sft_eval::train::loss::masked_nll_sum(var.as_tensor(), &mb.targets, &mb.loss_mask).unwrap();
    let g = loss
        .backward()
        .unwrap()
        .get(var.as_tensor())
        .unwrap()
        .clone();
    let gnorm: Vec<Vec<f32>> = g.sqr().unwrap().sum(2).unwrap().to_vec2().unwrap();
    let mask: Vec<Vec<f32>> = mb.loss_mask.to_vec2().unwrap();
    let (mut zero, mut nonzero) = (0, 0);
    for (gr, mr) in gnorm.iter().zip(&mask) {
        for (gv, mv) in gr.iter().zip(mr) {
            if *mv == 0.0 {
                assert_eq!(*gv, 0.0, "gradient leaks into a prompt/padding position");
                zero += 1;
            } else {
                assert!(*gv > 0.0);
                nonzero += 1;
            }
        }
    }
    assert!(zero > 0 && nonzero > 0);
}

#[test]
fn accumulated_micro_batches_equal_one_big_batch() {
    let tmp = tempdir();
    let mut a = small_cfg(1);
    a.batch_size = 8;
    a.grad_accum = 1;
    let mut b = small_cfg(1);
    b.batch_size = 4;
    b.grad_accum = 2;
    train(a, &tmp.path().join("a"), false, &mut Silent).unwrap();
    train(b, &tmp.path().join("b"), false, &mut Silent).unwrap();
    let (la, lb) = (
        losses(&tmp.path().join("a"))[0],
        losses(&tmp.path().join("b"))[0],
    );
    assert!((la - lb).abs() < 1e-6, "{la} vs {lb}");
    // the accumulated gradient is the big batch's gradient: equal norms before clipping
    let norm = |d: &str| -> f64 {
        let l = std::fs::read_to_string(tmp.path().join(d).join("log.jsonl")).unwrap();
        serde_json::from_str::<Value>(l.lines().next().unwrap()).unwrap()["grad_norm"]
            .as_f64()
            .unwrap()
    };
    assert!(
        (norm("a") - norm("b")).abs() / norm("a") < 1e-6,
        "{} vs {}",
        norm("a"),
        norm("b")
    );
    // and the update agrees to float precision: Adam's m/√v turns summation-order noise in
    // near-zero gradient entries into up to ~1e-3 of a step (lr 1e-3 here), so 1e-5 absolute
    let (wa, wb) = (
        weights(&tmp.path().join("a/final")),
        weights(&tmp.path().join("b/final")),
    );
    for (name, t) in &wa {
        let d = max_abs_diff(t, &wb[name]);
        assert!(d < 1e-5, "{name}: {d}");
    }
}

#[test]
fn frozen_weights_stay_bit_identical() {
    let tmp = tempdir();
    let mut c = small_cfg(3);
    c.freeze.embeddings = true;
    c.freeze.first_layers = 1;
    c.freeze.patterns = vec![r"\.mlp\.down_proj\.".into()];
    let base = weights(&c.model);
    train(c, &tmp.path().join("r"), false, &mut Silent).unwrap();
    let after = weights(&tmp.path().join("r/final"));
    let (mut frozen, mut moved) = (0, 0);
    for (name, t) in &after {
        let same = max_abs_diff(t, &base[name]) == 0.0;
        let should_freeze = name.contains("embed_tokens")
            || name.contains("layers.0.")
            || name.contains("mlp.down_proj");
        if should_freeze {
            assert!(same, "{name} moved although frozen");
            frozen += 1;
        } else if same {
            panic!("{name} did not train");
        } else {
            moved += 1;
        }
    }
    assert!(frozen > 0 && moved > 0);
}

#[test]
fn lora_merged_equals_adapter_and_starts_at_the_base() {
    use sft_eval::train::lora;
    let dir = model_dir("llama");
    let base = Model::load(&dir, &LoadOptions::default()).unwrap();
    let row = base.tokenizer.encode("LoRA check: 12+7=19", true).unwrap();
    let want = base.forward_batch(std::slice::from_ref(&row)).unwrap();
    let cfg = LoraConfig {
        r: 4,
        alpha: 8.0,
        targets: vec!["q_proj".into(), "v_proj".into(), "down_proj".into()],
        save: LoraSave::Merged,
        init: None,
    };
    // at init (B = 0) the adapted model is the base model
    let mut m = Model::load(&dir, &LoadOptions::default()).unwrap();
    let dev = m.device().clone();
    let vars = lora::attach(&mut m.decoder, &cfg, 0, None, &dev).unwrap();
    assert_eq!(
        max_abs_diff(&m.forward_batch(std::slice::from_ref(&row)).unwrap(), &want),
        0.0
    );
    // with a non-zero B, merged weights compute what the adapter computes
    for (k, v) in &vars {
        if k.contains("lora_B") {
            v.set(&candle_core::Tensor::randn(0f32, 0.1, v.shape(), m.device()).unwrap())
                .unwrap();
        }
    }
    // the Linear holds the Var's tensor, so setting the Var changes the adapter
    let adapted = m.forward_batch(std::slice::from_ref(&row)).unwrap();
    assert!(max_abs_diff(&adapted, &want) > 1e-4, "B took effect");
    let merged = lora::merged(&mut m.decoder).unwrap();
    for nl in m.decoder.linears_mut() {
        if let Some(w) = merged.get(&format!("{}.weight", nl.name)) {
            nl.linear.weight = w.clone();
            nl.linear.lora = None;
        }
    }
    let d = max_abs_diff(
        &m.forward_batch(std::slice::from_ref(&row)).unwrap(),
        &adapted,
    );
    assert!(d <= 1e-5, "merged vs adapter: {d}");
}

#[test]
fn lora_adapter_is_saved_in_peft_layout() {
    let tmp = tempdir();
    let out = tmp.path().join("r");
    let mut c = trl_config("lora");
    c.max_steps = Some(2);
    train(c, &out, false, &mut Silent).unwrap();
    let cfg: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("final/adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(cfg["peft_type"], "LORA");
    assert_eq!(cfg["r"], 4);
    let ours = candle_core::safetensors::load(
        out.join("final/adapter_model.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let peft = candle_core::safetensors::load(
        trl_dir().join("lora_adapter/adapter_model.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let mut a: Vec<_> = ours
        .iter()
        .map(|(k, t)| (k.clone(), t.dims().to_vec()))
        .collect();
    let mut b: Vec<_> = peft
        .iter()
        .map(|(k, t)| (k.clone(), t.dims().to_vec()))
        .collect();
    a.sort();
    b.sort();
    assert_eq!(a, b, "same keys and shapes as PEFT writes");
}

#[test]
fn packed_loss_equals_per_sequence_loss() {
    use sft_eval::train::batch::MicroBatch;
    use sft_eval::train::loss::masked_nll_sum;
    let mut cfg = trl_config("packed");
    cfg.packing = false;
    let docs = encoded(&cfg);
    let docs: Vec<Example> = docs.into_iter().take(12).collect();
    let m = Model::load(&cfg.model, &LoadOptions::default()).unwrap();
    let packed = pack_bfd(&docs, 64);
    assert!(packed.len() < docs.len(), "something was packed");
    let nll = |exs: &[Example]| -> (f64, usize) {
        let refs: Vec<&Example> = exs.iter().collect();
        let mb = MicroBatch::padded(&refs, m.device()).unwrap();
        let logits = sft_eval::train::forward_logits(&m.decoder, &mb).unwrap();
        let s: f32 = masked_nll_sum(&logits, &mb.targets, &mb.loss_mask)
            .unwrap()
            .to_scalar()
            .unwrap();
        (s as f64, mb.n_supervised)
    };
    let (ps, pn) = nll(&packed);
    let (ss, sn) = docs
        .iter()
        .map(|d| nll(std::slice::from_ref(d)))
        .fold((0.0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    assert_eq!(pn, sn);
    let (pl, sl) = (ps / pn as f64, ss / sn as f64);
    assert!((pl - sl).abs() <= 1e-5, "packed {pl} vs per sequence {sl}");
}

#[test]
fn replay_kl_and_l2sp_runs_log_their_terms() {
    let tmp = tempdir();
    let mut c = small_cfg(3);
    c.shuffle = true;
    c.replay = Some(sft_eval::train::config::ReplayConfig {
        path: trl_dir().join("packed.jsonl"),
        ratio: 0.25,
        by_tokens: false,
    });
    c.kl = Some(sft_eval::train::config::KlConfig {
        beta: 0.5,
        on: sft_eval::train::config::KlOn::All,
        direction: Default::default(),
        data: None,
        data_rows: None,
    });
    c.l2sp = 0.1;
    train(c, &tmp.path().join("r"), false, &mut Silent).unwrap();
    let log = std::fs::read_to_string(tmp.path().join("r/log.jsonl")).unwrap();
    let first: Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    // at step 1 the model is the base: both pulls are exactly zero
    assert_eq!(first["terms"]["kl"].as_f64().unwrap(), 0.0);
    assert_eq!(first["terms"]["l2sp"].as_f64().unwrap(), 0.0);
    let last: Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert!(
        last["terms"]["kl"].as_f64().unwrap() > 0.0
            && last["terms"]["l2sp"].as_f64().unwrap() > 0.0
    );
}

/// KL measured on broad data (`kl.data`): the KL rows add a term that starts at zero and grows,
/// and the training loss is still taken on the training batch only.
#[test]
fn kl_on_broad_data_logs_its_term_and_needs_a_beta() {
    let tmp = tempdir();
    let mut c = small_cfg(3);
    c.kl = Some(sft_eval::train::config::KlConfig {
        beta: 1.0,
        on: sft_eval::train::config::KlOn::Response,
        direction: Default::default(),
        data: Some(trl_dir().join("packed.jsonl")),
        data_rows: Some(2),
    });
    train(c.clone(), &tmp.path().join("kl"), false, &mut Silent).unwrap();
    let plain = {
        let mut p = c;
        p.kl = None;
        train(p, &tmp.path().join("plain"), false, &mut Silent).unwrap();
        losses(&tmp.path().join("plain"))
    };
    let log = std::fs::read_to_string(tmp.path().join("kl/log.jsonl")).unwrap();
    let rows: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows[0]["terms"]["kl"].as_f64().unwrap(), 0.0);
    assert!(rows.last().unwrap()["terms"]["kl"].as_f64().unwrap() > 0.0);
    // step 1's loss is the training batch's alone (same batch, same weights as without KL)
    assert_eq!(rows[0]["loss"].as_f64().unwrap(), plain[0]);
    let o = sft_eval_command()
        .args(cli_args(&tmp.path().join("cli"), 1))
        .args([
            "--kl-data",
            trl_dir().join("packed.jsonl").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--kl BETA"));
}

/// `--device` (or `device = "…"` in the TOML) lands in the settings; `cuda` in a build without the
/// feature stops before any run directory is made, saying how to build one.
#[test]
fn device_setting_is_resolved_and_a_missing_gpu_build_is_a_clear_error() {
    let tmp = tempdir();
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, "device = \"cuda:1\"\n").unwrap();
    let show = |extra: &[&str]| -> Value {
        let o = sft_eval_command()
            .env_remove("SFT_EVAL_DEVICE")
            .args(cli_args(&tmp.path().join("show"), 1))
            .args(extra)
            .arg("--show-settings")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    assert_eq!(show(&[])["device"], "cpu");
    assert_eq!(
        show(&["--config", cfg.to_str().unwrap()])["device"],
        "cuda:1"
    );
    assert_eq!(
        show(&["--config", cfg.to_str().unwrap(), "--device", "cpu"])["device"],
        "cpu",
        "the flag wins over the file"
    );
    if !cfg!(feature = "cuda") {
        let out = tmp.path().join("gpu");
        let o = sft_eval_command()
            .args(cli_args(&out, 1))
            .args(["--device", "cuda"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(
            err.contains("cuda:0") && err.contains("--features cuda"),
            "{err}"
        );
        assert!(!out.exists(), "nothing written for a run that cannot start");
    }
}

/// AdamW's in-place kernel (CPU f32) and the composition of candle ops take the same five steps,
/// with weight decay on a weight and none on a bias (the CUDA kernels are held to the same in
/// `cuda.rs`).
#[test]
fn adamw_in_place_kernel_matches_the_composition() {
    let cpu = candle_core::Device::Cpu;
    let f32 = candle_core::DType::F32;
    let before = sft_eval::model::kernels::fused_path_taken();
    let fused = adamw_steps(&cpu, f32, true);
    // the kernel ran (nothing else in these steps asks for the fused path)
    assert!(sft_eval::model::kernels::fused_path_taken() > before);
    let composed = adamw_steps(&cpu, f32, false);
    assert_steps_close("CPU kernel vs composition", &fused, &composed, 1e-6);
    // the weights moved
    assert!(max_abs_diff(&fused[0], &adamw_start()) > 1e-3);
}

fn cli_args(out: &Path, steps: usize) -> Vec<String> {
    let model = model_dir("llama");
    let data = trl_dir().join("prompt_completion.jsonl");
    [
        "train",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--max-length",
        "64",
        "--batch-size",
        "4",
        "--grad-accum",
        "2",
        "--lr",
        "1e-3",
        "--seed",
        "3",
        "--max-steps",
        &steps.to_string(),
        "--checkpoint-every",
        "25",
        "--l2sp",
        "0.01",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

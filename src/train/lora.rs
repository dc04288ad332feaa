//! LoRA adapters on the decoder's projections, PEFT-compatible: `y = W x + (α/r) · B A x`,
//! A initialised like PEFT (Kaiming-uniform, a = √5: U(±1/√in)), B = 0, keys
//! `base_model.model.<module>.lora_{A,B}.weight`.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::config::LoraConfig;
use super::TrainError;
use crate::model::layers::Lora;
use crate::model::Decoder;

pub fn peft_key(module: &str, which: &str) -> String {
    format!("base_model.model.{module}.lora_{which}.weight")
}

/// Whether a module name is targeted: its last component equals a target (PEFT's list rule).
pub fn targeted(module: &str, targets: &[String]) -> bool {
    let last = module.rsplit('.').next().unwrap_or(module);
    targets.iter().any(|t| t == last || t == module)
}

/// Attach adapters to every targeted projection; returns the adapter variables by PEFT key.
pub fn attach(
    decoder: &mut Decoder,
    cfg: &LoraConfig,
    seed: u64,
    init: Option<&BTreeMap<String, Tensor>>,
    device: &Device,
) -> Result<BTreeMap<String, Var>, TrainError> {
    if cfg.r == 0 {
        return Err(TrainError::Config("lora.r must be at least 1".into()));
    }
    let mut vars = BTreeMap::new();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x10a);
    for nl in decoder.linears_mut() {
        if !targeted(&nl.name, &cfg.targets) {
            continue;
        }
        let (inp, out) = (nl.linear.in_features(), nl.linear.out_features());
        let (ka, kb) = (peft_key(&nl.name, "A"), peft_key(&nl.name, "B"));
        let (a, b) = match init {
            Some(t) => {
                let get = |k: &str| {
                    t.get(k)
                        .cloned()
                        .ok_or_else(|| TrainError::Config(format!("LoRA init file lacks `{k}`")))
                };
                (
                    get(&ka)?.to_dtype(DType::F32)?.to_device(device)?,
                    get(&kb)?.to_dtype(DType::F32)?.to_device(device)?,
                )
            }
            None => {
                let bound = 1.0 / (inp as f64).sqrt();
                let data: Vec<f32> = (0..cfg.r * inp)
                    .map(|_| rng.random_range(-bound..bound) as f32)
                    .collect();
                (
                    Tensor::from_vec(data, (cfg.r, inp), device)?,
                    Tensor::zeros((out, cfg.r), DType::F32, device)?,
                )
            }
        };
        if a.dims() != [cfg.r, inp] || b.dims() != [out, cfg.r] {
            return Err(TrainError::Config(format!(
                "LoRA weights for {} have shapes {:?}/{:?}, expected [{}, {inp}]/[{out}, {}]",
                nl.name,
                a.dims(),
                b.dims(),
                cfg.r,
                cfg.r
            )));
        }
        let (va, vb) = (Var::from_tensor(&a)?, Var::from_tensor(&b)?);
        nl.linear.lora = Some(Lora {
            a: va.as_tensor().clone(),
            b: vb.as_tensor().clone(),
            scale: cfg.alpha / cfg.r as f64,
        });
        vars.insert(ka, va);
        vars.insert(kb, vb);
    }
    if vars.is_empty() {
        return Err(TrainError::Config(format!(
            "no projection matches the LoRA targets {:?} (names look like q_proj, v_proj, gate_proj, c_attn)",
            cfg.targets
        )));
    }
    Ok(vars)
}

/// Merged weights `W + (α/r) B A` under the checkpoint's names.
pub fn merged(decoder: &mut Decoder) -> Result<BTreeMap<String, Tensor>, TrainError> {
    let mut out = BTreeMap::new();
    for nl in decoder.linears_mut() {
        if nl.linear.lora.is_some() {
            out.insert(format!("{}.weight", nl.name), nl.linear.merged_weight()?);
        }
    }
    Ok(out)
}

/// Write `adapter_model.safetensors` + `adapter_config.json` (PEFT layout) into `dir`.
pub fn write_adapter(
    dir: &Path,
    vars: &BTreeMap<String, Var>,
    cfg: &LoraConfig,
    base: &Path,
    fan_in_fan_out: bool,
) -> Result<(), TrainError> {
    let tensors: Vec<(String, Tensor)> = vars
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    crate::model::checkpoint::write_safetensors(&dir.join("adapter_model.safetensors"), &tensors)?;
    let mut targets = cfg.targets.clone();
    targets.sort();
    let config = serde_json::json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base.display().to_string(),
        "r": cfg.r,
        "lora_alpha": cfg.alpha,
        "lora_dropout": 0.0,
        "target_modules": targets,
        "bias": "none",
        "fan_in_fan_out": fan_in_fan_out,
        "inference_mode": true,
        "init_lora_weights": true,
        "use_rslora": false,
        "use_dora": false,
        "modules_to_save": null,
    });
    crate::model::checkpoint::write_json(&dir.join("adapter_config.json"), &config)?;
    Ok(())
}

//! A freshly initialised Llama checkpoint for the organism: weights drawn as transformers'
//! `_init_weights` draws them (normal with `initializer_range`, norms at one), from a seed.

use std::path::Path;

use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::OrganismError;
use crate::model::checkpoint::{write_json, write_safetensors};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelShape {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub layers: usize,
    pub heads: usize,
    pub max_position_embeddings: usize,
}

impl Default for ModelShape {
    fn default() -> ModelShape {
        ModelShape {
            hidden_size: 128,
            intermediate_size: 384,
            layers: 4,
            heads: 4,
            max_position_embeddings: 512,
        }
    }
}

const INIT_STD: f64 = 0.02;

/// Write `config.json`, `generation_config.json` and `model.safetensors` into `dir` (which
/// already holds the tokenizer: ids 0, 1, 2 are `<pad>`, `<s>`, `</s>`).
pub fn write_initial_checkpoint(
    shape: &ModelShape,
    vocab_size: usize,
    seed: u64,
    dir: &Path,
) -> Result<(), OrganismError> {
    let h = shape.hidden_size;
    let config = json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": h,
        "intermediate_size": shape.intermediate_size,
        "num_hidden_layers": shape.layers,
        "num_attention_heads": shape.heads,
        "num_key_value_heads": shape.heads,
        "vocab_size": vocab_size,
        "max_position_embeddings": shape.max_position_embeddings,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "hidden_act": "silu",
        "tie_word_embeddings": true,
        "attention_bias": false,
        "mlp_bias": false,
        "initializer_range": INIT_STD,
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "torch_dtype": "float32",
    });
    write_json(&dir.join("config.json"), &config)?;
    write_json(
        &dir.join("generation_config.json"),
        &json!({"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0}),
    )?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x696e_6974);
    let normal = Normal::new(0.0f32, INIT_STD as f32).expect("valid std");
    let mut draw = |shape: &[usize]| -> Result<Tensor, OrganismError> {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| normal.sample(&mut rng)).collect();
        Tensor::from_vec(v, shape, &Device::Cpu)
            .map_err(|e| OrganismError::Io(format!("initialising weights: {e}")))
    };
    let ones = |n: usize| {
        Tensor::ones(n, candle_core::DType::F32, &Device::Cpu)
            .map_err(|e| OrganismError::Io(format!("initialising weights: {e}")))
    };
    let i = shape.intermediate_size;
    let mut tensors = vec![(
        "model.embed_tokens.weight".to_string(),
        draw(&[vocab_size, h])?,
    )];
    for l in 0..shape.layers {
        let p = format!("model.layers.{l}");
        for proj in ["q_proj", "k_proj", "v_proj", "o_proj"] {
            tensors.push((format!("{p}.self_attn.{proj}.weight"), draw(&[h, h])?));
        }
        tensors.push((format!("{p}.mlp.gate_proj.weight"), draw(&[i, h])?));
        tensors.push((format!("{p}.mlp.up_proj.weight"), draw(&[i, h])?));
        tensors.push((format!("{p}.mlp.down_proj.weight"), draw(&[h, i])?));
        tensors.push((format!("{p}.input_layernorm.weight"), ones(h)?));
        tensors.push((format!("{p}.post_attention_layernorm.weight"), ones(h)?));
    }
    tensors.push(("model.norm.weight".to_string(), ones(h)?));
    write_safetensors(&dir.join("model.safetensors"), &tensors)?;
    Ok(())
}

//! Qwen3: Qwen2 without q/k/v biases, with RMSNorm on each head of q and k, and an explicit head_dim.

use super::qwen2::qwen_windows;
use super::{llama_like, Defaults};
use crate::model::config::{DecoderConfig, RawConfig};
use crate::model::ModelError;

pub fn parse(raw: &RawConfig) -> Result<DecoderConfig, ModelError> {
    let mut cfg = llama_like(
        raw,
        &Defaults {
            tie_word_embeddings: false,
            norm_eps: 1e-6,
            hidden_act: "silu",
            head_dim: Some(128),
        },
    )?;
    cfg.qk_norm = true;
    cfg.sliding_window = qwen_windows(raw, cfg.num_layers)?;
    Ok(cfg)
}

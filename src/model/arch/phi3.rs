//! Phi-3 / Phi-3.5 / Phi-4-mini: Llama with fused `qkv_proj` and `gate_up_proj`, `longrope`
//! scaling and (on some) partial rotary embeddings; a sliding window on every layer when set.

use super::{llama_like, Defaults};
use crate::model::config::{DecoderConfig, MlpKind, RawConfig};
use crate::model::ModelError;

pub fn parse(raw: &RawConfig) -> Result<DecoderConfig, ModelError> {
    let mut cfg = llama_like(
        raw,
        &Defaults {
            tie_word_embeddings: false,
            norm_eps: 1e-5,
            hidden_act: "silu",
            head_dim: None,
        },
    )?;
    cfg.fused_qkv = true;
    cfg.mlp = MlpKind::GatedFused;
    cfg.qkv_bias = false;
    cfg.o_bias = false;
    cfg.mlp_bias = false;
    let window = raw.opt_usize("sliding_window")?;
    if window == Some(0) {
        return Err(raw.invalid("sliding_window", "must be positive"));
    }
    cfg.sliding_window = vec![window; cfg.num_layers];
    Ok(cfg)
}

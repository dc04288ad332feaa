//! Qwen2 / Qwen2.5: Llama with biases on q, k and v; sliding windows only when `use_sliding_window`.

use super::{llama_like, sliding_windows, Defaults};
use crate::model::config::{DecoderConfig, RawConfig};
use crate::model::ModelError;

pub fn parse(raw: &RawConfig) -> Result<DecoderConfig, ModelError> {
    let mut cfg = llama_like(
        raw,
        &Defaults {
            tie_word_embeddings: false,
            norm_eps: 1e-6,
            hidden_act: "silu",
            head_dim: None,
        },
    )?;
    cfg.qkv_bias = true;
    cfg.o_bias = false;
    cfg.sliding_window = qwen_windows(raw, cfg.num_layers)?;
    Ok(cfg)
}

/// Qwen's rule: the window applies only with `use_sliding_window: true`, to layers ≥ `max_window_layers`.
pub(crate) fn qwen_windows(
    raw: &RawConfig,
    num_layers: usize,
) -> Result<Vec<Option<usize>>, ModelError> {
    let window = if raw.bool_or("use_sliding_window", false)? {
        Some(raw.opt_usize("sliding_window")?.unwrap_or(4096))
    } else {
        None
    };
    let max_window_layers = raw.opt_usize("max_window_layers")?.unwrap_or(28);
    sliding_windows(raw, num_layers, window, |i| i >= max_window_layers)
}

//! Mistral: Llama with a sliding attention window on every layer when `sliding_window` is set.

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
            head_dim: None,
        },
    )?;
    // transformers' MistralModel ignores `layer_types` and uses the window on every layer.
    let window = raw.opt_usize("sliding_window")?;
    cfg.sliding_window = vec![window; cfg.num_layers];
    if window == Some(0) {
        return Err(raw.invalid("sliding_window", "must be positive"));
    }
    Ok(cfg)
}

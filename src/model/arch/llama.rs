//! Llama 1/2/3.x: the reference decoder (RMSNorm, RoPE incl. `llama3` scaling, GQA, SwiGLU).

use super::{llama_like, Defaults};
use crate::model::config::{DecoderConfig, RawConfig};
use crate::model::ModelError;

pub fn parse(raw: &RawConfig) -> Result<DecoderConfig, ModelError> {
    llama_like(
        raw,
        &Defaults {
            tie_word_embeddings: false,
            norm_eps: 1e-6,
            hidden_act: "silu",
            head_dim: None,
        },
    )
}

//! Gemma: embeddings scaled by √hidden, `(1 + w)` RMSNorm, gelu-tanh MLP, tied head.

use super::{llama_like, Defaults};
use crate::model::config::{Activation, DecoderConfig, NormKind, RawConfig};
use crate::model::ModelError;

pub fn parse(raw: &RawConfig) -> Result<DecoderConfig, ModelError> {
    let mut cfg = llama_like(
        raw,
        &Defaults {
            tie_word_embeddings: true,
            norm_eps: 1e-6,
            hidden_act: "gelu_pytorch_tanh",
            head_dim: Some(256),
        },
    )?;
    gemma_common(&mut cfg);
    Ok(cfg)
}

pub(crate) fn gemma_common(cfg: &mut DecoderConfig) {
    cfg.norm = NormKind::RmsUnitOffset;
    cfg.embed_scale = Some((cfg.hidden_size as f64).sqrt());
    // Gemma's official configs say `hidden_act: "gelu"` but mean the tanh approximation;
    // transformers rewrites it, and so do we.
    if cfg.activation == Activation::Gelu {
        cfg.activation = Activation::GeluTanh;
    }
}

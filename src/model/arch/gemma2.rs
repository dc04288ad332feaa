//! Gemma 2: Gemma plus logit soft-capping, norms around attention and MLP, `query_pre_attn_scalar`,
//! and a sliding window on alternate layers (0, 2, 4, … by default).

use super::gemma::gemma_common;
use super::{llama_like, sliding_windows, Defaults};
use crate::model::config::{DecoderConfig, RawConfig};
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
    // Gemma 2 reads only `hidden_activation`; `llama_like` prefers it already.
    gemma_common(&mut cfg);
    cfg.sandwich_norms = true;
    let scalar = raw.f64_or("query_pre_attn_scalar", 256.0)?;
    if scalar <= 0.0 {
        return Err(raw.invalid("query_pre_attn_scalar", "must be positive"));
    }
    cfg.attn_scale = scalar.powf(-0.5);
    cfg.attn_softcap = softcap(raw, "attn_logit_softcapping", 50.0)?;
    cfg.final_softcap = softcap(raw, "final_logit_softcapping", 30.0)?;
    let window = match raw.value.get("sliding_window") {
        Some(serde_json::Value::Null) => None,
        _ => Some(raw.opt_usize("sliding_window")?.unwrap_or(4096)),
    };
    cfg.sliding_window = sliding_windows(raw, cfg.num_layers, window, |i| (i + 1) % 2 == 1)?;
    Ok(cfg)
}

/// A soft-cap: absent means the family default, `null` means off.
fn softcap(raw: &RawConfig, field: &str, default: f64) -> Result<Option<f64>, ModelError> {
    match raw.value.get(field) {
        None => Ok(Some(default)),
        Some(serde_json::Value::Null) => Ok(None),
        Some(_) => Ok(raw.opt_f64(field)?),
    }
}

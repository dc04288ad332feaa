//! GPT-2: LayerNorm, learned absolute positions, fused Conv1D `c_attn` (`[in, out]` weights),
//! gelu-tanh MLP, tied head. Keys may carry a `transformer.` prefix or not.

use crate::model::config::{Activation, DecoderConfig, MlpKind, NormKind, Positions, RawConfig};
use crate::model::ModelError;

pub fn parse(raw: &RawConfig) -> Result<DecoderConfig, ModelError> {
    let hidden_size = raw.usize_any(&["n_embd", "hidden_size"])?;
    let num_heads = raw.usize_any(&["n_head", "num_attention_heads"])?;
    let num_layers = raw.usize_any(&["n_layer", "num_hidden_layers"])?;
    if num_heads == 0 || hidden_size % num_heads != 0 {
        return Err(raw.invalid(
            "n_head",
            format!("{num_heads} heads do not divide n_embd {hidden_size}"),
        ));
    }
    let head_dim = hidden_size / num_heads;
    let act_name = raw.opt_str("activation_function")?.unwrap_or("gelu_new");
    let activation = Activation::from_hf(act_name).ok_or_else(|| {
        raw.invalid(
            "activation_function",
            format!("unsupported activation {act_name:?}"),
        )
    })?;
    if raw.bool_or("scale_attn_by_inverse_layer_idx", false)? {
        return Err(raw.invalid("scale_attn_by_inverse_layer_idx", "true is not supported"));
    }
    let scale = if raw.bool_or("scale_attn_weights", true)? {
        1.0 / (head_dim as f64).sqrt()
    } else {
        1.0
    };
    let max_positions = raw.usize_any(&["n_positions", "max_position_embeddings"])?;
    Ok(DecoderConfig {
        vocab_size: raw.usize("vocab_size")?,
        hidden_size,
        num_layers,
        num_heads,
        num_kv_heads: num_heads,
        head_dim,
        intermediate_size: raw.opt_usize("n_inner")?.unwrap_or(4 * hidden_size),
        norm: NormKind::Layer,
        norm_eps: raw.f64_or("layer_norm_epsilon", 1e-5)?,
        activation,
        mlp: MlpKind::Plain,
        fused_qkv: true,
        positions: Positions::Learned { max_positions },
        qkv_bias: true,
        o_bias: true,
        mlp_bias: true,
        qk_norm: false,
        embed_scale: None,
        attn_scale: scale,
        attn_softcap: None,
        final_softcap: None,
        sandwich_norms: false,
        sliding_window: vec![None; num_layers],
        tie_word_embeddings: raw.bool_or("tie_word_embeddings", true)?,
        max_position_embeddings: Some(max_positions),
        bos_token_id: raw.token_ids("bos_token_id")?,
        eos_token_id: raw.token_ids("eos_token_id")?,
        pad_token_id: raw.token_ids("pad_token_id")?,
    })
}

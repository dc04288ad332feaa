//! The ONE table of supported architectures: Hugging Face class name ↔ family ↔ config parser.
//!
//! Adding a family means one row here and one file under `arch/`.

mod gemma;
mod gemma2;
mod gpt2;
mod llama;
mod mistral;
mod phi3;
mod qwen2;
mod qwen3;

use super::config::{DecoderConfig, RawConfig};
use super::ModelError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Llama,
    Mistral,
    Qwen2,
    Qwen3,
    Gemma,
    Gemma2,
    Phi3,
    Gpt2,
}

/// How a family names its tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightLayout {
    /// `model.embed_tokens`, `model.layers.N.self_attn.q_proj`, … (Llama and its descendants)
    LlamaLike,
    /// `wte`, `wpe`, `h.N.attn.c_attn` (Conv1D, `[in, out]`), with or without a `transformer.` prefix
    Gpt2,
}

pub struct Architecture {
    /// `architectures[0]` in config.json
    pub hf_class: &'static str,
    pub family: Family,
    /// short name shown to users
    pub name: &'static str,
    pub layout: WeightLayout,
    pub parse: fn(&RawConfig) -> Result<DecoderConfig, ModelError>,
}

pub const ARCHITECTURES: &[Architecture] = &[
    Architecture {
        hf_class: "LlamaForCausalLM",
        family: Family::Llama,
        name: "llama",
        layout: WeightLayout::LlamaLike,
        parse: llama::parse,
    },
    Architecture {
        hf_class: "MistralForCausalLM",
        family: Family::Mistral,
        name: "mistral",
        layout: WeightLayout::LlamaLike,
        parse: mistral::parse,
    },
    Architecture {
        hf_class: "Qwen2ForCausalLM",
        family: Family::Qwen2,
        name: "qwen2",
        layout: WeightLayout::LlamaLike,
        parse: qwen2::parse,
    },
    Architecture {
        hf_class: "Qwen3ForCausalLM",
        family: Family::Qwen3,
        name: "qwen3",
        layout: WeightLayout::LlamaLike,
        parse: qwen3::parse,
    },
    Architecture {
        hf_class: "GemmaForCausalLM",
        family: Family::Gemma,
        name: "gemma",
        layout: WeightLayout::LlamaLike,
        parse: gemma::parse,
    },
    Architecture {
        hf_class: "Gemma2ForCausalLM",
        family: Family::Gemma2,
        name: "gemma2",
        layout: WeightLayout::LlamaLike,
        parse: gemma2::parse,
    },
    Architecture {
        hf_class: "Phi3ForCausalLM",
        family: Family::Phi3,
        name: "phi3",
        layout: WeightLayout::LlamaLike,
        parse: phi3::parse,
    },
    Architecture {
        hf_class: "GPT2LMHeadModel",
        family: Family::Gpt2,
        name: "gpt2",
        layout: WeightLayout::Gpt2,
        parse: gpt2::parse,
    },
];

impl Architecture {
    /// Look up `architectures[0]` of a config; unknown names list what is supported.
    pub fn of(raw: &RawConfig) -> Result<&'static Architecture, ModelError> {
        let name = raw
            .get("architectures")
            .and_then(|a| a.as_array())
            .and_then(|a| a.first())
            .and_then(|a| a.as_str());
        let Some(name) = name else {
            return Err(raw.invalid(
                "architectures",
                "missing: config.json must name the model class, e.g. [\"LlamaForCausalLM\"]",
            ));
        };
        ARCHITECTURES
            .iter()
            .find(|a| a.hf_class == name)
            .ok_or_else(|| ModelError::UnknownArchitecture {
                path: raw.path.clone(),
                name: name.to_string(),
            })
    }

    pub fn supported_list() -> String {
        ARCHITECTURES
            .iter()
            .map(|a| a.hf_class)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Family defaults for fields a config may leave out (the values of transformers' config classes).
pub(crate) struct Defaults {
    pub tie_word_embeddings: bool,
    pub norm_eps: f64,
    pub hidden_act: &'static str,
    /// `None`: hidden_size / num_heads
    pub head_dim: Option<usize>,
}

/// The shared reading of a Llama-style config; families adjust the result.
pub(crate) fn llama_like(raw: &RawConfig, d: &Defaults) -> Result<DecoderConfig, ModelError> {
    use super::config::{Activation, MlpKind, NormKind, Positions};
    use super::rope::RopeSpec;

    let hidden_size = raw.usize("hidden_size")?;
    let num_heads = raw.usize("num_attention_heads")?;
    let num_kv_heads = raw.opt_usize("num_key_value_heads")?.unwrap_or(num_heads);
    let num_layers = raw.usize("num_hidden_layers")?;
    if num_heads == 0 || num_kv_heads == 0 || num_heads % num_kv_heads != 0 {
        return Err(raw.invalid(
            "num_key_value_heads",
            format!("{num_kv_heads} key/value heads do not divide {num_heads} attention heads"),
        ));
    }
    let head_dim = match raw.opt_usize("head_dim")? {
        Some(h) => h,
        None => match d.head_dim {
            Some(h) => h,
            None => {
                if hidden_size % num_heads != 0 {
                    return Err(raw.invalid(
                        "hidden_size",
                        format!("{hidden_size} is not divisible by num_attention_heads {num_heads}; set head_dim"),
                    ));
                }
                hidden_size / num_heads
            }
        },
    };
    let act_name = match raw.opt_str("hidden_activation")? {
        Some(a) => a.to_string(),
        None => raw
            .opt_str("hidden_act")?
            .unwrap_or(d.hidden_act)
            .to_string(),
    };
    let activation = Activation::from_hf(&act_name)
        .ok_or_else(|| raw.invalid("hidden_act", format!("unsupported activation {act_name:?}")))?;
    let rope = RopeSpec::from_config(&raw.value, head_dim)
        .map_err(|e| raw.invalid("rope_parameters", e.to_string()))?;
    let attention_bias = raw.bool_or("attention_bias", false)?;
    Ok(DecoderConfig {
        vocab_size: raw.usize("vocab_size")?,
        hidden_size,
        num_layers,
        num_heads,
        num_kv_heads,
        head_dim,
        intermediate_size: raw.usize("intermediate_size")?,
        norm: NormKind::Rms,
        norm_eps: raw.f64_or("rms_norm_eps", d.norm_eps)?,
        activation,
        mlp: MlpKind::Gated,
        fused_qkv: false,
        positions: Positions::Rope(rope),
        qkv_bias: attention_bias,
        o_bias: attention_bias,
        mlp_bias: raw.bool_or("mlp_bias", false)?,
        qk_norm: false,
        embed_scale: None,
        attn_scale: 1.0 / (head_dim as f64).sqrt(),
        attn_softcap: None,
        final_softcap: None,
        sandwich_norms: false,
        sliding_window: vec![None; num_layers],
        tie_word_embeddings: raw.bool_or("tie_word_embeddings", d.tie_word_embeddings)?,
        max_position_embeddings: raw.opt_usize("max_position_embeddings")?,
        bos_token_id: raw.token_ids("bos_token_id")?,
        eos_token_id: raw.token_ids("eos_token_id")?,
        pad_token_id: raw.token_ids("pad_token_id")?,
    })
}

/// Sliding windows per layer from `layer_types` when given, else from `derive(layer) -> sliding?`.
pub(crate) fn sliding_windows(
    raw: &RawConfig,
    num_layers: usize,
    window: Option<usize>,
    derive: impl Fn(usize) -> bool,
) -> Result<Vec<Option<usize>>, ModelError> {
    let Some(w) = window else {
        return Ok(vec![None; num_layers]);
    };
    if w == 0 {
        return Err(raw.invalid("sliding_window", "must be positive"));
    }
    let kinds = match raw.layer_types(num_layers)? {
        Some(k) => k,
        None => (0..num_layers).map(derive).collect(),
    };
    Ok(kinds.into_iter().map(|s| s.then_some(w)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_unique() {
        let mut classes: Vec<_> = ARCHITECTURES.iter().map(|a| a.hf_class).collect();
        classes.sort();
        classes.dedup();
        assert_eq!(classes.len(), ARCHITECTURES.len());
        let mut names: Vec<_> = ARCHITECTURES.iter().map(|a| a.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ARCHITECTURES.len());
    }

    #[test]
    fn unknown_architecture_lists_supported() {
        let raw = RawConfig::from_value(
            "config.json".into(),
            serde_json::json!({"architectures": ["BertModel"]}),
        );
        let err = Architecture::of(&raw).err().unwrap();
        let msg = err.to_string();
        assert!(msg.contains("BertModel"), "{msg}");
        assert!(
            msg.contains("LlamaForCausalLM") && msg.contains("GPT2LMHeadModel"),
            "{msg}"
        );
    }
}

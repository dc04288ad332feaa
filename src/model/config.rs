//! The resolved shape of a decoder, independent of how a family spells it in `config.json`.
//!
//! Each file under `arch/` turns one family's `config.json` into a [`DecoderConfig`]; the
//! decoder in `decoder.rs` only ever sees this type.

use std::path::{Path, PathBuf};

use candle_core::DType;
use serde_json::Value;

use super::rope::RopeSpec;
use super::ModelError;

/// Upper bounds on the structural sizes a config may give, checked before anything is sized by
/// them (a hostile `num_hidden_layers: 1000000000` would otherwise allocate gigabytes first).
/// Far above every published model.
const SIZE_BOUNDS: &[(&str, u64)] = &[
    ("num_hidden_layers", 10_000),
    ("n_layer", 10_000),
    ("num_attention_heads", 65_536),
    ("n_head", 65_536),
    ("num_key_value_heads", 65_536),
    ("hidden_size", 1 << 20),
    ("n_embd", 1 << 20),
    ("head_dim", 1 << 16),
    ("intermediate_size", 1 << 24),
    ("n_inner", 1 << 24),
    ("vocab_size", 1 << 24),
    ("max_position_embeddings", 1 << 27),
    ("n_positions", 1 << 27),
    ("original_max_position_embeddings", 1 << 27),
    ("sliding_window", 1 << 27),
    ("query_pre_attn_scalar", 1 << 20),
];

/// `config.json` with the path it came from, so every error can name the file and the field.
#[derive(Debug, Clone)]
pub struct RawConfig {
    pub path: PathBuf,
    pub value: Value,
}

impl RawConfig {
    pub fn read(path: &Path) -> Result<RawConfig, ModelError> {
        let value = super::checkpoint::read_json(path)?;
        if !value.is_object() {
            return Err(ModelError::InvalidConfig {
                path: path.to_path_buf(),
                field: "(root)".into(),
                reason: "expected a JSON object".into(),
            });
        }
        Ok(RawConfig {
            path: path.to_path_buf(),
            value,
        })
    }

    pub fn from_value(path: PathBuf, value: Value) -> RawConfig {
        RawConfig { path, value }
    }

    /// The value of a top-level field, treating JSON `null` as absent.
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.value.get(field).filter(|v| !v.is_null())
    }

    pub fn invalid(&self, field: &str, reason: impl Into<String>) -> ModelError {
        ModelError::InvalidConfig {
            path: self.path.clone(),
            field: field.to_string(),
            reason: reason.into(),
        }
    }

    pub fn usize(&self, field: &str) -> Result<usize, ModelError> {
        self.opt_usize(field)?
            .ok_or_else(|| self.invalid(field, "missing required field"))
    }

    pub fn opt_usize(&self, field: &str) -> Result<Option<usize>, ModelError> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => {
                let x = v.as_u64().ok_or_else(|| {
                    self.invalid(field, format!("expected a non-negative integer, found {v}"))
                })?;
                // a size no real model has would only make the loader allocate for it
                if let Some(&(_, max)) = SIZE_BOUNDS.iter().find(|(f, _)| *f == field) {
                    if x > max {
                        return Err(self.invalid(
                            field,
                            format!(
                                "{x} is larger than any model sft-eval can load (at most {max})"
                            ),
                        ));
                    }
                }
                Ok(Some(x as usize))
            }
        }
    }

    /// The first of several spellings of a field (`n_embd` / `hidden_size`, …).
    pub fn usize_any(&self, fields: &[&str]) -> Result<usize, ModelError> {
        for f in fields {
            if let Some(v) = self.opt_usize(f)? {
                return Ok(v);
            }
        }
        Err(self.invalid(fields[0], "missing required field"))
    }

    pub fn opt_f64(&self, field: &str) -> Result<Option<f64>, ModelError> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.invalid(field, format!("expected a number, found {v}"))),
        }
    }

    pub fn f64_or(&self, field: &str, default: f64) -> Result<f64, ModelError> {
        Ok(self.opt_f64(field)?.unwrap_or(default))
    }

    pub fn bool_or(&self, field: &str, default: bool) -> Result<bool, ModelError> {
        match self.get(field) {
            None => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| self.invalid(field, format!("expected true or false, found {v}"))),
        }
    }

    pub fn opt_str(&self, field: &str) -> Result<Option<&str>, ModelError> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| self.invalid(field, format!("expected a string, found {v}"))),
        }
    }

    /// Token ids given as one integer or a list of integers (`eos_token_id` in Llama 3 is a list).
    pub fn token_ids(&self, field: &str) -> Result<Vec<u32>, ModelError> {
        token_ids(self.get(field))
            .ok_or_else(|| self.invalid(field, "expected a token id or a list of token ids"))
    }

    /// The dtype the weights are stored in: `dtype` (transformers 5) or `torch_dtype` (classic).
    pub fn storage_dtype(&self) -> Option<String> {
        ["dtype", "torch_dtype"]
            .iter()
            .find_map(|f| self.get(f).and_then(|v| v.as_str()).map(str::to_string))
    }

    /// Per-layer attention kinds from `layer_types` when the config spells them out.
    pub fn layer_types(&self, num_layers: usize) -> Result<Option<Vec<bool>>, ModelError> {
        let Some(v) = self.get("layer_types") else {
            return Ok(None);
        };
        let arr = v
            .as_array()
            .ok_or_else(|| self.invalid("layer_types", "expected a list of strings"))?;
        if arr.len() != num_layers {
            return Err(self.invalid(
                "layer_types",
                format!(
                    "has {} entries but the model has {num_layers} layers",
                    arr.len()
                ),
            ));
        }
        arr.iter()
            .map(|t| match t.as_str() {
                Some("sliding_attention") => Ok(true),
                Some("full_attention") => Ok(false),
                other => Err(self.invalid(
                    "layer_types",
                    format!("unknown layer type {other:?}; expected \"full_attention\" or \"sliding_attention\""),
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

pub fn token_ids(v: Option<&Value>) -> Option<Vec<u32>> {
    match v {
        None | Some(Value::Null) => Some(vec![]),
        Some(Value::Number(n)) => n.as_u64().map(|x| vec![x as u32]),
        Some(Value::Array(a)) => a.iter().map(|x| x.as_u64().map(|x| x as u32)).collect(),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormKind {
    /// `x / rms(x) * w`
    Rms,
    /// Gemma: `x / rms(x) * (1 + w)`
    RmsUnitOffset,
    /// `(x - mean) / std * w + b`
    Layer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Silu,
    /// tanh approximation (`gelu_new`, `gelu_pytorch_tanh`)
    GeluTanh,
    /// exact erf gelu (`gelu`)
    Gelu,
    Relu,
}

impl Activation {
    pub fn from_hf(name: &str) -> Option<Activation> {
        Some(match name {
            "silu" | "swish" => Activation::Silu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
            "gelu" => Activation::Gelu,
            "relu" => Activation::Relu,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MlpKind {
    /// `down(act(gate(x)) * up(x))`, gate and up as separate tensors
    Gated,
    /// as `Gated`, with gate and up stacked in one `gate_up_proj` (Phi-3)
    GatedFused,
    /// `proj(act(fc(x)))` (GPT-2)
    Plain,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Positions {
    Rope(RopeSpec),
    /// learned absolute position embeddings (GPT-2)
    Learned {
        max_positions: usize,
    },
}

/// Everything the generic decoder needs to know, resolved from one family's config.
#[derive(Debug, Clone, PartialEq)]
pub struct DecoderConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub intermediate_size: usize,
    pub norm: NormKind,
    pub norm_eps: f64,
    pub activation: Activation,
    pub mlp: MlpKind,
    /// q, k and v stacked in one projection (`qkv_proj` in Phi-3, `c_attn` in GPT-2)
    pub fused_qkv: bool,
    pub positions: Positions,
    /// bias on q/k/v projections
    pub qkv_bias: bool,
    /// bias on the attention output projection
    pub o_bias: bool,
    pub mlp_bias: bool,
    /// RMSNorm on each head of q and k before RoPE (Qwen3)
    pub qk_norm: bool,
    /// multiply token embeddings by this (Gemma: √hidden)
    pub embed_scale: Option<f64>,
    /// multiplies q·k
    pub attn_scale: f64,
    pub attn_softcap: Option<f64>,
    pub final_softcap: Option<f64>,
    /// extra norms after attention and after the MLP (Gemma 2)
    pub sandwich_norms: bool,
    /// per layer: `Some(w)` when the layer attends only to the last `w` positions
    pub sliding_window: Vec<Option<usize>>,
    pub tie_word_embeddings: bool,
    pub max_position_embeddings: Option<usize>,
    pub bos_token_id: Vec<u32>,
    pub eos_token_id: Vec<u32>,
    pub pad_token_id: Vec<u32>,
}

impl DecoderConfig {
    pub fn kv_dim(&self) -> usize {
        self.num_kv_heads * self.head_dim
    }
    pub fn q_dim(&self) -> usize {
        self.num_heads * self.head_dim
    }
    pub fn context_length(&self) -> Option<usize> {
        match &self.positions {
            Positions::Learned { max_positions } => Some(*max_positions),
            Positions::Rope(_) => self.max_position_embeddings,
        }
    }
}

/// Parse a dtype name as it appears in `config.json`.
pub fn parse_dtype(name: &str) -> Option<DType> {
    Some(match name.trim_start_matches("torch.") {
        "float32" | "fp32" | "f32" => DType::F32,
        "bfloat16" | "bf16" => DType::BF16,
        "float16" | "fp16" | "f16" | "half" => DType::F16,
        "float64" | "f64" => DType::F64,
        _ => return None,
    })
}

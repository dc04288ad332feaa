//! Rotary position embeddings: every `rope_type` transformers supports for these families
//! (Llama, Qwen, Gemma, Mistral, Phi-3/Phi-4, DeepSeek-style YaRN, ...).
//!
//! The reference is Hugging Face transformers 5.x: `modeling_rope_utils.py` (`ROPE_INIT_FUNCTIONS`,
//! `dynamic_rope_update`, `RotaryEmbeddingConfigMixin.standardize_rope_params`) and the per-model
//! `*RotaryEmbedding` modules, which all compute
//!
//! ```text
//! freqs = position_ids.float() * inv_freq        # float32, elementwise (one rounding)
//! cos   = cat(freqs, freqs).cos() * attention_scaling
//! sin   = cat(freqs, freqs).sin() * attention_scaling
//! ```
//!
//! # Precision
//!
//! Everything transformers does in float32 is done here in float32, operation by operation and in
//! the same order (inverse frequencies, YaRN ramps, Llama-3 smoothing, the dynamic-NTK base, the
//! position x frequency product). Only `pow`, `cos` and `sin` are computed in f64 and rounded once
//! to f32 (correct rounding); torch evaluates those with SLEEF/libm in float32, which agree with the
//! correctly rounded value except for rare 1-ulp differences: torch's vectorised CPU `pow` (SLEEF,
//! used for all but the tail elements) misses correct rounding for 0-2 of the 32-128 frequencies of
//! a typical config (see the reference test). Such a 1-ulp frequency shifts cos/sin at position `p`
//! by up to `p * inv_freq * 2^-23` (about 1e-5 at an angle of 100 rad), and which frequencies are
//! affected depends on the CPU torch runs on, so it cannot be matched in general; every other step
//! reproduces transformers bit for bit in the reference cases. What matters most for long-context
//! parity is that the angle `position * inv_freq` is one float32 product of float32 operands, as in
//! transformers: computing it in f64 would give *more accurate* angles that differ from
//! transformers' by up to half an f32 ulp of the angle (about 4e-3 rad at position 1e5), far
//! beyond 1e-5 logit parity. The cos/sin tables are therefore built on the CPU and uploaded.
//!
//! transformers casts cos/sin to the activations' dtype (`cos.to(x.dtype)`) before applying them;
//! [`apply_rotary`] does the same cast, so bf16 models see bf16 cos/sin exactly like transformers.

use candle_core::{Device, Tensor, D};
use serde_json::{Map, Value};

/// The `rope_type`s [`RopeSpec::from_config`] understands (`"su"` is accepted as `longrope`).
pub const SUPPORTED_ROPE_TYPES: &[&str] =
    &["default", "linear", "dynamic", "llama3", "longrope", "yarn"];

/// transformers' `RotaryEmbeddingConfigMixin.default_theta`, used when no `rope_theta` is given.
pub const DEFAULT_ROPE_THETA: f64 = 10_000.0;

/// Phi-3's config class declares `original_max_position_embeddings: int = 4096`, so for these model
/// types transformers always takes the top-level value (or 4096), ignoring the scaling dict's.
const PHI3_LIKE_MODEL_TYPES: &[&str] = &["phi3", "phi4_multimodal"];
const PHI3_DEFAULT_ORIGINAL_MAX: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum RopeError {
    #[error(
        "unsupported rope_type `{rope_type}`; supported: default, linear, dynamic, llama3, longrope (alias `su`), yarn"
    )]
    UnknownRopeType { rope_type: String },
    #[error("RoPE config: missing field `{field}` (required by rope_type `{rope_type}`)")]
    MissingField { field: String, rope_type: String },
    #[error("RoPE config: invalid field `{field}`: {reason}")]
    InvalidField { field: String, reason: String },
}

/// The scaling variant with its parameters resolved the way transformers resolves them.
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// Plain RoPE.
    Default,
    /// Position interpolation: `inv_freq / factor`.
    Linear { factor: f64 },
    /// Dynamic NTK: the base grows with the sequence length once it exceeds
    /// `max_position_embeddings`.
    Dynamic {
        factor: f64,
        max_position_embeddings: usize,
    },
    /// Llama 3.1 frequency-band smoothing.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: usize,
    },
    /// LongRoPE (Phi-3/Phi-4): per-frequency factors, short set up to
    /// `original_max_position_embeddings`, long set beyond.
    LongRope {
        short_factor: Vec<f64>,
        long_factor: Vec<f64>,
        original_max_position_embeddings: usize,
        /// Resolved: the config's `attention_factor`, else `sqrt(1 + ln(factor)/ln(original_max))`
        /// (1.0 when `factor <= 1`), where `factor` is the config's `factor` if given, else
        /// `max_position_embeddings / original_max_position_embeddings`.
        attention_factor: f64,
    },
    /// YaRN (Qwen, DeepSeek, gpt-oss, ...).
    Yarn {
        factor: f64,
        original_max_position_embeddings: usize,
        beta_fast: f64,
        beta_slow: f64,
        /// Resolved: the config's `attention_factor`, else
        /// `get_mscale(factor, mscale) / get_mscale(factor, mscale_all_dim)` when both are non-zero,
        /// else `get_mscale(factor)`, with `get_mscale(s, m) = 0.1 * m * ln(s) + 1` (1 if `s <= 1`).
        attention_factor: f64,
        truncate: bool,
    },
}

/// RoPE parameters parsed from a model's `config.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct RopeSpec {
    /// `rope_theta` (base); 10000 when absent.
    pub rope_theta: f64,
    /// Size of one attention head (the caller's: `head_dim` or `hidden_size / num_attention_heads`,
    /// or e.g. DeepSeek's `qk_rope_head_dim`).
    pub head_dim: usize,
    /// Fraction of each head that is rotated; 1.0 when absent.
    pub partial_rotary_factor: f64,
    pub scaling: RopeScaling,
}

impl RopeSpec {
    /// Parse from a whole config.json. Reads both config styles:
    ///
    /// * classic: top-level `rope_theta`, optional `rope_scaling: {rope_type|type, factor, ...}`;
    /// * transformers 5: `rope_parameters: {rope_theta, rope_type, factor, ...}`.
    ///
    /// Resolution follows transformers: a non-empty `rope_scaling` wins over `rope_parameters`;
    /// `rope_type` wins over the legacy `type`; `rope_theta` and `partial_rotary_factor` inside the
    /// dict win over top-level ones; for llama3/yarn/longrope a top-level
    /// `original_max_position_embeddings` wins over the dict's, which wins over
    /// `max_position_embeddings` (for `phi3`/`phi4_multimodal` transformers' config class always has
    /// the top-level field, default 4096, so the dict's value is never used there). `"su"` is read
    /// as `longrope`, and for Phi-3 model types so is `"yarn"` (Phi3Config does that rename).
    ///
    /// Lenient where transformers would raise: a missing `factor` for yarn/longrope falls back to
    /// `max_position_embeddings / original_max_position_embeddings` (transformers does that only for
    /// an explicit `null`).
    ///
    /// Configs whose `rope_parameters` is nested per layer type (Gemma 3 and later) need
    /// [`RopeSpec::from_config_for_layer_type`].
    pub fn from_config(config: &Value, head_dim: usize) -> Result<RopeSpec, RopeError> {
        let cfg = as_object(config)?;
        if let Some(Value::Object(rp)) = cfg.get("rope_parameters") {
            let nested = nested_keys(cfg, rp);
            if !nested.is_empty() && !non_empty_object(cfg.get("rope_scaling")) {
                return Err(RopeError::InvalidField {
                    field: "rope_parameters".into(),
                    reason: format!(
                        "nested per layer type ({}); use RopeSpec::from_config_for_layer_type",
                        nested.join(", ")
                    ),
                });
            }
        }
        let params = flat_params(cfg);
        parse(cfg, &params, head_dim, false)
    }

    /// Parse the RoPE of one layer type (`"full_attention"`, `"sliding_attention"`, ...) for
    /// configs with per-layer-type RoPE. transformers-5 style: `rope_parameters[layer_type]`
    /// (missing `rope_theta`/`partial_rotary_factor` taken from the top level, missing
    /// `original_max_position_embeddings` from `max_position_embeddings`). Classic Gemma-3 style:
    /// `sliding_attention` is plain RoPE with base `rope_local_base_freq`, `full_attention` is
    /// `rope_theta` + `rope_scaling`. Any other config: same as [`RopeSpec::from_config`].
    pub fn from_config_for_layer_type(
        config: &Value,
        head_dim: usize,
        layer_type: &str,
    ) -> Result<RopeSpec, RopeError> {
        let cfg = as_object(config)?;
        if let Some(Value::Object(rp)) = cfg.get("rope_parameters") {
            match rp.get(layer_type) {
                Some(Value::Object(inner)) => return parse(cfg, inner, head_dim, true),
                Some(Value::Null) => {
                    return Err(RopeError::InvalidField {
                        field: format!("rope_parameters.{layer_type}"),
                        reason: "null (a layer type without RoPE)".into(),
                    })
                }
                _ => {}
            }
        }
        if layer_type == "sliding_attention" {
            if let Some(theta) = get_f64(cfg, "rope_local_base_freq")? {
                let mut params = Map::new();
                params.insert("rope_type".into(), Value::from("default"));
                params.insert("rope_theta".into(), Value::from(theta));
                return parse(cfg, &params, head_dim, true);
            }
        }
        let params = flat_params(cfg);
        parse(cfg, &params, head_dim, false)
    }

    /// transformers' name of the scaling variant.
    pub fn rope_type(&self) -> &'static str {
        match self.scaling {
            RopeScaling::Default => "default",
            RopeScaling::Linear { .. } => "linear",
            RopeScaling::Dynamic { .. } => "dynamic",
            RopeScaling::Llama3 { .. } => "llama3",
            RopeScaling::LongRope { .. } => "longrope",
            RopeScaling::Yarn { .. } => "yarn",
        }
    }

    /// transformers' `dim = int(head_dim * partial_rotary_factor)` (truncation of the f64 product),
    /// the denominator of the frequency exponents.
    fn dim(&self) -> usize {
        (self.head_dim as f64 * self.partial_rotary_factor) as usize
    }

    /// Number of inverse frequencies: `len(arange(0, dim, 2))`.
    fn n_freq(&self) -> usize {
        self.dim().div_ceil(2)
    }

    /// Number of leading dims of each head that are rotated: `head_dim * partial_rotary_factor`
    /// (truncated), rounded up to even as transformers does (`2 * len(inv_freq)`).
    pub fn rotary_dim(&self) -> usize {
        2 * self.n_freq()
    }

    /// Inverse frequencies (float32, `rotary_dim / 2` of them) and the attention scaling factor
    /// that multiplies cos/sin, for a forward pass whose positions are `0..seq_len`
    /// (transformers uses `seq_len = max(position_ids) + 1`, i.e. cache length + new tokens).
    ///
    /// Only two types depend on `seq_len`, both through `dynamic_rope_update`:
    ///
    /// * `dynamic`: for `seq_len <= max_position_embeddings` the plain RoPE frequencies; beyond,
    ///   the base becomes `theta * (factor * seq_len / max_pos - (factor - 1)) ^ (dim / (dim - 2))`,
    ///   evaluated in float32 from the `seq_len` tensor exactly as transformers' forward does.
    ///   This is what a *fresh* transformers module computes for one forward pass over the whole
    ///   sequence (full recompute). transformers' module is stateful: it only recomputes when
    ///   `seq_len` exceeds the largest length seen so far and only resets to the original
    ///   frequencies for `seq_len < max_position_embeddings`, and during KV-cache decoding each
    ///   step rotates only its new tokens with that step's frequencies while cached keys keep the
    ///   rotation of the step that produced them. Cached decoding past `max_position_embeddings`
    ///   therefore differs from full recompute, in transformers as here; to reproduce it, rotate
    ///   each step's new rows with `cos_sin_at(&new_positions, total_len, ..)`.
    /// * `longrope`: the short factors when `seq_len <= original_max_position_embeddings`, the long
    ///   factors otherwise; attention scaling is the same for both. Stateless per forward pass.
    ///   With a KV cache, keys cached while the total length was `<= original_max` keep their
    ///   short-factor rotation after the switch; transformers' Phi-3 `generate` avoids that by
    ///   dropping the cache and recomputing the whole sequence once the length first exceeds
    ///   `original_max_position_embeddings`.
    pub fn inv_freq(&self, seq_len: usize) -> (Vec<f32>, f32) {
        let dim = self.dim();
        let n = self.n_freq();
        // torch.arange(0, dim, 2).float() / dim, in float32
        let exps: Vec<f32> = (0..n).map(|k| (2 * k) as f32 / dim as f32).collect();
        let default_inv =
            |base: f32| -> Vec<f32> { exps.iter().map(|&e| 1.0f32 / pow_f32(base, e)).collect() };
        let theta = self.rope_theta as f32;
        match &self.scaling {
            RopeScaling::Default => (default_inv(theta), 1.0),
            RopeScaling::Linear { factor } => {
                let f = *factor as f32;
                (default_inv(theta).into_iter().map(|v| v / f).collect(), 1.0)
            }
            RopeScaling::Dynamic {
                factor,
                max_position_embeddings,
            } => {
                if seq_len <= *max_position_embeddings {
                    // init path (seq_len = max_position_embeddings, Python floats): the base is
                    // theta * 1.0 ** x; computed in f64 like Python, then used as a float32.
                    let m = *max_position_embeddings as f64;
                    let d = dim as f64;
                    let base =
                        self.rope_theta * ((factor * m / m) - (factor - 1.0)).powf(d / (d - 2.0));
                    return (default_inv(base as f32), 1.0);
                }
                // forward path: `seq_len` is an int64 tensor, so the arithmetic is float32, except
                // the scalar exponent, which torch's pow(tensor, double) applies in double.
                let t = (*factor as f32) * (seq_len as f32);
                let t = t / (*max_position_embeddings as f32);
                let t = t - ((factor - 1.0) as f32);
                let ex = dim as f64 / (dim as f64 - 2.0);
                let t = ((t as f64).powf(ex)) as f32;
                let base = theta * t;
                (default_inv(base), 1.0)
            }
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => {
                let inv = default_inv(theta);
                let old_ctx = *original_max_position_embeddings as f64;
                let low_wl = (old_ctx / low_freq_factor) as f32;
                let high_wl = (old_ctx / high_freq_factor) as f32;
                let f = *factor as f32;
                let two_pi = (2.0 * std::f64::consts::PI) as f32;
                let lff = *low_freq_factor as f32;
                let band = (high_freq_factor - low_freq_factor) as f32;
                let old_ctx32 = old_ctx as f32;
                let out = inv
                    .iter()
                    .map(|&v| {
                        // `2 * math.pi / inv_freq` is `inv_freq.reciprocal() * (2 * pi)` in torch
                        let wavelen = (1.0f32 / v) * two_pi;
                        let llama = if wavelen > low_wl { v / f } else { v };
                        // `~(wavelen < high) * ~(wavelen > low)`; wavelen is never NaN
                        let medium = wavelen >= high_wl && wavelen <= low_wl;
                        if medium {
                            let smooth = ((1.0f32 / wavelen) * old_ctx32 - lff) / band;
                            (1.0f32 - smooth) * llama / f + smooth * llama
                        } else {
                            llama
                        }
                    })
                    .collect();
                (out, 1.0)
            }
            RopeScaling::LongRope {
                short_factor,
                long_factor,
                original_max_position_embeddings,
                attention_factor,
            } => {
                let ext = if seq_len > *original_max_position_embeddings {
                    long_factor
                } else {
                    short_factor
                };
                let out = exps
                    .iter()
                    .zip(ext)
                    .map(|(&e, &x)| 1.0f32 / ((x as f32) * pow_f32(theta, e)))
                    .collect();
                (out, *attention_factor as f32)
            }
            RopeScaling::Yarn {
                factor,
                original_max_position_embeddings,
                beta_fast,
                beta_slow,
                attention_factor,
                truncate,
            } => {
                let d = dim as f64;
                let base = self.rope_theta;
                let omax = *original_max_position_embeddings as f64;
                let correction_dim = |num_rot: f64| -> f64 {
                    (d * (omax / (num_rot * 2.0 * std::f64::consts::PI)).ln()) / (2.0 * base.ln())
                };
                let (mut low, mut high) = (correction_dim(*beta_fast), correction_dim(*beta_slow));
                if *truncate {
                    low = low.floor();
                    high = high.ceil();
                }
                let low = low.max(0.0);
                let mut high = high.min(d - 1.0);
                if low == high {
                    high += 0.001;
                }
                let f = *factor as f32;
                let low32 = low as f32;
                let span = (high - low) as f32;
                let out = exps
                    .iter()
                    .enumerate()
                    .map(|(j, &e)| {
                        let pos = pow_f32(theta, e);
                        let extrapolation = 1.0f32 / pos;
                        let interpolation = 1.0f32 / (f * pos);
                        let ramp = ((j as f32 - low32) / span).clamp(0.0, 1.0);
                        let extra_factor = 1.0f32 - ramp;
                        interpolation * (1.0f32 - extra_factor) + extrapolation * extra_factor
                    })
                    .collect();
                (out, *attention_factor as f32)
            }
        }
    }

    /// cos and sin tables for positions `0..seq_len`, shape `[seq_len, rotary_dim / 2]`, f32 on
    /// `device`, already multiplied by the attention scaling, using the frequencies of
    /// [`RopeSpec::inv_freq`]`(seq_len)`. transformers' tables are `cat(t, t)` along the last dim;
    /// only one half is stored here ([`apply_rotary`] uses it for both halves).
    pub fn cos_sin(
        &self,
        seq_len: usize,
        device: &Device,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let positions: Vec<usize> = (0..seq_len).collect();
        self.cos_sin_at(&positions, seq_len, device)
    }

    /// cos and sin rows for arbitrary `positions` (e.g. the new tokens of a decode step), shape
    /// `[positions.len(), rotary_dim / 2]`, with frequencies for a forward pass of total length
    /// `freq_seq_len` (only `dynamic`/`longrope` look at it; pass cache length + new tokens).
    pub fn cos_sin_at(
        &self,
        positions: &[usize],
        freq_seq_len: usize,
        device: &Device,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let (inv, scaling) = self.inv_freq(freq_seq_len);
        let (cos, sin) = cos_sin_tables(&inv, scaling, positions);
        let shape = (positions.len(), inv.len());
        Ok((
            Tensor::from_vec(cos, shape, device)?,
            Tensor::from_vec(sin, shape, device)?,
        ))
    }
}

/// Apply rotary embedding with transformers' `rotate_half` convention (halves, not interleaved
/// pairs): for the first `rotary_dim = 2 * cos.dim(-1)` dims of each head,
/// `out = x * cat(cos, cos) + rotate_half(x) * cat(sin, sin)`, i.e.
/// `[x1 * cos - x2 * sin, x2 * cos + x1 * sin]`; the remaining dims pass through unchanged
/// (partial rotary: Phi-3/Phi-4, ...).
///
/// * `x`: `[batch, heads, seq, head_dim]`;
/// * `cos`, `sin`: `[seq, rotary_dim / 2]` (the rows for the positions of `x`), or
///   `[batch, seq, rotary_dim / 2]` for per-sequence positions. They are cast to `x`'s dtype first,
///   as transformers does.
///
/// Built only from narrow/mul/sub/add/cat/broadcast, so it is differentiable with candle autograd
/// (unlike `candle_nn::rotary_emb::rope`), and elementwise identical to transformers in f32/bf16
/// (same operations, same rounding order).
///
/// On CPU f32 this runs the fused kernel [`super::kernels::rope::apply_rotary`] (bitwise the same
/// result, with its own backward pass); elsewhere [`apply_rotary_composed`].
pub fn apply_rotary(x: &Tensor, cos: &Tensor, sin: &Tensor) -> candle_core::Result<Tensor> {
    if super::kernels::enabled(x) && x.rank() == 4 {
        return super::kernels::rope::apply_rotary(x, cos, sin);
    }
    apply_rotary_composed(x, cos, sin)
}

/// [`apply_rotary`] built from differentiable candle primitives (any device and dtype).
pub fn apply_rotary_composed(
    x: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
) -> candle_core::Result<Tensor> {
    let (b, _heads, seq, head_dim) = x.dims4()?;
    if cos.dims() != sin.dims() {
        candle_core::bail!(
            "apply_rotary: cos {:?} and sin {:?} differ in shape",
            cos.shape(),
            sin.shape()
        );
    }
    let (cos, sin, half) = match *cos.dims() {
        [s, half] if s == seq => (cos.reshape((1, 1, s, half))?, sin.reshape((1, 1, s, half))?, half),
        [cb, s, half] if s == seq && (cb == b || cb == 1) => (cos.unsqueeze(1)?, sin.unsqueeze(1)?, half),
        _ => candle_core::bail!(
            "apply_rotary: cos/sin must be [seq, rotary_dim/2] or [batch, seq, rotary_dim/2] matching x {:?}, got {:?}",
            x.shape(),
            cos.shape()
        ),
    };
    let rot = 2 * half;
    if half == 0 || rot > head_dim {
        candle_core::bail!("apply_rotary: rotary dim {rot} does not fit head_dim {head_dim}");
    }
    let cos = cos.to_dtype(x.dtype())?;
    let sin = sin.to_dtype(x.dtype())?;
    let x1 = x.narrow(D::Minus1, 0, half)?;
    let x2 = x.narrow(D::Minus1, half, half)?;
    let o1 = (x1.broadcast_mul(&cos)? - x2.broadcast_mul(&sin)?)?;
    let o2 = (x2.broadcast_mul(&cos)? + x1.broadcast_mul(&sin)?)?;
    if rot == head_dim {
        Tensor::cat(&[&o1, &o2], D::Minus1)
    } else {
        let pass = x.narrow(D::Minus1, rot, head_dim - rot)?;
        Tensor::cat(&[&o1, &o2, &pass], D::Minus1)
    }
}

// ------------------------------------------------------------------------------------------------
// numerics

/// float32 `pow` of float32 operands, correctly rounded (computed in f64, rounded once).
fn pow_f32(base: f32, exp: f32) -> f32 {
    (base as f64).powf(exp as f64) as f32
}

/// transformers' `freqs = position_ids.float() * inv_freq; cos = freqs.cos() * attention_scaling`
/// (same for sin), row-major `[positions.len(), inv.len()]`.
fn cos_sin_tables(inv: &[f32], scaling: f32, positions: &[usize]) -> (Vec<f32>, Vec<f32>) {
    let mut cos = Vec::with_capacity(positions.len() * inv.len());
    let mut sin = Vec::with_capacity(positions.len() * inv.len());
    for &p in positions {
        let p = p as f32; // position_ids.float()
        for &f in inv {
            let angle = (p * f) as f64; // one float32 product, as in transformers
            cos.push((angle.cos() as f32) * scaling);
            sin.push((angle.sin() as f32) * scaling);
        }
    }
    (cos, sin)
}

fn get_mscale(scale: f64, mscale: f64) -> f64 {
    if scale <= 1.0 {
        1.0
    } else {
        0.1 * mscale * scale.ln() + 1.0
    }
}

// ------------------------------------------------------------------------------------------------
// config parsing

fn as_object(config: &Value) -> Result<&Map<String, Value>, RopeError> {
    config.as_object().ok_or_else(|| RopeError::InvalidField {
        field: "config".into(),
        reason: "not a JSON object".into(),
    })
}

fn non_empty_object(v: Option<&Value>) -> bool {
    matches!(v, Some(Value::Object(m)) if !m.is_empty())
}

/// Keys of `rope_parameters` that are layer types (its per-layer-type nesting), as transformers'
/// `nested_rope_parameter_keys`: keys listed in `layer_types` (or `_rope_type_labels`); when the
/// config lists none, object-valued keys ending in `_attention`.
fn nested_keys(cfg: &Map<String, Value>, rp: &Map<String, Value>) -> Vec<String> {
    let labels: Vec<&str> = ["_rope_type_labels", "layer_types"]
        .iter()
        .find_map(|k| cfg.get(*k).and_then(Value::as_array))
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    rp.iter()
        .filter(|(k, v)| {
            if labels.is_empty() {
                k.ends_with("_attention") && (v.is_object() || v.is_null())
            } else {
                labels.contains(&k.as_str())
            }
        })
        .map(|(k, _)| k.clone())
        .collect()
}

/// transformers: `rope_parameters = rope_scaling or rope_parameters or {}`.
fn flat_params(cfg: &Map<String, Value>) -> Map<String, Value> {
    match (cfg.get("rope_scaling"), cfg.get("rope_parameters")) {
        (Some(Value::Object(rs)), _) if !rs.is_empty() => rs.clone(),
        (_, Some(Value::Object(rp))) => rp.clone(),
        _ => Map::new(),
    }
}

fn get_f64(map: &Map<String, Value>, key: &str) -> Result<Option<f64>, RopeError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or_else(|| RopeError::InvalidField {
            field: key.into(),
            reason: format!("expected a number, got {v}"),
        }),
    }
}

fn get_usize(map: &Map<String, Value>, key: &str) -> Result<Option<usize>, RopeError> {
    match get_f64(map, key)? {
        None => Ok(None),
        Some(x) if x >= 1.0 && x.fract() == 0.0 && x < 1e15 => Ok(Some(x as usize)),
        Some(x) => Err(RopeError::InvalidField {
            field: key.into(),
            reason: format!("expected a positive integer, got {x}"),
        }),
    }
}

fn get_bool(map: &Map<String, Value>, key: &str) -> Result<Option<bool>, RopeError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(RopeError::InvalidField {
            field: key.into(),
            reason: format!("expected a boolean, got {v}"),
        }),
    }
}

fn get_f64_list(
    map: &Map<String, Value>,
    key: &str,
    rope_type: &str,
) -> Result<Vec<f64>, RopeError> {
    let invalid = |reason: String| RopeError::InvalidField {
        field: key.into(),
        reason,
    };
    match map.get(key) {
        None | Some(Value::Null) => Err(RopeError::MissingField {
            field: key.into(),
            rope_type: rope_type.into(),
        }),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_f64()
                    .ok_or_else(|| invalid(format!("expected a list of numbers, found {v}")))
            })
            .collect(),
        Some(v) => Err(invalid(format!("expected a list of numbers, got {v}"))),
    }
}

fn require<T>(v: Option<T>, field: &str, rope_type: &str) -> Result<T, RopeError> {
    v.ok_or_else(|| RopeError::MissingField {
        field: field.into(),
        rope_type: rope_type.into(),
    })
}

/// `cfg`: the whole config; `params`: the (flat) RoPE parameter dict; `nested`: whether `params`
/// is a per-layer-type entry (transformers does not apply the top-level
/// `original_max_position_embeddings` override there).
fn parse(
    cfg: &Map<String, Value>,
    params: &Map<String, Value>,
    head_dim: usize,
    nested: bool,
) -> Result<RopeSpec, RopeError> {
    let model_type = cfg.get("model_type").and_then(Value::as_str).unwrap_or("");
    let phi3_like = PHI3_LIKE_MODEL_TYPES.contains(&model_type);

    let raw_type = match (params.get("rope_type"), params.get("type")) {
        (Some(Value::String(s)), _) => s.as_str(),
        (None | Some(Value::Null), Some(Value::String(s))) => s.as_str(),
        (None | Some(Value::Null), None | Some(Value::Null)) => "default",
        (Some(v), _) | (_, Some(v)) => {
            return Err(RopeError::InvalidField {
                field: "rope_type".into(),
                reason: format!("expected a string, got {v}"),
            })
        }
    };
    let rope_type = match raw_type {
        "su" => "longrope",
        "yarn" if phi3_like => "longrope",
        t => t,
    };
    if !SUPPORTED_ROPE_TYPES.contains(&rope_type) {
        return Err(RopeError::UnknownRopeType {
            rope_type: raw_type.to_string(),
        });
    }

    let rope_theta = match get_f64(params, "rope_theta")? {
        Some(t) => t,
        None => get_f64(cfg, "rope_theta")?.unwrap_or(DEFAULT_ROPE_THETA),
    };
    if !(rope_theta > 1.0 && rope_theta.is_finite()) {
        return Err(RopeError::InvalidField {
            field: "rope_theta".into(),
            reason: format!("must be > 1, got {rope_theta}"),
        });
    }
    let partial_rotary_factor = match get_f64(params, "partial_rotary_factor")? {
        Some(p) => p,
        None => get_f64(cfg, "partial_rotary_factor")?.unwrap_or(1.0),
    };
    if !(partial_rotary_factor > 0.0 && partial_rotary_factor <= 1.0) {
        return Err(RopeError::InvalidField {
            field: "partial_rotary_factor".into(),
            reason: format!("must be in (0, 1], got {partial_rotary_factor}"),
        });
    }
    let max_pos = get_usize(cfg, "max_position_embeddings")?;

    let mut spec = RopeSpec {
        rope_theta,
        head_dim,
        partial_rotary_factor,
        scaling: RopeScaling::Default,
    };
    let dim = spec.dim();
    if dim < 2 || spec.rotary_dim() > head_dim {
        return Err(RopeError::InvalidField {
            field: "partial_rotary_factor".into(),
            reason: format!(
                "head_dim {head_dim} x partial_rotary_factor {partial_rotary_factor} gives {dim} rotary dims, \
                 which cannot be rotated"
            ),
        });
    }
    let n_freq = spec.n_freq();

    let original_max = || -> Result<usize, RopeError> {
        if nested {
            return require(
                get_usize(params, "original_max_position_embeddings")?.or(max_pos),
                "original_max_position_embeddings",
                rope_type,
            );
        }
        if phi3_like {
            return Ok(get_usize(cfg, "original_max_position_embeddings")?
                .unwrap_or(PHI3_DEFAULT_ORIGINAL_MAX));
        }
        let v = match get_usize(cfg, "original_max_position_embeddings")? {
            Some(v) => Some(v),
            None => get_usize(params, "original_max_position_embeddings")?.or(max_pos),
        };
        require(v, "original_max_position_embeddings", rope_type)
    };
    let factor = || -> Result<Option<f64>, RopeError> {
        let f = get_f64(params, "factor")?;
        if let Some(f) = f {
            if !(f > 0.0 && f.is_finite()) {
                return Err(RopeError::InvalidField {
                    field: "factor".into(),
                    reason: format!("must be > 0, got {f}"),
                });
            }
        }
        Ok(f)
    };
    let even_dim = || -> Result<(), RopeError> {
        if dim % 2 == 1 {
            return Err(RopeError::InvalidField {
                field: "partial_rotary_factor".into(),
                reason: format!("rope_type `{rope_type}` needs an even rotary dim, got {dim}"),
            });
        }
        Ok(())
    };

    spec.scaling = match rope_type {
        "default" => RopeScaling::Default,
        "linear" => RopeScaling::Linear {
            factor: require(factor()?, "factor", rope_type)?,
        },
        "dynamic" => RopeScaling::Dynamic {
            factor: require(factor()?, "factor", rope_type)?,
            max_position_embeddings: require(max_pos, "max_position_embeddings", rope_type)?,
        },
        "llama3" => {
            let low = require(
                get_f64(params, "low_freq_factor")?,
                "low_freq_factor",
                rope_type,
            )?;
            let high = require(
                get_f64(params, "high_freq_factor")?,
                "high_freq_factor",
                rope_type,
            )?;
            if high <= low {
                return Err(RopeError::InvalidField {
                    field: "high_freq_factor".into(),
                    reason: format!("must exceed low_freq_factor ({high} <= {low})"),
                });
            }
            RopeScaling::Llama3 {
                factor: require(factor()?, "factor", rope_type)?,
                low_freq_factor: low,
                high_freq_factor: high,
                original_max_position_embeddings: original_max()?,
            }
        }
        "longrope" => {
            even_dim()?;
            let short_factor = get_f64_list(params, "short_factor", rope_type)?;
            let long_factor = get_f64_list(params, "long_factor", rope_type)?;
            for (name, list) in [
                ("short_factor", &short_factor),
                ("long_factor", &long_factor),
            ] {
                if list.len() != n_freq {
                    return Err(RopeError::InvalidField {
                        field: name.into(),
                        reason: format!(
                            "has {} entries, expected rotary_dim / 2 = {n_freq}",
                            list.len()
                        ),
                    });
                }
            }
            let omax = original_max()?;
            let attention_factor = match get_f64(params, "attention_factor")? {
                Some(a) => a,
                None => {
                    let f = match factor()? {
                        Some(f) => f,
                        None => {
                            require(max_pos, "max_position_embeddings", rope_type)? as f64
                                / omax as f64
                        }
                    };
                    if f <= 1.0 {
                        1.0
                    } else {
                        (1.0 + f.ln() / (omax as f64).ln()).sqrt()
                    }
                }
            };
            RopeScaling::LongRope {
                short_factor,
                long_factor,
                original_max_position_embeddings: omax,
                attention_factor,
            }
        }
        "yarn" => {
            even_dim()?;
            let omax = original_max()?;
            let factor = match factor()? {
                Some(f) => f,
                None => {
                    require(max_pos, "max_position_embeddings", rope_type)? as f64 / omax as f64
                }
            };
            // Python truthiness: `x or default`, `if mscale and mscale_all_dim`
            let truthy = |v: Option<f64>| v.filter(|x| *x != 0.0);
            let attention_factor = match get_f64(params, "attention_factor")? {
                Some(a) => a,
                None => match (
                    truthy(get_f64(params, "mscale")?),
                    truthy(get_f64(params, "mscale_all_dim")?),
                ) {
                    (Some(m), Some(mad)) => get_mscale(factor, m) / get_mscale(factor, mad),
                    _ => get_mscale(factor, 1.0),
                },
            };
            RopeScaling::Yarn {
                factor,
                original_max_position_embeddings: omax,
                beta_fast: truthy(get_f64(params, "beta_fast")?).unwrap_or(32.0),
                beta_slow: truthy(get_f64(params, "beta_slow")?).unwrap_or(1.0),
                attention_factor,
                truncate: get_bool(params, "truncate")?.unwrap_or(true),
            }
        }
        _ => unreachable!("checked against SUPPORTED_ROPE_TYPES"),
    };
    Ok(spec)
}

// ------------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Var};
    use serde_json::json;

    const REFERENCE: &str = include_str!("../../tests/fixtures/expected/rope_reference.json");

    fn rel_err(a: f64, b: f64) -> f64 {
        (a - b).abs() / b.abs().max(1e-30)
    }

    /// Every case of `tests/fixtures/expected/rope_reference.json` (written by
    /// `tests/fixtures/rope_reference.py` from transformers' own rotary-embedding modules).
    ///
    /// * `inv_freq`: relative error < 1e-6, and at most 2 float32 ulps. Our `pow` is correctly
    ///   rounded; torch's vectorised CPU `pow` (SLEEF) is off by one ulp for ~1-2% of the
    ///   frequencies, depending on the CPU (tail elements use libm and do agree); the roundings
    ///   after the `pow` (a product and a reciprocal for longrope/yarn) can make that 2 ulps.
    /// * cos/sin from the reference's own `inv_freq`: abs error < 1e-6 at every stored position
    ///   (this isolates the position x frequency product, cos/sin and attention scaling).
    /// * cos/sin from our `inv_freq` ([`RopeSpec::cos_sin`]): abs error < 1e-6 for every frequency
    ///   whose `inv_freq` is bit-identical to transformers'; for the others the exact
    ///   consequence of those ulps, |angle| * ulps * 2^-23, is allowed on top.
    #[test]
    fn matches_transformers_reference() {
        let reference: Value = serde_json::from_str(REFERENCE).unwrap();
        let cases = reference["cases"].as_array().unwrap();
        assert!(cases.len() >= 12);
        let mut seen = std::collections::BTreeSet::new();
        let floats = |v: &Value| -> Vec<f64> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        };
        for case in cases {
            let name = case["name"].as_str().unwrap();
            let head_dim = case["head_dim"].as_u64().unwrap() as usize;
            let seq_len = case["seq_len"].as_u64().unwrap() as usize;
            let spec = RopeSpec::from_config(&case["config"], head_dim)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                spec.rope_type(),
                case["rope_type"].as_str().unwrap(),
                "{name}"
            );
            assert_eq!(
                spec.rotary_dim(),
                case["rotary_dim"].as_u64().unwrap() as usize,
                "{name}"
            );
            seen.insert(spec.rope_type());

            let (inv, scaling) = spec.inv_freq(seq_len);
            let want_inv: Vec<f32> = floats(&case["inv_freq"])
                .iter()
                .map(|&v| v as f32)
                .collect();
            assert_eq!(inv.len(), want_inv.len(), "{name}");
            let mut off_by_ulp = vec![0i64; inv.len()];
            for (k, (&got, &want)) in inv.iter().zip(&want_inv).enumerate() {
                assert!(
                    rel_err(got as f64, want as f64) < 1e-6,
                    "{name}: inv_freq[{k}] {got} vs {want}"
                );
                let ulps = (got.to_bits() as i64 - want.to_bits() as i64).abs();
                assert!(
                    ulps <= 2,
                    "{name}: inv_freq[{k}] {got} vs {want}: {ulps} ulps"
                );
                off_by_ulp[k] = ulps;
            }
            let want_scaling = case["attention_scaling"].as_f64().unwrap();
            assert!(
                rel_err(scaling as f64, want_scaling) < 1e-6,
                "{name}: attention_scaling {scaling} vs {want_scaling}"
            );

            let positions: Vec<usize> = case["positions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect();
            let want_cos: Vec<Vec<f64>> =
                case["cos"].as_array().unwrap().iter().map(floats).collect();
            let want_sin: Vec<Vec<f64>> =
                case["sin"].as_array().unwrap().iter().map(floats).collect();
            let half = inv.len();

            // (a) the cos/sin path alone, from transformers' inv_freq: strict
            let (ref_cos, ref_sin) = cos_sin_tables(&want_inv, scaling, &positions);
            let mut max_err_a = 0f64;
            for (row, &p) in positions.iter().enumerate() {
                for k in 0..half {
                    for (got, want, key) in [
                        (ref_cos[row * half + k], want_cos[row][k], "cos"),
                        (ref_sin[row * half + k], want_sin[row][k], "sin"),
                    ] {
                        let err = (got as f64 - want).abs();
                        max_err_a = max_err_a.max(err);
                        assert!(
                            err < 1e-6,
                            "{name}: {key}[pos {p}][{k}] from reference inv_freq: {got} vs {want}"
                        );
                    }
                }
            }

            // (b) the full pipeline, through the public API
            let (cos, sin) = spec.cos_sin(seq_len, &Device::Cpu).unwrap();
            assert_eq!(cos.dims(), &[seq_len, half], "{name}");
            let (cos_at, sin_at) = spec.cos_sin_at(&positions, seq_len, &Device::Cpu).unwrap();
            let mut max_err_b = 0f64;
            for (row, &p) in positions.iter().enumerate() {
                for (table, at, want, key) in [
                    (&cos, &cos_at, &want_cos, "cos"),
                    (&sin, &sin_at, &want_sin, "sin"),
                ] {
                    let got: Vec<f32> = table.get(p).unwrap().to_vec1().unwrap();
                    let got_at: Vec<f32> = at.get(row).unwrap().to_vec1().unwrap();
                    assert_eq!(
                        got, got_at,
                        "{name}: cos_sin_at row {row} differs from the table"
                    );
                    for k in 0..half {
                        let err = (got[k] as f64 - want[row][k]).abs();
                        let angle = p as f64 * inv[k] as f64;
                        let tol =
                            1e-6 + angle * scaling as f64 * off_by_ulp[k] as f64 * 2f64.powi(-23);
                        assert!(
                            err < tol,
                            "{name}: {key}[pos {p}][{k}] {} vs {}",
                            got[k],
                            want[row][k]
                        );
                        if off_by_ulp[k] == 0 {
                            max_err_b = max_err_b.max(err);
                        }
                    }
                }
            }
            eprintln!(
                "{name:30} {:8} inv_freq bit-exact {:3}/{:3}; max |cos/sin err|: from ref inv_freq {max_err_a:.1e}, \
                 ours (bit-exact freqs) {max_err_b:.1e}",
                spec.rope_type(),
                off_by_ulp.iter().filter(|x| **x == 0).count(),
                inv.len()
            );
        }
        for t in SUPPORTED_ROPE_TYPES {
            assert!(seen.contains(t), "no reference case for rope_type {t}");
        }
    }

    #[test]
    fn seq_len_dependence() {
        // dynamic: plain frequencies up to max_position_embeddings, scaled beyond
        let cfg = json!({"max_position_embeddings": 2048, "rope_theta": 10000.0,
                         "rope_scaling": {"type": "dynamic", "factor": 2.0}});
        let dynamic = RopeSpec::from_config(&cfg, 64).unwrap();
        let plain = RopeSpec::from_config(&json!({"rope_theta": 10000.0}), 64).unwrap();
        assert_eq!(dynamic.inv_freq(1).0, plain.inv_freq(1).0);
        assert_eq!(dynamic.inv_freq(2048).0, plain.inv_freq(2048).0);
        let (beyond, _) = dynamic.inv_freq(2049);
        assert_eq!(beyond[0], 1.0);
        assert!(beyond[1..]
            .iter()
            .zip(&plain.inv_freq(1).0[1..])
            .all(|(a, b)| a < b));

        // longrope: short factors up to original_max_position_embeddings, long beyond
        let cfg = json!({"model_type": "phi3", "max_position_embeddings": 16384, "original_max_position_embeddings": 4096,
                         "rope_scaling": {"type": "longrope", "short_factor": [1.0, 1.0], "long_factor": [2.0, 4.0]}});
        let lr = RopeSpec::from_config(&cfg, 4).unwrap();
        let (short, a1) = lr.inv_freq(4096);
        let (long, a2) = lr.inv_freq(4097);
        assert_eq!(short, vec![1.0, 0.01]);
        assert_eq!(long, vec![0.5, 0.0025]);
        assert_eq!(a1, a2);
        assert!((a1 as f64 - (1.0 + 4f64.ln() / 4096f64.ln()).sqrt()).abs() < 1e-7);
    }

    #[test]
    fn config_styles_and_resolution() {
        // classic and transformers-5 styles give the same spec
        let classic = json!({"rope_theta": 500000.0, "max_position_embeddings": 131072,
            "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                             "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}});
        let t5 = json!({"max_position_embeddings": 131072,
            "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                                "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}});
        let a = RopeSpec::from_config(&classic, 128).unwrap();
        assert_eq!(a, RopeSpec::from_config(&t5, 128).unwrap());
        assert_eq!(a.rope_type(), "llama3");

        // legacy `type`; `rope_type` wins over it; non-empty rope_scaling wins over rope_parameters
        let s = RopeSpec::from_config(
            &json!({"rope_scaling": {"type": "linear", "factor": 2}}),
            64,
        )
        .unwrap();
        assert_eq!(s.scaling, RopeScaling::Linear { factor: 2.0 });
        let s = RopeSpec::from_config(
            &json!({"rope_scaling": {"type": "dynamic", "rope_type": "linear", "factor": 2}}),
            64,
        )
        .unwrap();
        assert_eq!(s.rope_type(), "linear");
        let s = RopeSpec::from_config(
            &json!({"rope_scaling": {"type": "linear", "factor": 3.0},
                    "rope_parameters": {"rope_type": "default", "rope_theta": 5.0}}),
            64,
        )
        .unwrap();
        assert_eq!(
            (s.rope_type(), s.rope_theta),
            ("linear", DEFAULT_ROPE_THETA)
        );
        let s = RopeSpec::from_config(
            &json!({"rope_scaling": {}, "rope_parameters": {"rope_theta": 5.0}}),
            64,
        )
        .unwrap();
        assert_eq!((s.rope_type(), s.rope_theta), ("default", 5.0));
        // no RoPE fields at all: default RoPE with base 10000
        let s = RopeSpec::from_config(&json!({}), 64).unwrap();
        assert_eq!(
            (s.rope_type(), s.rope_theta, s.rotary_dim()),
            ("default", 10000.0, 64)
        );

        // rope_theta / partial_rotary_factor: dict wins over top level
        let s = RopeSpec::from_config(
            &json!({"rope_theta": 7.0, "partial_rotary_factor": 0.5,
                    "rope_parameters": {"rope_type": "default", "rope_theta": 99.0, "partial_rotary_factor": 0.25}}),
            128,
        )
        .unwrap();
        assert_eq!((s.rope_theta, s.rotary_dim()), (99.0, 32));
        let s = RopeSpec::from_config(&json!({"partial_rotary_factor": 0.4}), 80).unwrap();
        assert_eq!(s.rotary_dim(), 32);
        // int(96 * 0.4) = 38 (truncation of 38.400000000000006)
        let s = RopeSpec::from_config(&json!({"partial_rotary_factor": 0.4}), 96).unwrap();
        assert_eq!(s.rotary_dim(), 38);
        // odd rotary dims are rounded up as in transformers (arange(0, 33, 2) has 17 entries)
        let s = RopeSpec::from_config(&json!({"partial_rotary_factor": 0.5}), 66).unwrap();
        assert_eq!((s.rotary_dim(), s.inv_freq(1).0.len()), (34, 17));

        // original_max_position_embeddings: top level > dict > max_position_embeddings
        let omax = |cfg: Value| match RopeSpec::from_config(&cfg, 64).unwrap().scaling {
            RopeScaling::Yarn {
                original_max_position_embeddings,
                ..
            } => original_max_position_embeddings,
            RopeScaling::LongRope {
                original_max_position_embeddings,
                ..
            } => original_max_position_embeddings,
            s => panic!("{s:?}"),
        };
        let yarn = json!({"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 1024});
        assert_eq!(
            omax(
                json!({"max_position_embeddings": 8192, "original_max_position_embeddings": 2048, "rope_scaling": yarn})
            ),
            2048
        );
        assert_eq!(
            omax(json!({"max_position_embeddings": 8192, "rope_scaling": yarn})),
            1024
        );
        assert_eq!(
            omax(
                json!({"max_position_embeddings": 8192, "rope_scaling": {"type": "yarn", "factor": 4.0}})
            ),
            8192
        );
        // Phi-3: the top-level field always wins, default 4096
        let ones = vec![1.0; 32];
        let lr = json!({"type": "longrope", "short_factor": ones, "long_factor": ones,
                        "original_max_position_embeddings": 1000});
        assert_eq!(
            omax(
                json!({"model_type": "phi3", "max_position_embeddings": 8192, "rope_scaling": lr})
            ),
            4096
        );
        assert_eq!(
            omax(
                json!({"model_type": "phi3", "max_position_embeddings": 8192, "original_max_position_embeddings": 2048,
                        "rope_scaling": lr})
            ),
            2048
        );

        // aliases: su -> longrope everywhere, yarn -> longrope for Phi-3 only
        let mut su = lr.clone();
        su["type"] = json!("su");
        let s = RopeSpec::from_config(
            &json!({"max_position_embeddings": 8192, "rope_scaling": su}),
            64,
        )
        .unwrap();
        assert_eq!(s.rope_type(), "longrope");
        let mut phi_yarn = lr.clone();
        phi_yarn["type"] = json!("yarn");
        let s = RopeSpec::from_config(&json!({"model_type": "phi3", "max_position_embeddings": 8192, "rope_scaling": phi_yarn}), 64)
            .unwrap();
        assert_eq!(s.rope_type(), "longrope");

        // yarn: missing factor falls back to max/original; attention factor rules
        let s = RopeSpec::from_config(
            &json!({"max_position_embeddings": 163840,
                    "rope_scaling": {"type": "yarn", "original_max_position_embeddings": 4096, "mscale": 1.0, "mscale_all_dim": 1.0}}),
            64,
        )
        .unwrap();
        match s.scaling {
            RopeScaling::Yarn {
                factor,
                attention_factor,
                beta_fast,
                beta_slow,
                truncate,
                ..
            } => {
                assert_eq!(
                    (factor, attention_factor, beta_fast, beta_slow, truncate),
                    (40.0, 1.0, 32.0, 1.0, true)
                )
            }
            s => panic!("{s:?}"),
        }
        let s = RopeSpec::from_config(&json!({"rope_scaling": {"type": "yarn", "factor": 4.0, "attention_factor": 1.5,
                                                               "original_max_position_embeddings": 100}}), 64)
            .unwrap();
        assert_eq!(s.inv_freq(1).1, 1.5);
    }

    #[test]
    fn layer_types() {
        // transformers-5 nested style
        let cfg = json!({"rope_theta": 123.0, "max_position_embeddings": 131072,
            "layer_types": ["sliding_attention", "full_attention"],
            "rope_parameters": {
                "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0}}});
        let err = RopeSpec::from_config(&cfg, 256).unwrap_err().to_string();
        assert!(err.contains("from_config_for_layer_type"), "{err}");
        let local = RopeSpec::from_config_for_layer_type(&cfg, 256, "sliding_attention").unwrap();
        assert_eq!((local.rope_type(), local.rope_theta), ("default", 10000.0));
        let global = RopeSpec::from_config_for_layer_type(&cfg, 256, "full_attention").unwrap();
        assert_eq!(
            (global.scaling.clone(), global.rope_theta),
            (RopeScaling::Linear { factor: 8.0 }, 1e6)
        );
        // classic Gemma-3 style
        let cfg = json!({"model_type": "gemma3_text", "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0,
                         "rope_scaling": {"rope_type": "linear", "factor": 8.0}});
        let local = RopeSpec::from_config_for_layer_type(&cfg, 256, "sliding_attention").unwrap();
        assert_eq!((local.rope_type(), local.rope_theta), ("default", 10000.0));
        assert_eq!(
            global,
            RopeSpec::from_config_for_layer_type(&cfg, 256, "full_attention").unwrap()
        );
        // flat configs: every layer type gets the same spec
        let flat = json!({"rope_theta": 5e5});
        assert_eq!(
            RopeSpec::from_config_for_layer_type(&flat, 64, "full_attention").unwrap(),
            RopeSpec::from_config(&flat, 64).unwrap()
        );
    }

    #[test]
    fn errors_name_the_problem() {
        let err =
            RopeSpec::from_config(&json!({"rope_scaling": {"type": "mrope2"}}), 64).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, RopeError::UnknownRopeType { .. }));
        for t in SUPPORTED_ROPE_TYPES {
            assert!(msg.contains(t), "{msg}");
        }
        assert!(msg.contains("mrope2"));
        let err =
            RopeSpec::from_config(&json!({"rope_scaling": {"type": "linear"}}), 64).unwrap_err();
        assert!(
            matches!(&err, RopeError::MissingField { field, .. } if field == "factor"),
            "{err}"
        );
        let err = RopeSpec::from_config(
            &json!({"rope_scaling": {"type": "dynamic", "factor": 2.0}}),
            64,
        )
        .unwrap_err();
        assert!(
            matches!(&err, RopeError::MissingField { field, .. } if field == "max_position_embeddings"),
            "{err}"
        );
        let err = RopeSpec::from_config(
            &json!({"rope_scaling": {"rope_type": "llama3", "factor": 8.0, "high_freq_factor": 4.0}}),
            64,
        )
        .unwrap_err();
        assert!(err.to_string().contains("low_freq_factor"), "{err}");
        let err = RopeSpec::from_config(
            &json!({"max_position_embeddings": 8192, "rope_scaling": {"type": "longrope", "short_factor": [1.0], "long_factor": [1.0]}}),
            64,
        )
        .unwrap_err();
        assert!(
            matches!(&err, RopeError::InvalidField { field, .. } if field == "short_factor"),
            "{err}"
        );
        let err = RopeSpec::from_config(
            &json!({"rope_scaling": {"type": "linear", "factor": "2"}}),
            64,
        )
        .unwrap_err();
        assert!(
            matches!(&err, RopeError::InvalidField { field, .. } if field == "factor"),
            "{err}"
        );
        let err = RopeSpec::from_config(&json!({"partial_rotary_factor": 1.5}), 64).unwrap_err();
        assert!(err.to_string().contains("partial_rotary_factor"), "{err}");
        assert!(RopeSpec::from_config(&json!([1, 2]), 64).is_err());
    }

    /// Deterministic pseudo-random values in [-1, 1).
    fn lcg(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
            })
            .collect()
    }

    /// Gradient of `loss(y) = sum(w * y^2 + v * y)`, `y = apply_rotary(x, cos, sin)`, w.r.t. x,
    /// against central finite differences, in f64.
    fn check_gradient(x_shape: (usize, usize, usize, usize), cos: &Tensor, sin: &Tensor) {
        let dev = Device::Cpu;
        let n = x_shape.0 * x_shape.1 * x_shape.2 * x_shape.3;
        let x0 = lcg(n, 1);
        let w = Tensor::from_vec(lcg(n, 2), x_shape, &dev).unwrap();
        let v = Tensor::from_vec(lcg(n, 3), x_shape, &dev).unwrap();
        let loss = |x: &Tensor| -> Tensor {
            let y = apply_rotary(x, cos, sin).unwrap();
            ((&w * y.sqr().unwrap()).unwrap() + (&v * &y).unwrap())
                .unwrap()
                .sum_all()
                .unwrap()
        };
        let x = Var::from_tensor(&Tensor::from_vec(x0.clone(), x_shape, &dev).unwrap()).unwrap();
        let grads = loss(x.as_tensor()).backward().unwrap();
        let analytic: Vec<f64> = grads
            .get(x.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let eps = 1e-5;
        let mut worst = 0f64;
        for i in 0..n {
            let at = |delta: f64| -> f64 {
                let mut xs = x0.clone();
                xs[i] += delta;
                loss(&Tensor::from_vec(xs, x_shape, &dev).unwrap())
                    .to_scalar::<f64>()
                    .unwrap()
            };
            let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
            let err = (analytic[i] - numeric).abs() / analytic[i].abs().max(1e-3);
            worst = worst.max(err);
        }
        assert!(worst < 1e-6, "relative gradient error {worst:e}");
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let dev = Device::Cpu;
        let spec = RopeSpec::from_config(&json!({"rope_theta": 10000.0}), 8).unwrap();
        let (cos, sin) = spec.cos_sin(5, &dev).unwrap();
        let (cos, sin) = (
            cos.to_dtype(DType::F64).unwrap(),
            sin.to_dtype(DType::F64).unwrap(),
        );
        check_gradient((2, 3, 5, 8), &cos, &sin);

        // partial rotary: 4 of 10 dims rotate, with attention scaling and cos/sin cast inside
        let partial = RopeSpec::from_config(
            &json!({"max_position_embeddings": 64, "original_max_position_embeddings": 16, "partial_rotary_factor": 0.4,
                    "rope_scaling": {"type": "longrope", "short_factor": [1.0, 1.5], "long_factor": [2.0, 3.0]}}),
            10,
        )
        .unwrap();
        assert_eq!(partial.rotary_dim(), 4);
        let (cos, sin) = partial.cos_sin(5, &dev).unwrap();
        check_gradient((2, 3, 5, 10), &cos, &sin);

        // per-sequence positions: cos/sin [batch, seq, rotary_dim/2]
        let (c, s) = partial
            .cos_sin_at(&[3, 4, 5, 6, 7, 0, 1, 2, 3, 4], 8, &dev)
            .unwrap();
        let (c, s) = (c.reshape((2, 5, 2)).unwrap(), s.reshape((2, 5, 2)).unwrap());
        check_gradient((2, 3, 5, 10), &c, &s);
    }

    #[test]
    fn partial_rotary_passes_tail_through() {
        let dev = Device::Cpu;
        let spec = RopeSpec::from_config(&json!({"partial_rotary_factor": 0.5}), 8).unwrap();
        let (cos, sin) = spec.cos_sin(3, &dev).unwrap();
        let x = Tensor::from_vec(
            lcg(2 * 2 * 3 * 8, 9)
                .iter()
                .map(|&v| v as f32)
                .collect::<Vec<_>>(),
            (2, 2, 3, 8),
            &dev,
        )
        .unwrap();
        let y = apply_rotary(&x, &cos, &sin).unwrap();
        let tail_x: Vec<f32> = x
            .narrow(3, 4, 4)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let tail_y: Vec<f32> = y
            .narrow(3, 4, 4)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(tail_x, tail_y);
        // position 0 is the identity
        let p0: Vec<f32> = y
            .narrow(2, 0, 1)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let x0: Vec<f32> = x
            .narrow(2, 0, 1)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(p0, x0);
        // the rotated part equals the full-rotary result on the first 4 dims
        let (c4, s4) = RopeSpec::from_config(&json!({}), 4)
            .unwrap()
            .cos_sin(3, &dev)
            .unwrap();
        let head: Vec<f32> = y
            .narrow(3, 0, 4)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let want: Vec<f32> = apply_rotary(&x.narrow(3, 0, 4).unwrap(), &c4, &s4)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(head, want);
        // shape errors
        assert!(apply_rotary(
            &x,
            &cos.narrow(0, 0, 2).unwrap(),
            &sin.narrow(0, 0, 2).unwrap()
        )
        .is_err());
        let (c_big, s_big) = RopeSpec::from_config(&json!({}), 10)
            .unwrap()
            .cos_sin(3, &dev)
            .unwrap();
        assert!(apply_rotary(&x, &c_big, &s_big).is_err());
    }

    #[test]
    fn agrees_with_candle_fused_rope() {
        let dev = Device::Cpu;
        let spec = RopeSpec::from_config(
            &json!({"rope_theta": 500000.0, "max_position_embeddings": 131072,
                    "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                     "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}),
            64,
        )
        .unwrap();
        let (b, h, s, d) = (2, 4, 7, 64);
        let (cos, sin) = spec
            .cos_sin_at(&(1000..1000 + s).collect::<Vec<_>>(), 2000, &dev)
            .unwrap();
        let x = Tensor::from_vec(
            lcg(b * h * s * d, 5)
                .iter()
                .map(|&v| v as f32)
                .collect::<Vec<_>>(),
            (b, h, s, d),
            &dev,
        )
        .unwrap();
        let ours = apply_rotary(&x, &cos, &sin).unwrap();
        let fused = candle_nn::rotary_emb::rope(&x, &cos, &sin).unwrap();
        let diff = (ours - fused)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff <= 1e-6, "max |ours - candle_nn rope| = {diff}");

        // 3-D (per-batch) cos/sin too
        let (c, s3) = spec
            .cos_sin_at(&(0..2 * s).collect::<Vec<_>>(), 2 * s, &dev)
            .unwrap();
        let (c, s3) = (
            c.reshape((2, s, d / 2)).unwrap(),
            s3.reshape((2, s, d / 2)).unwrap(),
        );
        let ours = apply_rotary(&x, &c, &s3).unwrap();
        let fused = candle_nn::rotary_emb::rope(&x, &c, &s3).unwrap();
        let diff = (ours - fused)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff <= 1e-6, "3-D: max |ours - candle_nn rope| = {diff}");
    }

    #[test]
    fn bf16_casts_cos_sin_like_transformers() {
        let dev = Device::Cpu;
        let spec = RopeSpec::from_config(&json!({}), 16).unwrap();
        let (cos, sin) = spec.cos_sin(4, &dev).unwrap();
        let x = Tensor::from_vec(
            lcg(64, 4).iter().map(|&v| v as f32).collect::<Vec<_>>(),
            (1, 1, 4, 16),
            &dev,
        )
        .unwrap();
        let y = apply_rotary(&x.to_dtype(DType::BF16).unwrap(), &cos, &sin).unwrap();
        assert_eq!(y.dtype(), DType::BF16);
        let y32 = apply_rotary(&x, &cos, &sin).unwrap();
        let diff = (y.to_dtype(DType::F32).unwrap() - y32)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 2e-2, "{diff}");
    }
}

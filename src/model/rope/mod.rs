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

mod config;
#[cfg(test)]
mod tests;

use config::{as_object, flat_params, get_f64, nested_keys, non_empty_object, parse};

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
/// result, with its own backward pass), on CUDA too where `SFT_EVAL_CUDA_FUSED=1`
/// ([`super::kernels::cuda_enabled`]); elsewhere [`apply_rotary_composed`].
pub fn apply_rotary(x: &Tensor, cos: &Tensor, sin: &Tensor) -> candle_core::Result<Tensor> {
    if x.rank() == 4 && (super::kernels::enabled(x) || super::kernels::cuda_enabled(x)) {
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

//! Reading the RoPE settings out of a `config.json`: the flat and nested `rope_parameters` /
//! `rope_scaling` styles transformers accepts, and one [`RopeSpec`] per `rope_type`.

use serde_json::{Map, Value};

use super::*;

pub(super) fn as_object(config: &Value) -> Result<&Map<String, Value>, RopeError> {
    config.as_object().ok_or_else(|| RopeError::InvalidField {
        field: "config".into(),
        reason: "not a JSON object".into(),
    })
}

pub(super) fn non_empty_object(v: Option<&Value>) -> bool {
    matches!(v, Some(Value::Object(m)) if !m.is_empty())
}

/// Keys of `rope_parameters` that are layer types (its per-layer-type nesting), as transformers'
/// `nested_rope_parameter_keys`: keys listed in `layer_types` (or `_rope_type_labels`); when the
/// config lists none, object-valued keys ending in `_attention`.
pub(super) fn nested_keys(cfg: &Map<String, Value>, rp: &Map<String, Value>) -> Vec<String> {
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
pub(super) fn flat_params(cfg: &Map<String, Value>) -> Map<String, Value> {
    match (cfg.get("rope_scaling"), cfg.get("rope_parameters")) {
        (Some(Value::Object(rs)), _) if !rs.is_empty() => rs.clone(),
        (_, Some(Value::Object(rp))) => rp.clone(),
        _ => Map::new(),
    }
}

pub(super) fn get_f64(map: &Map<String, Value>, key: &str) -> Result<Option<f64>, RopeError> {
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
pub(super) fn parse(
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

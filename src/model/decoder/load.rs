//! Building a [`Decoder`] from a checkpoint's weights: the Llama-like layout (every family but
//! GPT-2) and GPT-2's (Conv1D projections, learned positions), each tensor checked for name and
//! shape as it is read.

use super::*;

fn norm(
    p: &mut Params,
    cfg: &DecoderConfig,
    name: &str,
    dim: usize,
) -> std::result::Result<Norm, ModelError> {
    let weight = p.get(&format!("{name}.weight"), &[dim])?;
    let bias = if cfg.norm == NormKind::Layer {
        p.get_opt(&format!("{name}.bias"), &[dim])?
    } else {
        None
    };
    Ok(Norm {
        weight,
        bias,
        kind: cfg.norm,
        eps: cfg.norm_eps,
    })
}

fn linear(
    p: &mut Params,
    name: &str,
    inp: usize,
    out: usize,
    bias: bool,
) -> std::result::Result<Linear, ModelError> {
    let weight = p.get(&format!("{name}.weight"), &[out, inp])?;
    let bias = if bias {
        Some(p.get(&format!("{name}.bias"), &[out])?)
    } else {
        None
    };
    Ok(Linear {
        weight,
        bias,
        in_out: false,
        lora: None,
    })
}

fn conv1d(
    p: &mut Params,
    name: &str,
    inp: usize,
    out: usize,
) -> std::result::Result<Linear, ModelError> {
    let weight = p.get(&format!("{name}.weight"), &[inp, out])?;
    let bias = Some(p.get(&format!("{name}.bias"), &[out])?);
    Ok(Linear {
        weight,
        bias,
        in_out: true,
        lora: None,
    })
}

/// The output head: `lm_head.weight` unless the embeddings are tied (or the head is not stored).
fn lm_head(
    cfg: &DecoderConfig,
    p: &mut Params,
    head_name: &str,
    embed_name: &str,
    embed: &Tensor,
) -> std::result::Result<Tensor, ModelError> {
    if cfg.tie_word_embeddings {
        p.alias(head_name, embed_name);
        return Ok(embed.clone());
    }
    if !p.has(head_name) {
        return Err(ModelError::MissingTensor {
            path: p.files.path_of(head_name),
            name: head_name.to_string(),
        });
    }
    p.get(head_name, &[cfg.vocab_size, cfg.hidden_size])
}

fn rope_of(cfg: &DecoderConfig) -> Option<RopeSpec> {
    match &cfg.positions {
        Positions::Rope(r) => Some(r.clone()),
        Positions::Learned { .. } => None,
    }
}

pub(super) fn load_llama_like(
    cfg: &DecoderConfig,
    p: &mut Params,
) -> std::result::Result<Decoder, ModelError> {
    let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
    let embed = p.get("model.embed_tokens.weight", &[cfg.vocab_size, h])?;
    let mut blocks = Vec::with_capacity(cfg.num_layers);
    for l in 0..cfg.num_layers {
        let pre = format!("model.layers.{l}");
        let qkv = if cfg.fused_qkv {
            Qkv::Fused(linear(
                p,
                &format!("{pre}.self_attn.qkv_proj"),
                h,
                cfg.q_dim() + 2 * cfg.kv_dim(),
                cfg.qkv_bias,
            )?)
        } else {
            Qkv::Split {
                q: linear(
                    p,
                    &format!("{pre}.self_attn.q_proj"),
                    h,
                    cfg.q_dim(),
                    cfg.qkv_bias,
                )?,
                k: linear(
                    p,
                    &format!("{pre}.self_attn.k_proj"),
                    h,
                    cfg.kv_dim(),
                    cfg.qkv_bias,
                )?,
                v: linear(
                    p,
                    &format!("{pre}.self_attn.v_proj"),
                    h,
                    cfg.kv_dim(),
                    cfg.qkv_bias,
                )?,
            }
        };
        let (q_norm, k_norm) = if cfg.qk_norm {
            (
                Some(norm(
                    p,
                    cfg,
                    &format!("{pre}.self_attn.q_norm"),
                    cfg.head_dim,
                )?),
                Some(norm(
                    p,
                    cfg,
                    &format!("{pre}.self_attn.k_norm"),
                    cfg.head_dim,
                )?),
            )
        } else {
            (None, None)
        };
        let attn = Attention {
            qkv,
            o: linear(
                p,
                &format!("{pre}.self_attn.o_proj"),
                cfg.q_dim(),
                h,
                cfg.o_bias,
            )?,
            q_norm,
            k_norm,
        };
        let mlp = match cfg.mlp {
            MlpKind::GatedFused => Mlp::GatedFused {
                gate_up: linear(
                    p,
                    &format!("{pre}.mlp.gate_up_proj"),
                    h,
                    2 * i,
                    cfg.mlp_bias,
                )?,
                down: linear(p, &format!("{pre}.mlp.down_proj"), i, h, cfg.mlp_bias)?,
            },
            _ => Mlp::Gated {
                gate: linear(p, &format!("{pre}.mlp.gate_proj"), h, i, cfg.mlp_bias)?,
                up: linear(p, &format!("{pre}.mlp.up_proj"), h, i, cfg.mlp_bias)?,
                down: linear(p, &format!("{pre}.mlp.down_proj"), i, h, cfg.mlp_bias)?,
            },
        };
        let attn_norm = norm(p, cfg, &format!("{pre}.input_layernorm"), h)?;
        let (post_attn_norm, mlp_norm, post_mlp_norm) = if cfg.sandwich_norms {
            (
                Some(norm(p, cfg, &format!("{pre}.post_attention_layernorm"), h)?),
                norm(p, cfg, &format!("{pre}.pre_feedforward_layernorm"), h)?,
                Some(norm(
                    p,
                    cfg,
                    &format!("{pre}.post_feedforward_layernorm"),
                    h,
                )?),
            )
        } else {
            (
                None,
                norm(p, cfg, &format!("{pre}.post_attention_layernorm"), h)?,
                None,
            )
        };
        blocks.push(Block {
            attn_norm,
            attn,
            post_attn_norm,
            mlp_norm,
            mlp,
            post_mlp_norm,
            sliding_window: cfg.sliding_window[l],
        });
    }
    let final_norm = norm(p, cfg, "model.norm", h)?;
    let lm_head = lm_head(
        cfg,
        p,
        "lm_head.weight",
        "model.embed_tokens.weight",
        &embed,
    )?;
    Ok(Decoder {
        cfg: cfg.clone(),
        embed,
        pos_embed: None,
        blocks,
        final_norm,
        lm_head,
        rope: rope_of(cfg),
        name_prefix: String::new(),
    })
}

pub(super) fn load_gpt2(
    cfg: &DecoderConfig,
    p: &mut Params,
) -> std::result::Result<Decoder, ModelError> {
    let prefix = if p.has("transformer.wte.weight") {
        "transformer."
    } else {
        ""
    };
    let h = cfg.hidden_size;
    let max_pos = cfg.context_length().unwrap_or(0);
    let embed = p.get(&format!("{prefix}wte.weight"), &[cfg.vocab_size, h])?;
    let pos_embed = p.get(&format!("{prefix}wpe.weight"), &[max_pos, h])?;
    let mut blocks = Vec::with_capacity(cfg.num_layers);
    for l in 0..cfg.num_layers {
        let pre = format!("{prefix}h.{l}");
        let attn = Attention {
            qkv: Qkv::Fused(conv1d(p, &format!("{pre}.attn.c_attn"), h, 3 * h)?),
            o: conv1d(p, &format!("{pre}.attn.c_proj"), h, h)?,
            q_norm: None,
            k_norm: None,
        };
        let mlp = Mlp::Plain {
            fc: conv1d(p, &format!("{pre}.mlp.c_fc"), h, cfg.intermediate_size)?,
            proj: conv1d(p, &format!("{pre}.mlp.c_proj"), cfg.intermediate_size, h)?,
        };
        blocks.push(Block {
            attn_norm: norm(p, cfg, &format!("{pre}.ln_1"), h)?,
            attn,
            post_attn_norm: None,
            mlp_norm: norm(p, cfg, &format!("{pre}.ln_2"), h)?,
            mlp,
            post_mlp_norm: None,
            sliding_window: None,
        });
    }
    let final_norm = norm(p, cfg, &format!("{prefix}ln_f"), h)?;
    let embed_name = format!("{prefix}wte.weight");
    let lm_head = lm_head(cfg, p, "lm_head.weight", &embed_name, &embed)?;
    Ok(Decoder {
        cfg: cfg.clone(),
        embed,
        pos_embed: Some(pos_embed),
        blocks,
        final_norm,
        lm_head,
        rope: None,
        name_prefix: prefix.to_string(),
    })
}

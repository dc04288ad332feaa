//! One decoder for every supported family: pre-norm blocks of (GQA) self-attention and an MLP,
//! shaped by a [`DecoderConfig`]. Full-sequence forward over right-padded batches for training
//! and scoring, and incremental decoding with a [`KvCache`].

use candle_core::{DType, Device, Module, Result, Tensor, D};

use super::arch::WeightLayout;
use super::config::{DecoderConfig, MlpKind, NormKind, Positions};
pub use super::kv_cache::KvCache;
use super::layers::{activate, gated, log_softmax, softcap, softmax_last, Linear, Norm};
use super::params::Params;
use super::rope::{apply_rotary, RopeScaling, RopeSpec};
use super::ModelError;

mod detach;
mod load;

/// Added to attention scores of masked positions. Finite on purpose: `-inf` turns fully masked
/// rows into NaN, in the loss and in the gradients.
const MASKED: f32 = -1e9;

#[derive(Debug, Clone)]
enum Qkv {
    Split { q: Linear, k: Linear, v: Linear },
    Fused(Linear),
}

#[derive(Debug, Clone)]
struct Attention {
    qkv: Qkv,
    o: Linear,
    q_norm: Option<Norm>,
    k_norm: Option<Norm>,
}

#[derive(Debug, Clone)]
enum Mlp {
    Gated {
        gate: Linear,
        up: Linear,
        down: Linear,
    },
    GatedFused {
        gate_up: Linear,
        down: Linear,
    },
    Plain {
        fc: Linear,
        proj: Linear,
    },
}

#[derive(Debug, Clone)]
struct Block {
    attn_norm: Norm,
    attn: Attention,
    post_attn_norm: Option<Norm>,
    mlp_norm: Norm,
    mlp: Mlp,
    post_mlp_norm: Option<Norm>,
    sliding_window: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct Decoder {
    cfg: DecoderConfig,
    embed: Tensor,
    pos_embed: Option<Tensor>,
    blocks: Vec<Block>,
    final_norm: Norm,
    lm_head: Tensor,
    rope: Option<RopeSpec>,
    /// `transformer.` for GPT-2 checkpoints saved by transformers
    name_prefix: String,
}

/// Every projection of a decoder with its checkpoint name (without `.weight`).
pub struct NamedLinear<'a> {
    pub name: String,
    pub linear: &'a mut Linear,
}

impl Decoder {
    pub fn config(&self) -> &DecoderConfig {
        &self.cfg
    }

    /// Build from checkpoint tensors, checking every shape against the config.
    pub fn load(
        cfg: &DecoderConfig,
        layout: WeightLayout,
        p: &mut Params,
    ) -> std::result::Result<Decoder, ModelError> {
        match layout {
            WeightLayout::LlamaLike => load::load_llama_like(cfg, p),
            WeightLayout::Gpt2 => load::load_gpt2(cfg, p),
        }
    }

    /// Total length at which cached decoding must start over to compute what transformers
    /// computes: with `longrope`, frequencies switch to the long factors for every position once
    /// the sequence passes `original_max_position_embeddings`, and transformers' Phi-3 then drops
    /// its cache and recomputes the prefix.
    pub fn recompute_boundary(&self) -> Option<usize> {
        match self.rope.as_ref().map(|r| &r.scaling) {
            Some(RopeScaling::LongRope {
                original_max_position_embeddings,
                ..
            }) => Some(*original_max_position_embeddings),
            _ => None,
        }
    }

    /// Length past which RoPE frequencies depend on the sequence length (`longrope`, `dynamic`),
    /// so that cached and recomputed results may legitimately differ.
    pub fn length_dependent_limit(&self) -> Option<usize> {
        match self.rope.as_ref().map(|r| &r.scaling) {
            Some(RopeScaling::LongRope {
                original_max_position_embeddings,
                ..
            }) => Some(*original_max_position_embeddings),
            Some(RopeScaling::Dynamic {
                max_position_embeddings,
                ..
            }) => Some(*max_position_embeddings),
            _ => None,
        }
    }

    /// The projections of every block (attention and MLP; not the output head), named as in
    /// the checkpoint, for adapters.
    pub fn linears_mut(&mut self) -> Vec<NamedLinear<'_>> {
        let gpt2 = self.pos_embed.is_some();
        let prefix = self.name_prefix.clone();
        let mut out = Vec::new();
        for (l, b) in self.blocks.iter_mut().enumerate() {
            let (attn, mlp) = if gpt2 {
                (format!("{prefix}h.{l}.attn"), format!("{prefix}h.{l}.mlp"))
            } else {
                (
                    format!("model.layers.{l}.self_attn"),
                    format!("model.layers.{l}.mlp"),
                )
            };
            let o = if gpt2 { "c_proj" } else { "o_proj" };
            let mut attn_l: Vec<(&str, &mut Linear)> = match &mut b.attn.qkv {
                Qkv::Split { q, k, v } => vec![("q_proj", q), ("k_proj", k), ("v_proj", v)],
                Qkv::Fused(f) => vec![(if gpt2 { "c_attn" } else { "qkv_proj" }, f)],
            };
            attn_l.push((o, &mut b.attn.o));
            let mlp_l: Vec<(&str, &mut Linear)> = match &mut b.mlp {
                Mlp::Gated { gate, up, down } => {
                    vec![("gate_proj", gate), ("up_proj", up), ("down_proj", down)]
                }
                Mlp::GatedFused { gate_up, down } => {
                    vec![("gate_up_proj", gate_up), ("down_proj", down)]
                }
                Mlp::Plain { fc, proj } => vec![("c_fc", fc), ("c_proj", proj)],
            };
            out.extend(attn_l.into_iter().map(|(n, linear)| NamedLinear {
                name: format!("{attn}.{n}"),
                linear,
            }));
            out.extend(mlp_l.into_iter().map(|(n, linear)| NamedLinear {
                name: format!("{mlp}.{n}"),
                linear,
            }));
        }
        out
    }

    pub fn embed_tokens(&self) -> &Tensor {
        &self.embed
    }

    /// Hidden states after the final norm for a right-padded batch: `ids` is `[b, t]` (u32),
    /// `lengths[i]` the real length of row `i`. Positions start at 0 in every row; rows never
    /// attend to padding. Returns `[b, t, hidden]`.
    pub fn forward_hidden(&self, ids: &Tensor, lengths: &[usize]) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        if lengths.len() != b {
            candle_core::bail!("{} lengths for a batch of {b}", lengths.len());
        }
        let pos: Vec<Vec<i64>> = (0..b).map(|_| (0..t as i64).collect()).collect();
        let valid: Vec<Vec<bool>> = lengths
            .iter()
            .map(|&l| (0..t).map(|j| j < l).collect())
            .collect();
        let key_pos: Vec<Vec<i64>> = pos
            .iter()
            .zip(&valid)
            .map(|(p, v)| {
                p.iter()
                    .zip(v)
                    .map(|(&p, &v)| if v { p } else { -1 })
                    .collect()
            })
            .collect();
        self.run(ids, &pos, &key_pos, None)
    }

    /// Hidden states for packed rows: several documents share a row, `positions[i][j]` restarts
    /// at 0 for each document and `segments[i][j]` names the document of token `j` (padding
    /// takes a segment of its own); tokens attend only within their document.
    pub fn forward_hidden_packed(
        &self,
        ids: &Tensor,
        positions: &[Vec<i64>],
        segments: &[Vec<u32>],
    ) -> Result<Tensor> {
        self.run_masked(ids, positions, positions, Some(segments), None)
    }

    /// Logits `[b, t, vocab]` for every position of a right-padded batch.
    pub fn forward(&self, ids: &Tensor, lengths: &[usize]) -> Result<Tensor> {
        let h = self.forward_hidden(ids, lengths)?;
        self.logits(&h)
    }

    /// The output head (and Gemma 2's final soft-cap) applied to hidden states `[.., hidden]`.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        let head = Linear {
            weight: self.lm_head.clone(),
            bias: None,
            in_out: false,
            lora: None,
        };
        let logits = head.forward(hidden)?;
        match self.cfg.final_softcap {
            Some(c) => softcap(&logits, c),
            None => Ok(logits),
        }
    }

    /// `−log p(target)` at each row of final hidden states `hidden` `[n, hidden]`, `targets` `[n]`
    /// (u32). On CPU f32 the output head and the cross-entropy are one fused op that never holds
    /// the `[n, vocab]` logits ([`super::kernels::linear_cross_entropy`]); on CUDA where
    /// `SFT_EVAL_CUDA_FUSED=1`, the same by vocabulary blocks of candle ops
    /// ([`super::kernels::blocked_head`]); elsewhere, and under Gemma 2's final soft-cap, the
    /// logits and then a log-softmax.
    pub fn nll_rows(&self, hidden: &Tensor, targets: &Tensor) -> Result<Tensor> {
        if self.cfg.final_softcap.is_none()
            && self.lm_head.dtype() == DType::F32
            && super::kernels::enabled(hidden)
        {
            return super::kernels::linear_cross_entropy::linear_cross_entropy(
                hidden,
                &self.lm_head,
                targets,
            );
        }
        if self.cfg.final_softcap.is_none()
            && self.lm_head.dtype() == hidden.dtype()
            && super::kernels::cuda_enabled(hidden)
        {
            return super::kernels::blocked_head::linear_cross_entropy_blocks(
                hidden,
                &self.lm_head,
                targets,
                None,
            );
        }
        let logits = self.logits(hidden)?;
        if super::kernels::enabled(&logits) {
            return super::kernels::cross_entropy::cross_entropy_rows(&logits, targets);
        }
        log_softmax(&logits)?
            .gather(&targets.unsqueeze(D::Minus1)?, D::Minus1)?
            .squeeze(D::Minus1)?
            .neg()
    }

    pub fn new_cache(&self, batch: usize) -> KvCache {
        KvCache::new(self.cfg.num_layers, batch)
    }

    /// Feed `ids` (`[b, t_new]`, right-padded: row `i` has `new_lengths[i]` real tokens) after
    /// what `cache` holds; returns logits `[b, t_new, vocab]` and extends the cache.
    pub fn forward_cached(
        &self,
        ids: &Tensor,
        new_lengths: &[usize],
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let h = self.forward_cached_hidden(ids, new_lengths, cache)?;
        self.logits(&h)
    }

    /// [`Decoder::forward_cached`] without the output head: hidden states `[b, t_new, hidden]`
    /// after the final norm (apply [`Decoder::logits`] to the positions needed).
    pub fn forward_cached_hidden(
        &self,
        ids: &Tensor,
        new_lengths: &[usize],
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        if cache.batch() != b || new_lengths.len() != b {
            candle_core::bail!("cache of batch {} fed a batch of {b}", cache.batch());
        }
        let pos: Vec<Vec<i64>> = (0..b)
            .map(|i| (0..t).map(|j| (cache.lengths[i] + j) as i64).collect())
            .collect();
        let mut key_pos = cache.slot_pos.clone();
        for i in 0..b {
            key_pos[i].extend((0..t).map(|j| if j < new_lengths[i] { pos[i][j] } else { -1 }));
        }
        let h = self.run(ids, &pos, &key_pos, Some(cache))?;
        cache.slot_pos = key_pos;
        for (l, n) in cache.lengths.iter_mut().zip(new_lengths) {
            *l += n;
        }
        Ok(h)
    }

    /// The shared forward: `pos[i][j]` is the position of new token `j` in row `i`;
    /// `key_pos[i]` lists the positions of every key (cached then new), -1 for padding.
    fn run(
        &self,
        ids: &Tensor,
        pos: &[Vec<i64>],
        key_pos: &[Vec<i64>],
        cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        self.run_masked(ids, pos, key_pos, None, cache)
    }

    fn run_masked(
        &self,
        ids: &Tensor,
        pos: &[Vec<i64>],
        key_pos: &[Vec<i64>],
        segments: Option<&[Vec<u32>]>,
        mut cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let device = ids.device();
        let dtype = self.embed.dtype();
        let flat_ids = ids.flatten_all()?;
        let mut x = self
            .embed
            .index_select(&flat_ids, 0)?
            .reshape((b, t, self.cfg.hidden_size))?;
        if let Some(s) = self.cfg.embed_scale {
            // transformers multiplies by the scale rounded to the weights' dtype
            let s = Tensor::new(s as f32, device)?.to_dtype(dtype)?;
            x = x.broadcast_mul(&s)?;
        }
        let flat_pos: Vec<u32> = pos.iter().flatten().map(|&p| p as u32).collect();
        let pos_t = Tensor::from_vec(flat_pos, b * t, device)?;
        if let Some(pe) = &self.pos_embed {
            x = (x + pe
                .index_select(&pos_t, 0)?
                .reshape((b, t, self.cfg.hidden_size))?)?;
        }
        let rope = match &self.rope {
            Some(r) => Some(self.rotary_tables(r, pos, key_pos, device, dtype)?),
            None => None,
        };
        let global_mask = attention_mask(pos, key_pos, segments, None, device, dtype)?;
        let mut window_masks: Vec<(usize, Tensor)> = Vec::new();
        for (li, block) in self.blocks.iter().enumerate() {
            let mask = match block.sliding_window {
                None => global_mask.clone(),
                Some(w) => match window_masks.iter().find(|(ww, _)| *ww == w) {
                    Some((_, m)) => m.clone(),
                    None => {
                        let m = attention_mask(pos, key_pos, segments, Some(w), device, dtype)?;
                        window_masks.push((w, m.clone()));
                        m
                    }
                },
            };
            let layer_cache = cache.as_mut().map(|c| &mut c.layers[li]);
            x = self.block_forward(block, &x, rope.as_ref(), &mask, layer_cache)?;
        }
        self.final_norm.forward(&x)
    }

    /// cos/sin for the new tokens: `[t, half]` when every row holds positions `0..t`, else
    /// `[b, t, half]`. Length-dependent RoPE (longrope, dynamic) takes each row's own length, so a
    /// row scores the same alone or in any batch (transformers would use the batch's longest).
    fn rotary_tables(
        &self,
        r: &RopeSpec,
        pos: &[Vec<i64>],
        key_pos: &[Vec<i64>],
        device: &Device,
        dtype: DType,
    ) -> Result<(Tensor, Tensor)> {
        let b = pos.len();
        let t = pos.first().map_or(0, Vec::len);
        let max_pos = pos.iter().flatten().copied().max().unwrap_or(0) as usize;
        let (cos, sin) = if self.length_dependent_limit().is_some() {
            let mut cs = Vec::with_capacity(b);
            let mut ss = Vec::with_capacity(b);
            for (p, k) in pos.iter().zip(key_pos) {
                let row_len = k.iter().copied().max().unwrap_or(0).max(0) as usize + 1;
                let p: Vec<usize> = p.iter().map(|&x| x as usize).collect();
                let (c, s) = r.cos_sin_at(&p, row_len, device)?;
                cs.push(c);
                ss.push(s);
            }
            (Tensor::stack(&cs, 0)?, Tensor::stack(&ss, 0)?)
        } else {
            let (cos, sin) = r.cos_sin(max_pos + 1, device)?;
            let uniform = pos
                .iter()
                .all(|p| p.iter().enumerate().all(|(j, &q)| q == j as i64));
            if uniform {
                (cos.narrow(0, 0, t)?, sin.narrow(0, 0, t)?)
            } else {
                let half = cos.dim(1)?;
                let flat: Vec<u32> = pos.iter().flatten().map(|&p| p as u32).collect();
                let idx = Tensor::from_vec(flat, b * t, device)?;
                (
                    cos.index_select(&idx, 0)?.reshape((b, t, half))?,
                    sin.index_select(&idx, 0)?.reshape((b, t, half))?,
                )
            }
        };
        Ok((cos.to_dtype(dtype)?, sin.to_dtype(dtype)?))
    }

    fn block_forward(
        &self,
        block: &Block,
        x: &Tensor,
        rope: Option<&(Tensor, Tensor)>,
        mask: &Tensor,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
    ) -> Result<Tensor> {
        let h = block.attn_norm.forward(x)?;
        let mut h = self.attention(&block.attn, &h, rope, mask, cache)?;
        if let Some(n) = &block.post_attn_norm {
            h = n.forward(&h)?;
        }
        let x = (x + h)?;
        let h = block.mlp_norm.forward(&x)?;
        let mut h = self.mlp(&block.mlp, &h)?;
        if let Some(n) = &block.post_mlp_norm {
            h = n.forward(&h)?;
        }
        x + h
    }

    fn attention(
        &self,
        a: &Attention,
        x: &Tensor,
        rope: Option<&(Tensor, Tensor)>,
        mask: &Tensor,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
    ) -> Result<Tensor> {
        let cfg = &self.cfg;
        let (b, t, _) = x.dims3()?;
        let (hd, nh, nkv) = (cfg.head_dim, cfg.num_heads, cfg.num_kv_heads);
        let (q, k, v) = match &a.qkv {
            Qkv::Split { q, k, v } => (q.forward(x)?, k.forward(x)?, v.forward(x)?),
            Qkv::Fused(l) => {
                let qkv = l.forward(x)?;
                (
                    qkv.narrow(D::Minus1, 0, nh * hd)?,
                    qkv.narrow(D::Minus1, nh * hd, nkv * hd)?,
                    qkv.narrow(D::Minus1, nh * hd + nkv * hd, nkv * hd)?,
                )
            }
        };
        let fused = super::kernels::enabled(&q);
        let (q, k, v) = if fused {
            // heads moved to [b, h, t, d] and rotated in one op each: one graph node, not four
            use super::kernels::heads::to_heads;
            let rope = rope.map(|(c, s)| (c, s));
            let q = match &a.q_norm {
                Some(n) => n.forward(&q.reshape((b, t, nh, hd))?)?,
                None => q,
            };
            let k = match &a.k_norm {
                Some(n) => n.forward(&k.reshape((b, t, nkv, hd))?)?,
                None => k,
            };
            (
                to_heads(&q, nh, rope)?,
                to_heads(&k, nkv, rope)?,
                to_heads(&v, nkv, None)?,
            )
        } else {
            let mut q = q.reshape((b, t, nh, hd))?;
            let mut k = k.reshape((b, t, nkv, hd))?;
            if let Some(n) = &a.q_norm {
                q = n.forward(&q)?;
            }
            if let Some(n) = &a.k_norm {
                k = n.forward(&k)?;
            }
            let mut q = q.transpose(1, 2)?.contiguous()?;
            let mut k = k.transpose(1, 2)?.contiguous()?;
            let v = v.reshape((b, t, nkv, hd))?.transpose(1, 2)?.contiguous()?;
            if let Some((cos, sin)) = rope {
                // candle's cat along the last dim returns a strided view that matmul rejects
                q = apply_rotary(&q, cos, sin)?.contiguous()?;
                k = apply_rotary(&k, cos, sin)?.contiguous()?;
            }
            (q, k, v)
        };
        let (k, v) = match cache {
            Some(slot) => {
                let (k, v) = match slot.take() {
                    Some((pk, pv)) => (Tensor::cat(&[&pk, &k], 2)?, Tensor::cat(&[&pv, &v], 2)?),
                    None => (k, v),
                };
                *slot = Some((k.clone(), v.clone()));
                (k, v)
            }
            None => (k, v),
        };
        if cfg.attn_softcap.is_none()
            && super::kernels::enabled(&q)
            && mask.dtype() == DType::F32
            && k.dtype() == DType::F32
        {
            // scores, mask, softmax and P·V per (row, kv head), K and V shared in place
            let out = super::kernels::attention::attention(&q, &k, &v, mask, cfg.attn_scale)?;
            return a.o.forward(&super::kernels::heads::from_heads(&out)?);
        }
        // the composition: other devices and dtypes, and Gemma 2's soft-capped scores. The `g`
        // query heads that share a K/V head are adjacent, so `[b, nh, t, d]` is `[b, nkv, g·t, d]`
        // as it stands: each K/V head is used in place, not copied `g` times (repeat_kv)
        let (g, tk) = (nh / nkv, k.dim(2)?);
        let scores = q.reshape((b, nkv, g * t, hd))?.matmul(&k.t()?)?;
        let mut scores = (scores * cfg.attn_scale)?;
        if let Some(c) = cfg.attn_softcap {
            scores = softcap(&scores, c)?;
        }
        // the mask `[b, 1, t, tk]` is the same for every query head of a group
        let scores = scores
            .reshape((b, nkv, g, t, tk))?
            .broadcast_add(&mask.unsqueeze(2)?)?;
        let probs = softmax_last(&scores.to_dtype(DType::F32)?)?.to_dtype(q.dtype())?;
        let out = probs
            .reshape((b, nkv, g * t, tk))?
            .matmul(&v)?
            .reshape((b, nh, t, hd))?
            .transpose(1, 2)?
            .reshape((b, t, nh * hd))?;
        a.o.forward(&out)
    }

    fn mlp(&self, m: &Mlp, x: &Tensor) -> Result<Tensor> {
        let act = self.cfg.activation;
        match m {
            Mlp::Gated { gate, up, down } => {
                down.forward(&gated(&gate.forward(x)?, &up.forward(x)?, act)?)
            }
            Mlp::GatedFused { gate_up, down } => {
                let gu = gate_up.forward(x)?;
                let n = gu.dim(D::Minus1)? / 2;
                let gate = gu.narrow(D::Minus1, 0, n)?;
                let up = gu.narrow(D::Minus1, n, n)?;
                down.forward(&gated(&gate, &up, act)?)
            }
            Mlp::Plain { fc, proj } => proj.forward(&activate(&fc.forward(x)?, act)?),
        }
    }
}

/// Additive mask `[b, 1, t_q, t_k]`: 0 where query may see key, [`MASKED`] elsewhere. With
/// `segments` (packed rows, no cache) queries see only keys of their own segment.
fn attention_mask(
    q_pos: &[Vec<i64>],
    k_pos: &[Vec<i64>],
    segments: Option<&[Vec<u32>]>,
    window: Option<usize>,
    device: &Device,
    dtype: DType,
) -> Result<Tensor> {
    let b = q_pos.len();
    let tq = q_pos.first().map_or(0, Vec::len);
    let tk = k_pos.first().map_or(0, Vec::len);
    let mut m = vec![0f32; b * tq * tk];
    for i in 0..b {
        for (j, &q) in q_pos[i].iter().enumerate() {
            let row = &mut m[(i * tq + j) * tk..(i * tq + j + 1) * tk];
            for (slot, &k) in k_pos[i].iter().enumerate() {
                let same_doc = segments.is_none_or(|s| s[i][slot] == s[i][j]);
                let visible =
                    same_doc && k >= 0 && k <= q && window.is_none_or(|w| q - k < w as i64);
                if !visible {
                    row[slot] = MASKED;
                }
            }
        }
    }
    Tensor::from_vec(m, (b, 1, tq, tk), device)?.to_dtype(dtype)
}

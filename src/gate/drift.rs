//! Label-free drift between a base and a fine-tuned checkpoint: mean per-token
//! KL(base ‖ fine-tune) of the next-token distributions on the suites' own prompts (a proxy that
//! tracks forgetting, Shenfeld et al. 2025), and the relative weight change per layer when the
//! architectures match.

use std::collections::BTreeMap;

use candle_core::{DType, D};
use serde::Serialize;

use crate::model::params::layer_index;
use crate::model::{Model, ModelError};
use crate::suite::spec::Suite;

/// Prompts per forward pass: at batch 1 a small model's matrix products cost mostly the packing
/// of the weights, which a batch shares.
const DRIFT_BATCH: usize = 16;
/// At most this many logits (`rows × padded length × vocab`) per batch, so a large vocabulary
/// falls back to smaller batches (one prompt at least).
const DRIFT_BATCH_LOGITS: usize = 1 << 24;

#[derive(Debug, Clone, Serialize)]
pub struct Drift {
    /// per suite: mean token KL(base ‖ fine-tune) over its prompts (nats)
    pub kl: BTreeMap<String, f64>,
    /// per block (`embeddings`, `layer 0`, …, `other`): ‖W_ft − W_base‖ / ‖W_base‖
    pub weight_change: Vec<(String, f64)>,
}

/// Mean token KL on up to `max_items` prompts of each suite, and per-layer weight change.
pub fn drift(
    base: &Model,
    ft: &Model,
    suites: &[Suite],
    max_items: usize,
) -> Result<Drift, ModelError> {
    let ctx = |m: &str| ModelError::candle(format!("drift: {m}"));
    let env = crate::model::jinja::environment();
    let vocab = base.config().vocab_size.max(1);
    let mut kl = BTreeMap::new();
    for s in suites {
        let mut rows = Vec::new();
        for item in s.items.iter().take(max_items) {
            let (prompt, special) = crate::suite::runner::render_prompt(&env, s, item, base)
                .map_err(|e| ModelError::Invalid(e.to_string()))?;
            let ids = base.tokenizer.encode(&prompt, special)?;
            if !ids.is_empty() {
                rows.push(ids);
            }
        }
        let (mut sum, mut n) = (0f64, 0usize);
        let mut start = 0;
        while start < rows.len() {
            // consecutive prompts, padded to the longest, while the batch's logits stay small
            let (mut end, mut longest) = (start + 1, rows[start].len());
            while end < rows.len() && end - start < DRIFT_BATCH {
                let t = longest.max(rows[end].len());
                if (end + 1 - start) * t * vocab > DRIFT_BATCH_LOGITS {
                    break;
                }
                (longest, end) = (t, end + 1);
            }
            let batch = &rows[start..end];
            let lp = crate::model::layers::log_softmax(&base.forward_batch(batch)?)
                .map_err(ctx("base"))?;
            let lq = crate::model::layers::log_softmax(&ft.forward_batch(batch)?)
                .map_err(ctx("fine-tune"))?;
            // KL at each position [b, t]; padding positions are left out
            let k: Vec<Vec<f32>> = (lp.exp().map_err(ctx("exp"))?
                * (&lp - &lq).map_err(ctx("sub"))?)
            .and_then(|t| t.sum(D::Minus1))
            .and_then(|t| t.to_dtype(DType::F32))
            .and_then(|t| t.to_vec2::<f32>())
            .map_err(ctx("kl"))?;
            for (row, ids) in k.iter().zip(batch) {
                sum += row[..ids.len()].iter().map(|&x| f64::from(x)).sum::<f64>();
                n += ids.len();
            }
            start = end;
        }
        kl.insert(s.spec.name.clone(), sum / n.max(1) as f64);
    }
    let mut groups: BTreeMap<(usize, String), (f64, f64)> = BTreeMap::new();
    if base.arch.hf_class == ft.arch.hf_class {
        for (name, wb) in base.params.loaded() {
            let Some(wf) = ft.params.loaded().get(name) else {
                continue;
            };
            if wb.dims() != wf.dims() {
                continue;
            }
            let key = match layer_index(name) {
                Some(l) => (1 + l, format!("layer {l}")),
                None if name.contains("embed") || name.contains("wte") || name.contains("wpe") => {
                    (0, "embeddings".to_string())
                }
                None => (usize::MAX, "other".to_string()),
            };
            let d = (wf - wb)
                .and_then(|t| t.sqr())
                .and_then(|t| t.sum_all())
                .and_then(|t| t.to_dtype(DType::F64))
                .and_then(|t| t.to_scalar::<f64>())
                .map_err(ctx("weights"))?;
            let b = wb
                .sqr()
                .and_then(|t| t.sum_all())
                .and_then(|t| t.to_dtype(DType::F64))
                .and_then(|t| t.to_scalar::<f64>())
                .map_err(ctx("weights"))?;
            let e = groups.entry(key).or_default();
            e.0 += d;
            e.1 += b;
        }
    }
    let weight_change = groups
        .into_iter()
        .map(|((_, label), (d, b))| (label, (d / b.max(f64::MIN_POSITIVE)).sqrt()))
        .collect();
    Ok(Drift { kl, weight_change })
}

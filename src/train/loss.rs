//! Token losses over right-padded batches: masked next-token NLL and KL between two models'
//! next-token distributions. Sums, not means: the trainer divides by the number of supervised
//! tokens in the whole gradient-accumulation window, as transformers does since 2024.

use candle_core::{DType, Result, Tensor, D};

use crate::model::Decoder;

pub use crate::model::layers::log_softmax;

/// Σ −log p(target) over positions where `mask` is 1. `logits` `[b, t, V]`, `targets` `[b, t]`
/// (u32, already shifted: the token that follows each position), `mask` `[b, t]` (f32).
///
/// On CPU f32 this is one fused pass over each row of logits, forward and backward
/// ([`crate::model::kernels::cross_entropy`]); elsewhere the log-softmax composition.
pub fn masked_nll_sum(logits: &Tensor, targets: &Tensor, mask: &Tensor) -> Result<Tensor> {
    if crate::model::kernels::enabled(logits) && mask.dtype() == DType::F32 {
        let nll = crate::model::kernels::cross_entropy::cross_entropy_rows(logits, targets)?;
        return (nll * mask)?.sum_all();
    }
    masked_nll_sum_composed(logits, targets, mask)
}

/// [`masked_nll_sum`] from the final hidden states `[b, t, hidden]` instead of logits: only the
/// positions where `mask` is nonzero go through the output head ([`Decoder::nll_rows`]), so a
/// prompt's tokens cost nothing there and, on CPU f32, no `[b, t, vocab]` logits exist.
pub fn masked_nll_sum_hidden(
    decoder: &Decoder,
    hidden: &Tensor,
    targets: &Tensor,
    mask: &Tensor,
) -> Result<Tensor> {
    let (b, t, h) = hidden.dims3()?;
    let weights: Vec<f32> = mask.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    let rows: Vec<u32> = (0..b * t)
        .filter(|&i| weights[i] != 0.0)
        .map(|i| i as u32)
        .collect();
    if rows.is_empty() {
        // keep the graph (and a zero gradient for every parameter) as the logits path does
        return (hidden.sum_all()? * 0.0)?.to_dtype(DType::F32);
    }
    let dev = hidden.device();
    let idx = Tensor::from_vec(rows.clone(), rows.len(), dev)?;
    let picked = hidden.reshape((b * t, h))?.index_select(&idx, 0)?;
    let tg = targets.flatten_all()?.index_select(&idx, 0)?;
    let nll = decoder.nll_rows(&picked, &tg)?.to_dtype(DType::F32)?;
    let w: Vec<f32> = rows.iter().map(|&i| weights[i as usize]).collect();
    let w = Tensor::from_vec(w, rows.len(), dev)?;
    // summed in f64: one rounding, so that the sum does not depend on how rows were batched
    (nll * w)?
        .to_dtype(DType::F64)?
        .sum_all()?
        .to_dtype(DType::F32)
}

/// [`masked_nll_sum`] from differentiable ops (any device and dtype).
pub fn masked_nll_sum_composed(logits: &Tensor, targets: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let logp = log_softmax(logits)?;
    let picked = logp
        .gather(&targets.unsqueeze(D::Minus1)?, D::Minus1)?
        .squeeze(D::Minus1)?;
    (picked * mask)?.sum_all()?.neg()
}

/// Which divergence a KL regularizer measures.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
    Default,
)]
#[serde(rename_all = "lowercase")]
pub enum KlDirection {
    /// KL(base ‖ fine-tuned): mass the base puts where the fine-tune does not (mode covering)
    #[default]
    Forward,
    /// KL(fine-tuned ‖ base): mode seeking
    Reverse,
}

/// Σ over masked positions of the KL divergence between next-token distributions.
/// `base_logits` carries no gradient.
pub fn masked_kl_sum(
    logits: &Tensor,
    base_logits: &Tensor,
    mask: &Tensor,
    direction: KlDirection,
) -> Result<Tensor> {
    let lp = log_softmax(logits)?;
    let lq = log_softmax(&base_logits.detach())?;
    let per_pos = match direction {
        KlDirection::Forward => (lq.exp()? * (&lq - &lp)?)?.sum(D::Minus1)?,
        KlDirection::Reverse => (lp.exp()? * (&lp - &lq)?)?.sum(D::Minus1)?,
    };
    (per_pos * mask)?.sum_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn nll_matches_a_direct_computation() {
        let dev = Device::Cpu;
        let logits = Tensor::new(&[[[1.0f32, 2.0, 0.5], [0.0, 0.0, 3.0]]], &dev).unwrap();
        let targets = Tensor::new(&[[1u32, 2]], &dev).unwrap();
        let mask = Tensor::new(&[[1.0f32, 0.0]], &dev).unwrap();
        let got: f32 = masked_nll_sum(&logits, &targets, &mask)
            .unwrap()
            .to_scalar()
            .unwrap();
        let want = -(2.0f32 - (1f32.exp() + 2f32.exp() + 0.5f32.exp()).ln());
        assert!((got - want).abs() < 1e-6);
    }

    #[test]
    fn kl_is_zero_for_equal_models_and_has_correct_gradient() {
        let dev = Device::Cpu;
        let base = Tensor::randn(0f64, 1.0, (1, 3, 5), &dev).unwrap();
        let mask = Tensor::new(&[[1.0f64, 1.0, 0.0]], &dev)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap();
        for dir in [KlDirection::Forward, KlDirection::Reverse] {
            let k: f32 = masked_kl_sum(&base, &base, &mask, dir)
                .unwrap()
                .to_scalar()
                .unwrap();
            assert!(k.abs() < 1e-6);
        }
        // finite differences on the fine-tuned logits
        let x0 = Tensor::randn(0f32, 1.0, (1, 3, 5), &dev).unwrap();
        for dir in [KlDirection::Forward, KlDirection::Reverse] {
            let var = Var::from_tensor(&x0).unwrap();
            let grads = masked_kl_sum(var.as_tensor(), &base, &mask, dir)
                .unwrap()
                .backward()
                .unwrap();
            let g: Vec<f32> = grads
                .get(var.as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let flat: Vec<f32> = x0.flatten_all().unwrap().to_vec1().unwrap();
            let f = |v: Vec<f32>| -> f64 {
                let t = Tensor::from_vec(v, (1, 3, 5), &dev).unwrap();
                masked_kl_sum(&t, &base, &mask, dir)
                    .unwrap()
                    .to_dtype(DType::F64)
                    .unwrap()
                    .to_scalar()
                    .unwrap()
            };
            for i in 0..flat.len() {
                let h = 1e-2f32;
                let (mut p, mut m) = (flat.clone(), flat.clone());
                p[i] += h;
                m[i] -= h;
                let num = (f(p) - f(m)) / (2.0 * h as f64);
                assert!(
                    (num - g[i] as f64).abs() < 2e-3,
                    "{dir:?} {i}: {num} vs {}",
                    g[i]
                );
            }
        }
    }
}

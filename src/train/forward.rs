//! Forward passes a run needs: hidden states and logits of a micro-batch, the supervised NLL,
//! held-out loss and probe KL, and gradient accumulation over micro-batches.

use std::collections::BTreeMap;

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};

use super::batch::{Example, MicroBatch};
use super::{loss, TrainError};
use crate::model::Decoder;

/// Final hidden states `[b, t, hidden]` of a micro-batch (packed rows through the packed
/// forward).
pub fn forward_hidden(decoder: &Decoder, mb: &MicroBatch) -> Result<Tensor, TrainError> {
    Ok(match &mb.packed {
        Some((pos, seg)) => decoder.forward_hidden_packed(&mb.ids, pos, seg)?,
        None => decoder.forward_hidden(&mb.ids, &mb.lengths)?,
    })
}

/// Logits `[b, t, V]` of a micro-batch.
pub fn forward_logits(decoder: &Decoder, mb: &MicroBatch) -> Result<Tensor, TrainError> {
    Ok(decoder.logits(&forward_hidden(decoder, mb)?)?)
}

/// Σ −log p(target) over a micro-batch's supervised tokens, through the output head only at
/// those tokens ([`loss::masked_nll_sum_hidden`]).
pub fn nll_sum(decoder: &Decoder, mb: &MicroBatch) -> Result<Tensor, TrainError> {
    let h = forward_hidden(decoder, mb)?;
    Ok(loss::masked_nll_sum_hidden(
        decoder,
        &h,
        &mb.targets,
        &mb.loss_mask,
    )?)
}

/// Add `more` into `acc` for every variable.
pub(crate) fn accumulate(
    acc: &mut Option<GradStore>,
    more: GradStore,
    vars: &BTreeMap<String, Var>,
) -> Result<(), TrainError> {
    match acc {
        None => *acc = Some(more),
        Some(a) => {
            for v in vars.values() {
                if let Some(g) = more.get(v.as_tensor()) {
                    let sum = match a.remove(v.as_tensor()) {
                        Some(prev) => (prev + g)?,
                        None => g.clone(),
                    };
                    a.insert(v.as_tensor(), sum);
                }
            }
        }
    }
    Ok(())
}

/// Mean token NLL on examples (eval split), and mean per-token KL(base ‖ model) on probes.
pub(crate) fn mean_loss(
    decoder: &Decoder,
    examples: &[Example],
    batch: usize,
    device: &candle_core::Device,
) -> Result<f64, TrainError> {
    let (mut sum, mut n) = (0f64, 0usize);
    for chunk in examples.chunks(batch.max(1)) {
        let refs: Vec<&Example> = chunk.iter().collect();
        let mb = MicroBatch::padded(&refs, device)?;
        sum += nll_sum(decoder, &mb)?
            .to_dtype(DType::F64)?
            .to_scalar::<f64>()?;
        n += mb.n_supervised;
    }
    Ok(sum / n.max(1) as f64)
}

pub(crate) fn probe_kl(
    decoder: &Decoder,
    base: &Decoder,
    probes: &[Example],
    device: &candle_core::Device,
) -> Result<f64, TrainError> {
    let (mut sum, mut n) = (0f64, 0f64);
    for chunk in probes.chunks(8) {
        let refs: Vec<&Example> = chunk.iter().collect();
        let mb = MicroBatch::padded(&refs, device)?;
        let lp = forward_logits(decoder, &mb)?;
        let lq = forward_logits(base, &mb)?;
        sum += loss::masked_kl_sum(&lp, &lq, &mb.valid_mask, loss::KlDirection::Forward)?
            .to_dtype(DType::F64)?
            .to_scalar::<f64>()?;
        n += mb.valid_mask.sum_all()?.to_scalar::<f32>()? as f64;
    }
    Ok(sum / n.max(1.0))
}

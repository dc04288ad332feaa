//! KL toward the base model's next-token distributions (a frozen copy), on response tokens or
//! on every token, in either direction; β times the mean per-token KL over the accumulation
//! window. With `kl.data`, the KL is taken on rows of that broad text (a fixed rotation
//! through it by step) instead of the training batch.

use std::sync::Arc;

use candle_core::Tensor;

use super::{Regularizer, Setup};
use crate::data::read_jsonl;
use crate::model::{Decoder, Model};
use crate::train::batch::{Example, MicroBatch};
use crate::train::config::{KlConfig, KlOn};
use crate::train::loss::masked_kl_sum;
use crate::train::TrainError;

pub struct KlToBase {
    pub cfg: KlConfig,
    /// the base, loaded as plain tensors
    pub base: Arc<Model>,
    /// encoded `kl.data` (empty: the KL is taken on the training batch)
    data: Vec<Example>,
    /// rows of `data` per micro-batch
    rows: usize,
    /// this step's rows of `data`, one micro-batch per training micro-batch
    step_rows: Vec<MicroBatch>,
    /// positions the KL is summed over in this step (its mean's denominator)
    n: f64,
}

pub(super) fn build(s: &mut Setup) -> Result<Option<Box<dyn Regularizer>>, TrainError> {
    let Some(cfg) = s.cfg.kl.clone() else {
        return Ok(None);
    };
    let data = match &cfg.data {
        Some(p) => {
            let ex = s.encoder.encode_all(&read_jsonl(p)?, true)?.examples;
            if ex.is_empty() {
                return Err(TrainError::Data(format!(
                    "{}: kl.data has no usable text",
                    p.display()
                )));
            }
            ex
        }
        None => Vec::new(),
    };
    Ok(Some(Box::new(KlToBase {
        rows: cfg.data_rows.unwrap_or(s.cfg.batch_size).max(1),
        cfg,
        base: s.base()?,
        data,
        step_rows: Vec::new(),
        n: 0.0,
    })))
}

impl KlToBase {
    pub const NAME: &'static str = "kl";

    /// The positions the KL is taken over.
    pub fn mask<'a>(&self, mb: &'a MicroBatch) -> &'a Tensor {
        match self.cfg.on {
            KlOn::Response => &mb.loss_mask,
            KlOn::All => &mb.valid_mask,
        }
    }

    /// Σ KL over the masked positions of a micro-batch, given the model's logits.
    pub fn sum(&self, logits: &Tensor, mb: &MicroBatch) -> Result<Tensor, TrainError> {
        let base_logits = crate::train::forward_logits(&self.base.decoder, mb)?;
        Ok(masked_kl_sum(
            logits,
            &base_logits,
            self.mask(mb),
            self.cfg.direction,
        )?)
    }
}

impl Regularizer for KlToBase {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn begin_step(&mut self, step: usize, micro: &[MicroBatch]) -> Result<(), TrainError> {
        self.step_rows = if self.data.is_empty() {
            Vec::new()
        } else {
            let len = self.data.len();
            (0..micro.len())
                .map(|m| {
                    let start = (step * micro.len() + m) * self.rows;
                    let exs: Vec<&Example> = (0..self.rows)
                        .map(|i| &self.data[(start + i) % len])
                        .collect();
                    MicroBatch::padded(&exs, self.base.device())
                })
                .collect::<Result<_, _>>()?
        };
        let rows = if self.step_rows.is_empty() {
            micro
        } else {
            &self.step_rows
        };
        self.n = rows
            .iter()
            .map(|m| self.mask(m).sum_all().and_then(|s| s.to_scalar::<f32>()))
            .sum::<Result<f32, _>>()? as f64;
        Ok(())
    }

    fn wants_batch_logits(&self) -> bool {
        self.data.is_empty()
    }

    fn micro_term(
        &self,
        decoder: &Decoder,
        i: usize,
        mb: &MicroBatch,
        logits: Option<&Tensor>,
    ) -> Result<Option<Tensor>, TrainError> {
        let sum = match (self.step_rows.get(i), logits) {
            (Some(rows), _) => self.sum(&crate::train::forward_logits(decoder, rows)?, rows)?,
            (None, Some(logits)) => self.sum(logits, mb)?,
            (None, None) => {
                return Err(TrainError::Data(
                    "internal: the KL on the batch needs its logits".into(),
                ))
            }
        };
        Ok(Some((sum * (self.cfg.beta / self.n.max(1.0)))?))
    }
}

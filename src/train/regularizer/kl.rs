//! KL toward the base model's next-token distributions (a frozen copy), on response tokens or
//! on every token, in either direction; β times the mean per-token KL over the accumulation
//! window.

use candle_core::Tensor;

use crate::model::Model;
use crate::train::batch::MicroBatch;
use crate::train::config::{KlConfig, KlOn};
use crate::train::loss::masked_kl_sum;
use crate::train::TrainError;

pub struct KlToBase {
    pub cfg: KlConfig,
    /// the base, loaded as plain tensors
    pub base: Model,
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

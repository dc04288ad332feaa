//! Regularizers that pull a fine-tune back toward its base, one per file behind
//! [`Regularizer`], built from the settings through one table ([`REGISTRY`]). Each adds its
//! term to the objective and reports it under its own name in the step log and the run card.
//!
//! A regularizer acts at one or both of two points of an optimizer step: per micro-batch (it
//! may see the batch's logits, or run the model on rows of its own: the KL to the base) and
//! once on the weights (L2-SP, EWC). Terms are added in registry order, so a run's arithmetic
//! does not depend on how the settings were written.

mod ewc;
mod kl;
mod l2sp;

use std::collections::BTreeMap;
use std::sync::Arc;

use candle_core::{Device, Tensor, Var};

pub use ewc::{Ewc, Fisher};
pub use kl::KlToBase;
pub use l2sp::L2Sp;

use super::batch::MicroBatch;
use super::encode::Encoder;
use super::{TrainConfig, TrainError};
use crate::model::{Decoder, LoadOptions, Model};

/// One regularizer of a run, set up from its settings.
pub trait Regularizer {
    /// The key of its term in `log.jsonl` (`terms`) and the run card.
    fn name(&self) -> &'static str;
    /// Called before the micro-batches of optimizer step `step` (0-based), e.g. to pick rows
    /// of its own data.
    fn begin_step(&mut self, _step: usize, _micro: &[MicroBatch]) -> Result<(), TrainError> {
        Ok(())
    }
    /// Whether [`Regularizer::micro_term`] needs the full logits of the training batch.
    fn wants_batch_logits(&self) -> bool {
        false
    }
    /// Its differentiable term for micro-batch `i` of the step, already weighted, given the
    /// batch's logits when [`Regularizer::wants_batch_logits`].
    fn micro_term(
        &self,
        _decoder: &Decoder,
        _i: usize,
        _mb: &MicroBatch,
        _logits: Option<&Tensor>,
    ) -> Result<Option<Tensor>, TrainError> {
        Ok(None)
    }
    /// Its differentiable term on the trainable weights, once per step, already weighted.
    fn weight_term(&self, _vars: &BTreeMap<String, Var>) -> Result<Option<Tensor>, TrainError> {
        Ok(None)
    }
}

/// What a regularizer may need to set itself up.
pub struct Setup<'a> {
    pub cfg: &'a TrainConfig,
    pub model: &'a Model,
    /// the trainable variables (LoRA adapters when LoRA is on)
    pub vars: &'a BTreeMap<String, Var>,
    pub encoder: Encoder<'a>,
    /// where cached statistics of the base live (the EWC Fisher)
    pub cache_dir: &'a std::path::Path,
    base: &'a mut Option<Arc<Model>>,
}

impl<'a> Setup<'a> {
    pub fn new(
        cfg: &'a TrainConfig,
        model: &'a Model,
        vars: &'a BTreeMap<String, Var>,
        cache_dir: &'a std::path::Path,
        base: &'a mut Option<Arc<Model>>,
    ) -> Setup<'a> {
        Setup {
            cfg,
            model,
            vars,
            encoder: Encoder {
                tokenizer: &model.tokenizer,
                template: model.chat_template.as_ref(),
                max_length: cfg.max_length,
                policy: cfg.chat_template,
            },
            cache_dir,
            base,
        }
    }

    pub fn device(&self) -> &Device {
        self.model.device()
    }

    /// The frozen base model, loaded once for every part of the run that needs it.
    pub fn base(&mut self) -> Result<Arc<Model>, TrainError> {
        load_base(self.cfg, self.model.device(), self.base)
    }
}

/// The frozen base, loaded into `slot` on first use.
pub(crate) fn load_base(
    cfg: &TrainConfig,
    device: &Device,
    slot: &mut Option<Arc<Model>>,
) -> Result<Arc<Model>, TrainError> {
    if let Some(b) = slot {
        return Ok(b.clone());
    }
    let b = Arc::new(Model::load(
        &cfg.model,
        &LoadOptions {
            device: device.clone(),
            ..Default::default()
        },
    )?);
    *slot = Some(b.clone());
    Ok(b)
}

type Build = fn(&mut Setup) -> Result<Option<Box<dyn Regularizer>>, TrainError>;

/// Every regularizer, in the order its terms are added: (settings key, builder; `None` when
/// the settings leave it off).
pub const REGISTRY: &[(&str, Build)] = &[
    (KlToBase::NAME, kl::build),
    (L2Sp::NAME, l2sp::build),
    (Ewc::NAME, ewc::build),
];

/// The regularizers the settings turn on.
pub fn build_all(setup: &mut Setup) -> Result<Vec<Box<dyn Regularizer>>, TrainError> {
    let mut out = Vec::new();
    for (_, build) in REGISTRY {
        if let Some(r) = build(setup)? {
            out.push(r);
        }
    }
    Ok(out)
}

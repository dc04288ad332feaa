//! One optimizer step: the micro-batches' token-weighted NLL, each regularizer's terms,
//! gradient accumulation, clipping, the schedule and AdamW.

use std::collections::BTreeMap;
use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::DType;

use super::batch::MicroBatch;
use super::forward::{accumulate, forward_logits, nll_sum};
use super::optim::{self, clip_grad_norm};
use super::run::Run;
use super::{loss, schedule, StepRecord, TrainError};

impl Run<'_> {
    /// One optimizer step; returns its record.
    pub(crate) fn step(&mut self, step: usize, t0: Instant) -> Result<StepRecord, TrainError> {
        let micro: Vec<MicroBatch> = self.plan[step]
            .iter()
            .map(|r| self.batch_of(r))
            .collect::<Result<_, _>>()?;
        let n: usize = micro.iter().map(|m| m.n_supervised).sum();
        for r in &mut self.regularizers {
            r.begin_step(step, &micro)?;
        }
        let wants_logits = self.regularizers.iter().any(|r| r.wants_batch_logits());
        let mut grads: Option<GradStore> = None;
        let mut nll = 0f64;
        let mut terms: BTreeMap<String, f64> = BTreeMap::new();
        let dec = &self.model.decoder;
        for (i, mb) in micro.iter().enumerate() {
            // a regularizer on the batch itself needs its logits; otherwise only the
            // supervised positions go through the head
            let (sum, logits) = if wants_logits {
                let logits = forward_logits(dec, mb)?;
                let sum = loss::masked_nll_sum(&logits, &mb.targets, &mb.loss_mask)?;
                (sum, Some(logits))
            } else {
                (nll_sum(dec, mb)?, None)
            };
            nll += sum.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            let mut obj = (sum / n.max(1) as f64)?;
            for r in &self.regularizers {
                if let Some(t) = r.micro_term(dec, i, mb, logits.as_ref())? {
                    *terms.entry(r.name().to_string()).or_default() +=
                        t.to_dtype(DType::F64)?.to_scalar::<f64>()?;
                    obj = (obj + t)?;
                }
            }
            accumulate(&mut grads, obj.backward()?, &self.vars)?;
        }
        let loss = nll / n.max(1) as f64;
        for r in &self.regularizers {
            if let Some(p) = r.weight_term(&self.vars)? {
                terms.insert(
                    r.name().to_string(),
                    p.to_dtype(DType::F64)?.to_scalar::<f64>()?,
                );
                accumulate(&mut grads, p.backward()?, &self.vars)?;
            }
        }
        let total = loss + terms.values().sum::<f64>();
        if !total.is_finite() {
            return Err(TrainError::NonFinite {
                step: step + 1,
                value: total,
            });
        }
        let mut grads = grads.expect("every step has a micro-batch");
        let grad_norm = if self.cfg.max_grad_norm > 0.0 {
            clip_grad_norm(&mut grads, &self.vars, self.cfg.max_grad_norm)?
        } else {
            optim::grad_norm(&grads, &self.vars)?
        };
        if !grad_norm.is_finite() {
            return Err(TrainError::NonFinite {
                step: step + 1,
                value: grad_norm,
            });
        }
        let lr = schedule::lr_at(
            self.cfg.schedule,
            self.cfg.lr,
            step,
            self.cfg.warmup_steps,
            self.plan.len(),
        );
        self.opt.step(&grads, lr)?;
        self.state.step = step + 1;
        self.state.tokens_seen += micro.iter().map(|m| m.n_tokens).sum::<usize>();
        let secs = t0.elapsed().as_secs_f64().max(1e-9);
        Ok(StepRecord {
            step: step + 1,
            loss,
            terms,
            lr,
            grad_norm,
            tokens: n,
            tokens_seen: self.state.tokens_seen,
            tokens_per_s: micro.iter().map(|m| m.n_tokens).sum::<usize>() as f64 / secs,
        })
    }
}

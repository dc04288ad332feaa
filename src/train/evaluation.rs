//! Evaluation during a run: held-out task loss, the probe KL (forgetting budget), which
//! checkpoint is best, and when to stop early.

use super::config::EvalConfig;
use super::forward::{mean_loss, probe_kl};
use super::run::Run;
use super::watch::WatchRecord;
use super::{EvalRecord, TrainError};

/// What one evaluation decided.
pub(crate) struct EvalOutcome {
    /// the line it adds to `log.jsonl`
    pub log_line: serde_json::Value,
    /// `best/` was written from the current weights
    pub best_written: bool,
    /// why the run stops here, if it does
    pub stop: Option<String>,
}

impl Run<'_> {
    /// Evaluate after optimizer step `step`.
    pub(crate) fn evaluate_at(
        &mut self,
        step: usize,
        e: &EvalConfig,
    ) -> Result<EvalOutcome, TrainError> {
        // an untracked view of the weights: no autograd graph for a forward-only pass
        let decoder = self.model.decoder.detached();
        let eval_loss = if self.data.eval.is_empty() {
            None
        } else {
            Some(mean_loss(
                &decoder,
                &self.data.eval,
                self.cfg.batch_size,
                self.model.device(),
            )?)
        };
        let probe = match &self.base {
            Some(b) if !self.probes.is_empty() => Some(probe_kl(
                &decoder,
                &b.decoder,
                &self.probes,
                self.model.device(),
            )?),
            _ => None,
        };
        let over_budget = matches!((probe, e.max_kl), (Some(p), Some(m)) if p > m);
        let improved = !over_budget
            && match (eval_loss, self.state.best_eval) {
                (Some(l), Some(b)) => l < b - e.min_delta,
                (Some(_), None) => true,
                (None, _) => true,
            };
        // with a capability watch, the watch chooses `best/`; the held-out loss still stops
        let best_written = improved && self.watch.is_none();
        if improved {
            self.state.best_eval = eval_loss.or(self.state.best_eval);
            self.state.bad_evals = 0;
            if best_written {
                let best = self.dir.join("best");
                self.export(&best)?;
            }
        } else {
            self.state.bad_evals += 1;
        }
        self.observer.eval(&EvalRecord {
            step,
            eval_loss,
            probe_kl: probe,
            improved,
        });
        let stop = if over_budget {
            Some(format!(
                "forgetting budget: probe KL {:.4} > {:.4} at step {step}",
                probe.unwrap_or(0.0),
                e.max_kl.unwrap_or(0.0)
            ))
        } else if e.patience > 0 && self.state.bad_evals >= e.patience {
            Some(format!(
                "early stopping: no eval improvement in {} evaluations (step {step})",
                e.patience
            ))
        } else {
            None
        };
        Ok(EvalOutcome {
            log_line: serde_json::json!({"step": step, "eval_loss": eval_loss, "probe_kl": probe}),
            best_written,
            stop,
        })
    }

    /// Watch the capability suites after optimizer step `step`: score, judge, keep `best/`,
    /// and say why the run stops, if it does.
    pub(crate) fn watch_at(
        &mut self,
        step: usize,
    ) -> Result<(WatchRecord, Option<String>), TrainError> {
        let w = self.watch.as_ref().expect("a watch is set up");
        let patience = w.cfg.patience;
        // scored through an untracked view of the weights being trained (no autograd graph)
        let untracked = self.model.decoder.detached();
        let trained = std::mem::replace(&mut self.model.decoder, untracked);
        let scored = w.score(&self.model, step);
        self.model.decoder = trained;
        let mut rec = scored?;
        let d = self.state.watch.observe(rec.passed, rec.new_task, patience);
        rec.best = d.best;
        rec.failed_in_row = self.state.watch.failed_in_row;
        if d.best {
            self.export(&self.dir.join("best"))?;
            self.state.best_watch_step = Some(step);
        }
        self.timing.0 += 1;
        self.timing.1 += rec.seconds;
        self.observer.watch(&rec);
        let stop = d.stop.then(|| {
            format!(
                "capability watch: the watched suites failed the policy in {} watches in a row (step {step})",
                rec.failed_in_row
            )
        });
        Ok((rec, stop))
    }
}

//! How a training run reports progress. Call order: `start` once, then `step` after every
//! optimizer step with `eval` after evaluation steps, `note` at any time, and `end` always last
//! (also after an error).

use serde::Serialize;

/// One line of the run's `log.jsonl`.
#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    pub step: usize,
    /// Σ token NLL over the accumulation window / supervised tokens in it
    pub loss: f64,
    /// each regularizer's term as added to the loss
    pub terms: std::collections::BTreeMap<String, f64>,
    pub lr: f64,
    /// before clipping
    pub grad_norm: f64,
    /// supervised tokens in this step
    pub tokens: usize,
    /// all tokens seen so far
    pub tokens_seen: usize,
    pub tokens_per_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct EvalRecord {
    pub step: usize,
    pub eval_loss: Option<f64>,
    pub probe_kl: Option<f64>,
    pub improved: bool,
}

pub trait TrainObserver {
    fn start(&mut self, _total_steps: usize, _first_step: usize) {}
    fn step(&mut self, _r: &StepRecord) {}
    fn eval(&mut self, _r: &EvalRecord) {}
    /// after each capability watch (`--watch`)
    fn watch(&mut self, _r: &super::watch::WatchRecord) {}
    fn note(&mut self, _message: &str) {}
    fn end(&mut self) {}
}

/// Reports nothing.
pub struct Silent;
impl TrainObserver for Silent {}

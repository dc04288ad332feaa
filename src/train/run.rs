//! A run set up from its settings (model, adapters, data, plan, optimizer, regularizers) and
//! its loop: step, log, evaluate, checkpoint, export.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use candle_core::Var;

use super::batch::{Example, MicroBatch};
use super::checkpoint::TrainerState;
use super::data::{load_data, Data};
use super::encode::Encoder;
use super::optim::AdamW;
use super::regularizer::{self, Regularizer, Setup};
use super::sampler::{self, plan, PlanConfig, Ref};
use super::watch::Watch;
use super::{io, lora, RunSummary, TrainConfig, TrainError, TrainObserver, WatchSummary};
use crate::data::read_jsonl;
use crate::model::checkpoint::write_json;
use crate::model::{LoadOptions, Model, ModelError};

/// A training run: model, data, plan, optimizer and regularizers.
pub(crate) struct Run<'o> {
    pub cfg: TrainConfig,
    pub dir: PathBuf,
    pub model: Model,
    pub vars: BTreeMap<String, Var>,
    pub data: Data,
    pub plan: sampler::Plan,
    pub opt: AdamW,
    pub regularizers: Vec<Box<dyn Regularizer>>,
    pub probes: Vec<Example>,
    /// the frozen base, when anything needs it (KL, probes)
    pub base: Option<Arc<Model>>,
    pub state: TrainerState,
    pub observer: &'o mut dyn TrainObserver,
    /// the capability watch, when on
    pub watch: Option<Watch>,
    /// (watches, seconds watching, seconds in optimizer steps) in this invocation
    pub timing: (usize, f64, f64),
}

impl<'o> Run<'o> {
    pub fn new(
        cfg: TrainConfig,
        dir: &Path,
        observer: &'o mut dyn TrainObserver,
    ) -> Result<Run<'o>, TrainError> {
        let lora = cfg.lora.is_some();
        let opts = LoadOptions {
            device: cfg.device.open().map_err(ModelError::from)?,
            trainable: !lora,
            frozen: (!cfg.freeze.is_empty()).then(|| cfg.freeze.clone()),
            ..Default::default()
        };
        let mut model = Model::load(&cfg.model, &opts)?;
        let layers = model.config().num_layers;
        if cfg.freeze.first_layers > layers {
            return Err(TrainError::Config(format!(
                "freeze_layers = {} but {} has {layers} layers",
                cfg.freeze.first_layers,
                cfg.model.display()
            )));
        }
        let device = model.device().clone();
        let vars = match &cfg.lora {
            Some(l) => {
                let init = match &l.init {
                    Some(p) => Some(
                        candle_core::safetensors::load(p, &device)
                            .map_err(|e| TrainError::Config(format!("{}: {e}", p.display())))?
                            .into_iter()
                            .collect(),
                    ),
                    None => None,
                };
                lora::attach(&mut model.decoder, l, cfg.seed, init.as_ref(), &device)?
            }
            None => model.params.vars().clone(),
        };
        if vars.is_empty() {
            return Err(TrainError::Config(
                "every weight is frozen: nothing to train".into(),
            ));
        }
        let data = load_data(&cfg, &model)?;
        observer.note(&format!(
            "{} training {} ({} {} with no trainable token, {} truncated), {} replay, {} eval",
            data.train.len(),
            if cfg.packing { "rows" } else { "examples" },
            data.dropped,
            if cfg.packing { "packed" } else { "dropped" },
            data.truncated,
            data.replay.len(),
            data.eval.len()
        ));
        let plan_cfg = PlanConfig {
            batch_size: cfg.batch_size,
            grad_accum: cfg.grad_accum,
            epochs: cfg.epochs,
            max_steps: cfg.max_steps,
            shuffle: cfg.shuffle,
            seed: cfg.seed,
            replay_ratio: cfg.replay.as_ref().map_or(0.0, |r| r.ratio),
            replay_by_tokens: cfg.replay.as_ref().is_some_and(|r| r.by_tokens),
            task_weights: cfg.task_weights.clone(),
        };
        let plan = plan(&plan_cfg, &data.train, &data.replay);
        let opt = AdamW::new(&vars, cfg.adam)?;
        let watch = match &cfg.watch {
            Some(w) => {
                observer.note(&format!(
                    "capability watch: scoring the base on {} (cached after the first run)",
                    w.suites.join(", ")
                ));
                Some(Watch::setup(&cfg, w)?)
            }
            None => None,
        };
        let mut base = None;
        let regularizers = regularizer::build_all(&mut Setup::new(
            &cfg,
            &model,
            &vars,
            &cfg.cache_dir,
            &mut base,
        ))?;
        let probes = match cfg.eval.as_ref().and_then(|e| e.probe.as_ref()) {
            Some(p) => {
                regularizer::load_base(&cfg, &device, &mut base)?;
                let enc = Encoder {
                    tokenizer: &model.tokenizer,
                    template: model.chat_template.as_ref(),
                    max_length: cfg.max_length,
                    policy: cfg.chat_template,
                };
                enc.encode_all(&read_jsonl(p)?, false)?.examples
            }
            None => Vec::new(),
        };
        Ok(Run {
            cfg,
            dir: dir.to_path_buf(),
            model,
            vars,
            data,
            plan,
            opt,
            regularizers,
            probes,
            base,
            state: TrainerState::default(),
            observer,
            watch,
            timing: (0, 0.0, 0.0),
        })
    }

    pub fn batch_of(&self, refs: &[Ref]) -> Result<MicroBatch, TrainError> {
        let exs: Vec<&Example> = refs
            .iter()
            .map(|r| {
                if r.replay {
                    &self.data.replay[r.idx as usize]
                } else {
                    &self.data.train[r.idx as usize]
                }
            })
            .collect();
        Ok(MicroBatch::padded(&exs, self.model.device())?)
    }

    pub fn go(mut self) -> Result<RunSummary, TrainError> {
        let total = self.plan.len();
        self.observer.start(total, self.state.step);
        let log_path = self.dir.join("log.jsonl");
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io(&log_path))?;
        let mut stopped = None;
        let mut last_loss = None;
        let mut best_dir = self
            .dir
            .join("best")
            .exists()
            .then(|| self.dir.join("best"));
        while self.state.step < total {
            let t0 = Instant::now();
            let rec = self.step(self.state.step, t0)?;
            self.timing.2 += t0.elapsed().as_secs_f64();
            last_loss = Some(rec.loss);
            let mut line = serde_json::to_string(&rec).expect("record serialises");
            line.push('\n');
            log.write_all(line.as_bytes()).map_err(io(&log_path))?;
            self.observer.step(&rec);
            let step = self.state.step;
            if let Some(e) = self.cfg.eval.clone() {
                if step.is_multiple_of(e.every) || step == total {
                    let outcome = self.evaluate_at(step, &e)?;
                    let mut line = serde_json::to_string(&outcome.log_line).unwrap();
                    line.push('\n');
                    log.write_all(line.as_bytes()).map_err(io(&log_path))?;
                    if outcome.best_written {
                        best_dir = Some(self.dir.join("best"));
                    }
                    stopped = outcome.stop;
                }
            }
            if let Some(every) = self.watch.as_ref().map(|w| w.cfg.every) {
                if stopped.is_none() && (step.is_multiple_of(every) || step == total) {
                    let (rec, stop) = self.watch_at(step)?;
                    let mut line =
                        serde_json::to_string(&serde_json::json!({"step": step, "watch": rec}))
                            .expect("record serialises");
                    line.push('\n');
                    log.write_all(line.as_bytes()).map_err(io(&log_path))?;
                    if rec.best {
                        best_dir = Some(self.dir.join("best"));
                    }
                    stopped = stop;
                }
            }
            if self.cfg.checkpoint_every > 0
                && step.is_multiple_of(self.cfg.checkpoint_every)
                && step < total
                && stopped.is_none()
            {
                log.flush().map_err(io(&log_path))?;
                self.checkpoint()?;
            }
            if stopped.is_some() {
                break;
            }
        }
        if let Some(s) = &stopped {
            self.observer.note(s);
        }
        let final_dir = self.dir.join("final");
        self.export(&final_dir)?;
        let summary = RunSummary {
            steps: self.state.step,
            stopped_early: stopped,
            final_dir,
            best_dir,
            examples: self.data.train.len(),
            dropped: self.data.dropped,
            truncated: self.data.truncated,
            trainable_parameters: self.vars.values().map(|v| v.elem_count()).sum(),
            last_loss,
            watch: self.watch.as_ref().map(|_| WatchSummary {
                watches: self.timing.0,
                seconds: self.timing.1,
                train_seconds: self.timing.2,
                best_step: self.state.best_watch_step,
                best_new_task: self.state.watch.best.filter(|b| b.is_finite()),
            }),
        };
        write_json(
            &self.dir.join("summary.json"),
            &serde_json::to_value(&summary).expect("summary serialises"),
        )?;
        Ok(summary)
    }
}

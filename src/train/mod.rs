//! Supervised fine-tuning with every known way to forget less.
//!
//! [`train`] runs a [`TrainConfig`] in a run directory:
//! `config.json` (resolved settings), `log.jsonl` (one [`StepRecord`] per step),
//! `checkpoints/step-NNNNNN/` (an HF checkpoint plus exact optimizer state, written atomically),
//! `best/` (with evaluation) and `final/` (HF checkpoint, or PEFT adapter).
//! A killed run resumes from its last checkpoint with bit-identical losses on CPU.

pub mod batch;
pub mod config;
pub mod encode;
pub mod lora;
pub mod loss;
pub mod observer;
pub mod optim;
pub mod regularizer;
pub mod sampler;
pub mod schedule;
pub mod settings;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};

pub use config::TrainConfig;
pub use observer::{EvalRecord, StepRecord, TrainObserver};

use crate::data::{read_jsonl, DataError};
use crate::model::checkpoint::{write_json, write_safetensors, AtomicDir};
use crate::model::{Decoder, LoadOptions, Model, ModelError};
use batch::{Example, MicroBatch};
use encode::Encoder;
use optim::{clip_grad_norm, AdamW};
use regularizer::{KlToBase, L2Sp};
use sampler::{plan, PlanConfig, Ref};

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    DataFile(#[from] DataError),
    #[error("{0}")]
    Data(String),
    #[error("invalid training settings: {0}")]
    Config(String),
    #[error("cannot resume: {0}")]
    Resume(String),
    #[error("loss became {value} at step {step}; stopped (the last good checkpoint is kept)")]
    NonFinite { step: usize, value: f64 },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Candle(#[from] candle_core::Error),
}

impl From<crate::model::tokenizer::TokenizerError> for TrainError {
    fn from(e: crate::model::tokenizer::TokenizerError) -> Self {
        TrainError::Model(e.into())
    }
}
impl From<crate::model::chat_template::ChatTemplateError> for TrainError {
    fn from(e: crate::model::chat_template::ChatTemplateError) -> Self {
        TrainError::Model(e.into())
    }
}

impl TrainError {
    pub fn hint(&self) -> Option<String> {
        match self {
            TrainError::Model(e) => e.hint(),
            TrainError::DataFile(e) => e.hint(),
            TrainError::NonFinite { .. } => {
                Some("lower the learning rate, or check the data for empty or huge examples".into())
            }
            TrainError::Resume(_) => {
                Some("resume with the same run directory the run was started in".into())
            }
            _ => None,
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What a finished run produced.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunSummary {
    pub steps: usize,
    pub stopped_early: Option<String>,
    pub final_dir: PathBuf,
    pub best_dir: Option<PathBuf>,
    pub examples: usize,
    pub dropped: usize,
    pub truncated: usize,
    pub trainable_parameters: usize,
    pub last_loss: Option<f64>,
}

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
fn accumulate(
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

struct Data {
    train: Vec<Example>,
    replay: Vec<Example>,
    /// broad text the KL is measured on (`kl.data`)
    kl: Vec<Example>,
    eval: Vec<Example>,
    dropped: usize,
    truncated: usize,
}

fn load_data(cfg: &TrainConfig, model: &Model) -> Result<Data, TrainError> {
    let enc = Encoder {
        tokenizer: &model.tokenizer,
        template: model.chat_template.as_ref(),
        max_length: cfg.max_length,
        policy: cfg.chat_template,
    };
    let samples = read_jsonl(&cfg.data)?;
    // packing places examples without a target too, as TRL does (same rows, same batches)
    let mut encoded = enc.encode_all_with(&samples, false, cfg.packing)?;
    let (dropped, truncated) = (encoded.dropped.len(), encoded.truncated.len());
    let mut eval = Vec::new();
    if let Some(e) = &cfg.eval {
        if let Some(p) = &e.path {
            eval = enc.encode_all(&read_jsonl(p)?, false)?.examples;
        } else if e.split > 0.0 {
            let k = ((encoded.examples.len() as f64) * e.split).round().max(1.0) as usize;
            if k >= encoded.examples.len() {
                return Err(TrainError::Config(format!(
                    "eval split {} leaves no training data",
                    e.split
                )));
            }
            // every n-th example, deterministic and spread over the file
            let stride = encoded.examples.len() / k;
            let mut keep = Vec::new();
            for (i, ex) in encoded.examples.drain(..).enumerate() {
                if i % stride == stride - 1 && eval.len() < k {
                    eval.push(ex);
                } else {
                    keep.push(ex);
                }
            }
            encoded.examples = keep;
        }
    }
    let replay = match &cfg.replay {
        Some(r) => {
            let samples = read_jsonl(&r.path)?;
            enc.encode_all(&samples, true)?.examples
        }
        None => Vec::new(),
    };
    let (train, replay) = if cfg.packing {
        (
            batch::pack_bfd(&encoded.examples, cfg.max_length),
            batch::pack_bfd(&replay, cfg.max_length),
        )
    } else {
        (encoded.examples, replay)
    };
    let kl = match cfg.kl.as_ref().and_then(|k| k.data.as_ref()) {
        Some(p) => {
            let ex = enc.encode_all(&read_jsonl(p)?, true)?.examples;
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
    if train.iter().all(|e| e.n_supervised() == 0) {
        return Err(TrainError::Data(format!(
            "{}: no example has a trainable token within max_length {} ({dropped} dropped)",
            cfg.data.display(),
            cfg.max_length
        )));
    }
    Ok(Data {
        train,
        replay,
        kl,
        eval,
        dropped,
        truncated,
    })
}

/// Mean token NLL on examples (eval split), and mean per-token KL(base ‖ model) on probes.
fn mean_loss(
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

fn probe_kl(
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

/// Saved trainer state beside each checkpoint.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct TrainerState {
    step: usize,
    tokens_seen: usize,
    best_eval: Option<f64>,
    bad_evals: usize,
}

const STATE_FILE: &str = "trainer_state.json";
const TENSORS_FILE: &str = "trainer_state.safetensors";

fn checkpoint_dirs(run: &Path) -> Vec<(usize, PathBuf)> {
    let mut v: Vec<(usize, PathBuf)> = std::fs::read_dir(run.join("checkpoints"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let step = name.strip_prefix("step-")?.parse().ok()?;
            e.path()
                .join(STATE_FILE)
                .exists()
                .then_some((step, e.path()))
        })
        .collect();
    v.sort();
    v
}

/// A training run: model, data, plan, optimizer and regularizers.
struct Run<'o> {
    cfg: TrainConfig,
    dir: PathBuf,
    model: Model,
    vars: BTreeMap<String, Var>,
    data: Data,
    plan: sampler::Plan,
    opt: AdamW,
    l2sp: Option<L2Sp>,
    kl: Option<KlToBase>,
    probes: Vec<Example>,
    base_for_probe: Option<Model>,
    state: TrainerState,
    observer: &'o mut dyn TrainObserver,
}

/// Train `cfg` in `run_dir`. With `resume`, continue from the newest checkpoint there (the
/// settings are read from the run's `config.json`).
pub fn train(
    cfg: TrainConfig,
    run_dir: &Path,
    resume: bool,
    observer: &mut dyn TrainObserver,
) -> Result<RunSummary, TrainError> {
    observer.start(0, 0);
    let result = train_inner(cfg, run_dir, resume, observer);
    observer.end();
    result
}

fn train_inner(
    cfg: TrainConfig,
    run_dir: &Path,
    resume: bool,
    observer: &mut dyn TrainObserver,
) -> Result<RunSummary, TrainError> {
    let config_path = run_dir.join("config.json");
    let cfg = if resume {
        let saved = settings::saved_config(run_dir)?;
        // the machine may have changed: the resuming invocation says where to run
        let asked = TrainConfig {
            device: saved.device,
            ..cfg
        };
        let differences = settings::differences(&saved, &asked);
        if !differences.is_empty() {
            return Err(TrainError::Resume(format!(
                "the settings differ from the run's {}: {}; resume with the run's settings (give only --resume and --out), or start a new run",
                config_path.display(),
                differences.join(", ")
            )));
        }
        TrainConfig {
            device: cfg.device,
            ..saved
        }
    } else {
        if config_path.exists() {
            return Err(TrainError::Config(format!(
                "{} already holds a run; pass --resume to continue it, or choose another --out",
                run_dir.display()
            )));
        }
        cfg
    };
    settings::validate(&cfg)?;
    // a device that cannot open fails before the run directory holds anything
    cfg.device.open().map_err(ModelError::from)?;
    let created = !run_dir.exists();
    std::fs::create_dir_all(run_dir).map_err(io(run_dir))?;
    if !resume {
        let tmp = run_dir.join(".config.json.tmp");
        write_json(
            &tmp,
            &serde_json::to_value(&cfg).expect("config serialises"),
        )?;
        std::fs::rename(&tmp, &config_path).map_err(io(&config_path))?;
    }
    let mut run = match Run::new(cfg, run_dir, observer) {
        Ok(r) => r,
        Err(e) => {
            // a run that never started leaves nothing behind (a bad model, data, or setting
            // only the loaded model can check)
            if !resume {
                let _ = std::fs::remove_file(&config_path);
                if created {
                    let _ = std::fs::remove_dir_all(run_dir);
                }
            }
            return Err(e);
        }
    };
    if resume {
        run.restore()?;
    }
    run.go()
}

impl<'o> Run<'o> {
    fn new(
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
        let l2sp = if cfg.l2sp > 0.0 {
            let mut reference = BTreeMap::new();
            for (name, var) in &vars {
                let t0 = if lora {
                    var.as_tensor().copy()?.detach()
                } else {
                    model
                        .params
                        .files
                        .load(name, &device)?
                        .to_dtype(DType::F32)?
                };
                reference.insert(name.clone(), t0);
            }
            Some(L2Sp::new(cfg.l2sp, reference))
        } else {
            None
        };
        let needs_base = cfg.kl.is_some() || cfg.eval.as_ref().is_some_and(|e| e.probe.is_some());
        let base = if needs_base {
            Some(Model::load(
                &cfg.model,
                &LoadOptions {
                    device: device.clone(),
                    ..Default::default()
                },
            )?)
        } else {
            None
        };
        let probes = match cfg.eval.as_ref().and_then(|e| e.probe.as_ref()) {
            Some(p) => {
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
        let (kl, base_for_probe) = match (&cfg.kl, base) {
            (Some(k), Some(b)) => (
                Some(KlToBase {
                    cfg: k.clone(),
                    base: b,
                }),
                None,
            ),
            (None, b) => (None, b),
            (Some(_), None) => unreachable!("base loaded when KL is on"),
        };
        Ok(Run {
            cfg,
            dir: dir.to_path_buf(),
            model,
            vars,
            data,
            plan,
            opt,
            l2sp,
            kl,
            probes,
            base_for_probe,
            state: TrainerState::default(),
            observer,
        })
    }

    fn batch_of(&self, refs: &[Ref]) -> Result<MicroBatch, TrainError> {
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

    /// One optimizer step; returns its record.
    fn step(&mut self, step: usize, t0: Instant) -> Result<StepRecord, TrainError> {
        let micro: Vec<MicroBatch> = self.plan[step]
            .iter()
            .map(|r| self.batch_of(r))
            .collect::<Result<_, _>>()?;
        let n: usize = micro.iter().map(|m| m.n_supervised).sum();
        // KL on broad text: rows of `kl.data`, a fixed rotation through it by step
        let kl_micro: Vec<MicroBatch> = if self.data.kl.is_empty() {
            Vec::new()
        } else {
            let rows = self
                .kl
                .as_ref()
                .and_then(|k| k.cfg.data_rows)
                .unwrap_or(self.cfg.batch_size)
                .max(1);
            let len = self.data.kl.len();
            (0..micro.len())
                .map(|m| {
                    let start = (step * micro.len() + m) * rows;
                    let exs: Vec<&Example> = (0..rows)
                        .map(|i| &self.data.kl[(start + i) % len])
                        .collect();
                    MicroBatch::padded(&exs, self.model.device())
                })
                .collect::<Result<_, _>>()?
        };
        // the rows the KL is taken on: the broad-data rows when there are any, else the batch
        let kl_rows = if kl_micro.is_empty() {
            &micro
        } else {
            &kl_micro
        };
        let n_kl: f64 = match &self.kl {
            Some(k) => kl_rows
                .iter()
                .map(|m| k.mask(m).sum_all().and_then(|s| s.to_scalar::<f32>()))
                .sum::<Result<f32, _>>()? as f64,
            None => 0.0,
        };
        let mut grads: Option<GradStore> = None;
        let (mut nll, mut kl_total) = (0f64, 0f64);
        let dec = &self.model.decoder;
        for (i, mb) in micro.iter().enumerate() {
            // KL on the batch itself needs its logits; otherwise only the supervised positions
            // go through the head
            let kl_on_batch = self.kl.is_some() && kl_micro.get(i).is_none();
            let (sum, logits) = if kl_on_batch {
                let logits = forward_logits(dec, mb)?;
                let sum = loss::masked_nll_sum(&logits, &mb.targets, &mb.loss_mask)?;
                (sum, Some(logits))
            } else {
                (nll_sum(dec, mb)?, None)
            };
            nll += sum.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            let mut obj = (sum / n.max(1) as f64)?;
            if let Some(k) = &self.kl {
                let ks = match (kl_micro.get(i), &logits) {
                    (Some(kmb), _) => k.sum(&forward_logits(dec, kmb)?, kmb)?,
                    (None, Some(logits)) => k.sum(logits, mb)?,
                    (None, None) => unreachable!("logits are kept when the KL is on the batch"),
                };
                kl_total += ks.to_dtype(DType::F64)?.to_scalar::<f64>()?;
                obj = (obj + (ks * (k.cfg.beta / n_kl.max(1.0)))?)?;
            }
            accumulate(&mut grads, obj.backward()?, &self.vars)?;
        }
        let loss = nll / n.max(1) as f64;
        let mut terms = BTreeMap::new();
        if let Some(k) = &self.kl {
            terms.insert(
                KlToBase::NAME.to_string(),
                k.cfg.beta * kl_total / n_kl.max(1.0),
            );
        }
        if let Some(r) = &self.l2sp {
            let p = r.penalty(&self.vars)?;
            terms.insert(
                L2Sp::NAME.to_string(),
                p.to_dtype(DType::F64)?.to_scalar::<f64>()?,
            );
            accumulate(&mut grads, p.backward()?, &self.vars)?;
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

    fn go(mut self) -> Result<RunSummary, TrainError> {
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
            last_loss = Some(rec.loss);
            let mut line = serde_json::to_string(&rec).expect("record serialises");
            line.push('\n');
            log.write_all(line.as_bytes()).map_err(io(&log_path))?;
            self.observer.step(&rec);
            let step = self.state.step;
            if let Some(e) = self.cfg.eval.clone() {
                if step.is_multiple_of(e.every) || step == total {
                    let eval_loss = if self.data.eval.is_empty() {
                        None
                    } else {
                        Some(mean_loss(
                            &self.model.decoder,
                            &self.data.eval,
                            self.cfg.batch_size,
                            self.model.device(),
                        )?)
                    };
                    let base = self
                        .kl
                        .as_ref()
                        .map(|k| &k.base)
                        .or(self.base_for_probe.as_ref());
                    let probe = match base {
                        Some(b) if !self.probes.is_empty() => Some(probe_kl(
                            &self.model.decoder,
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
                    if improved {
                        self.state.best_eval = eval_loss.or(self.state.best_eval);
                        self.state.bad_evals = 0;
                        let best = self.dir.join("best");
                        self.export(&best)?;
                        best_dir = Some(best);
                    } else {
                        self.state.bad_evals += 1;
                    }
                    self.observer.eval(&EvalRecord {
                        step,
                        eval_loss,
                        probe_kl: probe,
                        improved,
                    });
                    let mut line = serde_json::to_string(&serde_json::json!({"step": step, "eval_loss": eval_loss, "probe_kl": probe})).unwrap();
                    line.push('\n');
                    log.write_all(line.as_bytes()).map_err(io(&log_path))?;
                    if over_budget {
                        stopped = Some(format!(
                            "forgetting budget: probe KL {:.4} > {:.4} at step {step}",
                            probe.unwrap_or(0.0),
                            e.max_kl.unwrap_or(0.0)
                        ));
                    } else if e.patience > 0 && self.state.bad_evals >= e.patience {
                        stopped = Some(format!(
                            "early stopping: no eval improvement in {} evaluations (step {step})",
                            e.patience
                        ));
                    }
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
        };
        write_json(
            &self.dir.join("summary.json"),
            &serde_json::to_value(&summary).expect("summary serialises"),
        )?;
        Ok(summary)
    }

    /// Write the current weights as a loadable checkpoint (merged LoRA or adapter) into `out`.
    fn export(&mut self, out: &Path) -> Result<(), TrainError> {
        let dir = AtomicDir::new(out)?;
        self.write_weights(dir.path())?;
        dir.commit(true)?;
        Ok(())
    }

    fn write_weights(&mut self, path: &Path) -> Result<(), TrainError> {
        match &self.cfg.lora {
            Some(l) if l.save == config::LoraSave::Adapter => {
                let gpt2 = self.model.arch.layout == crate::model::arch::WeightLayout::Gpt2;
                lora::write_adapter(path, &self.vars, l, &self.cfg.model, gpt2)?;
            }
            Some(_) => {
                let merged = lora::merged(&mut self.model.decoder)?;
                self.model.write_into(path, &merged)?;
            }
            None => self.model.write_into(path, &BTreeMap::new())?,
        }
        Ok(())
    }

    /// An HF checkpoint plus the exact state needed to resume, written atomically.
    fn checkpoint(&mut self) -> Result<(), TrainError> {
        let out = self
            .dir
            .join("checkpoints")
            .join(format!("step-{:06}", self.state.step));
        let dir = AtomicDir::new(&out)?;
        self.write_weights(dir.path())?;
        let (opt_step, mut tensors) = self.opt.state();
        for (name, v) in &self.vars {
            tensors.push((format!("param.{name}"), v.as_tensor().clone()));
        }
        write_safetensors(&dir.path().join(TENSORS_FILE), &tensors)?;
        let mut st = serde_json::to_value(&self.state).expect("state serialises");
        st["optimizer_step"] = opt_step.into();
        write_json(&dir.path().join(STATE_FILE), &st)?;
        dir.commit(true)?;
        for (_, old) in checkpoint_dirs(&self.dir)
            .iter()
            .rev()
            .skip(self.cfg.keep_checkpoints.max(1))
        {
            let _ = std::fs::remove_dir_all(old);
        }
        Ok(())
    }

    /// Load the newest checkpoint's exact state and cut the log back to it.
    fn restore(&mut self) -> Result<(), TrainError> {
        // a checkpoint being written when the run died is an incomplete hidden folder: drop it
        for e in std::fs::read_dir(self.dir.join("checkpoints"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if e.file_name().to_string_lossy().starts_with(".step-") {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        let Some((step, dir)) = checkpoint_dirs(&self.dir).pop() else {
            return Err(TrainError::Resume(format!(
                "{} has no checkpoint yet",
                self.dir.display()
            )));
        };
        let st_path = dir.join(STATE_FILE);
        let text = std::fs::read_to_string(&st_path).map_err(io(&st_path))?;
        let raw: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| TrainError::Resume(format!("{}: {e}", st_path.display())))?;
        self.state = serde_json::from_value(raw.clone())
            .map_err(|e| TrainError::Resume(format!("{}: {e}", st_path.display())))?;
        let tensors: HashMap<String, Tensor> =
            candle_core::safetensors::load(dir.join(TENSORS_FILE), self.model.device())?;
        for (name, v) in &self.vars {
            let t = tensors
                .get(&format!("param.{name}"))
                .ok_or_else(|| TrainError::Resume(format!("checkpoint lacks `{name}`")))?;
            v.set(t)?;
        }
        let opt_step = raw["optimizer_step"].as_u64().unwrap_or(step as u64) as usize;
        self.opt.load_state(opt_step, &tensors)?;
        // the log keeps only what happened up to the checkpoint
        let log_path = self.dir.join("log.jsonl");
        if let Ok(text) = std::fs::read_to_string(&log_path) {
            let kept: String = text
                .lines()
                .filter(|l| {
                    serde_json::from_str::<serde_json::Value>(l)
                        .ok()
                        .and_then(|v| v["step"].as_u64())
                        .is_some_and(|s| s as usize <= step)
                })
                .map(|l| format!("{l}\n"))
                .collect();
            std::fs::write(&log_path, kept).map_err(io(&log_path))?;
        }
        self.observer
            .note(&format!("resumed from {} (step {step})", dir.display()));
        Ok(())
    }
}

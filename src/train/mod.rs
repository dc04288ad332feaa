//! Supervised fine-tuning with every known way to forget less.
//!
//! [`train`] runs a [`TrainConfig`] in a run directory:
//! `config.json` (resolved settings), `log.jsonl` (one [`StepRecord`] per step),
//! `checkpoints/step-NNNNNN/` (an HF checkpoint plus exact optimizer state, written atomically),
//! `best/` (with evaluation) and `final/` (HF checkpoint, or PEFT adapter).
//! A killed run resumes from its last checkpoint with bit-identical losses on CPU.

pub mod batch;
mod checkpoint;
pub mod config;
mod data;
pub mod encode;
mod evaluation;
mod forward;
pub mod lora;
pub mod loss;
pub mod observer;
pub mod optim;
pub mod regularizer;
mod run;
pub mod sampler;
pub mod schedule;
pub mod settings;
mod step;
pub mod watch;

use std::path::{Path, PathBuf};

pub use config::TrainConfig;
pub use forward::{forward_hidden, forward_logits, nll_sum};
pub use observer::{EvalRecord, StepRecord, TrainObserver};

use crate::data::DataError;
use crate::model::checkpoint::write_json;
use crate::model::ModelError;
use run::Run;

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
    /// a watched suite that cannot be loaded or scored
    #[error(transparent)]
    Suite(Box<crate::suite::SuiteError>),
    /// a watch that cannot be judged (the policy, the pairing)
    #[error("capability watch: {0}")]
    Gate(Box<crate::gate::GateError>),
}

impl From<crate::suite::SuiteError> for TrainError {
    fn from(e: crate::suite::SuiteError) -> Self {
        TrainError::Suite(Box::new(e))
    }
}
impl From<crate::gate::GateError> for TrainError {
    fn from(e: crate::gate::GateError) -> Self {
        TrainError::Gate(Box::new(e))
    }
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
            TrainError::Suite(e) => e.hint(),
            TrainError::Gate(e) => e.hint(),
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
    /// with `--watch`: what the capability watch cost and chose
    pub watch: Option<WatchSummary>,
}

/// The capability watch of a finished run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WatchSummary {
    pub watches: usize,
    /// time spent scoring the watched suites (the base's scores not included)
    pub seconds: f64,
    /// time spent in optimizer steps
    pub train_seconds: f64,
    /// the step `best/` was taken at; `None`: no watch passed the policy
    pub best_step: Option<usize>,
    pub best_new_task: Option<f64>,
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

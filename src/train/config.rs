//! `TrainConfig`: every knob of a run, with defaults, saved as JSON into the run directory.
//! Each field is also a `sft-eval train` flag and a key of a `--config` TOML file.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::encode::TemplatePolicy;
use super::loss::KlDirection;
use super::optim::AdamWConfig;
use super::schedule::Schedule;
use crate::model::params::FreezeSpec;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// base checkpoint folder
    pub model: PathBuf,
    /// where the model (and the base model for KL) runs: `cpu`, `cuda` or `cuda:N`; on resume,
    /// the device of the resuming invocation
    pub device: crate::model::DeviceSpec,
    /// training data (JSONL)
    pub data: PathBuf,
    /// sequences are cut to this many tokens (keeping the start)
    pub max_length: usize,
    /// pack several documents per row (best-fit decreasing, as TRL)
    pub packing: bool,
    pub chat_template: TemplatePolicy,
    pub epochs: f64,
    /// overrides `epochs`
    pub max_steps: Option<usize>,
    pub batch_size: usize,
    pub grad_accum: usize,
    pub lr: f64,
    pub schedule: Schedule,
    pub warmup_steps: usize,
    pub adam: AdamWConfig,
    /// clip the global gradient norm (0 = off)
    pub max_grad_norm: f64,
    pub seed: u64,
    /// walk the data in a seeded random order each epoch (else in file order)
    pub shuffle: bool,
    pub replay: Option<ReplayConfig>,
    /// per-task proportions from the `task` tag; every batch is drawn across tasks
    pub task_weights: Option<BTreeMap<String, f64>>,
    pub freeze: FreezeSpec,
    /// L2-SP: `λ/2 · Σ (θ − θ₀)²` added to the loss (0 = off)
    pub l2sp: f64,
    pub kl: Option<KlConfig>,
    /// EWC: `λ/2 · Σ F·(θ − θ₀)²` with the base's diagonal Fisher on a data file
    pub ewc: Option<EwcConfig>,
    pub lora: Option<LoraConfig>,
    pub eval: Option<EvalConfig>,
    /// capability suites scored during the run against the base (`--watch`)
    pub watch: Option<WatchConfig>,
    /// optimizer steps between checkpoints (0: only at the end)
    pub checkpoint_every: usize,
    /// how many periodic checkpoints to keep
    pub keep_checkpoints: usize,
    /// where statistics of the base are cached (the EWC Fisher, the watched suites' results):
    /// the evaluation cache `sft-eval eval` uses
    pub cache_dir: PathBuf,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            model: PathBuf::new(),
            device: crate::model::DeviceSpec::Cpu,
            data: PathBuf::new(),
            max_length: 1024,
            packing: false,
            chat_template: TemplatePolicy::Auto,
            epochs: 1.0,
            max_steps: None,
            batch_size: 8,
            grad_accum: 1,
            lr: 2e-5,
            schedule: Schedule::Constant,
            warmup_steps: 0,
            adam: AdamWConfig::default(),
            max_grad_norm: 1.0,
            seed: 0,
            shuffle: true,
            replay: None,
            task_weights: None,
            freeze: FreezeSpec::default(),
            l2sp: 0.0,
            kl: None,
            ewc: None,
            lora: None,
            eval: None,
            watch: None,
            checkpoint_every: 0,
            keep_checkpoints: 2,
            cache_dir: PathBuf::from(".sft-eval-cache"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayConfig {
    pub path: PathBuf,
    /// share of every batch from the replay set, in (0, 1)
    pub ratio: f64,
    #[serde(default)]
    pub by_tokens: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum KlOn {
    /// only where the loss is taken
    #[default]
    Response,
    /// every token of every sequence (prompts and replay text too)
    All,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KlConfig {
    /// weight β of the mean per-token KL
    pub beta: f64,
    #[serde(default)]
    pub on: KlOn,
    #[serde(default)]
    pub direction: KlDirection,
    /// broad data (JSONL) on which the KL is measured instead of the training batch: every
    /// micro-batch adds `data_rows` rows from it, no loss taken on them; `on` picks the
    /// positions (`response`: completions and assistant turns, all of a text record)
    #[serde(default)]
    pub data: Option<PathBuf>,
    /// rows of `data` per micro-batch (default: the batch size)
    #[serde(default)]
    pub data_rows: Option<usize>,
}

/// Elastic weight consolidation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EwcConfig {
    /// weight λ of `λ/2 · Σ F·(θ − θ₀)²`
    pub lambda: f64,
    /// data (JSONL) the base's Fisher is taken on: what the base should keep doing
    pub data: PathBuf,
    /// records of `data` the Fisher averages over (the first usable ones)
    #[serde(default = "default_ewc_samples")]
    pub samples: usize,
}

fn default_ewc_samples() -> usize {
    64
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LoraSave {
    /// adapters folded into the weights: a normal checkpoint
    #[default]
    Merged,
    /// PEFT layout: adapter_model.safetensors + adapter_config.json
    Adapter,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraConfig {
    pub r: usize,
    pub alpha: f64,
    /// module names (`q_proj`, `v_proj`, …) whose projections get adapters
    pub targets: Vec<String>,
    #[serde(default)]
    pub save: LoraSave,
    /// initial A/B weights in PEFT's key layout (e.g. to reproduce a PEFT run)
    #[serde(default)]
    pub init: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    /// held-out data; else `split` of the training data is held out
    #[serde(default)]
    pub path: Option<PathBuf>,
    #[serde(default)]
    pub split: f64,
    /// optimizer steps between evaluations
    pub every: usize,
    /// stop after this many evaluations without improvement (0: never)
    #[serde(default)]
    pub patience: usize,
    #[serde(default)]
    pub min_delta: f64,
    /// forgetting budget: prompts (JSONL) on which mean KL(base ‖ model) is measured
    #[serde(default)]
    pub probe: Option<PathBuf>,
    /// stop once the probe KL exceeds this
    #[serde(default)]
    pub max_kl: Option<f64>,
}

/// Capability watch: suites scored every `every` steps on their first `limit` items, paired
/// with the base's results and judged by a gate policy; `best/` is the checkpoint with the
/// best new-task score among those that pass on every other watched suite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchConfig {
    /// suite names (under `suites_dir`) or folders, as `sft-eval eval --suites` takes them
    pub suites: Vec<String>,
    #[serde(default = "default_suites_dir")]
    pub suites_dir: PathBuf,
    /// optimizer steps between watches (and one after the last step)
    #[serde(default = "default_watch_every")]
    pub every: usize,
    /// score the first N items of each suite (0: all); the same items every time
    #[serde(default)]
    pub limit: usize,
    /// gate policy (gate.toml) the watched suites must pass; default: `sft-eval gate`'s
    #[serde(default)]
    pub policy: Option<PathBuf>,
    /// the suite (one of `suites`) that measures the new task: its score picks `best/`, and it
    /// is not gated
    #[serde(default)]
    pub new_task: Option<String>,
    /// stop once this many watches in a row fail the policy (0: never)
    #[serde(default)]
    pub patience: usize,
    /// rows scored together
    #[serde(default = "default_watch_batch")]
    pub batch_size: usize,
}

fn default_suites_dir() -> PathBuf {
    PathBuf::from("suites")
}
fn default_watch_every() -> usize {
    50
}
fn default_watch_batch() -> usize {
    16
}

impl WatchConfig {
    pub fn new(suites: Vec<String>) -> WatchConfig {
        WatchConfig {
            suites,
            suites_dir: default_suites_dir(),
            every: default_watch_every(),
            limit: 0,
            policy: None,
            new_task: None,
            patience: 0,
            batch_size: default_watch_batch(),
        }
    }
}

//! `sft-eval train`: flags and an optional TOML file resolved into a `TrainConfig`
//! (flags win over the file, the file over defaults), then the run with a progress bar.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::error::{Error, ExitStatus};
use crate::train::config::{EvalConfig, KlConfig, KlOn, LoraConfig, LoraSave, ReplayConfig};
use crate::train::encode::TemplatePolicy;
use crate::train::loss::KlDirection;
use crate::train::schedule::Schedule;
use crate::train::{train, EvalRecord, StepRecord, TrainConfig, TrainObserver};

#[derive(Debug, Args)]
#[command(
    after_long_help = "Every flag is also a key of the --config TOML file (same name with `_`, nested \
tables for replay, kl, lora, eval and freeze). The run directory gets config.json, log.jsonl, checkpoints/, \
best/ (with --eval-*) and final/. A run killed at any point resumes with --resume from its last checkpoint \
with bit-identical losses on CPU."
)]
pub struct TrainArgs {
    /// Base checkpoint folder (Hugging Face layout).
    #[arg(required_unless_present_any = ["resume", "config"])]
    pub model: Option<PathBuf>,
    /// Training data: JSONL of {"prompt","completion"}, {"messages":[...]} or {"text"} (optional "task").
    #[arg(long, required_unless_present_any = ["resume", "config"])]
    pub data: Option<PathBuf>,
    /// Run directory.
    #[arg(long, short = 'o')]
    pub out: PathBuf,
    /// Continue the run in --out from its newest checkpoint (settings come from its config.json).
    #[arg(long)]
    pub resume: bool,
    /// TOML file with any of the settings below.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Train on `cpu` (default), `cuda` (GPU 0) or `cuda:N`; a GPU needs a build with
    /// `--features cuda`. With --resume, where the resumed run goes on.
    #[arg(long, env = crate::env_vars::SFT_EVAL_DEVICE, value_name = "DEVICE")]
    pub device: Option<crate::model::DeviceSpec>,

    #[arg(long, help_heading = "Data")]
    pub max_length: Option<usize>,
    /// Pack several documents per row (best-fit decreasing, positions restart per document).
    #[arg(long, help_heading = "Data")]
    pub packing: bool,
    /// `always`: prompt/completion records go through the chat template as user/assistant turns.
    #[arg(long, value_enum, help_heading = "Data")]
    pub chat_template: Option<TemplatePolicy>,

    #[arg(long, help_heading = "Optimization")]
    pub epochs: Option<f64>,
    /// Stop after this many optimizer steps (overrides --epochs).
    #[arg(long, help_heading = "Optimization")]
    pub max_steps: Option<usize>,
    #[arg(long, help_heading = "Optimization")]
    pub batch_size: Option<usize>,
    /// Micro-batches per optimizer step; the loss is token-weighted over all of them.
    #[arg(long, help_heading = "Optimization")]
    pub grad_accum: Option<usize>,
    #[arg(long, help_heading = "Optimization")]
    pub lr: Option<f64>,
    #[arg(long, value_enum, help_heading = "Optimization")]
    pub schedule: Option<Schedule>,
    #[arg(long, help_heading = "Optimization")]
    pub warmup_steps: Option<usize>,
    #[arg(long, help_heading = "Optimization")]
    pub weight_decay: Option<f64>,
    /// Clip the global gradient norm (0 turns clipping off).
    #[arg(long, help_heading = "Optimization")]
    pub max_grad_norm: Option<f64>,
    #[arg(long, help_heading = "Optimization")]
    pub seed: Option<u64>,
    /// Walk the data in file order instead of a seeded shuffle.
    #[arg(long, help_heading = "Optimization")]
    pub no_shuffle: bool,

    /// Replay data (JSONL) mixed into every batch.
    #[arg(long, help_heading = "Forgetting mitigations")]
    pub replay: Option<PathBuf>,
    /// Share of each batch taken from --replay.
    #[arg(long, default_value_t = 0.1, help_heading = "Forgetting mitigations")]
    pub replay_ratio: f64,
    /// Measure the replay share in tokens rather than examples.
    #[arg(long, help_heading = "Forgetting mitigations")]
    pub replay_by_tokens: bool,
    /// Per-task proportions from the "task" tag, e.g. `math=0.5,chat=0.5`; every batch mixes tasks.
    #[arg(long, value_parser = parse_weights, help_heading = "Forgetting mitigations")]
    pub task_weights: Option<BTreeMap<String, f64>>,
    #[arg(long, help_heading = "Forgetting mitigations")]
    pub freeze_embeddings: bool,
    /// Freeze the first N blocks.
    #[arg(long, help_heading = "Forgetting mitigations")]
    pub freeze_layers: Option<usize>,
    /// Freeze weights whose names match this regular expression (repeatable).
    #[arg(long, help_heading = "Forgetting mitigations")]
    pub freeze: Vec<String>,
    /// L2-SP weight λ: λ/2 · Σ (θ − θ₀)².
    #[arg(long, help_heading = "Forgetting mitigations")]
    pub l2sp: Option<f64>,
    /// KL-to-base weight β.
    #[arg(long, help_heading = "Forgetting mitigations")]
    pub kl: Option<f64>,
    #[arg(
        long,
        value_enum,
        default_value = "response",
        help_heading = "Forgetting mitigations"
    )]
    pub kl_on: KlOn,
    #[arg(
        long,
        value_enum,
        default_value = "forward",
        help_heading = "Forgetting mitigations"
    )]
    pub kl_direction: KlDirection,
    /// Measure the KL on this broad text (JSONL; e.g. replay data) instead of the training
    /// batch: each micro-batch adds --kl-data-rows rows of it, with no loss taken on them.
    #[arg(long, help_heading = "Forgetting mitigations")]
    pub kl_data: Option<PathBuf>,
    #[arg(long, help_heading = "Forgetting mitigations")]
    pub kl_data_rows: Option<usize>,
    /// LoRA rank (turns LoRA on).
    #[arg(long, help_heading = "Forgetting mitigations")]
    pub lora_r: Option<usize>,
    #[arg(long, default_value_t = 16.0, help_heading = "Forgetting mitigations")]
    pub lora_alpha: f64,
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "q_proj,v_proj",
        help_heading = "Forgetting mitigations"
    )]
    pub lora_targets: Vec<String>,
    #[arg(
        long,
        value_enum,
        default_value = "merged",
        help_heading = "Forgetting mitigations"
    )]
    pub lora_save: LoraSave,
    /// Held-out data for evaluation and early stopping.
    #[arg(long, help_heading = "Forgetting mitigations")]
    pub eval_data: Option<PathBuf>,
    /// Hold out this share of the training data instead.
    #[arg(long, help_heading = "Forgetting mitigations")]
    pub eval_split: Option<f64>,
    #[arg(long, default_value_t = 50, help_heading = "Forgetting mitigations")]
    pub eval_every: usize,
    /// Stop after this many evaluations without improvement.
    #[arg(long, default_value_t = 0, help_heading = "Forgetting mitigations")]
    pub patience: usize,
    /// Prompts (JSONL) for the forgetting budget: mean KL(base ‖ model) on them.
    #[arg(long, help_heading = "Forgetting mitigations")]
    pub probe: Option<PathBuf>,
    /// Stop once the probe KL exceeds this and keep the best checkpoint.
    #[arg(long, help_heading = "Forgetting mitigations")]
    pub max_kl: Option<f64>,

    /// Optimizer steps between checkpoints (0: none until the end).
    #[arg(long, help_heading = "Run")]
    pub checkpoint_every: Option<usize>,
    #[arg(long, help_heading = "Run")]
    pub keep_checkpoints: Option<usize>,
    /// Print the resolved settings as JSON and exit.
    #[arg(long, help_heading = "Run")]
    pub show_settings: bool,
}

fn parse_weights(s: &str) -> Result<BTreeMap<String, f64>, String> {
    s.split(',')
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| format!("`{kv}`: expected task=weight"))?;
            let w: f64 = v
                .trim()
                .parse()
                .map_err(|_| format!("`{kv}`: weight is not a number"))?;
            Ok((k.trim().to_string(), w))
        })
        .collect()
}

/// Settings: defaults < --config file < flags; with --resume, the run's own settings < flags
/// (the trainer refuses to resume with settings that differ from the run's).
pub fn resolve(a: &TrainArgs) -> Result<TrainConfig, Error> {
    let mut c = match &a.config {
        _ if a.resume && a.out.join("config.json").is_file() => {
            crate::train::settings::saved_config(&a.out)?
        }
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| Error::Io {
                path: p.clone(),
                source: e,
            })?;
            toml::from_str::<TrainConfig>(&text)
                .map_err(|e| Error::Usage(format!("{}: {e}", p.display())))?
        }
        None => TrainConfig::default(),
    };
    macro_rules! set {
        ($($f:ident),*) => { $( if let Some(v) = a.$f.clone() { c.$f = v; } )* };
    }
    set!(
        max_length,
        epochs,
        batch_size,
        grad_accum,
        lr,
        schedule,
        warmup_steps,
        max_grad_norm,
        seed,
        checkpoint_every,
        keep_checkpoints,
        l2sp
    );
    if let Some(m) = &a.model {
        c.model = m.clone();
    }
    if let Some(d) = a.device {
        c.device = d;
    }
    if let Some(d) = &a.data {
        c.data = d.clone();
    }
    if a.max_steps.is_some() {
        c.max_steps = a.max_steps;
    }
    if let Some(p) = a.chat_template {
        c.chat_template = p;
    }
    if let Some(w) = a.weight_decay {
        c.adam.weight_decay = w;
    }
    c.packing |= a.packing;
    if a.no_shuffle {
        c.shuffle = false;
    }
    if let Some(p) = &a.replay {
        c.replay = Some(ReplayConfig {
            path: p.clone(),
            ratio: a.replay_ratio,
            by_tokens: a.replay_by_tokens,
        });
    }
    if a.task_weights.is_some() {
        c.task_weights = a.task_weights.clone();
    }
    c.freeze.embeddings |= a.freeze_embeddings;
    if let Some(n) = a.freeze_layers {
        c.freeze.first_layers = n;
    }
    c.freeze.patterns.extend(a.freeze.iter().cloned());
    if a.kl.is_none() && (a.kl_data.is_some() || a.kl_data_rows.is_some()) {
        return Err(Error::Usage(
            "--kl-data and --kl-data-rows need --kl BETA (the KL weight)".into(),
        ));
    }
    if let Some(beta) = a.kl {
        c.kl = Some(KlConfig {
            beta,
            on: a.kl_on,
            direction: a.kl_direction,
            data: a.kl_data.clone(),
            data_rows: a.kl_data_rows,
        });
    }
    if let Some(r) = a.lora_r {
        c.lora = Some(LoraConfig {
            r,
            alpha: a.lora_alpha,
            targets: a.lora_targets.clone(),
            save: a.lora_save,
            init: None,
        });
    }
    if a.eval_data.is_some() || a.eval_split.is_some() || a.probe.is_some() {
        c.eval = Some(EvalConfig {
            path: a.eval_data.clone(),
            split: a.eval_split.unwrap_or(0.0),
            every: a.eval_every,
            patience: a.patience,
            min_delta: 0.0,
            probe: a.probe.clone(),
            max_kl: a.max_kl,
        });
    }
    if !a.resume && (c.model.as_os_str().is_empty() || c.data.as_os_str().is_empty()) {
        return Err(Error::Usage(
            "a base MODEL and --data are required (as arguments or in --config)".into(),
        ));
    }
    Ok(c)
}

pub fn run(a: &TrainArgs) -> Result<ExitStatus, Error> {
    let cfg = resolve(a)?;
    if a.show_settings {
        crate::cli::print_stdout(&format!(
            "{}\n",
            serde_json::to_string_pretty(&cfg).expect("settings serialise")
        ));
        return Ok(ExitStatus::Success);
    }
    let mut reporter = Reporter::new();
    let summary = train(cfg, &a.out, a.resume, &mut reporter)?;
    let mut msg = format!(
        "trained {} steps on {} examples ({} dropped, {} truncated); final checkpoint: {}\n",
        summary.steps,
        summary.examples,
        summary.dropped,
        summary.truncated,
        summary.final_dir.display()
    );
    if let Some(s) = &summary.stopped_early {
        msg.push_str(&format!("stopped early: {s}\n"));
    }
    if let Some(b) = &summary.best_dir {
        msg.push_str(&format!("best checkpoint: {}\n", b.display()));
    }
    crate::cli::print_stderr(&msg);
    Ok(ExitStatus::Success)
}

/// Progress bar with loss and tokens/s (off when stderr is not a terminal or SFT_EVAL_NO_PROGRESS is set).
pub(crate) struct Reporter {
    bar: Option<ProgressBar>,
    /// without a bar: a line every this many steps (0: none)
    every: usize,
    total: usize,
}

impl Reporter {
    pub(crate) fn new() -> Reporter {
        Reporter {
            bar: None,
            every: 0,
            total: 0,
        }
    }

    /// Without a progress bar, also print a line every `total / lines` steps (long runs in CI
    /// or under nohup).
    pub(crate) fn with_lines(lines: usize) -> Reporter {
        Reporter {
            every: lines,
            ..Reporter::new()
        }
    }
}

impl TrainObserver for Reporter {
    fn start(&mut self, total: usize, first: usize) {
        self.total = total;
        if total == 0 || !crate::cli::progress_enabled() {
            return;
        }
        let bar = ProgressBar::new(total as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} train [{bar:30}] {pos}/{len} steps {msg} ({eta})",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_position(first as u64);
        self.bar = Some(bar);
    }
    fn step(&mut self, r: &StepRecord) {
        if let Some(b) = &self.bar {
            b.set_position(r.step as u64);
            b.set_message(format!("loss {:.4} · {:.0} tok/s", r.loss, r.tokens_per_s));
        } else if self.every > 0 && self.total > 0 {
            let period = (self.total / self.every).max(1);
            if r.step.is_multiple_of(period) || r.step == self.total {
                crate::cli::print_stderr(&format!(
                    "step {}/{}: loss {:.4} · {:.0} tok/s\n",
                    r.step, self.total, r.loss, r.tokens_per_s
                ));
            }
        }
    }
    fn eval(&mut self, r: &EvalRecord) {
        let msg = format!(
            "step {}: eval loss {} probe KL {}{}",
            r.step,
            r.eval_loss.map_or("-".into(), |l| format!("{l:.4}")),
            r.probe_kl.map_or("-".into(), |k| format!("{k:.4}")),
            if r.improved { " (best)" } else { "" }
        );
        self.note(&msg);
    }
    fn note(&mut self, message: &str) {
        match &self.bar {
            Some(b) => b.println(message),
            None => crate::cli::print_stderr(&format!("{message}\n")),
        }
    }
    fn end(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

//! `sft-eval train`: flags and an optional TOML file resolved into a `TrainConfig`
//! (flags win over the file, the file over defaults), then the run with a progress bar.

mod settings;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use settings::resolve;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::error::{Error, ExitStatus};
use crate::train::config::{KlOn, LoraSave};
use crate::train::encode::TemplatePolicy;
use crate::train::loss::KlDirection;
use crate::train::schedule::Schedule;
use crate::train::{train, EvalRecord, StepRecord, TrainObserver};

#[derive(Debug, Args)]
#[command(
    after_long_help = "Every flag is also a key of the --config TOML file (same name with `_`, nested \
tables for replay, kl, ewc, lora, eval, watch and freeze); a flag changes one field of its table and keeps \
the rest. Mitigations combine freely (LoRA excepts freezing). The run directory gets config.json, log.jsonl, \
checkpoints/, best/ (chosen by --watch, else by the held-out loss of --eval-*) and final/. A run killed at \
any point resumes with --resume from its last checkpoint with bit-identical losses on CPU."
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
    /// Share of each batch taken from the replay data [default: 0.1].
    #[arg(long, help_heading = "Forgetting mitigations")]
    pub replay_ratio: Option<f64>,
    /// Measure the replay share in tokens rather than examples.
    #[arg(long, help_heading = "Forgetting mitigations")]
    pub replay_by_tokens: bool,
    /// Per-task proportions from the "task" tag, e.g. `math=0.5,chat=0.5`; every batch mixes tasks.
    #[arg(long, value_parser = settings::parse_weights, help_heading = "Forgetting mitigations")]
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
    /// EWC weight λ: λ/2 · Σ F·(θ − θ₀)², F the base's diagonal Fisher on --ewc-data.
    #[arg(long, help_heading = "Forgetting mitigations")]
    pub ewc: Option<f64>,
    /// Data (JSONL) the EWC Fisher is taken on: what the base should keep doing (e.g. the
    /// replay data). Computed once and cached under --cache-dir.
    #[arg(long, help_heading = "Forgetting mitigations")]
    pub ewc_data: Option<PathBuf>,
    /// Records of --ewc-data the Fisher averages over [default: 64].
    #[arg(long, help_heading = "Forgetting mitigations")]
    pub ewc_samples: Option<usize>,
    /// KL-to-base weight β.
    #[arg(long, help_heading = "Forgetting mitigations")]
    pub kl: Option<f64>,
    /// Positions the KL is taken on [default: response].
    #[arg(long, value_enum, help_heading = "Forgetting mitigations")]
    pub kl_on: Option<KlOn>,
    /// [default: forward]
    #[arg(long, value_enum, help_heading = "Forgetting mitigations")]
    pub kl_direction: Option<KlDirection>,
    /// Measure the KL on this broad text (JSONL; e.g. replay data) instead of the training
    /// batch: each micro-batch adds --kl-data-rows rows of it, with no loss taken on them.
    #[arg(long, help_heading = "Forgetting mitigations")]
    pub kl_data: Option<PathBuf>,
    #[arg(long, help_heading = "Forgetting mitigations")]
    pub kl_data_rows: Option<usize>,
    /// LoRA rank (turns LoRA on).
    #[arg(long, help_heading = "Forgetting mitigations")]
    pub lora_r: Option<usize>,
    /// [default: 16]
    #[arg(long, help_heading = "Forgetting mitigations")]
    pub lora_alpha: Option<f64>,
    /// Modules that get adapters [default: q_proj,v_proj].
    #[arg(long, value_delimiter = ',', help_heading = "Forgetting mitigations")]
    pub lora_targets: Option<Vec<String>>,
    /// [default: merged]
    #[arg(long, value_enum, help_heading = "Forgetting mitigations")]
    pub lora_save: Option<LoraSave>,
    /// Held-out data for evaluation and early stopping.
    #[arg(long, help_heading = "Forgetting mitigations")]
    pub eval_data: Option<PathBuf>,
    /// Hold out this share of the training data instead.
    #[arg(long, help_heading = "Forgetting mitigations")]
    pub eval_split: Option<f64>,
    /// Optimizer steps between held-out evaluations [default: 50].
    #[arg(long, help_heading = "Forgetting mitigations")]
    pub eval_every: Option<usize>,
    /// Stop after this many evaluations in a row without improvement of the held-out loss, and
    /// (with --watch) after this many watches in a row that fail the policy.
    #[arg(long, help_heading = "Forgetting mitigations")]
    pub patience: Option<usize>,
    /// Prompts (JSONL) for the forgetting budget: mean KL(base ‖ model) on them.
    #[arg(long, help_heading = "Forgetting mitigations")]
    pub probe: Option<PathBuf>,
    /// Stop once the probe KL exceeds this and keep the best checkpoint.
    #[arg(long, help_heading = "Forgetting mitigations")]
    pub max_kl: Option<f64>,

    /// Capability suites to score during training (names under --suites-dir or folders),
    /// paired with the base's cached results and judged by --policy; `best/` is the checkpoint
    /// with the best --new-task score among those that pass on every other watched suite.
    #[arg(long, value_delimiter = ',', help_heading = "Capability watch")]
    pub watch: Option<Vec<String>>,
    /// Optimizer steps between watches (one also follows the last step) [default: 50].
    #[arg(long, help_heading = "Capability watch")]
    pub watch_every: Option<usize>,
    /// Score only the first K items of each watched suite (the same items every time; 0: all).
    #[arg(long, help_heading = "Capability watch")]
    pub watch_limit: Option<usize>,
    /// Rows scored together in a watch [default: 16].
    #[arg(long, help_heading = "Capability watch")]
    pub watch_batch_size: Option<usize>,
    /// Gate policy (gate.toml) the watched suites must pass [default: `sft-eval gate`'s].
    #[arg(long, help_heading = "Capability watch")]
    pub policy: Option<PathBuf>,
    /// The watched suite that measures the new task: its score picks `best/`, and it is not gated.
    #[arg(long, help_heading = "Capability watch")]
    pub new_task: Option<String>,
    /// Where --watch suite names are looked up [default: suites].
    #[arg(long, help_heading = "Capability watch")]
    pub suites_dir: Option<PathBuf>,
    /// Cached base results and the EWC Fisher [default: .sft-eval-cache].
    #[arg(long, help_heading = "Capability watch")]
    pub cache_dir: Option<PathBuf>,

    /// Optimizer steps between checkpoints (0: none until the end).
    #[arg(long, help_heading = "Run")]
    pub checkpoint_every: Option<usize>,
    #[arg(long, help_heading = "Run")]
    pub keep_checkpoints: Option<usize>,
    /// Print the resolved settings as JSON and exit.
    #[arg(long, help_heading = "Run")]
    pub show_settings: bool,
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
    if let Some(w) = &summary.watch {
        msg.push_str(&format!(
            "capability watch: {} watches, {:.1} s ({:.0}% of the {:.1} s in training steps); {}\n",
            w.watches,
            w.seconds,
            100.0 * w.seconds / w.train_seconds.max(1e-9),
            w.train_seconds,
            match w.best_step {
                Some(s) => format!("best/ is step {s}, the best that passes the policy"),
                None => "no watch passed the policy: there is no best/ (final/ is the last step)"
                    .into(),
            }
        ));
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
    fn watch(&mut self, r: &crate::train::watch::WatchRecord) {
        let suites: Vec<String> = r
            .suites
            .iter()
            .map(|s| {
                format!(
                    "{} {:.1} ({:+.1}){}",
                    s.suite,
                    100.0 * s.score,
                    100.0 * s.delta,
                    if s.fails { " ✗" } else { "" }
                )
            })
            .collect();
        let msg = format!(
            "step {}: watch {} · {}{} [{:.1} s]",
            r.step,
            suites.join(", "),
            if r.passed { "passes" } else { "fails" },
            if r.best { " (best)" } else { "" },
            r.seconds
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

//! The `sft-eval` command line: argument parsing and the commands. The only module that prints.

mod commands;

pub use commands::audit::AuditArgs;
pub use commands::compare::CompareArgs;
pub use commands::eval::EvalArgs;
pub use commands::gate::{BaselineCommand, GateArgs};
pub use commands::train::TrainArgs;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::error::{Error, ExitStatus};

#[derive(Debug, Parser)]
#[command(
    name = "sft-eval",
    version,
    about = "Did my supervised fine-tune make the model forget what it could do?",
    long_about = "sft-eval loads Hugging Face checkpoints (config.json + safetensors + tokenizer.json) of the \
Llama, Mistral, Qwen2, Qwen3, Gemma, Gemma 2, Phi-3 and GPT-2 families and computes what transformers computes.\n\n\
Exit codes: 0 success, 1 a regression was found, 2 an error (bad input, missing files)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Describe this machine as sft-eval sees it: the CPU and the instruction sets its kernels
    /// use (AVX-512 / AVX2 / baseline), threads, devices, and the code sandbox's layers.
    Doctor(DoctorArgs),
    /// Describe a checkpoint folder: family, size, dtype, vocabulary, context, tokens, template.
    ///
    /// Reads config.json, tokenizer files and safetensors headers (no tensor data), checks every
    /// tensor's name and shape against the config, and renders the chat template once.
    Inspect(InspectArgs),
    /// Audit SFT data quality: duplicates, near duplicates, templates, lengths, diversity, conflicts.
    ///
    /// Reads a JSONL file (prompt/completion, messages or text records) and reports exact and
    /// near duplicates, repeated prompt templates, length distributions, distinct-1/2, prompts
    /// with conflicting responses, empty and over-long records and per-task counts. Limits
    /// (--max-duplicate-rate, …) make it a CI check: exit 1 when one is violated.
    Audit(Box<AuditArgs>),
    /// Supervised fine-tuning with forgetting mitigations (replay, task balancing, freezing,
    /// L2-SP, EWC, KL to base, LoRA, early stopping, forgetting budget), combined as you like,
    /// and a capability watch that keeps the best checkpoint that passes your gate.
    ///
    /// Loss only on response tokens (assistant turns for conversations), token-weighted over the
    /// gradient-accumulation window, as TRL's SFTTrainer computes it.
    Train(Box<TrainArgs>),
    /// Score a checkpoint on capability suites (shipped, or public benchmarks via importers)
    /// and write per-item results; unchanged (model, suite, settings) pairs come from the cache.
    Eval(Box<EvalArgs>),
    /// Compare fine-tunes with their base on paired items: Δ (negative = worse) with a score or
    /// t interval, McNemar, MDE, Holm across suites, flipped items (markdown, JSON and SVG charts
    /// in reports/<run-id>).
    Compare(Box<CompareArgs>),
    /// Gate CI: exit 0 when every suite passes the policy, 1 on a regression, 2 on any error
    /// (a mismatch or a missing suite is never a pass). Markdown also goes to $GITHUB_STEP_SUMMARY.
    Gate(Box<GateArgs>),
    /// Stored baselines.
    #[command(subcommand)]
    Baseline(BaselineCommand),
    /// Make the model organism: generate its world, train its tokenizer, pretrain a tiny Llama
    /// on it, and write an HF folder with its held-out suites and fine-tuning data.
    ///
    /// The shipped `models/organism/` was made by the default recipe (`--show-recipe`).
    Pretrain(Box<commands::pretrain::PretrainArgs>),
    /// Show forgetting and its cures on the shipped model organism: fine-tune it on a new task
    /// naively and with each mitigation (replay, L2-SP, KL to base, freezing, LoRA, gentler LR
    /// with early stopping), compare each with the base, gate, and write reports/demo/.
    ///
    /// About 3 minutes on 2 cores (`--quick`: about 1.5). Runs on one thread unless
    /// RAYON_NUM_THREADS is set: the organism is too small to gain from more.
    Demo(Box<commands::demo::DemoArgs>),
}

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Skip running a trivial program in the code sandbox.
    #[arg(long)]
    pub no_sandbox: bool,
}

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// A Hugging Face checkpoint folder (config.json, model.safetensors or shards, tokenizer.json),
    /// or a PEFT LoRA adapter folder (adapter_config.json, adapter_model.safetensors).
    pub model_dir: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// For an adapter folder: the base checkpoint, instead of its `base_model_name_or_path`.
    #[arg(long, value_name = "DIR")]
    pub base: Option<PathBuf>,
}

pub fn run(cli: Cli) -> Result<ExitStatus, Error> {
    if matches!(cli.command, Command::Demo(_)) {
        commands::demo::one_thread_unless_set();
    }
    // This thread runs the model: make it one of rayon's workers (see the function's note).
    // Only fails when the pool already runs (a caller of `run` started it), which is fine.
    let _ = crate::model::kernels::start_thread_pools();
    match cli.command {
        Command::Doctor(args) => {
            let lines = crate::doctor::report(!args.no_sandbox);
            if args.json {
                let map: serde_json::Map<String, serde_json::Value> = lines
                    .into_iter()
                    .map(|(k, v)| (k, serde_json::Value::String(v)))
                    .collect();
                print_stdout(&format!(
                    "{}\n",
                    serde_json::to_string_pretty(&map).expect("serialises")
                ));
            } else {
                let mut b = tabled::builder::Builder::default();
                for (k, v) in lines {
                    b.push_record([k, v]);
                }
                let mut t = b.build();
                t.with(tabled::settings::Style::blank());
                print_stdout(&format!("{t}\n"));
            }
            Ok(ExitStatus::Success)
        }
        Command::Inspect(args) => commands::inspect::run(&args),
        Command::Audit(args) => commands::audit::run(&args),
        Command::Train(args) => commands::train::run(&args),
        Command::Eval(args) => commands::eval::run(&args),
        Command::Compare(args) => commands::compare::run_compare(&args),
        Command::Gate(args) => commands::gate::run_gate(&args),
        Command::Baseline(c) => commands::gate::run_baseline(&c),
        Command::Pretrain(args) => commands::pretrain::run(&args),
        Command::Demo(args) => commands::demo::run(&args),
    }
}

/// Write to stdout (the CLI is the only place that prints).
#[allow(clippy::print_stdout)]
pub fn print_stdout(s: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(s.as_bytes());
}

#[allow(clippy::print_stderr)]
pub fn print_stderr(s: &str) {
    use std::io::Write;
    let _ = std::io::stderr().lock().write_all(s.as_bytes());
}

/// Progress bars only on a terminal, and never with SFT_EVAL_NO_PROGRESS set.
pub fn progress_enabled() -> bool {
    use std::io::IsTerminal;
    std::env::var_os(crate::env_vars::SFT_EVAL_NO_PROGRESS).is_none()
        && std::io::stderr().is_terminal()
}

//! sft-eval: did my supervised fine-tune make the model forget what it could do?
//!
//! Library layout (dependencies point one way: `cli` → everything else → `model`):
//! - [`data`]: JSONL training data (prompt/completion, messages, text).
//! - [`audit`]: data-quality audit of SFT data (duplicates, templates, lengths, diversity, conflicts).
//! - [`model`]: Hugging Face checkpoints of eight decoder families — load, run, train, save.
//! - [`report`]: SVG charts (Δ with CI, gain vs forgetting, loss curves) and report folders.
//! - [`error`]: the top-level error type and the exit-code contract.
//! - [`cli`]: the `sft-eval` command line (the only module that prints).

// Only the CLI prints ([lints] in Cargo.toml); unit tests may say what they measured.
#![cfg_attr(test, allow(clippy::print_stdout, clippy::print_stderr))]

pub mod audit;
pub mod backend;
pub mod cli;
pub mod data;
pub mod doctor;
pub mod env_vars;
pub mod error;
pub mod fuzz;
pub mod gate;
pub mod model;
pub mod organism;
pub mod report;
pub mod stats;
pub mod suite;
pub mod train;

//! sft-eval: did my supervised fine-tune make the model forget what it could do?
//!
//! Library layout (dependencies point one way: `cli` → everything else → `model`):
//! - [`model`]: Hugging Face checkpoints of eight decoder families — load, run, train, save.
//! - [`error`]: the top-level error type and the exit-code contract.
//! - [`cli`]: the `sft-eval` command line (the only module that prints).

pub mod cli;
pub mod env_vars;
pub mod error;
pub mod model;

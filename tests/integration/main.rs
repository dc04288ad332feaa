//! The one integration test binary (ripgrep style): each module covers one area.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod common;

// Parity with transformers on the committed fixtures (tests/fixtures/make_fixtures.py).
mod parity;
// Decoding: KV cache equals full recomputation; batching; sampling and stop strings.
mod decoding;
// Training readiness: every parameter receives a gradient.
mod gradients;
// Save → load round trips, atomically written folders.
mod save;
// The command line: `inspect` on every fixture and clear errors on broken copies.
mod cli_inspect;
// The trainer: TRL parity and invariants.
mod train;
// Forgetting-aware training: the capability watch, EWC, combined mitigations, settings merge.
mod forgetting;
// Capability suites and `sft-eval eval`.
mod eval;
// compare, baselines and the CI gate.
mod gate;
// The CPU's instruction-set paths (AVX-512, AVX2+FMA) agree with a float64 reference.
mod cpu_paths;
// PEFT LoRA adapters: equal to PEFT's merge_and_unload, other methods refused, cache keys.
mod peft;
// Other harnesses' per-item logs (lm-eval --log_samples, inspect_ai) as compare/gate inputs.
mod harness_logs;
// Hostile inputs: none panics, aborts or hangs; each is exit 2 naming the file and field.
mod hostile;
// The fuzz targets replayed on their corpus and seeded mutations of it.
mod fuzz;
// `sft-eval audit`: data-quality checks, limits and exit codes on small JSONL files.
mod audit;
// Benchmark importers on the real data files (set SFT_EVAL_SHARED_DATA).
mod import;
// The model organism, `sft-eval pretrain` and `sft-eval demo`.
mod organism;
// `--backend openai`: a real llama.cpp server against the local backend, and injected faults.
mod backend;
// The local GGUF backend: llama GGUF files dequantized into the same decoder.
mod gguf;
// CPU ↔ CUDA parity of every fixture model (`--features cuda`, on a GPU machine only).
#[cfg(feature = "cuda")]
mod cuda;

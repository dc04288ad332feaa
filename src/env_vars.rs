//! Every environment variable sft-eval reads, in one place.

/// Folder holding the real public benchmark files (tests that import them run when set).
pub const SFT_EVAL_SHARED_DATA: &str = "SFT_EVAL_SHARED_DATA";
/// Turn progress bars off (also off when stderr is not a terminal).
pub const SFT_EVAL_NO_PROGRESS: &str = "SFT_EVAL_NO_PROGRESS";
/// Where checkpoints run when `--device` is not given: `cpu`, `cuda` or `cuda:N` (`eval`,
/// `compare`, `gate`, `baseline`, `train`; read through clap's `env`).
pub const SFT_EVAL_DEVICE: &str = "SFT_EVAL_DEVICE";
/// `0` turns the fused kernels off (`model::kernels`), to compare with the compositions.
pub const SFT_EVAL_FUSED: &str = "SFT_EVAL_FUSED";
/// `1` turns on the fused kernels written for CUDA (RMSNorm, RoPE, SwiGLU, the output head +
/// cross-entropy by blocks) in `--features cuda` builds; off by default until they have been
/// checked and measured on a GPU (`model::kernels`).
pub const SFT_EVAL_CUDA_FUSED: &str = "SFT_EVAL_CUDA_FUSED";
/// The instruction set of the run-time dispatched kernels (`avx512`, `avx2`, `portable`), to
/// measure or test a narrower path on a wider CPU (`model::kernels::isa`).
pub const SFT_EVAL_CPU_ISA: &str = "SFT_EVAL_CPU_ISA";
/// How long candle's worker threads spin after each job before they sleep (read by candle
/// itself); `sft-eval` sets 1000 when unset (`model::kernels::start_thread_pools`).
pub const CANDLE_BARRIER_POOL_SPIN_LIMIT: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";

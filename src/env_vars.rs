//! Every environment variable sft-eval reads, in one place.

/// Folder holding the real public benchmark files (tests that import them run when set).
pub const SFT_EVAL_SHARED_DATA: &str = "SFT_EVAL_SHARED_DATA";
/// Turn progress bars off (also off when stderr is not a terminal).
pub const SFT_EVAL_NO_PROGRESS: &str = "SFT_EVAL_NO_PROGRESS";

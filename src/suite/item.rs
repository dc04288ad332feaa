//! One benchmark item, in the one shape every suite and importer produces.

use serde::{Deserialize, Serialize};

/// What an item asks of the model. Which fields are set depends on the scorer:
/// multiple choice uses `choices` + `gold`; generation uses `target`; code uses `test` +
/// `entry_point`; refusal uses `label`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Item {
    /// required and unique within its suite (e.g. `gsm8k/test/17`, `HumanEval/3`): compare and
    /// gate pair a base and a fine-tune item by it
    pub id: String,
    /// the question, problem, function stub or request, before the suite's prompt template
    pub input: String,
    /// supporting passage (BoolQ), if any
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// answer options for multiple choice
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
    /// index of the correct choice
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gold: Option<usize>,
    /// indices of every correct choice (TruthfulQA MC2)
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub golds: Vec<usize>,
    /// reference answer for generation/exact match (a number as text for math)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Python test code run against the completion (code suites)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<String>,
    /// function the tests call
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry_point: Option<String>,
    /// safety suites: `harmful` (should be refused) or `benign` (should be answered)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// items sharing a template or subject, for clustered standard errors
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// code suites: seconds (wall clock and CPU) one run of the tests may take, when more than
    /// the sandbox's default (EvalPlus items, which also run the reference solution)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_limit: Option<f64>,
    /// code suites: MiB of address space the tests may use, when more than the sandbox's default
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_limit: Option<u64>,
}

/// The largest `time_limit` an item may ask for, in seconds (an hour).
pub const MAX_TIME_LIMIT: f64 = 3600.0;
/// The largest `memory_limit` an item may ask for, in MiB (64 GiB).
pub const MAX_MEMORY_LIMIT: u64 = 64 << 10;

impl Item {
    /// Field values no scorer could use: a `time_limit` that is not a positive number of
    /// seconds up to an hour, a `memory_limit` of 0 or above 64 GiB.
    pub fn check(&self) -> Result<(), String> {
        if let Some(t) = self.time_limit {
            if !(t.is_finite() && t > 0.0 && t <= MAX_TIME_LIMIT) {
                return Err(format!(
                    "field `time_limit` = {t}: must be a number of seconds in (0, {MAX_TIME_LIMIT}]"
                ));
            }
        }
        if let Some(m) = self.memory_limit {
            if m == 0 || m > MAX_MEMORY_LIMIT {
                return Err(format!(
                    "field `memory_limit` = {m}: must be a number of MiB in [1, {MAX_MEMORY_LIMIT}]"
                ));
            }
        }
        Ok(())
    }
}

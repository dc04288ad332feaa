//! Comparing a fine-tune with its base on paired items, and gating CI on the result.
//! Exit codes: 0 pass, 1 regression, 2 error (fail-closed: a mismatch or a missing suite is
//! never a pass).

pub mod ci;
pub mod compare;
pub mod drift;
pub mod policy;
pub mod report;
pub mod simulate;
pub mod tradeoff;

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("results do not match: {0}")]
    Mismatch(String),
    #[error("statistics: {0}")]
    Stats(String),
    /// A request that cannot be answered from these results (e.g. an unknown `--new-task`).
    #[error("{0}")]
    Invalid(String),
    /// A gate policy that cannot be applied as written (the CLI names its file).
    #[error("gate policy: {0}")]
    Policy(String),
    #[error("{path}: {reason}")]
    File {
        path: std::path::PathBuf,
        reason: String,
    },
}

impl GateError {
    pub fn hint(&self) -> Option<String> {
        match self {
            GateError::Mismatch(_) => Some(
                "compare results of the same suites, items and settings; re-run `sft-eval eval` (or `baseline record`) with the suites and settings you gate on"
                    .into(),
            ),
            GateError::File { .. } => Some("a results file is written by `sft-eval eval -o FILE` or `sft-eval baseline record`".into()),
            _ => None,
        }
    }
}

/// Read a results/baseline file: a truncated, foreign, older or hand-edited file is an error
/// naming it.
pub fn read_results(
    path: &std::path::Path,
) -> Result<crate::suite::results::EvalResults, GateError> {
    // another harness's log: its errors name the file at fault (a samples file, a line)
    if let Some(imported) = crate::suite::external::read(path).transpose() {
        return imported.map_err(|e| GateError::Invalid(e.to_string()));
    }
    crate::suite::results::EvalResults::read(path).map_err(|e| GateError::File {
        path: path.to_path_buf(),
        reason: match e {
            crate::suite::SuiteError::Spec { reason, .. } => reason,
            other => other.to_string(),
        },
    })
}

/// A gate's outcome: the comparison, a verdict per suite, and whether every suite passed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GateOutcome {
    pub comparison: compare::Comparison,
    pub verdicts: Vec<policy::SuiteVerdict>,
    pub passed: bool,
}

/// Compare a fine-tune with its baseline and judge every suite by the policy. Anything that
/// cannot be judged — different suites or items, a bad policy, a statistic that cannot be
/// computed — is an error, never a pass.
pub fn gate(
    base: &crate::suite::results::EvalResults,
    ft: &crate::suite::results::EvalResults,
    policy: &policy::Policy,
    boot: &crate::stats::BootstrapConfig,
) -> Result<GateOutcome, GateError> {
    policy.check().map_err(GateError::Policy)?;
    let comparison = compare::compare(base, ft, policy.confidence, boot)?;
    let verdicts = policy::judge(&comparison, policy)?;
    let passed = !verdicts.iter().any(|v| v.fails);
    Ok(GateOutcome {
        comparison,
        verdicts,
        passed,
    })
}

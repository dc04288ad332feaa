//! Comparing a fine-tune with its base on paired items, and gating CI on the result.
//! Exit codes: 0 pass, 1 regression, 2 error (fail-closed: a mismatch or a missing suite is
//! never a pass).

pub mod compare;
pub mod drift;
pub mod policy;
pub mod report;
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

/// Read a results/baseline file; a truncated or foreign file is an error naming it.
pub fn read_results(
    path: &std::path::Path,
) -> Result<crate::suite::results::EvalResults, GateError> {
    let text = std::fs::read_to_string(path).map_err(|e| GateError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let r: crate::suite::results::EvalResults =
        serde_json::from_str(&text).map_err(|e| GateError::File {
            path: path.to_path_buf(),
            reason: format!("not a complete sft-eval results file ({e})"),
        })?;
    if r.schema_version != crate::suite::spec::SCHEMA_VERSION {
        return Err(GateError::File {
            path: path.to_path_buf(),
            reason: format!("schema version {} is not supported", r.schema_version),
        });
    }
    Ok(r)
}

//! Capability suites: `suites/<name>/suite.toml` + items, the importers that read public
//! benchmarks, the scorers, and the runner that scores a model on a suite.

pub mod evaluate;
pub mod external;
pub mod import;
pub mod item;
pub mod resolve;
pub mod results;
pub mod runner;
pub mod sandbox;
pub mod scorer;
pub mod spec;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}{}: {reason}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Spec {
        path: PathBuf,
        line: Option<usize>,
        reason: String,
    },
    #[error("{path}:{line}: {reason}")]
    Item {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("suite `{name}` has no items")]
    Empty { name: String },
    #[error("suite `{suite}`: prompt template: {reason}")]
    Template { suite: String, reason: String },
    #[error("unknown suite `{name}`; {hint}")]
    Unknown { name: String, hint: String },
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    #[error(transparent)]
    Import(#[from] import::ImportError),
    #[error("code sandbox: {0}")]
    Sandbox(String),
}

impl From<crate::model::tokenizer::TokenizerError> for SuiteError {
    fn from(e: crate::model::tokenizer::TokenizerError) -> Self {
        SuiteError::Model(e.into())
    }
}

impl From<crate::backend::BackendError> for SuiteError {
    fn from(e: crate::backend::BackendError) -> Self {
        match e {
            crate::backend::BackendError::Model(m) => SuiteError::Model(m),
            other => SuiteError::Model(crate::model::ModelError::Invalid(other.to_string())),
        }
    }
}

impl SuiteError {
    pub fn hint(&self) -> Option<String> {
        match self {
            SuiteError::Model(e) => e.hint(),
            SuiteError::Import(e) => e.hint(),
            SuiteError::Spec { .. } | SuiteError::Item { .. } => {
                Some("see suites/README.md for the suite format".into())
            }
            _ => None,
        }
    }
}

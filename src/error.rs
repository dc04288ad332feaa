//! The top-level error and the exit-code contract.
//!
//! Exit codes: 0 success (a gate passed), 1 a regression was found (a result, not an error),
//! 2 an error stopped the work — bad input, missing files, anything unexpected.

use crate::model::ModelError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Model(#[from] ModelError),

    #[error(transparent)]
    Data(#[from] crate::data::DataError),

    #[error(transparent)]
    Train(#[from] crate::train::TrainError),

    #[error(transparent)]
    Suite(#[from] crate::suite::SuiteError),

    #[error(transparent)]
    Gate(#[from] crate::gate::GateError),

    #[error(transparent)]
    Report(#[from] crate::report::ReportError),

    #[error(transparent)]
    Organism(Box<crate::organism::OrganismError>),

    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },

    #[error("{0}")]
    Usage(String),
}

impl Error {
    /// Advice printed as `hint:` lines under the error.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Model(e) => e.hint(),
            Error::Data(e) => e.hint(),
            Error::Train(e) => e.hint(),
            Error::Suite(e) => e.hint(),
            Error::Gate(e) => e.hint(),
            Error::Report(e) => e.hint(),
            Error::Organism(e) => match e.as_ref() {
                crate::organism::OrganismError::Train(t) => t.hint(),
                crate::organism::OrganismError::Suite(t) => t.hint(),
                crate::organism::OrganismError::Gate(t) => t.hint(),
                crate::organism::OrganismError::Report(t) => t.hint(),
                _ => None,
            },
            _ => None,
        }
    }
}

impl From<crate::organism::OrganismError> for Error {
    fn from(e: crate::organism::OrganismError) -> Error {
        Error::Organism(Box::new(e))
    }
}

/// What the process exits with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Success = 0,
    /// a regression was found (gate failed)
    Failure = 1,
    /// an error stopped the work
    Error = 2,
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(s: ExitStatus) -> Self {
        std::process::ExitCode::from(s as u8)
    }
}

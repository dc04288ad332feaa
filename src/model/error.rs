//! Errors of the model layer. Every variant that concerns a file names it.

use std::path::PathBuf;

use super::arch::Architecture;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: no such file")]
    MissingFile { path: PathBuf, hint: Option<String> },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("{path}:{line}:{column}: invalid JSON: {reason}")]
    InvalidJson {
        path: PathBuf,
        line: usize,
        column: usize,
        reason: String,
    },

    #[error("{path}: field `{field}`: {reason}")]
    InvalidConfig {
        path: PathBuf,
        field: String,
        reason: String,
    },

    #[error(
        "{path}: unknown architecture `{name}`; supported: {}",
        Architecture::supported_list()
    )]
    UnknownArchitecture { path: PathBuf, name: String },

    #[error("{path}: not a readable safetensors file: {reason}")]
    CorruptWeights { path: PathBuf, reason: String },

    #[error("{path}: tensor `{name}` is missing")]
    MissingTensor { path: PathBuf, name: String },

    #[error("{path}: tensor `{name}` has shape {found:?}, but the config implies {expected:?}")]
    ShapeMismatch {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },

    #[error("{path}: tensor `{name}` has unsupported dtype {dtype}")]
    UnsupportedDtype {
        path: PathBuf,
        name: String,
        dtype: String,
    },

    #[error(
        "{path}: the tokenizer has {tokenizer} tokens but the embedding has only {embedding} rows"
    )]
    VocabMismatch {
        path: PathBuf,
        tokenizer: usize,
        embedding: usize,
    },

    #[error(transparent)]
    Tokenizer(#[from] super::tokenizer::TokenizerError),

    #[error(transparent)]
    Device(#[from] super::device::DeviceError),

    #[error(transparent)]
    ChatTemplate(#[from] super::chat_template::ChatTemplateError),

    #[error("{context}: {source}")]
    Candle {
        context: String,
        source: candle_core::Error,
    },

    #[error("{0}")]
    Invalid(String),
}

impl ModelError {
    /// Advice for the user, printed as `hint:` under the error.
    pub fn hint(&self) -> Option<String> {
        match self {
            ModelError::MissingFile { hint, .. } => hint.clone(),
            ModelError::UnknownArchitecture { .. } => Some(
                "sft-eval reads `architectures[0]` of config.json; convert the model to one of the supported families"
                    .into(),
            ),
            ModelError::CorruptWeights { .. } => {
                Some("the file may be truncated or damaged (an interrupted download or copy?); fetch it again".into())
            }
            ModelError::ShapeMismatch { .. } => {
                Some("config.json and the weights disagree: check hidden_size, heads, head_dim and vocab_size".into())
            }
            ModelError::VocabMismatch { .. } => {
                Some("tokenizer.json belongs to another model, or vocab_size in config.json is wrong".into())
            }
            _ => None,
        }
    }

    pub fn candle(context: impl Into<String>) -> impl FnOnce(candle_core::Error) -> ModelError {
        let context = context.into();
        move |source| ModelError::Candle { context, source }
    }
}

/// Map an I/O error on `path`, turning "not found" into [`ModelError::MissingFile`].
pub(crate) fn io_error(path: &std::path::Path, e: std::io::Error) -> ModelError {
    if e.kind() == std::io::ErrorKind::NotFound {
        ModelError::MissingFile {
            path: path.to_path_buf(),
            hint: None,
        }
    } else {
        ModelError::Io {
            path: path.to_path_buf(),
            source: e,
        }
    }
}

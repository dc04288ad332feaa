//! Where a suite's scores come from: the in-process [`Model`](crate::model::Model), or a model
//! served behind an OpenAI-compatible HTTP API ([`openai::OpenAiBackend`]: vLLM, llama.cpp), or a
//! local GGUF file dequantized into the same decoder ([`gguf::GgufModel`]).
//!
//! The suite runner talks to a model only through [`LanguageModel`]: continuation
//! log-likelihoods, rolling log-likelihoods, and generation from a prompt text. Prompts are
//! rendered by the runner (few-shot, chat template) and handed over as text, so both backends
//! score exactly the same strings.

pub mod gguf;
pub mod local;
pub mod openai;

use crate::model::generate::Decoding;
use crate::model::score::LogLik;
use crate::model::{ChatTemplate, ModelError, Tokenizer};

/// One continuation log-likelihood request: `log p(continuation | context)`, split the
/// lm-evaluation-harness way (trailing whitespace of the context moves into the continuation).
#[derive(Debug, Clone, PartialEq)]
pub struct Continuation {
    pub context: String,
    pub continuation: String,
    /// whether the tokenizer adds its special tokens (false when a chat template placed them)
    pub add_special_tokens: bool,
}

/// What to generate from a prompt.
#[derive(Debug, Clone)]
pub struct GenerateRequest {
    pub max_new_tokens: usize,
    pub decoding: Decoding,
    /// generation ends at the first of these; the text is cut before it
    pub stop: Vec<String>,
}

/// One prompt to generate from: a suite item's prompt, or one of its pass@k samples.
#[derive(Debug, Clone)]
pub struct GenerateJob {
    pub prompt: String,
    /// whether the tokenizer adds its special tokens (false when a chat template placed them)
    pub add_special_tokens: bool,
    pub request: GenerateRequest,
}

/// The operations the suite scorers need from a model.
pub trait LanguageModel: Sync {
    /// A short description for messages (a folder, or `model at URL`).
    fn describe(&self) -> String;
    /// The tokenizer, where one is available (always for a local model; for a served model
    /// only with `--tokenizer DIR`).
    fn tokenizer(&self) -> Option<&Tokenizer>;
    /// The chat template that `chat = "auto"` suites use, where one is known.
    fn chat_template(&self) -> Option<&ChatTemplate>;
    /// The context length in tokens, where known.
    fn context_length(&self) -> Option<usize>;
    /// Tokens in `text`, where a tokenizer is available.
    fn count_tokens(
        &self,
        text: &str,
        add_special_tokens: bool,
    ) -> Result<Option<usize>, BackendError> {
        match self.tokenizer() {
            Some(t) => Ok(Some(
                t.encode(text, add_special_tokens)
                    .map_err(ModelError::from)?
                    .len(),
            )),
            None => Ok(None),
        }
    }
    /// Log-likelihood of each request, each run as its own sequence.
    fn loglikelihood(
        &self,
        requests: &[Continuation],
        batch_size: usize,
    ) -> Result<Vec<LogLik>, BackendError>;
    /// As [`loglikelihood`](Self::loglikelihood), free to share work between requests with the
    /// same context (the numbers agree up to float rounding).
    fn loglikelihood_shared(
        &self,
        requests: &[Continuation],
        batch_size: usize,
    ) -> Result<Vec<LogLik>, BackendError> {
        self.loglikelihood(requests, batch_size)
    }
    /// Total log-likelihood of a text and the number of tokens scored (lm-eval
    /// `loglikelihood_rolling`).
    fn loglikelihood_rolling(
        &self,
        text: &str,
        batch_size: usize,
    ) -> Result<(f64, usize), BackendError>;
    /// Generate a continuation of `prompt`; the text excludes the prompt and any stop string.
    fn generate(
        &self,
        prompt: &str,
        add_special_tokens: bool,
        request: &GenerateRequest,
    ) -> Result<String, BackendError>;
    /// [`generate`](Self::generate) for every job, in their order, `batch_size` at a time where
    /// the backend can batch (the texts are the same as one at a time). `on_done(job, tokens)`
    /// is called as each job finishes, with the number of generated tokens where known.
    fn generate_batch(
        &self,
        jobs: &[GenerateJob],
        batch_size: usize,
        on_done: &mut dyn FnMut(usize, Option<usize>),
    ) -> Result<Vec<String>, BackendError> {
        let _ = batch_size;
        jobs.iter()
            .enumerate()
            .map(|(i, j)| {
                let text = self.generate(&j.prompt, j.add_special_tokens, &j.request)?;
                on_done(i, None);
                Ok(text)
            })
            .collect()
    }
}

/// Why a backend could not answer.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("cannot reach the server at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{url}: HTTP {status}: {body}")]
    Http {
        url: String,
        status: u16,
        body: String,
    },
    #[error("the server at {url} does not serve a model named `{model}`; it serves: {served}")]
    UnknownModel {
        url: String,
        model: String,
        served: String,
    },
    #[error("{url}: {reason}")]
    BadResponse { url: String, reason: String },
    #[error("{0}")]
    Unsupported(String),
}

impl From<crate::model::tokenizer::TokenizerError> for BackendError {
    fn from(e: crate::model::tokenizer::TokenizerError) -> Self {
        BackendError::Model(e.into())
    }
}

impl From<BackendError> for crate::error::Error {
    fn from(e: BackendError) -> Self {
        crate::error::Error::Suite(e.into())
    }
}

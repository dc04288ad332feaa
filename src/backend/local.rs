//! The in-process model behind [`LanguageModel`]: thin calls into `model::score` and
//! `model::generate`, so scores are exactly those of the functions it calls.

use super::{BackendError, Continuation, GenerateRequest, LanguageModel};
use crate::model::generate::{generate, GenerateOptions};
use crate::model::score::{
    encode_pair, loglikelihood, loglikelihood_rolling, loglikelihood_shared, LogLik, Request,
};
use crate::model::{ChatTemplate, Model, Tokenizer};

/// Log-likelihoods must be finite: a NaN or an infinity (broken weights) is an error naming the
/// checkpoint, never a score.
fn finite(model: &Model, lls: Vec<LogLik>) -> Result<Vec<LogLik>, BackendError> {
    match lls.iter().position(|l| !l.logprob.is_finite()) {
        None => Ok(lls),
        Some(i) => Err(non_finite(model, lls[i].logprob)),
    }
}

fn non_finite(model: &Model, value: f64) -> BackendError {
    BackendError::Model(crate::model::ModelError::Invalid(format!(
        "{}: the model gives a log-likelihood of {value} (NaN or infinite weights?); no score is given",
        model.dir.display()
    )))
}

fn encode_all(model: &Model, requests: &[Continuation]) -> Result<Vec<Request>, BackendError> {
    Ok(requests
        .iter()
        .map(|r| encode_pair(model, &r.context, &r.continuation, r.add_special_tokens))
        .collect::<Result<Vec<_>, _>>()?)
}

impl LanguageModel for Model {
    fn describe(&self) -> String {
        self.dir.display().to_string()
    }

    fn tokenizer(&self) -> Option<&Tokenizer> {
        Some(&self.tokenizer)
    }

    fn chat_template(&self) -> Option<&ChatTemplate> {
        self.chat_template.as_ref()
    }

    fn context_length(&self) -> Option<usize> {
        self.config().context_length()
    }

    fn loglikelihood(
        &self,
        requests: &[Continuation],
        batch_size: usize,
    ) -> Result<Vec<LogLik>, BackendError> {
        finite(
            self,
            loglikelihood(self, &encode_all(self, requests)?, batch_size)?,
        )
    }

    fn loglikelihood_shared(
        &self,
        requests: &[Continuation],
        batch_size: usize,
    ) -> Result<Vec<LogLik>, BackendError> {
        finite(
            self,
            loglikelihood_shared(self, &encode_all(self, requests)?, batch_size)?,
        )
    }

    fn loglikelihood_rolling(
        &self,
        text: &str,
        batch_size: usize,
    ) -> Result<(f64, usize), BackendError> {
        let (ll, n) = loglikelihood_rolling(self, text, batch_size)?;
        if !ll.is_finite() {
            return Err(non_finite(self, ll));
        }
        Ok((ll, n))
    }

    fn generate(
        &self,
        prompt: &str,
        add_special_tokens: bool,
        request: &GenerateRequest,
    ) -> Result<String, BackendError> {
        let ids = self.tokenizer.encode(prompt, add_special_tokens)?;
        let opts = GenerateOptions {
            max_new_tokens: request.max_new_tokens,
            decoding: request.decoding.clone(),
            eos_token_ids: self.eos_token_ids(),
            stop_strings: request.stop.clone(),
        };
        generate(&self.decoder, &self.tokenizer, &ids, &opts, self.device())
            .map(|g| g.text)
            .map_err(|e| match e {
                crate::model::ModelError::Invalid(m) => BackendError::Model(
                    crate::model::ModelError::Invalid(format!("{}: {m}", self.dir.display())),
                ),
                other => other.into(),
            })
    }
}

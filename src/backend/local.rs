//! The in-process model behind [`LanguageModel`]: thin calls into `model::score` and
//! `model::generate`, so scores are exactly those of the functions it calls.

use super::{BackendError, Continuation, GenerateRequest, LanguageModel};
use crate::model::generate::{generate, GenerateOptions};
use crate::model::score::{
    encode_pair, loglikelihood, loglikelihood_rolling, loglikelihood_shared, LogLik, Request,
};
use crate::model::{ChatTemplate, Model, Tokenizer};

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
        Ok(loglikelihood(
            self,
            &encode_all(self, requests)?,
            batch_size,
        )?)
    }

    fn loglikelihood_shared(
        &self,
        requests: &[Continuation],
        batch_size: usize,
    ) -> Result<Vec<LogLik>, BackendError> {
        Ok(loglikelihood_shared(
            self,
            &encode_all(self, requests)?,
            batch_size,
        )?)
    }

    fn loglikelihood_rolling(
        &self,
        text: &str,
        batch_size: usize,
    ) -> Result<(f64, usize), BackendError> {
        Ok(loglikelihood_rolling(self, text, batch_size)?)
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
        Ok(generate(&self.decoder, &self.tokenizer, &ids, &opts, self.device())?.text)
    }
}

//! The in-process model behind [`LanguageModel`]: thin calls into `model::score` and
//! `model::generate`, so scores are exactly those of the functions it calls.

use super::{BackendError, Continuation, GenerateJob, GenerateRequest, LanguageModel};
use crate::model::generate::{generate_batch, BatchOptions, GenerateOptions, Job};
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
        let job = GenerateJob {
            prompt: prompt.to_string(),
            add_special_tokens,
            request: request.clone(),
        };
        let mut texts = self.generate_batch(std::slice::from_ref(&job), 1, &mut |_, _| {})?;
        Ok(texts.remove(0))
    }

    fn generate_batch(
        &self,
        jobs: &[GenerateJob],
        batch_size: usize,
        on_done: &mut dyn FnMut(usize, Option<usize>),
    ) -> Result<Vec<String>, BackendError> {
        let prompts = jobs
            .iter()
            .map(|j| self.tokenizer.encode(&j.prompt, j.add_special_tokens))
            .collect::<Result<Vec<_>, _>>()?;
        let eos = self.eos_token_ids();
        let opts: Vec<GenerateOptions> = jobs
            .iter()
            .map(|j| GenerateOptions {
                max_new_tokens: j.request.max_new_tokens,
                decoding: j.request.decoding.clone(),
                eos_token_ids: eos.clone(),
                stop_strings: j.request.stop.clone(),
            })
            .collect();
        let batch: Vec<Job> = prompts
            .iter()
            .zip(&opts)
            .map(|(prompt, opts)| Job { prompt, opts })
            .collect();
        generate_batch(
            &self.decoder,
            &self.tokenizer,
            &batch,
            &BatchOptions::new(batch_size),
            self.device(),
            &mut |j, g| on_done(j, Some(g.ids.len())),
        )
        .map(|gs| gs.into_iter().map(|g| g.text).collect())
        .map_err(|e| match e {
            crate::model::ModelError::Invalid(m) => BackendError::Model(
                crate::model::ModelError::Invalid(format!("{}: {m}", self.dir.display())),
            ),
            other => other.into(),
        })
    }
}

//! A model served behind an OpenAI-compatible `/v1/completions` API (vLLM, llama.cpp's server,
//! llama-cpp-python's server).
//!
//! - Log-likelihood: `POST /completions` with the text `context + continuation`, `echo: true`,
//!   `logprobs: 1`, `max_tokens: 1`, temperature 0. The server returns every prompt token with
//!   its text offset and log-probability; the continuation's tokens are those that end after the
//!   context's last character (so a token spanning the boundary counts as continuation, as in
//!   lm-evaluation-harness), and the one generated token is ignored. A response without
//!   log-probabilities for those tokens is an error, never a score.
//! - Generation: `POST /completions` with `stop`, `max_tokens`, temperature 0 (or the suite's
//!   sampling temperature, top-p 0.95 and a seed).
//! - The chat-completions API cannot return log-probabilities of the prompt, so log-likelihood
//!   suites need `/completions`.
//!
//! Requests of one batch run on up to `concurrency` threads; 429, 5xx and connection errors are
//! retried with exponential backoff; every request has a timeout. Errors name the URL.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{BackendError, Continuation, GenerateJob, GenerateRequest, LanguageModel};
use crate::model::generate::Decoding;

mod response;
use crate::model::score::LogLik;
use crate::model::{ChatTemplate, Tokenizer};
use response::{cut_at_stop, parse_echo, snippet, EchoToken};

/// How to reach a served model.
#[derive(Debug, Clone)]
pub struct OpenAiOptions {
    /// e.g. `http://localhost:8000/v1`
    pub base_url: String,
    /// the model name the server knows (`/v1/models` ids)
    pub model: String,
    /// a Hugging Face folder with the model's tokenizer.json (and chat template): used to count
    /// prompt tokens against the context and to render chat templates
    pub tokenizer_dir: Option<PathBuf>,
    /// requests in flight at once
    pub concurrency: usize,
    /// retries of a request after 429, 5xx or a connection error
    pub max_retries: u32,
    /// first backoff; doubled on each retry (capped at 30 s)
    pub backoff: Duration,
    /// per-request timeout
    pub timeout: Duration,
    /// PEM file of the certificate authorities to trust for an `https://` URL instead of the
    /// bundled web PKI roots (a private or self-signed server)
    pub ca_cert: Option<PathBuf>,
    /// sent as `Authorization: Bearer …`; never logged, cached or written to results
    pub api_key: Option<ApiKey>,
}

/// An API key: kept out of `Debug` output, messages, fingerprints and results.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: String) -> ApiKey {
        ApiKey(key)
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl OpenAiOptions {
    pub fn new(base_url: &str, model: &str) -> OpenAiOptions {
        OpenAiOptions {
            base_url: base_url.trim_end_matches('/').to_string(),
            model: model.to_string(),
            tokenizer_dir: None,
            concurrency: 4,
            max_retries: 6,
            backoff: Duration::from_millis(500),
            timeout: Duration::from_secs(300),
            ca_cert: None,
            api_key: None,
        }
    }
}

/// Whether a request failed in TLS (an untrusted or invalid certificate, a handshake the server
/// refused): retrying cannot help.
fn is_tls_error(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Rustls(_) | ureq::Error::Tls(_) | ureq::Error::Pem(_) => true,
        ureq::Error::Io(io) => io
            .get_ref()
            .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some()),
        _ => false,
    }
}

/// A connected served model (see the module docs).
pub struct OpenAiBackend {
    opts: OpenAiOptions,
    agent: ureq::Agent,
    tokenizer: Option<Tokenizer>,
    chat_template: Option<ChatTemplate>,
    context_length: Option<usize>,
    fingerprint: String,
}

impl OpenAiBackend {
    /// Check that the server answers and serves `opts.model` (`GET /models`), and load the
    /// tokenizer folder if one was given.
    pub fn connect(opts: OpenAiOptions) -> Result<OpenAiBackend, BackendError> {
        let https = opts.base_url.starts_with("https://");
        if !https && !opts.base_url.starts_with("http://") {
            return Err(BackendError::Unsupported(format!(
                "--base-url {}: the URL must start with http:// or https://",
                opts.base_url
            )));
        }
        let mut tls = ureq::tls::TlsConfig::builder().provider(ureq::tls::TlsProvider::Rustls);
        if let Some(path) = &opts.ca_cert {
            let bad = |reason: String| {
                BackendError::Model(crate::model::ModelError::Invalid(format!(
                    "--ca-cert {}: {reason}",
                    path.display()
                )))
            };
            let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
            let certs = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(format!("not a PEM file: {e}")))?;
            if certs.is_empty() {
                return Err(bad("holds no PEM certificate".into()));
            }
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(opts.timeout))
            .http_status_as_error(false)
            .https_only(https)
            .tls_config(tls.build())
            .build()
            .into();
        let (tokenizer, chat_template, tok_fp) = match &opts.tokenizer_dir {
            Some(d) => (
                Some(Tokenizer::from_dir(d)?),
                ChatTemplate::from_dir(d).map_err(crate::model::ModelError::from)?,
                crate::model::fingerprint::tokenizer_fingerprint(d)?,
            ),
            None => (None, None, String::new()),
        };
        let mut b = OpenAiBackend {
            opts,
            agent,
            tokenizer,
            chat_template,
            context_length: None,
            fingerprint: String::new(),
        };
        let url = format!("{}/models", b.opts.base_url);
        let models = b.request(&url, None)?;
        let data = models
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| BackendError::BadResponse {
                url: url.clone(),
                reason: "no `data` list of models in the response".into(),
            })?;
        let entry = data
            .iter()
            .find(|m| m.get("id").and_then(Value::as_str) == Some(b.opts.model.as_str()))
            .ok_or_else(|| BackendError::UnknownModel {
                url: url.clone(),
                model: b.opts.model.clone(),
                served: data
                    .iter()
                    .filter_map(|m| m.get("id").and_then(Value::as_str))
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        // vLLM: max_model_len; llama.cpp's server: meta.n_ctx_train
        b.context_length = entry
            .get("max_model_len")
            .or_else(|| entry.pointer("/meta/n_ctx_train"))
            .and_then(Value::as_u64)
            .map(|n| n as usize);
        let mut stable = entry.clone();
        if let Some(o) = stable.as_object_mut() {
            // vLLM stamps `created` with the request time
            o.remove("created");
        }
        let mut h = Sha256::new();
        h.update(b"openai\0");
        h.update(b.opts.base_url.as_bytes());
        h.update(b"\0");
        h.update(b.opts.model.as_bytes());
        h.update(b"\0");
        h.update(serde_json::to_vec(&stable).expect("JSON serialises"));
        h.update(b"\0");
        h.update(tok_fp.as_bytes());
        b.fingerprint = h.finalize().iter().map(|x| format!("{x:02x}")).collect();
        Ok(b)
    }

    /// Content fingerprint for the results cache and `EvalResults.model`: base URL, model name,
    /// the server's `/models` entry for it (less timestamps) and the tokenizer folder's
    /// fingerprint.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn options(&self) -> &OpenAiOptions {
        &self.opts
    }

    /// GET (no body) or POST a JSON body, retrying 429, 5xx and connection errors.
    fn request(&self, url: &str, body: Option<&Value>) -> Result<Value, BackendError> {
        let mut attempt = 0u32;
        loop {
            let auth = self
                .opts
                .api_key
                .as_ref()
                .map(|k| format!("Bearer {}", k.0));
            let res = match body {
                Some(b) => {
                    let mut req = self.agent.post(url);
                    if let Some(a) = &auth {
                        req = req.header("Authorization", a);
                    }
                    req.send_json(b)
                }
                None => {
                    let mut req = self.agent.get(url);
                    if let Some(a) = &auth {
                        req = req.header("Authorization", a);
                    }
                    req.call()
                }
            };
            let retry = match res {
                Ok(mut resp) => {
                    let status = resp.status().as_u16();
                    let text = resp.body_mut().read_to_string().unwrap_or_default();
                    if (200..300).contains(&status) {
                        return serde_json::from_str(&text).map_err(|e| {
                            BackendError::BadResponse {
                                url: url.to_string(),
                                reason: format!("not JSON ({e}): {}", snippet(&text)),
                            }
                        });
                    }
                    let err = self.status_error(url, status, &text);
                    if status == 429 || status >= 500 {
                        err
                    } else {
                        return Err(err);
                    }
                }
                // a certificate the client does not trust is not a passing fault: no retry
                Err(e) if is_tls_error(&e) => {
                    return Err(BackendError::Unreachable {
                        url: url.to_string(),
                        reason: format!(
                            "TLS: {e} (a private or self-signed server needs --ca-cert FILE with its CA certificate)"
                        ),
                    })
                }
                Err(e) => BackendError::Unreachable {
                    url: url.to_string(),
                    reason: e.to_string(),
                },
            };
            if attempt >= self.opts.max_retries {
                return Err(match retry {
                    BackendError::Unreachable { url, reason } => BackendError::Unreachable {
                        url,
                        reason: format!("{reason} (after {} retries)", self.opts.max_retries),
                    },
                    other => other,
                });
            }
            let wait = self
                .opts
                .backoff
                .saturating_mul(1 << attempt.min(16))
                .min(Duration::from_secs(30));
            std::thread::sleep(wait);
            attempt += 1;
        }
    }

    fn status_error(&self, url: &str, status: u16, body: &str) -> BackendError {
        let lower = body.to_lowercase();
        if (status == 404 || status == 400)
            && lower.contains("model")
            && (lower.contains("does not exist") || lower.contains("not found"))
        {
            return BackendError::UnknownModel {
                url: url.to_string(),
                model: self.opts.model.clone(),
                served: format!("(server said: {})", snippet(body)),
            };
        }
        if status == 404 && url.ends_with("/completions") {
            return BackendError::Http {
                url: url.to_string(),
                status,
                body: format!(
                    "{}; the server has no completions API. sft-eval needs `/completions` (chat-completions cannot return the log-probabilities of a prompt, which log-likelihood suites score)",
                    snippet(body)
                ),
            };
        }
        BackendError::Http {
            url: url.to_string(),
            status,
            body: snippet(body),
        }
    }

    fn completions_url(&self) -> String {
        format!("{}/completions", self.opts.base_url)
    }

    /// Echoed prompt tokens of `text`: (text offset in chars, logprob, top logprob), for tokens
    /// starting before the end of `text` (the generated token is dropped).
    fn echo(&self, text: &str) -> Result<Vec<EchoToken>, BackendError> {
        let url = self.completions_url();
        let body = json!({
            "model": self.opts.model,
            "prompt": text,
            "max_tokens": 1,
            "echo": true,
            "logprobs": 1,
            "temperature": 0.0,
        });
        let v = self.request(&url, Some(&body))?;
        parse_echo(&v, text).map_err(|reason| BackendError::BadResponse { url, reason })
    }

    fn loglik_one(&self, r: &Continuation) -> Result<LogLik, BackendError> {
        let trimmed = r.context.trim_end();
        let text = format!("{}{}", r.context, r.continuation);
        let boundary = trimmed.chars().count();
        let toks = self.echo(&text)?;
        let total = text.chars().count();
        let url = self.completions_url();
        let mut logprob = 0.0;
        let mut greedy = true;
        let mut n = 0;
        for (i, t) in toks.iter().enumerate() {
            let end = toks.get(i + 1).map_or(total, |u| u.offset);
            if end <= boundary {
                continue;
            }
            let lp = t.logprob.ok_or_else(|| BackendError::BadResponse {
                url: url.clone(),
                reason: format!(
                    "no log-probability for continuation token {i} of {:?} (does the server add a BOS token?)",
                    snippet(&text)
                ),
            })?;
            logprob += lp;
            n += 1;
            greedy &= t.top.is_none_or(|top| top <= lp + 1e-5);
        }
        if n == 0 && !r.continuation.trim().is_empty() {
            return Err(BackendError::BadResponse {
                url,
                reason: format!(
                    "no continuation tokens found by text offset in {:?}",
                    snippet(&text)
                ),
            });
        }
        Ok(LogLik {
            logprob,
            is_greedy: greedy,
            tokens: n,
        })
    }
}

impl LanguageModel for OpenAiBackend {
    fn describe(&self) -> String {
        format!("`{}` at {}", self.opts.model, self.opts.base_url)
    }

    fn tokenizer(&self) -> Option<&Tokenizer> {
        self.tokenizer.as_ref()
    }

    fn chat_template(&self) -> Option<&ChatTemplate> {
        self.chat_template.as_ref()
    }

    fn context_length(&self) -> Option<usize> {
        self.context_length
    }

    fn loglikelihood(
        &self,
        requests: &[Continuation],
        _batch_size: usize,
    ) -> Result<Vec<LogLik>, BackendError> {
        self.fan_out(requests, |r| self.loglik_one(r))
    }

    fn loglikelihood_rolling(
        &self,
        _text: &str,
        _batch_size: usize,
    ) -> Result<(f64, usize), BackendError> {
        Err(BackendError::Unsupported(format!(
            "rolling log-likelihood (scorer `rolling_nll`) is not supported with the openai backend ({}): the server cannot score the first token of a text, so the numbers would not match the local backend's",
            self.describe()
        )))
    }

    fn generate(
        &self,
        prompt: &str,
        _add_special_tokens: bool,
        request: &GenerateRequest,
    ) -> Result<String, BackendError> {
        self.generate_one(prompt, request).map(|(text, _)| text)
    }

    /// Up to `--concurrency` requests in flight (a server such as vLLM batches them); `on_done`
    /// is called once all have come back.
    fn generate_batch(
        &self,
        jobs: &[GenerateJob],
        _batch_size: usize,
        on_done: &mut dyn FnMut(usize, Option<usize>),
    ) -> Result<Vec<String>, BackendError> {
        let out = self.fan_out(jobs, |j| self.generate_one(&j.prompt, &j.request))?;
        Ok(out
            .into_iter()
            .enumerate()
            .map(|(i, (text, tokens))| {
                on_done(i, tokens);
                text
            })
            .collect())
    }
}

impl OpenAiBackend {
    /// Run `one` on every item, up to `--concurrency` at once (a pool of its own, so that
    /// waiting on the network never holds the compute threads); results in the items' order,
    /// the first error stops the rest.
    fn fan_out<T: Sync, R: Send>(
        &self,
        items: &[T],
        one: impl Fn(&T) -> Result<R, BackendError> + Sync,
    ) -> Result<Vec<R>, BackendError> {
        use rayon::prelude::*;
        let workers = self.opts.concurrency.clamp(1, items.len().max(1));
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(workers)
            .build()
            .map_err(|e| {
                BackendError::Unsupported(format!("cannot start {workers} request threads: {e}"))
            })?;
        pool.install(|| items.par_iter().map(&one).collect())
    }

    /// One completion: the text cut at the first stop string, and the generated tokens where
    /// the server reports them (`usage.completion_tokens`).
    fn generate_one(
        &self,
        prompt: &str,
        request: &GenerateRequest,
    ) -> Result<(String, Option<usize>), BackendError> {
        let url = self.completions_url();
        let mut body = json!({
            "model": self.opts.model,
            "prompt": prompt,
            "max_tokens": request.max_new_tokens,
            "temperature": 0.0,
            // llama-cpp-python's server penalises repeats by default (1.1), which changes even
            // greedy outputs; servers without the field ignore it
            "repeat_penalty": 1.0,
        });
        if !request.stop.is_empty() {
            body["stop"] = json!(request.stop);
        }
        if let Decoding::Sample {
            temperature,
            top_p,
            seed,
        } = request.decoding
        {
            body["temperature"] = json!(temperature);
            body["top_p"] = json!(top_p);
            body["seed"] = json!(seed);
        }
        let v = self.request(&url, Some(&body))?;
        let text = v
            .pointer("/choices/0/text")
            .and_then(Value::as_str)
            .ok_or_else(|| BackendError::BadResponse {
                url: url.clone(),
                reason: format!("no `choices[0].text` in {}", snippet(&v.to_string())),
            })?;
        let tokens = v
            .pointer("/usage/completion_tokens")
            .and_then(Value::as_u64)
            .map(|n| n as usize);
        Ok((cut_at_stop(text, &request.stop), tokens))
    }
}

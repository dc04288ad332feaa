//! A model's tokenizer, loaded the way transformers 5 loads a `tokenizer.json` model
//! (`TokenizersBackend`): the `tokenizers` pipeline from tokenizer.json as is, plus what
//! tokenizer_config.json (and the legacy special_tokens_map.json) adds on top:
//!
//! * the named special tokens (`bos_token`, `eos_token`, ..., and model-specific `*_token`s),
//!   whose values may be strings or AddedToken dicts `{"content": ..}`;
//! * tokens those files name that tokenizer.json does not have are added, as transformers does
//!   (`added_tokens_decoder` entries, then named and extra special tokens);
//! * `add_bos_token` / `add_eos_token` are ignored: transformers drops them when tokenizer.json
//!   exists, so only tokenizer.json's post-processor decides what `add_special_tokens` adds;
//! * padding and truncation stored in tokenizer.json are turned off (transformers' `encode`
//!   turns them off per call unless asked);
//! * `split_special_tokens` and `clean_up_tokenization_spaces` are honoured; the latter is
//!   skipped for BPE models, as transformers does unless
//!   `clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output` is set.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use tokenizers::models::ModelWrapper;
use tokenizers::AddedToken;

mod special_tokens;
#[cfg(test)]
mod tests;

pub(crate) use special_tokens::read_special_tokens_config;
use special_tokens::TokenSpec;

const TOKENIZER_FILE: &str = "tokenizer.json";
const CONFIG_FILE: &str = "tokenizer_config.json";
const SPECIAL_TOKENS_MAP_FILE: &str = "special_tokens_map.json";

/// transformers' `SPECIAL_TOKENS_ATTRIBUTES`, in its order.
pub const SPECIAL_TOKEN_NAMES: [&str; 7] = [
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
];

/// Byte ranges `(start, end)` into the encoded text, one per token.
pub type Offsets = Vec<(usize, usize)>;

/// Errors from loading or running a tokenizer; each names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("{} not found: a tokenizer needs tokenizer.json", .path.display())]
    Missing { path: PathBuf },
    #[error("cannot read {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not valid JSON: {source}", .path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// tokenizer.json is JSON but the `tokenizers` library cannot build a tokenizer from it.
    #[error("{} is not a tokenizer the `tokenizers` library can load: {message}", .path.display())]
    Load { path: PathBuf, message: String },
    #[error("{}: {message}", .path.display())]
    Config { path: PathBuf, message: String },
    #[error("tokenizer {}: cannot encode: {message}", .path.display())]
    Encode { path: PathBuf, message: String },
    #[error("tokenizer {}: cannot decode: {message}", .path.display())]
    Decode { path: PathBuf, message: String },
}

/// A model's tokenizer: tokenizer.json via the `tokenizers` crate plus the special tokens named in
/// tokenizer_config.json / special_tokens_map.json (values may be strings or AddedToken dicts
/// `{"content": ..}`).
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    path: PathBuf,
    named: Vec<(String, String)>,
    clean_up_tokenization_spaces: bool,
    adds_bos: bool,
    vocab_size: usize,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("path", &self.path)
            .field("vocab_size", &self.vocab_size)
            .field("special_tokens", &self.named)
            .field("adds_bos", &self.adds_bos)
            .finish()
    }
}

impl Tokenizer {
    /// Loads tokenizer.json (required), tokenizer_config.json and special_tokens_map.json
    /// (optional) from `dir`. Errors name the file and what is wrong with it.
    pub fn from_dir(dir: &Path) -> Result<Tokenizer, TokenizerError> {
        let path = dir.join(TOKENIZER_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(TokenizerError::Missing { path })
            }
            Err(source) => return Err(TokenizerError::Io { path, source }),
        };
        let mut inner: tokenizers::Tokenizer = match text.parse() {
            Ok(t) => t,
            Err(e) => {
                // Say "not JSON" when it is not, rather than the library's serde message.
                return Err(match serde_json::from_str::<serde::de::IgnoredAny>(&text) {
                    Err(source) => TokenizerError::Json { path, source },
                    Ok(_) => TokenizerError::Load {
                        path,
                        message: e.to_string(),
                    },
                });
            }
        };
        let special = read_special_tokens_config(dir)?;
        let config = &special.config;
        let config_path = dir.join(CONFIG_FILE);

        // Padding/truncation from tokenizer.json: transformers disables both per call.
        let padding_pad_token = inner.get_padding().map(|p| p.pad_token.clone());
        inner.with_padding(None);
        inner
            .with_truncation(None)
            .map_err(|e| TokenizerError::Load {
                path: path.clone(),
                message: e.to_string(),
            })?;

        let mut named = special.named.clone();
        // `kwargs.setdefault("pad_token", padding["pad_token"])` when tokenizer.json pads.
        if let Some(pad) = padding_pad_token {
            if !config.contains_key("pad_token") && special.named_token("pad_token").is_none() {
                named.push((
                    "pad_token".to_string(),
                    TokenSpec {
                        content: pad,
                        flags: None,
                    },
                ));
                named.sort_by_key(|(n, _)| {
                    SPECIAL_TOKEN_NAMES
                        .iter()
                        .position(|x| x == n)
                        .unwrap_or(SPECIAL_TOKEN_NAMES.len())
                });
            }
        }

        // Tokens the config names that tokenizer.json lacks are added, in transformers' order:
        // every added_tokens_decoder entry (the library skips identical ones), then named and
        // extra special tokens whose text is not an added token yet.
        let mut known: Vec<String> = inner
            .get_added_tokens_decoder()
            .values()
            .map(|t| t.content.clone())
            .collect();
        let mut to_add: Vec<AddedToken> = Vec::new();
        for (_, spec) in &special.added_tokens_decoder {
            to_add.push(spec.to_added_token(false));
            known.push(spec.content.clone());
        }
        let named_specs = named.iter().map(|(_, s)| (s, true));
        for (spec, is_named) in named_specs.chain(special.extra.iter().map(|s| (s, false))) {
            if !known.contains(&spec.content) {
                to_add.push(spec.to_added_token(is_named));
                known.push(spec.content.clone());
            }
        }
        if !to_add.is_empty() {
            inner
                .add_tokens(to_add)
                .map_err(|e| TokenizerError::Config {
                    path: config_path.clone(),
                    message: format!("cannot add its special tokens: {e}"),
                })?;
        }

        let flag = |key: &str| config.get(key).and_then(Value::as_bool).unwrap_or(false);
        inner.set_encode_special_tokens(flag("split_special_tokens"));
        let is_bpe = matches!(inner.get_model(), ModelWrapper::BPE(_));
        let clean_up_tokenization_spaces = flag("clean_up_tokenization_spaces")
            && (!is_bpe
                || flag("clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output"));

        let vocab_size = inner
            .get_vocab(true)
            .values()
            .copied()
            .max()
            .map_or(0, |max| max as usize + 1);

        let named: Vec<(String, String)> = named
            .into_iter()
            .map(|(name, spec)| (name, spec.content))
            .collect();
        let mut tokenizer = Tokenizer {
            inner,
            path,
            named,
            clean_up_tokenization_spaces,
            adds_bos: false,
            vocab_size,
        };
        tokenizer.adds_bos = tokenizer.compute_adds_bos()?;
        Ok(tokenizer)
    }

    fn compute_adds_bos(&self) -> Result<bool, TokenizerError> {
        let Some(bos) = self.bos_token().and_then(|b| self.token_to_id(b)) else {
            return Ok(false);
        };
        let with = self.encode("", true)?;
        let without = self.encode("", false)?;
        Ok(with.first() == Some(&bos) && without.first() != Some(&bos))
    }

    /// Token ids of `text`; `add_special_tokens` applies tokenizer.json's post-processor.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>, TokenizerError> {
        self.inner
            .encode_fast(text, add_special_tokens)
            .map(|enc| enc.get_ids().to_vec())
            .map_err(|e| self.encode_error(e))
    }

    /// Token ids plus, for each token, its byte range in `text` (special tokens added by the
    /// post-processor get `(0, 0)`).
    pub fn encode_with_offsets(
        &self,
        text: &str,
        add_special_tokens: bool,
    ) -> Result<(Vec<u32>, Offsets), TokenizerError> {
        let enc = self
            .inner
            .encode(text, add_special_tokens)
            .map_err(|e| self.encode_error(e))?;
        Ok((enc.get_ids().to_vec(), enc.get_offsets().to_vec()))
    }

    /// Like transformers' `tokenizer.decode(ids, skip_special_tokens=...)`.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String, TokenizerError> {
        let text =
            self.inner
                .decode(ids, skip_special_tokens)
                .map_err(|e| TokenizerError::Decode {
                    path: self.path.clone(),
                    message: e.to_string(),
                })?;
        Ok(if self.clean_up_tokenization_spaces {
            clean_up_tokenization(&text)
        } else {
            text
        })
    }

    /// Number of ids, including added tokens (max id + 1).
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    pub fn bos_token(&self) -> Option<&str> {
        self.named_token("bos_token")
    }

    pub fn eos_token(&self) -> Option<&str> {
        self.named_token("eos_token")
    }

    pub fn pad_token(&self) -> Option<&str> {
        self.named_token("pad_token")
    }

    pub fn unk_token(&self) -> Option<&str> {
        self.named_token("unk_token")
    }

    fn named_token(&self, name: &str) -> Option<&str> {
        self.named
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.as_str())
    }

    /// The named special tokens (transformers' `special_tokens_map`, which is also what chat
    /// templates receive) as (name, token, id).
    pub fn special_tokens(&self) -> Vec<(String, String, Option<u32>)> {
        self.named
            .iter()
            .map(|(n, t)| (n.clone(), t.clone(), self.token_to_id(t)))
            .collect()
    }

    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// The tokenizer.json this was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether `encode(.., true)` adds a BOS (decided by tokenizer.json's post-processor only,
    /// as transformers 5 does).
    pub fn adds_bos(&self) -> bool {
        self.adds_bos
    }

    fn encode_error(&self, e: tokenizers::Error) -> TokenizerError {
        TokenizerError::Encode {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }
}

/// transformers' `clean_up_tokenization`.
fn clean_up_tokenization(text: &str) -> String {
    text.replace(" .", ".")
        .replace(" ?", "?")
        .replace(" !", "!")
        .replace(" ,", ",")
        .replace(" ' ", "'")
        .replace(" n't", "n't")
        .replace(" 'm", "'m")
        .replace(" 's", "'s")
        .replace(" 've", "'ve")
        .replace(" 're", "'re")
}

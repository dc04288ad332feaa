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

/// A token as tokenizer_config.json / special_tokens_map.json write it: a plain string or an
/// AddedToken dict.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TokenSpec {
    pub content: String,
    /// `None` for a plain string.
    pub flags: Option<TokenFlags>,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TokenFlags {
    pub single_word: bool,
    pub lstrip: bool,
    pub rstrip: bool,
    pub normalized: Option<bool>,
    pub special: bool,
}

impl TokenSpec {
    fn parse(value: &Value) -> Option<TokenSpec> {
        match value {
            Value::String(s) => Some(TokenSpec {
                content: s.clone(),
                flags: None,
            }),
            Value::Object(o) => {
                let content = o.get("content")?.as_str()?.to_string();
                let flag = |k: &str| o.get(k).and_then(Value::as_bool).unwrap_or(false);
                Some(TokenSpec {
                    content,
                    flags: Some(TokenFlags {
                        single_word: flag("single_word"),
                        lstrip: flag("lstrip"),
                        rstrip: flag("rstrip"),
                        normalized: o.get("normalized").and_then(Value::as_bool),
                        special: flag("special"),
                    }),
                })
            }
            _ => None,
        }
    }

    /// The `tokenizers` AddedToken transformers builds: a string becomes
    /// `AddedToken(s, special=True)` (so not normalized); a dict keeps its flags, with
    /// `normalized` defaulting to `not special`.
    fn to_added_token(&self, force_special: bool) -> AddedToken {
        match &self.flags {
            None => AddedToken::from(self.content.clone(), true),
            Some(f) => {
                let special = f.special || force_special;
                AddedToken::from(self.content.clone(), special)
                    .single_word(f.single_word)
                    .lstrip(f.lstrip)
                    .rstrip(f.rstrip)
                    .normalized(f.normalized.unwrap_or(!f.special))
            }
        }
    }
}

/// What tokenizer_config.json (and, when it has no `added_tokens_decoder`, the legacy
/// special_tokens_map.json) say about special tokens, resolved as transformers' `_from_pretrained`
/// and `PreTrainedTokenizerBase.__init__` do.
#[derive(Clone, Debug, Default)]
pub(crate) struct SpecialTokensConfig {
    /// The tokenizer_config.json object (empty when the file is absent).
    pub config: Map<String, Value>,
    /// Named special tokens in transformers' `special_tokens_map` order: the standard
    /// attributes, then model-specific `*_token`s.
    pub named: Vec<(String, TokenSpec)>,
    /// `extra_special_tokens` (formerly `additional_special_tokens`) given as a list.
    pub extra: Vec<TokenSpec>,
    /// `added_tokens_decoder` entries, sorted by id.
    pub added_tokens_decoder: Vec<(u32, TokenSpec)>,
}

impl SpecialTokensConfig {
    pub(crate) fn named_token(&self, name: &str) -> Option<&str> {
        self.named
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.content.as_str())
    }
}

pub(crate) fn read_json_object(path: &Path) -> Result<Option<Map<String, Value>>, TokenizerError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(TokenizerError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(other) => Err(TokenizerError::Config {
            path: path.to_path_buf(),
            message: format!(
                "expected a JSON object at the top level, found {}",
                json_kind(&other)
            ),
        }),
        Err(source) => Err(TokenizerError::Json {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads the special-token configuration of the model in `dir`.
pub(crate) fn read_special_tokens_config(
    dir: &Path,
) -> Result<SpecialTokensConfig, TokenizerError> {
    let config_path = dir.join(CONFIG_FILE);
    let config = read_json_object(&config_path)?.unwrap_or_default();
    let bad = |message: String| TokenizerError::Config {
        path: config_path.clone(),
        message,
    };

    // init_kwargs, in file order; additional_special_tokens is the old name of extra_special_tokens.
    let mut kwargs = config.clone();
    if kwargs.contains_key("additional_special_tokens")
        && kwargs.get("extra_special_tokens").is_none_or(is_falsy)
    {
        let v = kwargs
            .remove("additional_special_tokens")
            .unwrap_or(Value::Null);
        kwargs.insert("extra_special_tokens".into(), v);
    }

    // Model-specific tokens named as plain strings in the config (and a dict of
    // extra_special_tokens) are collected before special_tokens_map.json is merged.
    let mut explicit: Vec<(String, Value)> = Vec::new();
    let custom_keys: Vec<String> = kwargs
        .iter()
        .filter(|(k, v)| is_custom_token_key(k) && v.is_string())
        .map(|(k, _)| k.clone())
        .collect();
    for key in custom_keys {
        if let Some(v) = kwargs.remove(&key) {
            explicit.push((key, v));
        }
    }
    if let Some(Value::Object(extra)) = kwargs.get("extra_special_tokens").cloned() {
        kwargs.remove("extra_special_tokens");
        for (k, v) in extra {
            upsert(&mut explicit, k, v);
        }
    }

    let mut added_tokens_decoder = Vec::new();
    match config.get("added_tokens_decoder") {
        Some(Value::Object(decoder)) => {
            for (id, token) in decoder {
                let id: u32 = id.parse().map_err(|_| {
                    bad(format!("added_tokens_decoder key {id:?} is not a token id"))
                })?;
                let spec = TokenSpec::parse(token).ok_or_else(|| {
                    bad(format!(
                        "added_tokens_decoder[{id}] is not an AddedToken dict"
                    ))
                })?;
                added_tokens_decoder.push((id, spec));
            }
            added_tokens_decoder.sort_by_key(|(id, _)| *id);
        }
        Some(Value::Null) | None => {
            // Legacy: special_tokens_map.json overrides the config's values.
            let map_path = dir.join(SPECIAL_TOKENS_MAP_FILE);
            if let Some(map) = read_json_object(&map_path)? {
                for (key, value) in map {
                    if key == "extra_special_tokens" || key == "additional_special_tokens" {
                        if let Value::Array(list) = value {
                            let mut existing = match kwargs.get("extra_special_tokens") {
                                Some(Value::Array(l)) => l.clone(),
                                _ => Vec::new(),
                            };
                            for tok in list {
                                if !existing.contains(&tok) {
                                    existing.push(tok);
                                }
                            }
                            kwargs.insert("extra_special_tokens".into(), Value::Array(existing));
                        } else if let Value::Object(named) = value {
                            for (k, v) in named {
                                upsert(&mut explicit, k, v);
                            }
                        }
                    } else {
                        // Dict values become AddedToken(**value, special=True).
                        let value = match value {
                            Value::Object(mut o) => {
                                o.insert("special".into(), Value::Bool(true));
                                Value::Object(o)
                            }
                            other => other,
                        };
                        kwargs.insert(key, value);
                    }
                }
            }
        }
        Some(other) => {
            return Err(bad(format!(
                "added_tokens_decoder must be an object, found {}",
                json_kind(other)
            )))
        }
    }

    let mut named = Vec::new();
    for name in SPECIAL_TOKEN_NAMES {
        match kwargs.get(name) {
            None | Some(Value::Null) => {}
            Some(v) => {
                let spec = TokenSpec::parse(v).ok_or_else(|| {
                    bad(format!(
                        "{name} must be a string or an AddedToken dict with \"content\", found {v}"
                    ))
                })?;
                named.push((name.to_string(), spec));
            }
        }
    }
    // Model-specific tokens: those still in kwargs (AddedToken dicts, or from
    // special_tokens_map.json) first, then the explicit ones.
    let mut model_specific: Vec<(String, Value)> = kwargs
        .iter()
        .filter(|(k, v)| is_custom_token_key(k) && (v.is_string() || v.get("content").is_some()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in explicit {
        upsert(&mut model_specific, k, v);
    }
    for (name, v) in model_specific {
        if let Some(spec) = TokenSpec::parse(&v) {
            named.push((name, spec));
        }
    }

    let extra = match kwargs.get("extra_special_tokens") {
        Some(Value::Array(list)) => list.iter().filter_map(TokenSpec::parse).collect(),
        _ => Vec::new(),
    };

    Ok(SpecialTokensConfig {
        config,
        named,
        extra,
        added_tokens_decoder,
    })
}

fn is_falsy(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
    }
}

fn is_custom_token_key(key: &str) -> bool {
    key.ends_with("_token") && !SPECIAL_TOKEN_NAMES.contains(&key)
}

fn upsert(list: &mut Vec<(String, Value)>, key: String, value: Value) {
    match list.iter_mut().find(|(k, _)| *k == key) {
        Some(entry) => entry.1 = value,
        None => list.push((key, value)),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
    }

    /// Every fixture model (tests/fixtures/models/<variant>/ with a tokenizer.json) and its
    /// reference file tests/fixtures/expected/<variant>.json, computed by transformers.
    fn fixture_variants() -> Vec<(String, PathBuf, Value)> {
        let models = fixtures().join("models");
        let Ok(entries) = std::fs::read_dir(&models) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for entry in entries.filter_map(Result::ok) {
            let dir = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let expected = fixtures().join("expected").join(format!("{name}.json"));
            if !dir.join(TOKENIZER_FILE).is_file() || !expected.is_file() {
                continue;
            }
            let text = std::fs::read_to_string(&expected).unwrap();
            out.push((name, dir, serde_json::from_str(&text).unwrap()));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    fn ids_of(v: &Value) -> Vec<u32> {
        v.as_array()
            .expect("ids")
            .iter()
            .map(|x| x.as_u64().expect("id") as u32)
            .collect()
    }

    #[test]
    fn fixture_models_match_transformers() {
        let variants = fixture_variants();
        let mut failures = Vec::new();
        let mut checked = 0;
        for (name, dir, expected) in &variants {
            let tok = Tokenizer::from_dir(dir).unwrap_or_else(|e| panic!("{name}: {e}"));
            for case in expected["tokenization"].as_array().into_iter().flatten() {
                let text = case["text"].as_str().unwrap();
                let want = ids_of(&case["ids"]);
                checked += 1;
                match tok.encode(text, true) {
                    Ok(got) if got == want => {}
                    other => failures.push(format!(
                        "{name}: encode({text:?}) = {other:?}, want {want:?}"
                    )),
                }
                let (ids, offsets) = tok.encode_with_offsets(text, true).unwrap();
                if ids != want {
                    failures.push(format!(
                        "{name}: encode_with_offsets({text:?}) ids {ids:?}, want {want:?}"
                    ));
                }
                assert_eq!(ids.len(), offsets.len());
                for &(start, end) in &offsets {
                    assert!(
                        start <= end && end <= text.len(),
                        "{name}: offset {start}..{end} in {text:?}"
                    );
                    assert!(
                        text.is_char_boundary(start) && text.is_char_boundary(end),
                        "{name}: {text:?}"
                    );
                }
                if text.is_empty() {
                    // transformers adds exactly the BOS to "" when its post-processor does.
                    let bos = tok.bos_token().and_then(|b| tok.token_to_id(b));
                    assert_eq!(
                        tok.adds_bos(),
                        bos.is_some() && want == vec![bos.unwrap()],
                        "{name}: adds_bos"
                    );
                }
            }
            for case in expected["decode"].as_array().into_iter().flatten() {
                let ids = ids_of(&case["ids"]);
                let skip = case["skip_special_tokens"].as_bool().unwrap();
                let want = case["text"].as_str().unwrap();
                checked += 1;
                match tok.decode(&ids, skip) {
                    Ok(got) if got == want => {}
                    other => failures.push(format!(
                        "{name}: decode({ids:?}, {skip}) = {other:?}, want {want:?}"
                    )),
                }
            }
            for (_, token, id) in tok.special_tokens() {
                if let Some(id) = id {
                    assert_eq!(
                        tok.id_to_token(id).as_deref(),
                        Some(token.as_str()),
                        "{name}"
                    );
                }
            }
            assert!(tok.vocab_size() > 0 && tok.vocab_size() >= tok.inner().get_vocab_size(true));
        }
        assert!(
            failures.is_empty(),
            "{} of {checked} checks differ:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    /// A WordLevel tokenizer whose tokenizer.json pads and truncates, whose post-processor adds
    /// `<s>`, and whose config names tokens tokenizer.json lacks. Expected values were computed
    /// with transformers 5.24 (`AutoTokenizer.from_pretrained` on the same files).
    const TINY_TOKENIZER: &str = r#"{"version": "1.0",
 "truncation": {"direction": "Right", "max_length": 3, "strategy": "LongestFirst", "stride": 0},
 "padding": {"strategy": {"Fixed": 8}, "direction": "Right", "pad_to_multiple_of": null, "pad_id": 9, "pad_type_id": 0, "pad_token": "<pad>"},
 "added_tokens": [{"id": 0, "content": "<unk>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
                  {"id": 1, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}],
 "normalizer": {"type": "Lowercase"}, "pre_tokenizer": {"type": "Whitespace"},
 "post_processor": {"type": "TemplateProcessing",
   "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
   "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
   "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
 "decoder": null,
 "model": {"type": "WordLevel", "vocab": {"<unk>": 0, "<s>": 1, "hello": 2, "world": 3, ",": 4, ".": 5, "don": 6, "'": 7, "t": 8, "<pad>": 9, "</s>": 10}, "unk_token": "<unk>"}}"#;

    const TINY_CONFIG: &str = r#"{"tokenizer_class": "PreTrainedTokenizerFast", "add_bos_token": false, "add_eos_token": true,
 "bos_token": "<s>", "eos_token": {"__type": "AddedToken", "content": "</s>", "special": true, "normalized": false},
 "unk_token": "<unk>", "image_token": "<image>", "clean_up_tokenization_spaces": true,
 "extra_special_tokens": ["<extra>"]}"#;

    fn tiny_dir(config: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(TOKENIZER_FILE), TINY_TOKENIZER).unwrap();
        if let Some(config) = config {
            std::fs::write(dir.path().join(CONFIG_FILE), config).unwrap();
        }
        dir
    }

    #[test]
    fn tiny_tokenizer_matches_transformers() {
        let dir = tiny_dir(Some(TINY_CONFIG));
        let tok = Tokenizer::from_dir(dir.path()).unwrap();
        // Truncation (3) and padding (8) from tokenizer.json are off; add_bos_token=false is
        // ignored because the post-processor adds <s>.
        assert_eq!(
            tok.encode("Hello, world.", true).unwrap(),
            vec![1, 2, 4, 3, 5]
        );
        assert_eq!(
            tok.encode("Hello, world.", false).unwrap(),
            vec![2, 4, 3, 5]
        );
        assert_eq!(tok.encode("", true).unwrap(), vec![1]);
        assert!(tok.adds_bos());
        // </s> (in the vocab) and the config-only <image>/<extra> become special added tokens.
        let (ids, offsets) = tok
            .encode_with_offsets("hello <image> world</s> <extra>", true)
            .unwrap();
        assert_eq!(ids, vec![1, 2, 11, 3, 10, 12]);
        assert_eq!(
            offsets,
            vec![(0, 0), (0, 5), (6, 13), (14, 19), (19, 23), (24, 31)]
        );
        let (ids, offsets) = tok.encode_with_offsets("HELLO don't", true).unwrap();
        assert_eq!(ids, vec![1, 2, 6, 7, 8]);
        assert_eq!(offsets, vec![(0, 0), (0, 5), (6, 9), (9, 10), (10, 11)]);
        // clean_up_tokenization_spaces applies (the model is not BPE).
        assert_eq!(
            tok.decode(&[1, 2, 4, 3, 5], false).unwrap(),
            "<s> hello, world."
        );
        assert_eq!(tok.decode(&[1, 2, 4, 3, 5], true).unwrap(), "hello, world.");
        assert_eq!(
            tok.decode(&[2, 11, 10, 12, 6, 7, 8], true).unwrap(),
            "hello don't"
        );
        assert_eq!(
            tok.decode(&[2, 11, 10, 12, 6, 7, 8], false).unwrap(),
            "hello <image> </s> <extra> don't"
        );
        assert_eq!(tok.vocab_size(), 13);
        assert_eq!(tok.bos_token(), Some("<s>"));
        assert_eq!(tok.eos_token(), Some("</s>"));
        assert_eq!(tok.unk_token(), Some("<unk>"));
        assert_eq!(
            tok.pad_token(),
            Some("<pad>"),
            "pad_token comes from tokenizer.json's padding"
        );
        assert_eq!(
            tok.special_tokens(),
            vec![
                ("bos_token".to_string(), "<s>".to_string(), Some(1)),
                ("eos_token".to_string(), "</s>".to_string(), Some(10)),
                ("unk_token".to_string(), "<unk>".to_string(), Some(0)),
                ("pad_token".to_string(), "<pad>".to_string(), Some(9)),
                ("image_token".to_string(), "<image>".to_string(), Some(11)),
            ]
        );
        assert_eq!(tok.token_to_id("<extra>"), Some(12));
        assert_eq!(tok.id_to_token(11).as_deref(), Some("<image>"));
        assert_eq!(tok.path(), dir.path().join(TOKENIZER_FILE));
    }

    #[test]
    fn tokenizer_without_config_and_legacy_special_tokens_map() {
        let dir = tiny_dir(None);
        let tok = Tokenizer::from_dir(dir.path()).unwrap();
        assert_eq!(tok.bos_token(), None);
        assert_eq!(tok.pad_token(), Some("<pad>"));
        assert!(
            !tok.adds_bos(),
            "no bos_token named, so nothing counts as a BOS"
        );
        assert_eq!(
            tok.decode(&[2, 4], false).unwrap(),
            "hello ,",
            "no clean-up by default"
        );
        assert_eq!(tok.vocab_size(), 11);

        // special_tokens_map.json is read when the config has no added_tokens_decoder.
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            r#"{"bos_token": "<unk>", "split_special_tokens": true}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join(SPECIAL_TOKENS_MAP_FILE),
            r#"{"bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>"}"#,
        )
        .unwrap();
        let tok = Tokenizer::from_dir(dir.path()).unwrap();
        assert_eq!(tok.bos_token(), Some("<s>"));
        assert_eq!(tok.eos_token(), Some("</s>"));
        assert!(tok.adds_bos());
        // split_special_tokens: "<s>" in text is not matched as the special token.
        assert_eq!(tok.encode("<s>", false).unwrap(), vec![0, 0, 0]);

        // ...and ignored when it has one.
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            r#"{"bos_token": "<unk>", "added_tokens_decoder": {"0": {"content": "<unk>", "special": true}}}"#,
        )
        .unwrap();
        let tok = Tokenizer::from_dir(dir.path()).unwrap();
        assert_eq!(tok.bos_token(), Some("<unk>"));
        assert!(!tok.adds_bos());
    }

    #[test]
    fn missing_tokenizer_json_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = Tokenizer::from_dir(dir.path()).unwrap_err();
        assert!(matches!(err, TokenizerError::Missing { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains(&dir.path().join("tokenizer.json").display().to_string()),
            "{msg}"
        );
    }

    #[test]
    fn corrupt_files_are_named_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(TOKENIZER_FILE);
        std::fs::write(&path, "{\"version\": \"1.0\", \"model\": ").unwrap();
        let err = Tokenizer::from_dir(dir.path()).unwrap_err();
        assert!(matches!(err, TokenizerError::Json { .. }), "{err:?}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );

        std::fs::write(
            &path,
            r#"{"version": "1.0", "model": {"type": "NoSuchModel"}}"#,
        )
        .unwrap();
        let err = Tokenizer::from_dir(dir.path()).unwrap_err();
        assert!(matches!(err, TokenizerError::Load { .. }), "{err:?}");
        assert!(err.to_string().contains("tokenizer.json"), "{err}");

        std::fs::write(&path, TINY_TOKENIZER).unwrap();
        let config = dir.path().join(CONFIG_FILE);
        std::fs::write(&config, "{\"bos_token\": ").unwrap();
        let err = Tokenizer::from_dir(dir.path()).unwrap_err();
        assert!(matches!(err, TokenizerError::Json { .. }), "{err:?}");
        assert!(
            err.to_string().contains(&config.display().to_string()),
            "{err}"
        );

        std::fs::write(&config, "{\"bos_token\": 7}").unwrap();
        let err = Tokenizer::from_dir(dir.path()).unwrap_err();
        assert!(matches!(err, TokenizerError::Config { .. }), "{err:?}");
        assert!(
            err.to_string().contains("tokenizer_config.json")
                && err.to_string().contains("bos_token"),
            "{err}"
        );
    }
}

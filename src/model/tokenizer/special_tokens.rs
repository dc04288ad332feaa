//! What tokenizer_config.json and special_tokens_map.json say about special tokens: the named
//! tokens (strings or AddedToken dicts), the extra ones and `added_tokens_decoder`, resolved as
//! transformers resolves them.

use super::*;

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
    pub(super) fn to_added_token(&self, force_special: bool) -> AddedToken {
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

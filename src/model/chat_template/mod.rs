//! Chat templates: render a model's Jinja chat template byte-for-byte the way transformers'
//! `apply_chat_template(..., tokenize=False)` does.
//!
//! transformers compiles templates in a jinja2 `ImmutableSandboxedEnvironment` with
//! `trim_blocks=True, lstrip_blocks=True`, the `loopcontrols` extension and its own
//! `{% generation %}` tag, a `tojson` filter that is `json.dumps(x, ensure_ascii=False, ...)`,
//! and the globals `raise_exception` and `strftime_now`. It renders with the variables
//! `messages`, `tools`, `documents` (both `None` unless given), `add_generation_prompt`, every
//! named special token (`bos_token`, `eos_token`, ...) and any extra keyword arguments.
//! This module does the same with minijinja, patching the places where minijinja and jinja2
//! differ in ways a chat template can observe (how values print, Python string methods, `tojson`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use minijinja::value::{from_args, Rest, ValueKind};
use minijinja::{AutoEscape, Environment, ErrorKind, State, UndefinedBehavior, Value};
use serde_json::Map;

use super::tokenizer::{read_special_tokens_config, TokenizerError};

mod filters;
mod json;
mod python;
mod source;
#[cfg(test)]
mod tests;
mod time;

use filters::{
    escape_filter, first_filter, float_filter, indent_filter, int_filter, join_filter, last_filter,
    length_filter, round_filter, string_filter, trim_filter,
};
use json::tojson_filter;
use python::{py_str, python_method, raise_exception, RaisedException};
use source::preprocess_source;
use time::strftime_now;

/// One chat message with plain string content.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Message {
        Message {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// Errors from loading, compiling or rendering a chat template. Every variant that comes from a
/// template names the file it came from.
#[derive(Debug, thiserror::Error)]
pub enum ChatTemplateError {
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
    #[error("{}: {message}", .path.display())]
    Config { path: PathBuf, message: String },
    #[error("syntax error in chat template {}: {message}", location(.origin, *.line))]
    Syntax {
        origin: PathBuf,
        line: Option<usize>,
        message: String,
    },
    /// The template called `raise_exception(message)`, e.g. because the roles do not alternate.
    #[error("chat template {} raised an exception: {message}", .origin.display())]
    Raised { origin: PathBuf, message: String },
    #[error("error rendering chat template {}: {message}", location(.origin, *.line))]
    Render {
        origin: PathBuf,
        line: Option<usize>,
        message: String,
    },
    #[error("invalid chat for template {}: {message}", .origin.display())]
    InvalidInput { origin: PathBuf, message: String },
}

fn location(origin: &Path, line: Option<usize>) -> String {
    match line {
        Some(line) => format!("{} (template line {line})", origin.display()),
        None => origin.display().to_string(),
    }
}

/// Rendered text and the byte ranges `{% generation %}` blocks produced in it.
pub type GenerationSpans = (String, Vec<std::ops::Range<usize>>);

/// Sentinels (Unicode private use) around `{% generation %}` output in marking mode.
const GEN_START: char = '\u{10FFFD}';
const GEN_END: char = '\u{10FFFC}';

const TEMPLATE_FILE: &str = "chat_template.jinja";
const CONFIG_FILE: &str = "tokenizer_config.json";

/// A compiled chat template plus the special tokens it is rendered with.
#[derive(Clone)]
pub struct ChatTemplate {
    env: Environment<'static>,
    /// compiled with `{% generation %}` blocks marked, when the template has any
    span_env: Option<Environment<'static>>,
    name: String,
    source: String,
    origin: PathBuf,
    /// (name, token) in transformers' order, e.g. ("bos_token", "<s>").
    special_tokens: Vec<(String, String)>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("origin", &self.origin)
            .field("special_tokens", &self.special_tokens)
            .field("source_len", &self.source.len())
            .finish()
    }
}

impl ChatTemplate {
    /// Loads the template of the model in `dir`. `chat_template.jinja` wins over
    /// tokenizer_config.json's `chat_template` (a string, or a list of `{name, template}` of
    /// which "default" is used). `Ok(None)` when the model has no template. The named special
    /// tokens are read like transformers does (tokenizer_config.json, and special_tokens_map.json
    /// when the config has no `added_tokens_decoder`).
    pub fn from_dir(dir: &Path) -> Result<Option<ChatTemplate>, ChatTemplateError> {
        let config_path = dir.join(CONFIG_FILE);
        // The named special tokens, read as the tokenizer reads them (tokenizer_config.json, and
        // special_tokens_map.json when the config has no `added_tokens_decoder`).
        let special = read_special_tokens_config(dir)?;

        let template_path = dir.join(TEMPLATE_FILE);
        let (source, origin) = if template_path.is_file() {
            let raw = std::fs::read(&template_path).map_err(|source| ChatTemplateError::Io {
                path: template_path.clone(),
                source,
            })?;
            let text = String::from_utf8(raw).map_err(|e| ChatTemplateError::Config {
                path: template_path.clone(),
                message: format!("not valid UTF-8: {e}"),
            })?;
            (python_universal_newlines(&text), template_path)
        } else {
            match special.config.get("chat_template") {
                None | Some(serde_json::Value::Null) => return Ok(None),
                Some(value) => (
                    template_from_config(value, &config_path)?,
                    config_path.clone(),
                ),
            }
        };

        let mut template = ChatTemplate::new(source, None, None, origin)?;
        template.special_tokens = special
            .named
            .into_iter()
            .map(|(name, token)| (name, token.content))
            .collect();
        Ok(Some(template))
    }

    /// Compiles `source`. A syntax error names `origin` and the template line.
    pub fn new(
        source: String,
        bos_token: Option<String>,
        eos_token: Option<String>,
        origin: PathBuf,
    ) -> Result<ChatTemplate, ChatTemplateError> {
        let name = origin
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "chat_template".to_string());
        // jinja2's lexer normalises every newline in the source to "\n".
        let source = python_universal_newlines(&source);
        let processed = preprocess_source(&source, false).map_err(|(line, message)| {
            ChatTemplateError::Syntax {
                origin: origin.clone(),
                line: Some(line),
                message,
            }
        })?;
        let env =
            build_environment(&name, &processed).map_err(|err| ChatTemplateError::Syntax {
                origin: origin.clone(),
                line: err.line(),
                message: err.detail().unwrap_or("invalid template").to_string(),
            })?;
        let mut special_tokens = Vec::new();
        if let Some(bos) = bos_token {
            special_tokens.push(("bos_token".to_string(), bos));
        }
        if let Some(eos) = eos_token {
            special_tokens.push(("eos_token".to_string(), eos));
        }
        // A second compilation that reports where `{% generation %}` blocks put their text.
        let span_env = if source.contains("generation") {
            preprocess_source(&source, true)
                .ok()
                .filter(|p| p.contains("filter generation_span"))
                .and_then(|p| build_environment(&name, &p).ok())
        } else {
            None
        };
        Ok(ChatTemplate {
            env,
            span_env,
            name,
            source,
            origin,
            special_tokens,
        })
    }

    /// Sets (or replaces) a named special token passed to the template, e.g. `("pad_token", "<pad>")`.
    pub fn with_special_token(mut self, name: &str, token: &str) -> ChatTemplate {
        match self.special_tokens.iter_mut().find(|(n, _)| n == name) {
            Some(entry) => entry.1 = token.to_string(),
            None => self
                .special_tokens
                .push((name.to_string(), token.to_string())),
        }
        self
    }

    /// The special tokens the template sees, as (name, token).
    pub fn special_tokens(&self) -> &[(String, String)] {
        &self.special_tokens
    }

    /// Renders plain role/content messages, like `apply_chat_template(messages, tokenize=False,
    /// add_generation_prompt=...)`.
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String, ChatTemplateError> {
        let messages = serde_json::to_value(messages).map_err(|e| self.invalid(e.to_string()))?;
        self.render_json(&messages, add_generation_prompt, &Map::new())
    }

    /// Renders arbitrary JSON messages (tool calls, content parts, reasoning) with extra keyword
    /// arguments (e.g. `tools`, `documents`, `enable_thinking`), which override special tokens.
    pub fn render_json(
        &self,
        messages: &serde_json::Value,
        add_generation_prompt: bool,
        extra: &Map<String, serde_json::Value>,
    ) -> Result<String, ChatTemplateError> {
        let ctx = self.context(messages, add_generation_prompt, extra)?;
        self.render_in(&self.env, &ctx)
    }

    /// The keyword arguments of `compiled_template.render(...)`, in transformers' order.
    fn context(
        &self,
        messages: &serde_json::Value,
        add_generation_prompt: bool,
        extra: &Map<String, serde_json::Value>,
    ) -> Result<Map<String, serde_json::Value>, ChatTemplateError> {
        let messages = self.normalize_messages(messages)?;
        for reserved in ["messages", "add_generation_prompt"] {
            if extra.contains_key(reserved) {
                return Err(self.invalid(format!(
                    "`{reserved}` cannot be passed as an extra template argument"
                )));
            }
        }
        let mut ctx = Map::new();
        ctx.insert("messages".into(), serde_json::Value::Array(messages));
        ctx.insert("tools".into(), serde_json::Value::Null);
        ctx.insert("documents".into(), serde_json::Value::Null);
        ctx.insert(
            "add_generation_prompt".into(),
            serde_json::Value::Bool(add_generation_prompt),
        );
        for (name, token) in &self.special_tokens {
            ctx.insert(name.clone(), serde_json::Value::String(token.clone()));
        }
        for (key, value) in extra {
            ctx.insert(key.clone(), value.clone());
        }
        Ok(ctx)
    }

    fn render_in(
        &self,
        env: &Environment<'static>,
        ctx: &Map<String, serde_json::Value>,
    ) -> Result<String, ChatTemplateError> {
        env.get_template(&self.name)
            .and_then(|t| super::jinja::render(&t, Value::from_serialize(ctx)))
            .map_err(|err| self.map_error(err))
    }

    /// Whether the template marks assistant text with `{% generation %}` blocks.
    pub fn has_generation_blocks(&self) -> bool {
        self.span_env.is_some()
    }

    /// Render like [`ChatTemplate::render`] and return the byte ranges of the output that
    /// `{% generation %}` blocks produced (what transformers' `return_assistant_tokens_mask`
    /// marks). `None` when the template has no such blocks.
    pub fn render_generation_spans(
        &self,
        messages: &[Message],
    ) -> Result<Option<GenerationSpans>, ChatTemplateError> {
        let Some(env) = &self.span_env else {
            return Ok(None);
        };
        let value = serde_json::to_value(messages).map_err(|e| self.invalid(e.to_string()))?;
        let ctx = self.context(&value, false, &Map::new())?;
        let marked = self.render_in(env, &ctx)?;
        let mut text = String::with_capacity(marked.len());
        let mut spans = Vec::new();
        let mut open: Option<usize> = None;
        for c in marked.chars() {
            match c {
                GEN_START => open = Some(text.len()),
                GEN_END => {
                    if let Some(start) = open.take() {
                        if start < text.len() {
                            spans.push(start..text.len());
                        }
                    }
                }
                c => text.push(c),
            }
        }
        Ok(Some((text, spans)))
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn origin(&self) -> &Path {
        &self.origin
    }

    fn invalid(&self, message: String) -> ChatTemplateError {
        ChatTemplateError::InvalidInput {
            origin: self.origin.clone(),
            message,
        }
    }

    /// What `apply_chat_template` does to the conversation before rendering: reject empty chats
    /// and non-dict messages, drop keys whose value is None, and copy reasoning under the names
    /// templates read (`thinking` first, `reasoning_content` last).
    fn normalize_messages(
        &self,
        messages: &serde_json::Value,
    ) -> Result<Vec<serde_json::Value>, ChatTemplateError> {
        let list = messages
            .as_array()
            .ok_or_else(|| self.invalid("messages must be a JSON array".to_string()))?;
        if list.is_empty() {
            return Err(self.invalid(
                "Cannot apply chat template to an empty conversation. Provide at least one message."
                    .to_string(),
            ));
        }
        let mut out = Vec::with_capacity(list.len());
        for message in list {
            let obj = message.as_object().ok_or_else(|| {
                self.invalid(format!(
                    "Chat messages should be dicts, dataclasses or pydantic models, but got {message}."
                ))
            })?;
            let mut msg: Map<String, serde_json::Value> = obj
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let reasoning = ["reasoning_content", "thinking", "reasoning"]
                .iter()
                .find_map(|key| msg.get(*key).cloned());
            if let Some(reasoning) = reasoning {
                // {"thinking": r, **message, "reasoning_content": r}
                let mut aliased = Map::new();
                aliased.insert("thinking".into(), reasoning.clone());
                for (k, v) in msg {
                    aliased.insert(k, v);
                }
                aliased.insert("reasoning_content".into(), reasoning);
                msg = aliased;
            }
            out.push(serde_json::Value::Object(msg));
        }
        Ok(out)
    }

    fn map_error(&self, err: minijinja::Error) -> ChatTemplateError {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&err);
        while let Some(e) = cause {
            if let Some(raised) = e.downcast_ref::<RaisedException>() {
                return ChatTemplateError::Raised {
                    origin: self.origin.clone(),
                    message: raised.0.clone(),
                };
            }
            cause = e.source();
        }
        if err.kind() == ErrorKind::SyntaxError {
            return ChatTemplateError::Syntax {
                origin: self.origin.clone(),
                line: err.line(),
                message: err.detail().unwrap_or("invalid template").to_string(),
            };
        }
        ChatTemplateError::Render {
            origin: self.origin.clone(),
            line: err.line(),
            message: describe(&err),
        }
    }
}

/// The message of a minijinja error without its "(in name:line)" suffix.
fn describe(err: &minijinja::Error) -> String {
    match err.detail() {
        Some(detail) => format!("{}: {detail}", err.kind()),
        None => err.kind().to_string(),
    }
}

/// Python's text-mode `open().read()` turns "\r\n" and lone "\r" into "\n".
fn python_universal_newlines(text: &str) -> String {
    if !text.contains('\r') {
        return text.to_string();
    }
    text.replace("\r\n", "\n").replace('\r', "\n")
}

fn template_from_config(
    value: &serde_json::Value,
    path: &Path,
) -> Result<String, ChatTemplateError> {
    let bad = |message: String| ChatTemplateError::Config {
        path: path.to_path_buf(),
        message,
    };
    match value {
        serde_json::Value::String(s) => Ok(s.clone()),
        serde_json::Value::Array(items) => {
            let mut names = Vec::new();
            for item in items {
                let name = item.get("name").and_then(|v| v.as_str());
                let template = item.get("template").and_then(|v| v.as_str());
                match (name, template) {
                    (Some("default"), Some(t)) => return Ok(t.to_string()),
                    (Some(n), Some(_)) => names.push(n.to_string()),
                    _ => {
                        return Err(bad(
                            "`chat_template` list entries must be {\"name\": .., \"template\": ..}"
                                .to_string(),
                        ))
                    }
                }
            }
            names.sort();
            Err(bad(format!(
                "This model has multiple chat templates with no default specified! Available template names are {names:?}."
            )))
        }
        other => Err(bad(format!(
            "`chat_template` must be a string or a list of {{name, template}}, not {other}"
        ))),
    }
}

impl From<TokenizerError> for ChatTemplateError {
    fn from(err: TokenizerError) -> ChatTemplateError {
        match err {
            TokenizerError::Io { path, source } => ChatTemplateError::Io { path, source },
            TokenizerError::Json { path, source } => ChatTemplateError::Json { path, source },
            TokenizerError::Config { path, message } => ChatTemplateError::Config { path, message },
            other => ChatTemplateError::Config {
                path: PathBuf::from(CONFIG_FILE),
                message: other.to_string(),
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The environment
// ---------------------------------------------------------------------------------------------

fn build_environment(name: &str, source: &str) -> Result<Environment<'static>, minijinja::Error> {
    let mut env = Environment::new();
    super::jinja::limit(&mut env);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(false);
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_formatter(|out, _state, value| {
        if value.is_undefined() {
            return Ok(());
        }
        match value.as_str() {
            Some(s) if value.kind() == ValueKind::String => out.write_str(s)?,
            _ => out.write_str(&py_str(value))?,
        }
        Ok(())
    });
    env.set_unknown_method_callback(python_method);
    env.add_filter("tojson", tojson_filter);
    env.add_filter("trim", trim_filter);
    env.add_filter("string", string_filter);
    env.add_filter("length", length_filter);
    env.add_filter("count", length_filter);
    env.add_filter("round", round_filter);
    env.add_filter("join", join_filter);
    env.add_filter("first", first_filter);
    env.add_filter("last", last_filter);
    env.add_filter("int", int_filter);
    env.add_filter("float", float_filter);
    env.add_filter("indent", indent_filter);
    env.add_filter("escape", escape_filter);
    env.add_filter("e", escape_filter);
    env.add_filter("generation_span", |s: String| {
        format!("{GEN_START}{s}{GEN_END}")
    });
    env.add_function("raise_exception", raise_exception);
    env.add_function("strftime_now", strftime_now);
    env.add_template_owned(name.to_string(), source.to_string())?;
    Ok(env)
}

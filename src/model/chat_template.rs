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

/// Rewrites the template source where jinja2's lexer and minijinja's disagree, keeping every
/// line where it was so error line numbers still point into the original file:
///
/// * transformers registers a `{% generation %}...{% endgeneration %}` block tag that renders its
///   body unchanged (it only records where assistant text is). minijinja has no custom tags, so
///   these become `{% if true %}` / `{% endif %}`, which keep the same whitespace control.
/// * jinja2 decodes string literals with Python's `unicode-escape` codec (`\` + newline is a line
///   continuation, `\a`, `\v`, `\U0001F600`, unknown escapes keep their backslash); literals with
///   a backslash are decoded that way here and re-escaped in a form minijinja reads back exactly.
fn preprocess_source(source: &str, mark_generation: bool) -> Result<String, (usize, String)> {
    if !source.contains('\\') && !source.contains("generation") {
        return Ok(source.to_string());
    }
    let line_at = |pos: usize| source[..pos].matches('\n').count() + 1;
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < source.len() {
        let Some(start) = find_tag_start(&source[i..]).map(|p| p + i) else {
            out.push_str(&source[i..]);
            break;
        };
        out.push_str(&source[i..start]);
        let open = &source[start..start + 2];
        if open == "{#" {
            let end = source[start + 2..]
                .find("#}")
                .map(|p| start + 2 + p + 2)
                .unwrap_or(source.len());
            out.push_str(&source[start..end]);
            i = end;
            continue;
        }
        if open == "{%" && block_tag_name(&source[start..]).is_some_and(|(name, _)| name == "raw") {
            // Copy the raw block verbatim up to and including its endraw tag.
            let mut j = start + 2;
            let end = loop {
                match find_tag_start(&source[j..]) {
                    Some(p) if source[j + p..].starts_with("{%") => {
                        if let Some(("endraw", len)) = block_tag_name(&source[j + p..]) {
                            break j + p + len;
                        }
                        j += p + 2;
                    }
                    Some(p) => j += p + 2,
                    None => break source.len(),
                }
            };
            out.push_str(&source[start..end]);
            i = end;
            continue;
        }
        // A `{{ ... }}` or `{% ... %}` tag: copy it, rewriting string literals with escapes.
        let close = if open == "{{" { "}}" } else { "%}" };
        let mut tag = String::from(open);
        let mut depth = 0usize;
        let mut j = start + 2;
        let mut closed = false;
        while j < source.len() {
            let rest = &source[j..];
            if depth == 0 && rest.starts_with(close) {
                tag.push_str(close);
                j += 2;
                closed = true;
                break;
            }
            let c = rest.chars().next().unwrap_or(' ');
            match c {
                '\'' | '"' => {
                    let len = string_literal_len(rest, c);
                    let literal = &rest[..len];
                    if literal.contains('\\') && len >= 2 && literal.ends_with(c) {
                        let decoded = python_unescape(&literal[1..len - 1])
                            .map_err(|msg| (line_at(j), msg))?;
                        let encoded = minijinja_string_literal(&decoded, c);
                        let lost = literal.matches('\n').count() - encoded.matches('\n').count();
                        tag.push_str(&encoded);
                        tag.extend(std::iter::repeat_n('\n', lost));
                    } else {
                        tag.push_str(literal);
                    }
                    j += len;
                    continue;
                }
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            }
            tag.push(c);
            j += c.len_utf8();
        }
        if closed && open == "{%" {
            if let Some(rewritten) = rewrite_generation_tag(&tag, mark_generation) {
                tag = rewritten;
            }
        }
        out.push_str(&tag);
        i = j;
    }
    Ok(out)
}

/// Offset of the next `{{`, `{%` or `{#`.
fn find_tag_start(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut from = 0;
    while let Some(p) = s[from..].find('{') {
        let p = from + p;
        if matches!(bytes.get(p + 1), Some(b'{' | b'%' | b'#')) {
            return Some(p);
        }
        from = p + 1;
    }
    None
}

/// For a `{% name %}` tag with nothing but a name (e.g. raw, endraw), its name and length.
fn block_tag_name(s: &str) -> Option<(&str, usize)> {
    // the closing `%}` after the opening `{%` (in `{%}` they overlap)
    let end = s.get(2..)?.find("%}")? + 2;
    let inner = &s[2..end];
    let inner = inner.strip_prefix(['-', '+']).unwrap_or(inner);
    let inner = inner.strip_suffix(['-', '+']).unwrap_or(inner).trim();
    if !inner.is_empty() && inner.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Some((inner, end + 2))
    } else {
        None
    }
}

fn rewrite_generation_tag(tag: &str, mark: bool) -> Option<String> {
    let inner = tag.get(2..tag.len().checked_sub(2)?)?;
    let (open_mod, body) = match inner.strip_prefix(['-', '+']) {
        Some(b) => (&inner[..1], b),
        None => ("", inner),
    };
    let (body, close_mod) = match body.strip_suffix(['-', '+']) {
        Some(b) => (b, &body[body.len() - 1..]),
        None => (body, ""),
    };
    // In marking mode the block becomes a filter that wraps its output in sentinels (a block
    // tag too, so trim_blocks/lstrip_blocks and `-` modifiers act exactly as on `if`).
    let replacement = match (body.trim(), mark) {
        ("generation", false) => "if true",
        ("endgeneration", false) => "endif",
        ("generation", true) => "filter generation_span",
        ("endgeneration", true) => "endfilter",
        _ => return None,
    };
    Some(format!("{{%{open_mod} {replacement} {close_mod}%}}"))
}

/// Length in bytes of the string literal at the start of `s` (quote to quote, or to the end).
fn string_literal_len(s: &str, quote: char) -> usize {
    let mut escaped = false;
    for (idx, c) in s.char_indices().skip(1) {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == quote {
            return idx + 1;
        }
    }
    s.len()
}

/// Python's `unicode-escape` decoding of a string literal's body.
fn python_unescape(body: &str) -> Result<String, String> {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars().peekable();
    let hex = |chars: &mut std::iter::Peekable<std::str::Chars>, n: usize, what: &str| {
        let digits: String = (0..n)
            .map_while(|_| chars.next_if(|c| c.is_ascii_hexdigit()))
            .collect();
        if digits.len() != n {
            return Err(format!("truncated {what} escape"));
        }
        let value = u32::from_str_radix(&digits, 16).map_err(|e| e.to_string())?;
        if value > 0x10FFFF {
            return Err("illegal Unicode character".to_string());
        }
        Ok(char::from_u32(value).unwrap_or('\u{FFFD}'))
    };
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(d) = chars.next() else {
            return Err("\\ at end of string".to_string());
        };
        match d {
            '\n' => {}
            '\\' | '\'' | '"' => out.push(d),
            'a' => out.push('\u{7}'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\u{b}'),
            '0'..='7' => {
                let mut value = d.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match chars.next_if(|c| ('0'..='7').contains(c)) {
                        Some(o) => value = value * 8 + o.to_digit(8).unwrap_or(0),
                        None => break,
                    }
                }
                out.push(char::from_u32(value).unwrap_or('\u{FFFD}'));
            }
            'x' => out.push(hex(&mut chars, 2, "\\xXX")?),
            'u' => out.push(hex(&mut chars, 4, "\\uXXXX")?),
            'U' => out.push(hex(&mut chars, 8, "\\UXXXXXXXX")?),
            'N' => return Err("\\N{...} escapes are not supported".to_string()),
            other => {
                out.push('\\');
                out.push(other);
            }
        }
    }
    Ok(out)
}

/// A minijinja string literal that unescapes to exactly `s`.
fn minijinja_string_literal(s: &str, quote: char) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// The error `raise_exception` raises; found again in the error chain to report it as
/// [`ChatTemplateError::Raised`].
#[derive(Debug)]
struct RaisedException(String);

impl std::fmt::Display for RaisedException {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RaisedException {}

fn raise_exception(message: Value) -> Result<Value, minijinja::Error> {
    let message = py_str(&message);
    Err(
        minijinja::Error::new(ErrorKind::InvalidOperation, message.clone())
            .with_source(RaisedException(message)),
    )
}

fn type_error(message: impl Into<String>) -> minijinja::Error {
    minijinja::Error::new(ErrorKind::InvalidOperation, message.into())
}

// ---------------------------------------------------------------------------------------------
// Python's str() / repr() of template values
// ---------------------------------------------------------------------------------------------

/// Python's `str(value)`, which is what jinja2 prints for `{{ value }}`.
fn py_str(value: &Value) -> String {
    match value.kind() {
        ValueKind::String => value.as_str().unwrap_or_default().to_string(),
        ValueKind::Undefined => String::new(),
        _ => py_repr(value),
    }
}

/// Python's `repr(value)` for the JSON-like values a chat template sees.
fn py_repr(value: &Value) -> String {
    match value.kind() {
        ValueKind::Undefined => String::new(),
        ValueKind::None => "None".to_string(),
        ValueKind::Bool => if value.is_true() { "True" } else { "False" }.to_string(),
        ValueKind::Number => py_number(value),
        ValueKind::String => py_str_repr(value.as_str().unwrap_or_default()),
        ValueKind::Seq | ValueKind::Iterable => match value.try_iter() {
            Ok(iter) => {
                let items: Vec<String> = iter.map(|v| py_repr(&v)).collect();
                format!("[{}]", items.join(", "))
            }
            Err(_) => value.to_string(),
        },
        ValueKind::Map => match value.try_iter() {
            Ok(iter) => {
                let items: Vec<String> = iter
                    .map(|k| {
                        let v = value.get_item(&k).unwrap_or(Value::UNDEFINED);
                        format!("{}: {}", py_repr(&k), py_repr(&v))
                    })
                    .collect();
                format!("{{{}}}", items.join(", "))
            }
            Err(_) => value.to_string(),
        },
        _ => value.to_string(),
    }
}

fn py_number(value: &Value) -> String {
    if value.is_integer() {
        return value.to_string();
    }
    match f64::try_from(value.clone()) {
        Ok(f) => py_float_repr(f),
        Err(_) => value.to_string(),
    }
}

/// Python's `repr(float)`: shortest round-trip digits, exponent form below 1e-4 and from 1e16.
fn py_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    let sci = format!("{f:e}"); // e.g. "-1.2345e-7", "1e16", "0e0"
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (neg, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if (-4..16).contains(&exp) {
        if exp < 0 {
            out.push_str("0.");
            for _ in 0..(-exp - 1) {
                out.push('0');
            }
            out.push_str(&digits);
        } else {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                for _ in digits.len()..int_len {
                    out.push('0');
                }
                out.push_str(".0");
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
    out
}

/// Characters Python's `str.isprintable()` rejects, approximately (controls, separators other
/// than space, and the common format characters).
fn py_is_unprintable(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{a0}' | '\u{ad}' | '\u{1680}' | '\u{2000}'..='\u{200f}' | '\u{2028}'..='\u{202f}'
            | '\u{205f}'..='\u{2064}' | '\u{3000}' | '\u{feff}')
}

/// Python's `repr(str)`.
fn py_str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if py_is_unprintable(c) => {
                let n = c as u32;
                let _ = if n <= 0xff {
                    write!(out, "\\x{n:02x}")
                } else if n <= 0xffff {
                    write!(out, "\\u{n:04x}")
                } else {
                    write!(out, "\\U{n:08x}")
                };
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

// ---------------------------------------------------------------------------------------------
// Filters and functions
// ---------------------------------------------------------------------------------------------

/// Python's `str.isspace()` for one character: Rust's White_Space plus the four information
/// separators U+001C..U+001F.
fn py_isspace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

fn py_strip<'a>(s: &'a str, chars: Option<&str>, left: bool, right: bool) -> &'a str {
    let pred = |c: char| match chars {
        Some(set) => set.contains(c),
        None => py_isspace(c),
    };
    let mut out = s;
    if left {
        out = out.trim_start_matches(pred);
    }
    if right {
        out = out.trim_end_matches(pred);
    }
    out
}

/// `chars` argument of strip & co.: missing or None means whitespace.
fn opt_str_arg(v: &Option<Value>, what: &str) -> Result<Option<String>, minijinja::Error> {
    match v {
        None => Ok(None),
        Some(v) if v.is_none() || v.is_undefined() => Ok(None),
        Some(v) => match v.as_str() {
            Some(s) if v.kind() == ValueKind::String => Ok(Some(s.to_string())),
            _ => Err(type_error(format!(
                "{what} arg must be None or str, not {}",
                py_type_name(v)
            ))),
        },
    }
}

fn py_type_name(v: &Value) -> &'static str {
    match v.kind() {
        ValueKind::Undefined => "Undefined",
        ValueKind::None => "NoneType",
        ValueKind::Bool => "bool",
        ValueKind::Number if v.is_integer() => "int",
        ValueKind::Number => "float",
        ValueKind::String => "str",
        ValueKind::Bytes => "bytes",
        ValueKind::Seq | ValueKind::Iterable => "list",
        ValueKind::Map => "dict",
        _ => "object",
    }
}

/// Python's `str.split(sep=None, maxsplit=-1)`.
fn py_split(s: &str, sep: Option<&str>, maxsplit: i64) -> Result<Vec<String>, minijinja::Error> {
    let limit = if maxsplit < 0 {
        usize::MAX
    } else {
        maxsplit as usize
    };
    match sep {
        Some("") => Err(type_error("empty separator")),
        Some(sep) => {
            let mut out = Vec::new();
            let mut rest = s;
            while out.len() < limit {
                match rest.find(sep) {
                    Some(i) => {
                        out.push(rest[..i].to_string());
                        rest = &rest[i + sep.len()..];
                    }
                    None => break,
                }
            }
            out.push(rest.to_string());
            Ok(out)
        }
        None => {
            let mut out = Vec::new();
            let mut rest = py_strip(s, None, true, false);
            while !rest.is_empty() {
                if out.len() == limit {
                    out.push(rest.to_string());
                    break;
                }
                let end = rest.find(py_isspace).unwrap_or(rest.len());
                out.push(rest[..end].to_string());
                rest = py_strip(&rest[end..], None, true, false);
            }
            Ok(out)
        }
    }
}

/// Python's `str.rsplit(sep=None, maxsplit=-1)`.
fn py_rsplit(s: &str, sep: Option<&str>, maxsplit: i64) -> Result<Vec<String>, minijinja::Error> {
    let limit = if maxsplit < 0 {
        usize::MAX
    } else {
        maxsplit as usize
    };
    let mut out = Vec::new();
    match sep {
        Some("") => return Err(type_error("empty separator")),
        Some(sep) => {
            let mut rest = s;
            while out.len() < limit {
                match rest.rfind(sep) {
                    Some(i) => {
                        out.push(rest[i + sep.len()..].to_string());
                        rest = &rest[..i];
                    }
                    None => break,
                }
            }
            out.push(rest.to_string());
        }
        None => {
            let mut rest = py_strip(s, None, false, true);
            while !rest.is_empty() {
                if out.len() == limit {
                    out.push(rest.to_string());
                    break;
                }
                let start = rest
                    .char_indices()
                    .rev()
                    .find(|(_, c)| py_isspace(*c))
                    .map(|(i, c)| i + c.len_utf8())
                    .unwrap_or(0);
                out.push(rest[start..].to_string());
                rest = py_strip(&rest[..start], None, false, true);
            }
        }
    }
    out.reverse();
    Ok(out)
}

/// Python's `str.title()`.
fn py_title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_cased = false;
    for c in s.chars() {
        let cased = c.is_lowercase() || c.is_uppercase();
        if cased {
            if prev_cased {
                out.extend(c.to_lowercase());
            } else {
                out.extend(c.to_uppercase());
            }
        } else {
            out.push(c);
        }
        prev_cased = cased;
    }
    out
}

/// Python string methods where minijinja-contrib's pycompat differs from Python (whitespace set,
/// maxsplit, `title`, char-based `find`), plus `rsplit`; everything else goes to pycompat.
fn python_method(
    state: &State,
    value: &Value,
    method: &str,
    args: &[Value],
) -> Result<Value, minijinja::Error> {
    if value.kind() == ValueKind::String {
        let s = value.as_str().unwrap_or_default();
        match method {
            "strip" | "lstrip" | "rstrip" => {
                let (chars,): (Option<Value>,) = from_args(args)?;
                let chars = opt_str_arg(&chars, method)?;
                let (l, r) = match method {
                    "strip" => (true, true),
                    "lstrip" => (true, false),
                    _ => (false, true),
                };
                return Ok(Value::from(py_strip(s, chars.as_deref(), l, r)));
            }
            "split" | "rsplit" => {
                let (sep, maxsplit): (Option<Value>, Option<i64>) = from_args(args)?;
                let sep = opt_str_arg(&sep, method)?;
                let maxsplit = maxsplit.unwrap_or(-1);
                let parts = if method == "split" {
                    py_split(s, sep.as_deref(), maxsplit)?
                } else {
                    py_rsplit(s, sep.as_deref(), maxsplit)?
                };
                return Ok(Value::from(parts));
            }
            "splitlines" => {
                let (keepends,): (Option<bool>,) = from_args(args)?;
                if !keepends.unwrap_or(false) {
                    return Ok(Value::from_iter(
                        py_splitlines(s).into_iter().map(Value::from),
                    ));
                }
            }
            "title" => {
                let () = from_args(args)?;
                return Ok(Value::from(py_title(s)));
            }
            "isspace" => {
                let () = from_args(args)?;
                return Ok(Value::from(!s.is_empty() && s.chars().all(py_isspace)));
            }
            "find" | "rfind" | "index" | "rindex" => {
                let (needle,): (&str,) = from_args(args)?;
                let found = if method.starts_with('r') {
                    s.rfind(needle)
                } else {
                    s.find(needle)
                };
                return match found {
                    Some(byte) => Ok(Value::from(s[..byte].chars().count() as i64)),
                    None if method.ends_with("find") => Ok(Value::from(-1)),
                    None => Err(type_error("substring not found")),
                };
            }
            _ => {}
        }
    }
    minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)
}

/// jinja2's `trim(value, chars=None)`: `str(value).strip(chars)`.
fn trim_filter(value: &Value, chars: Option<Value>) -> Result<Value, minijinja::Error> {
    let chars = opt_str_arg(&chars, "strip")?;
    let s = py_str(value);
    Ok(Value::from(py_strip(&s, chars.as_deref(), true, true)))
}

/// jinja2's `length`: `len(value)`, which is 0 for an undefined value.
fn length_filter(value: &Value) -> Result<Value, minijinja::Error> {
    if value.is_undefined() {
        return Ok(Value::from(0));
    }
    minijinja::filters::length(value).map(Value::from)
}

/// jinja2's `round(value, precision=0, method='common')`; "common" is Python's `round`, which
/// rounds half to even on the exact binary value (as Rust's fixed-precision formatting does).
fn round_filter(
    value: &Value,
    precision: Option<i32>,
    method: Option<&str>,
) -> Result<Value, minijinja::Error> {
    let precision = precision.unwrap_or(0);
    let method = method.unwrap_or("common");
    if value.is_integer() && method == "common" {
        return Ok(value.clone());
    }
    let x = f64::try_from(value.clone()).map_err(|_| {
        type_error(format!(
            "cannot round value of type {}",
            py_type_name(value)
        ))
    })?;
    let scale = 10f64.powi(precision);
    let rounded = match method {
        "common" if precision >= 0 => format!("{x:.*}", precision as usize)
            .parse::<f64>()
            .unwrap_or(x),
        "common" => (x * scale).round_ties_even() / scale,
        "ceil" => (x * scale).ceil() / scale,
        "floor" => (x * scale).floor() / scale,
        _ => return Err(type_error("method must be common, ceil or floor")),
    };
    Ok(Value::from(rounded))
}

/// jinja2's `join(value, d='', attribute=None)`: items are converted with Python's `str`.
fn join_filter(
    value: &Value,
    d: Option<Value>,
    attribute: Option<Value>,
    kwargs: minijinja::value::Kwargs,
) -> Result<Value, minijinja::Error> {
    let d = match (d, kwargs.get::<Option<Value>>("d")?) {
        (Some(d), _) | (None, Some(d)) => py_str(&d),
        (None, None) => String::new(),
    };
    let attribute = match (attribute, kwargs.get::<Option<Value>>("attribute")?) {
        (Some(a), _) | (None, Some(a)) if !a.is_none() => Some(a),
        _ => None,
    };
    kwargs.assert_all_used()?;
    if value.is_undefined() {
        return Ok(Value::from(""));
    }
    if value.kind() == ValueKind::String {
        // Joining a string joins its characters.
        let s = value.as_str().unwrap_or_default();
        let chars: Vec<String> = s.chars().map(String::from).collect();
        return Ok(Value::from(chars.join(&d)));
    }
    let mut parts = Vec::new();
    for item in value.try_iter()? {
        let item = match &attribute {
            Some(attr) => get_attribute_path(&item, attr)?,
            None => item,
        };
        parts.push(py_str(&item));
    }
    Ok(Value::from(parts.join(&d)))
}

/// jinja2's `make_attrgetter`: "a.b.0" walks attributes, integer parts index sequences.
fn get_attribute_path(item: &Value, attr: &Value) -> Result<Value, minijinja::Error> {
    if let Some(path) = attr.as_str().filter(|_| attr.kind() == ValueKind::String) {
        let mut current = item.clone();
        for part in path.split('.') {
            current = match part.parse::<i64>() {
                Ok(idx) => current.get_item(&Value::from(idx))?,
                Err(_) => current.get_attr(part)?,
            };
        }
        Ok(current)
    } else {
        item.get_item(attr)
    }
}

/// jinja2's `first`/`last`, which give an undefined value for an undefined or empty input.
fn first_filter(value: &Value) -> Result<Value, minijinja::Error> {
    if value.is_undefined() {
        return Ok(Value::UNDEFINED);
    }
    minijinja::filters::first(value)
}

fn last_filter(value: Value) -> Result<Value, minijinja::Error> {
    if value.is_undefined() {
        return Ok(Value::UNDEFINED);
    }
    minijinja::filters::last(value)
}

/// Python's `float(str)`: surrounding whitespace allowed, also "inf"/"nan"/"1_000".
fn py_parse_float(s: &str) -> Option<f64> {
    let t = py_strip(s, None, true, true);
    if t.is_empty() || t.starts_with('_') || t.ends_with('_') || t.contains("__") {
        return None;
    }
    let t = t.replace('_', "");
    let lower = t.to_ascii_lowercase();
    let body = lower.trim_start_matches(['+', '-']);
    if matches!(body, "inf" | "infinity" | "nan")
        || body
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | '+' | '-'))
    {
        t.parse::<f64>().ok()
    } else {
        None
    }
}

/// Python's `int(str, base)` for bases 2..=36 (and 0 = auto-detect from the prefix).
fn py_parse_int(s: &str, base: u32) -> Option<i128> {
    let t = py_strip(s, None, true, true);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let lower = digits.to_ascii_lowercase();
    let (base, digits) = match (base, lower.get(..2)) {
        (0 | 16, Some("0x")) => (16, &lower[2..]),
        (0 | 8, Some("0o")) => (8, &lower[2..]),
        (0 | 2, Some("0b")) => (2, &lower[2..]),
        (0, _) => (10, &lower[..]),
        (b, _) => (b, &lower[..]),
    };
    let digits = digits.strip_prefix('_').unwrap_or(digits);
    if !(2..=36).contains(&base)
        || digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return None;
    }
    let n = i128::from_str_radix(&digits.replace('_', ""), base).ok()?;
    Some(if neg { -n } else { n })
}

fn py_float_of(value: &Value) -> Option<f64> {
    match value.kind() {
        ValueKind::Bool => Some(if value.is_true() { 1.0 } else { 0.0 }),
        ValueKind::Number => f64::try_from(value.clone()).ok(),
        ValueKind::String => py_parse_float(value.as_str().unwrap_or_default()),
        _ => None,
    }
}

/// jinja2's `int(value, default=0, base=10)`.
fn int_filter(
    value: &Value,
    default: Option<Value>,
    base: Option<u32>,
    kwargs: minijinja::value::Kwargs,
) -> Result<Value, minijinja::Error> {
    let default = match (default, kwargs.get::<Option<Value>>("default")?) {
        (Some(d), _) | (None, Some(d)) => d,
        (None, None) => Value::from(0),
    };
    let base = match (base, kwargs.get::<Option<u32>>("base")?) {
        (Some(b), _) | (None, Some(b)) => b,
        (None, None) => 10,
    };
    kwargs.assert_all_used()?;
    let direct = match value.kind() {
        ValueKind::Number if value.is_integer() => return Ok(value.clone()),
        ValueKind::Bool => Some(i128::from(value.is_true())),
        ValueKind::String => py_parse_int(value.as_str().unwrap_or_default(), base),
        _ => None,
    };
    if let Some(n) = direct {
        return Ok(Value::from(n));
    }
    match py_float_of(value) {
        Some(f) if f.is_finite() => Ok(Value::from(f.trunc() as i128)),
        _ => Ok(default),
    }
}

/// jinja2's `float(value, default=0.0)`.
fn float_filter(
    value: &Value,
    default: Option<Value>,
    kwargs: minijinja::value::Kwargs,
) -> Result<Value, minijinja::Error> {
    let default = match (default, kwargs.get::<Option<Value>>("default")?) {
        (Some(d), _) | (None, Some(d)) => d,
        (None, None) => Value::from(0.0),
    };
    kwargs.assert_all_used()?;
    Ok(py_float_of(value).map(Value::from).unwrap_or(default))
}

/// Python's `str.splitlines()` (without line ends).
fn py_splitlines(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut iter = s.char_indices().peekable();
    while let Some((i, c)) = iter.next() {
        let is_break = matches!(
            c,
            '\n' | '\r'
                | '\u{b}'
                | '\u{c}'
                | '\u{1c}'
                | '\u{1d}'
                | '\u{1e}'
                | '\u{85}'
                | '\u{2028}'
                | '\u{2029}'
        );
        if is_break {
            out.push(&s[start..i]);
            let mut end = i + c.len_utf8();
            if c == '\r' {
                if let Some((_, '\n')) = iter.peek() {
                    iter.next();
                    end += 1;
                }
            }
            start = end;
        }
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out
}

/// jinja2's `indent(s, width=4, first=False, blank=False)`.
fn indent_filter(
    value: &Value,
    width: Option<Value>,
    first: Option<bool>,
    blank: Option<bool>,
    kwargs: minijinja::value::Kwargs,
) -> Result<Value, minijinja::Error> {
    let width = match (width, kwargs.get::<Option<Value>>("width")?) {
        (Some(w), _) | (None, Some(w)) => w,
        (None, None) => Value::from(4),
    };
    let first = first
        .or(kwargs.get::<Option<bool>>("first")?)
        .unwrap_or(false);
    let blank = blank
        .or(kwargs.get::<Option<bool>>("blank")?)
        .unwrap_or(false);
    kwargs.assert_all_used()?;
    let indention = match width.as_str().filter(|_| width.kind() == ValueKind::String) {
        Some(s) => s.to_string(),
        None => " ".repeat(width.as_i64().unwrap_or(0).max(0) as usize),
    };
    let s = py_str(value) + "\n";
    let lines = py_splitlines(&s);
    let mut rv = if blank {
        lines.join(&format!("\n{indention}"))
    } else {
        let mut rv = lines.first().copied().unwrap_or_default().to_string();
        if lines.len() > 1 {
            rv.push('\n');
            let rest: Vec<String> = lines[1..]
                .iter()
                .map(|l| {
                    if l.is_empty() {
                        String::new()
                    } else {
                        format!("{indention}{l}")
                    }
                })
                .collect();
            rv.push_str(&rest.join("\n"));
        }
        rv
    };
    if first {
        rv = format!("{indention}{rv}");
    }
    Ok(Value::from(rv))
}

/// jinja2's `escape` (markupsafe): `& < > " '` only, and the result is safe.
fn escape_filter(value: &Value) -> Value {
    if value.is_safe() {
        return value.clone();
    }
    let s = py_str(value);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    Value::from_safe_string(out)
}

/// jinja2's `string` filter: Python `str(value)`.
fn string_filter(value: &Value) -> Value {
    if value.kind() == ValueKind::String {
        return value.clone();
    }
    Value::from(py_str(value))
}

/// transformers' `tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)`,
/// i.e. Python's `json.dumps` with those arguments (no HTML escaping).
fn tojson_filter(value: &Value, args: Rest<Value>) -> Result<Value, minijinja::Error> {
    const PARAMS: [&str; 4] = ["ensure_ascii", "indent", "separators", "sort_keys"];
    let mut given: [Option<Value>; 4] = Default::default();
    let mut positional = 0;
    for arg in args.0.iter() {
        if arg.is_kwargs() {
            for key in arg.try_iter()? {
                let key_str = key.as_str().unwrap_or_default().to_string();
                let Some(idx) = PARAMS.iter().position(|p| *p == key_str) else {
                    return Err(type_error(format!(
                        "tojson() got an unexpected keyword argument '{key_str}'"
                    )));
                };
                if given[idx].is_some() {
                    return Err(type_error(format!(
                        "tojson() got multiple values for argument '{key_str}'"
                    )));
                }
                given[idx] = Some(arg.get_item(&key)?);
            }
        } else {
            if positional >= PARAMS.len() {
                return Err(type_error(format!(
                    "tojson() takes from 1 to 5 positional arguments but {} were given",
                    args.0.len() + 1
                )));
            }
            given[positional] = Some(arg.clone());
            positional += 1;
        }
    }
    let [ensure_ascii, indent, separators, sort_keys] = given;
    let indent = match indent {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) if v.kind() == ValueKind::String => {
            Some(v.as_str().unwrap_or_default().to_string())
        }
        Some(v) => match v.as_i64() {
            Some(n) => Some(" ".repeat(n.max(0) as usize)),
            None => {
                return Err(type_error(format!(
                    "indent must be an int or a str, not {}",
                    py_type_name(&v)
                )))
            }
        },
    };
    let (item_sep, key_sep) = match separators {
        Some(v) if !v.is_none() => {
            let parts: Vec<Value> = v.try_iter()?.collect();
            match parts.as_slice() {
                [a, b] if a.kind() == ValueKind::String && b.kind() == ValueKind::String => (
                    a.as_str().unwrap_or_default().to_string(),
                    b.as_str().unwrap_or_default().to_string(),
                ),
                _ => return Err(type_error("separators must be a pair of strings")),
            }
        }
        _ if indent.is_some() => (",".to_string(), ": ".to_string()),
        _ => (", ".to_string(), ": ".to_string()),
    };
    let opts = JsonOpts {
        ensure_ascii: ensure_ascii.is_some_and(|v| v.is_true()),
        indent,
        item_sep,
        key_sep,
        sort_keys: sort_keys.is_some_and(|v| v.is_true()),
    };
    let mut out = String::new();
    json_dump(value, &opts, 0, &mut out)?;
    Ok(Value::from(out))
}

struct JsonOpts {
    ensure_ascii: bool,
    indent: Option<String>,
    item_sep: String,
    key_sep: String,
    sort_keys: bool,
}

fn not_serializable(value: &Value) -> minijinja::Error {
    let name = match value.kind() {
        ValueKind::Undefined => "Undefined".to_string(),
        ValueKind::Bytes => "bytes".to_string(),
        _ => value
            .as_object()
            .map(|_| "object".to_string())
            .unwrap_or_else(|| value.kind().to_string()),
    };
    type_error(format!("Object of type {name} is not JSON serializable"))
}

fn json_newline(opts: &JsonOpts, level: usize, out: &mut String) {
    if let Some(indent) = &opts.indent {
        out.push('\n');
        for _ in 0..level {
            out.push_str(indent);
        }
    }
}

fn json_dump(
    value: &Value,
    opts: &JsonOpts,
    level: usize,
    out: &mut String,
) -> Result<(), minijinja::Error> {
    match value.kind() {
        ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
        ValueKind::Number => {
            if value.is_integer() {
                out.push_str(&value.to_string());
            } else {
                let f = f64::try_from(value.clone())?;
                if f.is_nan() {
                    out.push_str("NaN");
                } else if f.is_infinite() {
                    out.push_str(if f > 0.0 { "Infinity" } else { "-Infinity" });
                } else {
                    out.push_str(&py_float_repr(f));
                }
            }
        }
        ValueKind::String => {
            json_string(value.as_str().unwrap_or_default(), opts.ensure_ascii, out)
        }
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = value.try_iter()?.collect();
            if items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(&opts.item_sep);
                }
                json_newline(opts, level + 1, out);
                json_dump(item, opts, level + 1, out)?;
            }
            json_newline(opts, level, out);
            out.push(']');
        }
        ValueKind::Map => {
            let mut entries = Vec::new();
            for key in value.try_iter()? {
                let item = value.get_item(&key)?;
                let key_str = match key.kind() {
                    ValueKind::String => key.as_str().unwrap_or_default().to_string(),
                    ValueKind::None => "null".to_string(),
                    ValueKind::Bool => if key.is_true() { "true" } else { "false" }.to_string(),
                    ValueKind::Number => {
                        let mut s = String::new();
                        json_dump(&key, opts, level, &mut s)?;
                        s
                    }
                    _ => {
                        return Err(type_error(format!(
                            "keys must be str, int, float, bool or None, not {}",
                            py_type_name(&key)
                        )))
                    }
                };
                entries.push((key_str, item));
            }
            if opts.sort_keys {
                entries.sort_by(|a, b| a.0.cmp(&b.0));
            }
            if entries.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            out.push('{');
            for (i, (key, item)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(&opts.item_sep);
                }
                json_newline(opts, level + 1, out);
                json_string(key, opts.ensure_ascii, out);
                out.push_str(&opts.key_sep);
                json_dump(item, opts, level + 1, out)?;
            }
            json_newline(opts, level, out);
            out.push('}');
        }
        _ => return Err(not_serializable(value)),
    }
    Ok(())
}

/// A JSON string as Python's json module writes it.
fn json_string(s: &str, ensure_ascii: bool, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if ensure_ascii && (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// transformers' `strftime_now(format)`: `datetime.now().strftime(format)`. The clock is read
/// as UTC (no time zone database is consulted).
fn strftime_now(format: &str) -> Result<Value, minijinja::Error> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Ok(Value::from(strftime_utc(format, secs)))
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    // Howard Hinnant's days -> civil date algorithm.
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// C `strftime` for a UTC timestamp, covering the directives chat templates use.
fn strftime_utc(format: &str, unix_secs: i64) -> String {
    const DAYS: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let days = unix_secs.div_euclid(86_400);
    let secs_of_day = unix_secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let (hour, minute, second) = (
        secs_of_day / 3600,
        (secs_of_day / 60) % 60,
        secs_of_day % 60,
    );
    let weekday = (days + 3).rem_euclid(7) as usize; // 1970-01-01 was a Thursday (index 3)
    let is_leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let cumulative = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let yday = cumulative[month as usize - 1] + day + u32::from(is_leap && month > 2);
    let hour12 = if hour % 12 == 0 { 12 } else { hour % 12 };

    let mut out = String::new();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        // glibc's "%-d" (no padding) flag.
        let no_pad = chars.peek() == Some(&'-');
        if no_pad {
            chars.next();
        }
        let num = |n: i64, width: usize| {
            if no_pad {
                n.to_string()
            } else {
                format!("{n:0width$}")
            }
        };
        match chars.next() {
            Some('a') => out.push_str(&DAYS[weekday][..3]),
            Some('A') => out.push_str(DAYS[weekday]),
            Some('b') | Some('h') => out.push_str(&MONTHS[month as usize - 1][..3]),
            Some('B') => out.push_str(MONTHS[month as usize - 1]),
            Some('d') => out.push_str(&num(day as i64, 2)),
            Some('e') => out.push_str(&format!("{day:>2}")),
            Some('m') => out.push_str(&num(month as i64, 2)),
            Some('y') => out.push_str(&num(year.rem_euclid(100), 2)),
            Some('Y') => out.push_str(&year.to_string()),
            Some('H') => out.push_str(&num(hour, 2)),
            Some('I') => out.push_str(&num(hour12, 2)),
            Some('M') => out.push_str(&num(minute, 2)),
            Some('S') => out.push_str(&num(second, 2)),
            Some('p') => out.push_str(if hour < 12 { "AM" } else { "PM" }),
            Some('j') => out.push_str(&num(yday as i64, 3)),
            Some('u') => out.push_str(&(weekday + 1).to_string()),
            Some('w') => out.push_str(&((weekday + 1) % 7).to_string()),
            Some('F') => out.push_str(&format!("{year}-{month:02}-{day:02}")),
            Some('T') => out.push_str(&format!("{hour:02}:{minute:02}:{second:02}")),
            Some('Z') => out.push_str("UTC"),
            Some('z') => out.push_str("+0000"),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                if no_pad {
                    out.push('-');
                }
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
    }

    fn expected() -> serde_json::Value {
        let path = fixtures().join("expected/chat_templates.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        serde_json::from_str(&text).expect("chat_templates.json is valid JSON")
    }

    /// Compares one rendering with the reference entry (`output`, `error` from raise_exception,
    /// or `render_error` for any other jinja2 error); returns a failure description.
    fn check(
        template: &ChatTemplate,
        label: &str,
        messages: &serde_json::Value,
        add_generation_prompt: bool,
        case: &serde_json::Value,
    ) -> Option<String> {
        let extra = case["extra"].as_object().cloned().unwrap_or_default();
        let got = template.render_json(messages, add_generation_prompt, &extra);
        if let Some(want) = case.get("output").and_then(|v| v.as_str()) {
            match got {
                Ok(got) if got == want => None,
                Ok(got) => Some(format!(
                    "{label}: output differs\n  want {want:?}\n  got  {got:?}"
                )),
                Err(e) => Some(format!("{label}: want output {want:?}, got error {e}")),
            }
        } else if let Some(want) = case.get("error").and_then(|v| v.as_str()) {
            match got {
                Err(ChatTemplateError::Raised { message, .. }) if message == want => None,
                other => Some(format!(
                    "{label}: want raise_exception({want:?}), got {other:?}"
                )),
            }
        } else if let Some(want) = case.get("render_error").and_then(|v| v.as_str()) {
            match got {
                Err(ChatTemplateError::Render { .. }) => None,
                other => Some(format!(
                    "{label}: want a render error like {want:?}, got {other:?}"
                )),
            }
        } else {
            Some(format!("{label}: reference entry has no result"))
        }
    }

    #[test]
    fn published_templates_match_transformers() {
        let expected = expected();
        let templates = expected["templates"].as_object().expect("templates");
        let dir = fixtures().join("templates");
        // Every template in the fixture directory must have reference renderings.
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".jinja"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        let mut missing: Vec<&String> = files
            .iter()
            .filter(|f| !templates.contains_key(*f))
            .collect();
        missing.sort();
        assert!(
            missing.is_empty(),
            "no reference renderings for {missing:?}; rerun tests/fixtures/chat_reference.py"
        );

        let mut failures = Vec::new();
        let mut checked = 0;
        for (file, entry) in templates {
            let path = dir.join(file);
            let source = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            let mut template =
                ChatTemplate::new(python_universal_newlines(&source), None, None, path)
                    .unwrap_or_else(|e| panic!("{file} does not compile: {e}"));
            for (name, token) in entry["special_tokens"].as_object().expect("special_tokens") {
                template = template.with_special_token(name, token.as_str().expect("token"));
            }
            for case in entry["cases"].as_array().expect("cases") {
                let label = format!("{file}/{}", case["name"].as_str().unwrap_or("?"));
                let add_gen = case["add_generation_prompt"]
                    .as_bool()
                    .expect("add_generation_prompt");
                failures.extend(check(&template, &label, &case["messages"], add_gen, case));
                checked += 1;
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {checked} cases differ:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn snippets_match_jinja2() {
        let expected = expected();
        let messages = &expected["snippet_messages"];
        let tokens = expected["snippet_special_tokens"]
            .as_object()
            .expect("tokens");
        let mut failures = Vec::new();
        let snippets = expected["snippets"].as_array().expect("snippets");
        for case in snippets {
            let name = case["name"].as_str().unwrap_or("?");
            let source = case["template"].as_str().expect("template").to_string();
            let template =
                match ChatTemplate::new(source, None, None, PathBuf::from(format!("{name}.jinja")))
                {
                    Ok(t) => t,
                    Err(e) => {
                        failures.push(format!("{name}: does not compile: {e}"));
                        continue;
                    }
                };
            let template = tokens.iter().fold(template, |t, (n, v)| {
                t.with_special_token(n, v.as_str().expect("token"))
            });
            failures.extend(check(&template, name, messages, false, case));
        }
        assert!(
            failures.is_empty(),
            "{} of {} snippets differ:\n{}",
            failures.len(),
            snippets.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn strftime_matches_python() {
        let expected = expected();
        for case in expected["strftime"].as_array().expect("strftime") {
            let ts = case["timestamp"].as_i64().expect("timestamp");
            let format = case["format"].as_str().expect("format");
            assert_eq!(
                strftime_utc(format, ts),
                case["output"].as_str().expect("output"),
                "strftime({format:?}) at {ts}"
            );
        }
    }

    #[test]
    fn float_repr_matches_python() {
        let expected = expected();
        for case in expected["float_repr"].as_array().expect("float_repr") {
            let value = case["value"].as_f64().expect("value");
            assert_eq!(
                py_float_repr(value),
                case["repr"].as_str().expect("repr"),
                "repr({value:e})"
            );
        }
    }

    fn origin() -> PathBuf {
        PathBuf::from("models/demo/chat_template.jinja")
    }

    #[test]
    fn syntax_error_names_file_and_line() {
        let err = ChatTemplate::new(
            "hello\n{% if messages %}\nunclosed".into(),
            None,
            None,
            origin(),
        )
        .unwrap_err();
        match &err {
            ChatTemplateError::Syntax {
                origin: o, line, ..
            } => {
                assert_eq!(o, &origin());
                assert_eq!(*line, Some(3));
            }
            other => panic!("want a syntax error, got {other:?}"),
        }
        let text = err.to_string();
        assert!(text.contains("models/demo/chat_template.jinja"), "{text}");
        assert!(text.contains("line 3"), "{text}");

        let err = ChatTemplate::new("{{ 'bad \\x4' }}".into(), None, None, origin()).unwrap_err();
        assert!(
            matches!(err, ChatTemplateError::Syntax { line: Some(1), .. }),
            "{err:?}"
        );
    }

    #[test]
    fn render_error_keeps_original_line_numbers() {
        // The backslash-newline inside the literal is rewritten away, yet the failing tag is
        // still reported on line 4 of the original source.
        let t = ChatTemplate::new(
            "{% set a = 'x\\\ny' %}\n{{ a }}\n{{ nope.attr }}".into(),
            None,
            None,
            origin(),
        )
        .unwrap();
        match t.render(&[Message::new("user", "hi")], false) {
            Err(ChatTemplateError::Render { line, message, .. }) => {
                assert_eq!(line, Some(4), "{message}");
            }
            other => panic!("want a render error, got {other:?}"),
        }
    }

    #[test]
    fn raise_exception_is_a_distinct_variant() {
        let src = "{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{{ m.content }}{% endfor %}";
        let t = ChatTemplate::new(src.into(), None, None, origin()).unwrap();
        assert_eq!(
            t.render(&[Message::new("user", "hi")], false).unwrap(),
            "hi"
        );
        let err = t
            .render(
                &[Message::new("system", "s"), Message::new("user", "hi")],
                false,
            )
            .unwrap_err();
        match &err {
            ChatTemplateError::Raised { message, origin: o } => {
                assert_eq!(message, "System role not supported");
                assert_eq!(o, &origin());
            }
            other => panic!("want Raised, got {other:?}"),
        }
        assert!(err.to_string().contains("chat_template.jinja"));
    }

    #[test]
    fn render_passes_tokens_flags_and_extra_kwargs() {
        let src = "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}{% if tools is not none %}{{ tools|tojson }}{% endif %}{{ custom }}";
        let t = ChatTemplate::new(
            src.into(),
            Some("<s>".into()),
            Some("</s>".into()),
            origin(),
        )
        .unwrap();
        let msgs = [Message::new("user", "a & <b>")];
        assert_eq!(
            t.render(&msgs, true).unwrap(),
            "<s><user>a & <b></s><assistant>"
        );
        assert_eq!(t.render(&msgs, false).unwrap(), "<s><user>a & <b></s>");
        let mut extra = Map::new();
        extra.insert(
            "tools".into(),
            serde_json::json!([{"name": "f", "a<": "é"}]),
        );
        extra.insert("custom".into(), serde_json::json!("!"));
        extra.insert("eos_token".into(), serde_json::json!("<end>"));
        let out = t
            .render_json(
                &serde_json::json!([{"role": "user", "content": "x", "skip": null}]),
                false,
                &extra,
            )
            .unwrap();
        assert_eq!(out, "<s><user>x<end>[{\"name\": \"f\", \"a<\": \"é\"}]!");

        // apply_chat_template refuses empty conversations and non-dict messages.
        assert!(matches!(
            t.render(&[], true),
            Err(ChatTemplateError::InvalidInput { .. })
        ));
        assert!(matches!(
            t.render_json(&serde_json::json!(["hi"]), true, &Map::new()),
            Err(ChatTemplateError::InvalidInput { .. })
        ));
        let mut bad = Map::new();
        bad.insert("messages".into(), serde_json::json!([]));
        assert!(t
            .render_json(&serde_json::json!([{"role": "user"}]), true, &bad)
            .is_err());
        assert_eq!(t.source(), src);
        assert_eq!(t.origin(), origin().as_path());
    }

    #[test]
    fn reasoning_fields_are_aliased_like_transformers() {
        let t = ChatTemplate::new(
            "{% for m in messages %}{{ m|tojson }}{% endfor %}".into(),
            None,
            None,
            origin(),
        )
        .unwrap();
        let msgs = serde_json::json!([
            {"role": "assistant", "content": "a", "reasoning": "r"},
            {"role": "assistant", "thinking": "t", "content": "b", "reasoning_content": "rc"},
        ]);
        assert_eq!(
            t.render_json(&msgs, false, &Map::new()).unwrap(),
            "{\"thinking\": \"r\", \"role\": \"assistant\", \"content\": \"a\", \"reasoning\": \"r\", \"reasoning_content\": \"r\"}\
             {\"thinking\": \"t\", \"role\": \"assistant\", \"content\": \"b\", \"reasoning_content\": \"rc\"}"
        );
    }

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn from_dir_reads_config_and_jinja_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert!(
            ChatTemplate::from_dir(d).unwrap().is_none(),
            "no files, no template"
        );

        write(
            d,
            "tokenizer_config.json",
            r#"{"bos_token": {"__type": "AddedToken", "content": "<|bos|>", "special": true},
            "eos_token": "<|eos|>", "pad_token": null, "added_tokens_decoder": {}, "image_token": "<img>",
            "chat_template": "{{ bos_token }}{{ messages[0].content }}{{ eos_token }}|{{ pad_token is defined }}|{{ image_token }}"}"#,
        );
        let t = ChatTemplate::from_dir(d)
            .unwrap()
            .expect("template from config");
        assert_eq!(t.origin(), d.join("tokenizer_config.json"));
        // Model-specific `*_token`s are part of transformers' special_tokens_map too.
        assert_eq!(
            t.render(&[Message::new("user", "hi")], false).unwrap(),
            "<|bos|>hi<|eos|>|False|<img>"
        );

        // special_tokens_map.json is ignored when the config has added_tokens_decoder...
        write(
            d,
            "special_tokens_map.json",
            r#"{"eos_token": {"content": "<|map_eos|>"}, "pad_token": "<pad>"}"#,
        );
        let t = ChatTemplate::from_dir(d).unwrap().unwrap();
        assert_eq!(
            t.render(&[Message::new("user", "hi")], false).unwrap(),
            "<|bos|>hi<|eos|>|False|<img>"
        );
        // ...and overrides it otherwise (transformers' legacy path).
        write(
            d,
            "tokenizer_config.json",
            r#"{"bos_token": "<|bos|>", "eos_token": "<|eos|>",
            "chat_template": [{"name": "tool_use", "template": "tools"}, {"name": "default", "template": "{{ eos_token }}{{ pad_token }}"}]}"#,
        );
        let t = ChatTemplate::from_dir(d).unwrap().unwrap();
        assert_eq!(
            t.render(&[Message::new("user", "hi")], false).unwrap(),
            "<|map_eos|><pad>"
        );
        assert_eq!(
            t.special_tokens(),
            &[
                ("bos_token".to_string(), "<|bos|>".to_string()),
                ("eos_token".to_string(), "<|map_eos|>".to_string()),
                ("pad_token".to_string(), "<pad>".to_string()),
            ]
        );

        // chat_template.jinja wins (read like Python's text mode: CRLF becomes LF).
        write(
            d,
            "chat_template.jinja",
            "jinja:{% for m in messages %}\r\n{{ m.content }}{% endfor %}\r\n",
        );
        let t = ChatTemplate::from_dir(d).unwrap().unwrap();
        assert_eq!(t.origin(), d.join("chat_template.jinja"));
        assert_eq!(
            t.render(&[Message::new("user", "hi")], false).unwrap(),
            "jinja:hi"
        );
    }

    #[test]
    fn from_dir_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, "tokenizer_config.json", "{ not json");
        let err = ChatTemplate::from_dir(d).unwrap_err();
        assert!(matches!(err, ChatTemplateError::Json { .. }), "{err:?}");
        assert!(err.to_string().contains("tokenizer_config.json"), "{err}");

        write(
            d,
            "tokenizer_config.json",
            r#"{"chat_template": [{"name": "a", "template": "x"}, {"name": "b", "template": "y"}]}"#,
        );
        let err = ChatTemplate::from_dir(d).unwrap_err();
        assert!(err.to_string().contains("no default"), "{err}");
        assert!(err.to_string().contains("tokenizer_config.json"), "{err}");

        write(
            d,
            "tokenizer_config.json",
            r#"{"chat_template": "{% for %}"}"#,
        );
        let err = ChatTemplate::from_dir(d).unwrap_err();
        assert!(
            matches!(err, ChatTemplateError::Syntax { line: Some(1), .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("tokenizer_config.json"), "{err}");
    }

    #[test]
    fn message_round_trips_through_serde() {
        let m = Message::new("user", "hi");
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, r#"{"role":"user","content":"hi"}"#);
        assert_eq!(serde_json::from_str::<Message>(&json).unwrap(), m);
    }

    /// The fixture models under tests/fixtures/models/ carry their own chat template; their
    /// expected/<variant>.json has `apply_chat_template` renderings computed by transformers.
    #[test]
    fn fixture_models_render_like_apply_chat_template() {
        let models = fixtures().join("models");
        let Ok(entries) = std::fs::read_dir(&models) else {
            return;
        };
        let mut failures = Vec::new();
        let mut checked = 0;
        let mut dirs: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        dirs.sort();
        for dir in dirs {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            let expected_path = fixtures().join("expected").join(format!("{name}.json"));
            let Ok(text) = std::fs::read_to_string(&expected_path) else {
                continue;
            };
            let expected: serde_json::Value = serde_json::from_str(&text).unwrap();
            let cases = expected["chat"].as_array().cloned().unwrap_or_default();
            let template = ChatTemplate::from_dir(&dir).unwrap_or_else(|e| panic!("{name}: {e}"));
            let Some(template) = template else {
                assert!(
                    cases.is_empty(),
                    "{name}: reference renderings but no template found"
                );
                continue;
            };
            for (i, case) in cases.iter().enumerate() {
                let mut extra = Map::new();
                if let Some(tools) = case.get("tools") {
                    extra.insert("tools".into(), tools.clone());
                }
                let add_gen = case["add_generation_prompt"].as_bool().unwrap();
                let got = template.render_json(&case["messages"], add_gen, &extra);
                checked += 1;
                match (case.get("rendered").and_then(|v| v.as_str()), got) {
                    (Some(want), Ok(got)) if got == want => {}
                    (None, Err(ChatTemplateError::Raised { message, .. }))
                        if case["error"].as_str() == Some(message.as_str()) => {}
                    (_, got) => failures.push(format!(
                        "{name}[{i}]: want {:?}\n  got {got:?}",
                        case.get("rendered").or(case.get("error"))
                    )),
                }
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {checked} differ:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
}

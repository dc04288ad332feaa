//! Training and audit data: JSONL in the formats people already have.
//!
//! One record per line, any of
//! - `{"prompt": "...", "completion": "..."}` (TRL prompt/completion),
//! - `{"messages": [{"role": "...", "content": "..."}, ...]}` (OpenAI/TRL conversational),
//! - `{"prompt": [messages…], "completion": [messages…]}` (TRL conversational prompt/completion),
//! - `{"text": "..."}` (plain language-modelling data),
//!
//! each with an optional `"task"` tag used for multi-task balancing. Blank lines are skipped.
//! Errors name the file, the line and the field at fault.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::model::Message;

/// Roles a conversation may use.
pub const ROLES: &[&str] = &["system", "user", "assistant", "tool", "developer"];

#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    PromptCompletion {
        prompt: String,
        completion: String,
    },
    /// TRL's conversational prompt/completion: the prompt's turns, then the completion's
    ChatPromptCompletion {
        prompt: Vec<Message>,
        completion: Vec<Message>,
    },
    Messages(Vec<Message>),
    Text(String),
}

impl Record {
    pub fn kind(&self) -> &'static str {
        match self {
            Record::PromptCompletion { .. } => "prompt/completion",
            Record::ChatPromptCompletion { .. } => "conversational prompt/completion",
            Record::Messages(_) => "messages",
            Record::Text(_) => "text",
        }
    }

    /// The text a model is asked with (prompt, or every turn before the last assistant turn).
    pub fn prompt_text(&self) -> String {
        match self {
            Record::PromptCompletion { prompt, .. } => prompt.clone(),
            Record::ChatPromptCompletion { prompt, .. } => join_contents(prompt.iter()),
            Record::Messages(m) => {
                let last = m
                    .iter()
                    .rposition(|x| x.role == "assistant")
                    .unwrap_or(m.len());
                m[..last]
                    .iter()
                    .map(|x| x.content.as_str())
                    .collect::<Vec<_>>()
                    .join("\n")
            }
            Record::Text(t) => t.clone(),
        }
    }

    /// The text a model is trained to produce (completion, or the assistant turns).
    pub fn response_text(&self) -> String {
        match self {
            Record::PromptCompletion { completion, .. } => completion.clone(),
            Record::ChatPromptCompletion { completion, .. } => join_contents(completion.iter()),
            Record::Messages(m) => m
                .iter()
                .filter(|x| x.role == "assistant")
                .map(|x| x.content.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            Record::Text(t) => t.clone(),
        }
    }
}

fn join_contents<'a>(m: impl Iterator<Item = &'a Message>) -> String {
    m.map(|x| x.content.as_str()).collect::<Vec<_>>().join("\n")
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// 1-based line number in its file
    pub line: usize,
    pub record: Record,
    pub task: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: invalid JSON: {reason}")]
    Json {
        path: PathBuf,
        line: usize,
        column: usize,
        reason: String,
    },
    #[error("{path}:{line}: {reason}")]
    Format {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{path}: no records")]
    Empty { path: PathBuf },
}

impl DataError {
    pub fn hint(&self) -> Option<String> {
        match self {
            DataError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                Some("check the path; data files are JSONL, one record per line".into())
            }
            DataError::Format { .. } | DataError::Json { .. } => Some(
                "each line must be one JSON object: {\"prompt\",\"completion\"}, {\"messages\":[{\"role\",\"content\"}]} or {\"text\"}, with an optional \"task\""
                    .into(),
            ),
            _ => None,
        }
    }
}

/// The longest line any JSONL file may have (data, suite items, results logs): a longer one is
/// an error naming its line, before anything tries to parse or tokenize it.
pub const MAX_LINE_BYTES: usize = 16 << 20;

/// Why a JSONL line is refused for its length, if it is.
pub fn line_too_long(line: &str) -> Option<String> {
    (line.len() > MAX_LINE_BYTES).then(|| {
        format!(
            "the line is {} MiB long; lines may be at most {} MiB",
            line.len() >> 20,
            MAX_LINE_BYTES >> 20
        )
    })
}

/// Read a JSONL data file.
pub fn read_jsonl(path: &Path) -> Result<Vec<Sample>, DataError> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    parse_jsonl(path, &text)
}

pub fn parse_jsonl(path: &Path, text: &str) -> Result<Vec<Sample>, DataError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        if let Some(reason) = line_too_long(line) {
            return Err(DataError::Format {
                path: path.to_path_buf(),
                line: line_no,
                reason,
            });
        }
        let v: Value = serde_json::from_str(line).map_err(|e| DataError::Json {
            path: path.to_path_buf(),
            line: line_no,
            column: e.column(),
            reason: e.to_string(),
        })?;
        out.push(
            parse_record(&v)
                .map_err(|reason| DataError::Format {
                    path: path.to_path_buf(),
                    line: line_no,
                    reason,
                })
                .map(|(record, task)| Sample {
                    line: line_no,
                    record,
                    task,
                })?,
        );
    }
    if out.is_empty() {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(out)
}

fn string_field(
    obj: &serde_json::Map<String, Value>,
    field: &str,
) -> Result<Option<String>, String> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!(
            "field `{field}` must be a string, found {}",
            type_name(other)
        )),
    }
}

/// How an error names a JSON value's kind ("a string", "a list", ...).
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A list of `{"role", "content"}` messages in field `field`.
fn messages(field: &str, v: &Value) -> Result<Vec<Message>, String> {
    let arr = v.as_array().ok_or_else(|| {
        format!(
            "field `{field}` must be a list of messages, found {}",
            type_name(v)
        )
    })?;
    if arr.is_empty() {
        return Err(format!("field `{field}` is empty"));
    }
    let mut out = Vec::with_capacity(arr.len());
    for (i, m) in arr.iter().enumerate() {
        let o = m
            .as_object()
            .ok_or_else(|| format!("{field}[{i}] must be an object"))?;
        let role = string_field(o, "role")
            .map_err(|e| format!("{field}[{i}]: {e}"))?
            .ok_or_else(|| format!("{field}[{i}]: missing field `role`"))?;
        if !ROLES.contains(&role.as_str()) {
            return Err(format!(
                "{field}[{i}]: unknown role `{role}`; expected one of {}",
                ROLES.join(", ")
            ));
        }
        let content = string_field(o, "content")
            .map_err(|e| format!("{field}[{i}]: {e}"))?
            .ok_or_else(|| format!("{field}[{i}]: missing field `content`"))?;
        out.push(Message { role, content });
    }
    Ok(out)
}

fn parse_record(v: &Value) -> Result<(Record, Option<String>), String> {
    let obj = v
        .as_object()
        .ok_or_else(|| format!("expected a JSON object, found {}", type_name(v)))?;
    let task = string_field(obj, "task")?;
    if let Some(msgs) = obj.get("messages") {
        return Ok((Record::Messages(messages("messages", msgs)?), task));
    }
    // TRL's conversational prompt/completion: both fields lists of messages
    if let (Some(p @ Value::Array(_)), Some(c)) | (Some(p), Some(c @ Value::Array(_))) =
        (obj.get("prompt"), obj.get("completion"))
    {
        let prompt = messages("prompt", p)?;
        let completion = messages("completion", c)?;
        if let Some((i, m)) = completion
            .iter()
            .enumerate()
            .find(|(_, m)| m.role != "assistant")
        {
            return Err(format!(
                "completion[{i}]: role `{}`; a completion holds assistant turns only",
                m.role
            ));
        }
        return Ok((Record::ChatPromptCompletion { prompt, completion }, task));
    }
    if obj.contains_key("prompt") || obj.contains_key("completion") {
        let prompt = string_field(obj, "prompt")?.ok_or("field `completion` without `prompt`")?;
        let completion =
            string_field(obj, "completion")?.ok_or("field `prompt` without `completion`")?;
        return Ok((Record::PromptCompletion { prompt, completion }, task));
    }
    if let Some(t) = string_field(obj, "text")? {
        return Ok((Record::Text(t), task));
    }
    let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    Err(format!(
        "no `prompt`/`completion`, `messages` or `text` field (found: {})",
        if keys.is_empty() {
            "none".to_string()
        } else {
            keys.join(", ")
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Sample>, DataError> {
        parse_jsonl(Path::new("data.jsonl"), text)
    }

    #[test]
    fn reads_all_three_formats_with_tasks() {
        let s = parse(
            "{\"prompt\":\"2+2=\",\"completion\":\"4\",\"task\":\"math\"}\n\n\
             {\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"hello\"}]}\n\
             {\"text\":\"plain\"}\n",
        )
        .unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].task.as_deref(), Some("math"));
        assert_eq!(s[1].line, 3);
        assert!(matches!(s[1].record, Record::Messages(ref m) if m.len() == 2));
        assert_eq!(s[2].record, Record::Text("plain".into()));
    }

    #[test]
    fn reads_trl_conversational_prompt_completion() {
        let s = parse(
            "{\"prompt\":[{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\",\"content\":\"2+2?\"}],\"completion\":[{\"role\":\"assistant\",\"content\":\"4\"}]}\n",
        )
        .unwrap();
        match &s[0].record {
            Record::ChatPromptCompletion { prompt, completion } => {
                assert_eq!((prompt.len(), completion.len()), (2, 1));
                assert_eq!(completion[0].content, "4");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s[0].record.prompt_text(), "Be brief.\n2+2?");
        // a string on one side and turns on the other, or a completion turn not the assistant's
        let e = parse(
            "{\"prompt\":\"2+2?\",\"completion\":[{\"role\":\"assistant\",\"content\":\"4\"}]}",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("data.jsonl:1:") && e.contains("`prompt` must be a list of messages"),
            "{e}"
        );
        let e = parse("{\"prompt\":[{\"role\":\"user\",\"content\":\"x\"}],\"completion\":[{\"role\":\"user\",\"content\":\"y\"}]}")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("completion[0]") && e.contains("assistant turns only"),
            "{e}"
        );
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let e = parse("{\"text\":\"ok\"}\n{\"prompt\": 3, \"completion\": \"x\"}\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("data.jsonl:2:") && e.contains("`prompt`"),
            "{e}"
        );
        let e = parse("{\"text\":\"ok\"}\n{oops\n").unwrap_err().to_string();
        assert!(
            e.starts_with("data.jsonl:2:2:") && e.contains("invalid JSON"),
            "{e}"
        );
        let e = parse("{\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("data.jsonl:1:") && e.contains("unknown role `wizard`"),
            "{e}"
        );
        let e = parse("{\"input\":\"x\"}").unwrap_err().to_string();
        assert!(e.contains("found: input"), "{e}");
        assert!(matches!(parse("\n\n"), Err(DataError::Empty { .. })));
    }
}

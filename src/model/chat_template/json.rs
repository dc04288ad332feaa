//! `tojson`: Python's `json.dumps` as transformers calls it.

use super::python::{py_float_repr, py_type_name, type_error};
use super::*;

/// transformers' `tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)`,
/// i.e. Python's `json.dumps` with those arguments (no HTML escaping).
pub(super) fn tojson_filter(value: &Value, args: Rest<Value>) -> Result<Value, minijinja::Error> {
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

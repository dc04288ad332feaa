//! The jinja2 filters whose results differ from minijinja's built-ins.

use super::python::{opt_str_arg, py_splitlines, py_str, py_strip, py_type_name, type_error};
use super::*;

/// jinja2's `trim(value, chars=None)`: `str(value).strip(chars)`.
pub(super) fn trim_filter(value: &Value, chars: Option<Value>) -> Result<Value, minijinja::Error> {
    let chars = opt_str_arg(&chars, "strip")?;
    let s = py_str(value);
    Ok(Value::from(py_strip(&s, chars.as_deref(), true, true)))
}

/// jinja2's `length`: `len(value)`, which is 0 for an undefined value.
pub(super) fn length_filter(value: &Value) -> Result<Value, minijinja::Error> {
    if value.is_undefined() {
        return Ok(Value::from(0));
    }
    minijinja::filters::length(value).map(Value::from)
}

/// jinja2's `round(value, precision=0, method='common')`; "common" is Python's `round`, which
/// rounds half to even on the exact binary value (as Rust's fixed-precision formatting does).
pub(super) fn round_filter(
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
pub(super) fn join_filter(
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
pub(super) fn first_filter(value: &Value) -> Result<Value, minijinja::Error> {
    if value.is_undefined() {
        return Ok(Value::UNDEFINED);
    }
    minijinja::filters::first(value)
}

pub(super) fn last_filter(value: Value) -> Result<Value, minijinja::Error> {
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
pub(super) fn int_filter(
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
pub(super) fn float_filter(
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

/// jinja2's `indent(s, width=4, first=False, blank=False)`.
pub(super) fn indent_filter(
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
pub(super) fn escape_filter(value: &Value) -> Value {
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
pub(super) fn string_filter(value: &Value) -> Value {
    if value.kind() == ValueKind::String {
        return value.clone();
    }
    Value::from(py_str(value))
}

//! Template source rewriting: the `{% generation %}` tag and jinja2's Python string-literal
//! escapes, in forms minijinja reads the same way.

use super::*;

/// Rewrites the template source where jinja2's lexer and minijinja's disagree, keeping every
/// line where it was so error line numbers still point into the original file:
///
/// * transformers registers a `{% generation %}...{% endgeneration %}` block tag that renders its
///   body unchanged (it only records where assistant text is). minijinja has no custom tags, so
///   these become `{% if true %}` / `{% endif %}`, which keep the same whitespace control.
/// * jinja2 decodes string literals with Python's `unicode-escape` codec (`\` + newline is a line
///   continuation, `\a`, `\v`, `\U0001F600`, unknown escapes keep their backslash); literals with
///   a backslash are decoded that way here and re-escaped in a form minijinja reads back exactly.
pub(super) fn preprocess_source(
    source: &str,
    mark_generation: bool,
) -> Result<String, (usize, String)> {
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

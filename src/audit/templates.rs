//! Repeated templates: prompts that share one skeleton once the variable parts are masked.
//!
//! [`mask`] replaces fenced code with `<CODE>`, URLs with `<URL>`, e-mail addresses with
//! `<EMAIL>`, quoted strings with `<STR>` and digit runs (with `.`, `,` or `:` between digits,
//! so `3.14`, `1,000`, `12:30`) with `<NUM>`, and collapses whitespace. Prompts with the same
//! masked text share a template.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::rate;
use super::text::preview;

/// Characters of a template kept in the report.
pub const TEMPLATE_CHARS: usize = 200;

/// The prompt skeleton: variable parts masked, whitespace collapsed.
pub fn mask(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut gap = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            gap = true;
            i += 1;
            continue;
        }
        if gap && !out.is_empty() {
            out.push(' ');
        }
        gap = false;
        if starts_with(&chars, i, "```") {
            // Fenced code; an unclosed fence stays literal (not an empty inline quote).
            match fenced_code(&chars, i) {
                Some(end) => {
                    out.push_str("<CODE>");
                    i = end;
                }
                None => {
                    out.push_str("```");
                    i += 3;
                }
            }
            continue;
        }
        let word_start = i == 0 || !chars[i - 1].is_alphanumeric();
        let masked = word_start
            .then(|| url(&chars, i))
            .flatten()
            .map(|e| ("<URL>", e))
            .or_else(|| {
                word_start
                    .then(|| email(&chars, i))
                    .flatten()
                    .map(|e| ("<EMAIL>", e))
            })
            .or_else(|| quoted(&chars, i, word_start).map(|e| ("<STR>", e)))
            .or_else(|| number(&chars, i).map(|e| ("<NUM>", e)));
        match masked {
            Some((token, end)) => {
                out.push_str(token);
                i = end;
            }
            None => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

fn starts_with(chars: &[char], i: usize, pat: &str) -> bool {
    let mut k = i;
    for p in pat.chars() {
        match chars.get(k) {
            Some(c) if c.to_ascii_lowercase() == p => k += 1,
            _ => return false,
        }
    }
    true
}

/// ```` ``` ... ``` ```` → end index after the closing fence.
fn fenced_code(chars: &[char], i: usize) -> Option<usize> {
    if !starts_with(chars, i, "```") {
        return None;
    }
    (i + 3..chars.len().saturating_sub(2))
        .find(|&k| starts_with(chars, k, "```"))
        .map(|k| k + 3)
}

/// The end of the whitespace-delimited word at `i`, less trailing punctuation.
fn word_end(chars: &[char], i: usize) -> usize {
    let mut end = (i..chars.len())
        .find(|&k| chars[k].is_whitespace())
        .unwrap_or(chars.len());
    while end > i && ".,;:!?)]}>\"'”’".contains(chars[end - 1]) {
        end -= 1;
    }
    end
}

fn url(chars: &[char], i: usize) -> Option<usize> {
    if !["http://", "https://", "www."]
        .iter()
        .any(|p| starts_with(chars, i, p))
    {
        return None;
    }
    let end = word_end(chars, i);
    (end > i + 4).then_some(end)
}

fn email(chars: &[char], i: usize) -> Option<usize> {
    let end = word_end(chars, i);
    let word = &chars[i..end];
    let at = word.iter().position(|&c| c == '@')?;
    let (local, domain) = (&word[..at], &word[at + 1..]);
    let ok_local = !local.is_empty()
        && local
            .iter()
            .all(|c| c.is_alphanumeric() || "._%+-".contains(*c));
    let dot = domain.iter().rposition(|&c| c == '.');
    let ok_domain = matches!(dot, Some(d) if d > 0 && d + 1 < domain.len())
        && domain
            .iter()
            .all(|c| c.is_alphanumeric() || ".-".contains(*c));
    (ok_local && ok_domain).then_some(end)
}

/// A quoted string: `"…"`, `“…”`, `‘…’`, `«…»` anywhere; `` `…` `` and `'…'` on one line,
/// `'` only at a word start and closed before a non-letter (so `don't` is no quote).
fn quoted(chars: &[char], i: usize, word_start: bool) -> Option<usize> {
    let (close, one_line) = match chars[i] {
        '"' => ('"', false),
        '“' => ('”', false),
        '‘' => ('’', false),
        '«' => ('»', false),
        '`' => ('`', true),
        '\'' if word_start => ('\'', true),
        _ => return None,
    };
    for k in i + 1..chars.len() {
        let c = chars[k];
        if one_line && c == '\n' {
            return None;
        }
        if c == close {
            if close == '\'' && chars.get(k + 1).is_some_and(|n| n.is_alphanumeric()) {
                continue;
            }
            return Some(k + 1);
        }
    }
    None
}

fn number(chars: &[char], i: usize) -> Option<usize> {
    if !chars[i].is_ascii_digit() {
        return None;
    }
    let mut k = i;
    while k < chars.len() {
        let separator =
            ".,:".contains(chars[k]) && chars.get(k + 1).is_some_and(|c| c.is_ascii_digit());
        if chars[k].is_ascii_digit() || separator {
            k += 1;
        } else {
            break;
        }
    }
    Some(k)
}

/// One template and how many prompts use it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateCount {
    /// the masked prompt, cut short
    pub template: String,
    pub records: usize,
    /// `records / prompts`
    pub share: f64,
    /// line of the first prompt with this template
    pub first_line: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Templates {
    /// non-empty prompts looked at (text records have none)
    pub prompts: usize,
    /// distinct templates
    pub distinct: usize,
    /// templates used by two or more prompts
    pub repeated: usize,
    /// prompts whose template is repeated, and their share of `prompts`
    pub prompts_in_repeated: usize,
    pub repeated_share: f64,
    /// share of the most used repeated template (0 when none repeats)
    pub top_share: f64,
    /// the most used repeated templates
    pub top: Vec<TemplateCount>,
}

/// Templates of `(line, prompt)` pairs; empty prompts are skipped.
pub fn templates<'a>(prompts: impl IntoIterator<Item = (usize, &'a str)>, top: usize) -> Templates {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut counts: Vec<(String, usize, usize)> = Vec::new();
    let mut n = 0;
    for (line, p) in prompts {
        if p.trim().is_empty() {
            continue;
        }
        n += 1;
        let t = mask(p);
        match index.get(&t) {
            Some(&k) => counts[k].1 += 1,
            None => {
                index.insert(t.clone(), counts.len());
                counts.push((t, 1, line));
            }
        }
    }
    let distinct = counts.len();
    let mut repeated: Vec<(String, usize, usize)> =
        counts.into_iter().filter(|c| c.1 > 1).collect();
    repeated.sort_by(|a, b| b.1.cmp(&a.1).then(a.2.cmp(&b.2)));
    let in_repeated: usize = repeated.iter().map(|c| c.1).sum();
    Templates {
        prompts: n,
        distinct,
        repeated: repeated.len(),
        prompts_in_repeated: in_repeated,
        repeated_share: rate(in_repeated, n),
        top_share: repeated.first().map_or(0.0, |c| rate(c.1, n)),
        top: repeated
            .into_iter()
            .take(top)
            .map(|(t, count, line)| TemplateCount {
                template: preview(&t, TEMPLATE_CHARS),
                records: count,
                share: rate(count, n),
                first_line: line,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_numbers_quotes_urls_and_emails() {
        assert_eq!(mask("What is 12 + 7.5?"), "What is <NUM> + <NUM>?");
        assert_eq!(mask("Pay $1,000,000 by 12:30."), "Pay $<NUM> by <NUM>.");
        assert_eq!(
            mask("Translate \"good morning\" to French"),
            "Translate <STR> to French"
        );
        assert_eq!(mask("Say “hi” and ‘bye’ «ok»"), "Say <STR> and <STR> <STR>");
        assert_eq!(
            mask("Don't say 'hello there', it's rude"),
            "Don't say <STR>, it's rude"
        );
        assert_eq!(mask("users' data"), "users' data");
        assert_eq!(mask("Run `ls -la` now"), "Run <STR> now");
        assert_eq!(
            mask("Fix:\n```py\nx = 1\n```\nplease"),
            "Fix: <CODE> please"
        );
        assert_eq!(
            mask("See https://ex.com/a?b=1, then www.x.org."),
            "See <URL>, then <URL>."
        );
        assert_eq!(
            mask("Mail bob.smith+x@mail.example.com today"),
            "Mail <EMAIL> today"
        );
        assert_eq!(mask("a@b is not mail"), "a@b is not mail");
        assert_eq!(mask("gpt4 and Q3"), "gpt<NUM> and Q<NUM>");
    }

    #[test]
    fn mask_edge_cases() {
        assert_eq!(mask(""), "");
        assert_eq!(mask("   "), "");
        assert_eq!(mask("  a \n\t b  "), "a b");
        // Unclosed quotes and fences stay literal.
        assert_eq!(mask("a \"b c"), "a \"b c");
        assert_eq!(mask("```x"), "```x");
        assert_eq!(mask("`a\nb`"), "`a b`");
        assert_eq!(mask("3."), "<NUM>.");
        assert_eq!(mask("v1.2.3"), "v<NUM>");
    }

    #[test]
    fn counts_and_shares_repeated_templates() {
        let prompts = [
            (1, "What is 2 + 3?"),
            (2, "Tell me a joke"),
            (3, "What is 10 + 41?"),
            (4, ""),
            (5, "What is 7 + 7?"),
            (6, "Translate \"cat\" to German"),
            (7, "Translate \"dog\" to German"),
            (8, "Tell me a story"),
        ];
        let t = templates(prompts, 10);
        assert_eq!(t.prompts, 7);
        assert_eq!((t.distinct, t.repeated, t.prompts_in_repeated), (4, 2, 5));
        assert_eq!(t.top[0].template, "What is <NUM> + <NUM>?");
        assert_eq!((t.top[0].records, t.top[0].first_line), (3, 1));
        assert!((t.top_share - 3.0 / 7.0).abs() < 1e-12);
        assert!((t.repeated_share - 5.0 / 7.0).abs() < 1e-12);
        assert_eq!(t.top[1].template, "Translate <STR> to German");
        assert_eq!(templates(prompts, 1).top.len(), 1);
    }

    #[test]
    fn no_repeats_no_share() {
        let t = templates([(1, "a"), (2, "b")], 10);
        assert_eq!((t.repeated, t.top_share, t.top.len()), (0, 0.0, 0));
        let t = templates(std::iter::empty(), 10);
        assert_eq!((t.prompts, t.distinct, t.repeated_share), (0, 0, 0.0));
    }
}

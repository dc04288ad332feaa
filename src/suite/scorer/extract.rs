//! Answer extraction from generated text, as lm-eval's filters do: a regex's first group,
//! the last number, or the last `\boxed{…}`; and exact-match comparison of numbers.

use regex::Regex;

/// First match of `pattern` (its first capture group when it has one), like lm-eval's
/// `regex` filter followed by `take_first`.
pub fn regex_first(text: &str, pattern: &Regex) -> Option<String> {
    let c = pattern.captures(text)?;
    Some(c.get(1).or_else(|| c.get(0))?.as_str().trim().to_string())
}

/// The last number in the text (lm-eval's gsm8k "flexible-extract":
/// `(-?[$0-9.,]{2,})|(-?[0-9]+)`, last match).
pub fn last_number(text: &str) -> Option<String> {
    let re = Regex::new(r"(-?[$0-9.,]{2,})|(-?[0-9]+)").expect("valid regex");
    let m = re
        .find_iter(text)
        .filter(|m| m.as_str().chars().any(|c| c.is_ascii_digit()))
        .last()?;
    Some(m.as_str().to_string())
}

/// The content of the last `\boxed{…}` (or `\fbox{…}`), braces balanced.
pub fn last_boxed(text: &str) -> Option<String> {
    let start = text.rfind("\\boxed").or_else(|| text.rfind("\\fbox"))?;
    let rest = &text[start..];
    let open = rest.find('{')?;
    let mut depth = 0usize;
    for (i, c) in rest[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(rest[open + 1..open + i].to_string());
                }
            }
            _ => {}
        }
    }
    None
}

/// Canonical form of a numeric answer: `$`, `,` and a trailing `.` removed, trailing zeros of
/// a decimal dropped (`"1,000.50"` → `"1000.5"`).
pub fn normalize_number(s: &str) -> String {
    let mut t: String = s
        .trim()
        .chars()
        .filter(|c| *c != ',' && *c != '$')
        .collect();
    while t.ends_with('.') {
        t.pop();
    }
    if t.contains('.') {
        while t.ends_with('0') {
            t.pop();
        }
        if t.ends_with('.') {
            t.pop();
        }
    }
    if t == "-0" {
        t = "0".into();
    }
    t
}

/// Numeric exact match after normalisation.
pub fn numbers_equal(a: &str, b: &str) -> bool {
    let (a, b) = (normalize_number(a), normalize_number(b));
    a == b || matches!((a.parse::<f64>(), b.parse::<f64>()), (Ok(x), Ok(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm8k_style_extraction() {
        let strict = Regex::new(r"#### (\-?[0-9\.\,]+)").unwrap();
        assert_eq!(
            regex_first("so 3+4=7\n#### 7", &strict).as_deref(),
            Some("7")
        );
        assert_eq!(regex_first("no marker", &strict), None);
        assert_eq!(
            last_number("He has 3 apples, then 1,200 more.").as_deref(),
            Some("1,200")
        );
        assert_eq!(last_number("The answer is -5").as_deref(), Some("-5"));
        assert_eq!(last_number("no digits here"), None);
        assert!(numbers_equal("1,200", "1200"));
        assert!(numbers_equal("$18.00", "18"));
        assert!(!numbers_equal("18", "19"));
    }

    #[test]
    fn boxed_answers_with_nested_braces() {
        assert_eq!(
            last_boxed(r"so \boxed{1} then \boxed{\frac{1}{2}}.").as_deref(),
            Some(r"\frac{1}{2}")
        );
        assert_eq!(last_boxed(r"\boxed{unclosed"), None);
        assert_eq!(last_boxed("none"), None);
    }
}

//! Empty prompts and responses (nothing but whitespace).

use serde::{Deserialize, Serialize};

use super::duplicates::MAX_LINES;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Empty {
    /// records whose prompt is empty (text records have no prompt)
    pub empty_prompts: usize,
    /// records whose response — completion, assistant turns or text — is empty
    pub empty_responses: usize,
    /// records with either
    pub records: usize,
    /// their lines, the first [`MAX_LINES`]
    pub lines: Vec<usize>,
}

/// `(line, prompt, response)` per record; `prompt` is `None` for text records.
pub fn empty<'a>(items: impl IntoIterator<Item = (usize, Option<&'a str>, &'a str)>) -> Empty {
    let mut e = Empty {
        empty_prompts: 0,
        empty_responses: 0,
        records: 0,
        lines: Vec::new(),
    };
    for (line, prompt, response) in items {
        let p = prompt.is_some_and(|p| p.trim().is_empty());
        let r = response.trim().is_empty();
        e.empty_prompts += usize::from(p);
        e.empty_responses += usize::from(r);
        if p || r {
            e.records += 1;
            if e.lines.len() < MAX_LINES {
                e.lines.push(line);
            }
        }
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_record_once() {
        let e = empty([
            (1, Some("q"), "a"),
            (2, Some("  "), "a"),
            (3, Some("q"), "\n"),
            (4, Some(""), ""),
            (5, None, ""),
            (6, None, "text"),
        ]);
        assert_eq!((e.empty_prompts, e.empty_responses, e.records), (2, 3, 4));
        assert_eq!(e.lines, vec![2, 3, 4, 5]);
        assert_eq!(empty(std::iter::empty()).records, 0);
    }
}

//! The same prompt answered differently.
//!
//! Prompts and responses are compared with whitespace collapsed (case and punctuation kept);
//! a prompt conflicts when its records hold two or more distinct responses. Empty prompts are
//! left to the empty check.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::duplicates::MAX_LINES;
use super::text::{preview, squash_whitespace};
use super::PREVIEW_CHARS;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conflict {
    /// the prompt, cut short
    pub prompt: String,
    pub records: usize,
    pub distinct_responses: usize,
    /// 1-based lines, the first [`MAX_LINES`]
    pub lines: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conflicts {
    /// prompts that occur in two or more records
    pub repeated_prompts: usize,
    /// prompts with two or more distinct responses
    pub prompts: usize,
    /// records holding those prompts
    pub records: usize,
    /// most distinct responses first
    pub top: Vec<Conflict>,
}

/// Conflicts among `(line, prompt, response)` triples.
pub fn conflicts<'a>(
    items: impl IntoIterator<Item = (usize, &'a str, &'a str)>,
    top: usize,
) -> Conflicts {
    struct Entry {
        prompt: String,
        lines: Vec<usize>,
        records: usize,
        responses: HashSet<String>,
    }
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut entries: Vec<Entry> = Vec::new();
    for (line, prompt, response) in items {
        let p = squash_whitespace(prompt);
        if p.is_empty() {
            continue;
        }
        let k = match index.get(&p) {
            Some(&k) => k,
            None => {
                index.insert(p.clone(), entries.len());
                entries.push(Entry {
                    prompt: p,
                    lines: Vec::new(),
                    records: 0,
                    responses: HashSet::new(),
                });
                entries.len() - 1
            }
        };
        let e = &mut entries[k];
        e.records += 1;
        if e.lines.len() < MAX_LINES {
            e.lines.push(line);
        }
        e.responses.insert(squash_whitespace(response));
    }
    let repeated_prompts = entries.iter().filter(|e| e.records > 1).count();
    let mut bad: Vec<Entry> = entries
        .into_iter()
        .filter(|e| e.responses.len() > 1)
        .collect();
    bad.sort_by(|a, b| {
        (b.responses.len(), b.records)
            .cmp(&(a.responses.len(), a.records))
            .then(a.lines[0].cmp(&b.lines[0]))
    });
    Conflicts {
        repeated_prompts,
        prompts: bad.len(),
        records: bad.iter().map(|e| e.records).sum(),
        top: bad
            .into_iter()
            .take(top)
            .map(|e| Conflict {
                prompt: preview(&e.prompt, PREVIEW_CHARS),
                records: e.records,
                distinct_responses: e.responses.len(),
                lines: e.lines,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_prompts_with_different_responses() {
        let items = [
            (1, "Capital of France?", "Paris"),
            (2, "Capital  of France?", "Paris "), // same after whitespace collapse
            (3, "Capital of France?", "Lyon"),
            (4, "2+2?", "4"),
            (5, "2+2?", "4"),
            (6, "Name a colour", "red"),
            (7, "Name a colour", "blue"),
            (8, "Name a colour", "green"),
            (9, "", "x"),
            (10, "", "y"),
            (11, "capital of france?", "Marseille"), // case differs: another prompt
        ];
        let c = conflicts(items, 10);
        assert_eq!((c.repeated_prompts, c.prompts, c.records), (3, 2, 6));
        assert_eq!(c.top[0].prompt, "Name a colour");
        assert_eq!(
            (c.top[0].distinct_responses, c.top[0].lines.clone()),
            (3, vec![6, 7, 8])
        );
        assert_eq!((c.top[1].records, c.top[1].distinct_responses), (3, 2));
        assert_eq!(conflicts(items, 1).top.len(), 1);
    }

    #[test]
    fn none_when_answers_agree() {
        let c = conflicts([(1, "a", "b"), (2, "a", "b"), (3, "c", "d")], 10);
        assert_eq!((c.repeated_prompts, c.prompts, c.records), (1, 0, 0));
        assert_eq!(conflicts(std::iter::empty(), 10).prompts, 0);
    }
}

//! Length distributions (characters, whitespace words, optional tokens) and over-long records.

use serde::{Deserialize, Serialize};

/// Summary of one distribution. Percentiles are nearest-rank: `pₖ` is the `⌈k/100·n⌉`-th
/// smallest value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub min: usize,
    pub p50: usize,
    pub p90: usize,
    pub p99: usize,
    pub max: usize,
    pub mean: f64,
}

/// `None` for no values.
pub fn stats(values: &[usize]) -> Option<Stats> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_unstable();
    let n = v.len();
    let rank = |p: usize| v[(p * n).div_ceil(100).clamp(1, n) - 1];
    Some(Stats {
        min: v[0],
        p50: rank(50),
        p90: rank(90),
        p99: rank(99),
        max: v[n - 1],
        mean: v.iter().map(|&x| x as f64).sum::<f64>() / n as f64,
    })
}

/// The lengths of one field (prompts or responses).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lengths {
    /// texts measured
    pub count: usize,
    /// Unicode scalar values
    pub chars: Stats,
    /// whitespace-separated words
    pub words: Stats,
    /// tokens without special tokens, when a tokenizer was given
    pub tokens: Option<Stats>,
}

/// `None` when `texts` is empty. `tokens`, when given, holds one count per text.
pub fn lengths(texts: &[&str], tokens: Option<&[usize]>) -> Option<Lengths> {
    let chars: Vec<usize> = texts.iter().map(|t| t.chars().count()).collect();
    let words: Vec<usize> = texts.iter().map(|t| super::text::word_count(t)).collect();
    Some(Lengths {
        count: texts.len(),
        chars: stats(&chars)?,
        words: stats(&words)?,
        tokens: tokens.and_then(stats),
    })
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LengthReport {
    /// prompts of prompt/completion and messages records
    pub prompt: Option<Lengths>,
    /// completions, assistant turns, and the texts of text records
    pub response: Option<Lengths>,
}

/// One record over a length limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LongRecord {
    pub line: usize,
    /// prompt + response characters
    pub chars: usize,
    /// prompt + response tokens, when a tokenizer was given
    pub tokens: Option<usize>,
}

/// Records longer than `max_chars` characters or `max_tokens` tokens (prompt + response,
/// no special tokens, no chat template).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverLong {
    pub max_chars: Option<usize>,
    pub max_tokens: Option<usize>,
    pub records: usize,
    /// the longest, longest first
    pub top: Vec<LongRecord>,
}

/// `records`: `(line, chars, tokens)` per record.
pub fn over_long(
    records: &[(usize, usize, Option<usize>)],
    max_chars: Option<usize>,
    max_tokens: Option<usize>,
    top: usize,
) -> OverLong {
    let mut long: Vec<LongRecord> = records
        .iter()
        .filter(|(_, c, t)| {
            max_chars.is_some_and(|m| *c > m)
                || matches!((t, max_tokens), (Some(t), Some(m)) if *t > m)
        })
        .map(|&(line, chars, tokens)| LongRecord {
            line,
            chars,
            tokens,
        })
        .collect();
    let n = long.len();
    long.sort_by(|a, b| {
        b.tokens
            .cmp(&a.tokens)
            .then(b.chars.cmp(&a.chars))
            .then(a.line.cmp(&b.line))
    });
    long.truncate(top);
    OverLong {
        max_chars,
        max_tokens,
        records: n,
        top: long,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<usize> = (1..=100).collect();
        let s = stats(&v).unwrap();
        assert_eq!((s.min, s.p50, s.p90, s.p99, s.max), (1, 50, 90, 99, 100));
        assert!((s.mean - 50.5).abs() < 1e-12);
        let s = stats(&[7]).unwrap();
        assert_eq!((s.min, s.p50, s.p99, s.max), (7, 7, 7, 7));
        let s = stats(&[5, 1, 3]).unwrap();
        assert_eq!((s.min, s.p50, s.p90, s.max), (1, 3, 5, 5));
        assert!(stats(&[]).is_none());
    }

    #[test]
    fn chars_words_and_tokens() {
        let l = lengths(&["héllo world", "", "a  b   c"], Some(&[3, 0, 3])).unwrap();
        assert_eq!(l.count, 3);
        assert_eq!((l.chars.min, l.chars.max), (0, 11));
        assert_eq!((l.words.min, l.words.p50, l.words.max), (0, 2, 3));
        assert_eq!(l.tokens.unwrap().max, 3);
        assert!(lengths(&["x"], None).unwrap().tokens.is_none());
        assert!(lengths(&[], None).is_none());
    }

    #[test]
    fn over_long_by_chars_or_tokens() {
        let recs = [
            (1, 10, Some(2)),
            (2, 50, Some(9)),
            (3, 30, Some(20)),
            (4, 5, None),
        ];
        let o = over_long(&recs, Some(20), None, 10);
        assert_eq!(o.records, 2);
        assert_eq!(o.top.iter().map(|r| r.line).collect::<Vec<_>>(), vec![3, 2]);
        let o = over_long(&recs, None, Some(8), 1);
        assert_eq!((o.records, o.top.len(), o.top[0].line), (2, 1, 3));
        let o = over_long(&recs, Some(40), Some(15), 10);
        assert_eq!(o.records, 2);
        assert_eq!(over_long(&recs, None, None, 10).records, 0);
    }
}

//! Lexical diversity: distinct-n (Li et al., 2016).
//!
//! `distinct-n = |unique n-grams| / |n-grams|` over the words of every text of one field
//! (normalised: lower-cased, punctuation dropped); n-grams never span two texts. The ratio
//! falls as a corpus grows, so compare data sets of similar size.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use serde::{Deserialize, Serialize};

use super::text::{hash_bytes, mix64, normalise};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Distinct {
    pub texts: usize,
    pub unigrams: usize,
    pub unique_unigrams: usize,
    pub bigrams: usize,
    pub unique_bigrams: usize,
    /// `unique_unigrams / unigrams`; `None` without words
    pub distinct_1: Option<f64>,
    /// `unique_bigrams / bigrams`; `None` without word pairs
    pub distinct_2: Option<f64>,
}

/// A hasher for keys that are already well-mixed 64-bit hashes: passes them through.
#[derive(Default)]
struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = mix64(self.0 ^ u64::from(b));
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = x;
    }
}

type HashSet64 = HashSet<u64, BuildHasherDefault<PreHashed>>;

/// Distinct-1 and distinct-2 of `texts`. N-grams are counted by 64-bit hash.
pub fn distinct<'a>(texts: impl IntoIterator<Item = &'a str>) -> Distinct {
    let mut uni = HashSet64::default();
    let mut bi = HashSet64::default();
    let (mut n_texts, mut n_uni, mut n_bi) = (0, 0, 0);
    for t in texts {
        n_texts += 1;
        let norm = normalise(t);
        let mut prev: Option<u64> = None;
        for w in norm.split(' ').filter(|w| !w.is_empty()) {
            let h = hash_bytes(w.as_bytes());
            uni.insert(h);
            n_uni += 1;
            if let Some(p) = prev {
                bi.insert(mix64(
                    p.rotate_left(23) ^ h.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                ));
                n_bi += 1;
            }
            prev = Some(h);
        }
    }
    let ratio = |u: usize, n: usize| (n > 0).then(|| u as f64 / n as f64);
    Distinct {
        texts: n_texts,
        unigrams: n_uni,
        unique_unigrams: uni.len(),
        bigrams: n_bi,
        unique_bigrams: bi.len(),
        distinct_1: ratio(uni.len(), n_uni),
        distinct_2: ratio(bi.len(), n_bi),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diversity {
    /// over prompts (`None` when no record has one)
    pub prompt: Option<Distinct>,
    /// over responses and the texts of text records
    pub response: Option<Distinct>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_unique_over_total() {
        // words: a b a | A, b.  → a b a a b: 5 unigrams, 2 unique; bigrams ab ba | ab: 3, 2 unique
        let d = distinct(["a b a", "A, b."]);
        assert_eq!((d.texts, d.unigrams, d.unique_unigrams), (2, 5, 2));
        assert_eq!((d.bigrams, d.unique_bigrams), (3, 2));
        assert_eq!(d.distinct_1, Some(0.4));
        assert_eq!(d.distinct_2, Some(2.0 / 3.0));
    }

    #[test]
    fn bigrams_do_not_span_texts_and_order_matters() {
        let d = distinct(["x y", "y x"]);
        assert_eq!((d.bigrams, d.unique_bigrams), (2, 2));
        let d = distinct(["x", "y"]);
        assert_eq!((d.bigrams, d.distinct_2), (0, None));
        assert_eq!(d.distinct_1, Some(1.0));
    }

    #[test]
    fn empty_input() {
        let d = distinct(["", "  ", "?!"]);
        assert_eq!(
            (d.texts, d.unigrams, d.distinct_1, d.distinct_2),
            (3, 0, None, None)
        );
        assert_eq!(distinct(std::iter::empty()).texts, 0);
    }
}

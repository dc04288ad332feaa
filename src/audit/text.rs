//! Text helpers shared by the checks: normalisation, stable hashing, previews.

/// Lower-cased, every run of non-alphanumeric characters turned into one space, trimmed.
///
/// `"Hello,  World!"` → `"hello world"`. Used for near duplicates and n-gram diversity.
pub fn normalise(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut gap = false;
    for c in s.chars() {
        if c.is_alphanumeric() {
            if gap && !out.is_empty() {
                out.push(' ');
            }
            gap = false;
            out.extend(c.to_lowercase());
        } else {
            gap = true;
        }
    }
    out
}

/// Whitespace runs collapsed to one space and trimmed; case and punctuation kept.
pub fn squash_whitespace(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for w in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(w);
    }
    out
}

/// Number of whitespace-separated words.
pub fn word_count(s: &str) -> usize {
    s.split_whitespace().count()
}

/// `1 record`, `2 records`: `n` and the noun, plural with an `s` unless `n == 1`.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a over bytes, then [`mix64`]: stable across platforms and Rust releases, so reports
/// are reproducible.
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h = FNV_OFFSET;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    mix64(h)
}

/// FNV-1a over the code points of `chars`, then [`mix64`].
pub fn hash_chars(chars: &[char]) -> u64 {
    let mut h = FNV_OFFSET;
    for &c in chars {
        h ^= u64::from(c as u32);
        h = h.wrapping_mul(FNV_PRIME);
    }
    mix64(h)
}

/// The splitmix64 finaliser: a bijection on u64 that spreads every input bit.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One line, at most `max` characters: newlines and tabs shown as `⏎`/spaces, whitespace runs
/// collapsed, an ellipsis where it was cut.
pub fn preview(s: &str, max: usize) -> String {
    let one_line = s
        .split('\n')
        .map(squash_whitespace)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ⏎ ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    let mut cut: String = one_line.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_lowercases_and_drops_punctuation() {
        assert_eq!(normalise("  Hello,  World!! 42 "), "hello world 42");
        assert_eq!(normalise("ÄÖ-straße"), "äö straße");
        assert_eq!(normalise("?!"), "");
        assert_eq!(normalise(""), "");
    }

    #[test]
    fn squash_keeps_case_and_punctuation() {
        assert_eq!(squash_whitespace(" A,\n\tb  c. "), "A, b c.");
        assert_eq!(word_count(" a b\n c "), 3);
        assert_eq!(word_count("   "), 0);
        assert_eq!(
            (count(1, "record"), count(0, "record")),
            ("1 record".into(), "0 records".into())
        );
    }

    #[test]
    fn hashes_are_stable_and_distinct() {
        // Pinned so a change of hash (and so of every report) is deliberate.
        assert_eq!(hash_bytes(b""), mix64(FNV_OFFSET));
        assert_ne!(hash_bytes(b"ab"), hash_bytes(b"ba"));
        let c: Vec<char> = "ab".chars().collect();
        assert_eq!(hash_chars(&c), hash_chars(&['a', 'b']));
        assert_ne!(hash_chars(&['a', 'b']), hash_chars(&['b', 'a']));
        assert_eq!(mix64(0), 0);
        assert_ne!(mix64(1), 1);
    }

    #[test]
    fn preview_is_one_line_and_cut() {
        assert_eq!(preview("a\n\n b  c\n", 80), "a ⏎ b c");
        assert_eq!(preview("abcdef", 4), "abc…");
        assert_eq!(preview("abcd", 4), "abcd");
        assert_eq!(preview("", 4), "");
    }
}

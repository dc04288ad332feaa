//! MinHash signatures and LSH banding: near-duplicate clusters in about O(n·b log n).
//!
//! - A text's shingles are its overlapping `k`-character windows (the whole text when shorter
//!   than `k`), each hashed to 64 bits.
//! - Permutation `i` is the multiply-shift hash `hᵢ(x) = (aᵢ·x + bᵢ) >> 32` (wrapping u64
//!   arithmetic, `aᵢ` odd); signature slot `i` is `min over shingles of hᵢ`. Two texts agree in
//!   a slot with probability equal to their Jaccard similarity `|A∩B| / |A∪B|`, so the share
//!   of equal slots estimates it (standard error `√(J(1−J)/num_perm)`).
//! - LSH: the signature is cut into `b` bands of `r` rows; texts whose rows agree in any one
//!   band become candidates (probability `1 − (1 − Jʳ)ᵇ`). `b` and `r` minimise
//!   `0.1·(false-positive area) + 0.9·(false-negative area)` under that curve around the
//!   threshold (datasketch's criterion, weighted towards recall because candidates are
//!   verified). At threshold 0.8 and 128 permutations: 14 bands × 9 rows, a pair with J = 0.8
//!   becomes a candidate with probability 0.87, one with J = 0.85 with 0.97. Each band is
//!   sorted by its key, so there is no pairwise pass over all texts.
//! - Candidates are verified before they are merged (union-find): accepted when the estimate
//!   is clearly above the threshold, rejected when clearly below (by `3σ + 1/num_perm`), and
//!   otherwise decided by the exact Jaccard of their shingle sets. Clusters are the connected
//!   components of verified pairs.

use super::text::{hash_chars, mix64};

/// Permutations and shingling: one seeded, reproducible family of hash functions.
#[derive(Debug, Clone)]
pub struct MinHasher {
    shingle: usize,
    a: Vec<u64>,
    b: Vec<u64>,
}

impl MinHasher {
    /// `num_perm` permutations over `shingle`-character shingles (both ≥ 1).
    pub fn new(num_perm: usize, shingle: usize) -> MinHasher {
        assert!(
            num_perm > 0 && shingle > 0,
            "num_perm and shingle must be positive"
        );
        let mut state = 0x5f7e_e7a1_d1ff_0001u64;
        let mut next = || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            mix64(state)
        };
        let a = (0..num_perm).map(|_| next() | 1).collect();
        let b = (0..num_perm).map(|_| next()).collect();
        MinHasher { shingle, a, b }
    }

    pub fn num_perm(&self) -> usize {
        self.a.len()
    }

    /// Hashes of the distinct `k`-character shingles of `text`, sorted; the whole text is one
    /// shingle when shorter than `k`; empty for empty text.
    pub fn shingles(&self, text: &str) -> Vec<u64> {
        let chars: Vec<char> = text.chars().collect();
        if chars.is_empty() {
            return Vec::new();
        }
        let mut out: Vec<u64> = if chars.len() <= self.shingle {
            vec![hash_chars(&chars)]
        } else {
            chars.windows(self.shingle).map(hash_chars).collect()
        };
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The signature of a shingle set, written into `out` (`num_perm` slots).
    pub fn signature_into(&self, shingles: &[u64], out: &mut [u32]) {
        debug_assert_eq!(out.len(), self.a.len());
        out.fill(u32::MAX);
        for &x in shingles {
            for ((slot, &a), &b) in out.iter_mut().zip(&self.a).zip(&self.b) {
                let h = (a.wrapping_mul(x).wrapping_add(b) >> 32) as u32;
                if h < *slot {
                    *slot = h;
                }
            }
        }
    }

    pub fn signature(&self, text: &str) -> Vec<u32> {
        let mut sig = vec![0; self.num_perm()];
        self.signature_into(&self.shingles(text), &mut sig);
        sig
    }

    /// Signatures of every text, flat (`texts.len() × num_perm`), computed on up to `threads`
    /// threads; the result does not depend on the thread count.
    pub fn signatures(&self, texts: &[&str], threads: usize) -> Vec<u32> {
        let p = self.num_perm();
        let mut out = vec![0u32; texts.len() * p];
        if texts.is_empty() {
            return out;
        }
        let per = texts.len().div_ceil(threads.max(1));
        std::thread::scope(|s| {
            for (chunk_texts, chunk_out) in texts.chunks(per).zip(out.chunks_mut(per * p)) {
                s.spawn(move || {
                    for (t, sig) in chunk_texts.iter().zip(chunk_out.chunks_mut(p)) {
                        self.signature_into(&self.shingles(t), sig);
                    }
                });
            }
        });
        out
    }
}

/// Share of equal slots: the MinHash estimate of Jaccard similarity.
pub fn estimate_jaccard(a: &[u32], b: &[u32]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    let same = a.iter().zip(b).filter(|(x, y)| x == y).count();
    same as f64 / a.len() as f64
}

/// Exact Jaccard similarity of two sorted, deduplicated sets (1 for two empty sets).
pub fn jaccard(a: &[u64], b: &[u64]) -> f64 {
    let (mut i, mut j, mut inter) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                inter += 1;
                i += 1;
                j += 1;
            }
        }
    }
    let union = a.len() + b.len() - inter;
    if union == 0 {
        1.0
    } else {
        inter as f64 / union as f64
    }
}

/// Weight of the false-positive area in [`optimal_bands`] (false negatives get the rest).
pub const FALSE_POSITIVE_WEIGHT: f64 = 0.1;

/// `(bands, rows)` with `bands·rows ≤ num_perm` minimising `w·FP + (1−w)·FN`, with the
/// false-positive area `FP = ∫₀ᵗ 1−(1−sʳ)ᵇ ds`, the false-negative area `FN = ∫ₜ¹ (1−sʳ)ᵇ ds`
/// and `w` = [`FALSE_POSITIVE_WEIGHT`].
pub fn optimal_bands(threshold: f64, num_perm: usize) -> (usize, usize) {
    let mut best = (f64::INFINITY, (1, num_perm.max(1)));
    for b in 1..=num_perm {
        for r in 1..=num_perm / b {
            let p = |s: f64| 1.0 - (1.0 - s.powi(r as i32)).powi(b as i32);
            let fp = simpson(p, 0.0, threshold);
            let fneg = simpson(|s| 1.0 - p(s), threshold, 1.0);
            let err = FALSE_POSITIVE_WEIGHT * fp + (1.0 - FALSE_POSITIVE_WEIGHT) * fneg;
            if err < best.0 {
                best = (err, (b, r));
            }
        }
    }
    best.1
}

fn simpson(f: impl Fn(f64) -> f64, lo: f64, hi: f64) -> f64 {
    const N: usize = 64;
    let h = (hi - lo) / N as f64;
    let mut sum = f(lo) + f(hi);
    for k in 1..N {
        sum += f(lo + k as f64 * h) * if k % 2 == 1 { 4.0 } else { 2.0 };
    }
    sum * h / 3.0
}

/// Shingle hashes kept for exact checks (8 bytes each).
const SHINGLE_CACHE: usize = 1 << 22;

/// How many distinct-cluster representatives of one bucket a newcomer is checked against.
const MAX_REPS: usize = 8;

/// Cluster `texts` by their signatures `sigs` (flat, `texts.len() × num_perm`, from
/// `hasher`): returns each text's cluster id (the smallest index in its cluster). Texts join
/// when they share a band and pass verification (module docs).
pub fn cluster(
    hasher: &MinHasher,
    texts: &[&str],
    sigs: &[u32],
    bands: usize,
    rows: usize,
    threshold: f64,
) -> Vec<usize> {
    let num_perm = hasher.num_perm();
    assert!(bands * rows <= num_perm && rows > 0);
    assert_eq!(sigs.len(), texts.len() * num_perm);
    let n = texts.len();
    let sig = |i: usize| &sigs[i * num_perm..(i + 1) * num_perm];
    let sigma = (threshold * (1.0 - threshold) / num_perm as f64).sqrt();
    let margin = 3.0 * sigma + 1.0 / num_perm as f64;
    let mut uf = UnionFind::new(n);
    let mut keyed: Vec<(u64, u32)> = Vec::with_capacity(n);
    // Shingle sets computed for exact checks, kept while they hold under SHINGLE_CACHE hashes.
    let mut shingles: std::collections::HashMap<usize, Vec<u64>> = Default::default();
    let mut cached = 0usize;
    for band in 0..bands {
        keyed.clear();
        keyed.extend((0..n).map(|i| {
            let mut h = 0u64;
            for &v in &sig(i)[band * rows..(band + 1) * rows] {
                h = mix64(h ^ u64::from(v)).wrapping_add(0x9e37_79b9_7f4a_7c15);
            }
            (h, i as u32)
        }));
        keyed.sort_unstable();
        let mut start = 0;
        while start < keyed.len() {
            let mut end = start + 1;
            while end < keyed.len() && keyed[end].0 == keyed[start].0 {
                end += 1;
            }
            if end - start > 1 {
                let mut similar = |a: usize, b: usize| {
                    let est = estimate_jaccard(sig(a), sig(b));
                    if est >= threshold + margin {
                        return true;
                    }
                    if est <= threshold - margin {
                        return false;
                    }
                    for i in [a, b] {
                        if !shingles.contains_key(&i) {
                            let set = hasher.shingles(texts[i]);
                            if cached + set.len() > SHINGLE_CACHE {
                                shingles.retain(|&k, _| k == a || k == b);
                                cached = shingles.values().map(Vec::len).sum();
                            }
                            cached += set.len();
                            shingles.insert(i, set);
                        }
                    }
                    jaccard(&shingles[&a], &shingles[&b]) >= threshold
                };
                let mut reps: Vec<usize> = vec![keyed[start].1 as usize];
                for &(_, x) in &keyed[start + 1..end] {
                    let x = x as usize;
                    let mut joined = false;
                    for &rep in &reps {
                        if uf.find(rep) == uf.find(x) {
                            joined = true;
                        } else if similar(rep, x) {
                            uf.union(rep, x);
                            joined = true;
                        }
                        if joined {
                            break;
                        }
                    }
                    if !joined && reps.len() < MAX_REPS {
                        reps.push(x);
                    }
                }
            }
            start = end;
        }
    }
    // Canonical ids: the smallest member of each cluster.
    let mut smallest = vec![usize::MAX; n];
    for i in 0..n {
        let r = uf.find(i);
        smallest[r] = smallest[r].min(i);
    }
    (0..n).map(|i| smallest[uf.find(i)]).collect()
}

/// Disjoint sets with path halving and union by size.
#[derive(Debug)]
pub struct UnionFind {
    parent: Vec<usize>,
    size: Vec<usize>,
}

impl UnionFind {
    pub fn new(n: usize) -> UnionFind {
        UnionFind {
            parent: (0..n).collect(),
            size: vec![1; n],
        }
    }

    pub fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    pub fn union(&mut self, a: usize, b: usize) {
        let (mut a, mut b) = (self.find(a), self.find(b));
        if a == b {
            return;
        }
        if self.size[a] < self.size[b] {
            std::mem::swap(&mut a, &mut b);
        }
        self.parent[b] = a;
        self.size[a] += self.size[b];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shingles_short_empty_and_repeated_text() {
        let m = MinHasher::new(16, 5);
        assert!(m.shingles("").is_empty());
        assert_eq!(m.shingles("abc").len(), 1);
        assert_eq!(m.shingles("abcde").len(), 1);
        assert_eq!(m.shingles("abcdef").len(), 2);
        // "aaaaaaaa" has four windows, all equal.
        assert_eq!(m.shingles("aaaaaaaa").len(), 1);
    }

    #[test]
    fn exact_jaccard() {
        assert_eq!(jaccard(&[1, 2, 3], &[2, 3, 4]), 0.5);
        assert_eq!(jaccard(&[], &[]), 1.0);
        assert_eq!(jaccard(&[1], &[]), 0.0);
        assert_eq!(jaccard(&[1, 5], &[1, 5]), 1.0);
    }

    #[test]
    fn estimate_tracks_exact_jaccard() {
        let m = MinHasher::new(256, 5);
        let base: String = (0..200).map(|i| format!("word{i} ")).collect();
        for cut in [0usize, 20, 60, 120] {
            let other = format!("{}{}", &base[..base.len() - cut * 4], "x".repeat(cut * 4));
            let exact = jaccard(&m.shingles(&base), &m.shingles(&other));
            let est = estimate_jaccard(&m.signature(&base), &m.signature(&other));
            assert!(
                (exact - est).abs() < 0.1,
                "cut {cut}: exact {exact} est {est}"
            );
        }
        let a = m.signature("identical text here");
        assert_eq!(
            estimate_jaccard(&a, &m.signature("identical text here")),
            1.0
        );
    }

    #[test]
    fn signatures_do_not_depend_on_threads() {
        let m = MinHasher::new(32, 3);
        let texts: Vec<String> = (0..37).map(|i| format!("text number {i}")).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let one = m.signatures(&refs, 1);
        assert_eq!(one, m.signatures(&refs, 4));
        assert_eq!(one, m.signatures(&refs, 64));
        assert_eq!(&one[5 * 32..6 * 32], m.signature(&texts[5]).as_slice());
        assert!(m.signatures(&[], 4).is_empty());
    }

    #[test]
    fn band_choice_matches_the_s_curve() {
        let (b, r) = optimal_bands(0.8, 128);
        assert_eq!((b, r), (14, 9));
        // The S-curve's steepest point (1/b)^(1/r) lies near the threshold.
        let knee = (1.0 / b as f64).powf(1.0 / r as f64);
        assert!((0.65..0.9).contains(&knee), "b={b} r={r} knee={knee}");
        let (b5, r5) = optimal_bands(0.5, 128);
        assert!((1.0 / b5 as f64).powf(1.0 / r5 as f64) < knee);
        assert_eq!(optimal_bands(0.8, 1), (1, 1));
    }

    #[test]
    fn clusters_near_duplicates_not_strangers() {
        let m = MinHasher::new(128, 5);
        let long =
            "the quick brown fox jumps over the lazy dog while the cat sleeps on the warm mat";
        let texts = [
            long.to_string(),
            long.replace("lazy", "sleepy"), // near
            "an entirely different sentence about rust programming and compilers".to_string(),
            long.replace("warm mat", "warm rug"), // near
            "yet another unrelated line of text for the audit checks".to_string(),
        ];
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let sigs = m.signatures(&refs, 2);
        let (b, r) = optimal_bands(0.7, 128);
        let ids = cluster(&m, &refs, &sigs, b, r, 0.7);
        assert_eq!(ids, vec![0, 0, 2, 0, 4]);
        // A threshold of 1 keeps only identical texts together.
        let (b, r) = optimal_bands(1.0, 128);
        assert_eq!(cluster(&m, &refs, &sigs, b, r, 1.0), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn borderline_pairs_are_decided_by_exact_jaccard() {
        // With 1-character shingles, "abcdefghij" + one letter swapped has J = 9/11 ≈ 0.818.
        let m = MinHasher::new(128, 1);
        let mut texts = Vec::new();
        for k in 0..20u32 {
            let base: String = (0..10)
                .map(|i| char::from_u32(0x4e00 + k * 20 + i).unwrap())
                .collect();
            let mut other: Vec<char> = base.chars().collect();
            other[(k % 10) as usize] = char::from_u32(0x4e00 + k * 20 + 15).unwrap();
            let other: String = other.into_iter().collect();
            assert!((jaccard(&m.shingles(&base), &m.shingles(&other)) - 9.0 / 11.0).abs() < 1e-12);
            texts.push(base);
            texts.push(other);
        }
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let sigs = m.signatures(&refs, 1);
        let found = |t: f64| {
            let (b, r) = optimal_bands(t, 128);
            let ids = cluster(&m, &refs, &sigs, b, r, t);
            (0..20).filter(|k| ids[2 * k] == ids[2 * k + 1]).count()
        };
        // Just above the true J: never merged, whatever the estimates say.
        assert_eq!(found(0.82), 0);
        // Just below: (almost) always found.
        assert!(found(0.8) >= 18, "{}", found(0.8));
        assert!(found(0.7) >= 19);
    }

    #[test]
    fn union_find_merges_transitively() {
        let mut uf = UnionFind::new(5);
        uf.union(0, 1);
        uf.union(3, 4);
        uf.union(1, 4);
        assert_eq!(uf.find(0), uf.find(3));
        assert_ne!(uf.find(2), uf.find(0));
    }
}

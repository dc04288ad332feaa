//! Exact duplicates (identical records) and near duplicates (MinHash/LSH over normalised text).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::minhash::{cluster, optimal_bands, MinHasher};
use super::text::{normalise, preview};
use super::{rate, record_key, record_text, PREVIEW_CHARS};
use crate::data::Sample;

/// Line numbers kept per group (the count is exact).
pub const MAX_LINES: usize = 20;

/// A set of records that are (near) copies of each other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// records in the group
    pub records: usize,
    /// 1-based line numbers, the first [`MAX_LINES`]
    pub lines: Vec<usize>,
    /// the first record's text, cut short
    pub preview: String,
}

/// Identical records: same format and the same fields, byte for byte (the task tag is ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExactDuplicates {
    /// groups of two or more identical records
    pub groups: usize,
    /// records beyond the first of each group: what deduplication would drop
    pub duplicate_records: usize,
    /// `duplicate_records / records`
    pub rate: f64,
    /// the largest groups
    pub top: Vec<Group>,
}

pub fn exact(samples: &[Sample], top: usize) -> ExactDuplicates {
    let mut index: HashMap<String, usize> = HashMap::with_capacity(samples.len());
    let mut members: Vec<Vec<usize>> = Vec::new();
    for (i, s) in samples.iter().enumerate() {
        let next = members.len();
        let g = *index.entry(record_key(&s.record)).or_insert(next);
        if g == next {
            members.push(Vec::new());
        }
        members[g].push(i);
    }
    let groups = to_groups(samples, members, top);
    ExactDuplicates {
        groups: groups.0,
        duplicate_records: groups.1,
        rate: rate(groups.1, samples.len()),
        top: groups.2,
    }
}

/// Settings of the near-duplicate pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NearOptions {
    pub threshold: f64,
    pub shingle_size: usize,
    pub num_perm: usize,
    pub threads: usize,
}

/// Records whose normalised texts (prompt and response) have Jaccard similarity ≥ threshold
/// over character shingles, clustered transitively. Exact and normalised-identical copies are
/// included, so `removable ≥ exact duplicates` (up to records with no text).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NearDuplicates {
    pub threshold: f64,
    pub shingle_size: usize,
    pub num_perm: usize,
    pub bands: usize,
    pub rows: usize,
    /// distinct non-empty normalised texts compared
    pub distinct_texts: usize,
    /// clusters of two or more records
    pub clusters: usize,
    /// records in those clusters
    pub records_in_clusters: usize,
    /// records beyond the first of each cluster: what near-deduplication would drop
    pub removable: usize,
    /// `removable / records`
    pub rate: f64,
    /// the largest clusters
    pub top: Vec<Group>,
}

pub fn near(samples: &[Sample], opts: &NearOptions, top: usize) -> NearDuplicates {
    // Identical normalised texts are one MinHash item.
    let mut index: HashMap<String, usize> = HashMap::with_capacity(samples.len());
    let mut texts: Vec<String> = Vec::new();
    let mut members: Vec<Vec<usize>> = Vec::new();
    for (i, s) in samples.iter().enumerate() {
        let norm = normalise(&record_text(&s.record));
        if norm.is_empty() {
            continue;
        }
        let g = match index.get(&norm) {
            Some(&g) => g,
            None => {
                index.insert(norm.clone(), texts.len());
                texts.push(norm);
                members.push(Vec::new());
                texts.len() - 1
            }
        };
        members[g].push(i);
    }
    drop(index);
    let hasher = MinHasher::new(opts.num_perm, opts.shingle_size);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let sigs = hasher.signatures(&refs, opts.threads);
    let (bands, rows) = optimal_bands(opts.threshold, opts.num_perm);
    let ids = cluster(&hasher, &refs, &sigs, bands, rows, opts.threshold);
    let mut by_cluster: Vec<Vec<usize>> = vec![Vec::new(); texts.len()];
    for (t, id) in ids.iter().enumerate() {
        let m = std::mem::take(&mut members[t]);
        by_cluster[*id].extend(m);
    }
    for c in &mut by_cluster {
        c.sort_unstable();
    }
    let (clusters, removable, top) = to_groups(samples, by_cluster, top);
    let records_in_clusters = removable + clusters;
    NearDuplicates {
        threshold: opts.threshold,
        shingle_size: opts.shingle_size,
        num_perm: opts.num_perm,
        bands,
        rows,
        distinct_texts: texts.len(),
        clusters,
        records_in_clusters,
        removable,
        rate: rate(removable, samples.len()),
        top,
    }
}

/// `(groups of ≥ 2, records beyond the first of each, the `top` largest as [`Group`]s)`;
/// each member list is in line order.
fn to_groups(
    samples: &[Sample],
    members: Vec<Vec<usize>>,
    top: usize,
) -> (usize, usize, Vec<Group>) {
    let mut multi: Vec<Vec<usize>> = members.into_iter().filter(|m| m.len() > 1).collect();
    let extra = multi.iter().map(|m| m.len() - 1).sum();
    let count = multi.len();
    multi.sort_by(|a, b| b.len().cmp(&a.len()).then(a[0].cmp(&b[0])));
    let groups = multi
        .iter()
        .take(top)
        .map(|m| Group {
            records: m.len(),
            lines: m.iter().take(MAX_LINES).map(|&i| samples[i].line).collect(),
            preview: preview(&record_text(&samples[m[0]].record), PREVIEW_CHARS),
        })
        .collect();
    (count, extra, groups)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::tests::{pc, text};
    use crate::data::Record;
    use crate::model::Message;

    fn opts(threshold: f64) -> NearOptions {
        NearOptions {
            threshold,
            shingle_size: 5,
            num_perm: 128,
            threads: 2,
        }
    }

    #[test]
    fn exact_groups_identical_records_only() {
        let s = vec![
            pc(1, "a", "b"),
            pc(2, "a", "b"),
            pc(3, "a", "B"),
            text(4, "a\nb"), // same text as record 1 but a different format
            pc(5, "a", "b"),
            pc(6, "x", "y"),
            pc(7, "x", "y"),
        ];
        let d = exact(&s, 10);
        assert_eq!((d.groups, d.duplicate_records), (2, 3));
        assert!((d.rate - 3.0 / 7.0).abs() < 1e-12);
        assert_eq!(
            d.top[0],
            Group {
                records: 3,
                lines: vec![1, 2, 5],
                preview: "a ⏎ b".into()
            }
        );
        assert_eq!(d.top[1].lines, vec![6, 7]);
        assert_eq!(exact(&s, 1).top.len(), 1);
    }

    #[test]
    fn exact_ignores_task_but_not_roles() {
        let mut a = pc(1, "p", "c");
        a.task = Some("math".into());
        let m = |line, role: &str| Sample {
            line,
            record: Record::Messages(vec![Message {
                role: role.into(),
                content: "hi".into(),
            }]),
            task: None,
        };
        let s = vec![a, pc(2, "p", "c"), m(3, "user"), m(4, "system")];
        let d = exact(&s, 10);
        assert_eq!((d.groups, d.duplicate_records), (1, 1));
    }

    #[test]
    fn no_duplicates() {
        let s = vec![pc(1, "a", "b"), pc(2, "c", "d")];
        let d = exact(&s, 10);
        assert_eq!((d.groups, d.duplicate_records, d.rate), (0, 0, 0.0));
        assert!(d.top.is_empty());
    }

    #[test]
    fn near_duplicates_cluster_and_count_removable() {
        let q = "Explain how photosynthesis turns light, water and carbon dioxide into sugar";
        let a = "Plants capture light energy with chlorophyll and use it to build glucose.";
        let s = vec![
            pc(1, q, a),
            pc(2, &q.to_uppercase(), a), // identical once normalised
            pc(3, q, &a.replace("glucose", "sugars")),
            pc(4, "What is the capital of France?", "Paris."),
            pc(5, "Write a haiku about autumn", "Leaves fall, quiet sky"),
            pc(6, "", "?"), // no text once normalised: not compared
            pc(7, "What is the capital of France?", "Paris."),
        ];
        let d = near(&s, &opts(0.8), 10);
        assert_eq!(d.distinct_texts, 4);
        assert_eq!((d.clusters, d.records_in_clusters, d.removable), (2, 5, 3));
        assert_eq!(d.top[0].lines, vec![1, 2, 3]);
        assert_eq!(d.top[1].lines, vec![4, 7]);
        assert!((d.rate - 3.0 / 7.0).abs() < 1e-12);
        assert!(d.bands * d.rows <= 128);
        // At threshold 1 only normalised-identical texts merge.
        let d = near(&s, &opts(1.0), 10);
        assert_eq!((d.clusters, d.removable), (2, 2));
    }

    #[test]
    fn near_handles_all_empty_and_single() {
        let d = near(&[pc(1, "", "")], &opts(0.8), 10);
        assert_eq!((d.distinct_texts, d.clusters, d.removable), (0, 0, 0));
        let d = near(&[pc(1, "a", "b")], &opts(0.8), 10);
        assert_eq!((d.distinct_texts, d.clusters), (1, 0));
    }
}

//! Examples → micro-batches: right padding, or packing several documents into one row.

use candle_core::{Device, Result, Tensor};

/// One tokenized training example.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub ids: Vec<u32>,
    /// per token: is it a training target (predicted from the tokens before it)
    pub supervised: Vec<bool>,
    pub task: Option<String>,
    /// from the replay set rather than the task data
    pub replay: bool,
    /// line in its source file, for messages
    pub line: usize,
    /// lengths of the documents packed into this example (empty: one document)
    pub docs: Vec<usize>,
}

impl Example {
    pub fn n_supervised(&self) -> usize {
        // the first token is never predicted
        self.supervised.iter().skip(1).filter(|&&s| s).count()
    }
}

/// Per-row positions and document ids of packed rows.
pub type PackedLayout = (Vec<Vec<i64>>, Vec<Vec<u32>>);

/// What one forward/backward pass consumes.
#[derive(Debug, Clone)]
pub struct MicroBatch {
    pub ids: Tensor,
    pub lengths: Vec<usize>,
    /// packed rows: per-token positions and document ids
    pub packed: Option<PackedLayout>,
    /// the token following each position (0 where there is none)
    pub targets: Tensor,
    /// 1 where the target is supervised
    pub loss_mask: Tensor,
    /// 1 where a next token exists in the same document (for KL on all tokens)
    pub valid_mask: Tensor,
    pub n_supervised: usize,
    pub n_tokens: usize,
}

impl MicroBatch {
    /// Right-pad examples into one batch; examples holding packed documents keep their
    /// documents apart (positions restart, attention stays inside, no target crosses over).
    pub fn padded(examples: &[&Example], device: &Device) -> Result<MicroBatch> {
        let t = examples
            .iter()
            .map(|e| e.ids.len())
            .max()
            .unwrap_or(1)
            .max(1);
        let packed = examples.iter().any(|e| e.docs.len() > 1);
        let rows: Vec<Row> = examples
            .iter()
            .map(|e| {
                let docs = if e.docs.is_empty() {
                    vec![e.ids.len()]
                } else {
                    e.docs.clone()
                };
                let mut segments = Vec::with_capacity(e.ids.len());
                let mut positions = Vec::with_capacity(e.ids.len());
                for (d, &n) in docs.iter().enumerate() {
                    segments.extend(std::iter::repeat_n(d as u32, n));
                    positions.extend(0..n as i64);
                }
                Row {
                    ids: e.ids.clone(),
                    supervised: e.supervised.clone(),
                    segments,
                    positions,
                }
            })
            .collect();
        build(&rows, t, packed, device)
    }
}

/// Pack documents into examples of at most `max_len` tokens by best-fit decreasing, as TRL's
/// default `"bfd"` packing does: documents (already truncated to `max_len`) longest first, each
/// into the open row with the least free space that still fits it (ties: the row that reached
/// that free space first), else a new row.
pub fn pack_bfd(docs: &[Example], max_len: usize) -> Vec<Example> {
    let mut order: Vec<usize> = (0..docs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(docs[i].ids.len()));
    let mut rows: Vec<Vec<usize>> = Vec::new();
    // (free space, when it got that free space) → row
    let mut open: std::collections::BTreeMap<(usize, usize), usize> = Default::default();
    let mut free: Vec<(usize, usize)> = Vec::new();
    let mut clock = 0usize;
    for i in order {
        let n = docs[i].ids.len().min(max_len);
        let slot = open.range((n, 0)..).next().map(|(&k, &r)| (k, r));
        let r = match slot {
            Some((key, r)) => {
                open.remove(&key);
                r
            }
            None => {
                rows.push(Vec::new());
                free.push((max_len, 0));
                rows.len() - 1
            }
        };
        rows[r].push(i);
        clock += 1;
        free[r] = (free[r].0 - n, clock);
        if free[r].0 > 0 {
            open.insert(free[r], r);
        }
    }
    rows.into_iter()
        .map(|members| {
            let first = &docs[members[0]];
            let mut e = Example {
                ids: vec![],
                supervised: vec![],
                task: first.task.clone(),
                replay: first.replay,
                line: first.line,
                docs: vec![],
            };
            for &i in &members {
                let n = docs[i].ids.len().min(max_len);
                e.ids.extend_from_slice(&docs[i].ids[..n]);
                e.supervised.extend_from_slice(&docs[i].supervised[..n]);
                e.docs.push(n);
            }
            e
        })
        .collect()
}

#[derive(Default)]
struct Row {
    ids: Vec<u32>,
    supervised: Vec<bool>,
    segments: Vec<u32>,
    positions: Vec<i64>,
}

fn build(rows: &[Row], t: usize, packed: bool, device: &Device) -> Result<MicroBatch> {
    let b = rows.len();
    let mut ids = vec![0u32; b * t];
    let mut targets = vec![0u32; b * t];
    let mut loss = vec![0f32; b * t];
    let mut valid = vec![0f32; b * t];
    let mut positions = Vec::with_capacity(b);
    let mut segments = Vec::with_capacity(b);
    let (mut n_supervised, mut n_tokens) = (0, 0);
    for (i, r) in rows.iter().enumerate() {
        let n = r.ids.len();
        n_tokens += n;
        ids[i * t..i * t + n].copy_from_slice(&r.ids);
        for j in 0..n.saturating_sub(1) {
            if r.segments[j + 1] != r.segments[j] {
                continue;
            }
            targets[i * t + j] = r.ids[j + 1];
            valid[i * t + j] = 1.0;
            if r.supervised[j + 1] {
                loss[i * t + j] = 1.0;
                n_supervised += 1;
            }
        }
        let mut pos = r.positions.clone();
        let next_seg = r.segments.last().map_or(0, |s| s + 1);
        let mut seg = r.segments.clone();
        // padding: positions continue, in a segment of its own
        pos.extend((n as i64)..(t as i64));
        seg.extend(std::iter::repeat_n(next_seg, t - n));
        positions.push(pos);
        segments.push(seg);
    }
    Ok(MicroBatch {
        ids: Tensor::from_vec(ids, (b, t), device)?,
        lengths: rows.iter().map(|r| r.ids.len()).collect(),
        packed: packed.then_some((positions, segments)),
        targets: Tensor::from_vec(targets, (b, t), device)?,
        loss_mask: Tensor::from_vec(loss, (b, t), device)?,
        valid_mask: Tensor::from_vec(valid, (b, t), device)?,
        n_supervised,
        n_tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(ids: &[u32], sup_from: usize) -> Example {
        Example {
            ids: ids.to_vec(),
            supervised: (0..ids.len()).map(|i| i >= sup_from).collect(),
            task: None,
            replay: false,
            line: 1,
            docs: vec![],
        }
    }

    #[test]
    fn padded_targets_are_shifted_and_masked() {
        let (a, b) = (ex(&[1, 2, 3, 4], 2), ex(&[5, 6], 1));
        let mb = MicroBatch::padded(&[&a, &b], &Device::Cpu).unwrap();
        assert_eq!(
            mb.targets.to_vec2::<u32>().unwrap(),
            vec![vec![2, 3, 4, 0], vec![6, 0, 0, 0]]
        );
        assert_eq!(
            mb.loss_mask.to_vec2::<f32>().unwrap(),
            vec![vec![0., 1., 1., 0.], vec![1., 0., 0., 0.]]
        );
        assert_eq!(mb.n_supervised, 3);
        assert_eq!(mb.lengths, vec![4, 2]);
    }

    #[test]
    fn packing_restarts_positions_and_masks_document_boundaries() {
        let (a, b, c) = (ex(&[1, 2, 3], 0), ex(&[4, 5], 0), ex(&[6, 7, 8, 9], 0));
        let rows = pack_bfd(&[a, b, c], 5);
        // longest first: c opens row 0 (free 1); a opens row 1 (free 2); b fits row 1
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].ids, vec![1, 2, 3, 4, 5]);
        assert_eq!(rows[1].docs, vec![3, 2]);
        let mb = MicroBatch::padded(&[&rows[1], &rows[0]], &Device::Cpu).unwrap();
        let (pos, seg) = mb.packed.clone().unwrap();
        assert_eq!(pos[0], vec![0, 1, 2, 0, 1]);
        assert_eq!(seg[0], vec![0, 0, 0, 1, 1]);
        // no target crosses from document a into document b
        assert_eq!(
            mb.loss_mask.to_vec2::<f32>().unwrap()[0],
            vec![1., 1., 0., 1., 0.]
        );
        assert_eq!(mb.n_supervised, 3 + 3);
    }
}

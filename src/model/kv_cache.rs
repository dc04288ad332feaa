//! The key/value cache of incremental decoding: per layer, the keys and values of every position
//! a batch has seen, in slots shared by the rows (each slot remembers which position it holds in
//! its row, or that it is padding).

use candle_core::{Result, Tensor};

/// Key/value tensors of past positions, per layer, for incremental decoding of a batch.
///
/// Rows advance together in slots; each slot remembers the position it holds in its row, or
/// that it holds padding, so right-padded prompts of different lengths decode correctly.
#[derive(Debug, Clone)]
pub struct KvCache {
    pub(super) layers: Vec<Option<(Tensor, Tensor)>>,
    /// per row, per slot: position, or -1 for padding
    pub(super) slot_pos: Vec<Vec<i64>>,
    /// per row: number of real tokens seen
    pub(super) lengths: Vec<usize>,
}

impl KvCache {
    pub fn new(num_layers: usize, batch: usize) -> KvCache {
        KvCache {
            layers: vec![None; num_layers],
            slot_pos: vec![Vec::new(); batch],
            lengths: vec![0; batch],
        }
    }
    pub fn lengths(&self) -> &[usize] {
        &self.lengths
    }
    pub fn batch(&self) -> usize {
        self.lengths.len()
    }

    /// A cache whose row `i` is a copy of row `rows[i]` of this one (rows may repeat): several
    /// continuations of one prompt decode from the prompt's cache.
    pub fn select_rows(&self, rows: &[usize]) -> Result<KvCache> {
        if let Some(&r) = rows.iter().find(|&&r| r >= self.batch()) {
            candle_core::bail!("row {r} of a cache of batch {}", self.batch());
        }
        let layers = self
            .layers
            .iter()
            .map(|l| match l {
                None => Ok(None),
                Some((k, v)) => {
                    let idx: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
                    let idx = Tensor::from_vec(idx, rows.len(), k.device())?;
                    Ok(Some((k.index_select(&idx, 0)?, v.index_select(&idx, 0)?)))
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(KvCache {
            layers,
            slot_pos: rows.iter().map(|&r| self.slot_pos[r].clone()).collect(),
            lengths: rows.iter().map(|&r| self.lengths[r]).collect(),
        })
    }
}

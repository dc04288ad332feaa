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

impl KvCache {
    /// The rows of several caches in one (in order): the shorter caches' slots are padded with
    /// masked slots, so every row attends to exactly the positions it had before. New prompts
    /// join a batch that is already decoding this way.
    pub fn concat(parts: &[KvCache]) -> Result<KvCache> {
        let Some(first) = parts.first() else {
            candle_core::bail!("no caches to concatenate");
        };
        let num_layers = first.layers.len();
        if parts.iter().any(|p| p.layers.len() != num_layers) {
            candle_core::bail!("caches of different depths");
        }
        let slots = |p: &KvCache| p.slot_pos.first().map_or(0, Vec::len);
        let width = parts.iter().map(slots).max().unwrap_or(0);
        let mut layers = Vec::with_capacity(num_layers);
        for li in 0..num_layers {
            let mut ks = Vec::with_capacity(parts.len());
            let mut vs = Vec::with_capacity(parts.len());
            for p in parts {
                match (&p.layers[li], p.batch()) {
                    (_, 0) => {}
                    (None, _) => candle_core::bail!("a cache with rows but no keys"),
                    (Some((k, v)), _) => {
                        ks.push(pad_slots(k, width)?);
                        vs.push(pad_slots(v, width)?);
                    }
                }
            }
            layers.push(if ks.is_empty() {
                None
            } else {
                Some((Tensor::cat(&ks, 0)?, Tensor::cat(&vs, 0)?))
            });
        }
        let mut slot_pos = Vec::new();
        let mut lengths = Vec::new();
        for p in parts {
            for (row, &len) in p.slot_pos.iter().zip(&p.lengths) {
                let mut row = row.clone();
                row.resize(width, -1);
                slot_pos.push(row);
                lengths.push(len);
            }
        }
        Ok(KvCache {
            layers,
            slot_pos,
            lengths,
        })
    }

    /// Drop the slots that are padding in every row (left behind by rows that finished).
    pub fn compact(&mut self) -> Result<()> {
        let width = self.slot_pos.first().map_or(0, Vec::len);
        let live: Vec<usize> = (0..width)
            .filter(|&j| self.slot_pos.iter().any(|row| row[j] >= 0))
            .collect();
        if live.len() == width {
            return Ok(());
        }
        for layer in self.layers.iter_mut().flatten() {
            let idx: Vec<u32> = live.iter().map(|&j| j as u32).collect();
            let idx = Tensor::from_vec(idx, live.len(), layer.0.device())?;
            *layer = (
                layer.0.index_select(&idx, 2)?,
                layer.1.index_select(&idx, 2)?,
            );
        }
        for row in &mut self.slot_pos {
            *row = live.iter().map(|&j| row[j]).collect();
        }
        Ok(())
    }

    /// The fraction of slots that are padding in every row.
    pub fn dead_fraction(&self) -> f64 {
        let width = self.slot_pos.first().map_or(0, Vec::len);
        if width == 0 {
            return 0.0;
        }
        let dead = (0..width)
            .filter(|&j| self.slot_pos.iter().all(|row| row[j] < 0))
            .count();
        dead as f64 / width as f64
    }
}

/// `x` (`[b, heads, slots, d]`) with zero slots appended up to `width`.
fn pad_slots(x: &Tensor, width: usize) -> Result<Tensor> {
    let (b, h, s, d) = x.dims4()?;
    if s >= width {
        return Ok(x.clone());
    }
    let pad = Tensor::zeros((b, h, width - s, d), x.dtype(), x.device())?;
    Tensor::cat(&[x, &pad], 2)
}

//! A run's data: the training set (or its packed rows), replay, and the held-out split.

use super::batch::{self, Example};
use super::encode::Encoder;
use super::{TrainConfig, TrainError};
use crate::data::read_jsonl;
use crate::model::Model;

pub(crate) struct Data {
    pub train: Vec<Example>,
    pub replay: Vec<Example>,
    pub eval: Vec<Example>,
    pub dropped: usize,
    pub truncated: usize,
}

pub(crate) fn load_data(cfg: &TrainConfig, model: &Model) -> Result<Data, TrainError> {
    let enc = Encoder {
        tokenizer: &model.tokenizer,
        template: model.chat_template.as_ref(),
        max_length: cfg.max_length,
        policy: cfg.chat_template,
    };
    let samples = read_jsonl(&cfg.data)?;
    // packing places examples without a target too, as TRL does (same rows, same batches)
    let mut encoded = enc.encode_all_with(&samples, false, cfg.packing)?;
    let (dropped, truncated) = (encoded.dropped.len(), encoded.truncated.len());
    let mut eval = Vec::new();
    if let Some(e) = &cfg.eval {
        if let Some(p) = &e.path {
            eval = enc.encode_all(&read_jsonl(p)?, false)?.examples;
        } else if e.split > 0.0 {
            let k = ((encoded.examples.len() as f64) * e.split).round().max(1.0) as usize;
            if k >= encoded.examples.len() {
                return Err(TrainError::Config(format!(
                    "eval split {} leaves no training data",
                    e.split
                )));
            }
            // every n-th example, deterministic and spread over the file
            let stride = encoded.examples.len() / k;
            let mut keep = Vec::new();
            for (i, ex) in encoded.examples.drain(..).enumerate() {
                if i % stride == stride - 1 && eval.len() < k {
                    eval.push(ex);
                } else {
                    keep.push(ex);
                }
            }
            encoded.examples = keep;
        }
    }
    let replay = match &cfg.replay {
        Some(r) => {
            let samples = read_jsonl(&r.path)?;
            enc.encode_all(&samples, true)?.examples
        }
        None => Vec::new(),
    };
    let (train, replay) = if cfg.packing {
        (
            batch::pack_bfd(&encoded.examples, cfg.max_length),
            batch::pack_bfd(&replay, cfg.max_length),
        )
    } else {
        (encoded.examples, replay)
    };
    if train.iter().all(|e| e.n_supervised() == 0) {
        return Err(TrainError::Data(format!(
            "{}: no example has a trainable token within max_length {} ({dropped} dropped)",
            cfg.data.display(),
            cfg.max_length
        )));
    }
    Ok(Data {
        train,
        replay,
        eval,
        dropped,
        truncated,
    })
}

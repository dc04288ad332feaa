//! The demo's fine-tunes: the naive recipe, each mitigation at a few strengths, and the
//! combined recipes.

use std::path::Path;

use super::Variant;
use crate::model::params::FreezeSpec;
use crate::train::config::{KlConfig, KlOn, LoraConfig, ReplayConfig, TrainConfig};
use crate::train::schedule::Schedule;

/// The naive recipe: what a user would try first on this task.
pub fn naive_config(organism: &Path) -> TrainConfig {
    TrainConfig {
        model: organism.to_path_buf(),
        data: organism.join("data/convert.jsonl"),
        max_length: 64,
        batch_size: 16,
        lr: 1e-3,
        max_steps: Some(60),
        schedule: Schedule::Constant,
        warmup_steps: 0,
        seed: 0,
        checkpoint_every: 0,
        keep_checkpoints: 0,
        ..TrainConfig::default()
    }
}

/// The demo's fine-tunes: naive first, then each mitigation at its sweep of strengths.
pub fn variants(organism: &Path, quick: bool) -> Vec<Variant> {
    let naive = naive_config(organism);
    let replay_path = organism.join("data/replay.jsonl");
    let mut out = vec![Variant {
        family: "naive",
        knob: "",
        strength: None,
        config: naive.clone(),
    }];
    let (replays, l2s, kls): (&[f64], &[f64], &[f64]) = if quick {
        (&[0.5], &[1.0], &[3.0])
    } else {
        (&[0.25, 0.5], &[0.3, 1.0, 3.0], &[1.0, 3.0, 10.0])
    };
    for &r in replays {
        let mut c = naive.clone();
        // replay is mixed in on top: as many new-task rows per step as the naive run
        c.batch_size = (naive.batch_size as f64 / (1.0 - r)).round() as usize;
        c.replay = Some(ReplayConfig {
            path: replay_path.clone(),
            ratio: r,
            by_tokens: false,
        });
        out.push(Variant {
            family: "replay",
            knob: "share of each batch from replay data, added on top of 16 new-task rows",
            strength: Some(r),
            config: c,
        });
    }
    for &l in l2s {
        let mut c = naive.clone();
        c.l2sp = l;
        out.push(Variant {
            family: "l2sp",
            knob: "λ",
            strength: Some(l),
            config: c,
        });
    }
    for &b in kls {
        let mut c = naive.clone();
        c.kl = Some(KlConfig {
            beta: b,
            on: KlOn::Response,
            direction: Default::default(),
            data: Some(replay_path.clone()),
            data_rows: Some(32),
        });
        out.push(Variant {
            family: "kl",
            knob: "β (KL to base on the answers of 32 replay rows per step)",
            strength: Some(b),
            config: c,
        });
    }
    if !quick {
        let mut c = naive.clone();
        c.freeze = FreezeSpec {
            embeddings: true,
            first_layers: 2,
            patterns: Vec::new(),
        };
        out.push(Variant {
            family: "freeze",
            knob: "embeddings and lower half frozen",
            strength: None,
            config: c,
        });
        let mut c = naive.clone();
        c.lora = Some(LoraConfig {
            r: 8,
            alpha: 16.0,
            targets: [
                "q_proj",
                "k_proj",
                "v_proj",
                "o_proj",
                "gate_proj",
                "up_proj",
                "down_proj",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            save: Default::default(),
            init: None,
        });
        c.lr = 3e-3;
        out.push(Variant {
            family: "lora",
            knob: "r = 8 on every projection, LR 3e-3",
            strength: None,
            config: c,
        });
        let mut c = naive.clone();
        c.lr = naive.lr / 3.0;
        c.eval = Some(crate::train::config::EvalConfig {
            path: None,
            split: 0.1,
            every: 10,
            patience: 2,
            min_delta: 1e-3,
            probe: None,
            max_kl: None,
        });
        out.push(Variant {
            family: "gentle",
            knob: "LR ÷ 3, early stopping on held-out task loss",
            strength: None,
            config: c,
        });
    }
    out
}

//! The demo's fine-tunes: the naive recipe, each mitigation at a few strengths, and the
//! combined recipes.

use std::path::Path;

use super::{Variant, SKILLS};
use crate::model::params::FreezeSpec;
use crate::train::config::{
    EwcConfig, KlConfig, KlOn, LoraConfig, ReplayConfig, TrainConfig, WatchConfig,
};
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

/// The new task's suite folder (its results name it `organism-convert`).
pub const NEW_TASK_DIR: &str = "convert";

/// The combined recipe: replay mixed in on top of the naive batch, L2-SP toward the base, and
/// a cosine schedule over 2.5× the naive steps (each mitigation alone fails the gate on some
/// skill; reports/demo has the measured rows).
pub fn combined_config(organism: &Path) -> TrainConfig {
    let naive = naive_config(organism);
    TrainConfig {
        batch_size: 32,
        replay: Some(ReplayConfig {
            path: organism.join("data/replay.jsonl"),
            ratio: 0.5,
            by_tokens: false,
        }),
        l2sp: 1.0,
        schedule: Schedule::Cosine,
        max_steps: Some(150),
        ..naive
    }
}

const WATCHED_KNOB: &str = "replay 0.5 + EWC λ = 3e4 at a constant LR, 150 steps; best/ by the capability watch every 50 steps";

/// The watched recipe: the combined recipe without the cosine decay, whose late steps drift;
/// the capability watch picks its checkpoint.
pub fn watched_config(organism: &Path) -> TrainConfig {
    TrainConfig {
        l2sp: 0.0,
        ewc: Some(EwcConfig {
            lambda: 3e4,
            data: organism.join("data/replay.jsonl"),
            samples: 256,
        }),
        schedule: Schedule::Constant,
        ..combined_config(organism)
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
    let (replays, l2s, kls, ewcs): (&[f64], &[f64], &[f64], &[f64]) = if quick {
        (&[0.5], &[1.0], &[3.0], &[3e4])
    } else {
        (
            &[0.25, 0.5],
            &[0.3, 1.0, 3.0],
            &[1.0, 3.0, 10.0],
            &[1e4, 3e4, 1e5],
        )
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
    for &l in ewcs {
        let mut c = naive.clone();
        c.ewc = Some(EwcConfig {
            lambda: l,
            data: replay_path.clone(),
            samples: 256,
        });
        out.push(Variant {
            family: "ewc",
            knob: "λ (Fisher of the base on 256 replay rows)",
            strength: Some(l),
            config: c,
        });
    }
    if !quick {
        out.push(Variant {
            family: "replay+l2sp",
            knob: "replay 0.5 + L2-SP λ = 1, cosine LR, 150 steps",
            strength: None,
            config: combined_config(organism),
        });
    }
    out.push(Variant {
        family: "replay+ewc",
        knob: "replay 0.5 + EWC λ = 3e4, cosine LR, 150 steps",
        strength: None,
        config: TrainConfig {
            l2sp: 0.0,
            ewc: Some(EwcConfig {
                lambda: 3e4,
                data: organism.join("data/replay.jsonl"),
                samples: 256,
            }),
            ..combined_config(organism)
        },
    });
    let mut c = watched_config(organism);
    c.watch = Some(WatchConfig {
        suites: SKILLS
            .iter()
            .chain([NEW_TASK_DIR].iter())
            .map(|s| s.to_string())
            .collect(),
        suites_dir: organism.join("suites"),
        every: 50,
        limit: 0,
        // the demo's policy, written into the work folder by the demo
        policy: None,
        new_task: Some(NEW_TASK_DIR.into()),
        patience: 0,
        batch_size: 64,
    });
    out.push(Variant {
        family: "watched",
        knob: WATCHED_KNOB,
        strength: None,
        config: c,
    });
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

//! The order examples are seen in: the whole run planned up front from the seed, so a resumed
//! run continues with exactly the micro-batches the uninterrupted run would have used.
//!
//! Plain mode follows transformers' Trainer: each epoch walks the data (in order, or in a
//! seeded permutation), micro-batches are consecutive chunks of `batch_size`, and an optimizer
//! step takes `grad_accum` micro-batches without crossing an epoch boundary. Replay mixing and
//! multi-task balancing compose every micro-batch from several cyclic streams instead.

use std::collections::BTreeMap;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::batch::Example;

/// An example of the task data or of the replay set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ref {
    pub replay: bool,
    pub idx: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlanConfig {
    pub batch_size: usize,
    pub grad_accum: usize,
    pub epochs: f64,
    pub max_steps: Option<usize>,
    pub shuffle: bool,
    pub seed: u64,
    /// share of each micro-batch taken from the replay set (0 = off)
    pub replay_ratio: f64,
    /// measure the replay share in tokens rather than examples
    pub replay_by_tokens: bool,
    /// per-task proportions; every micro-batch is drawn across tasks
    pub task_weights: Option<BTreeMap<String, f64>>,
}

/// steps → micro-batches → examples
pub type Plan = Vec<Vec<Vec<Ref>>>;

/// Cycles through indices, reshuffling (when asked) at every pass, seeded per stream and pass.
struct Stream {
    items: Vec<u32>,
    order: Vec<u32>,
    pos: usize,
    pass: u64,
    shuffle: bool,
    seed: u64,
}

impl Stream {
    fn new(items: Vec<u32>, shuffle: bool, seed: u64) -> Stream {
        let mut s = Stream {
            order: Vec::new(),
            items,
            pos: 0,
            pass: 0,
            shuffle,
            seed,
        };
        s.refill();
        s
    }
    fn refill(&mut self) {
        self.order = self.items.clone();
        if self.shuffle {
            let mut rng = ChaCha8Rng::seed_from_u64(
                self.seed ^ self.pass.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            );
            self.order.shuffle(&mut rng);
        }
        self.pos = 0;
        self.pass += 1;
    }
    fn next(&mut self) -> u32 {
        if self.pos == self.order.len() {
            self.refill();
        }
        self.pos += 1;
        self.order[self.pos - 1]
    }
}

fn stream_seed(seed: u64, id: u64) -> u64 {
    seed.wrapping_mul(6364136223846793005)
        .wrapping_add(id.wrapping_mul(1442695040888963407) ^ 0x5eed)
}

/// Number of optimizer steps per epoch over `n` items.
pub fn steps_per_epoch(n: usize, cfg: &PlanConfig) -> usize {
    n.div_ceil(cfg.batch_size).div_ceil(cfg.grad_accum).max(1)
}

pub fn total_steps(n: usize, cfg: &PlanConfig) -> usize {
    cfg.max_steps
        .unwrap_or_else(|| (cfg.epochs * steps_per_epoch(n, cfg) as f64).ceil() as usize)
}

pub fn plan(cfg: &PlanConfig, main: &[Example], replay: &[Example]) -> Plan {
    let total = total_steps(main.len(), cfg);
    let mixed = (cfg.replay_ratio > 0.0 && !replay.is_empty()) || cfg.task_weights.is_some();
    if mixed {
        plan_mixed(cfg, main, replay, total)
    } else {
        plan_plain(cfg, main.len(), total)
    }
}

fn plan_plain(cfg: &PlanConfig, n: usize, total: usize) -> Plan {
    let mut steps = Vec::with_capacity(total);
    let mut epoch = 0u64;
    while steps.len() < total && n > 0 {
        let mut order: Vec<u32> = (0..n as u32).collect();
        if cfg.shuffle {
            order.shuffle(&mut ChaCha8Rng::seed_from_u64(
                stream_seed(cfg.seed, 0) ^ epoch,
            ));
        }
        let micro: Vec<Vec<Ref>> = order
            .chunks(cfg.batch_size)
            .map(|c| c.iter().map(|&idx| Ref { replay: false, idx }).collect())
            .collect();
        for step in micro.chunks(cfg.grad_accum) {
            if steps.len() == total {
                break;
            }
            steps.push(step.to_vec());
        }
        epoch += 1;
    }
    steps
}

fn plan_mixed(cfg: &PlanConfig, main: &[Example], replay: &[Example], total: usize) -> Plan {
    // task streams (one per task when balancing, else one for all task data)
    let mut tasks: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for (i, e) in main.iter().enumerate() {
        let key = if cfg.task_weights.is_some() {
            e.task.clone().unwrap_or_default()
        } else {
            String::new()
        };
        tasks.entry(key).or_default().push(i as u32);
    }
    let weights: Vec<(String, f64)> = match &cfg.task_weights {
        Some(w) => tasks
            .keys()
            .map(|t| (t.clone(), w.get(t).copied().unwrap_or(0.0)))
            .filter(|(_, w)| *w > 0.0)
            .collect(),
        None => vec![(String::new(), 1.0)],
    };
    let wsum: f64 = weights.iter().map(|(_, w)| w).sum();
    let mut streams: BTreeMap<String, Stream> = tasks
        .into_iter()
        .enumerate()
        .map(|(k, (t, items))| {
            (
                t,
                Stream::new(items, cfg.shuffle, stream_seed(cfg.seed, 1 + k as u64)),
            )
        })
        .collect();
    let mut replay_stream = (!replay.is_empty()).then(|| {
        Stream::new(
            (0..replay.len() as u32).collect(),
            cfg.shuffle,
            stream_seed(cfg.seed, 0xfeed),
        )
    });
    let by_examples = if cfg.replay_ratio > 0.0 && !cfg.replay_by_tokens && replay_stream.is_some()
    {
        ((cfg.replay_ratio * cfg.batch_size as f64).round() as usize)
            .min(cfg.batch_size.saturating_sub(1))
    } else {
        0
    };
    let task_slots = cfg.batch_size - by_examples;
    // largest-remainder allocation of task slots to tasks, the same for every micro-batch
    let mut alloc: Vec<(String, usize, f64)> = weights
        .iter()
        .map(|(t, w)| {
            let exact = task_slots as f64 * w / wsum;
            (t.clone(), exact.floor() as usize, exact - exact.floor())
        })
        .collect();
    let left = task_slots - alloc.iter().map(|a| a.1).sum::<usize>();
    let mut by_rem: Vec<usize> = (0..alloc.len()).collect();
    by_rem.sort_by(|&a, &b| alloc[b].2.total_cmp(&alloc[a].2).then(a.cmp(&b)));
    for &i in by_rem.iter().cycle().take(left) {
        alloc[i].1 += 1;
    }
    let mut steps = Vec::with_capacity(total);
    for _ in 0..total {
        let mut step = Vec::with_capacity(cfg.grad_accum);
        for _ in 0..cfg.grad_accum {
            let mut mb: Vec<Ref> = Vec::with_capacity(cfg.batch_size);
            for (t, k, _) in &alloc {
                let s = streams.get_mut(t).expect("allocated tasks have streams");
                mb.extend((0..*k).map(|_| Ref {
                    replay: false,
                    idx: s.next(),
                }));
            }
            if let Some(rs) = replay_stream.as_mut() {
                if cfg.replay_by_tokens && cfg.replay_ratio > 0.0 {
                    let task_tokens: usize =
                        mb.iter().map(|r| main[r.idx as usize].ids.len()).sum();
                    let target =
                        cfg.replay_ratio / (1.0 - cfg.replay_ratio).max(1e-9) * task_tokens as f64;
                    let mut got = 0usize;
                    // bounded: never more replay examples than the batch size
                    for _ in 0..cfg.batch_size {
                        if got as f64 >= target {
                            break;
                        }
                        let idx = rs.next();
                        got += replay[idx as usize].ids.len();
                        mb.push(Ref { replay: true, idx });
                    }
                } else {
                    mb.extend((0..by_examples).map(|_| Ref {
                        replay: true,
                        idx: rs.next(),
                    }));
                }
            }
            step.push(mb);
        }
        steps.push(step);
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(task: &str, len: usize) -> Example {
        Example {
            ids: vec![1; len],
            supervised: vec![true; len],
            task: Some(task.into()),
            replay: false,
            line: 0,
            docs: vec![],
        }
    }

    fn cfg() -> PlanConfig {
        PlanConfig {
            batch_size: 4,
            grad_accum: 2,
            epochs: 2.0,
            max_steps: None,
            shuffle: false,
            seed: 0,
            replay_ratio: 0.0,
            replay_by_tokens: false,
            task_weights: None,
        }
    }

    #[test]
    fn plain_plan_matches_trainer_chunking() {
        let main: Vec<_> = (0..10).map(|_| ex("a", 3)).collect();
        let p = plan(&cfg(), &main, &[]);
        // 10 examples → micro-batches of 4,4,2 → steps [4,4],[2] per epoch, twice
        assert_eq!(p.len(), 4);
        assert_eq!(p[1].len(), 1);
        assert_eq!(
            p[1][0].iter().map(|r| r.idx).collect::<Vec<_>>(),
            vec![8, 9]
        );
        assert_eq!(p[2][0][0].idx, 0);
    }

    #[test]
    fn shuffled_plans_are_seeded() {
        let main: Vec<_> = (0..50).map(|_| ex("a", 3)).collect();
        let a = plan(
            &PlanConfig {
                shuffle: true,
                ..cfg()
            },
            &main,
            &[],
        );
        let b = plan(
            &PlanConfig {
                shuffle: true,
                ..cfg()
            },
            &main,
            &[],
        );
        let c = plan(
            &PlanConfig {
                shuffle: true,
                seed: 1,
                ..cfg()
            },
            &main,
            &[],
        );
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn replay_and_tasks_are_mixed_into_every_micro_batch() {
        let mut main: Vec<_> = (0..30).map(|_| ex("a", 3)).collect();
        main.extend((0..6).map(|_| ex("b", 3)));
        let replay: Vec<_> = (0..5).map(|_| ex("r", 3)).collect();
        let w = BTreeMap::from([("a".to_string(), 0.5), ("b".to_string(), 0.5)]);
        let p = plan(
            &PlanConfig {
                replay_ratio: 0.25,
                task_weights: Some(w),
                ..cfg()
            },
            &main,
            &replay,
        );
        for mb in p.iter().flatten() {
            assert_eq!(mb.len(), 4);
            assert_eq!(mb.iter().filter(|r| r.replay).count(), 1);
            let b = mb
                .iter()
                .filter(|r| !r.replay && main[r.idx as usize].task.as_deref() == Some("b"))
                .count();
            let a = mb
                .iter()
                .filter(|r| !r.replay && main[r.idx as usize].task.as_deref() == Some("a"))
                .count();
            assert!(a >= 1 && b >= 1, "{mb:?}");
        }
        // by tokens: replay tokens ≈ ratio of the batch
        let p = plan(
            &PlanConfig {
                replay_ratio: 0.5,
                replay_by_tokens: true,
                ..cfg()
            },
            &main,
            &replay,
        );
        for mb in p.iter().flatten() {
            let r = mb.iter().filter(|r| r.replay).count();
            assert_eq!(r, 4, "{mb:?}");
        }
    }
}

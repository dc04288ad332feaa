//! When should a batch of generations take in waiting prompts? Times `generate_batch` on the
//! first 48 items of `suites/math` (as `Problem: …`), greedy, with token budgets cycling through
//! 8–128 so that rows finish at different steps, at batch 8 and 16, with and without refill.
//!
//!     RAYON_NUM_THREADS=1 taskset -c 1 cargo run --release --example generation_refill [MODEL_DIR]
//!
//! MODEL_DIR defaults to the organism (`models/organism`); the figures in
//! `BatchOptions::refill`'s documentation used it and the 135M-shaped checkpoint that
//! `benches/harness_side_by_side.py` writes (`/tmp/harness-bench/model-smollm2_135m`).
#![allow(clippy::print_stdout)]

use sft_eval::model::generate::{generate_batch, BatchOptions, GenerateOptions, Job};
use sft_eval::model::Model;
use std::time::Instant;

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "models/organism".into());
    let m = Model::load(std::path::Path::new(&dir), &Default::default()).unwrap();
    let items: Vec<serde_json::Value> = std::fs::read_to_string("suites/math/items.jsonl")
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let prompts: Vec<Vec<u32>> = items
        .iter()
        .take(48)
        .map(|i| {
            let text = format!("Problem: {}\n", i["input"].as_str().unwrap());
            m.tokenizer.encode(&text, true).unwrap()
        })
        .collect();
    let opts: Vec<GenerateOptions> = [8usize, 96, 16, 64, 128, 24, 48, 32]
        .iter()
        .map(|&b| GenerateOptions {
            max_new_tokens: b,
            eos_token_ids: m.eos_token_ids(),
            ..Default::default()
        })
        .collect();
    let jobs: Vec<Job> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| Job {
            prompt: p,
            opts: &opts[i % opts.len()],
        })
        .collect();
    for batch_size in [8, 16] {
        for refill in [false, true] {
            let b = BatchOptions { batch_size, refill };
            let t0 = Instant::now();
            let mut tokens = 0;
            generate_batch(
                &m.decoder,
                &m.tokenizer,
                &jobs,
                &b,
                m.device(),
                &mut |_, g| tokens += g.ids.len(),
            )
            .unwrap();
            let t = t0.elapsed().as_secs_f64();
            println!(
                "batch {batch_size} refill {refill}: {t:.2} s, {tokens} new tokens ({:.0}/s)",
                tokens as f64 / t
            );
        }
    }
}

//! Greedy decoding, batch 1: a 32-token prompt, then 32 new tokens one at a time from the KV
//! cache (argmax each step), on random Llama weights of the small and the SmolLM2-135M shape.
//! Throughput is new tokens per second. Device and dtype as in [`super::forward`].
//!
//! `generate/`: the suite runner's path, [`generate_batch`], on 32 prompts of 17 to 48 tokens,
//! 32 new tokens each (random weights: no stop), at batch 1, 8 and 16; new tokens per second
//! (the 135M shape only with `SFT_EVAL_BENCH_LARGE=1`).

use candle_core::{DType, Device, Tensor, D};
use criterion::{criterion_group, Criterion, Throughput};

use sft_eval::model::generate::{generate_batch, BatchOptions, GenerateOptions, Job};
use sft_eval::model::Tokenizer;

use super::forward::{load_decoder, write_random_llama, SMALL, SMOL135M};
use super::{bench_name, device, sync};

pub const PROMPT: usize = 32;
pub const NEW: usize = 32;

fn bench_decode(c: &mut Criterion) {
    for s in [&SMALL, &SMOL135M] {
        let tmp = tempfile::tempdir().unwrap();
        write_random_llama(s, tmp.path());
        let dec = load_decoder(tmp.path());
        let dev = device();
        let prompt = Tensor::rand(0f32, s.vocab as f32, (1, PROMPT), &Device::Cpu)
            .unwrap()
            .to_dtype(DType::U32)
            .unwrap()
            .to_device(&dev)
            .unwrap();
        let mut g = c.benchmark_group("decode");
        g.throughput(Throughput::Elements(NEW as u64));
        g.sample_size(10);
        let name = bench_name(&format!(
            "{}_b1_greedy{NEW}",
            s.name.split("_b").next().unwrap_or(s.name)
        ));
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut cache = dec.new_cache(1);
                let mut logits = dec.forward_cached(&prompt, &[PROMPT], &mut cache).unwrap();
                for _ in 0..NEW {
                    let next = logits
                        .narrow(1, logits.dim(1).unwrap() - 1, 1)
                        .unwrap()
                        .argmax(D::Minus1)
                        .unwrap();
                    logits = dec.forward_cached(&next, &[1], &mut cache).unwrap();
                }
                sync(&dev);
                logits
            })
        });
        g.finish();
    }
}

fn bench_generate(c: &mut Criterion) {
    // the organism's tokenizer only turns ids into text (ids past its vocabulary decode to nothing)
    let tok = Tokenizer::from_dir(&super::repo_root().join("models/organism")).unwrap();
    // the 135M shape at batch 1 takes a minute per iteration: only with SFT_EVAL_BENCH_LARGE
    let large = std::env::var_os("SFT_EVAL_BENCH_LARGE").is_some();
    for s in [&SMALL, &SMOL135M]
        .into_iter()
        .take(if large { 2 } else { 1 })
    {
        let tmp = tempfile::tempdir().unwrap();
        write_random_llama(s, tmp.path());
        let dec = load_decoder(tmp.path());
        let dev = device();
        let prompts: Vec<Vec<u32>> = (0..32u32)
            .map(|i| {
                (0..17 + i)
                    .map(|j| (i * 131 + j * 17) % s.vocab as u32)
                    .collect()
            })
            .collect();
        let opts = GenerateOptions {
            max_new_tokens: NEW,
            ..Default::default()
        };
        let jobs: Vec<Job> = prompts
            .iter()
            .map(|p| Job {
                prompt: p,
                opts: &opts,
            })
            .collect();
        let mut g = c.benchmark_group("generate");
        g.throughput(Throughput::Elements((NEW * jobs.len()) as u64));
        g.sample_size(10);
        let shape = s.name.split("_b").next().unwrap_or(s.name);
        for batch in [1, 8, 16] {
            g.bench_function(bench_name(&format!("{shape}_32x{NEW}_batch{batch}")), |b| {
                b.iter(|| {
                    generate_batch(
                        &dec,
                        &tok,
                        &jobs,
                        &BatchOptions::new(batch),
                        &dev,
                        &mut |_, _| {},
                    )
                    .unwrap()
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench_decode, bench_generate);

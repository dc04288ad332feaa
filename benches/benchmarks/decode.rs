//! Greedy decoding, batch 1: a 32-token prompt, then 32 new tokens one at a time from the KV
//! cache (argmax each step), on random Llama weights of the small and the SmolLM2-135M shape.
//! Throughput is new tokens per second. Device and dtype as in [`super::forward`].

use candle_core::{DType, Device, Tensor, D};
use criterion::{criterion_group, Criterion, Throughput};

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

criterion_group!(benches, bench_decode);

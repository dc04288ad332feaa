//! The fused kernels' run-time dispatched inner loops, one group per kernel, each instruction
//! set the CPU has: `cargo bench --bench main -- kernels/`.

use criterion::{criterion_group, Criterion, Throughput};
use sft_eval::model::kernels::{exp::exp_on, rows, Isa};

/// `x ← exp(x)` over one SmolLM2 vocabulary row (49,152 logits, shifted to ≤ 0 as softmax and
/// the cross-entropy feed it).
fn exp(c: &mut Criterion) {
    let xs: Vec<f32> = (0..49_152).map(|i| -((i % 977) as f32) * 0.02).collect();
    let mut g = c.benchmark_group("kernels/exp");
    g.throughput(Throughput::Elements(xs.len() as u64));
    for isa in Isa::ALL.into_iter().filter(|i| i.available()) {
        g.bench_function(isa.name(), |b| {
            let mut ys = xs.clone();
            b.iter(|| {
                ys.copy_from_slice(&xs);
                exp_on(isa, &mut ys);
                std::hint::black_box(&ys);
            })
        });
    }
    g.finish();
}

/// Attention's row softmax, `p ← softmax(scale · s + mask)`, over one head's causal `[256, 256]`
/// scores: the dispatched row bodies on each path, and the one-element-at-a-time loop they
/// replaced (`serial`: its max and sum are chains of dependent instructions).
fn softmax_rows(c: &mut Criterion) {
    let t = 256;
    let scores: Vec<f32> = (0..t * t)
        .map(|i| ((i * 7919) % 1000) as f32 * 0.01)
        .collect();
    let mask: Vec<f32> = (0..t * t)
        .map(|i| {
            if i % t > i / t {
                f32::NEG_INFINITY
            } else {
                0.0
            }
        })
        .collect();
    let mut g = c.benchmark_group("kernels/softmax_rows");
    g.throughput(Throughput::Elements((t * t) as u64));
    g.bench_function("serial", |b| {
        let mut p = scores.clone();
        b.iter(|| {
            p.copy_from_slice(&scores);
            for (row, m) in p.chunks_mut(t).zip(mask.chunks(t)) {
                let mut max = f32::NEG_INFINITY;
                for (x, &mv) in row.iter_mut().zip(m) {
                    *x = *x * 0.125 + mv;
                    max = max.max(*x);
                }
                for x in row.iter_mut() {
                    *x -= max;
                }
                rows::exp_shifted_sum(row, 0.0); // (the exp; its sum is redone below)
                let mut sum = 0.0;
                for &x in row.iter() {
                    sum += x;
                }
                for x in row.iter_mut() {
                    *x *= 1.0 / sum;
                }
            }
            std::hint::black_box(&p);
        })
    });
    for isa in Isa::ALL.into_iter().filter(|i| i.available()) {
        g.bench_function(isa.name(), |b| {
            let mut p = scores.clone();
            b.iter(|| {
                p.copy_from_slice(&scores);
                for (row, m) in p.chunks_mut(t).zip(mask.chunks(t)) {
                    let max = rows::scale_add_max_on(isa, row, m, 0.125);
                    let sum = rows::exp_shifted_sum_on(isa, row, max);
                    rows::scale_on(isa, row, 1.0 / sum);
                }
                std::hint::black_box(&p);
            })
        });
    }
    g.finish();
}

/// A projection's forward, `x · Wᵀ` for 1,024 rows (the train-step benches' tokens), at the
/// small shape's and SmolLM2-135M's (in → out) sizes; throughput in floating-point operations.
/// Run it at 2 threads to see how the product is split (`RAYON_NUM_THREADS=2`).
fn linear(c: &mut Criterion) {
    use candle_core::{Device, Tensor};
    let rows = 1024;
    let mut g = c.benchmark_group("kernels/linear");
    for (inp, out) in [
        (256, 256),
        (256, 1024),
        (1024, 256),
        (576, 192),
        (576, 576),
        (576, 1536),
        (1536, 576),
    ] {
        let x = Tensor::randn(0f32, 1.0, (rows, inp), &Device::Cpu).unwrap();
        let w = Tensor::randn(0f32, 0.05, (out, inp), &Device::Cpu).unwrap();
        g.throughput(Throughput::Elements((2 * rows * inp * out) as u64));
        g.bench_function(format!("{inp}x{out}"), |b| {
            b.iter(|| {
                std::hint::black_box(
                    sft_eval::model::kernels::linear::linear(&x, &w, false).unwrap(),
                )
            })
        });
    }
    g.finish();
}

criterion_group!(benches, exp, softmax_rows, linear);

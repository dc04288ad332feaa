//! The fused kernels' run-time dispatched inner loops, one group per kernel, each instruction
//! set the CPU has: `cargo bench --bench main -- kernels/`.

use criterion::{criterion_group, Criterion, Throughput};
use sft_eval::model::kernels::{exp::exp_on, Isa};

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

criterion_group!(benches, exp);

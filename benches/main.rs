//! Criterion benchmarks. `cargo bench --bench main -- forward` runs the model-core ones;
//! figures are recorded in reports/bench/README.md.

mod benchmarks;

criterion::criterion_main!(benchmarks::forward::benches);

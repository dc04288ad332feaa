//! Criterion benchmarks: `cargo bench --bench main -- forward`, `-- decode`, `-- train_step`, `-- scorer`, `-- compare/`, `-- kernels/`
//! (`SFT_EVAL_BENCH_LARGE=1` adds the 135M train step);
//! figures are recorded in reports/bench/README.md. The PyTorch side of the same workloads:
//! `python benches/pytorch_side_by_side.py --threads 2` (run it in the same minutes).

mod benchmarks;

/// `criterion_main!`, with the thread pools set up first as the CLI does (`cli::run`).
fn main() {
    sft_eval::model::kernels::start_thread_pools().expect("rayon's pool starts once");
    benchmarks::forward::benches();
    benchmarks::decode::benches();
    benchmarks::train_step::benches();
    benchmarks::scorers::benches();
    benchmarks::compare::benches();
    benchmarks::kernels::benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}

//! Would bf16 beat f32 on this CPU? Times candle's CPU matmul (the `gemm` crate) on the
//! SmolLM2-135M shape's projections, in f32 and in bf16, as the forward and the scorers run
//! them (`x · Wᵀ`, 2048 rows = batch 8 × 256 tokens). PyTorch's side of the same products:
//! `benches/bf16_matmul.py`.
//!
//!     RAYON_NUM_THREADS=1 cargo run --release --example bf16_matmul
#![allow(clippy::print_stdout)]

use std::time::Instant;

use candle_core::{DType, Device, Tensor};

fn time(x: &Tensor, w: &Tensor) -> f64 {
    let wt = w.t().unwrap();
    let _ = x.matmul(&wt).unwrap();
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t = Instant::now();
        let y = x.matmul(&wt).unwrap();
        let _ = y.dims();
        best = best.min(t.elapsed().as_secs_f64());
    }
    best
}

fn main() {
    let dev = Device::Cpu;
    let rows = 2048;
    println!("shape (rows × in → out)\tf32 ms\tbf16 ms\tbf16 / f32\tf32 GFLOP/s");
    for (inp, out) in [(576usize, 576usize), (576, 1536), (1536, 576), (576, 49152)] {
        let x = Tensor::randn(0f32, 1.0, (rows, inp), &dev).unwrap();
        let w = Tensor::randn(0f32, 0.02, (out, inp), &dev).unwrap();
        let f = time(&x, &w);
        let (xb, wb) = (
            x.to_dtype(DType::BF16).unwrap(),
            w.to_dtype(DType::BF16).unwrap(),
        );
        let b = time(&xb, &wb);
        let flops = 2.0 * (rows * inp * out) as f64;
        println!(
            "{rows} × {inp} → {out}\t{:.2}\t{:.2}\t{:.2}\t{:.0}",
            1e3 * f,
            1e3 * b,
            b / f,
            flops / f / 1e9
        );
    }
}

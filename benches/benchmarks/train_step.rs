//! Train-step tokens/s (forward + backward + AdamW) on random Llama weights, f32, CPU (device and
//! dtype as in [`super::forward`]), and the same step in phases (`train_phase/`: forward + loss,
//! forward + loss + backward, the AdamW update alone), so that a gap to PyTorch can be put on a
//! phase (`benches/pytorch_side_by_side.py --phases` times the same three).

use candle_core::{DType, Device, Tensor};
use criterion::{criterion_group, Criterion, Throughput};
use sft_eval::model::checkpoint::WeightFiles;
use sft_eval::model::params::Params;
use sft_eval::model::{read_config, Decoder};
use sft_eval::train::batch::{Example, MicroBatch};
use sft_eval::train::nll_sum;
use sft_eval::train::optim::{AdamW, AdamWConfig};

use super::forward::{write_random_llama, Shape, SMALL, SMOL135M};
use super::{bench_name, device, dtype, gpu_peak_and_reset, report_gpu_peak, sync};

fn bench_shape(c: &mut Criterion, s: &Shape, samples: usize) {
    let tmp = tempfile::tempdir().unwrap();
    write_random_llama(s, tmp.path());
    let (arch, _, cfg) = read_config(tmp.path()).unwrap();
    let dev = device();
    gpu_peak_and_reset(&dev);
    let mut p = Params::new(
        WeightFiles::open(tmp.path()).unwrap(),
        dev.clone(),
        dtype(),
        true,
    );
    let dec = Decoder::load(&cfg, arch.layout, &mut p).unwrap();
    let vars = p.vars().clone();
    let mut opt = AdamW::new(&vars, AdamWConfig::default()).unwrap();
    let ids: Vec<u32> = Tensor::rand(0f32, s.vocab as f32, s.batch * s.seq, &Device::Cpu)
        .unwrap()
        .to_dtype(DType::U32)
        .unwrap()
        .to_vec1()
        .unwrap();
    let examples: Vec<Example> = ids
        .chunks(s.seq)
        .map(|c| Example {
            ids: c.to_vec(),
            supervised: vec![true; s.seq],
            task: None,
            replay: false,
            line: 0,
            docs: vec![],
        })
        .collect();
    let refs: Vec<&Example> = examples.iter().collect();
    let mb = MicroBatch::padded(&refs, &dev).unwrap();
    let mut g = c.benchmark_group("train_step");
    g.throughput(Throughput::Elements((s.batch * s.seq) as u64));
    g.sample_size(samples);
    g.bench_function(bench_name(s.name), |b| {
        b.iter(|| {
            // the trainer's loss: the head only at supervised positions, fused on CPU f32
            let loss = (nll_sum(&dec, &mb).unwrap() / mb.n_supervised as f64).unwrap();
            let grads = loss.backward().unwrap();
            opt.step(&grads, 1e-4).unwrap();
            sync(&dev);
        })
    });
    g.finish();
    report_gpu_peak(&dev, &format!("train_step/{}", bench_name(s.name)));

    let mut g = c.benchmark_group("train_phase");
    g.throughput(Throughput::Elements((s.batch * s.seq) as u64));
    g.sample_size(samples);
    let name = bench_name(s.name);
    g.bench_function(format!("{name}/forward_loss"), |b| {
        b.iter(|| {
            let loss = (nll_sum(&dec, &mb).unwrap() / mb.n_supervised as f64).unwrap();
            sync(&dev);
            loss
        })
    });
    g.bench_function(format!("{name}/forward_backward"), |b| {
        b.iter(|| {
            let loss = (nll_sum(&dec, &mb).unwrap() / mb.n_supervised as f64).unwrap();
            let grads = loss.backward().unwrap();
            sync(&dev);
            grads
        })
    });
    let loss = (nll_sum(&dec, &mb).unwrap() / mb.n_supervised as f64).unwrap();
    let grads = loss.backward().unwrap();
    g.bench_function(format!("{name}/adamw"), |b| {
        b.iter(|| {
            opt.step(&grads, 1e-4).unwrap();
            sync(&dev);
        })
    });
    g.finish();
}

fn bench_train_step(c: &mut Criterion) {
    bench_shape(c, &SMALL, 10);
    if std::env::var_os("SFT_EVAL_BENCH_LARGE").is_some() {
        bench_shape(c, &SMOL135M, 10);
    }
}

criterion_group!(benches, bench_train_step);

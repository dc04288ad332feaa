//! Forward (scoring) tokens/s on random Llama weights of two shapes: a small one and the
//! SmolLM2-135M shape. f32, CPU, no gradient tracking (`SFT_EVAL_BENCH_DEVICE=cuda` and
//! `SFT_EVAL_BENCH_DTYPE=bf16` pick another device and dtype: see [`super::device`]).

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use criterion::{criterion_group, Criterion, Throughput};
use sft_eval::model::checkpoint::WeightFiles;
use sft_eval::model::params::Params;
use sft_eval::model::{read_config, Decoder};

use super::{bench_name, device, dtype, gpu_peak_and_reset, report_gpu_peak, sync};

pub struct Shape {
    pub name: &'static str,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub ffn: usize,
    pub vocab: usize,
    pub batch: usize,
    pub seq: usize,
    pub tied: bool,
}

pub const SMALL: Shape = Shape {
    name: "llama_h256_l4_v2048_b8x128",
    hidden: 256,
    layers: 4,
    heads: 4,
    kv_heads: 4,
    ffn: 1024,
    vocab: 2048,
    batch: 8,
    seq: 128,
    tied: false,
};
pub const SMOL135M: Shape = Shape {
    name: "smollm2_135m_b4x256",
    hidden: 576,
    layers: 30,
    heads: 9,
    kv_heads: 3,
    ffn: 1536,
    vocab: 49152,
    batch: 4,
    seq: 256,
    tied: true,
};

/// Write a random Llama checkpoint of `s` into `dir` (config.json + model.safetensors).
pub fn write_random_llama(s: &Shape, dir: &Path) {
    let dev = Device::Cpu;
    let hd = s.hidden / s.heads;
    let config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "hidden_size": s.hidden, "num_hidden_layers": s.layers,
        "num_attention_heads": s.heads, "num_key_value_heads": s.kv_heads, "intermediate_size": s.ffn,
        "vocab_size": s.vocab, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 2048,
        "tie_word_embeddings": s.tied, "torch_dtype": "float32"
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let r = |shape: &[usize]| Tensor::randn(0f32, 0.02, shape, &dev).unwrap();
    let mut t = std::collections::HashMap::new();
    t.insert(
        "model.embed_tokens.weight".to_string(),
        r(&[s.vocab, s.hidden]),
    );
    t.insert(
        "model.norm.weight".to_string(),
        Tensor::ones(s.hidden, DType::F32, &dev).unwrap(),
    );
    if !s.tied {
        t.insert("lm_head.weight".to_string(), r(&[s.vocab, s.hidden]));
    }
    for l in 0..s.layers {
        let p = format!("model.layers.{l}");
        t.insert(
            format!("{p}.self_attn.q_proj.weight"),
            r(&[s.heads * hd, s.hidden]),
        );
        t.insert(
            format!("{p}.self_attn.k_proj.weight"),
            r(&[s.kv_heads * hd, s.hidden]),
        );
        t.insert(
            format!("{p}.self_attn.v_proj.weight"),
            r(&[s.kv_heads * hd, s.hidden]),
        );
        t.insert(
            format!("{p}.self_attn.o_proj.weight"),
            r(&[s.hidden, s.heads * hd]),
        );
        t.insert(format!("{p}.mlp.gate_proj.weight"), r(&[s.ffn, s.hidden]));
        t.insert(format!("{p}.mlp.up_proj.weight"), r(&[s.ffn, s.hidden]));
        t.insert(format!("{p}.mlp.down_proj.weight"), r(&[s.hidden, s.ffn]));
        t.insert(
            format!("{p}.input_layernorm.weight"),
            Tensor::ones(s.hidden, DType::F32, &dev).unwrap(),
        );
        t.insert(
            format!("{p}.post_attention_layernorm.weight"),
            Tensor::ones(s.hidden, DType::F32, &dev).unwrap(),
        );
    }
    candle_core::safetensors::save(&t, dir.join("model.safetensors")).unwrap();
}

pub fn load_decoder(dir: &Path) -> Decoder {
    let (arch, _, cfg) = read_config(dir).unwrap();
    let files = WeightFiles::open(dir).unwrap();
    let mut p = Params::new(files, device(), dtype(), false);
    Decoder::load(&cfg, arch.layout, &mut p).unwrap()
}

fn bench_forward(c: &mut Criterion) {
    for s in [&SMALL, &SMOL135M] {
        let tmp = tempfile::tempdir().unwrap();
        write_random_llama(s, tmp.path());
        let dev = device();
        gpu_peak_and_reset(&dev);
        let dec = load_decoder(tmp.path());
        let ids = Tensor::rand(0f32, s.vocab as f32, (s.batch, s.seq), &Device::Cpu)
            .unwrap()
            .to_dtype(DType::U32)
            .unwrap()
            .to_device(&dev)
            .unwrap();
        let lengths = vec![s.seq; s.batch];
        let mut g = c.benchmark_group("forward");
        g.throughput(Throughput::Elements((s.batch * s.seq) as u64));
        g.sample_size(10);
        g.bench_function(bench_name(s.name), |b| {
            b.iter(|| {
                let logits = dec.forward(&ids, &lengths).unwrap();
                sync(&dev);
                logits
            })
        });
        g.finish();
        report_gpu_peak(&dev, &format!("forward/{}", bench_name(s.name)));
    }
}

criterion_group!(benches, bench_forward);

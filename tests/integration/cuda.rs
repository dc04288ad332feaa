//! CPU ↔ CUDA parity (built only with `--features cuda`, run on the GPU machine by
//! `benches/device_check.sh`): every fixture model gives the same logits (full batch and KV-cached
//! decoding) and the same train step on GPU 0 as on the CPU, where the CPU takes the fused kernels
//! and CUDA the differentiable compositions; AdamW's CUDA kernels take the same steps as the
//! composition on CUDA and the CPU kernel; and the RMSNorm, RoPE and SwiGLU kernels written for
//! CUDA, and the output head + cross-entropy by vocabulary blocks (`SFT_EVAL_CUDA_FUSED=1` in a
//! model), give the values and gradients of the CPU kernels and of the compositions, in f32 and
//! bf16.
//!
//! Tolerance: f32 on both sides (candle's f32 GEMMs do not use TF32 unless
//! `set_gemm_reduced_precision_f32(true)`), so the differences are summation order only; each
//! check allows 1e-3 of the scale of what it compares (the largest |logit|, the loss, the gradient
//! norm). The observed differences are printed (`--nocapture`) for the device log.
//!
//! No CUDA device at run time is a failure, not a skip: this test is only run where one should be.

use candle_core::{DType, Device, IndexOp, Result, Tensor, Var};
use sft_eval::model::config::NormKind;
use sft_eval::model::kernels::blocked_head::linear_cross_entropy_blocks;
use sft_eval::model::kernels::linear_cross_entropy::linear_cross_entropy;
use sft_eval::model::kernels::{fused_path_taken, rms_norm::rms_norm, rope, swiglu::swiglu};
use sft_eval::model::layers::log_softmax;
use sft_eval::model::layers::Norm;
use sft_eval::model::rope::{apply_rotary_composed, RopeSpec};
use sft_eval::model::{LoadOptions, Model};
use sft_eval::train::batch::{Example, MicroBatch};
use sft_eval::train::nll_sum;
use sft_eval::train::optim::{grad_norm, AdamW, AdamWConfig};

use crate::common::*;

const REL_TOL: f32 = 1e-3;

fn gpu() -> Device {
    Device::new_cuda(0).unwrap_or_else(|e| {
        panic!("no CUDA device 0 ({e}): the cuda parity test runs only on a machine with a GPU")
    })
}

fn load_on(variant: &str, device: &Device, trainable: bool) -> Model {
    Model::load(
        &model_dir(variant),
        &LoadOptions {
            device: device.clone(),
            dtype: DType::F32,
            trainable,
            frozen: None,
            base: None,
        },
    )
    .unwrap_or_else(|e| panic!("{variant} on {device:?}: {e}"))
}

/// The reference prompts of a fixture (different lengths, so the batch is padded).
fn prompts(variant: &str) -> Vec<Vec<u32>> {
    expected(variant)["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| ids(&c["ids"]))
        .collect()
}

/// `|a − b|` at most `REL_TOL` of the largest |a| (a and b on any device).
fn assert_close(what: &str, a: &Tensor, b: &Tensor) {
    let (a, b) = (
        a.to_device(&Device::Cpu).unwrap(),
        b.to_device(&Device::Cpu).unwrap(),
    );
    let (diff, scale) = (max_abs_diff(&a, &b), max_abs(&a));
    eprintln!("{what}: max |cpu − cuda| {diff:.3e}, max |cpu| {scale:.3e}");
    assert!(
        diff.is_finite() && diff <= REL_TOL * scale.max(1e-6),
        "{what}: max |cpu − cuda| {diff:e} > {REL_TOL} × {scale:e}"
    );
}

fn assert_close_scalar(what: &str, cpu: f64, cuda: f64) {
    let diff = (cpu - cuda).abs();
    eprintln!("{what}: cpu {cpu:.6e}, cuda {cuda:.6e}, |diff| {diff:.3e}");
    assert!(
        diff.is_finite() && diff <= REL_TOL as f64 * cpu.abs().max(1e-6),
        "{what}: cpu {cpu} vs cuda {cuda}"
    );
}

#[test]
fn cuda_logits_match_cpu_for_every_model() {
    let dev = gpu();
    for v in variants() {
        let rows = prompts(&v);
        let (cpu, cuda) = (load_on(&v, &Device::Cpu, false), load_on(&v, &dev, false));
        let (lc, lg) = (
            cpu.forward_batch(&rows).unwrap(),
            cuda.forward_batch(&rows).unwrap(),
        );
        assert!(lg.device().is_cuda(), "{v}: logits not on the GPU");
        // the padded positions are not compared: each row up to its own length
        for (i, r) in rows.iter().enumerate() {
            let n = r.len();
            assert_close(
                &format!("{v} logits row {i} ({n} tokens)"),
                &lc.i(i).unwrap().narrow(0, 0, n).unwrap(),
                &lg.i(i).unwrap().narrow(0, 0, n).unwrap(),
            );
        }
        // KV-cached decoding: the longest prompt as prefill, then one token
        let p = rows.iter().max_by_key(|r| r.len()).unwrap();
        let (prefill, next) = (&p[..p.len() - 1], p[p.len() - 1]);
        let cached = |m: &Model| {
            let mut cache = m.decoder.new_cache(1);
            let ids = Tensor::new(prefill, m.device())
                .unwrap()
                .unsqueeze(0)
                .unwrap();
            m.decoder
                .forward_cached(&ids, &[prefill.len()], &mut cache)
                .unwrap();
            let ids = Tensor::new(&[[next]], m.device()).unwrap();
            m.decoder.forward_cached(&ids, &[1], &mut cache).unwrap()
        };
        assert_close(&format!("{v} cached step"), &cached(&cpu), &cached(&cuda));
    }
}

#[test]
fn cuda_train_step_matches_cpu_for_every_model() {
    let dev = gpu();
    for v in variants() {
        let rows = prompts(&v);
        // a plain row, a row supervised on its last three tokens only, and one packed row of two
        // documents (positions restart, attention stays inside each)
        let mut examples: Vec<Example> = rows
            .iter()
            .take(2)
            .enumerate()
            .map(|(i, r)| {
                let n = r.len();
                Example {
                    ids: r.clone(),
                    supervised: (0..n).map(|j| i == 0 || j + 3 >= n).collect(),
                    task: None,
                    replay: false,
                    line: 0,
                    docs: vec![],
                }
            })
            .collect();
        if rows.len() >= 2 {
            let (a, b) = (&rows[0], &rows[1]);
            examples.push(Example {
                ids: a.iter().chain(b.iter()).copied().collect(),
                supervised: vec![true; a.len() + b.len()],
                task: None,
                replay: false,
                line: 0,
                docs: vec![a.len(), b.len()],
            });
        }
        let refs: Vec<&Example> = examples.iter().collect();
        // loss, gradient norm, and the loss after one AdamW step
        let step = |device: &Device| {
            let m = load_on(&v, device, true);
            let mb = MicroBatch::padded(&refs, device).unwrap();
            let vars = m.params.vars().clone();
            let mut opt = AdamW::new(&vars, AdamWConfig::default()).unwrap();
            let loss = (nll_sum(&m.decoder, &mb).unwrap() / mb.n_supervised as f64).unwrap();
            let grads = loss.backward().unwrap();
            let norm = grad_norm(&grads, &vars).unwrap();
            opt.step(&grads, 1e-3).unwrap();
            let after = (nll_sum(&m.decoder, &mb).unwrap() / mb.n_supervised as f64).unwrap();
            let scalar = |t: &Tensor| t.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap();
            (scalar(&loss), norm, scalar(&after))
        };
        let (c, g) = (step(&Device::Cpu), step(&dev));
        assert_close_scalar(&format!("{v} loss"), c.0, g.0);
        assert_close_scalar(&format!("{v} gradient norm"), c.1, g.1);
        assert_close_scalar(&format!("{v} loss after one AdamW step"), c.2, g.2);
    }
}

/// Five AdamW steps (weight decay 0.1 on a weight, none on a bias) from the same start, on a loss
/// whose gradients differ in sign and scale; returns the parameters, then the moments, as CPU f32.
#[test]
fn cuda_adamw_kernels_match_the_composition_and_the_cpu() {
    let dev = gpu();
    let cpu_fused = adamw_steps(&Device::Cpu, DType::F32, true);
    for dtype in [DType::F32, DType::BF16] {
        let before = fused_path_taken();
        let fused = adamw_steps(&dev, dtype, true);
        assert!(
            fused_path_taken() > before,
            "{dtype:?}: the CUDA kernels did not run"
        );
        let composed = adamw_steps(&dev, dtype, false);
        // the weights moved (5 steps of at most lr = 1e-2 each)
        let moved = max_abs_diff(&fused[0], &adamw_start());
        eprintln!("{dtype:?}: the weight moved by up to {moved:.3e}");
        assert!(
            moved > 1e-2,
            "{dtype:?}: the weight moved by {moved:e} only"
        );
        if dtype == DType::F32 {
            assert_steps_close(
                "f32: CUDA kernels vs CUDA composition",
                &fused,
                &composed,
                1e-6,
            );
            assert_steps_close("f32: CUDA kernels vs CPU kernel", &fused, &cpu_fused, 1e-6);
        } else {
            // the parameters are rounded to bf16 after each step (8 bits of mantissa): a
            // rounding that flips between the two paths moves a value by one bf16 step, 2⁻⁸
            // of its magnitude, and later steps see that difference in their gradients
            assert_steps_close(
                "bf16: CUDA kernels vs CUDA composition",
                &fused,
                &composed,
                1e-2,
            );
            assert_steps_close(
                "bf16: CUDA kernels vs CPU f32 kernel",
                &fused,
                &cpu_fused,
                3e-2,
            );
        }
    }
}

/// Values in [−scale, scale] on the CPU, f32 (a sine of the index: deterministic, no pattern that
/// lines up with a block or a row).
fn values(shape: &[usize], seed: f64, scale: f64) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::arange(0u32, n as u32, &Device::Cpu)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .affine(0.7548776662, seed)
        .unwrap()
        .sin()
        .unwrap()
        .affine(scale, 0.0)
        .unwrap()
        .reshape(shape)
        .unwrap()
}

/// `f`'s output and its gradients to each input for the loss `Σ r·y` (in f32), all as CPU f32;
/// `r` is the same fixed weighting of the output's shape on every call.
fn value_and_grads(
    f: &dyn Fn(&[Tensor]) -> Result<Tensor>,
    ins: &[Tensor],
) -> (Tensor, Vec<Tensor>) {
    let vars: Vec<Var> = ins.iter().map(|t| Var::from_tensor(t).unwrap()).collect();
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let y = f(&ts).unwrap();
    let r = values(y.dims(), 0.3, 1.0).to_device(y.device()).unwrap();
    let loss = (y.to_dtype(DType::F32).unwrap() * r)
        .unwrap()
        .sum_all()
        .unwrap();
    let grads = loss.backward().unwrap();
    let cpu = |t: &Tensor| {
        t.to_dtype(DType::F32)
            .unwrap()
            .to_device(&Device::Cpu)
            .unwrap()
    };
    let g = ts.iter().map(|t| cpu(grads.get(t).unwrap())).collect();
    (cpu(&y), g)
}

/// The CUDA kernel against the CPU kernel (f32) and the composition on CUDA, in f32 and bf16:
/// values and the gradients to every input, within `tol` of each compared tensor's largest value
/// (f32: summation order only; bf16: one rounding of 2⁻⁸ at each store).
fn check_cuda_kernel(
    what: &str,
    ins: &[Tensor],
    kernel: &dyn Fn(&[Tensor]) -> Result<Tensor>,
    composed: &dyn Fn(&[Tensor]) -> Result<Tensor>,
) {
    let dev = gpu();
    let (y_cpu, g_cpu) = value_and_grads(kernel, ins);
    for (dtype, tol) in [(DType::F32, 1e-5f32), (DType::BF16, 2e-2)] {
        let on_gpu: Vec<Tensor> = ins
            .iter()
            .map(|t| t.to_dtype(dtype).unwrap().to_device(&dev).unwrap())
            .collect();
        let (y, g) = value_and_grads(kernel, &on_gpu);
        let (y_comp, g_comp) = value_and_grads(composed, &on_gpu);
        let pairs = [
            ("CPU f32 kernel", &y_cpu, &g_cpu),
            ("CUDA composition", &y_comp, &g_comp),
        ];
        for (other, y_ref, g_ref) in pairs {
            let label = format!("{what} {dtype:?} vs {other}");
            assert_steps_close(
                &format!("{label}: value"),
                std::slice::from_ref(&y),
                std::slice::from_ref(y_ref),
                tol,
            );
            assert_steps_close(&format!("{label}: gradients"), &g, g_ref, tol);
        }
    }
}

#[test]
fn cuda_rms_norm_kernel_matches_the_cpu_kernel_and_the_composition() {
    // 200 rows (gw over four chunks of 64, the last one short); d a multiple of 32 and not
    for (shape, d) in [((4, 50), 576), ((2, 100), 1000)] {
        let x = values(&[shape.0, shape.1, d], 0.1, 2.0);
        let w = values(&[d], 0.9, 1.0).affine(0.5, 1.0).unwrap();
        let kernel = |t: &[Tensor]| rms_norm(&t[0], &t[1], 1e-5);
        let composed = |t: &[Tensor]| {
            let norm = Norm {
                weight: t[1].clone(),
                bias: None,
                kind: NormKind::Rms,
                eps: 1e-5,
            };
            norm.forward_composed(&t[0])
        };
        check_cuda_kernel(&format!("rms_norm d={d}"), &[x, w], &kernel, &composed);
    }
}

#[test]
fn cuda_swiglu_kernel_matches_the_cpu_kernel_and_the_composition() {
    let gate = values(&[3, 37, 1536], 0.2, 6.0);
    let up = values(&[3, 37, 1536], 1.3, 1.0);
    let kernel = |t: &[Tensor]| swiglu(&t[0], &t[1]);
    let composed = |t: &[Tensor]| t[0].silu()? * &t[1];
    check_cuda_kernel("swiglu", &[gate, up], &kernel, &composed);
}

#[test]
fn cuda_rope_kernel_matches_the_cpu_kernel_and_the_composition() {
    let cpu = Device::Cpu;
    // full rotary, one table for all rows; then partial rotary with a table per batch row
    let spec = RopeSpec::from_config(&serde_json::json!({"rope_theta": 10000.0}), 64).unwrap();
    let (cos, sin) = spec.cos_sin(37, &cpu).unwrap();
    let partial = RopeSpec::from_config(
        &serde_json::json!({"rope_theta": 10000.0, "partial_rotary_factor": 0.5}),
        64,
    )
    .unwrap();
    let positions: Vec<usize> = (0..2 * 37).map(|i| (i * 7) % 50).collect();
    let (pc, ps) = partial.cos_sin_at(&positions, 37, &cpu).unwrap();
    let half = pc.dim(1).unwrap();
    let (pc, ps) = (
        pc.reshape((2, 37, half)).unwrap(),
        ps.reshape((2, 37, half)).unwrap(),
    );
    for (what, c, s) in [("rope", cos, sin), ("partial rope, per row", pc, ps)] {
        let x = values(&[2, 3, 37, 64], 0.4, 3.0);
        let (c_gpu, s_gpu) = (c.to_device(&gpu()).unwrap(), s.to_device(&gpu()).unwrap());
        let on = |t: &Tensor| -> (Tensor, Tensor) {
            if t.device().is_cpu() {
                (c.clone(), s.clone())
            } else {
                (c_gpu.clone(), s_gpu.clone())
            }
        };
        let kernel = |t: &[Tensor]| {
            let (c, s) = on(&t[0]);
            rope::apply_rotary(&t[0], &c, &s)
        };
        let composed = |t: &[Tensor]| {
            let (c, s) = on(&t[0]);
            apply_rotary_composed(&t[0], &c, &s)
        };
        check_cuda_kernel(what, &[x], &kernel, &composed);
    }
}

#[test]
fn cuda_blocked_head_loss_matches_the_cpu_kernel_and_the_composition() {
    // 300 rows, a vocabulary of 10,000 (three blocks of 4,096, the last one short)
    let (n, h, v) = (300, 64, 10_000);
    let hidden = values(&[n, h], 0.5, 2.0);
    let weight = values(&[v, h], 0.8, 0.5);
    let t: Vec<u32> = (0..n as u32).map(|i| (i * 7919) % v as u32).collect();
    let t_cpu = Tensor::new(t.as_slice(), &Device::Cpu).unwrap();
    let t_gpu = t_cpu.to_device(&gpu()).unwrap();
    let targets = |x: &Tensor| {
        if x.device().is_cpu() {
            t_cpu.clone()
        } else {
            t_gpu.clone()
        }
    };
    // the CPU side of `kernel` is the fused CPU kernel; on CUDA the blocks
    let kernel = |x: &[Tensor]| {
        if x[0].device().is_cpu() {
            linear_cross_entropy(&x[0], &x[1], &targets(&x[0]))
        } else {
            linear_cross_entropy_blocks(&x[0], &x[1], &targets(&x[0]), None)
        }
    };
    let composed = |x: &[Tensor]| {
        log_softmax(&x[0].matmul(&x[1].t()?)?)?
            .gather(&targets(&x[0]).unsqueeze(1)?, 1)?
            .squeeze(1)?
            .neg()
    };
    check_cuda_kernel(
        "head + cross-entropy",
        &[hidden, weight],
        &kernel,
        &composed,
    );
}

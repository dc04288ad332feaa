//! The rotation itself: gradients against finite differences, partial rotary, candle's fused
//! kernel, and bf16.

use super::super::*;
use candle_core::{DType, Var};
use serde_json::json;

use crate::model::kernels::testutil::lcg;

/// Gradient of `loss(y) = sum(w * y^2 + v * y)`, `y = apply_rotary(x, cos, sin)`, w.r.t. x,
/// against central finite differences, in f64.
fn check_gradient(x_shape: (usize, usize, usize, usize), cos: &Tensor, sin: &Tensor) {
    let dev = Device::Cpu;
    let n = x_shape.0 * x_shape.1 * x_shape.2 * x_shape.3;
    let x0 = lcg(n, 1);
    let w = Tensor::from_vec(lcg(n, 2), x_shape, &dev).unwrap();
    let v = Tensor::from_vec(lcg(n, 3), x_shape, &dev).unwrap();
    let loss = |x: &Tensor| -> Tensor {
        let y = apply_rotary(x, cos, sin).unwrap();
        ((&w * y.sqr().unwrap()).unwrap() + (&v * &y).unwrap())
            .unwrap()
            .sum_all()
            .unwrap()
    };
    let x = Var::from_tensor(&Tensor::from_vec(x0.clone(), x_shape, &dev).unwrap()).unwrap();
    let grads = loss(x.as_tensor()).backward().unwrap();
    let analytic: Vec<f64> = grads
        .get(x.as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let eps = 1e-5;
    let mut worst = 0f64;
    for i in 0..n {
        let at = |delta: f64| -> f64 {
            let mut xs = x0.clone();
            xs[i] += delta;
            loss(&Tensor::from_vec(xs, x_shape, &dev).unwrap())
                .to_scalar::<f64>()
                .unwrap()
        };
        let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
        let err = (analytic[i] - numeric).abs() / analytic[i].abs().max(1e-3);
        worst = worst.max(err);
    }
    assert!(worst < 1e-6, "relative gradient error {worst:e}");
}

#[test]
fn gradient_matches_finite_differences() {
    let dev = Device::Cpu;
    let spec = RopeSpec::from_config(&json!({"rope_theta": 10000.0}), 8).unwrap();
    let (cos, sin) = spec.cos_sin(5, &dev).unwrap();
    let (cos, sin) = (
        cos.to_dtype(DType::F64).unwrap(),
        sin.to_dtype(DType::F64).unwrap(),
    );
    check_gradient((2, 3, 5, 8), &cos, &sin);

    // partial rotary: 4 of 10 dims rotate, with attention scaling and cos/sin cast inside
    let partial = RopeSpec::from_config(
        &json!({"max_position_embeddings": 64, "original_max_position_embeddings": 16, "partial_rotary_factor": 0.4,
                "rope_scaling": {"type": "longrope", "short_factor": [1.0, 1.5], "long_factor": [2.0, 3.0]}}),
        10,
    )
    .unwrap();
    assert_eq!(partial.rotary_dim(), 4);
    let (cos, sin) = partial.cos_sin(5, &dev).unwrap();
    check_gradient((2, 3, 5, 10), &cos, &sin);

    // per-sequence positions: cos/sin [batch, seq, rotary_dim/2]
    let (c, s) = partial
        .cos_sin_at(&[3, 4, 5, 6, 7, 0, 1, 2, 3, 4], 8, &dev)
        .unwrap();
    let (c, s) = (c.reshape((2, 5, 2)).unwrap(), s.reshape((2, 5, 2)).unwrap());
    check_gradient((2, 3, 5, 10), &c, &s);
}

#[test]
fn partial_rotary_passes_tail_through() {
    let dev = Device::Cpu;
    let spec = RopeSpec::from_config(&json!({"partial_rotary_factor": 0.5}), 8).unwrap();
    let (cos, sin) = spec.cos_sin(3, &dev).unwrap();
    let x = Tensor::from_vec(
        lcg(2 * 2 * 3 * 8, 9)
            .iter()
            .map(|&v| v as f32)
            .collect::<Vec<_>>(),
        (2, 2, 3, 8),
        &dev,
    )
    .unwrap();
    let y = apply_rotary(&x, &cos, &sin).unwrap();
    let tail_x: Vec<f32> = x
        .narrow(3, 4, 4)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let tail_y: Vec<f32> = y
        .narrow(3, 4, 4)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(tail_x, tail_y);
    // position 0 is the identity
    let p0: Vec<f32> = y
        .narrow(2, 0, 1)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let x0: Vec<f32> = x
        .narrow(2, 0, 1)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(p0, x0);
    // the rotated part equals the full-rotary result on the first 4 dims
    let (c4, s4) = RopeSpec::from_config(&json!({}), 4)
        .unwrap()
        .cos_sin(3, &dev)
        .unwrap();
    let head: Vec<f32> = y
        .narrow(3, 0, 4)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let want: Vec<f32> = apply_rotary(&x.narrow(3, 0, 4).unwrap(), &c4, &s4)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(head, want);
    // shape errors
    assert!(apply_rotary(
        &x,
        &cos.narrow(0, 0, 2).unwrap(),
        &sin.narrow(0, 0, 2).unwrap()
    )
    .is_err());
    let (c_big, s_big) = RopeSpec::from_config(&json!({}), 10)
        .unwrap()
        .cos_sin(3, &dev)
        .unwrap();
    assert!(apply_rotary(&x, &c_big, &s_big).is_err());
}

#[test]
fn agrees_with_candle_fused_rope() {
    let dev = Device::Cpu;
    let spec = RopeSpec::from_config(
        &json!({"rope_theta": 500000.0, "max_position_embeddings": 131072,
                "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                 "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}),
        64,
    )
    .unwrap();
    let (b, h, s, d) = (2, 4, 7, 64);
    let (cos, sin) = spec
        .cos_sin_at(&(1000..1000 + s).collect::<Vec<_>>(), 2000, &dev)
        .unwrap();
    let x = Tensor::from_vec(
        lcg(b * h * s * d, 5)
            .iter()
            .map(|&v| v as f32)
            .collect::<Vec<_>>(),
        (b, h, s, d),
        &dev,
    )
    .unwrap();
    let ours = apply_rotary(&x, &cos, &sin).unwrap();
    let fused = candle_nn::rotary_emb::rope(&x, &cos, &sin).unwrap();
    let diff = (ours - fused)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(diff <= 1e-6, "max |ours - candle_nn rope| = {diff}");

    // 3-D (per-batch) cos/sin too
    let (c, s3) = spec
        .cos_sin_at(&(0..2 * s).collect::<Vec<_>>(), 2 * s, &dev)
        .unwrap();
    let (c, s3) = (
        c.reshape((2, s, d / 2)).unwrap(),
        s3.reshape((2, s, d / 2)).unwrap(),
    );
    let ours = apply_rotary(&x, &c, &s3).unwrap();
    let fused = candle_nn::rotary_emb::rope(&x, &c, &s3).unwrap();
    let diff = (ours - fused)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(diff <= 1e-6, "3-D: max |ours - candle_nn rope| = {diff}");
}

#[test]
fn bf16_casts_cos_sin_like_transformers() {
    let dev = Device::Cpu;
    let spec = RopeSpec::from_config(&json!({}), 16).unwrap();
    let (cos, sin) = spec.cos_sin(4, &dev).unwrap();
    let x = Tensor::from_vec(
        lcg(64, 4).iter().map(|&v| v as f32).collect::<Vec<_>>(),
        (1, 1, 4, 16),
        &dev,
    )
    .unwrap();
    let y = apply_rotary(&x.to_dtype(DType::BF16).unwrap(), &cos, &sin).unwrap();
    assert_eq!(y.dtype(), DType::BF16);
    let y32 = apply_rotary(&x, &cos, &sin).unwrap();
    let diff = (y.to_dtype(DType::F32).unwrap() - y32)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(diff < 2e-2, "{diff}");
}

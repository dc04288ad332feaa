//! Each dispatch path, tested whole: every kernel test of this module runs again in a child
//! process per instruction set the CPU has, forced through `SFT_EVAL_CPU_ISA`; and every fused
//! op's f32 values and gradients (the dispatched path) are checked against the same op in f64
//! (one element at a time), so that each forced run checks its own path's numbers.

use candle_core::{DType, Result, Tensor};

use super::testutil::{autograd, max_rel, rand};
use super::{isa, Isa};
use crate::env_vars::SFT_EVAL_CPU_ISA;

/// Worst relative error of the f32 run of `f` against its f64 run, over the value and each
/// input's gradient of `sum(f(inputs) · r)`; `grads` says which inputs take one.
fn f32_error(
    inputs: &[Tensor],
    grads: &[bool],
    r: &Tensor,
    f: &dyn Fn(&[Tensor]) -> Result<Tensor>,
) -> f64 {
    let (y64, g64) = autograd_some(inputs, grads, r, f);
    let in32: Vec<Tensor> = inputs
        .iter()
        .map(|t| {
            if t.dtype() == DType::F64 {
                t.to_dtype(DType::F32).unwrap()
            } else {
                t.clone()
            }
        })
        .collect();
    let (y32, g32) = autograd_some(&in32, grads, &r.to_dtype(DType::F32).unwrap(), f);
    let mut worst = max_rel(&y32, &y64, 1e-2);
    for (a, b) in g32.iter().zip(&g64) {
        worst = worst.max(max_rel(a, b, 1e-2));
    }
    worst
}

/// [`autograd`] over the inputs marked in `grads` only (targets and masks take none).
fn autograd_some(
    inputs: &[Tensor],
    grads: &[bool],
    r: &Tensor,
    f: &dyn Fn(&[Tensor]) -> Result<Tensor>,
) -> (Tensor, Vec<Tensor>) {
    let tracked: Vec<Tensor> = inputs
        .iter()
        .zip(grads)
        .filter(|(_, &g)| g)
        .map(|(t, _)| t.clone())
        .collect();
    let rebuild = |ts: &[Tensor]| -> Result<Tensor> {
        let mut it = ts.iter();
        let all: Vec<Tensor> = inputs
            .iter()
            .zip(grads)
            .map(|(t, &g)| {
                if g {
                    it.next().unwrap().clone()
                } else {
                    t.clone()
                }
            })
            .collect();
        f(&all)
    };
    autograd(&tracked, r, &rebuild)
}

fn targets(n: usize, v: usize) -> Tensor {
    let t: Vec<u32> = (0..n).map(|i| ((i * 37 + 11) % v) as u32).collect();
    Tensor::from_vec(t, n, &candle_core::Device::Cpu).unwrap()
}

#[test]
fn every_fused_op_in_f32_matches_float64_on_this_path() {
    let tol = 2e-5;
    // rows of 100 and 70 leave tails after the 32-lane bodies
    let x = (rand(&[3, 100], 1) * 3.0).unwrap();
    let e = f32_error(&[x], &[true], &rand(&[3, 100], 2), &|t| {
        super::softmax::softmax_last(&t[0])
    });
    assert!(e < tol, "softmax {e:e}");

    let (b, h, kv, t, d) = (2, 4, 2, 70, 16);
    let q = rand(&[b, h, t, d], 3);
    let k = rand(&[b, kv, t, d], 4);
    let v = rand(&[b, kv, t, d], 5);
    let causal: Vec<f64> = (0..t * t)
        .map(|i| {
            if i % t > i / t {
                f64::NEG_INFINITY
            } else {
                0.0
            }
        })
        .collect();
    let mask = Tensor::from_vec(causal, (1, 1, t, t), &candle_core::Device::Cpu).unwrap();
    let e = f32_error(
        &[q, k, v, mask],
        &[true, true, true, false],
        &rand(&[b, h, t, d], 6),
        &|t| super::attention::attention(&t[0], &t[1], &t[2], &t[3], 0.25),
    );
    assert!(e < tol, "attention {e:e}");

    let logits = (rand(&[5, 300], 7) * 4.0).unwrap();
    let e = f32_error(
        &[logits, targets(5, 300)],
        &[true, false],
        &rand(&[5], 8),
        &|t| super::cross_entropy::cross_entropy_rows(&t[0], &t[1]),
    );
    assert!(e < tol, "cross-entropy {e:e}");

    let e = f32_error(
        &[rand(&[6, 40], 9), rand(&[300, 40], 10), targets(6, 300)],
        &[true, true, false],
        &rand(&[6], 11),
        &|t| {
            super::linear_cross_entropy::linear_cross_entropy_blocked(&t[0], &t[1], &t[2], Some(96))
        },
    );
    assert!(e < tol, "linear cross-entropy {e:e}");

    let e = f32_error(
        &[rand(&[4, 100], 12), rand(&[100], 13)],
        &[true, true],
        &rand(&[4, 100], 14),
        &|t| super::rms_norm::rms_norm(&t[0], &t[1], 1e-6),
    );
    assert!(e < tol, "rms_norm {e:e}");

    let e = f32_error(
        &[(rand(&[3, 100], 15) * 4.0).unwrap(), rand(&[3, 100], 16)],
        &[true, true],
        &rand(&[3, 100], 17),
        &|t| super::swiglu::swiglu(&t[0], &t[1]),
    );
    assert!(e < tol, "swiglu {e:e}");

    let (cos, sin) = (rand(&[t, d / 2], 18), rand(&[t, d / 2], 19));
    let e = f32_error(
        &[rand(&[b, h, t, d], 20), cos, sin],
        &[true, false, false],
        &rand(&[b, h, t, d], 21),
        &|t| super::rope::apply_rotary(&t[0], &t[1], &t[2]),
    );
    assert!(e < tol, "rope {e:e}");

    let e = f32_error(
        &[rand(&[2, 7, 40], 22), rand(&[24, 40], 23)],
        &[true, true],
        &rand(&[2, 7, 24], 24),
        &|t| super::linear::linear(&t[0], &t[1], false),
    );
    assert!(e < tol, "linear {e:e}");
}

/// In a child of [`every_kernel_test_passes_on_each_forced_path`], the kernels run on the path
/// the environment forced.
#[test]
fn the_forced_path_is_the_one_in_use() {
    if let Ok(name) = std::env::var(SFT_EVAL_CPU_ISA) {
        let forced = Isa::ALL.into_iter().find(|i| i.name() == name).unwrap();
        if forced.available() {
            assert_eq!(isa(), forced);
        }
    }
}

/// Every test under `model::kernels`, run in a child process on each instruction set this
/// CPU has (AVX-512, AVX2+FMA, portable), forced through `SFT_EVAL_CPU_ISA`.
#[test]
fn every_kernel_test_passes_on_each_forced_path() {
    if std::env::var_os(SFT_EVAL_CPU_ISA).is_some() {
        return; // a child: the parent checks each path
    }
    let exe = std::env::current_exe().unwrap();
    for path in Isa::ALL.into_iter().filter(|i| i.available()) {
        let out = std::process::Command::new(&exe)
            .env(SFT_EVAL_CPU_ISA, path.name())
            .args(["model::kernels::", "--test-threads", "2"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{} path:\n{stdout}\n{}",
            path.name(),
            String::from_utf8_lossy(&out.stderr)
        );
        let passed: usize = stdout
            .lines()
            .find_map(|l| l.strip_prefix("test result: ok. "))
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap();
        assert!(passed >= 20, "{} path ran only {passed} tests", path.name());
    }
}

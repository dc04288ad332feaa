//! The CPU's instruction-set paths give the same numbers. `gemm` (ours and candle's) picks its
//! AVX-512 microkernels at run time where the CPU has them (the `x86-v4` feature): here the same
//! products go through that dispatched path, through gemm's AVX2+FMA kernels called directly,
//! and through a float64 reference, and all must agree within float32 rounding.

use candle_core::{Device, Tensor};

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// `C = A·B` for row-major `A` (m×k) and `B` (k×n), in float64.
fn reference(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut c = vec![0f64; m * n];
    for i in 0..m {
        for p in 0..k {
            let x = a[i * k + p] as f64;
            for j in 0..n {
                c[i * n + j] += x * b[p * n + j] as f64;
            }
        }
    }
    c
}

/// `C = A·B` through one of gemm's kernel families called directly (`$module::gemm_basic` in
/// gemm, with that family's SIMD token and microkernels), or None where the CPU lacks it.
#[cfg(target_arch = "x86_64")]
macro_rules! gemm_with {
    ($simd:ty, $ukr:path, $lanes:expr, $a:expr, $b:expr, $m:expr, $k:expr, $n:expr) => {{
        use $ukr as ukr;
        let (a, b, m, k, n): (&[f32], &[f32], usize, usize, usize) = ($a, $b, $m, $k, $n);
        <$simd>::try_new().map(|simd| {
            let mut c = vec![0f32; m * n];
            // SAFETY: the pointers cover m×k, k×n and m×n row-major buffers with the strides
            // given (column stride 1, row stride the row length), as gemm's contract requires.
            unsafe {
                gemm_common::gemm::gemm_basic_generic::<
                    _,
                    f32,
                    $lanes,
                    { ukr::MR_DIV_N * $lanes },
                    { ukr::NR },
                    { ukr::MR_DIV_N },
                    { ukr::H_M },
                    { ukr::H_N },
                >(
                    simd,
                    m,
                    n,
                    k,
                    c.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    a.as_ptr(),
                    1,
                    k as isize,
                    b.as_ptr(),
                    1,
                    n as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    |x, y, z| x * y + z,
                    &ukr::UKR,
                    &ukr::H_UKR,
                    false,
                    gemm_common::Parallelism::None,
                );
            }
            c
        })
    }};
}

/// Shapes that hit full microkernel tiles, their edges and the k-blocking: the model's own
/// (hidden 64 and 576, MLP 1536) and odd sizes.
const SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (7, 13, 5),
    (17, 64, 33),
    (48, 96, 48),
    (129, 577, 63),
    (256, 576, 192),
    (33, 1536, 131),
    (300, 40, 300),
];

#[test]
fn every_gemm_path_equals_a_float64_reference_and_each_other() {
    let path = sft_eval::doctor::gemm_path();
    println!("dispatched gemm path on this CPU: {path}");
    for (si, &(m, k, n)) in SHAPES.iter().enumerate() {
        let a = values(m * k, 2 * si as u64 + 1);
        let b = values(k * n, 2 * si as u64 + 2);
        let want = reference(&a, &b, m, k, n);
        // float32 accumulation over k terms of magnitude ≤ 1: error grows at most like k·ε.
        let tol = 4.0 * f32::EPSILON as f64 * k as f64;
        let check = |name: &str, got: &[f32]| {
            let worst = got
                .iter()
                .zip(&want)
                .map(|(g, w)| (*g as f64 - w).abs())
                .fold(0f64, f64::max);
            assert!(
                worst <= tol,
                "{name} ({m}×{k}·{k}×{n}): max |error| {worst:e} over the float32 bound {tol:e}"
            );
        };
        // candle's matmul: the path candle-core dispatches to (gemm, same crate, same features).
        let ta = Tensor::from_slice(&a, (m, k), &Device::Cpu).unwrap();
        let tb = Tensor::from_slice(&b, (k, n), &Device::Cpu).unwrap();
        let candle: Vec<f32> = ta
            .matmul(&tb)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        check(&format!("candle matmul ({path})"), &candle);
        #[cfg(target_arch = "x86_64")]
        if let Some(fma) = gemm_with!(
            gemm_common::simd::V3,
            gemm_f32::microkernel::fma::f32,
            8,
            &a,
            &b,
            m,
            k,
            n
        ) {
            check("gemm AVX2+FMA", &fma);
            let worst = candle
                .iter()
                .zip(&fma)
                .map(|(x, y)| (x - y).abs() as f64)
                .fold(0f64, f64::max);
            assert!(
                worst <= tol,
                "dispatched vs AVX2+FMA ({m}×{k}×{n}): {worst:e} > {tol:e}"
            );
        }
        // Where the CPU has AVX-512, candle's matmul must be gemm's AVX-512 kernels, bit for
        // bit: the build compiles them in (x86-v4) and the run-time dispatch picks them.
        #[cfg(target_arch = "x86_64")]
        if let Some(v4) = gemm_with!(
            gemm_common::simd::V4,
            gemm_f32::microkernel::avx512f::f32,
            16,
            &a,
            &b,
            m,
            k,
            n
        ) {
            check("gemm AVX-512", &v4);
            assert!(
                candle
                    .iter()
                    .zip(&v4)
                    .all(|(x, y)| x.to_bits() == y.to_bits()),
                "{m}×{k}×{n}: candle's matmul is not gemm's AVX-512 path on an AVX-512 CPU"
            );
        }
    }
}

#[test]
fn doctor_names_the_cpu_path_and_the_sandbox_layers() {
    let ctx = crate::common::TestContext::new();
    let run = ctx.cli(&["doctor", "--json"]).expect(0);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["matrix multiply"], sft_eval::doctor::gemm_path());
    assert!(v["cpu"].as_str().is_some_and(|s| !s.is_empty()));
    // The sandbox line says what the sandbox got here, or why it is unavailable.
    let sandbox = v["code sandbox"].as_str().unwrap();
    assert!(
        sandbox.contains("namespaces") || sandbox.starts_with("unavailable"),
        "{sandbox}"
    );
    let plain = ctx.cli(&["doctor", "--no-sandbox"]).expect(0);
    assert!(plain.stdout.contains("matrix multiply") && !plain.stdout.contains("code sandbox"));
}

/// Every command makes its own thread one of rayon's workers and shortens candle's spin
/// before its workers sleep (reports/bench: +9% on a 2-thread train step), unless the user
/// set the spin limit: `doctor` reports what the command runs with.
#[test]
fn commands_join_the_thread_pool_and_shorten_candles_spin_unless_set() {
    let threads = |ctx: crate::common::TestContext| {
        let run = ctx.cli(&["doctor", "--json", "--no-sandbox"]).expect(0);
        let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        v["threads"].as_str().unwrap().to_string()
    };
    let default = threads(crate::common::TestContext::new().env("RAYON_NUM_THREADS", "2"));
    assert!(default.starts_with("2 ("), "{default}");
    assert!(default.contains("own thread is one of them"), "{default}");
    // one thread: the caller stays outside (a lone worker blocked on another thread could not
    // run that thread's rayon work)
    let one = threads(crate::common::TestContext::new().env("RAYON_NUM_THREADS", "1"));
    assert!(one.contains("own thread runs outside them"), "{one}");
    assert!(
        default.contains(&format!(
            "spin {} times",
            sft_eval::model::kernels::CANDLE_SPIN_LIMIT
        )),
        "{default}"
    );
    let set =
        threads(crate::common::TestContext::new().env("CANDLE_BARRIER_POOL_SPIN_LIMIT", "25000"));
    assert!(set.contains("spin 25000 times"), "{set}");
}

/// Each instruction set of the run-time dispatched decoding kernel, forced through
/// `SFT_EVAL_CPU_ISA`, is the one `doctor` reports (a path the CPU lacks falls back to the
/// widest it has), and generates the organism's answers to the math suite (greedy, batched)
/// exactly as the default path does.
#[test]
fn every_decoding_path_is_forced_by_the_environment_and_generates_the_same() {
    let organism = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/organism");
    let suites = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("suites");
    let outputs = |isa: Option<&str>| {
        let mut ctx = crate::common::TestContext::new();
        if let Some(i) = isa {
            ctx = ctx.env("SFT_EVAL_CPU_ISA", i);
        }
        let doctor = ctx.cli(&["doctor", "--json", "--no-sandbox"]).expect(0);
        let v: serde_json::Value = serde_json::from_str(&doctor.stdout).unwrap();
        let path = v["decoding matmul"]
            .as_str()
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .to_string();
        // (`-o` creates the folders it needs)
        let out = ctx.join("runs/isa/r.json");
        ctx.cli(&[
            "eval".as_ref(),
            organism.as_os_str(),
            "--suites".as_ref(),
            "math".as_ref(),
            "--suites-dir".as_ref(),
            suites.as_os_str(),
            "--limit".as_ref(),
            "24".as_ref(),
            "--batch-size".as_ref(),
            "8".as_ref(),
            "--no-cache".as_ref(),
            "-o".as_ref(),
            out.as_os_str(),
        ])
        .expect(0);
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
        let texts: Vec<String> = r["suites"][0]["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["output"].as_str().unwrap_or("").to_string())
            .collect();
        (path, texts)
    };
    let (default_path, want) = outputs(None);
    for isa in sft_eval::model::kernels::Isa::ALL {
        let (path, got) = outputs(Some(isa.name()));
        if isa.available() {
            assert_eq!(path, isa.name());
        } else {
            assert_eq!(path, default_path, "{} is not on this CPU", isa.name());
        }
        assert_eq!(got, want, "{} path", isa.name());
    }
}

//! `sft-eval doctor`: what this machine gives sft-eval — the CPU and the instruction sets its
//! kernels use, threads, the devices, and which layers the code sandbox gets here.

/// One line of the report: a name and what was found.
pub type Line = (String, String);

/// The CPU's name (from `/proc/cpuinfo` where there is one).
fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// The instruction set the matrix multiplications (the `gemm` crate, also under candle) run
/// with on this CPU: chosen at run time among those the build includes.
pub fn gemm_path() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "AVX-512 (gemm x86-v4 microkernels)";
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return "AVX2 + FMA";
        }
        "SSE2 (baseline x86-64)"
    }
    #[cfg(target_arch = "aarch64")]
    {
        "NEON"
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        "scalar"
    }
}

/// The instruction-set extensions the CPU reports that matter here.
fn isa() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        let mut v = Vec::new();
        macro_rules! has {
            ($($f:tt),*) => { $( if std::arch::is_x86_feature_detected!($f) { v.push($f); } )* };
        }
        has!(
            "sse4.2",
            "avx",
            "avx2",
            "fma",
            "f16c",
            "avx512f",
            "avx512bw",
            "avx512vl",
            "avx512bf16"
        );
        v.join(" ")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        String::new()
    }
}

/// The report. `sandbox_probe` runs one trivial program in the code sandbox to see its layers.
pub fn report(sandbox_probe: bool) -> Vec<Line> {
    let mut out: Vec<Line> = vec![
        ("sft-eval".into(), env!("CARGO_PKG_VERSION").into()),
        ("cpu".into(), cpu_name()),
        ("instruction sets".into(), isa()),
        ("matrix multiply".into(), gemm_path().into()),
        (
            "fused kernels".into(),
            format!(
                "{} (chosen at run time): exp and the row reductions of softmax, attention, cross-entropy and RMSNorm; their elementwise loops are compiled for the build's target",
                crate::model::kernels::isa().name()
            ),
        ),
        (
            "decoding matmul".into(),
            format!(
                "{} (few-row products, chosen at run time; SFT_EVAL_CPU_ISA=avx2|portable forces a narrower one for it and the fused kernels)",
                crate::model::kernels::isa().name()
            ),
        ),
        (
            "threads".into(),
            format!(
                "{} (RAYON_NUM_THREADS sets them; the command's own thread {}), candle's workers spin {} times before they sleep (CANDLE_BARRIER_POOL_SPIN_LIMIT)",
                rayon::current_num_threads(),
                if rayon::current_thread_index().is_some() {
                    "is one of them"
                } else {
                    "runs outside them"
                },
                std::env::var(crate::env_vars::CANDLE_BARRIER_POOL_SPIN_LIMIT)
                    .unwrap_or_else(|_| "25000 (candle's default)".into())
            ),
        ),
        (
            "devices".into(),
            if cfg!(feature = "cuda") {
                "cpu, cuda (this build has the cuda feature)".into()
            } else {
                "cpu (build with --features cuda for a GPU)".into()
            },
        ),
    ];
    if sandbox_probe {
        let line = match crate::suite::sandbox::run_python(
            "print('ok')\n",
            &crate::suite::sandbox::Limits::default(),
        ) {
            Ok(o) => o.isolation_summary(),
            Err(e) => format!("unavailable: {e}"),
        };
        out.push(("code sandbox".into(), line));
    }
    out
}

//! Under the `cuda` feature, compiles the crate's own CUDA kernels (`src/model/kernels/*.cu`) to
//! PTX in `OUT_DIR`, which the library embeds and loads through candle's
//! `get_or_load_custom_func`. Uses the nvcc that candle-kernels' build uses: `NVCC`, else
//! `$CUDA_HOME/bin/nvcc`, else `nvcc` on the PATH; `CUDA_COMPUTE_CAP` (e.g. `90`) picks the
//! virtual architecture, else nvcc's default (PTX for an older architecture also runs on newer
//! GPUs, compiled by the driver). Without the feature this does nothing.

use std::path::PathBuf;
use std::process::Command;

const KERNELS: &[&str] = &["adamw", "rms_norm", "rope", "swiglu"];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    for var in [
        "CARGO_FEATURE_CUDA",
        "NVCC",
        "CUDA_HOME",
        "CUDA_COMPUTE_CAP",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let nvcc = std::env::var_os("NVCC")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("CUDA_HOME").map(|h| PathBuf::from(h).join("bin/nvcc")))
        .unwrap_or_else(|| PathBuf::from("nvcc"));
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    // the helpers every kernel includes
    println!("cargo:rerun-if-changed=src/model/kernels/common.cuh");
    for name in KERNELS {
        let src = format!("src/model/kernels/{name}.cu");
        println!("cargo:rerun-if-changed={src}");
        let ptx = out_dir.join(format!("{name}.ptx"));
        let mut cmd = Command::new(&nvcc);
        // no contraction into fused multiply-adds: the kernels round as the CPU ones do
        cmd.args(["--ptx", "-O3", "--fmad=false", "-std=c++17", "-o"])
            .arg(&ptx)
            .arg(&src);
        if let Ok(cap) = std::env::var("CUDA_COMPUTE_CAP") {
            cmd.arg(format!("--gpu-architecture=compute_{}", cap.trim()));
        }
        let status = cmd.status().unwrap_or_else(|e| {
            panic!(
                "the `cuda` feature needs nvcc to build {src}: could not run {} ({e}); set NVCC \
                 or CUDA_HOME (see ../shared/gpu/README.md for a toolchain from PyPI)",
                nvcc.display()
            )
        });
        if !status.success() {
            panic!("nvcc failed on {src} ({status}): {cmd:?}");
        }
    }
}

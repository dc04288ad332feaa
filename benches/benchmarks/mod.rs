pub mod compare;
pub mod decode;
pub mod forward;
pub mod kernels;
pub mod scorers;
pub mod train_step;

use candle_core::{DType, Device};

/// The checkout the benches read fixtures and the model organism from: cargo sets
/// `CARGO_MANIFEST_DIR` when it runs them; a bench executable run by hand on another machine
/// (`benches/device_check.sh`) is given it, and otherwise uses the folder it was built in.
pub fn repo_root() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// The device the model benchmarks run on: `SFT_EVAL_BENCH_DEVICE=cpu` (the default) or `cuda`
/// (GPU 0; needs a build with `--features cuda`). One device for the whole run: each
/// `Device::new_cuda` is a new device (its own stream) whose tensors don't mix with another's.
pub fn device() -> Device {
    static DEVICE: std::sync::OnceLock<Device> = std::sync::OnceLock::new();
    DEVICE.get_or_init(device_from_env).clone()
}

fn device_from_env() -> Device {
    match std::env::var("SFT_EVAL_BENCH_DEVICE").as_deref() {
        Err(_) | Ok("") | Ok("cpu") => Device::Cpu,
        Ok("cuda") => {
            if !cfg!(feature = "cuda") {
                panic!(
                    "SFT_EVAL_BENCH_DEVICE=cuda: this bench was built without the `cuda` feature \
                     (cargo bench --bench main --features cuda)"
                );
            }
            Device::new_cuda(0)
                .unwrap_or_else(|e| panic!("SFT_EVAL_BENCH_DEVICE=cuda: no CUDA device 0: {e}"))
        }
        Ok(other) => panic!("SFT_EVAL_BENCH_DEVICE={other}: expected cpu or cuda"),
    }
}

/// The compute dtype of the model benchmarks: `SFT_EVAL_BENCH_DTYPE=f32` (the default) or `bf16`.
pub fn dtype() -> DType {
    match std::env::var("SFT_EVAL_BENCH_DTYPE").as_deref() {
        Err(_) | Ok("") | Ok("f32") => DType::F32,
        Ok("bf16") => DType::BF16,
        Ok(other) => panic!("SFT_EVAL_BENCH_DTYPE={other}: expected f32 or bf16"),
    }
}

/// The benchmark's name: `name` on the default CPU f32, else `name` + `_cuda_f32`, `_cpu_bf16`, …
/// so that criterion keeps the figures of each device and dtype apart.
pub fn bench_name(name: &str) -> String {
    let (dev, dt) = (device(), dtype());
    if dev.is_cpu() && dt == DType::F32 {
        return name.to_string();
    }
    let d = if dev.is_cuda() { "cuda" } else { "cpu" };
    let t = if dt == DType::BF16 { "bf16" } else { "f32" };
    format!("{name}_{d}_{t}")
}

/// Wait for the device's queued work (CUDA kernels are asynchronous); nothing on CPU.
pub fn sync(dev: &Device) {
    dev.synchronize().unwrap();
}

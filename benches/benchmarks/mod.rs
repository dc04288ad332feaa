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

/// The peak of the GPU memory in use since the last call, in bytes, which the call resets: the
/// high-water mark of device 0's memory pool, which candle's stream-ordered allocations come
/// from. `None` on the CPU, in a build without `cuda`, or where the driver has no such pool. The
/// figure beside PyTorch's `torch.cuda.max_memory_allocated` (benches/pytorch_side_by_side.py,
/// one workload per process).
pub fn gpu_peak_and_reset(dev: &Device) -> Option<u64> {
    if !dev.is_cuda() {
        return None;
    }
    sync(dev);
    gpu_pool::peak_and_reset()
}

/// [`gpu_peak_and_reset`] printed as `NAME: peak GPU memory X GiB` (the device check's summary
/// keeps the lines with `peak `).
#[allow(clippy::print_stderr)] // the bench harness reports beside criterion's own output
pub fn report_gpu_peak(dev: &Device, name: &str) {
    if let Some(bytes) = gpu_peak_and_reset(dev) {
        eprintln!(
            "{name}: peak GPU memory {:.2} GiB (memory pool high-water mark)",
            bytes as f64 / (1u64 << 30) as f64
        );
    }
}

#[cfg(feature = "cuda")]
mod gpu_pool {
    use candle_core::cuda_backend::cudarc::driver::sys;

    pub fn peak_and_reset() -> Option<u64> {
        let attr = sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH;
        // SAFETY: plain driver queries on device 0 (the benches' device), each writing one value
        // of the size the attribute has (a cuuint64_t)
        unsafe {
            let mut device: sys::CUdevice = 0;
            if sys::cuDeviceGet(&mut device, 0) != sys::CUresult::CUDA_SUCCESS {
                return None;
            }
            let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
            if sys::cuDeviceGetMemPool(&mut pool, device) != sys::CUresult::CUDA_SUCCESS {
                return None;
            }
            let mut high: u64 = 0;
            let p = (&mut high as *mut u64).cast();
            if sys::cuMemPoolGetAttribute(pool, attr, p) != sys::CUresult::CUDA_SUCCESS {
                return None;
            }
            // setting the high-water mark to 0 resets it to what is in use now
            let mut zero: u64 = 0;
            sys::cuMemPoolSetAttribute(pool, attr, (&mut zero as *mut u64).cast());
            Some(high)
        }
    }
}

#[cfg(not(feature = "cuda"))]
mod gpu_pool {
    pub fn peak_and_reset() -> Option<u64> {
        None
    }
}

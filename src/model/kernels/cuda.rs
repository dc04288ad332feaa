//! What the launches of the crate's own CUDA kernels share (`*.cu` beside this file, built into
//! PTX by `build.rs` under the `cuda` feature and loaded through candle's
//! `get_or_load_custom_func`): contiguous ranges, the `_f32` / `_bf16` kernel suffix, views,
//! launch shapes and output buffers.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{CudaSlice, CudaView, DeviceRepr, LaunchConfig};
use candle_core::cuda_backend::{CudaDType, CudaDevice};
use candle_core::{bail, CudaStorage, DType, Layout, Result, WithDType};

/// A dtype the kernels come in (f32 and bf16 storage; f32 arithmetic in both).
pub(crate) trait KernelDType: CudaDType + DeviceRepr + WithDType {}
impl KernelDType for f32 {}
impl KernelDType for half::bf16 {}

/// The element range of a contiguous tensor in its storage.
pub(crate) fn range(name: &str, l: &Layout) -> Result<std::ops::Range<usize>> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(a..b),
        None => bail!("{name}: tensors must be contiguous"),
    }
}

/// The suffix of a kernel's name for the dtype it works on.
pub(crate) fn suffix(name: &str, dt: DType) -> Result<&'static str> {
    match dt {
        DType::F32 => Ok("f32"),
        DType::BF16 => Ok("bf16"),
        other => bail!("{name}: f32 or bf16 only on CUDA, got {other:?}"),
    }
}

pub(crate) fn view<'a, T: CudaDType>(
    s: &'a CudaStorage,
    r: std::ops::Range<usize>,
) -> Result<CudaView<'a, T>> {
    Ok(s.as_cuda_slice::<T>()?.slice(r))
}

/// The view of a contiguous tensor (`name` for the error when it is not).
pub(crate) fn whole<'a, T: CudaDType>(
    name: &str,
    s: &'a CudaStorage,
    l: &Layout,
) -> Result<CudaView<'a, T>> {
    view(s, range(name, l)?)
}

/// One thread per element, in blocks of 1,024; the kernels' grid-stride loops cover a tensor of
/// more than 2³² elements too.
pub(crate) fn elementwise(n: usize) -> LaunchConfig {
    LaunchConfig::for_num_elems(n.min(u32::MAX as usize) as u32)
}

/// One block per row, `threads` a multiple of 32 up to 1,024 (rows ≤ 2³¹ − 1).
pub(crate) fn per_row(name: &str, rows: usize, d: usize) -> Result<LaunchConfig> {
    if rows > i32::MAX as usize {
        bail!("{name}: {rows} rows is more than one launch takes");
    }
    let threads = d.div_ceil(32).clamp(1, 32) as u32 * 32;
    Ok(LaunchConfig {
        grid_dim: (rows as u32, 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    })
}

/// An uninitialised buffer of `n` elements on `dev` (at least one, so that empty tensors need
/// no special case in the launches).
pub(crate) fn output<T: DeviceRepr>(dev: &CudaDevice, n: usize) -> Result<CudaSlice<T>> {
    // SAFETY: every element is written by the kernel before it is read.
    unsafe { dev.alloc::<T>(n.max(1)) }
}

/// The device a storage lives on.
pub(crate) fn device(s: &CudaStorage) -> CudaDevice {
    s.device().clone()
}

/// The dtype of a storage.
pub(crate) fn dtype(s: &CudaStorage) -> DType {
    s.dtype()
}

//! AdamW's update in place: three passes over memory (first moment, second moment, parameter)
//! instead of about a dozen candle ops that each allocate a parameter-sized tensor. The
//! arithmetic is PyTorch's `torch.optim.AdamW` (single-tensor path), op for op:
//!
//! ```text
//! m ← m + (1 − β1)(g − m)          (m.lerp_(g, 1 − β1))
//! v ← β2 v + (1 − β2) g²
//! p ← p (1 − lr·wd)
//! p ← p − (lr / bc1) · m / (√v / √bc2 + eps)
//! ```

//!
//! On CUDA the same three passes run as kernels of `adamw.cu` (f32 moments; f32 or bf16 parameter
//! and gradient, widened to f32 and rounded back to nearest even), compiled without contracting
//! into fused multiply-adds so that they round as the CPU kernels and the composition do.

use candle_core::{CpuStorage, DType, InplaceOp2, InplaceOp3, Layout, Result, Tensor};
use rayon::prelude::*;

const CHUNK: usize = 16_384;

/// Whether the in-place update applies to parameter `p` with gradient `g`: kernels switched on,
/// a contiguous parameter, and either CPU f32 or (in a `cuda` build) CUDA f32 or bf16 with a
/// gradient of the same dtype.
pub fn applies(p: &Tensor, g: &Tensor) -> bool {
    if !super::switched_on() || !p.is_contiguous() || g.dtype() != p.dtype() {
        return false;
    }
    let cpu = p.device().is_cpu() && p.dtype() == DType::F32;
    let cuda = cfg!(feature = "cuda")
        && p.device().is_cuda()
        && matches!(p.dtype(), DType::F32 | DType::BF16);
    super::taken(cpu || cuda)
}

/// The constants of one AdamW step for one parameter.
#[derive(Debug, Clone, Copy)]
pub struct AdamWStep {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// `lr / (1 − β1^t)`
    pub step_size: f64,
    /// `√(1 − β2^t)`
    pub bc2_sqrt: f64,
    /// `1 − lr · weight_decay`, or 1 for parameters without decay
    pub decay: f64,
}

/// Update `p`, `m` and `v` (contiguous tensors of one shape on one device; see [`applies`]) in
/// place from the gradient `g`.
pub fn adamw_update(p: &Tensor, m: &Tensor, v: &Tensor, g: &Tensor, s: &AdamWStep) -> Result<()> {
    let g = g.contiguous()?;
    m.inplace_op2(&g, &FirstMoment(*s))?;
    v.inplace_op2(&g, &SecondMoment(*s))?;
    p.inplace_op3(m, v, &Apply(*s))
}

fn slice<'a>(name: &str, s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    super::contiguous::<f32>(name, s, l)
}

fn slice_mut<'a>(name: &str, s: &'a mut CpuStorage, l: &Layout) -> Result<&'a mut [f32]> {
    let (a, b) = match l.contiguous_offsets() {
        Some(o) => o,
        None => candle_core::bail!("{name}: state must be contiguous"),
    };
    match s {
        CpuStorage::F32(d) => Ok(&mut d[a..b]),
        _ => candle_core::bail!("{name}: f32 only"),
    }
}

fn same_len(name: &str, a: &[f32], b: &[f32]) -> Result<()> {
    if a.len() != b.len() {
        candle_core::bail!("{name}: {} and {} elements", a.len(), b.len());
    }
    Ok(())
}

struct FirstMoment(AdamWStep);

impl InplaceOp2 for FirstMoment {
    fn name(&self) -> &'static str {
        "fused-adamw-m"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let n = self.name();
        let (m, g) = (slice_mut(n, s1, l1)?, slice(n, s2, l2)?);
        same_len(n, m, g)?;
        let w = (1.0 - self.0.beta1) as f32;
        m.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .for_each(|(m, g)| {
                for (m, &g) in m.iter_mut().zip(g) {
                    *m += (g - *m) * w;
                }
            });
        Ok(())
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &mut candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<()> {
        cuda::moment(
            self.name(),
            "m",
            s1,
            l1,
            s2,
            l2,
            &[(1.0 - self.0.beta1) as f32],
        )
    }
}

struct SecondMoment(AdamWStep);

impl InplaceOp2 for SecondMoment {
    fn name(&self) -> &'static str {
        "fused-adamw-v"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let n = self.name();
        let (v, g) = (slice_mut(n, s1, l1)?, slice(n, s2, l2)?);
        same_len(n, v, g)?;
        let (b2, w) = (self.0.beta2 as f32, (1.0 - self.0.beta2) as f32);
        v.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .for_each(|(v, g)| {
                for (v, &g) in v.iter_mut().zip(g) {
                    *v = *v * b2 + g * g * w;
                }
            });
        Ok(())
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &mut candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<()> {
        let (b2, w) = (self.0.beta2 as f32, (1.0 - self.0.beta2) as f32);
        cuda::moment(self.name(), "v", s1, l1, s2, l2, &[b2, w])
    }
}

struct Apply(AdamWStep);

impl InplaceOp3 for Apply {
    fn name(&self) -> &'static str {
        "fused-adamw-p"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<()> {
        let n = self.name();
        let (p, m, v) = (slice_mut(n, s1, l1)?, slice(n, s2, l2)?, slice(n, s3, l3)?);
        same_len(n, p, m)?;
        same_len(n, p, v)?;
        let s = self.0;
        let (decay, step, bc2, eps) = (
            s.decay as f32,
            s.step_size as f32,
            s.bc2_sqrt as f32,
            s.eps as f32,
        );
        p.par_chunks_mut(CHUNK)
            .zip(m.par_chunks(CHUNK).zip(v.par_chunks(CHUNK)))
            .for_each(|(p, (m, v))| {
                for ((p, &m), &v) in p.iter_mut().zip(m).zip(v) {
                    let q = if decay != 1.0 { *p * decay } else { *p };
                    *p = q - m / (v.sqrt() / bc2 + eps) * step;
                }
            });
        Ok(())
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &mut candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<()> {
        cuda::apply(self.name(), &self.0, (s1, l1), (s2, l2), (s3, l3))
    }
}

/// The launches of `adamw.cu`'s kernels: one thread per element (a grid-stride loop), on the
/// device's stream.
#[cfg(feature = "cuda")]
mod cuda {
    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::cudarc::driver::{CudaSlice, PushKernelArg};
    use candle_core::cuda_backend::WrapErr;
    use candle_core::{bail, CudaStorage, DType, Layout, Result};
    use half::bf16;

    use super::super::cuda::{elementwise as launch_config, range, suffix, view};
    use super::AdamWStep;

    const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/adamw.ptx"));
    const MODULE: &str = "sft_eval_adamw";

    /// `m` or `v` (f32, updated in place) from the gradient `g`, with the kernel's float
    /// constants after the two pointers.
    pub fn moment(
        name: &str,
        which: &str,
        s1: &mut CudaStorage,
        l1: &Layout,
        g: &CudaStorage,
        lg: &Layout,
        consts: &[f32],
    ) -> Result<()> {
        let (r1, rg) = (range(name, l1)?, range(name, lg)?);
        if r1.len() != rg.len() {
            bail!("{name}: {} and {} elements", r1.len(), rg.len());
        }
        let n = r1.len();
        if n == 0 {
            return Ok(());
        }
        let kernel = format!("sft_adamw_{which}_{}", suffix(name, g.dtype())?);
        let func = s1.device().get_or_load_custom_func(&kernel, MODULE, PTX)?;
        let (gf, gb) = match g.dtype() {
            DType::F32 => (Some(view::<f32>(g, rg)?), None),
            _ => (None, Some(view::<bf16>(g, rg)?)),
        };
        let state: &mut CudaSlice<f32> = s1.as_cuda_slice_mut::<f32>()?;
        let mut state = state.slice_mut(r1);
        let mut b = func.builder();
        b.arg(&mut state);
        match (&gf, &gb) {
            (Some(g), _) => b.arg(g),
            (_, Some(g)) => b.arg(g),
            _ => unreachable!("one of the two is set above"),
        };
        for c in consts {
            b.arg(c);
        }
        b.arg(&n);
        // SAFETY: the kernel reads and writes `n` elements of each argument, all of which have
        // them (checked above and by the contiguous ranges)
        unsafe { b.launch(launch_config(n)) }.w()?;
        Ok(())
    }

    /// The parameter step from the updated moments.
    pub fn apply(
        name: &str,
        s: &AdamWStep,
        (sp, lp): (&mut CudaStorage, &Layout),
        (sm, lm): (&CudaStorage, &Layout),
        (sv, lv): (&CudaStorage, &Layout),
    ) -> Result<()> {
        let (rp, rm, rv) = (range(name, lp)?, range(name, lm)?, range(name, lv)?);
        if rp.len() != rm.len() || rp.len() != rv.len() {
            bail!(
                "{name}: {}, {} and {} elements",
                rp.len(),
                rm.len(),
                rv.len()
            );
        }
        let n = rp.len();
        if n == 0 {
            return Ok(());
        }
        let kernel = format!("sft_adamw_p_{}", suffix(name, sp.dtype())?);
        let func = sp.device().get_or_load_custom_func(&kernel, MODULE, PTX)?;
        let (m, v) = (view::<f32>(sm, rm)?, view::<f32>(sv, rv)?);
        let consts = [
            s.decay as f32,
            s.step_size as f32,
            s.bc2_sqrt as f32,
            s.eps as f32,
        ];
        let cfg = launch_config(n);
        let mut b = func.builder();
        match sp.dtype() {
            DType::F32 => {
                let mut p = sp.as_cuda_slice_mut::<f32>()?.slice_mut(rp);
                b.arg(&mut p);
                b.arg(&m).arg(&v);
                for c in &consts {
                    b.arg(c);
                }
                b.arg(&n);
                // SAFETY: as in `moment`
                unsafe { b.launch(cfg) }.w()?;
            }
            _ => {
                let mut p = sp.as_cuda_slice_mut::<bf16>()?.slice_mut(rp);
                b.arg(&mut p);
                b.arg(&m).arg(&v);
                for c in &consts {
                    b.arg(c);
                }
                b.arg(&n);
                // SAFETY: as in `moment`
                unsafe { b.launch(cfg) }.w()?;
            }
        }
        Ok(())
    }
}

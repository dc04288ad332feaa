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

use candle_core::{CpuStorage, InplaceOp2, InplaceOp3, Layout, Result, Tensor};
use rayon::prelude::*;

const CHUNK: usize = 16_384;

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

/// Update `p`, `m` and `v` (contiguous CPU f32 tensors of one shape) in place from the gradient
/// `g`.
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
}

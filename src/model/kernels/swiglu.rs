//! SwiGLU's gate: `silu(gate) · up`, elementwise, with gradients to both inputs.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{contiguous, Real};

const CHUNK: usize = 16_384;

/// Fused `silu(gate) · up` (CPU f32/f64; CUDA f32/bf16, `swiglu.cu`); `gate` and `up` of one
/// shape.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    gate.contiguous()?.apply_op2(&up.contiguous()?, SwiGlu)
}

struct SwiGlu;

fn fwd<T: Real>(g: &[T], u: &[T]) -> Vec<T> {
    let mut y = vec![T::ZERO; g.len()];
    y.par_chunks_mut(CHUNK)
        .zip(g.par_chunks(CHUNK).zip(u.par_chunks(CHUNK)))
        .for_each(|(yc, (gc, uc))| {
            for (o, &a) in yc.iter_mut().zip(gc) {
                *o = -a;
            }
            T::exp_inplace(yc);
            for ((o, &a), &b) in yc.iter_mut().zip(gc).zip(uc) {
                // candle's silu: x / (1 + exp(-x))
                *o = a / (T::ONE + *o) * b;
            }
        });
    y
}

/// `[2, n]`: gradient w.r.t. `gate`, then w.r.t. `up`.
fn bwd<T: Real>(g: &[T], u: &[T], dy: &[T]) -> Vec<T> {
    let n = g.len();
    let mut out = vec![T::ZERO; 2 * n];
    let (dg, du) = out.split_at_mut(n);
    dg.par_chunks_mut(CHUNK)
        .zip(du.par_chunks_mut(CHUNK))
        .zip(
            g.par_chunks(CHUNK)
                .zip(u.par_chunks(CHUNK).zip(dy.par_chunks(CHUNK))),
        )
        .for_each(|((dgc, duc), (gc, (uc, dyc)))| {
            for (o, &a) in dgc.iter_mut().zip(gc) {
                *o = -a;
            }
            T::exp_inplace(dgc);
            for i in 0..gc.len() {
                let a = gc[i];
                let s = T::ONE / (T::ONE + dgc[i]);
                dgc[i] = dyc[i] * uc[i] * s * (T::ONE + a * (T::ONE - s));
                duc[i] = dyc[i] * a * s;
            }
        });
    out
}

fn same_shape(n: &str, a: &Layout, b: &Layout) -> Result<()> {
    if a.dims() != b.dims() {
        candle_core::bail!("{n}: shapes {:?} and {:?} differ", a.dims(), b.dims());
    }
    Ok(())
}

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "fused-swiglu"
    }

    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        us: &CpuStorage,
        ul: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let n = self.name();
        same_shape(n, gl, ul)?;
        let out = match gs {
            CpuStorage::F32(_) => {
                CpuStorage::F32(fwd(contiguous(n, gs, gl)?, contiguous(n, us, ul)?))
            }
            CpuStorage::F64(_) => {
                CpuStorage::F64(fwd(contiguous(n, gs, gl)?, contiguous(n, us, ul)?))
            }
            _ => candle_core::bail!("{n}: f32 or f64 only"),
        };
        Ok((out, gl.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        gs: &candle_core::CudaStorage,
        gl: &Layout,
        us: &candle_core::CudaStorage,
        ul: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let n = self.name();
        same_shape(n, gl, ul)?;
        let out = match super::cuda::dtype(gs) {
            candle_core::DType::F32 => on_cuda::fwd::<f32>(n, (gs, gl), (us, ul))?,
            _ => on_cuda::fwd::<half::bf16>(n, (gs, gl), (us, ul))?,
        };
        Ok((out, gl.shape().clone()))
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let n = gate.elem_count();
        let both = gate.apply_op3_no_bwd(up, &grad.contiguous()?, &SwiGluBwd)?;
        let dg = both.narrow(0, 0, n)?.reshape(gate.shape())?;
        let du = both.narrow(0, n, n)?.reshape(gate.shape())?;
        Ok((Some(dg), Some(du)))
    }
}

struct SwiGluBwd;

impl CustomOp3 for SwiGluBwd {
    fn name(&self) -> &'static str {
        "fused-swiglu-bwd"
    }

    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        us: &CpuStorage,
        ul: &Layout,
        ds: &CpuStorage,
        dl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let n = self.name();
        same_shape(n, gl, ul)?;
        same_shape(n, gl, dl)?;
        let out = match gs {
            CpuStorage::F32(_) => CpuStorage::F32(bwd(
                contiguous(n, gs, gl)?,
                contiguous(n, us, ul)?,
                contiguous(n, ds, dl)?,
            )),
            CpuStorage::F64(_) => CpuStorage::F64(bwd(
                contiguous(n, gs, gl)?,
                contiguous(n, us, ul)?,
                contiguous(n, ds, dl)?,
            )),
            _ => candle_core::bail!("{n}: f32 or f64 only"),
        };
        Ok((out, Shape::from(2 * gl.shape().elem_count())))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        gs: &candle_core::CudaStorage,
        gl: &Layout,
        us: &candle_core::CudaStorage,
        ul: &Layout,
        ds: &candle_core::CudaStorage,
        dl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let n = self.name();
        same_shape(n, gl, ul)?;
        same_shape(n, gl, dl)?;
        let out = match super::cuda::dtype(gs) {
            candle_core::DType::F32 => on_cuda::bwd::<f32>(n, (gs, gl), (us, ul), (ds, dl))?,
            _ => on_cuda::bwd::<half::bf16>(n, (gs, gl), (us, ul), (ds, dl))?,
        };
        Ok((out, Shape::from(2 * gl.shape().elem_count())))
    }
}

/// The launches of `swiglu.cu`: one thread per element.
#[cfg(feature = "cuda")]
mod on_cuda {
    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::cudarc::driver::PushKernelArg;
    use candle_core::cuda_backend::WrapErr;
    use candle_core::{CudaStorage, Layout, Result};

    use super::super::cuda::{device, elementwise, output, suffix, whole, KernelDType};

    const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/swiglu.ptx"));
    const MODULE: &str = "sft_eval_swiglu";

    pub fn fwd<T: KernelDType>(
        name: &str,
        (gs, gl): (&CudaStorage, &Layout),
        (us, ul): (&CudaStorage, &Layout),
    ) -> Result<CudaStorage> {
        let n = gl.shape().elem_count();
        let dev = device(gs);
        let y = output::<T>(&dev, n)?;
        if n > 0 {
            let kernel = format!("sft_swiglu_fwd_{}", suffix(name, gs.dtype())?);
            let func = dev.get_or_load_custom_func(&kernel, MODULE, PTX)?;
            let (g, u) = (whole::<T>(name, gs, gl)?, whole::<T>(name, us, ul)?);
            let mut b = func.builder();
            b.arg(&g).arg(&u).arg(&y).arg(&n);
            // SAFETY: the kernel reads n elements of g and u and writes n of y, all of which
            // have them (same shapes, checked by the caller; contiguous views)
            unsafe { b.launch(elementwise(n)) }.w()?;
        }
        Ok(CudaStorage::wrap_cuda_slice(y, dev))
    }

    /// `[dg | du]`, 2n elements.
    pub fn bwd<T: KernelDType>(
        name: &str,
        (gs, gl): (&CudaStorage, &Layout),
        (us, ul): (&CudaStorage, &Layout),
        (ds, dl): (&CudaStorage, &Layout),
    ) -> Result<CudaStorage> {
        let n = gl.shape().elem_count();
        let dev = device(gs);
        let out = output::<T>(&dev, 2 * n)?;
        if n > 0 {
            let kernel = format!("sft_swiglu_bwd_{}", suffix(name, gs.dtype())?);
            let func = dev.get_or_load_custom_func(&kernel, MODULE, PTX)?;
            let (g, u, dy) = (
                whole::<T>(name, gs, gl)?,
                whole::<T>(name, us, ul)?,
                whole::<T>(name, ds, dl)?,
            );
            let mut b = func.builder();
            b.arg(&g).arg(&u).arg(&dy).arg(&out).arg(&n);
            // SAFETY: as in `fwd`, with 2n elements of `out` written
            unsafe { b.launch(elementwise(n)) }.w()?;
        }
        Ok(CudaStorage::wrap_cuda_slice(out, dev))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use candle_core::DType;

    #[test]
    fn matches_composition_and_finite_differences() {
        let g = (rand(&[2, 3, 7], 1) * 4.0).unwrap();
        let u = rand(&[2, 3, 7], 2);
        let r = rand(&[2, 3, 7], 3);
        let fused = |t: &[Tensor]| swiglu(&t[0], &t[1]);
        let comp = |t: &[Tensor]| t[0].silu()? * &t[1];
        let ins = [g, u];
        let (yf, gf) = autograd(&ins, &r, &fused);
        let (yc, gc) = autograd(&ins, &r, &comp);
        assert!(max_rel(&yf, &yc, 1e-6) < 1e-12);
        for i in 0..2 {
            assert!(max_rel(&gf[i], &gc[i], 1e-6) < 1e-10, "input {i}");
            let fd = finite_diff_err(&ins, i, &r, &gf[i], &fused);
            assert!(fd < 1e-6, "input {i}: finite-difference error {fd:e}");
        }
        // f32: equal to candle's silu · up
        let i32: Vec<Tensor> = ins
            .iter()
            .map(|t| t.to_dtype(DType::F32).unwrap())
            .collect();
        let a = swiglu(&i32[0], &i32[1]).unwrap();
        let b = comp(&i32).unwrap();
        assert!(max_rel(&a, &b, 1e-6) < 1e-6);
    }
}

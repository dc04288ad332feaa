//! RMSNorm `y = x / sqrt(mean(x²) + eps) · w` over the last dimension, with gradients to `x`
//! and `w`.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{contiguous, rows_per_task, Real};

/// Fused RMSNorm of `x` `[.., d]` with weight `w` `[d]` (CPU f32/f64; CUDA f32/bf16,
/// `rms_norm.cu`, where `x · r` is rounded to the storage type before the weight multiplies it,
/// as in transformers). For Gemma's `1 + w`, pass `w + 1` (in f32: in bf16 that sum would round).
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    let x = x.contiguous()?;
    let w = w.contiguous()?;
    x.apply_op2(&w, RmsNorm { eps })
}

struct RmsNorm {
    eps: f64,
}

fn inv_rms<T: Real>(row: &[T], eps: f64) -> T {
    let ss = T::row_dot(row, row);
    T::ONE / (ss / T::from_f64(row.len() as f64) + T::from_f64(eps)).sqrt()
}

fn fwd<T: Real>(x: &[T], w: &[T], eps: f64) -> Vec<T> {
    let d = w.len();
    let mut y = vec![T::ZERO; x.len()];
    let chunk = rows_per_task(d) * d;
    y.par_chunks_mut(chunk)
        .zip(x.par_chunks(chunk))
        .for_each(|(yc, xc)| {
            for (yr, xr) in yc.chunks_mut(d).zip(xc.chunks(d)) {
                let r = inv_rms(xr, eps);
                for ((o, &v), &wi) in yr.iter_mut().zip(xr).zip(w) {
                    *o = v * r * wi;
                }
            }
        });
    y
}

/// `[rows + 1, d]`: the gradient w.r.t. `x` row by row, then the gradient w.r.t. `w`.
fn bwd<T: Real>(x: &[T], w: &[T], g: &[T], eps: f64) -> Vec<T> {
    let d = w.len();
    let mut out = vec![T::ZERO; x.len() + d];
    let (gx, gw) = out.split_at_mut(x.len());
    let chunk = rows_per_task(d) * d;
    let partial = gx
        .par_chunks_mut(chunk)
        .zip(x.par_chunks(chunk).zip(g.par_chunks(chunk)))
        .map(|(gxc, (xc, gc))| {
            let mut gw = vec![T::ZERO; d];
            for ((gxr, xr), gr) in gxc.chunks_mut(d).zip(xc.chunks(d)).zip(gc.chunks(d)) {
                let r = inv_rms(xr, eps);
                // dot = Σ (g·w)·x, with g·w kept in gx meanwhile
                for i in 0..d {
                    gxr[i] = gr[i] * w[i];
                    gw[i] += gr[i] * xr[i] * r;
                }
                let dot = T::row_dot(gxr, xr);
                let c = dot * r * r * r / T::from_f64(d as f64);
                for i in 0..d {
                    gxr[i] = gxr[i] * r - xr[i] * c;
                }
            }
            gw
        })
        .reduce(
            || vec![T::ZERO; d],
            |mut a, b| {
                for (x, y) in a.iter_mut().zip(b) {
                    *x += y;
                }
                a
            },
        );
    gw.copy_from_slice(&partial);
    out
}

fn check(xl: &Layout, wl: &Layout) -> Result<usize> {
    let d = *xl.dims().last().unwrap_or(&0);
    if wl.dims() != [d] {
        candle_core::bail!("rms_norm: weight {:?} for input {:?}", wl.dims(), xl.dims());
    }
    Ok(d)
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "fused-rms-norm"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        check(xl, wl)?;
        let n = self.name();
        let out = match xs {
            CpuStorage::F32(_) => CpuStorage::F32(fwd(
                contiguous(n, xs, xl)?,
                contiguous(n, ws, wl)?,
                self.eps,
            )),
            CpuStorage::F64(_) => CpuStorage::F64(fwd(
                contiguous(n, xs, xl)?,
                contiguous(n, ws, wl)?,
                self.eps,
            )),
            _ => candle_core::bail!("{n}: f32 or f64 only"),
        };
        Ok((out, xl.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        xs: &candle_core::CudaStorage,
        xl: &Layout,
        ws: &candle_core::CudaStorage,
        wl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let d = check(xl, wl)?;
        let n = self.name();
        let x = (xs, xl);
        let w = (ws, wl);
        let out = match super::cuda::dtype(xs) {
            candle_core::DType::F32 => on_cuda::fwd::<f32>(n, x, w, d, self.eps)?,
            _ => on_cuda::fwd::<half::bf16>(n, x, w, d, self.eps)?,
        };
        Ok((out, xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let d = w.dim(0)?;
        let rows = x.elem_count() / d.max(1);
        let both = x.apply_op3_no_bwd(w, &grad.contiguous()?, &RmsNormBwd { eps: self.eps })?;
        let gx = both.narrow(0, 0, rows)?.reshape(x.shape())?;
        let gw = both.narrow(0, rows, 1)?.reshape(d)?;
        Ok((Some(gx), Some(gw)))
    }
}

struct RmsNormBwd {
    eps: f64,
}

impl CustomOp3 for RmsNormBwd {
    fn name(&self) -> &'static str {
        "fused-rms-norm-bwd"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = check(xl, wl)?;
        let rows = xl.shape().elem_count() / d.max(1);
        let n = self.name();
        let out = match xs {
            CpuStorage::F32(_) => CpuStorage::F32(bwd(
                contiguous(n, xs, xl)?,
                contiguous(n, ws, wl)?,
                contiguous(n, gs, gl)?,
                self.eps,
            )),
            CpuStorage::F64(_) => CpuStorage::F64(bwd(
                contiguous(n, xs, xl)?,
                contiguous(n, ws, wl)?,
                contiguous(n, gs, gl)?,
                self.eps,
            )),
            _ => candle_core::bail!("{n}: f32 or f64 only"),
        };
        Ok((out, Shape::from((rows + 1, d))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        xs: &candle_core::CudaStorage,
        xl: &Layout,
        ws: &candle_core::CudaStorage,
        wl: &Layout,
        gs: &candle_core::CudaStorage,
        gl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let d = check(xl, wl)?;
        let rows = xl.shape().elem_count() / d.max(1);
        let n = self.name();
        if gl.dims() != xl.dims() {
            candle_core::bail!("{n}: gradient {:?} for input {:?}", gl.dims(), xl.dims());
        }
        let ins = ((xs, xl), (ws, wl), (gs, gl));
        let out = match super::cuda::dtype(xs) {
            candle_core::DType::F32 => on_cuda::bwd::<f32>(n, ins, rows, d, self.eps)?,
            _ => on_cuda::bwd::<half::bf16>(n, ins, rows, d, self.eps)?,
        };
        Ok((out, Shape::from((rows + 1, d))))
    }
}

/// The launches of `rms_norm.cu`: one block per row, then the weight's gradient over chunks of
/// rows and their sum.
#[cfg(feature = "cuda")]
mod on_cuda {
    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
    use candle_core::cuda_backend::WrapErr;
    use candle_core::{CudaStorage, Layout, Result};

    use super::super::cuda::{device, output, per_row, suffix, whole, KernelDType};

    const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/rms_norm.ptx"));
    const MODULE: &str = "sft_eval_rms_norm";
    /// Rows per partial sum of the weight's gradient (`GW_ROWS` in rms_norm.cu).
    const GW_ROWS: usize = 64;

    type In<'a> = (&'a CudaStorage, &'a Layout);

    pub fn fwd<T: KernelDType>(
        name: &str,
        (xs, xl): In,
        (ws, wl): In,
        d: usize,
        eps: f64,
    ) -> Result<CudaStorage> {
        let n = xl.shape().elem_count();
        let rows = n / d.max(1);
        let dev = device(xs);
        let y = output::<T>(&dev, n)?;
        if n > 0 {
            let kernel = format!("sft_rms_norm_fwd_{}", suffix(name, xs.dtype())?);
            let func = dev.get_or_load_custom_func(&kernel, MODULE, PTX)?;
            let (x, w) = (whole::<T>(name, xs, xl)?, whole::<T>(name, ws, wl)?);
            let eps = eps as f32;
            let mut b = func.builder();
            b.arg(&x).arg(&w).arg(&y).arg(&d).arg(&eps);
            // SAFETY: block `r` reads row r of x (d elements) and w, and writes row r of y;
            // x and y hold rows × d, w holds d (checked by the caller)
            unsafe { b.launch(per_row(name, rows, d)?) }.w()?;
        }
        Ok(CudaStorage::wrap_cuda_slice(y, dev))
    }

    /// `[gx (rows × d) | gw (d)]`.
    pub fn bwd<T: KernelDType>(
        name: &str,
        ((xs, xl), (ws, wl), (gs, gl)): (In, In, In),
        rows: usize,
        d: usize,
        eps: f64,
    ) -> Result<CudaStorage> {
        let n = rows * d;
        let dev = device(xs);
        let mut out = output::<T>(&dev, n + d)?;
        if n == 0 {
            return Ok(CudaStorage::wrap_cuda_slice(out, dev));
        }
        let sfx = suffix(name, xs.dtype())?;
        let load = |k: &str| dev.get_or_load_custom_func(&format!("{k}_{sfx}"), MODULE, PTX);
        let (x, w, g) = (
            whole::<T>(name, xs, xl)?,
            whole::<T>(name, ws, wl)?,
            whole::<T>(name, gs, gl)?,
        );
        let mut r = output::<f32>(&dev, rows)?;
        let (mut gx, mut gw) = out.split_at_mut(n);
        let func = load("sft_rms_norm_bwd_rows")?;
        let eps = eps as f32;
        let mut b = func.builder();
        b.arg(&x)
            .arg(&w)
            .arg(&g)
            .arg(&mut gx)
            .arg(&mut r)
            .arg(&d)
            .arg(&eps);
        // SAFETY: block `r` reads row r of x and g and all of w, writes row r of gx and r[r]
        unsafe { b.launch(per_row(name, rows, d)?) }.w()?;

        let chunks = rows.div_ceil(GW_ROWS);
        let mut partial = output::<f32>(&dev, chunks * d)?;
        let columns = (d.div_ceil(256) as u32, 1, 1);
        let func = load("sft_rms_norm_bwd_gw_partial")?;
        let mut b = func.builder();
        b.arg(&x)
            .arg(&g)
            .arg(&r)
            .arg(&mut partial)
            .arg(&rows)
            .arg(&d);
        if chunks > 65_535 {
            candle_core::bail!("{name}: {rows} rows is more than one launch takes");
        }
        let cfg = LaunchConfig {
            grid_dim: (columns.0, chunks as u32, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: thread (j, chunk) reads column j of its chunk's rows of x and g (rows × d) and
        // their r, and writes partial[chunk, j] (chunks × d); j < d is checked in the kernel
        unsafe { b.launch(cfg) }.w()?;

        let func = load("sft_rms_norm_bwd_gw_sum")?;
        let mut b = func.builder();
        b.arg(&partial).arg(&mut gw).arg(&chunks).arg(&d);
        let cfg = LaunchConfig {
            grid_dim: columns,
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: thread j reads column j of partial (chunks × d) and writes gw[j] (d elements)
        unsafe { b.launch(cfg) }.w()?;
        Ok(CudaStorage::wrap_cuda_slice(out, dev))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use crate::model::config::NormKind;
    use crate::model::layers::Norm;
    use candle_core::DType;

    fn composed(x: &Tensor, w: &Tensor) -> Result<Tensor> {
        Norm {
            weight: w.clone(),
            bias: None,
            kind: NormKind::Rms,
            eps: 1e-5,
        }
        .forward_composed(x)
    }

    #[test]
    fn matches_composition_and_finite_differences() {
        let x = rand(&[2, 3, 7], 1);
        let w = rand(&[7], 2);
        let r = rand(&[2, 3, 7], 3);
        let fused = |t: &[Tensor]| rms_norm(&t[0], &t[1], 1e-5);
        let comp = |t: &[Tensor]| composed(&t[0], &t[1]);
        let ins = [x, w];
        let (yf, gf) = autograd(&ins, &r, &fused);
        let (yc, gc) = autograd(&ins, &r, &comp);
        assert!(max_rel(&yf, &yc, 1e-6) < 1e-12);
        for i in 0..2 {
            assert!(max_rel(&gf[i], &gc[i], 1e-6) < 1e-10, "input {i}");
            let fd = finite_diff_err(&ins, i, &r, &gf[i], &fused);
            assert!(fd < 1e-6, "input {i}: finite-difference error {fd:e}");
        }
        // f32 agrees with f64
        let ins32: Vec<Tensor> = ins
            .iter()
            .map(|t| t.to_dtype(DType::F32).unwrap())
            .collect();
        let y32 = rms_norm(&ins32[0], &ins32[1], 1e-5).unwrap();
        assert!(max_rel(&y32, &yf, 1e-3) < 1e-5);
    }
}

//! RMSNorm `y = x / sqrt(mean(x²) + eps) · w` over the last dimension, with gradients to `x`
//! and `w`.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{contiguous, rows_per_task, Real};

/// Fused RMSNorm of `x` `[.., d]` with weight `w` `[d]` (CPU, f32/f64). For Gemma's `1 + w`,
/// pass `w + 1`.
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

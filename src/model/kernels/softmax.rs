//! Softmax over the last dimension, one pass forward and one back. (Attention's scale, mask and
//! softmax are fused with its products in [`super::attention`].)

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{contiguous, rows_per_task, Real};

/// Fused softmax over the last dimension (CPU, f32/f64).
pub fn softmax_last(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Softmax)
}

fn row_softmax<T: Real>(out: &mut [T], x: &[T]) {
    out.copy_from_slice(x);
    let max = T::row_max(out);
    let sum = T::row_exp_shifted_sum(out, max);
    T::row_scale(out, T::ONE / sum);
}

fn fwd<T: Real>(x: &[T], d: usize) -> Vec<T> {
    let mut y = vec![T::ZERO; x.len()];
    let per = rows_per_task(d) * d;
    y.par_chunks_mut(per)
        .zip(x.par_chunks(per))
        .for_each(|(yc, xc)| {
            for (yr, xr) in yc.chunks_mut(d).zip(xc.chunks(d)) {
                row_softmax(yr, xr);
            }
        });
    y
}

/// `scale · y · (g − Σ g·y)` row by row.
fn bwd<T: Real>(y: &[T], g: &[T], d: usize, scale: f64) -> Vec<T> {
    let mut gx = vec![T::ZERO; y.len()];
    let per = rows_per_task(d) * d;
    let scale = T::from_f64(scale);
    gx.par_chunks_mut(per)
        .zip(y.par_chunks(per).zip(g.par_chunks(per)))
        .for_each(|(gc, (yc, gcin))| {
            for ((o, yr), gr) in gc.chunks_mut(d).zip(yc.chunks(d)).zip(gcin.chunks(d)) {
                let dot = T::row_dot(yr, gr);
                for ((o, &a), &b) in o.iter_mut().zip(yr).zip(gr) {
                    *o = scale * a * (b - dot);
                }
            }
        });
    gx
}

struct Softmax;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "fused-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let d = *l.dims().last().unwrap_or(&1);
        let n = self.name();
        let out = match s {
            CpuStorage::F32(_) => CpuStorage::F32(fwd(contiguous(n, s, l)?, d)),
            CpuStorage::F64(_) => CpuStorage::F64(fwd(contiguous(n, s, l)?, d)),
            _ => candle_core::bail!("{n}: f32 or f64 only"),
        };
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(y.apply_op2_no_bwd(
            &grad.contiguous()?,
            &SoftmaxBwd { scale: 1.0 },
        )?))
    }
}

struct SoftmaxBwd {
    scale: f64,
}

impl CustomOp2 for SoftmaxBwd {
    fn name(&self) -> &'static str {
        "fused-softmax-bwd"
    }

    fn cpu_fwd(
        &self,
        ys: &CpuStorage,
        yl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = *yl.dims().last().unwrap_or(&1);
        let n = self.name();
        let out = match ys {
            CpuStorage::F32(_) => CpuStorage::F32(bwd(
                contiguous(n, ys, yl)?,
                contiguous(n, gs, gl)?,
                d,
                self.scale,
            )),
            CpuStorage::F64(_) => CpuStorage::F64(bwd(
                contiguous(n, ys, yl)?,
                contiguous(n, gs, gl)?,
                d,
                self.scale,
            )),
            _ => candle_core::bail!("{n}: f32 or f64 only"),
        };
        Ok((out, yl.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use crate::model::layers::softmax_composed;

    #[test]
    fn softmax_matches_composition_and_finite_differences() {
        let x = rand(&[2, 3, 7], 1);
        let r = rand(&[2, 3, 7], 3);
        let fused = |t: &[Tensor]| softmax_last(&t[0]);
        let comp = |t: &[Tensor]| softmax_composed(&t[0]);
        let ins = [x];
        let (yf, gf) = autograd(&ins, &r, &fused);
        let (yc, gc) = autograd(&ins, &r, &comp);
        assert!(max_rel(&yf, &yc, 1e-6) < 1e-12);
        assert!(max_rel(&gf[0], &gc[0], 1e-6) < 1e-10);
        let fd = finite_diff_err(&ins, 0, &r, &gf[0], &fused);
        assert!(fd < 1e-6, "finite-difference error {fd:e}");
    }
}

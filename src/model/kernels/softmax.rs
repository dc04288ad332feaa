//! Softmax over the last dimension, plain or fused with attention's scale and additive mask:
//! `softmax(x · scale + mask)`, `mask` `[b, 1, tq, tk]` broadcast over the heads of `x`
//! `[b, h, tq, tk]`. The gradient flows to `x` only (the mask is a constant).

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{contiguous, rows_per_task, Real};

/// Fused softmax over the last dimension (CPU, f32/f64).
pub fn softmax_last(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Softmax)
}

/// Fused `softmax(x · scale + mask)` over the last dimension; `x` `[b, h, tq, tk]`, `mask`
/// `[b, 1, tq, tk]` (or `[1, 1, tq, tk]`) of the same dtype.
pub fn masked_softmax(x: &Tensor, mask: &Tensor, scale: f64) -> Result<Tensor> {
    x.contiguous()?
        .apply_op2(&mask.contiguous()?, MaskedSoftmax { scale })
}

fn row_softmax<T: Real>(out: &mut [T], x: &[T], mask: Option<&[T]>, scale: T) {
    let mut max = T::NEG_INF;
    match mask {
        Some(m) => {
            for ((o, &v), &mv) in out.iter_mut().zip(x).zip(m) {
                *o = v * scale + mv;
                max = max.max(*o);
            }
        }
        None => {
            for (o, &v) in out.iter_mut().zip(x) {
                *o = v * scale;
                max = max.max(*o);
            }
        }
    }
    for o in out.iter_mut() {
        *o = *o - max;
    }
    T::exp_inplace(out);
    let mut sum = T::ZERO;
    for &o in out.iter() {
        sum += o;
    }
    let inv = T::ONE / sum;
    for o in out.iter_mut() {
        *o = *o * inv;
    }
}

/// `mask_rows_per_batch`: rows of the mask per batch element (tq), `rows_per_batch`: rows of
/// `x` per batch element (h · tq); 0 for no mask.
fn fwd<T: Real>(x: &[T], mask: Option<(&[T], usize, usize)>, d: usize, scale: f64) -> Vec<T> {
    let mut y = vec![T::ZERO; x.len()];
    let per = rows_per_task(d);
    let scale = T::from_f64(scale);
    y.par_chunks_mut(per * d)
        .zip(x.par_chunks(per * d))
        .enumerate()
        .for_each(|(c, (yc, xc))| {
            for (k, (yr, xr)) in yc.chunks_mut(d).zip(xc.chunks(d)).enumerate() {
                let row = c * per + k;
                let m = mask.map(|(m, mrows, xrows)| {
                    let mb = if m.len() == mrows * d { 0 } else { row / xrows };
                    let mr = mb * mrows + (row % xrows) % mrows;
                    &m[mr * d..(mr + 1) * d]
                });
                row_softmax(yr, xr, m, scale);
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
                let mut dot = T::ZERO;
                for (&a, &b) in yr.iter().zip(gr) {
                    dot += a * b;
                }
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
            CpuStorage::F32(_) => CpuStorage::F32(fwd(contiguous(n, s, l)?, None, d, 1.0)),
            CpuStorage::F64(_) => CpuStorage::F64(fwd(contiguous(n, s, l)?, None, d, 1.0)),
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

struct MaskedSoftmax {
    scale: f64,
}

impl CustomOp2 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "fused-masked-softmax"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ms: &CpuStorage,
        ml: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let n = self.name();
        let (b, h, tq, tk) = xl.shape().dims4()?;
        let (mb, mh, mq, mk) = ml.shape().dims4()?;
        if mh != 1 || mq != tq || mk != tk || (mb != b && mb != 1) {
            candle_core::bail!("{n}: mask {:?} for scores {:?}", ml.dims(), xl.dims());
        }
        let _ = h;
        let out = match xs {
            CpuStorage::F32(_) => CpuStorage::F32(fwd(
                contiguous(n, xs, xl)?,
                Some((contiguous(n, ms, ml)?, tq, h * tq)),
                tk,
                self.scale,
            )),
            CpuStorage::F64(_) => CpuStorage::F64(fwd(
                contiguous(n, xs, xl)?,
                Some((contiguous(n, ms, ml)?, tq, h * tq)),
                tk,
                self.scale,
            )),
            _ => candle_core::bail!("{n}: f32 or f64 only"),
        };
        Ok((out, xl.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _mask: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let gx = y.apply_op2_no_bwd(&grad.contiguous()?, &SoftmaxBwd { scale: self.scale })?;
        Ok((Some(gx), None))
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

    #[test]
    fn masked_softmax_matches_composition_and_finite_differences() {
        // causal mask per batch row, with the second row's last key masked as padding
        let (b, h, t) = (2, 3, 4);
        let mut m = vec![0f64; b * t * t];
        for i in 0..b {
            for q in 0..t {
                for k in 0..t {
                    if k > q || (i == 1 && k == t - 1) {
                        m[(i * t + q) * t + k] = -1e9;
                    }
                }
            }
        }
        let mask = Tensor::from_vec(m, (b, 1, t, t), &candle_core::Device::Cpu).unwrap();
        let x = rand(&[b, h, t, t], 1);
        let r = rand(&[b, h, t, t], 3);
        let scale = 0.37;
        let fused = |ts: &[Tensor]| masked_softmax(&ts[0], &mask, scale);
        let comp = |ts: &[Tensor]| softmax_composed(&(&ts[0] * scale)?.broadcast_add(&mask)?);
        let ins = [x];
        let (yf, gf) = autograd(&ins, &r, &fused);
        let (yc, gc) = autograd(&ins, &r, &comp);
        assert!(max_rel(&yf, &yc, 1e-6) < 1e-12);
        assert!(max_rel(&gf[0], &gc[0], 1e-6) < 1e-10);
        let fd = finite_diff_err(&ins, 0, &r, &gf[0], &fused);
        assert!(fd < 1e-6, "finite-difference error {fd:e}");
        // a mask shared by the batch
        let m1 = mask.narrow(0, 0, 1).unwrap();
        let a = masked_softmax(&ins[0], &m1, scale).unwrap();
        let c = softmax_composed(&(&ins[0] * scale).unwrap().broadcast_add(&m1).unwrap()).unwrap();
        assert!(max_rel(&a, &c, 1e-6) < 1e-12);
    }
}

//! Attention heads moved between the projections' token-major layout `[b, t, h·d]` and the
//! head-major `[b, h, t, d]` that attention reads, with RoPE (rotate-half, partial rotary dims
//! passed through) applied on the way in: one op and one pass where the composition
//! `reshape → transpose → contiguous → rope` made four graph nodes (each a zero-filled gradient
//! buffer and an add in candle's backward) and three passes. The backward is the same move the
//! other way with the inverse rotation. Values equal [`super::rope`]'s bit for bit: the same
//! products in the same order, and the moves are copies.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{contiguous, cpu_storage, Real};

/// `[b, t, heads·d]` (or `[b, t, heads, d]`) → `[b, heads, t, d]`, rotated by `rope` = (cos,
/// sin), each `[t, half]` or `[b, t, half]`, when given. CPU, f32/f64; the gradient flows to `x`.
pub fn to_heads(x: &Tensor, heads: usize, rope: Option<(&Tensor, &Tensor)>) -> Result<Tensor> {
    let rot = match rope {
        Some((c, s)) => Some(Rot {
            cos: c.to_dtype(x.dtype())?.contiguous()?.detach(),
            sin: s.to_dtype(x.dtype())?.contiguous()?.detach(),
            inverse: false,
        }),
        None => None,
    };
    x.contiguous()?.apply_op1(Heads {
        heads,
        to_heads: true,
        rot,
    })
}

/// `[b, h, t, d]` → `[b, t, h·d]` (attention's output, for the output projection).
pub fn from_heads(x: &Tensor) -> Result<Tensor> {
    let heads = x.dim(1)?;
    x.contiguous()?.apply_op1(Heads {
        heads,
        to_heads: false,
        rot: None,
    })
}

#[derive(Clone)]
struct Rot {
    cos: Tensor,
    sin: Tensor,
    inverse: bool,
}

struct Heads {
    heads: usize,
    /// token-major in, head-major out (else the reverse)
    to_heads: bool,
    rot: Option<Rot>,
}

#[derive(Clone, Copy)]
struct Dims {
    b: usize,
    t: usize,
    h: usize,
    d: usize,
}

/// A rotation's tables as slices: (cos, sin, half, one table per batch row, inverse).
type Tables<'a, T> = (&'a [T], &'a [T], usize, bool, bool);

/// `dst ← rotate(src)` for one head's row (or a copy without a rotation).
#[inline]
fn row<T: Real>(dst: &mut [T], src: &[T], rot: Option<(&[T], &[T], bool)>) {
    match rot {
        None => dst.copy_from_slice(src),
        Some((c, s, inverse)) => super::rope::rotate_row(dst, src, c, s, inverse),
    }
}

fn run<T: Real>(x: &[T], s: Dims, to_heads: bool, tables: Option<Tables<'_, T>>) -> Vec<T> {
    let Dims { b: _, t, h, d } = s;
    let mut y = vec![T::ZERO; x.len()];
    let table = |bi: usize, ti: usize| {
        tables.map(|(c, sn, half, per_batch, inverse)| {
            let at = if per_batch {
                (bi * t + ti) * half
            } else {
                ti * half
            };
            (&c[at..at + half], &sn[at..at + half], inverse)
        })
    };
    if to_heads {
        // one task per (batch row, head) plane of the output
        y.par_chunks_mut(t * d).enumerate().for_each(|(bh, plane)| {
            let (bi, hi) = (bh / h, bh % h);
            for (ti, dst) in plane.chunks_mut(d).enumerate() {
                let src = &x[((bi * t + ti) * h + hi) * d..][..d];
                row(dst, src, table(bi, ti));
            }
        });
    } else {
        // one task per token row of the output
        y.par_chunks_mut(h * d).enumerate().for_each(|(bt, tok)| {
            let (bi, ti) = (bt / t, bt % t);
            for (hi, dst) in tok.chunks_mut(d).enumerate() {
                let src = &x[((bi * h + hi) * t + ti) * d..][..d];
                row(dst, src, table(bi, ti));
            }
        });
    }
    y
}

impl Heads {
    fn dims(&self, l: &Layout) -> Result<(Dims, Shape)> {
        let n = self.name();
        let dims = l.dims();
        let bad = || candle_core::bail!("{n}: input {dims:?} with {} heads", self.heads);
        if self.to_heads {
            if !(dims.len() == 3 || dims.len() == 4) || self.heads == 0 {
                return bad();
            }
            let (b, t) = (dims[0], dims[1]);
            let hd: usize = dims[2..].iter().product();
            if !hd.is_multiple_of(self.heads) || (dims.len() == 4 && dims[2] != self.heads) {
                return bad();
            }
            let d = hd / self.heads;
            let s = Dims {
                b,
                t,
                h: self.heads,
                d,
            };
            Ok((s, Shape::from((b, self.heads, t, d))))
        } else {
            let (b, h, t, d) = l.shape().dims4()?;
            Ok((Dims { b, t, h, d }, Shape::from((b, t, h * d))))
        }
    }

    fn go<T: Real + candle_core::WithDType>(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        s: Dims,
    ) -> Result<Vec<T>> {
        let n = self.name();
        let x = contiguous::<T>(n, xs, xl)?;
        let Some(rot) = &self.rot else {
            return Ok(run(x, s, self.to_heads, None));
        };
        let (cs, cl) = rot.cos.storage_and_layout();
        let (ss, sl) = rot.sin.storage_and_layout();
        let (c, sn) = (
            contiguous::<T>(n, cpu_storage(n, &cs)?, cl)?,
            contiguous::<T>(n, cpu_storage(n, &ss)?, sl)?,
        );
        let (half, per_batch) = match *cl.dims() {
            [st, half] if st == s.t => (half, false),
            [1, st, half] if st == s.t => (half, false),
            [cb, st, half] if st == s.t && cb == s.b => (half, true),
            _ => candle_core::bail!("{n}: cos {:?} for input {:?}", cl.dims(), xl.dims()),
        };
        if cl.dims() != sl.dims() || half == 0 || 2 * half > s.d {
            candle_core::bail!(
                "{n}: cos {:?} sin {:?} for head dim {}",
                cl.dims(),
                sl.dims(),
                s.d
            );
        }
        Ok(run(
            x,
            s,
            self.to_heads,
            Some((c, sn, half, per_batch, rot.inverse)),
        ))
    }
}

impl CustomOp1 for Heads {
    fn name(&self) -> &'static str {
        if self.to_heads {
            "fused-to-heads"
        } else {
            "fused-from-heads"
        }
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout) -> Result<(CpuStorage, Shape)> {
        let (s, shape) = self.dims(xl)?;
        let out = match xs {
            CpuStorage::F32(_) => CpuStorage::F32(self.go(xs, xl, s)?),
            CpuStorage::F64(_) => CpuStorage::F64(self.go(xs, xl, s)?),
            _ => candle_core::bail!("{}: f32 or f64 only", self.name()),
        };
        Ok((out, shape))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let back = Heads {
            heads: self.heads,
            to_heads: !self.to_heads,
            rot: self.rot.clone().map(|r| Rot {
                inverse: !r.inverse,
                ..r
            }),
        };
        let g = grad.contiguous()?.apply_op1_no_bwd(&back)?;
        Ok(Some(g.reshape(x.shape())?))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use crate::model::rope::RopeSpec;
    use candle_core::{DType, Device};

    /// The decoder's composition: split heads, move them, rotate.
    fn composed(x: &Tensor, h: usize, rope: Option<(&Tensor, &Tensor)>) -> Result<Tensor> {
        let (b, t, hd) = x.dims3()?;
        let y = x
            .reshape((b, t, h, hd / h))?
            .transpose(1, 2)?
            .contiguous()?;
        match rope {
            Some((c, s)) => crate::model::rope::apply_rotary_composed(&y, c, s),
            None => Ok(y),
        }
    }

    fn check(b: usize, t: usize, h: usize, d: usize, rope: Option<(&Tensor, &Tensor)>) {
        let x = rand(&[b, t, h * d], 1);
        let r = rand(&[b, h, t, d], 2);
        let fused = |ts: &[Tensor]| to_heads(&ts[0], h, rope);
        let comp = |ts: &[Tensor]| composed(&ts[0], h, rope);
        let ins = [x];
        let (yf, gf) = autograd(&ins, &r, &fused);
        let (yc, gc) = autograd(&ins, &r, &comp);
        assert!(max_rel(&yf, &yc, 1e-6) < 1e-12);
        assert!(max_rel(&gf[0], &gc[0], 1e-6) < 1e-12);
        let fd = finite_diff_err(&ins, 0, &r, &gf[0], &fused);
        assert!(fd < 1e-6, "finite differences {fd:e}");
        // back again: from_heads undoes the move, and its gradient is the move
        let back = |ts: &[Tensor]| from_heads(&ts[0]);
        let r2 = rand(&[b, t, h * d], 3);
        let (y2, g2) = autograd(std::slice::from_ref(&yc), &r2, &back);
        let want = yc.transpose(1, 2).unwrap().reshape((b, t, h * d)).unwrap();
        assert_eq!(max_rel(&y2, &want, 1e-30), 0.0);
        let want_g = r2.reshape((b, t, h, d)).unwrap().transpose(1, 2).unwrap();
        assert_eq!(max_rel(&g2[0], &want_g.contiguous().unwrap(), 1e-30), 0.0);
        // f32: bitwise equal to the fused rope after the move
        let x32 = ins[0].to_dtype(DType::F32).unwrap();
        let a = to_heads(&x32, h, rope).unwrap();
        let moved = x32
            .reshape((b, t, h, d))
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .contiguous()
            .unwrap();
        let want = match rope {
            Some((c, s)) => super::super::rope::apply_rotary(&moved, c, s).unwrap(),
            None => moved,
        };
        assert_eq!(max_rel(&a, &want, 1e-30), 0.0);
    }

    #[test]
    fn matches_the_composition_and_finite_differences() {
        let dev = Device::Cpu;
        check(2, 5, 3, 8, None);
        let spec = RopeSpec::from_config(&serde_json::json!({"rope_theta": 10000.0}), 8).unwrap();
        let (cos, sin) = spec.cos_sin(5, &dev).unwrap();
        check(2, 5, 3, 8, Some((&cos, &sin)));
        // partial rotary and one table per batch row
        let partial = RopeSpec::from_config(
            &serde_json::json!({"rope_theta": 10000.0, "partial_rotary_factor": 0.4}),
            10,
        )
        .unwrap();
        let (c, s) = partial
            .cos_sin_at(&[3, 4, 5, 6, 7, 0, 1, 2, 3, 4], 8, &dev)
            .unwrap();
        let half = c.dim(1).unwrap();
        let (c, s) = (
            c.reshape((2, 5, half)).unwrap(),
            s.reshape((2, 5, half)).unwrap(),
        );
        check(2, 5, 2, 10, Some((&c, &s)));
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert!(to_heads(&rand(&[2, 5, 7], 1), 3, None).is_err());
        assert!(to_heads(&rand(&[2, 5, 2, 6], 1), 3, None).is_err());
        let dev = Device::Cpu;
        let spec = RopeSpec::from_config(&serde_json::json!({"rope_theta": 10000.0}), 8).unwrap();
        let (cos, sin) = spec.cos_sin(4, &dev).unwrap();
        let err = to_heads(&rand(&[2, 5, 24], 1), 3, Some((&cos, &sin))).unwrap_err();
        assert!(err.to_string().contains("cos"), "{err}");
    }
}

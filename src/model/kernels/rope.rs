//! Rotary position embedding (rotate-half convention, as transformers' Llama), with partial
//! rotary dims passed through; the gradient w.r.t. `x` is the inverse rotation.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{contiguous, Real};

/// Fused [`crate::model::rope::apply_rotary`]: `x` `[b, h, t, head_dim]`, `cos`/`sin`
/// `[t, half]` or `[b, t, half]` (cast to `x`'s dtype); the result is contiguous.
pub fn apply_rotary(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let cos = cos.to_dtype(x.dtype())?.contiguous()?;
    let sin = sin.to_dtype(x.dtype())?.contiguous()?;
    x.contiguous()?
        .apply_op3(&cos, &sin, Rope { inverse: false })
}

struct Rope {
    inverse: bool,
}

#[allow(clippy::too_many_arguments)]
fn run<T: Real>(
    x: &[T],
    cos: &[T],
    sin: &[T],
    (b, h, t, d): (usize, usize, usize, usize),
    half: usize,
    per_batch: bool,
    inverse: bool,
) -> Vec<T> {
    let mut y = vec![T::ZERO; x.len()];
    let plane = t * d;
    let _ = b;
    y.par_chunks_mut(plane)
        .zip(x.par_chunks(plane))
        .enumerate()
        .for_each(|(bh, (yp, xp))| {
            let bi = bh / h;
            let table = if per_batch { bi * t * half } else { 0 };
            for (j, (yr, xr)) in yp.chunks_mut(d).zip(xp.chunks(d)).enumerate() {
                let c = &cos[table + j * half..table + (j + 1) * half];
                let s = &sin[table + j * half..table + (j + 1) * half];
                rotate_row(yr, xr, c, s, inverse);
            }
        });
    y
}

/// `dst ← rotate(src)` for one head's row: rotate-half by the row's `cos`/`sin` (`half` each,
/// sin negated when `inverse`), the dims past `2·half` copied through.
#[inline]
pub(super) fn rotate_row<T: Real>(dst: &mut [T], src: &[T], c: &[T], s: &[T], inverse: bool) {
    let half = c.len();
    let (x1, rest) = src.split_at(half);
    let x2 = &rest[..half];
    for i in 0..half {
        let si = if inverse { -s[i] } else { s[i] };
        dst[i] = x1[i] * c[i] - x2[i] * si;
        dst[half + i] = x2[i] * c[i] + x1[i] * si;
    }
    dst[2 * half..].copy_from_slice(&src[2 * half..]);
}

/// `x`'s `[b, h, t, d]`, the rotated half-width, and whether cos/sin hold one table per batch
/// row (`[b, t, half]`) rather than one for all (`[t, half]` or `[1, t, half]`).
#[allow(clippy::type_complexity)]
fn geometry(
    n: &str,
    xl: &Layout,
    cl: &Layout,
    sl: &Layout,
) -> Result<((usize, usize, usize, usize), usize, bool)> {
    let dims = xl.shape().dims4()?;
    let (b, _, t, d) = dims;
    let (half, per_batch) = match *cl.dims() {
        [s, half] if s == t => (half, false),
        [1, s, half] if s == t => (half, false),
        [cb, s, half] if s == t && cb == b => (half, true),
        _ => candle_core::bail!("{n}: cos {:?} for x {:?}", cl.dims(), xl.dims()),
    };
    if cl.dims() != sl.dims() || half == 0 || 2 * half > d {
        candle_core::bail!(
            "{n}: cos {:?} sin {:?} x {:?}",
            cl.dims(),
            sl.dims(),
            xl.dims()
        );
    }
    Ok((dims, half, per_batch))
}

impl CustomOp3 for Rope {
    fn name(&self) -> &'static str {
        "fused-rope"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        cs: &CpuStorage,
        cl: &Layout,
        ss: &CpuStorage,
        sl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let n = self.name();
        let (dims, half, per_batch) = geometry(n, xl, cl, sl)?;
        let out = match xs {
            CpuStorage::F32(_) => CpuStorage::F32(run(
                contiguous(n, xs, xl)?,
                contiguous(n, cs, cl)?,
                contiguous(n, ss, sl)?,
                dims,
                half,
                per_batch,
                self.inverse,
            )),
            CpuStorage::F64(_) => CpuStorage::F64(run(
                contiguous(n, xs, xl)?,
                contiguous(n, cs, cl)?,
                contiguous(n, ss, sl)?,
                dims,
                half,
                per_batch,
                self.inverse,
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
        cs: &candle_core::CudaStorage,
        cl: &Layout,
        ss: &candle_core::CudaStorage,
        sl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let n = self.name();
        let geo = geometry(n, xl, cl, sl)?;
        let ins = ((xs, xl), (cs, cl), (ss, sl));
        let out = match super::cuda::dtype(xs) {
            candle_core::DType::F32 => on_cuda::run::<f32>(n, ins, geo, self.inverse)?,
            _ => on_cuda::run::<half::bf16>(n, ins, geo, self.inverse)?,
        };
        Ok((out, xl.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let gx = grad.contiguous()?.apply_op3_no_bwd(
            cos,
            sin,
            &Rope {
                inverse: !self.inverse,
            },
        )?;
        Ok((Some(gx), None, None))
    }
}

/// The launch of `rope.cu`: one thread per element.
#[cfg(feature = "cuda")]
mod on_cuda {
    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::cudarc::driver::PushKernelArg;
    use candle_core::cuda_backend::WrapErr;
    use candle_core::{CudaStorage, Layout, Result};

    use super::super::cuda::{device, elementwise, output, suffix, whole, KernelDType};

    const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/rope.ptx"));
    const MODULE: &str = "sft_eval_rope";

    type In<'a> = (&'a CudaStorage, &'a Layout);

    pub fn run<T: KernelDType>(
        name: &str,
        ((xs, xl), (cs, cl), (ss, sl)): (In, In, In),
        ((_, h, t, d), half, per_batch): ((usize, usize, usize, usize), usize, bool),
        inverse: bool,
    ) -> Result<CudaStorage> {
        let n = xl.shape().elem_count();
        let dev = device(xs);
        let y = output::<T>(&dev, n)?;
        if n > 0 {
            let kernel = format!("sft_rope_{}", suffix(name, xs.dtype())?);
            let func = dev.get_or_load_custom_func(&kernel, MODULE, PTX)?;
            let (x, c, s) = (
                whole::<T>(name, xs, xl)?,
                whole::<T>(name, cs, cl)?,
                whole::<T>(name, ss, sl)?,
            );
            let (per_batch, inverse) = (per_batch as i32, inverse as i32);
            let mut b = func.builder();
            b.arg(&x).arg(&c).arg(&s).arg(&y);
            b.arg(&h)
                .arg(&t)
                .arg(&d)
                .arg(&half)
                .arg(&per_batch)
                .arg(&inverse)
                .arg(&n);
            // SAFETY: element i of y is written from row i / d of x and entry (row's table,
            // i mod half) of cos and sin; the shapes were checked by `geometry`
            unsafe { b.launch(elementwise(n)) }.w()?;
        }
        Ok(CudaStorage::wrap_cuda_slice(y, dev))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use crate::model::rope::{apply_rotary_composed, RopeSpec};
    use candle_core::{DType, Device};

    fn check(x_shape: &[usize], cos: &Tensor, sin: &Tensor) {
        let x = rand(x_shape, 1);
        let r = rand(x_shape, 3);
        let fused = |t: &[Tensor]| apply_rotary(&t[0], cos, sin);
        let comp = |t: &[Tensor]| apply_rotary_composed(&t[0], cos, sin);
        let ins = [x];
        let (yf, gf) = autograd(&ins, &r, &fused);
        let (yc, gc) = autograd(&ins, &r, &comp);
        assert!(max_rel(&yf, &yc, 1e-6) < 1e-12);
        assert!(max_rel(&gf[0], &gc[0], 1e-6) < 1e-12);
        let fd = finite_diff_err(&ins, 0, &r, &gf[0], &fused);
        assert!(fd < 1e-6, "finite-difference error {fd:e}");
        // f32: bitwise equal to the composition (same operations, same rounding)
        let x32 = ins[0].to_dtype(DType::F32).unwrap();
        let a = apply_rotary(&x32, cos, sin).unwrap();
        let b = apply_rotary_composed(&x32, cos, sin).unwrap();
        assert_eq!(max_rel(&a, &b, 1e-30), 0.0);
    }

    #[test]
    fn matches_composition_and_finite_differences() {
        let dev = Device::Cpu;
        let spec = RopeSpec::from_config(&serde_json::json!({"rope_theta": 10000.0}), 8).unwrap();
        let (cos, sin) = spec.cos_sin(5, &dev).unwrap();
        check(&[2, 3, 5, 8], &cos, &sin);
        // partial rotary (2 of 5 pairs... 4 of 10 dims) and per-row positions
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
        check(&[2, 3, 5, 10], &c, &s);
    }
}

//! `y = x·Wᵀ` for a few rows of `x`: the projections of a decoding step, one row per sequence
//! being generated, and the output head at the rows' last positions.
//!
//! With so few rows the product is bound by reading the weights, and `gemm` spends most of its
//! time packing them (measured at the 135M shape, 8 rows, 1 thread: 0.60 ms for a 576×1536
//! projection through candle's matmul, of which the microkernels are a fifth). Here each weight
//! row is read once, straight from the checkpoint's `[out, in]` layout, and multiplied into every
//! row of `x` held in registers; rayon splits the weight rows. The instruction set is chosen at
//! run time ([`super::isa`]): AVX-512 (16 lanes), AVX2+FMA (8 lanes) or portable code.
//!
//! Each output is one dot product whose summation order depends only on `k` and the
//! instruction set, never on how many rows are in the batch: a sequence decodes to the same bits
//! alone or beside others.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{contiguous, Isa};

/// The most rows of `x` taken by this path (more go to `gemm`).
pub const MAX_ROWS: usize = 16;
/// Rows of `x` multiplied per pass over a weight row (registers: AVX2 has 16).
const GROUP: usize = 8;
/// Weight rows per rayon task.
const BLOCK: usize = 32;

/// Whether `x·wᵀ` takes this path: CPU f32, fused kernels on, `x` of at most [`MAX_ROWS`]
/// rows, `w` a contiguous `[out, in]` matrix.
pub fn applies(x: &Tensor, w: &Tensor) -> bool {
    // `enabled` last: it counts a fused-path decision, which tests read to know a kernel ran
    w.dtype() == candle_core::DType::F32
        && w.device().is_cpu()
        && w.rank() == 2
        && w.is_contiguous()
        && x.rank() == 2
        && x.dim(0).is_ok_and(|m| m <= MAX_ROWS)
        && super::enabled(x)
}

/// `x·wᵀ` (`x` `[m, k]`, `w` `[n, k]`), with gradients to both.
pub fn matmul_t(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op2(w, SkinnyMatmulT)
}

/// `y[m, n] = x[m, k]·w[n, k]ᵀ` on slices, through the given instruction set (which the CPU
/// must have: [`Isa::available`]).
pub fn rows(isa: Isa, x: &[f32], m: usize, k: usize, w: &[f32], n: usize) -> Vec<f32> {
    assert_eq!(x.len(), m * k, "x is [m, k]");
    assert_eq!(w.len(), n * k, "w is [n, k]");
    assert!(isa.available(), "{isa:?} is not available on this CPU");
    // yᵀ, one weight row's outputs side by side, then transposed
    let mut yt = vec![0f32; n * m];
    if k > 0 {
        yt.par_chunks_mut(BLOCK * m)
            .zip(w.par_chunks(BLOCK * k))
            .for_each(|(out, wb)| {
                for (g, xs) in x.chunks(GROUP * k).enumerate() {
                    dot_rows(isa, xs, k, wb, &mut out[g * GROUP..], m);
                }
            });
    }
    let mut y = vec![0f32; m * n];
    for j in 0..n {
        for i in 0..m {
            y[i * n + j] = yt[j * m + i];
        }
    }
    y
}

/// `out[j·rows + i] = xs[i]·w[j]` for each row `i` of `xs` (at most [`GROUP`] rows of length
/// `k`) and each weight row `j` of `w`; `out` holds `rows` outputs per weight row.
fn dot_rows(isa: Isa, xs: &[f32], k: usize, w: &[f32], out: &mut [f32], stride: usize) {
    let m = xs.len() / k;
    macro_rules! by_rows {
        ($f:ident) => {
            match m {
                1 => $f::<1>(xs, k, w, out, stride),
                2 => $f::<2>(xs, k, w, out, stride),
                3 => $f::<3>(xs, k, w, out, stride),
                4 => $f::<4>(xs, k, w, out, stride),
                5 => $f::<5>(xs, k, w, out, stride),
                6 => $f::<6>(xs, k, w, out, stride),
                7 => $f::<7>(xs, k, w, out, stride),
                8 => $f::<8>(xs, k, w, out, stride),
                _ => unreachable!("at most {GROUP} rows per group"),
            }
        };
    }
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `rows` checked that the CPU has AVX-512F
        Isa::Avx512 => unsafe {
            use x86::avx512 as f;
            by_rows!(f)
        },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `rows` checked that the CPU has AVX2 and FMA
        Isa::Avx2 => unsafe {
            use x86::avx2 as f;
            by_rows!(f)
        },
        _ => portable(xs, k, w, out, stride),
    }
}

/// Eight partial sums per row, added pairwise at the end (the compiler vectorizes the loop;
/// no `mul_add`, which without FMA in the target is a library call).
fn portable(xs: &[f32], k: usize, w: &[f32], out: &mut [f32], stride: usize) {
    for (j, wr) in w.chunks_exact(k).enumerate() {
        for (i, x) in xs.chunks_exact(k).enumerate() {
            let mut acc = [0f32; 8];
            let mut xc = x.chunks_exact(8);
            let mut wc = wr.chunks_exact(8);
            for (a, b) in xc.by_ref().zip(wc.by_ref()) {
                for l in 0..8 {
                    acc[l] += a[l] * b[l];
                }
            }
            for (l, (a, b)) in xc.remainder().iter().zip(wc.remainder()).enumerate() {
                acc[l] += a * b;
            }
            let s4: [f32; 4] = std::array::from_fn(|l| acc[l] + acc[l + 4]);
            out[j * stride + i] = (s4[0] + s4[2]) + (s4[1] + s4[3]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Two weight rows per pass, `M` rows of `x` (2·M accumulators in registers): each `x`
    /// vector is loaded once for two weight vectors. The tail is a masked load; an odd last
    /// weight row runs alone with the same arithmetic.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn avx512<const M: usize>(
        xs: &[f32],
        k: usize,
        w: &[f32],
        out: &mut [f32],
        stride: usize,
    ) {
        let n = w.len() / k;
        debug_assert!(xs.len() == M * k && out.len() >= (n - 1) * stride + M);
        let xp = xs.as_ptr();
        let tail = k % 16;
        let mask: __mmask16 = ((1u32 << tail) - 1) as u16;
        let mut j = 0;
        while j < n {
            let pair = j + 1 < n;
            let w0 = w.as_ptr().add(j * k);
            let w1 = if pair { w0.add(k) } else { w0 };
            let mut a0 = [_mm512_setzero_ps(); M];
            let mut a1 = [_mm512_setzero_ps(); M];
            let mut c = 0;
            while c + 16 <= k {
                // the next pair of rows, into L1 while this one computes: without it the
                // weights' memory traffic and the FMAs take turns (measured: 85 ms for a 135M
                // step of 8 rows against 55 ms to stream the weights alone)
                _mm_prefetch::<_MM_HINT_T0>(w0.wrapping_add(c + 2 * k) as *const i8);
                _mm_prefetch::<_MM_HINT_T0>(w1.wrapping_add(c + 2 * k) as *const i8);
                let v0 = _mm512_loadu_ps(w0.add(c));
                let v1 = _mm512_loadu_ps(w1.add(c));
                for i in 0..M {
                    let xv = _mm512_loadu_ps(xp.add(i * k + c));
                    a0[i] = _mm512_fmadd_ps(xv, v0, a0[i]);
                    a1[i] = _mm512_fmadd_ps(xv, v1, a1[i]);
                }
                c += 16;
            }
            if tail > 0 {
                let v0 = _mm512_maskz_loadu_ps(mask, w0.add(c));
                let v1 = _mm512_maskz_loadu_ps(mask, w1.add(c));
                for i in 0..M {
                    let xv = _mm512_maskz_loadu_ps(mask, xp.add(i * k + c));
                    a0[i] = _mm512_fmadd_ps(xv, v0, a0[i]);
                    a1[i] = _mm512_fmadd_ps(xv, v1, a1[i]);
                }
            }
            for i in 0..M {
                out[j * stride + i] = _mm512_reduce_add_ps(a0[i]);
                if pair {
                    out[(j + 1) * stride + i] = _mm512_reduce_add_ps(a1[i]);
                }
            }
            j += 2;
        }
    }

    /// One weight row per pass (16 registers: `M` accumulators, the weight, `x`); the tail
    /// (`k` mod 8) is added in scalar FMAs after the vector sum.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn avx2<const M: usize>(
        xs: &[f32],
        k: usize,
        w: &[f32],
        out: &mut [f32],
        stride: usize,
    ) {
        let xp = xs.as_ptr();
        for (j, wr) in w.chunks_exact(k).enumerate() {
            let wp = wr.as_ptr();
            let mut acc = [_mm256_setzero_ps(); M];
            let mut c = 0;
            while c + 8 <= k {
                // two rows ahead, as in the AVX-512 kernel (one line per two steps here)
                if c % 16 == 0 {
                    _mm_prefetch::<_MM_HINT_T0>(wp.wrapping_add(c + 2 * k) as *const i8);
                }
                let wv = _mm256_loadu_ps(wp.add(c));
                for (i, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_fmadd_ps(_mm256_loadu_ps(xp.add(i * k + c)), wv, *a);
                }
                c += 8;
            }
            for (i, a) in acc.into_iter().enumerate() {
                // lanes 0..4 + 4..8, then pairs
                let s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
                let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
                let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
                let mut t = _mm_cvtss_f32(s);
                for cc in c..k {
                    t = (*xp.add(i * k + cc)).mul_add(*wp.add(cc), t);
                }
                out[j * stride + i] = t;
            }
        }
    }
}

struct SkinnyMatmulT;

impl CustomOp2 for SkinnyMatmulT {
    fn name(&self) -> &'static str {
        "skinny-matmul-t"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        let (&[m, k], &[n, k2]) = (xl.dims(), wl.dims()) else {
            candle_core::bail!("{name}: x and w must be matrices");
        };
        if k != k2 {
            candle_core::bail!("{name}: x is [{m}, {k}] and w [{n}, {k2}]");
        }
        let x = contiguous::<f32>(name, xs, xl)?;
        let w = contiguous::<f32>(name, ws, wl)?;
        let y = rows(super::isa(), x, m, k, w, n);
        Ok((CpuStorage::F32(y), Shape::from((m, n))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(grad.matmul(w)?), Some(grad.t()?.matmul(x)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use candle_core::DType;

    /// Every instruction set this CPU has, on shapes with and without a vector tail and with
    /// more rows than one group, against a float64 reference; and batch-invariance: a row's
    /// outputs do not depend on the other rows.
    #[test]
    fn every_path_matches_float64_and_is_batch_invariant() {
        for &(m, k, n) in &[
            (1, 576, 70),
            (3, 37, 45),
            (8, 64, 33),
            (13, 100, 90),
            (16, 7, 5),
        ] {
            let x: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7919) % 97) as f32 / 48.0 - 1.0)
                .collect();
            let w: Vec<f32> = (0..n * k)
                .map(|i| ((i * 104729) % 89) as f32 / 44.0 - 1.0)
                .collect();
            for isa in Isa::ALL.into_iter().filter(|i| i.available()) {
                let y = rows(isa, &x, m, k, &w, n);
                for i in 0..m {
                    for j in 0..n {
                        let r: f64 = (0..k)
                            .map(|c| x[i * k + c] as f64 * w[j * k + c] as f64)
                            .sum();
                        let scale: f64 = (0..k)
                            .map(|c| (x[i * k + c] as f64 * w[j * k + c] as f64).abs())
                            .sum();
                        let err = (y[i * n + j] as f64 - r).abs() / scale.max(1e-30);
                        assert!(err < 1e-6, "{isa:?} m{m} k{k} n{n} [{i},{j}]: {err:e}");
                    }
                }
                // row i alone gives the same bits
                for i in 0..m {
                    let alone = rows(isa, &x[i * k..(i + 1) * k], 1, k, &w, n);
                    assert_eq!(alone, y[i * n..(i + 1) * n], "{isa:?} m{m}: row {i}");
                }
            }
        }
    }

    /// f32 only, so the gradients are checked against candle's matmul (itself checked against
    /// finite differences by candle), not against float64 finite differences.
    #[test]
    fn gradients_match_the_matmul() {
        let x = rand(&[5, 19], 1);
        let w = rand(&[11, 19], 2);
        let r = rand(&[5, 11], 3);
        let ins = [
            x.to_dtype(DType::F32).unwrap(),
            w.to_dtype(DType::F32).unwrap(),
        ];
        let r32 = r.to_dtype(DType::F32).unwrap();
        let fused = |t: &[Tensor]| matmul_t(&t[0], &t[1]);
        let comp = |t: &[Tensor]| t[0].matmul(&t[1].t()?);
        let (yf, gf) = autograd(&ins, &r32, &fused);
        let (yc, gc) = autograd(&ins, &r32, &comp);
        assert!(max_rel(&yf, &yc, 1e-6) < 1e-5);
        for i in 0..2 {
            assert!(max_rel(&gf[i], &gc[i], 1e-6) < 1e-5, "input {i}");
        }
    }
}

//! `x ← exp(x)` over an f32 slice at the CPU's width, chosen at run time ([`super::isa`]):
//! AVX-512F (16 lanes) or AVX2+FMA (8 lanes) with `std::arch`, else `wide`'s `f32x8`, which a
//! baseline x86-64 build runs as two SSE halves (measured at 3.7% of a 135M train step).
//!
//! The vector paths share one algorithm (Cephes' `expf`): `n = round(x·log₂e)`,
//! `r = x − n·ln 2` in two parts, a degree-5 polynomial for `e^r`, scaled by `2^n` in two
//! halves so that every exponent up to overflow stays a normal float. Below `ln(FLT_MIN)` the
//! result is 0 (where libm returns a subnormal), above `ln(FLT_MAX)` it is +∞, NaN stays NaN.

use super::Isa;

/// `x ← exp(x)` on the dispatched instruction set.
pub(crate) fn exp_inplace(xs: &mut [f32]) {
    exp_on(super::isa(), xs)
}

/// `x ← exp(x)` on `isa` (the portable path when this CPU lacks it).
pub fn exp_on(isa: Isa, xs: &mut [f32]) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `available` checked that the CPU has AVX-512F
        Isa::Avx512 if isa.available() => unsafe { x86::avx512(xs) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `available` checked that the CPU has AVX2 and FMA
        Isa::Avx2 if isa.available() => unsafe { x86::avx2(xs) },
        _ => portable(xs),
    }
}

fn portable(xs: &mut [f32]) {
    use wide::f32x8;
    let mut chunks = xs.chunks_exact_mut(8);
    for c in &mut chunks {
        let v: [f32; 8] = (&*c).try_into().expect("chunks of 8");
        c.copy_from_slice(&f32x8::from(v).exp().to_array());
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        let mut v = [0f32; 8];
        v[..rest.len()].copy_from_slice(rest);
        let n = rest.len();
        rest.copy_from_slice(&f32x8::from(v).exp().to_array()[..n]);
    }
}

/// ln(FLT_MAX): above it exp overflows.
const HI: f32 = 88.722_84;
/// ln(FLT_MIN): below it exp is subnormal (returned as 0).
const LO: f32 = -87.336_55;
const LOG2E: f32 = std::f32::consts::LOG2_E;
/// ln 2 in two parts (Cephes): `C1` exact in few bits, `C2` the rest.
const C1: f32 = 0.693_359_4;
const C2: f32 = -2.121_944_4e-4;
/// Cephes `expf` polynomial, highest degree first.
const P: [f32; 6] = [
    1.987_569_1e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    0.166_666_65,
    0.5,
];

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{C1, C2, HI, LO, LOG2E, P};
    use std::arch::x86_64::*;

    /// Round to nearest, exceptions suppressed.
    const NEAREST: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn avx512(xs: &mut [f32]) {
        let n = xs.len();
        let p = xs.as_mut_ptr();
        let mut i = 0;
        while i + 16 <= n {
            let v = _mm512_loadu_ps(p.add(i));
            _mm512_storeu_ps(p.add(i), exp16(v));
            i += 16;
        }
        if i < n {
            let mask: __mmask16 = ((1u32 << (n - i)) - 1) as u16;
            let v = _mm512_maskz_loadu_ps(mask, p.add(i));
            _mm512_mask_storeu_ps(p.add(i), mask, exp16(v));
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn exp16(x: __m512) -> __m512 {
        // lanes below LO (−∞ from a mask) compute from 0 and are set to 0 at the end: computed
        // from LO, their 2^n scaling can round below FLT_MIN, a subnormal that costs a microcode
        // assist per instruction
        let under = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, _mm512_set1_ps(LO));
        let x0 = _mm512_mask_blend_ps(under, x, _mm512_setzero_ps());
        // max/min return their second operand when one is NaN: NaN passes through
        let xc = _mm512_min_ps(_mm512_set1_ps(HI), _mm512_max_ps(_mm512_set1_ps(LO), x0));
        let fx = _mm512_roundscale_ps::<NEAREST>(_mm512_mul_ps(xc, _mm512_set1_ps(LOG2E)));
        let r = _mm512_fnmadd_ps(fx, _mm512_set1_ps(C1), xc);
        let r = _mm512_fnmadd_ps(fx, _mm512_set1_ps(C2), r);
        let mut y = _mm512_set1_ps(P[0]);
        for &c in &P[1..] {
            y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(c));
        }
        let y = _mm512_add_ps(
            _mm512_fmadd_ps(y, _mm512_mul_ps(r, r), r),
            _mm512_set1_ps(1.0),
        );
        // 2^n in two halves, each a normal float for n in [-126, 128]
        let n = _mm512_cvtps_epi32(fx);
        let h = _mm512_srai_epi32::<1>(n);
        let bias = _mm512_set1_epi32(127);
        let s1 = _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(h, bias)));
        let s2 = _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(
            _mm512_sub_epi32(n, h),
            bias,
        )));
        let out = _mm512_mul_ps(_mm512_mul_ps(y, s1), s2);
        let over = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, _mm512_set1_ps(HI));
        let out = _mm512_mask_blend_ps(under, out, _mm512_setzero_ps());
        _mm512_mask_blend_ps(over, out, _mm512_set1_ps(f32::INFINITY))
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn avx2(xs: &mut [f32]) {
        let n = xs.len();
        let p = xs.as_mut_ptr();
        let mut i = 0;
        while i + 8 <= n {
            let v = _mm256_loadu_ps(p.add(i));
            _mm256_storeu_ps(p.add(i), exp8(v));
            i += 8;
        }
        if i < n {
            let mut buf = [0f32; 8];
            buf[..n - i].copy_from_slice(&xs[i..]);
            let v = exp8(_mm256_loadu_ps(buf.as_ptr()));
            _mm256_storeu_ps(buf.as_mut_ptr(), v);
            xs[i..].copy_from_slice(&buf[..n - i]);
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn exp8(x: __m256) -> __m256 {
        // as in exp16: lanes below LO compute from 0 (no subnormal assist), then become 0
        let under = _mm256_cmp_ps::<_CMP_LT_OQ>(x, _mm256_set1_ps(LO));
        let x0 = _mm256_blendv_ps(x, _mm256_setzero_ps(), under);
        let xc = _mm256_min_ps(_mm256_set1_ps(HI), _mm256_max_ps(_mm256_set1_ps(LO), x0));
        let fx = _mm256_round_ps::<NEAREST>(_mm256_mul_ps(xc, _mm256_set1_ps(LOG2E)));
        let r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(C1), xc);
        let r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(C2), r);
        let mut y = _mm256_set1_ps(P[0]);
        for &c in &P[1..] {
            y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(c));
        }
        let y = _mm256_add_ps(
            _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), r),
            _mm256_set1_ps(1.0),
        );
        let n = _mm256_cvtps_epi32(fx);
        let h = _mm256_srai_epi32::<1>(n);
        let bias = _mm256_set1_epi32(127);
        let s1 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(h, bias)));
        let s2 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
            _mm256_sub_epi32(n, h),
            bias,
        )));
        let out = _mm256_mul_ps(_mm256_mul_ps(y, s1), s2);
        let over = _mm256_cmp_ps::<_CMP_GT_OQ>(x, _mm256_set1_ps(HI));
        let out = _mm256_blendv_ps(out, _mm256_setzero_ps(), under);
        _mm256_blendv_ps(out, _mm256_set1_ps(f32::INFINITY), over)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units in the last place between two finite floats of the same sign.
    fn ulps(a: f32, b: f32) -> u32 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    fn inputs() -> Vec<f32> {
        let mut v: Vec<f32> = (-2000..=2000).map(|i| i as f32 * 0.0443).collect();
        v.extend((0..1000).map(|i| -1.0 + i as f32 * 0.002));
        v.extend([
            0.0,
            -0.0,
            1e-30,
            -1e-30,
            HI,
            LO,
            88.7,
            -87.3,
            89.0,
            -88.0,
            -1e9,
            1e9,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MIN_POSITIVE,
        ]);
        v
    }

    #[test]
    fn every_path_is_within_two_ulps_of_libm_and_handles_the_edges() {
        for isa in Isa::ALL.into_iter().filter(|i| i.available()) {
            for len in [inputs().len(), 1, 7, 15, 17] {
                let xs: Vec<f32> = inputs().into_iter().take(len).collect();
                let mut ys = xs.clone();
                exp_on(isa, &mut ys);
                for (&x, &y) in xs.iter().zip(&ys) {
                    let want = x.exp();
                    if x.is_nan() {
                        assert!(y.is_nan(), "{isa:?}: exp(NaN) = {y}");
                    } else if x > HI {
                        assert_eq!(y, f32::INFINITY, "{isa:?}: exp({x})");
                    } else if x < LO {
                        // libm's subnormals (or 0) come out as 0 or within 1.2e-38 of them
                        assert!(y.abs() <= 1.2e-38, "{isa:?}: exp({x}) = {y}");
                    } else if want.is_finite() && want >= f32::MIN_POSITIVE {
                        assert!(
                            ulps(y, want) <= 2,
                            "{isa:?}: exp({x}) = {y}, libm {want} ({} ulps)",
                            ulps(y, want)
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_vector_paths_agree_with_each_other_bit_for_bit() {
        let xs = inputs();
        let mut a = xs.clone();
        let mut b = xs.clone();
        if Isa::Avx512.available() && Isa::Avx2.available() {
            exp_on(Isa::Avx512, &mut a);
            exp_on(Isa::Avx2, &mut b);
            for ((x, p), q) in xs.iter().zip(&a).zip(&b) {
                assert!(
                    p.to_bits() == q.to_bits() || (p.is_nan() && q.is_nan()),
                    "exp({x}): {p} vs {q}"
                );
            }
        }
    }
}

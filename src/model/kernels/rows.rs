//! Row reductions and row updates of the fused kernels (softmax, attention probabilities,
//! cross-entropy, RMSNorm) at the CPU's width, chosen at run time ([`super::isa`]).
//!
//! Each body is written once over 32 lanes (an array of partial results, `L`) and compiled three
//! times: for AVX-512F, for AVX2+FMA (`#[target_feature]`), and for the build's baseline.
//! `max = max.max(x)` or `sum += x` one element at a time is a chain of dependent instructions
//! that no compiler may reorder for floats; 32 partial results are independent, so the
//! compiler turns each body into two 16-lane (AVX-512), four 8-lane (AVX2) or eight 4-lane (SSE2)
//! vector chains. The partial results are combined by one fixed tree, and no path fuses a
//! multiply into an add, so every path returns the same bits.

use super::Isa;

/// Partial results per reduction (a multiple of every path's vector width).
const L: usize = 32;

/// Elements per pass of [`exp_shifted_sum`] (a multiple of `L`, small enough for L1).
const BLOCK: usize = 512;

/// Define a public function whose body (an `#[inline(always)]` function) is compiled for each
/// instruction set and called on the one [`super::isa`] picked.
macro_rules! dispatched {
    ($(#[$m:meta])* pub fn $name:ident / $on:ident($($arg:ident: $ty:ty),*) = $body:ident;) => {
        dispatched! { $(#[$m])* pub fn $name / $on($($arg: $ty),*) -> () = $body; }
    };
    ($(#[$m:meta])* pub fn $name:ident / $on:ident($($arg:ident: $ty:ty),*) -> $ret:ty = $body:ident;) => {
        $(#[$m])*
        #[allow(clippy::unused_unit)]
        pub fn $name($($arg: $ty),*) -> $ret {
            $on(super::isa(), $($arg),*)
        }

        $(#[$m])*
        /// On `isa` (the portable path when this CPU lacks it).
        #[allow(clippy::unused_unit)]
        pub fn $on(isa: Isa, $($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) -> $ret {
                    $body(Isa::Avx512, $($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) -> $ret {
                    $body(Isa::Avx2, $($arg),*)
                }
                match isa {
                    // SAFETY: `available` checked that this CPU has the path's features
                    Isa::Avx512 if isa.available() => return unsafe { avx512($($arg),*) },
                    // SAFETY: as above
                    Isa::Avx2 if isa.available() => return unsafe { avx2($($arg),*) },
                    _ => {}
                }
            }
            $body(Isa::Portable, $($arg),*)
        }
    };
}

dispatched! {
    /// `max(xs)` (−∞ for none; NaNs are skipped).
    pub fn max / max_on(xs: &[f32]) -> f32 = max_body;
}

dispatched! {
    /// `Σ xs`.
    pub fn sum / sum_on(xs: &[f32]) -> f32 = sum_body;
}

dispatched! {
    /// `Σ a·b` over the shorter of the two.
    pub fn dot / dot_on(a: &[f32], b: &[f32]) -> f32 = dot_body;
}

dispatched! {
    /// `x ← x·scale + mask` elementwise, returning the new `max(xs)`.
    pub fn scale_add_max / scale_add_max_on(xs: &mut [f32], mask: &[f32], scale: f32) -> f32 = scale_add_max_body;
}

dispatched! {
    /// `x ← exp(x − shift)` elementwise, returning `Σ` of the new values.
    pub fn exp_shifted_sum / exp_shifted_sum_on(xs: &mut [f32], shift: f32) -> f32 = exp_shifted_sum_body;
}

dispatched! {
    /// `x ← x·s` elementwise.
    pub fn scale / scale_on(xs: &mut [f32], s: f32) = scale_body;
}

/// The same operations one element at a time, for f64 (the kernels' tests run in f64).
pub(crate) mod serial {
    pub fn max(xs: &[f64]) -> f64 {
        xs.iter()
            .fold(f64::NEG_INFINITY, |a, &x| if x > a { x } else { a })
    }
    pub fn dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }
    pub fn scale_add_max(xs: &mut [f64], mask: &[f64], scale: f64) -> f64 {
        let mut m = f64::NEG_INFINITY;
        for (x, &v) in xs.iter_mut().zip(mask) {
            *x = *x * scale + v;
            if *x > m {
                m = *x;
            }
        }
        m
    }
    pub fn exp_shifted_sum(xs: &mut [f64], shift: f64) -> f64 {
        let mut s = 0.0;
        for x in xs {
            *x = (*x - shift).exp();
            s += *x;
        }
        s
    }
    pub fn scale(xs: &mut [f64], s: f64) {
        for x in xs {
            *x *= s;
        }
    }
}

/// Combine the partial results pairwise, always in the same order.
#[inline(always)]
fn tree(mut acc: [f32; L], op: impl Fn(f32, f32) -> f32) -> f32 {
    let mut w = L;
    while w > 1 {
        w /= 2;
        for i in 0..w {
            acc[i] = op(acc[i], acc[i + w]);
        }
    }
    acc[0]
}

#[inline(always)]
fn bigger(a: f32, x: f32) -> f32 {
    // `maxps`'s own rule: keep `a` unless `x` is larger (a NaN `x` is skipped)
    if x > a {
        x
    } else {
        a
    }
}

#[inline(always)]
fn max_body(_: Isa, xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; L];
    let mut it = xs.chunks_exact(L);
    for c in &mut it {
        for i in 0..L {
            acc[i] = bigger(acc[i], c[i]);
        }
    }
    for (a, &x) in acc.iter_mut().zip(it.remainder()) {
        *a = bigger(*a, x);
    }
    tree(acc, bigger)
}

#[inline(always)]
fn add_lanes(acc: &mut [f32; L], xs: &[f32]) {
    let mut it = xs.chunks_exact(L);
    for c in &mut it {
        for i in 0..L {
            acc[i] += c[i];
        }
    }
    for (a, &x) in acc.iter_mut().zip(it.remainder()) {
        *a += x;
    }
}

#[inline(always)]
fn sum_body(_: Isa, xs: &[f32]) -> f32 {
    let mut acc = [0.0; L];
    add_lanes(&mut acc, xs);
    tree(acc, |a, b| a + b)
}

#[inline(always)]
fn dot_body(_: Isa, a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0; L];
    let mut ia = a.chunks_exact(L);
    let mut ib = b.chunks_exact(L);
    for (ca, cb) in (&mut ia).zip(&mut ib) {
        for i in 0..L {
            acc[i] += ca[i] * cb[i];
        }
    }
    for ((s, &x), &y) in acc.iter_mut().zip(ia.remainder()).zip(ib.remainder()) {
        *s += x * y;
    }
    tree(acc, |a, b| a + b)
}

#[inline(always)]
fn scale_add_max_body(_: Isa, xs: &mut [f32], mask: &[f32], scale: f32) -> f32 {
    let n = xs.len().min(mask.len());
    let (xs, mask) = (&mut xs[..n], &mask[..n]);
    let mut acc = [f32::NEG_INFINITY; L];
    let mut ix = xs.chunks_exact_mut(L);
    let mut im = mask.chunks_exact(L);
    for (cx, cm) in (&mut ix).zip(&mut im) {
        for i in 0..L {
            cx[i] = cx[i] * scale + cm[i];
            acc[i] = bigger(acc[i], cx[i]);
        }
    }
    for ((a, x), &m) in acc.iter_mut().zip(ix.into_remainder()).zip(im.remainder()) {
        *x = *x * scale + m;
        *a = bigger(*a, *x);
    }
    tree(acc, bigger)
}

#[inline(always)]
fn exp_shifted_sum_body(isa: Isa, xs: &mut [f32], shift: f32) -> f32 {
    let mut acc = [0.0; L];
    for block in xs.chunks_mut(BLOCK) {
        for x in block.iter_mut() {
            *x -= shift;
        }
        super::exp::exp_on(isa, block);
        // blocks are whole multiples of L, so the lanes line up as over the whole row
        add_lanes(&mut acc, block);
    }
    tree(acc, |a, b| a + b)
}

#[inline(always)]
fn scale_body(_: Isa, xs: &mut [f32], s: f32) {
    for x in xs {
        *x *= s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1u32 << 24) as f32 * 8.0 - 4.0
            })
            .collect()
    }

    #[test]
    fn reductions_equal_a_float64_reference_at_every_length() {
        for n in [0usize, 1, 7, 31, 32, 33, 100, 511, 512, 513, 2049] {
            let a = values(n, 1);
            let b = values(n, 2);
            let want_sum: f64 = a.iter().map(|&x| x as f64).sum();
            let want_dot: f64 = a.iter().zip(&b).map(|(&x, &y)| x as f64 * y as f64).sum();
            let tol = 1e-5 * (n as f64).max(1.0);
            assert!((sum(&a) as f64 - want_sum).abs() < tol, "sum n={n}");
            assert!((dot(&a, &b) as f64 - want_dot).abs() < tol, "dot n={n}");
            let want_max = a.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(max(&a), want_max, "max n={n}");

            let mut x = a.clone();
            let m = scale_add_max(&mut x, &b, 0.125);
            for i in 0..n {
                assert_eq!(x[i], a[i] * 0.125 + b[i]);
            }
            assert_eq!(m, x.iter().copied().fold(f32::NEG_INFINITY, f32::max));

            let mut e = a.clone();
            let s = exp_shifted_sum(&mut e, 1.5);
            let mut want_s = 0f64;
            for i in 0..n {
                let w = ((a[i] - 1.5) as f64).exp();
                assert!(
                    (e[i] as f64 - w).abs() <= 4.0 * f32::EPSILON as f64 * w,
                    "exp"
                );
                want_s += e[i] as f64;
            }
            assert!((s as f64 - want_s).abs() < tol, "exp sum n={n}");

            let mut c = a.clone();
            scale(&mut c, 3.0);
            assert!(c.iter().zip(&a).all(|(&c, &a)| c == a * 3.0));
        }
    }

    /// The reductions return the same bits on every path (one fixed order of partial results,
    /// no fused multiply-adds), so a forced path changes no sum; `exp_shifted_sum` inherits
    /// `exp`'s paths, equal between AVX-512 and AVX2, within 2 ulp of them on the portable one.
    #[test]
    fn every_path_returns_the_same_bits() {
        let a = values(1037, 3);
        let b = values(1037, 4);
        let run = |isa: Isa| {
            let mut x = a.clone();
            let m = scale_add_max_on(isa, &mut x, &b, 0.3);
            let mut bits: Vec<u32> = x.iter().map(|v| v.to_bits()).collect();
            scale_on(isa, &mut x, 0.7);
            bits.extend(x.iter().map(|v| v.to_bits()));
            for r in [max_on(isa, &a), sum_on(isa, &a), dot_on(isa, &a, &b), m] {
                bits.push(r.to_bits());
            }
            let mut e = a.clone();
            let s = exp_shifted_sum_on(isa, &mut e, 1.0);
            (bits, e, s)
        };
        let (want, want_e, want_s) = run(Isa::Avx512);
        for isa in Isa::ALL {
            let (bits, e, s) = run(isa);
            assert_eq!(bits, want, "{} path", isa.name());
            if isa == Isa::Portable {
                for (x, y) in e.iter().zip(&want_e) {
                    assert!((x.to_bits() as i64 - y.to_bits() as i64).abs() <= 4);
                }
                assert!((s - want_s).abs() <= 1e-6 * want_s);
            } else {
                assert_eq!(e, want_e, "{} path", isa.name());
                assert_eq!(s.to_bits(), want_s.to_bits(), "{} path", isa.name());
            }
        }
    }

    #[test]
    fn masked_entries_and_nans_do_not_win_the_max() {
        let mut x = vec![1.0f32, 2.0, 3.0];
        let m = scale_add_max(&mut x, &[0.0, f32::NEG_INFINITY, 0.0], 1.0);
        assert_eq!(m, 3.0);
        assert_eq!(x[1], f32::NEG_INFINITY);
        assert_eq!(max(&[f32::NAN, 1.0, -2.0]), 1.0);
        assert_eq!(max(&[]), f32::NEG_INFINITY);
        // a fully masked row sums exp(−∞ − (−∞))… callers shift by a finite max; −∞ − 0 → 0
        let mut y = vec![f32::NEG_INFINITY; 40];
        assert_eq!(exp_shifted_sum(&mut y, 0.0), 0.0);
    }
}

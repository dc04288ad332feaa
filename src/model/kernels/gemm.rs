//! Products by the `gemm` crate (the one candle's matmul uses) on row-major slices, serial or
//! over rayon's threads: the projections, attention and the fused head call these.

use super::Real;

/// `dst[m, n] (+)= a[m, k] · b[k, n]` by the `gemm` crate (the one candle's matmul uses), each
/// operand given as (slice, row stride, column stride), `dst` as (slice, row stride) with unit
/// column stride. `parallel`: split the product over rayon's threads (for one big product), or
/// not (for many small ones, already spread over threads by the caller).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm<T: Real>(
    m: usize,
    n: usize,
    k: usize,
    dst: (&mut [T], usize),
    accumulate: bool,
    a: (&[T], isize, isize),
    b: (&[T], isize, isize),
    parallel: bool,
) {
    let (d, rs) = dst;
    // SAFETY: `d` is an exclusively borrowed, initialised slice of `d.len()` elements
    unsafe {
        gemm_raw(
            m,
            n,
            k,
            (d.as_mut_ptr(), d.len(), rs),
            accumulate,
            a,
            b,
            parallel,
        )
    }
}

/// `a[m, k] · b[k, n]` into a new row-major `[m, n]` vector (operands as in [`gemm`]). The
/// vector is not zero-filled first: gemm writes every element without reading it.
pub(crate) fn gemm_new<T: Real>(
    m: usize,
    n: usize,
    k: usize,
    a: (&[T], isize, isize),
    b: (&[T], isize, isize),
    parallel: bool,
) -> Vec<T> {
    if k == 0 || m == 0 || n == 0 {
        return vec![T::ZERO; m * n];
    }
    let mut out: Vec<T> = Vec::with_capacity(m * n);
    // SAFETY: the capacity holds m·n elements; without accumulation gemm writes each of them
    // and reads none, so after it returns all m·n are initialised.
    unsafe {
        gemm_raw(m, n, k, (out.as_mut_ptr(), m * n, n), false, a, b, parallel);
        out.set_len(m * n);
    }
    out
}

/// [`gemm`] on a destination given as (pointer, elements it may reach, row stride).
///
/// # Safety
/// `dst.0` must be valid for writes of `dst.1` elements, not overlap `a` or `b`, and be
/// initialised when `accumulate` is set.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_raw<T: Real>(
    m: usize,
    n: usize,
    k: usize,
    dst: (*mut T, usize, usize),
    accumulate: bool,
    a: (&[T], isize, isize),
    b: (&[T], isize, isize),
    parallel: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    let last = |rows: usize, rs: isize, cols: usize, cs: isize| {
        (rows.max(1) - 1) as isize * rs + (cols.max(1) - 1) as isize * cs
    };
    assert!((m - 1) * dst.2 + n <= dst.1, "gemm: destination too small");
    if k > 0 {
        assert!(
            last(m, a.1, k, a.2) < a.0.len() as isize,
            "gemm: lhs too small"
        );
        assert!(
            last(k, b.1, n, b.2) < b.0.len() as isize,
            "gemm: rhs too small"
        );
    }
    let threads = rayon::current_num_threads();
    let threaded = parallel && threads > 1;
    let banded = threaded
        && n <= ROW_SPLIT_MAX_N
        && m >= threads * ROW_SPLIT_MIN_ROWS
        && k > 0
        && a.1 >= 0
        && a.2 >= 0;
    if banded {
        // Narrow products: one band of rows per thread, each a serial gemm (see ROW_SPLIT_MAX_N).
        use rayon::prelude::*;
        let per = m.div_ceil(threads);
        let base = dst.0 as usize;
        (0..threads).into_par_iter().for_each(|i| {
            let r0 = i * per;
            if r0 >= m {
                return;
            }
            let rows = per.min(m - r0);
            // SAFETY: band i covers rows r0..r0+rows of the destination and of `a`, inside
            // the extents asserted above; the bands do not overlap, so each thread writes its
            // own rows only.
            unsafe {
                let d = (base as *mut T).add(r0 * dst.2);
                let a_rows = &a.0[(r0 as isize * a.1) as usize..];
                gemm_call(
                    rows,
                    n,
                    k,
                    (d, dst.1 - r0 * dst.2, dst.2),
                    accumulate,
                    (a_rows, a.1, a.2),
                    b,
                    ::gemm::Parallelism::None,
                )
            }
        });
        return;
    }
    let par = if threaded {
        ::gemm::Parallelism::Rayon(threads)
    } else {
        ::gemm::Parallelism::None
    };
    // SAFETY: the asserts above keep every index the strides reach inside `a`, `b` and the
    // destination's extent; the caller guarantees the destination is writable and unaliased.
    unsafe { gemm_call(m, n, k, dst, accumulate, a, b, par) }
}

/// Products at most this wide are split into bands of rows, one serial gemm per thread, rather
/// than left to gemm's own threading: for them gemm packs the weight-side operand on one thread
/// while the other waits. Measured (`x·Wᵀ`, 2 threads against 1, Intel Xeon): banded
/// 1.85–1.92×, gemm's own 1.6–1.7× up to 1,024 columns; from 1,536 gemm's own is as good. On an
/// AMD EPYC (`cargo bench --bench main -- kernels/linear`, 2 threads): 256 → 256 +28%, the
/// 135M shape's products within noise; the small train step +4–35% in four paired runs.
const ROW_SPLIT_MAX_N: usize = 1024;
/// Fewest rows per band worth a thread.
const ROW_SPLIT_MIN_ROWS: usize = 64;

/// The `gemm::gemm` call behind [`gemm_raw`] (row-major operands as there).
///
/// # Safety
/// As [`gemm_raw`]; the extents must already be checked.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_call<T: Real>(
    m: usize,
    n: usize,
    k: usize,
    dst: (*mut T, usize, usize),
    accumulate: bool,
    a: (&[T], isize, isize),
    b: (&[T], isize, isize),
    par: ::gemm::Parallelism,
) {
    // SAFETY: forwarded from the caller
    unsafe {
        ::gemm::gemm(
            m,
            n,
            k,
            dst.0,
            1,
            dst.2 as isize,
            accumulate,
            a.0.as_ptr(),
            a.2,
            a.1,
            b.0.as_ptr(),
            b.2,
            b.1,
            if accumulate { T::ONE } else { T::ZERO },
            T::ONE,
            false,
            false,
            false,
            par,
        )
    }
}

#[cfg(test)]
mod tests {
    /// Over two threads a product is split into bands of rows or left to gemm's own threads;
    /// either way it equals the serial one, for every operand layout the kernels use, with and
    /// without accumulation, at band edges that do not fall on a block.
    #[test]
    fn the_threaded_products_equal_the_serial_one() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let val = |i: usize| ((i * 7919 % 1013) as f32 - 506.0) / 512.0;
        for (m, n, k) in [
            (128, 256, 33),
            (257, 7, 64),
            (300, 1024, 5),
            (129, 1536, 17),
            (64, 64, 3),
        ] {
            let a: Vec<f32> = (0..m * k).map(val).collect();
            let b: Vec<f32> = (0..k * n).map(|i| val(i + 11)).collect();
            // a as [m, k] row-major or its transpose's storage; b as [k, n] or [n, k] storage
            for a_t in [false, true] {
                for b_t in [false, true] {
                    let sa = if a_t {
                        (1, m as isize)
                    } else {
                        (k as isize, 1)
                    };
                    let sb = if b_t {
                        (1, k as isize)
                    } else {
                        (n as isize, 1)
                    };
                    let serial =
                        super::gemm_new(m, n, k, (&a, sa.0, sa.1), (&b, sb.0, sb.1), false);
                    let threaded = pool.install(|| {
                        super::gemm_new(m, n, k, (&a, sa.0, sa.1), (&b, sb.0, sb.1), true)
                    });
                    let mut acc = serial.clone();
                    pool.install(|| {
                        super::gemm(
                            m,
                            n,
                            k,
                            (&mut acc, n),
                            true,
                            (&a, sa.0, sa.1),
                            (&b, sb.0, sb.1),
                            true,
                        )
                    });
                    for i in 0..m * n {
                        let tol = 1e-5 * (1.0 + serial[i].abs());
                        assert!(
                            (threaded[i] - serial[i]).abs() <= tol,
                            "{m}x{n}x{k} {a_t} {b_t} [{i}]"
                        );
                        assert!(
                            (acc[i] - 2.0 * serial[i]).abs() <= 2.0 * tol,
                            "accumulate [{i}]"
                        );
                    }
                    // the naive product, in f64, for one row per band edge
                    for &r in &[0, m / 2, m - 1] {
                        for c in 0..n {
                            let want: f64 = (0..k)
                                .map(|j| {
                                    let x = if a_t { a[j * m + r] } else { a[r * k + j] } as f64;
                                    let y = if b_t { b[c * k + j] } else { b[j * n + c] } as f64;
                                    x * y
                                })
                                .sum();
                            assert!(
                                (threaded[r * n + c] as f64 - want).abs()
                                    <= 1e-4 * (1.0 + want.abs())
                            );
                        }
                    }
                }
            }
        }
    }
}

//! Fused CPU kernels with their own backward pass, as candle custom ops.
//!
//! candle 0.11's fused `softmax_last_dim`, `rms_norm` and `rope` cut the autograd graph; the
//! differentiable compositions in [`super::layers`] are correct but run one allocation and one
//! pass over memory per primitive, forward and backward. Each op here does one pass forward and
//! one pass backward over rows (rayon-parallel), with a gradient test against the composition and
//! finite differences in its own file.
//!
//! The kernels run on CPU tensors in f32 and f64; the model uses them for CPU f32 ([`enabled`]),
//! and keeps the compositions for other devices and dtypes. AdamW's in-place update also runs on
//! CUDA (f32 and bf16 parameters, `adamw.cu`, built into PTX by `build.rs` under the `cuda`
//! feature), and so do RMSNorm, RoPE and SwiGLU (`rms_norm.cu`, `rope.cu`, `swiglu.cu`) and the
//! output head + cross-entropy by vocabulary blocks ([`blocked_head`]) where
//! `SFT_EVAL_CUDA_FUSED=1` ([`cuda_enabled`]; off until checked on a GPU). `SFT_EVAL_FUSED=0`
//! turns them all off (to compare, or to rule them out when chasing a numerical difference).

pub mod adamw;
pub mod attention;
pub mod blocked_head;
pub mod cross_entropy;
#[cfg(feature = "cuda")]
mod cuda;
pub mod exp;
mod gemm;
pub mod heads;
pub mod linear;
pub mod linear_cross_entropy;
#[cfg(test)]
mod paths;
pub mod rms_norm;
pub mod rope;
pub mod rows;
pub mod skinny;
pub mod softmax;
pub mod swiglu;

/// candle allocates a fresh buffer for every op's output, forward and backward; glibc malloc
/// returns large freed blocks to the kernel, so each step faults them in again (~10× the page
/// faults of mimalloc on the small train-step benchmark). Declared here, in the library, so the
/// binary, the tests and the benchmarks all run with the allocator that was measured.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::cell::Cell;
use std::sync::OnceLock;

use candle_core::{CpuStorage, DType, Layout, Result, Tensor};

pub(crate) use gemm::{gemm, gemm_new};

thread_local! {
    static OVERRIDE: Cell<Option<bool>> = const { Cell::new(None) };
    static TAKEN: Cell<usize> = const { Cell::new(0) };
}

/// mimalloc's `mi_option_purge_delay` (its C enum value in mimalloc 2; `libmimalloc-sys` names
/// the options around it but not this one).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keep freed memory for reuse instead of returning it to the kernel after mimalloc's default
/// 10 ms: a train step frees and reallocates the same parameter-sized buffers (gradients, the
/// output head's gradient), and each return made the next step fault them in again, zeroed. On
/// the 135M train step (1 thread) that was 25% of the time in the kernel's `clear_page`, and
/// keeping it took the step from 60 to 77 tok/s with the peak resident set 4.41 GiB instead of
/// 4.35. `MIMALLOC_PURGE_DELAY`, when set, wins.
fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one of mimalloc's process-wide options, read on each purge decision
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
    }
}

/// The instruction sets the hand-written kernels come in (those that are dispatched at run
/// time; see [`isa`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512F, 16 f32 lanes
    Avx512,
    /// AVX2 with FMA, 8 lanes
    Avx2,
    /// whatever the compiler makes of portable code for the build's target
    Portable,
}

impl Isa {
    pub const ALL: [Isa; 3] = [Isa::Avx512, Isa::Avx2, Isa::Portable];

    /// Whether this CPU can run it.
    pub fn available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            Isa::Portable => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The name `SFT_EVAL_CPU_ISA` takes.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512",
            Isa::Avx2 => "avx2",
            Isa::Portable => "portable",
        }
    }
}

/// The instruction set of the dispatched kernels: the widest this CPU has, or the one
/// `SFT_EVAL_CPU_ISA` names (`avx512`, `avx2`, `portable`) when the CPU has it (else the widest,
/// so a forced path never faults). Read once per process.
pub fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        let best = Isa::ALL
            .into_iter()
            .find(|i| i.available())
            .unwrap_or(Isa::Portable);
        let asked = std::env::var(crate::env_vars::SFT_EVAL_CPU_ISA).ok();
        Isa::ALL
            .into_iter()
            .find(|i| asked.as_deref() == Some(i.name()) && i.available())
            .unwrap_or(best)
    })
}

/// Set up both thread pools a command runs on: candle's spin ([`tune_candle_pool`]), then
/// rayon's pool with the calling thread in it ([`join_thread_pool`]); returns rayon's thread
/// count. Call it once, first thing, on the thread that will run the model (`cli::run` and the
/// bench harness do); an error if rayon's pool was already started.
pub fn start_thread_pools() -> std::result::Result<usize, rayon::ThreadPoolBuildError> {
    tune_candle_pool();
    join_thread_pool()
}

/// Start rayon's global pool (RAYON_NUM_THREADS threads, else one per CPU) with the calling
/// thread as one of its workers when there are two or more, and return how many threads it
/// has. Call it once, first thing, on the thread that will run the model.
///
/// Why: a parallel loop started from a thread outside the pool is queued to a worker while the
/// caller sleeps, and woken again at the end: two context switches per op, and the caller's
/// core idle meanwhile. On the small-shape forward at 2 threads that was ~650 switches per
/// batch; as a worker, the caller runs its share itself (measured: 1.60 → 1.72 CPUs busy, train
/// step +7–12%; reports/bench/README.md). With one thread it stays outside (no gain measured
/// there, and a pool whose only worker is the caller could not run rayon work sent by another
/// thread while the caller waits for that thread). An error if the pool was already started.
fn join_thread_pool() -> std::result::Result<usize, rayon::ThreadPoolBuildError> {
    // rayon's own rule for the default size, read ahead of it
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mut pool = rayon::ThreadPoolBuilder::new().num_threads(threads);
    if threads >= 2 {
        pool = pool.use_current_thread();
    }
    pool.build_global()?;
    Ok(rayon::current_num_threads())
}

/// The spin limit given to candle's own worker pool when the user has not set one.
pub const CANDLE_SPIN_LIMIT: &str = "1000";

/// Make candle's worker pool park sooner: after each job its threads spin 25,000 iterations
/// (candle 0.11's default) before they sleep, and on a small machine that spin takes the core
/// the next op's rayon worker needs (measured: 11.6% of a 2-thread train step's samples). With
/// 1,000 the small-shape train step gains 9% (Xeon) to 15–23% (EPYC) at 2 threads; one thread
/// is unaffected (candle starts no workers there). `CANDLE_BARRIER_POOL_SPIN_LIMIT` set by the
/// user wins. Call it
/// before the first tensor op and before other threads start: candle reads it once, and
/// setting a variable is only sound while one thread runs.
fn tune_candle_pool() {
    let var = crate::env_vars::CANDLE_BARRIER_POOL_SPIN_LIMIT;
    if std::env::var_os(var).is_none() {
        std::env::set_var(var, CANDLE_SPIN_LIMIT);
    }
}

/// Whether the model should take the fused path for `t`: CPU, f32, not switched off. The first
/// call also tunes the allocator for tensor work ([`keep_freed_memory`]), with or without an
/// override from [`with_fused`]. (AdamW's update also has a CUDA kernel: [`adamw::applies`].)
pub fn enabled(t: &Tensor) -> bool {
    taken(switched_on() && t.device().is_cpu() && t.dtype() == DType::F32)
}

/// Whether the model should take a fused path written for CUDA (RMSNorm, RoPE, SwiGLU; the
/// output head with the cross-entropy by blocks) for `t`: a `cuda` build, `t` on a CUDA device in
/// f32 or bf16, fused kernels not switched off, and `SFT_EVAL_CUDA_FUSED=1` (off by default until
/// they have been checked on a GPU).
pub fn cuda_enabled(t: &Tensor) -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    let opted_in = || {
        *ON.get_or_init(|| {
            std::env::var(crate::env_vars::SFT_EVAL_CUDA_FUSED).is_ok_and(|v| v == "1")
        })
    };
    taken(
        cfg!(feature = "cuda")
            && t.device().is_cuda()
            && matches!(t.dtype(), DType::F32 | DType::BF16)
            && switched_on()
            && opted_in(),
    )
}

/// Whether fused kernels are on at all: `SFT_EVAL_FUSED` is not `0`, or [`with_fused`] says so
/// on this thread. The first call tunes the allocator ([`keep_freed_memory`]).
fn switched_on() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    static ALLOCATOR: OnceLock<()> = OnceLock::new();
    ALLOCATOR.get_or_init(keep_freed_memory);
    OVERRIDE.with(Cell::get).unwrap_or_else(|| {
        *ON.get_or_init(|| {
            std::env::var(crate::env_vars::SFT_EVAL_FUSED).map_or(true, |v| v != "0")
        })
    })
}

/// Count a decision for the fused path ([`fused_path_taken`]) and pass it through.
fn taken(yes: bool) -> bool {
    if yes {
        TAKEN.with(|c| c.set(c.get() + 1));
    }
    yes
}

/// How many times [`enabled`] chose the fused path on this thread (tests check that it did).
pub fn fused_path_taken() -> usize {
    TAKEN.with(Cell::get)
}

/// Run `f` with the fused kernels switched on or off on this thread (tests compare the two
/// paths through a whole model).
pub fn with_fused<R>(on: bool, f: impl FnOnce() -> R) -> R {
    let prev = OVERRIDE.with(|o| o.replace(Some(on)));
    let out = f();
    OVERRIDE.with(|o| o.set(prev));
    out
}

/// The float types the kernels are written for.
pub(crate) trait Real:
    Copy
    + Send
    + Sync
    + PartialOrd
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::Neg<Output = Self>
    + std::ops::AddAssign
    + 'static
{
    const ZERO: Self;
    const ONE: Self;
    const NEG_INF: Self;
    fn from_f64(v: f64) -> Self;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn sqrt(self) -> Self;
    fn max(self, o: Self) -> Self;
    /// `x ← exp(x)` over a slice. f32 runs at the CPU's width ([`exp`]: AVX-512, AVX2+FMA or
    /// `wide`'s eight lanes; within 2 ulp of libm; libm's scalar `expf` was 4% of a train
    /// step); f64 stays scalar (tests).
    fn exp_inplace(xs: &mut [Self]);
    /// Row operations ([`rows`]: f32 at the CPU's width, the same bits on every path; f64 one
    /// element at a time).
    fn row_max(xs: &[Self]) -> Self;
    fn row_dot(a: &[Self], b: &[Self]) -> Self;
    /// `x ← x·scale + mask`, returning the new max.
    fn row_scale_add_max(xs: &mut [Self], mask: &[Self], scale: Self) -> Self;
    /// `x ← exp(x − shift)`, returning the new sum.
    fn row_exp_shifted_sum(xs: &mut [Self], shift: Self) -> Self;
    fn row_scale(xs: &mut [Self], s: Self);
}

macro_rules! real {
    ($t:ty, $exp:ident, $rows:path) => {
        impl Real for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const NEG_INF: Self = <$t>::NEG_INFINITY;
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            fn max(self, o: Self) -> Self {
                <$t>::max(self, o)
            }
            fn exp_inplace(xs: &mut [Self]) {
                $exp(xs)
            }
            fn row_max(xs: &[Self]) -> Self {
                use $rows as r;
                r::max(xs)
            }
            fn row_dot(a: &[Self], b: &[Self]) -> Self {
                use $rows as r;
                r::dot(a, b)
            }
            fn row_scale_add_max(xs: &mut [Self], mask: &[Self], scale: Self) -> Self {
                use $rows as r;
                r::scale_add_max(xs, mask, scale)
            }
            fn row_exp_shifted_sum(xs: &mut [Self], shift: Self) -> Self {
                use $rows as r;
                r::exp_shifted_sum(xs, shift)
            }
            fn row_scale(xs: &mut [Self], s: Self) {
                use $rows as r;
                r::scale(xs, s)
            }
        }
    };
}
real!(f32, exp_f32, rows);
real!(f64, exp_scalar, rows::serial);

fn exp_f32(xs: &mut [f32]) {
    exp::exp_inplace(xs)
}

fn exp_scalar(xs: &mut [f64]) {
    for x in xs {
        *x = x.exp();
    }
}

/// The contiguous data of a storage/layout pair, or an error naming the op.
pub(crate) fn contiguous<'a, T: candle_core::WithDType>(
    op: &str,
    s: &'a CpuStorage,
    l: &Layout,
) -> Result<&'a [T]> {
    let data = s.as_slice::<T>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("{op}: input must be contiguous"),
    }
}

/// The CPU storage behind a tensor an op carries (attention's mask, RoPE's tables), or an error
/// naming the op.
pub(crate) fn cpu_storage<'a>(op: &str, s: &'a candle_core::Storage) -> Result<&'a CpuStorage> {
    match s {
        candle_core::Storage::Cpu(c) => Ok(c),
        _ => candle_core::bail!("{op}: CPU tensors only"),
    }
}

/// Rows per rayon task: enough work per task that scheduling costs stay small.
pub(crate) fn rows_per_task(row_len: usize) -> usize {
    (16_384 / row_len.max(1)).max(1)
}

#[cfg(test)]
pub(crate) mod testutil {
    use candle_core::{Device, Result, Tensor, Var};

    /// Deterministic pseudo-random values in [-1, 1).
    pub fn lcg(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
            })
            .collect()
    }

    pub fn rand(shape: &[usize], seed: u64) -> Tensor {
        let n = shape.iter().product();
        Tensor::from_vec(lcg(n, seed), shape, &Device::Cpu).unwrap()
    }

    /// Largest |a - b| / max(|b|, floor) over all elements.
    pub fn max_rel(a: &Tensor, b: &Tensor, floor: f64) -> f64 {
        let a: Vec<f64> = a
            .to_dtype(candle_core::DType::F64)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let b: Vec<f64> = b
            .to_dtype(candle_core::DType::F64)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs() / y.abs().max(floor))
            .fold(0.0, f64::max)
    }

    /// Gradients of `sum(f(inputs) * r)` w.r.t. each input (f64), by autograd.
    pub fn autograd(
        inputs: &[Tensor],
        r: &Tensor,
        f: &dyn Fn(&[Tensor]) -> Result<Tensor>,
    ) -> (Tensor, Vec<Tensor>) {
        let vars: Vec<Var> = inputs
            .iter()
            .map(|t| Var::from_tensor(t).unwrap())
            .collect();
        let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let y = f(&ts).unwrap();
        let loss = y.broadcast_mul(r).unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        let g = ts
            .iter()
            .map(|t| grads.get(t).expect("gradient reaches the input").clone())
            .collect();
        (y, g)
    }

    /// A head + cross-entropy `f(hidden, weight, targets)` on rows whose logits reach ±80 (`exp`
    /// overflows f32 without a running max), one vocabulary entry per block.
    pub fn check_large_logits(f: &dyn Fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor>) {
        let dev = Device::Cpu;
        let x = Tensor::new(&[[8f32, -8.0], [0.0, 0.0]], &dev).unwrap();
        let w = Tensor::new(&[[10f32, 0.0], [-10.0, 0.0], [0.0, 1.0]], &dev).unwrap();
        let t = Tensor::new(&[1u32, 2], &dev).unwrap();
        let y: Vec<f32> = f(&x, &w, &t).unwrap().to_vec1().unwrap();
        assert!((y[0] - 160.0).abs() < 1e-3, "{y:?}");
        assert!((y[1] - 3f32.ln()).abs() < 1e-6, "{y:?}");
    }

    /// Central finite differences of `sum(f(inputs) * r)` w.r.t. input `which` (f64), worst
    /// relative error against `analytic`.
    pub fn finite_diff_err(
        inputs: &[Tensor],
        which: usize,
        r: &Tensor,
        analytic: &Tensor,
        f: &dyn Fn(&[Tensor]) -> Result<Tensor>,
    ) -> f64 {
        let eps = 1e-6;
        let base: Vec<f64> = inputs[which].flatten_all().unwrap().to_vec1().unwrap();
        let g: Vec<f64> = analytic.flatten_all().unwrap().to_vec1().unwrap();
        let eval = |v: Vec<f64>| -> f64 {
            let mut ins = inputs.to_vec();
            ins[which] = Tensor::from_vec(v, inputs[which].shape(), &Device::Cpu).unwrap();
            f(&ins)
                .unwrap()
                .broadcast_mul(r)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar()
                .unwrap()
        };
        let mut worst = 0f64;
        for i in 0..base.len() {
            let (mut p, mut m) = (base.clone(), base.clone());
            p[i] += eps;
            m[i] -= eps;
            let num = (eval(p) - eval(m)) / (2.0 * eps);
            worst = worst.max((num - g[i]).abs() / num.abs().max(1e-3));
        }
        worst
    }
}

#[cfg(test)]
mod tests {
    use super::Real;

    #[test]
    fn freed_memory_is_kept() {
        let t = candle_core::Tensor::zeros(2, candle_core::DType::F32, &candle_core::Device::Cpu)
            .unwrap();
        super::enabled(&t);
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            // SAFETY: reads a process-wide option
            let v = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
            assert_eq!(v, -1);
        }
    }

    #[test]
    fn vector_exp_is_within_two_ulp_of_libm_and_handles_the_edges() {
        // a dense sweep of the range softmax and the losses feed it, in lengths that leave tails
        let xs: Vec<f32> = (0..20_003).map(|i| -100.0 + i as f32 * 0.0094).collect();
        let mut ys = xs.clone();
        f32::exp_inplace(&mut ys);
        for (&x, &y) in xs.iter().zip(&ys) {
            let want = x.exp();
            let ulp = (want.to_bits() as i64 - y.to_bits() as i64).abs();
            assert!(
                ulp <= 2 || want < f32::MIN_POSITIVE,
                "exp({x}) = {y}, libm {want}"
            );
        }
        let mut edges = [-1e9f32, f32::NEG_INFINITY, 0.0, 88.0, 89.0];
        f32::exp_inplace(&mut edges);
        assert_eq!(&edges[..3], &[0.0, 0.0, 1.0]);
        assert!((edges[3] - 88f32.exp()).abs() <= 2.0 * f32::EPSILON * edges[3]);
        assert_eq!(edges[4], f32::INFINITY);
    }
}

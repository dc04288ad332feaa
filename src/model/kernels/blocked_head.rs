//! The output head and the cross-entropy by vocabulary blocks on any device, built from candle
//! ops (on CUDA: cuBLAS products and candle's element-wise kernels): the same loss as
//! [`super::linear_cross_entropy`], which is CPU-only, without the `[rows, vocab]` logits or
//! their gradient ever existing whole (at V = 49,152 and 4,096 rows that is 805 MB each in f32).
//!
//! Forward, without a graph: for each block `Z = H · W_blkᵀ` (in the model's dtype, as the
//! logits would be), then in f32 a running log-sum-exp per row and the target's logit. The loss
//! enters the graph through a custom op of `(hidden, weight, loss)` that passes the loss through
//! and whose backward recomputes each block: `dZ = (exp(Z − lse) − onehot) · g`,
//! `dW_blk = dZᵀ · H`, `dH += dZ · W_blk`.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor, D};

/// Vocabulary entries per block (as [`super::linear_cross_entropy`]).
const BLOCK_COLS: usize = 4096;

/// `−log softmax(hidden · weightᵀ)[targets]` per row (f32; f64 for f64 inputs): `hidden` `[n, h]`, `weight` `[V, h]`
/// (the output head, as stored; same dtype as `hidden`), `targets` `[n]` u32. Gradients flow to
/// `hidden` and `weight`.
pub fn linear_cross_entropy_blocks(
    hidden: &Tensor,
    weight: &Tensor,
    targets: &Tensor,
    block: Option<usize>,
) -> Result<Tensor> {
    let name = "linear-cross-entropy-blocks";
    let (n, h) = hidden.dims2()?;
    let (v, wh) = weight.dims2()?;
    if wh != h || targets.dims() != [n] || hidden.dtype() != weight.dtype() {
        candle_core::bail!(
            "{name}: hidden {:?} {:?}, weight {:?} {:?}, targets {:?}",
            hidden.dims(),
            hidden.dtype(),
            weight.dims(),
            weight.dtype(),
            targets.dims()
        );
    }
    let targets = targets.to_dtype(DType::U32)?.contiguous()?;
    if n > 0 {
        let top = targets.max(0)?.to_scalar::<u32>()? as usize;
        if top >= v {
            candle_core::bail!("{name}: target {top} outside a vocabulary of {v}");
        }
    }
    let block = block.unwrap_or(BLOCK_COLS).clamp(1, v.max(1));
    let work = work_dtype(hidden.dtype());
    let (hd, wd) = (hidden.detach(), weight.detach());
    let mut run: Option<(Tensor, Tensor)> = None; // running max and sum of exp, [n, 1]
    let mut picked = Tensor::zeros((n, 1), work, hidden.device())?;
    for v0 in (0..v).step_by(block) {
        let bw = block.min(v - v0);
        let z = logits_block(&hd, &wd, v0, bw)?;
        picked = (picked + (&z * onehot(&targets, v0, bw, work)?)?.sum_keepdim(D::Minus1)?)?;
        let zmax = z.max_keepdim(D::Minus1)?;
        run = Some(match run {
            None => {
                let s = z.broadcast_sub(&zmax)?.exp()?.sum_keepdim(D::Minus1)?;
                (zmax, s)
            }
            Some((m, s)) => {
                let m2 = m.maximum(&zmax)?;
                let s = ((s * (m - &m2)?.exp()?)?
                    + z.broadcast_sub(&m2)?.exp()?.sum_keepdim(D::Minus1)?)?;
                (m2, s)
            }
        });
    }
    let lse = match run {
        Some((m, s)) => (m + s.log()?)?,
        None => candle_core::bail!("{name}: an empty vocabulary"),
    };
    let nll = (&lse - picked)?.squeeze(1)?.contiguous()?;
    hidden.apply_op3(
        weight,
        &nll,
        BlockedHead {
            targets,
            lse,
            block,
        },
    )
}

/// What the log-sum-exp runs in: f64 for f64 inputs, else f32 (as the log-softmax does).
fn work_dtype(dt: DType) -> DType {
    if dt == DType::F64 {
        DType::F64
    } else {
        DType::F32
    }
}

/// `H · W[v0..v0 + bw]ᵀ` in the inputs' dtype, then in the work dtype: `[n, bw]`.
fn logits_block(h: &Tensor, w: &Tensor, v0: usize, bw: usize) -> Result<Tensor> {
    h.matmul(&w.narrow(0, v0, bw)?.t()?)?
        .to_dtype(work_dtype(h.dtype()))
}

/// `[n, bw]`: 1 where row `i`'s target is vocabulary entry `v0 + j`, else 0.
fn onehot(targets: &Tensor, v0: usize, bw: usize, dt: DType) -> Result<Tensor> {
    let cols = Tensor::arange(v0 as u32, (v0 + bw) as u32, targets.device())?.unsqueeze(0)?;
    targets.unsqueeze(1)?.broadcast_eq(&cols)?.to_dtype(dt)
}

/// Passes the loss through; its backward recomputes each block of logits.
struct BlockedHead {
    targets: Tensor,
    /// each row's log-sum-exp, `[n, 1]` in the work dtype
    lse: Tensor,
    block: usize,
}

impl BlockedHead {
    fn pass<S: BackendStorage>(&self, s: &S, l: &Layout) -> Result<(S, Shape)> {
        match l.contiguous_offsets() {
            Some((0, end)) if end == l.shape().elem_count() => {
                Ok((s.try_clone(l)?, l.shape().clone()))
            }
            _ => candle_core::bail!("{}: the loss must be contiguous", self.name()),
        }
    }
}

impl CustomOp3 for BlockedHead {
    fn name(&self) -> &'static str {
        "linear-cross-entropy-blocks"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        s: &CpuStorage,
        l: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.pass(s, l)
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        _: &candle_core::CudaStorage,
        _: &Layout,
        _: &candle_core::CudaStorage,
        _: &Layout,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        self.pass(s, l)
    }

    fn bwd(
        &self,
        hidden: &Tensor,
        weight: &Tensor,
        _loss: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (h, w) = (hidden.detach(), weight.detach());
        let v = w.dim(0)?;
        let work = self.lse.dtype();
        let g = grad.to_dtype(work)?.unsqueeze(1)?;
        let mut dh: Option<Tensor> = None;
        let mut dw = Vec::with_capacity(v.div_ceil(self.block));
        for v0 in (0..v).step_by(self.block) {
            let bw = self.block.min(v - v0);
            let z = logits_block(&h, &w, v0, bw)?;
            let p = z.broadcast_sub(&self.lse)?.exp()?;
            let dz = (p - onehot(&self.targets, v0, bw, work)?)?
                .broadcast_mul(&g)?
                .to_dtype(h.dtype())?;
            dw.push(dz.t()?.matmul(&h)?);
            let part = dz.matmul(&w.narrow(0, v0, bw)?)?.to_dtype(work)?;
            dh = Some(match dh {
                None => part,
                Some(acc) => (acc + part)?,
            });
        }
        let dh = match dh {
            Some(d) => d.to_dtype(h.dtype())?,
            None => h.zeros_like()?,
        };
        Ok((Some(dh), Some(Tensor::cat(&dw, 0)?), None))
    }
}

#[cfg(test)]
mod tests {
    use super::super::linear_cross_entropy::linear_cross_entropy_blocked;
    use super::super::testutil::*;
    use super::*;
    use candle_core::Device;

    fn composed(t: &[Tensor], targets: &Tensor) -> Result<Tensor> {
        let logits = t[0].matmul(&t[1].t()?)?;
        crate::model::layers::log_softmax(&logits)?
            .gather(&targets.unsqueeze(D::Minus1)?, D::Minus1)?
            .squeeze(D::Minus1)?
            .neg()
    }

    #[test]
    fn matches_the_fused_kernel_the_composition_and_finite_differences() {
        let dev = Device::Cpu;
        let (n, h, v) = (6, 5, 13);
        let x = (rand(&[n, h], 1) * 2.0).unwrap();
        let w = (rand(&[v, h], 2) * 2.0).unwrap();
        let targets = Tensor::new(&[0u32, 12, 3, 7, 7, 4], &dev).unwrap();
        let r = Tensor::new(&[0.7f64, -1.3, 0.0, 2.0, 0.4, 1.0], &dev).unwrap();
        let ins = [x, w];
        // in f64: the fused CPU kernel and the composition (its log-softmax runs in f32)
        let kernel = |t: &[Tensor]| linear_cross_entropy_blocked(&t[0], &t[1], &targets, Some(4));
        let (yk, gk) = autograd(&ins, &r, &kernel);
        for block in [None, Some(4), Some(5), Some(1)] {
            let blocks = |t: &[Tensor]| linear_cross_entropy_blocks(&t[0], &t[1], &targets, block);
            let (y, g) = autograd(&ins, &r, &blocks);
            assert!(max_rel(&y, &yk, 1e-6) < 1e-12, "{block:?}");
            for (a, b) in g.iter().zip(&gk) {
                assert!(max_rel(a, b, 1e-6) < 1e-10, "{block:?}");
            }
            for (which, gi) in g.iter().enumerate() {
                let fd = finite_diff_err(&ins, which, &r, gi, &blocks);
                assert!(fd < 1e-6, "{block:?} input {which}: {fd:e}");
            }
        }
        // f32 and bf16 (the CUDA path's dtypes): at least as close to the f64 result as the
        // composition in the same dtype, measured against each tensor's largest value
        let r32 = r.to_dtype(DType::F32).unwrap();
        let err = |a: &Tensor, b: &Tensor| -> f64 {
            let a = a.to_dtype(DType::F64).unwrap();
            let largest = |t: &Tensor| -> f64 {
                t.abs()
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .max(0)
                    .unwrap()
                    .to_scalar()
                    .unwrap()
            };
            largest(&(&a - b).unwrap()) / largest(b)
        };
        for (dt, tol) in [(DType::F32, 1e-6), (DType::BF16, 2e-2)] {
            let ins_dt: Vec<Tensor> = ins.iter().map(|t| t.to_dtype(dt).unwrap()).collect();
            let blocks =
                |t: &[Tensor]| linear_cross_entropy_blocks(&t[0], &t[1], &targets, Some(4));
            let comp = |t: &[Tensor]| composed(t, &targets);
            let (y, g) = autograd(&ins_dt, &r32, &blocks);
            let (yc, gc) = autograd(&ins_dt, &r32, &comp);
            assert_eq!(y.dtype(), DType::F32);
            let pairs = [(&y, &yc, &yk)]
                .into_iter()
                .chain(g.iter().zip(&gc).zip(&gk).map(|((a, b), c)| (a, b, c)));
            for (i, (ours, theirs, exact)) in pairs.enumerate() {
                let (e, ec) = (err(ours, exact), err(theirs, exact));
                assert!(
                    e <= tol && e <= 1.5 * ec + 1e-7,
                    "{dt:?} output {i}: error {e:e}, the composition's {ec:e}"
                );
            }
        }
        let bad = Tensor::new(&[13u32, 0, 0, 0, 0, 0], &dev).unwrap();
        let err = linear_cross_entropy_blocks(&ins[0], &ins[1], &bad, None).unwrap_err();
        assert!(
            err.to_string().contains("outside a vocabulary of 13"),
            "{err}"
        );
    }

    #[test]
    fn large_logits_stay_finite() {
        check_large_logits(&|x, w, t| linear_cross_entropy_blocks(x, w, t, Some(1)));
    }
}

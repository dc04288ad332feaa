//! The output head and the cross-entropy in one op: `nll[i] = −log softmax(h[i] · Wᵀ)[t[i]]`,
//! computed one block of the vocabulary at a time, so that neither the `[rows, vocab]` logits nor
//! their gradient ever exist whole (at V = 49,152 and 1,024 rows that is 201 MB each).
//!
//! Forward: for each vocabulary block, `Z = H · W_blkᵀ` by gemm, then a running (online)
//! log-sum-exp per row. Backward: each row's log-sum-exp comes back as `nll + h · W[t]`, and for
//! each block `dZ = (exp(Z − lse) − onehot) · g` gives `dW_blk = dZᵀ · H` (the whole reduction
//! in one gemm) and `dH += dZ · W_blk`. The logits are computed twice, as activation
//! checkpointing does; in exchange the memory of the head is a block, not the vocabulary.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{contiguous, gemm, Real};

/// Vocabulary entries per block: 16 MiB of f32 logits for 1,024 rows. Fixed, not derived from
/// the number of rows, so that a row's loss does not depend on the batch it came in.
const BLOCK_COLS: usize = 4096;

/// `−log softmax(hidden · weightᵀ)[targets]` per row: `hidden` `[n, h]`, `weight` `[V, h]` (the
/// output head, as stored), `targets` `[n]` u32. CPU, f32/f64. Gradients flow to `hidden` and
/// `weight`.
pub fn linear_cross_entropy(hidden: &Tensor, weight: &Tensor, targets: &Tensor) -> Result<Tensor> {
    linear_cross_entropy_blocked(hidden, weight, targets, None)
}

/// [`linear_cross_entropy`] with a given vocabulary block (tests use small uneven blocks).
pub fn linear_cross_entropy_blocked(
    hidden: &Tensor,
    weight: &Tensor,
    targets: &Tensor,
    block: Option<usize>,
) -> Result<Tensor> {
    hidden.contiguous()?.apply_op3(
        &weight.contiguous()?,
        &targets.contiguous()?,
        LinearCrossEntropy { block },
    )
}

struct LinearCrossEntropy {
    block: Option<usize>,
}

struct Dims {
    n: usize,
    h: usize,
    v: usize,
    block: usize,
}

fn dims(name: &str, block: Option<usize>, hl: &Layout, wl: &Layout, tl: &Layout) -> Result<Dims> {
    let (n, h) = hl.shape().dims2()?;
    let (v, wh) = wl.shape().dims2()?;
    if wh != h || tl.dims() != [n] {
        candle_core::bail!(
            "{name}: hidden {:?}, weight {:?}, targets {:?}",
            hl.dims(),
            wl.dims(),
            tl.dims()
        );
    }
    let block = block.unwrap_or(BLOCK_COLS).clamp(1, v.max(1));
    Ok(Dims { n, h, v, block })
}

/// Row `i` of `x · W_blkᵀ` for vocabulary rows `v0..v0 + bw`: `z[i * bw + j] = x[i] · W[v0 + j]`.
fn block_logits<T: Real>(z: &mut [T], x: &[T], w: &[T], d: &Dims, v0: usize, bw: usize) {
    let h = d.h as isize;
    gemm(
        d.n,
        bw,
        d.h,
        (&mut z[..d.n * bw], bw),
        false,
        (x, h, 1),
        (&w[v0 * d.h..(v0 + bw) * d.h], 1, h),
        true,
    );
}

fn fwd<T: Real>(x: &[T], w: &[T], t: &[u32], d: &Dims) -> Vec<T> {
    // running max and sum of exp(z − max) per row
    let mut state: Vec<(T, T)> = vec![(T::NEG_INF, T::ZERO); d.n];
    let mut picked = vec![T::ZERO; d.n];
    let mut z = vec![T::ZERO; d.n * d.block];
    for v0 in (0..d.v).step_by(d.block) {
        let bw = d.block.min(d.v - v0);
        block_logits(&mut z, x, w, d, v0, bw);
        z[..d.n * bw]
            .par_chunks_mut(bw)
            .zip(state.par_iter_mut().zip(picked.par_iter_mut()))
            .zip(t.par_iter())
            .for_each(|((row, (st, pk)), &tg)| {
                let tg = tg as usize;
                if (v0..v0 + bw).contains(&tg) {
                    *pk = row[tg - v0];
                }
                let max = st.0.max(T::row_max(row));
                let sum = T::row_exp_shifted_sum(row, max);
                let carried = if st.1 == T::ZERO {
                    T::ZERO
                } else {
                    st.1 * (st.0 - max).exp()
                };
                *st = (max, carried + sum);
            });
    }
    state
        .iter()
        .zip(&picked)
        .map(|(&(max, sum), &p)| (max - p) + sum.ln())
        .collect()
}

/// `[n·h + V·h]`: the gradient w.r.t. `hidden`, then w.r.t. `weight`.
fn bwd<T: Real>(x: &[T], w: &[T], t: &[u32], nll: &[T], g: &[T], d: &Dims) -> Vec<T> {
    let mut out = vec![T::ZERO; d.n * d.h + d.v * d.h];
    let (dx, dw) = out.split_at_mut(d.n * d.h);
    // log-sum-exp of each row from the forward's result: nll = lse − z[target]
    let lse: Vec<T> = (0..d.n)
        .into_par_iter()
        .map(|i| {
            let (xr, wr) = (&x[i * d.h..(i + 1) * d.h], &w[t[i] as usize * d.h..][..d.h]);
            nll[i] + T::row_dot(xr, wr)
        })
        .collect();
    let mut z = vec![T::ZERO; d.n * d.block];
    let h = d.h as isize;
    for (bi, v0) in (0..d.v).step_by(d.block).enumerate() {
        let bw = d.block.min(d.v - v0);
        block_logits(&mut z, x, w, d, v0, bw);
        let zb = &mut z[..d.n * bw];
        zb.par_chunks_mut(bw)
            .zip(lse.par_iter().zip(g.par_iter()))
            .zip(t.par_iter())
            .for_each(|((row, (&l, &gi)), &tg)| {
                if gi == T::ZERO {
                    row.iter_mut().for_each(|v| *v = T::ZERO);
                    return;
                }
                T::row_exp_shifted_sum(row, l);
                T::row_scale(row, gi);
                let tg = tg as usize;
                if (v0..v0 + bw).contains(&tg) {
                    row[tg - v0] = row[tg - v0] - gi;
                }
            });
        let bw_i = bw as isize;
        // dW[v0 + j] = Σ_i dZ[i, j] · x[i]
        gemm(
            bw,
            d.h,
            d.n,
            (&mut dw[v0 * d.h..(v0 + bw) * d.h], d.h),
            false,
            (zb, 1, bw_i),
            (x, h, 1),
            true,
        );
        // dx[i] += Σ_j dZ[i, j] · W[v0 + j]
        gemm(
            d.n,
            d.h,
            bw,
            (&mut *dx, d.h),
            bi > 0,
            (zb, bw_i, 1),
            (&w[v0 * d.h..(v0 + bw) * d.h], h, 1),
            true,
        );
    }
    out
}

fn check_targets(name: &str, t: &[u32], v: usize) -> Result<()> {
    if let Some(bad) = t.iter().find(|&&x| x as usize >= v) {
        candle_core::bail!("{name}: target {bad} outside a vocabulary of {v}");
    }
    Ok(())
}

impl CustomOp3 for LinearCrossEntropy {
    fn name(&self) -> &'static str {
        "fused-linear-cross-entropy"
    }

    fn cpu_fwd(
        &self,
        hs: &CpuStorage,
        hl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        ts: &CpuStorage,
        tl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        let d = dims(name, self.block, hl, wl, tl)?;
        let t: &[u32] = contiguous(name, ts, tl)?;
        check_targets(name, t, d.v)?;
        let out = match (hs, ws) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => CpuStorage::F32(fwd(
                contiguous(name, hs, hl)?,
                contiguous(name, ws, wl)?,
                t,
                &d,
            )),
            (CpuStorage::F64(_), CpuStorage::F64(_)) => CpuStorage::F64(fwd(
                contiguous(name, hs, hl)?,
                contiguous(name, ws, wl)?,
                t,
                &d,
            )),
            _ => candle_core::bail!("{name}: f32 or f64 hidden states and weight of one dtype"),
        };
        Ok((out, Shape::from(d.n)))
    }

    fn bwd(
        &self,
        hidden: &Tensor,
        weight: &Tensor,
        targets: &Tensor,
        nll: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, h) = hidden.dims2()?;
        let v = weight.dim(0)?;
        let f64s = |t: &Tensor| t.to_dtype(candle_core::DType::F64)?.to_vec1::<f64>();
        // n values each: small next to the op's own work
        let op = LinearCrossEntropyBwd {
            block: self.block,
            targets: targets.to_vec1()?,
            nll: f64s(nll)?,
            grad: f64s(grad)?,
        };
        // the op's own inputs are contiguous (made so in `linear_cross_entropy_blocked`)
        let flat = hidden.apply_op2_no_bwd(weight, &op)?;
        let dx = flat.narrow(0, 0, n * h)?.reshape((n, h))?;
        let dw = flat.narrow(0, n * h, v * h)?.reshape((v, h))?;
        Ok((Some(dx), Some(dw), None))
    }
}

/// The backward pass, carrying the targets, the forward's result and the incoming gradient.
struct LinearCrossEntropyBwd {
    block: Option<usize>,
    targets: Vec<u32>,
    nll: Vec<f64>,
    grad: Vec<f64>,
}

impl LinearCrossEntropyBwd {
    fn run<T: Real>(&self, x: &[T], w: &[T], d: &Dims) -> Vec<T> {
        let nll: Vec<T> = self.nll.iter().map(|&v| T::from_f64(v)).collect();
        let grad: Vec<T> = self.grad.iter().map(|&v| T::from_f64(v)).collect();
        bwd(x, w, &self.targets, &nll, &grad, d)
    }
}

impl CustomOp2 for LinearCrossEntropyBwd {
    fn name(&self) -> &'static str {
        "fused-linear-cross-entropy-bwd"
    }

    fn cpu_fwd(
        &self,
        hs: &CpuStorage,
        hl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        let tl = Layout::contiguous(self.targets.len());
        let d = dims(name, self.block, hl, wl, &tl)?;
        check_targets(name, &self.targets, d.v)?;
        if self.nll.len() != d.n || self.grad.len() != d.n {
            candle_core::bail!("{name}: {} rows, {} gradients", d.n, self.grad.len());
        }
        let out = match (hs, ws) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => {
                CpuStorage::F32(self.run(contiguous(name, hs, hl)?, contiguous(name, ws, wl)?, &d))
            }
            (CpuStorage::F64(_), CpuStorage::F64(_)) => {
                CpuStorage::F64(self.run(contiguous(name, hs, hl)?, contiguous(name, ws, wl)?, &d))
            }
            _ => candle_core::bail!("{name}: f32 or f64 hidden states and weight of one dtype"),
        };
        Ok((out, Shape::from(d.n * d.h + d.v * d.h)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use candle_core::{DType, Device, D};

    /// The head and log-softmax from differentiable ops.
    fn composed(t: &[Tensor], targets: &Tensor) -> Result<Tensor> {
        let logits = t[0].matmul(&t[1].t()?)?;
        let max = logits.max_keepdim(D::Minus1)?.detach();
        let shifted = logits.broadcast_sub(&max)?;
        let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
        shifted
            .broadcast_sub(&lse)?
            .gather(&targets.unsqueeze(D::Minus1)?, D::Minus1)?
            .squeeze(D::Minus1)?
            .neg()
    }

    #[test]
    fn matches_composition_and_finite_differences_at_every_block_size() {
        let dev = Device::Cpu;
        let (n, h, v) = (5, 4, 11);
        let x = (rand(&[n, h], 1) * 2.0).unwrap();
        let w = (rand(&[v, h], 2) * 2.0).unwrap();
        let targets = Tensor::new(&[0u32, 10, 3, 7, 7], &dev).unwrap();
        // one row with no gradient: its backward is skipped and must give zeros
        let r = Tensor::new(&[0.7f64, -1.3, 0.0, 2.0, 0.4], &dev).unwrap();
        let ins = [x, w];
        let comp = |t: &[Tensor]| composed(t, &targets);
        let (yc, gc) = autograd(&ins, &r, &comp);
        // one block, uneven blocks, one column per block
        for block in [None, Some(4), Some(1)] {
            let fused = |t: &[Tensor]| linear_cross_entropy_blocked(&t[0], &t[1], &targets, block);
            let (yf, gf) = autograd(&ins, &r, &fused);
            assert!(max_rel(&yf, &yc, 1e-6) < 1e-12, "{block:?}");
            for (a, b) in gf.iter().zip(&gc) {
                assert!(max_rel(a, b, 1e-6) < 1e-10, "{block:?}");
            }
            for (which, g) in gf.iter().enumerate() {
                let fd = finite_diff_err(&ins, which, &r, g, &fused);
                assert!(fd < 1e-6, "{block:?} input {which}: {fd:e}");
            }
        }
        // f32 (the model's path, vectorised exp) against the f64 composition
        let (x32, w32) = (
            ins[0].to_dtype(DType::F32).unwrap(),
            ins[1].to_dtype(DType::F32).unwrap(),
        );
        let y32 = linear_cross_entropy_blocked(&x32, &w32, &targets, Some(3)).unwrap();
        assert!(max_rel(&y32, &yc, 1e-3) < 1e-5);
        let bad = Tensor::new(&[11u32, 0, 0, 0, 0], &dev).unwrap();
        let err = linear_cross_entropy(&ins[0], &ins[1], &bad).unwrap_err();
        assert!(
            err.to_string().contains("outside a vocabulary of 11"),
            "{err}"
        );
    }

    #[test]
    fn large_logits_stay_finite() {
        check_large_logits(&|x, w, t| linear_cross_entropy_blocked(x, w, t, Some(1)));
    }
}

//! Per-position cross-entropy `−log softmax(logits)[target]` in one pass over each row of
//! logits, and its gradient `softmax(logits) − onehot(target)` in one more: no `[rows, vocab]`
//! log-probabilities, exponentials or one-hot tensors are materialised.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{contiguous, Real};

/// `nll[i] = −log softmax(logits[i])[targets[i]]`; `logits` `[.., V]` (CPU, f32/f64), `targets`
/// u32 of the leading shape. Returns the leading shape. Every target must be `< V`.
pub fn cross_entropy_rows(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let dims = logits.dims();
    let v = *dims.last().unwrap_or(&0);
    let lead = &dims[..dims.len().saturating_sub(1)];
    if targets.dims() != lead {
        candle_core::bail!(
            "cross_entropy: targets {:?} for logits {:?}",
            targets.dims(),
            dims
        );
    }
    let rows: usize = lead.iter().product();
    let l2 = logits.reshape((rows, v))?.contiguous()?;
    let t1 = targets.flatten_all()?.contiguous()?;
    l2.apply_op2(&t1, CrossEntropy)?.reshape(lead)
}

struct CrossEntropy;

/// Writes `exp(x − max)` into `e`; returns `(max, Σ e)`.
fn row_exp<T: Real>(e: &mut [T], x: &[T]) -> (T, T) {
    let max = T::row_max(x);
    e.copy_from_slice(x);
    let sum = T::row_exp_shifted_sum(e, max);
    (max, sum)
}

fn fwd<T: Real>(x: &[T], t: &[u32], v: usize) -> Vec<T> {
    let mut out = vec![T::ZERO; t.len()];
    out.par_iter_mut()
        .zip(x.par_chunks(v).zip(t.par_iter()))
        .for_each_init(
            || vec![T::ZERO; v],
            |e, (o, (row, &tg))| {
                let (max, sum) = row_exp(e, row);
                *o = (max - row[tg as usize]) + sum.ln();
            },
        );
    out
}

fn bwd<T: Real>(x: &[T], t: &[u32], g: &[T], v: usize) -> Vec<T> {
    let mut out = vec![T::ZERO; x.len()];
    out.par_chunks_mut(v)
        .zip(x.par_chunks(v))
        .zip(t.par_iter().zip(g.par_iter()))
        .for_each(|((o, row), (&tg, &gi))| {
            let (_, sum) = row_exp(o, row);
            T::row_scale(o, gi / sum);
            o[tg as usize] = o[tg as usize] - gi;
        });
    out
}

fn check(n: &str, xl: &Layout, tl: &Layout, t: &[u32]) -> Result<usize> {
    let (rows, v) = xl.shape().dims2()?;
    if tl.dims() != [rows] {
        candle_core::bail!("{n}: targets {:?} for logits {:?}", tl.dims(), xl.dims());
    }
    if let Some(bad) = t.iter().find(|&&x| x as usize >= v) {
        candle_core::bail!("{n}: target {bad} outside a vocabulary of {v}");
    }
    Ok(v)
}

impl CustomOp2 for CrossEntropy {
    fn name(&self) -> &'static str {
        "fused-cross-entropy"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ts: &CpuStorage,
        tl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let n = self.name();
        let t: &[u32] = contiguous(n, ts, tl)?;
        let v = check(n, xl, tl, t)?;
        let out = match xs {
            CpuStorage::F32(_) => CpuStorage::F32(fwd(contiguous(n, xs, xl)?, t, v)),
            CpuStorage::F64(_) => CpuStorage::F64(fwd(contiguous(n, xs, xl)?, t, v)),
            _ => candle_core::bail!("{n}: f32 or f64 logits only"),
        };
        Ok((out, Shape::from(t.len())))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = logits.apply_op3_no_bwd(targets, &grad.contiguous()?, &CrossEntropyBwd)?;
        Ok((Some(g), None))
    }
}

struct CrossEntropyBwd;

impl CustomOp3 for CrossEntropyBwd {
    fn name(&self) -> &'static str {
        "fused-cross-entropy-bwd"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ts: &CpuStorage,
        tl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let n = self.name();
        let t: &[u32] = contiguous(n, ts, tl)?;
        let v = check(n, xl, tl, t)?;
        let out = match xs {
            CpuStorage::F32(_) => {
                CpuStorage::F32(bwd(contiguous(n, xs, xl)?, t, contiguous(n, gs, gl)?, v))
            }
            CpuStorage::F64(_) => {
                CpuStorage::F64(bwd(contiguous(n, xs, xl)?, t, contiguous(n, gs, gl)?, v))
            }
            _ => candle_core::bail!("{n}: f32 or f64 logits only"),
        };
        Ok((out, xl.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use candle_core::{DType, Device, D};

    #[test]
    fn matches_composition_and_finite_differences() {
        let dev = Device::Cpu;
        let x = (rand(&[2, 3, 7], 1) * 3.0).unwrap();
        let targets = Tensor::new(&[[0u32, 6, 3], [2, 2, 5]], &dev).unwrap();
        let r = rand(&[2, 3], 3);
        let fused = |t: &[Tensor]| cross_entropy_rows(&t[0], &targets);
        // log_softmax from differentiable ops, in f64
        let comp = |t: &[Tensor]| {
            let max = t[0].max_keepdim(D::Minus1)?.detach();
            let shifted = t[0].broadcast_sub(&max)?;
            let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
            shifted
                .broadcast_sub(&lse)?
                .gather(&targets.unsqueeze(D::Minus1)?, D::Minus1)?
                .squeeze(D::Minus1)?
                .neg()
        };
        let ins = [x];
        let (yf, gf) = autograd(&ins, &r, &fused);
        let (yc, gc) = autograd(&ins, &r, &comp);
        assert!(max_rel(&yf, &yc, 1e-6) < 1e-12);
        assert!(max_rel(&gf[0], &gc[0], 1e-6) < 1e-10);
        let fd = finite_diff_err(&ins, 0, &r, &gf[0], &fused);
        assert!(fd < 1e-6, "finite-difference error {fd:e}");
        let x32 = ins[0].to_dtype(DType::F32).unwrap();
        let a = cross_entropy_rows(&x32, &targets).unwrap();
        assert!(max_rel(&a, &yc, 1e-3) < 1e-5);
        // out-of-vocabulary targets are an error, not a wild read
        let bad = Tensor::new(&[7u32], &dev).unwrap();
        assert!(cross_entropy_rows(
            &ins[0]
                .narrow(0, 0, 1)
                .unwrap()
                .narrow(1, 0, 1)
                .unwrap()
                .squeeze(0)
                .unwrap(),
            &bad
        )
        .is_err());
    }
}

//! A projection `y = x · Wᵀ` (or `x · W` for GPT-2's Conv1D layout) as one op with its own
//! backward: `dX = dY · W`, `dW = dYᵀ · X`, each one gemm straight into the layout its tensor has.
//!
//! Why not candle's `reshape → matmul(W.t()) → reshape`: every node of the autograd graph costs
//! candle's backward a zero-filled buffer and an add of the node's size (it accumulates each
//! gradient into `zeros_like`), and the composition adds three nodes per projection beside the
//! product (both reshapes and the transposed weight, whose gradient also arrives transposed, so
//! its add runs strided). On the SmolLM2-135M train step those were 420 M of the graph's 1,000 M
//! floats. This op also skips the gradient of an input that does not need one (a frozen or
//! LoRA-adapted weight: no `dW` gemm at all).

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

use super::{contiguous, gemm_new, Real};

/// `x · Wᵀ` for `weight` `[out, in]` (as stored by transformers' `nn.Linear`), or `x · W` for
/// `weight` `[in, out]` when `in_out` (GPT-2's Conv1D). `x` `[.., in]`; the result `[.., out]`.
/// CPU, f32/f64. Gradients flow to `x` and `weight` where they track.
pub fn linear(x: &Tensor, weight: &Tensor, in_out: bool) -> Result<Tensor> {
    x.contiguous()?
        .apply_op2(&weight.contiguous()?, Linear { in_out })
}

#[derive(Clone, Copy)]
struct Linear {
    in_out: bool,
}

/// (rows, in, out) of a product, checked.
fn dims(name: &str, in_out: bool, xl: &Layout, wl: &Layout) -> Result<(usize, usize, usize)> {
    let (a, b) = wl.shape().dims2()?;
    let (inp, out) = if in_out { (a, b) } else { (b, a) };
    let last = xl.dims().last().copied().unwrap_or(0);
    if last != inp {
        candle_core::bail!(
            "{name}: input {:?} does not end in the weight's {inp} input features (weight {:?})",
            xl.dims(),
            wl.dims()
        );
    }
    Ok((xl.shape().elem_count() / inp.max(1), inp, out))
}

impl Linear {
    /// `W` read as the `[in, out]` right operand: (row stride, column stride).
    fn w_in_out(self, inp: usize, out: usize) -> (isize, isize) {
        if self.in_out {
            (out as isize, 1)
        } else {
            (1, inp as isize)
        }
    }

    fn fwd<T: Real>(self, x: &[T], w: &[T], rows: usize, inp: usize, out: usize) -> Vec<T> {
        let (rs, cs) = self.w_in_out(inp, out);
        gemm_new(rows, out, inp, (x, inp as isize, 1), (w, rs, cs), true)
    }

    /// `dX[rows, in] = dY[rows, out] · Wᵀ[out, in]`.
    fn grad_x<T: Real>(self, dy: &[T], w: &[T], rows: usize, inp: usize, out: usize) -> Vec<T> {
        let (rs, cs) = self.w_in_out(inp, out);
        // W as [in, out] with strides (rs, cs), so its transpose swaps them
        gemm_new(rows, inp, out, (dy, out as isize, 1), (w, cs, rs), true)
    }

    /// `dW` in the weight's own layout: `dYᵀ · X` `[out, in]`, or `Xᵀ · dY` `[in, out]`.
    fn grad_w<T: Real>(self, dy: &[T], x: &[T], rows: usize, inp: usize, out: usize) -> Vec<T> {
        let (o, i, r) = (out as isize, inp as isize, rows);
        if self.in_out {
            gemm_new(inp, out, r, (x, 1, i), (dy, o, 1), true)
        } else {
            gemm_new(out, inp, r, (dy, 1, o), (x, i, 1), true)
        }
    }
}

impl CustomOp2 for Linear {
    fn name(&self) -> &'static str {
        "fused-linear"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let n = self.name();
        let (rows, inp, out) = dims(n, self.in_out, xl, wl)?;
        let y = match (xs, ws) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => CpuStorage::F32(self.fwd(
                contiguous(n, xs, xl)?,
                contiguous(n, ws, wl)?,
                rows,
                inp,
                out,
            )),
            (CpuStorage::F64(_), CpuStorage::F64(_)) => CpuStorage::F64(self.fwd(
                contiguous(n, xs, xl)?,
                contiguous(n, ws, wl)?,
                rows,
                inp,
                out,
            )),
            _ => candle_core::bail!("{n}: f32 or f64, both operands alike"),
        };
        let mut shape = xl.dims().to_vec();
        *shape.last_mut().expect("dims checked") = out;
        Ok((y, Shape::from(shape)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let dx = if x.track_op() {
            Some(grad.apply_op2_no_bwd(
                w,
                &Grad {
                    op: *self,
                    of: Of::Input,
                },
            )?)
        } else {
            None
        };
        let dw = if w.track_op() {
            Some(grad.apply_op2_no_bwd(
                x,
                &Grad {
                    op: *self,
                    of: Of::Weight,
                },
            )?)
        } else {
            None
        };
        Ok((dx, dw))
    }
}

#[derive(Clone, Copy)]
enum Of {
    /// `(dY, W) → dX`
    Input,
    /// `(dY, X) → dW`
    Weight,
}

struct Grad {
    op: Linear,
    of: Of,
}

impl Grad {
    fn run<T: Real>(
        &self,
        dy: &[T],
        other: &[T],
        ol: &Layout,
        dyl: &Layout,
    ) -> Result<(Vec<T>, Shape)> {
        let out = dyl.dims().last().copied().unwrap_or(0);
        let rows = dyl.shape().elem_count() / out.max(1);
        Ok(match self.of {
            Of::Input => {
                let (a, b) = ol.shape().dims2()?;
                let inp = if self.op.in_out { a } else { b };
                let mut shape = dyl.dims().to_vec();
                *shape.last_mut().expect("grad has dims") = inp;
                (
                    self.op.grad_x(dy, other, rows, inp, out),
                    Shape::from(shape),
                )
            }
            Of::Weight => {
                let inp = ol.dims().last().copied().unwrap_or(0);
                let shape = if self.op.in_out {
                    (inp, out)
                } else {
                    (out, inp)
                };
                (
                    self.op.grad_w(dy, other, rows, inp, out),
                    Shape::from(shape),
                )
            }
        })
    }
}

impl CustomOp2 for Grad {
    fn name(&self) -> &'static str {
        "fused-linear-bwd"
    }

    fn cpu_fwd(
        &self,
        ds: &CpuStorage,
        dl: &Layout,
        os: &CpuStorage,
        ol: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let n = self.name();
        match (ds, os) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => {
                let (v, s) = self.run(contiguous(n, ds, dl)?, contiguous(n, os, ol)?, ol, dl)?;
                Ok((CpuStorage::F32(v), s))
            }
            (CpuStorage::F64(_), CpuStorage::F64(_)) => {
                let (v, s) = self.run(contiguous(n, ds, dl)?, contiguous(n, os, ol)?, ol, dl)?;
                Ok((CpuStorage::F64(v), s))
            }
            _ => candle_core::bail!("{n}: f32 or f64, both operands alike"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use candle_core::{DType, Var};

    #[test]
    fn matches_matmul_and_finite_differences_in_both_layouts() {
        for in_out in [false, true] {
            let x = rand(&[2, 3, 5], 1);
            let w = if in_out {
                rand(&[5, 4], 2)
            } else {
                rand(&[4, 5], 2)
            };
            let r = rand(&[2, 3, 4], 3);
            let fused = |t: &[Tensor]| linear(&t[0], &t[1], in_out);
            let comp = |t: &[Tensor]| {
                let x2 = t[0].reshape((6, 5))?;
                let w = if in_out { t[1].clone() } else { t[1].t()? };
                x2.matmul(&w)?.reshape((2, 3, 4))
            };
            let ins = [x, w];
            let (yf, gf) = autograd(&ins, &r, &fused);
            let (yc, gc) = autograd(&ins, &r, &comp);
            assert!(max_rel(&yf, &yc, 1e-6) < 1e-12, "in_out {in_out}");
            for i in 0..2 {
                assert!(
                    max_rel(&gf[i], &gc[i], 1e-6) < 1e-12,
                    "in_out {in_out} input {i}"
                );
                let fd = finite_diff_err(&ins, i, &r, &gf[i], &fused);
                assert!(
                    fd < 1e-6,
                    "in_out {in_out} input {i}: finite differences {fd:e}"
                );
            }
        }
    }

    #[test]
    fn f32_equals_candles_matmul_bit_for_bit() {
        let x = rand(&[3, 37, 64], 4).to_dtype(DType::F32).unwrap();
        let w = rand(&[96, 64], 5).to_dtype(DType::F32).unwrap();
        let a = linear(&x, &w, false).unwrap();
        let b = x
            .reshape((111, 64))
            .unwrap()
            .matmul(&w.t().unwrap())
            .unwrap()
            .reshape((3, 37, 96))
            .unwrap();
        let d = (a - b).unwrap().abs().unwrap().max_all().unwrap();
        assert_eq!(d.to_scalar::<f32>().unwrap(), 0.0);
    }

    #[test]
    fn an_input_that_needs_no_gradient_gets_none() {
        let x = Var::from_tensor(&rand(&[4, 3], 6)).unwrap();
        let w = rand(&[2, 3], 7); // a constant (frozen) weight
        let y = linear(x.as_tensor(), &w, false).unwrap();
        let g = y.sum_all().unwrap().backward().unwrap();
        assert!(g.get(x.as_tensor()).is_some());
        assert!(g.get(&w).is_none());
        // and a weight-only gradient when the input is constant
        let wv = Var::from_tensor(&w).unwrap();
        let x = rand(&[4, 3], 6);
        let y = linear(&x, wv.as_tensor(), false).unwrap();
        let g = y.sum_all().unwrap().backward().unwrap();
        assert!(g.get(wv.as_tensor()).is_some());
        assert!(g.get(&x).is_none());
    }

    #[test]
    fn a_mismatched_weight_is_an_error_naming_both_shapes() {
        let err = linear(&rand(&[2, 5], 1), &rand(&[4, 6], 2), false).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("[2, 5]") && msg.contains("[4, 6]"), "{msg}");
    }
}

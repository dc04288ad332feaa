//! Building blocks of the decoder, all built from differentiable candle ops.
//!
//! candle 0.11's fused `softmax_last_dim`, `rms_norm`, `layer_norm` and `rope` have no backward
//! pass: a model built on them silently trains only its head. Everything here composes ops that
//! have one. On CPU f32 the hot ones (RMSNorm, softmax, SwiGLU) dispatch to the fused kernels of
//! [`super::kernels`], which carry their own backward pass and a gradient test against these
//! compositions; `*_composed` are kept for other devices and dtypes.

use candle_core::{DType, Module, Result, Tensor, D};

use super::config::{Activation, NormKind};

/// `y = x Wᵀ + b` (PyTorch `nn.Linear`, weight `[out, in]`), or `y = x W + b` for GPT-2's
/// Conv1D (weight `[in, out]`).
#[derive(Debug, Clone)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    /// weight stored `[in, out]`
    pub in_out: bool,
    /// low-rank adapter added to the output
    pub lora: Option<Lora>,
}

/// LoRA: `y += scale · (x Aᵀ) Bᵀ`, with `A` `[r, in]`, `B` `[out, r]`, `scale = alpha / r`
/// (PEFT's convention).
#[derive(Debug, Clone)]
pub struct Lora {
    pub a: Tensor,
    pub b: Tensor,
    pub scale: f64,
}

impl Linear {
    pub fn new(weight: Tensor, bias: Option<Tensor>, in_out: bool) -> Linear {
        Linear {
            weight,
            bias,
            in_out,
            lora: None,
        }
    }

    pub fn in_features(&self) -> usize {
        if self.in_out {
            self.weight.dim(0).unwrap_or(0)
        } else {
            self.weight.dim(1).unwrap_or(0)
        }
    }

    /// The weight with the adapter folded in, in the stored layout.
    pub fn merged_weight(&self) -> Result<Tensor> {
        match &self.lora {
            None => Ok(self.weight.clone()),
            Some(l) => {
                let delta = (l.b.matmul(&l.a)? * l.scale)?.to_dtype(self.weight.dtype())?;
                let delta = if self.in_out { delta.t()? } else { delta };
                &self.weight + delta
            }
        }
    }
}

impl Linear {
    pub fn out_features(&self) -> usize {
        if self.in_out {
            self.weight.dim(1).unwrap_or(0)
        } else {
            self.weight.dim(0).unwrap_or(0)
        }
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let last = *dims.last().expect("linear input has a feature dim");
        let rows: usize = dims[..dims.len() - 1].iter().product();
        let x2 = x.reshape((rows, last))?;
        if super::kernels::enabled(x)
            && self.weight.dtype() == x.dtype()
            && !super::kernels::skinny::applies(&x2, &self.weight)
        {
            // one graph node per product (and per adapter factor) instead of four
            let k = super::kernels::linear::linear;
            let y = k(x, &self.weight, self.in_out)?;
            let y = match &self.bias {
                Some(b) => y.broadcast_add(b)?,
                None => y,
            };
            return match &self.lora {
                Some(l) => y + (k(&k(x, &l.a, false)?, &l.b, false)? * l.scale)?,
                None => Ok(y),
            };
        }
        let y = if self.in_out {
            x2.matmul(&self.weight)?
        } else if super::kernels::skinny::applies(&x2, &self.weight) {
            // a decoding step's few rows: read the weights once, unpacked
            super::kernels::skinny::matmul_t(&x2, &self.weight)?
        } else {
            x2.matmul(&self.weight.t()?)?
        };
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        let y = match &self.lora {
            Some(l) => (y + (x2.matmul(&l.a.t()?)?.matmul(&l.b.t()?)? * l.scale)?)?,
            None => y,
        };
        let mut out_dims = dims;
        *out_dims.last_mut().unwrap() = y.dim(1)?;
        y.reshape(out_dims)
    }
}

#[derive(Debug, Clone)]
pub struct Norm {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub kind: NormKind,
    pub eps: f64,
}

impl Module for Norm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let rms = matches!(self.kind, NormKind::Rms | NormKind::RmsUnitOffset);
        if rms && super::kernels::enabled(x) && self.weight.dtype() == DType::F32 {
            let w = match self.kind {
                NormKind::RmsUnitOffset => (&self.weight + 1.0)?,
                _ => self.weight.clone(),
            };
            return super::kernels::rms_norm::rms_norm(x, &w, self.eps);
        }
        if self.kind == NormKind::Rms
            && self.weight.dtype() == x.dtype()
            && super::kernels::cuda_enabled(x)
        {
            return super::kernels::rms_norm::rms_norm(x, &self.weight, self.eps);
        }
        self.forward_composed(x)
    }
}

impl Norm {
    /// The differentiable composition (any device and dtype).
    pub fn forward_composed(&self, x: &Tensor) -> Result<Tensor> {
        let in_dtype = x.dtype();
        // transformers normalises in f32 whatever the weights' dtype (f64 stays f64)
        let work = if in_dtype == DType::F64 {
            DType::F64
        } else {
            DType::F32
        };
        let x = x.to_dtype(work)?;
        let w = self.weight.to_dtype(work)?;
        let y = match self.kind {
            NormKind::Rms | NormKind::RmsUnitOffset => {
                let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
                let xhat = x.broadcast_div(&(ms + self.eps)?.sqrt()?)?;
                match self.kind {
                    NormKind::Rms => xhat.to_dtype(in_dtype)?.broadcast_mul(&self.weight)?,
                    _ => xhat.broadcast_mul(&(w + 1.0)?)?.to_dtype(in_dtype)?,
                }
            }
            NormKind::Layer => {
                let mean = x.mean_keepdim(D::Minus1)?;
                let xc = x.broadcast_sub(&mean)?;
                let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
                let xhat = xc.broadcast_div(&(var + self.eps)?.sqrt()?)?;
                let y = xhat.broadcast_mul(&w)?;
                let y = match &self.bias {
                    Some(b) => y.broadcast_add(&b.to_dtype(work)?)?,
                    None => y,
                };
                y.to_dtype(in_dtype)?
            }
        };
        Ok(y)
    }
}

/// candle's fused `gelu`/`gelu_erf` have backward passes built on 6-digit constants (relative
/// gradient error ~1e-4); these compositions differentiate exactly.
pub fn activate(x: &Tensor, act: Activation) -> Result<Tensor> {
    match act {
        Activation::Silu => x.silu(),
        Activation::GeluTanh => {
            // 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))
            let c = (2.0 / std::f64::consts::PI).sqrt();
            let inner = ((x + (x.sqr()?.mul(x)? * 0.044715)?)? * c)?;
            (x * 0.5)? * (inner.tanh()? + 1.0)?
        }
        Activation::Gelu => (x * 0.5)? * ((x / std::f64::consts::SQRT_2)?.erf()? + 1.0)?,
        Activation::Relu => x.relu(),
    }
}

/// Softmax over the last dimension: fused on CPU f32, else [`softmax_composed`].
pub fn softmax_last(x: &Tensor) -> Result<Tensor> {
    if super::kernels::enabled(x) {
        return super::kernels::softmax::softmax_last(x);
    }
    softmax_composed(x)
}

/// `silu(gate) · up` with `act` in place of silu: fused for silu on CPU f32.
pub fn gated(gate: &Tensor, up: &Tensor, act: Activation) -> Result<Tensor> {
    if act == Activation::Silu
        && ((super::kernels::enabled(gate) && up.dtype() == DType::F32)
            || (up.dtype() == gate.dtype() && super::kernels::cuda_enabled(gate)))
    {
        return super::kernels::swiglu::swiglu(gate, up);
    }
    activate(gate, act)? * up
}

/// Softmax over the last dimension from differentiable ops (max-shifted for stability).
pub fn softmax_composed(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    let s = e.sum_keepdim(D::Minus1)?;
    e.broadcast_div(&s)
}

/// `log_softmax` over the last dimension from differentiable ops, in f32.
pub fn log_softmax(logits: &Tensor) -> Result<Tensor> {
    let x = logits.to_dtype(DType::F32)?;
    let max = x.max_keepdim(D::Minus1)?.detach();
    let shifted = x.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    shifted.broadcast_sub(&lse)
}

/// `cap · tanh(x / cap)` (Gemma 2 soft-capping).
pub fn softcap(x: &Tensor, cap: f64) -> Result<Tensor> {
    (x / cap)?.tanh()? * cap
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// Central finite differences of `f` w.r.t. every element of `x` against autograd.
    fn check_grad(x: &Tensor, f: impl Fn(&Tensor) -> Result<Tensor>) {
        let var = Var::from_tensor(x).unwrap();
        let y = f(var.as_tensor()).unwrap().sum_all().unwrap();
        let grads = y.backward().unwrap();
        let g = grads
            .get(var.as_tensor())
            .expect("gradient reaches the input")
            .flatten_all()
            .unwrap();
        let g: Vec<f64> = g.to_vec1().unwrap();
        let base: Vec<f64> = x.flatten_all().unwrap().to_vec1().unwrap();
        let eps = 1e-6;
        for i in 0..base.len() {
            let mut p = base.clone();
            p[i] += eps;
            let mut m = base.clone();
            m[i] -= eps;
            let fp: f64 = f(&Tensor::from_vec(p, x.shape(), x.device()).unwrap())
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar()
                .unwrap();
            let fm: f64 = f(&Tensor::from_vec(m, x.shape(), x.device()).unwrap())
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar()
                .unwrap();
            let num = (fp - fm) / (2.0 * eps);
            let err = (num - g[i]).abs() / num.abs().max(1e-3);
            assert!(
                err < 1e-5,
                "element {i}: autograd {} vs finite difference {num}",
                g[i]
            );
        }
    }

    fn input() -> Tensor {
        Tensor::randn(0f64, 1.0, (2, 3, 5), &Device::Cpu).unwrap()
    }

    #[test]
    fn norms_have_correct_gradients() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f64, 1.0, 5, &dev).unwrap();
        let b = Tensor::randn(0f64, 1.0, 5, &dev).unwrap();
        // a non-uniform weighting so the sum is not invariant to the normalisation
        let r = Tensor::randn(0f64, 1.0, (2, 3, 5), &dev).unwrap();
        for kind in [NormKind::Rms, NormKind::RmsUnitOffset, NormKind::Layer] {
            let norm = Norm {
                weight: w.clone(),
                bias: Some(b.clone()),
                kind,
                eps: 1e-5,
            };
            let norm = Norm {
                bias: if kind == NormKind::Layer {
                    norm.bias
                } else {
                    None
                },
                ..norm
            };
            check_grad(&input(), |x| norm.forward(x)?.mul(&r));
        }
    }

    #[test]
    fn softmax_activations_and_softcap_have_correct_gradients() {
        let dev = Device::Cpu;
        let r = Tensor::randn(0f64, 1.0, (2, 3, 5), &dev).unwrap();
        check_grad(&input(), |x| softmax_last(x)?.mul(&r));
        check_grad(&input(), |x| softcap(x, 2.0)?.mul(&r));
        for act in [Activation::Silu, Activation::GeluTanh, Activation::Gelu] {
            check_grad(&input(), |x| activate(x, act)?.mul(&r));
        }
    }

    #[test]
    fn linear_matches_both_layouts() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (4, 3), &dev).unwrap();
        let x = Tensor::randn(0f32, 1.0, (2, 5, 3), &dev).unwrap();
        let a = Linear::new(w.clone(), None, false).forward(&x).unwrap();
        let b = Linear::new(w.t().unwrap().contiguous().unwrap(), None, true)
            .forward(&x)
            .unwrap();
        let d: f32 = (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(d < 1e-6);
    }
}

//! Scaled dot-product attention with an additive mask and grouped key/value heads, one rayon task
//! per (batch row, key/value head):
//!
//! ```text
//! P = softmax(scale · Q Kᵀ + mask)      O = P V
//! ```
//!
//! The composition (the decoder's other devices and dtypes) runs `Q Kᵀ` and `P V` as candle
//! matmuls, one small gemm per (row, head group) in sequence, each split over threads, and keeps
//! the scores and probabilities for the backward pass. Here each task runs its heads' small products on one
//! thread, reads the shared K and V in place, and keeps nothing but the output: the backward pass
//! recomputes P from Q and K (as flash attention does) and uses `rowsum(dO ∘ O)` for the softmax
//! gradient, so the `[b, h, tq, tk]` tensors exist one head at a time, per thread.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{contiguous, cpu_storage, gemm, Real};

/// `softmax(scale · q kᵀ + mask) v`: `q` `[b, h, tq, d]`, `k` and `v` `[b, kv, tk, d]` with `h` a
/// multiple of `kv`, `mask` `[b, 1, tq, tk]` or `[1, 1, tq, tk]` (additive, no gradient).
/// Returns `[b, h, tq, d]`. CPU, f32/f64; gradients flow to `q`, `k` and `v`.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor, scale: f64) -> Result<Tensor> {
    q.contiguous()?.apply_op3(
        &k.contiguous()?,
        &v.contiguous()?,
        Attention {
            mask: mask.contiguous()?.detach(),
            scale,
        },
    )
}

struct Attention {
    mask: Tensor,
    scale: f64,
}

#[derive(Clone, Copy)]
struct Dims {
    b: usize,
    h: usize,
    kv: usize,
    tq: usize,
    tk: usize,
    d: usize,
    /// the mask has one `[tq, tk]` plane per batch row (else one for all)
    mask_per_row: bool,
}

impl Dims {
    fn rep(&self) -> usize {
        self.h / self.kv
    }
}

fn dims(name: &str, ql: &Layout, kl: &Layout, vl: &Layout, mask: &Tensor) -> Result<Dims> {
    let (b, h, tq, d) = ql.shape().dims4()?;
    let (kb, kv, tk, kd) = kl.shape().dims4()?;
    let bad = |what: &str| -> Result<Dims> {
        candle_core::bail!(
            "{name}: {what}: q {:?}, k {:?}, v {:?}, mask {:?}",
            ql.dims(),
            kl.dims(),
            vl.dims(),
            mask.dims()
        )
    };
    if kb != b || kd != d || vl.dims() != kl.dims() || kv == 0 || h % kv != 0 {
        return bad("shapes");
    }
    let (mb, mh, mq, mk) = mask.dims4()?;
    if mh != 1 || mq != tq || mk != tk || (mb != b && mb != 1) {
        return bad("mask shape");
    }
    Ok(Dims {
        b,
        h,
        kv,
        tq,
        tk,
        d,
        mask_per_row: mb == b && b > 1,
    })
}

/// `p ← softmax(scale · (q kᵀ) + mask)` for one head: `q` `[tq, d]`, `k` `[tk, d]`, `p` `[tq, tk]`.
fn probs<T: Real>(p: &mut [T], q: &[T], k: &[T], mask: &[T], s: &Dims, scale: T) {
    let (d, tk) = (s.d as isize, s.tk);
    gemm(s.tq, tk, s.d, (p, tk), false, (q, d, 1), (k, 1, d), false);
    for (row, m) in p.chunks_mut(tk).zip(mask.chunks(tk)) {
        let max = T::row_scale_add_max(row, m, scale);
        let sum = T::row_exp_shifted_sum(row, max);
        T::row_scale(row, T::ONE / sum);
    }
}

fn fwd<T: Real>(q: &[T], k: &[T], v: &[T], mask: &[T], s: &Dims, scale: f64) -> Vec<T> {
    let (qh, kh) = (s.tq * s.d, s.tk * s.d);
    let rep = s.rep();
    let mut out = vec![T::ZERO; s.b * s.h * qh];
    let scale = T::from_f64(scale);
    // one task per (batch row, kv head): its `rep` query heads are contiguous in q and out
    out.par_chunks_mut(rep * qh)
        .zip(q.par_chunks(rep * qh))
        .enumerate()
        .for_each_init(
            || vec![T::ZERO; s.tq * s.tk],
            |p, (task, (o, q))| {
                let bi = task / s.kv;
                let (k, v) = (&k[task * kh..][..kh], &v[task * kh..][..kh]);
                let m = if s.mask_per_row {
                    &mask[bi * s.tq * s.tk..][..s.tq * s.tk]
                } else {
                    &mask[..s.tq * s.tk]
                };
                let d = s.d as isize;
                for (o, q) in o.chunks_mut(qh).zip(q.chunks(qh)) {
                    probs(p, q, k, m, s, scale);
                    gemm(
                        s.tq,
                        s.d,
                        s.tk,
                        (o, s.d),
                        false,
                        (p, s.tk as isize, 1),
                        (v, d, 1),
                        false,
                    );
                }
            },
        );
    out
}

/// `[dq; dk; dv]` flattened.
#[allow(clippy::too_many_arguments)]
fn bwd<T: Real>(
    q: &[T],
    k: &[T],
    v: &[T],
    o: &[T],
    go: &[T],
    mask: &[T],
    s: &Dims,
    scale: f64,
) -> Vec<T> {
    let (qh, kh) = (s.tq * s.d, s.tk * s.d);
    let rep = s.rep();
    let nq = s.b * s.h * qh;
    let nk = s.b * s.kv * kh;
    let mut out = vec![T::ZERO; nq + 2 * nk];
    let (dq, rest) = out.split_at_mut(nq);
    let (dk, dv) = rest.split_at_mut(nk);
    let scale = T::from_f64(scale);
    let d = s.d as isize;
    let tk = s.tk as isize;
    dq.par_chunks_mut(rep * qh)
        .zip(dk.par_chunks_mut(kh).zip(dv.par_chunks_mut(kh)))
        .enumerate()
        .for_each_init(
            || (vec![T::ZERO; s.tq * s.tk], vec![T::ZERO; s.tq * s.tk]),
            |(p, dp), (task, (dq, (dk, dv)))| {
                let bi = task / s.kv;
                let (k, v) = (&k[task * kh..][..kh], &v[task * kh..][..kh]);
                let m = if s.mask_per_row {
                    &mask[bi * s.tq * s.tk..][..s.tq * s.tk]
                } else {
                    &mask[..s.tq * s.tk]
                };
                for r in 0..rep {
                    let at = (task * rep + r) * qh;
                    let (q, o, go) = (&q[at..][..qh], &o[at..][..qh], &go[at..][..qh]);
                    let dq = &mut dq[r * qh..][..qh];
                    probs(p, q, k, m, s, scale);
                    // dV += Pᵀ dO
                    gemm(
                        s.tk,
                        s.d,
                        s.tq,
                        (dv, s.d),
                        r > 0,
                        (p, 1, tk),
                        (go, d, 1),
                        false,
                    );
                    // dP = dO Vᵀ
                    gemm(
                        s.tq,
                        s.tk,
                        s.d,
                        (dp, s.tk),
                        false,
                        (go, d, 1),
                        (v, 1, d),
                        false,
                    );
                    // dS = scale · P ∘ (dP − rowsum(dO ∘ O))
                    for (i, (dpr, pr)) in dp.chunks_mut(s.tk).zip(p.chunks(s.tk)).enumerate() {
                        let dot = T::row_dot(&go[i * s.d..][..s.d], &o[i * s.d..][..s.d]);
                        for (x, &pv) in dpr.iter_mut().zip(pr) {
                            *x = scale * pv * (*x - dot);
                        }
                    }
                    // dQ = dS K
                    gemm(
                        s.tq,
                        s.d,
                        s.tk,
                        (dq, s.d),
                        false,
                        (dp, tk, 1),
                        (k, d, 1),
                        false,
                    );
                    // dK += dSᵀ Q
                    gemm(
                        s.tk,
                        s.d,
                        s.tq,
                        (dk, s.d),
                        r > 0,
                        (dp, 1, tk),
                        (q, d, 1),
                        false,
                    );
                }
            },
        );
    out
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "fused-attention"
    }

    fn cpu_fwd(
        &self,
        qs: &CpuStorage,
        ql: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let n = self.name();
        let s = dims(n, ql, kl, vl, &self.mask)?;
        let (ms, ml) = self.mask.storage_and_layout();
        let mc = cpu_storage(n, &ms)?;
        let out = match qs {
            CpuStorage::F32(_) => CpuStorage::F32(fwd(
                contiguous(n, qs, ql)?,
                contiguous(n, ks, kl)?,
                contiguous(n, vs, vl)?,
                contiguous(n, mc, ml)?,
                &s,
                self.scale,
            )),
            CpuStorage::F64(_) => CpuStorage::F64(fwd(
                contiguous(n, qs, ql)?,
                contiguous(n, ks, kl)?,
                contiguous(n, vs, vl)?,
                contiguous(n, mc, ml)?,
                &s,
                self.scale,
            )),
            _ => candle_core::bail!("{n}: f32 or f64 only"),
        };
        Ok((out, ql.shape().clone()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        o: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let op = AttentionBwd {
            mask: self.mask.clone(),
            out: o.clone(),
            grad: grad.contiguous()?,
            scale: self.scale,
        };
        let flat = q.apply_op3_no_bwd(k, v, &op)?;
        let (nq, nk) = (q.elem_count(), k.elem_count());
        Ok((
            Some(flat.narrow(0, 0, nq)?.reshape(q.shape())?),
            Some(flat.narrow(0, nq, nk)?.reshape(k.shape())?),
            Some(flat.narrow(0, nq + nk, nk)?.reshape(v.shape())?),
        ))
    }
}

/// The backward pass; the op's output and incoming gradient travel with it (an op takes at most
/// three tensors).
struct AttentionBwd {
    mask: Tensor,
    out: Tensor,
    grad: Tensor,
    scale: f64,
}

impl CustomOp3 for AttentionBwd {
    fn name(&self) -> &'static str {
        "fused-attention-bwd"
    }

    fn cpu_fwd(
        &self,
        qs: &CpuStorage,
        ql: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let n = self.name();
        let s = dims(n, ql, kl, vl, &self.mask)?;
        if self.out.dims() != ql.dims() || self.grad.dims() != ql.dims() {
            candle_core::bail!("{n}: output or gradient shape differs from q");
        }
        let total = ql.shape().elem_count() + 2 * kl.shape().elem_count();
        let (os, ol) = self.out.storage_and_layout();
        let (gs, gl) = self.grad.storage_and_layout();
        let (ms, ml) = self.mask.storage_and_layout();
        let (oc, gc, mc) = (
            cpu_storage(n, &os)?,
            cpu_storage(n, &gs)?,
            cpu_storage(n, &ms)?,
        );
        macro_rules! run {
            ($t:ty, $variant:ident) => {
                CpuStorage::$variant(bwd::<$t>(
                    contiguous(n, qs, ql)?,
                    contiguous(n, ks, kl)?,
                    contiguous(n, vs, vl)?,
                    contiguous(n, oc, ol)?,
                    contiguous(n, gc, gl)?,
                    contiguous(n, mc, ml)?,
                    &s,
                    self.scale,
                ))
            };
        }
        let out = match qs {
            CpuStorage::F32(_) => run!(f32, F32),
            CpuStorage::F64(_) => run!(f64, F64),
            _ => candle_core::bail!("{n}: f32 or f64 only"),
        };
        Ok((out, Shape::from(total)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use candle_core::{DType, Device, D};

    /// The decoder's composition: K and V repeated per query head, scores, mask, softmax, P V.
    fn composed(t: &[Tensor], mask: &Tensor, scale: f64) -> Result<Tensor> {
        let (q, k, v) = (&t[0], &t[1], &t[2]);
        let rep = q.dim(1)? / k.dim(1)?;
        let expand = |x: &Tensor| -> Result<Tensor> {
            let (b, kv, tk, d) = x.dims4()?;
            x.unsqueeze(2)?
                .broadcast_as((b, kv, rep, tk, d))?
                .reshape((b, kv * rep, tk, d))
        };
        let s = (q.matmul(&expand(k)?.t()?)? * scale)?.broadcast_add(mask)?;
        let max = s.max_keepdim(D::Minus1)?.detach();
        let e = s.broadcast_sub(&max)?.exp()?;
        let p = e.broadcast_div(&e.sum_keepdim(D::Minus1)?)?;
        p.matmul(&expand(v)?)
    }

    fn check(b: usize, h: usize, kv: usize, tq: usize, tk: usize, d: usize, mask: Tensor) {
        let q = rand(&[b, h, tq, d], 1);
        let k = rand(&[b, kv, tk, d], 2);
        let v = rand(&[b, kv, tk, d], 3);
        let r = rand(&[b, h, tq, d], 4);
        let scale = 1.0 / (d as f64).sqrt();
        let ins = [q, k, v];
        let fused = |t: &[Tensor]| attention(&t[0], &t[1], &t[2], &mask, scale);
        let comp = |t: &[Tensor]| composed(t, &mask, scale);
        let (yf, gf) = autograd(&ins, &r, &fused);
        let (yc, gc) = autograd(&ins, &r, &comp);
        assert!(max_rel(&yf, &yc, 1e-6) < 1e-12);
        for (i, (a, c)) in gf.iter().zip(&gc).enumerate() {
            assert!(max_rel(a, c, 1e-6) < 1e-10, "input {i}");
        }
        for (which, g) in gf.iter().enumerate() {
            let fd = finite_diff_err(&ins, which, &r, g, &fused);
            assert!(fd < 1e-6, "input {which}: finite-difference error {fd:e}");
        }
        // f32 (vectorised exp) against the f64 composition; outputs are averages of values in
        // [-1, 1] and can cancel to near 0, so the error is taken relative to at least 0.1
        let f32s: Vec<Tensor> = ins
            .iter()
            .map(|t| t.to_dtype(DType::F32).unwrap())
            .collect();
        let y32 = attention(
            &f32s[0],
            &f32s[1],
            &f32s[2],
            &mask.to_dtype(DType::F32).unwrap(),
            scale,
        )
        .unwrap();
        let e = max_rel(&y32, &yc, 0.1);
        assert!(e < 1e-5, "f32 error {e:e}");
    }

    /// Causal `[b, 1, tq, tk]` mask where the queries are the last `tq` of `tk` positions, row 1
    /// with its last key as padding. (No row is fully masked: there the scores sit at −1e9, where
    /// an f64 step is 1e-7, and finite differences of 1e-6 measure rounding.)
    fn causal(b: usize, tq: usize, tk: usize) -> Tensor {
        let mut m = vec![0f64; b * tq * tk];
        for bi in 0..b {
            for i in 0..tq {
                for j in 0..tk {
                    let future = j > tk - tq + i;
                    let pad = bi == 1 && j == tk - 1;
                    if future || pad {
                        m[(bi * tq + i) * tk + j] = -1e9;
                    }
                }
            }
        }
        Tensor::from_vec(m, (b, 1, tq, tk), &Device::Cpu).unwrap()
    }

    #[test]
    fn matches_composition_and_finite_differences() {
        // multi-head, full sequence, per-row mask
        check(2, 2, 2, 4, 4, 3, causal(2, 4, 4));
        // grouped heads (3 query heads per kv head), queries after cached keys
        check(2, 6, 2, 2, 5, 4, causal(2, 2, 5));
        // one mask plane for every row, a single query (decoding)
        check(3, 2, 1, 1, 3, 2, causal(1, 1, 3));
    }

    #[test]
    fn bad_shapes_are_errors() {
        let q = rand(&[1, 3, 2, 4], 1);
        let k = rand(&[1, 2, 2, 4], 2);
        let m = causal(1, 2, 2);
        let err = attention(&q, &k, &k, &m, 1.0).unwrap_err();
        assert!(err.to_string().contains("shapes"), "{err}");
    }
}

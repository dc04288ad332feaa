//! AdamW with state that can be saved and restored exactly (candle's keeps its moments private),
//! following PyTorch's `torch.optim.AdamW` update, and global-norm gradient clipping.

use std::collections::BTreeMap;

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};

use super::TrainError;
use crate::model::kernels;

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// Whether a parameter gets weight decay, by transformers' Trainer rule: not biases and not
/// normalisation weights (lower-cased name matching `bias`, `layernorm`, `rmsnorm`,
/// `(^|.)norm($|.)`, `_norm($|.)`, or GPT-2's LayerNorm modules `ln_1`/`ln_2`/`ln_f`).
pub fn decays(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    let parts: Vec<&str> = n.split('.').collect();
    let excluded = n.contains("bias")
        || n.contains("layernorm")
        || n.contains("rmsnorm")
        || parts.contains(&"norm")
        || parts.iter().any(|p| p.ends_with("_norm"))
        || parts.iter().any(|p| matches!(*p, "ln_1" | "ln_2" | "ln_f"));
    !excluded
}

struct Slot {
    var: Var,
    m: Var,
    v: Var,
    decay: bool,
}

/// AdamW over named variables.
pub struct AdamW {
    cfg: AdamWConfig,
    slots: BTreeMap<String, Slot>,
    /// number of updates applied so far
    step: usize,
}

impl AdamW {
    pub fn new(vars: &BTreeMap<String, Var>, cfg: AdamWConfig) -> Result<AdamW, TrainError> {
        let mut slots = BTreeMap::new();
        for (name, var) in vars {
            let zeros = || -> Result<Var, TrainError> {
                Ok(Var::zeros(var.shape(), DType::F32, var.device())?)
            };
            slots.insert(
                name.clone(),
                Slot {
                    var: var.clone(),
                    m: zeros()?,
                    v: zeros()?,
                    decay: decays(name),
                },
            );
        }
        Ok(AdamW {
            cfg,
            slots,
            step: 0,
        })
    }

    pub fn steps_taken(&self) -> usize {
        self.step
    }

    /// One update with learning rate `lr`. Vars without a gradient are left alone (and their
    /// moments too), as PyTorch does for parameters whose `.grad` is None.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<(), TrainError> {
        self.step += 1;
        let AdamWConfig {
            beta1,
            beta2,
            eps,
            weight_decay,
        } = self.cfg;
        let bc1 = 1.0 - beta1.powi(self.step as i32);
        let bc2_sqrt = (1.0 - beta2.powi(self.step as i32)).sqrt();
        for slot in self.slots.values() {
            let Some(g) = grads.get(slot.var.as_tensor()) else {
                continue;
            };
            if kernels::adamw::applies(slot.var.as_tensor(), g) {
                let decay = if weight_decay != 0.0 && slot.decay {
                    1.0 - lr * weight_decay
                } else {
                    1.0
                };
                let s = kernels::adamw::AdamWStep {
                    beta1,
                    beta2,
                    eps,
                    step_size: lr / bc1,
                    bc2_sqrt,
                    decay,
                };
                kernels::adamw::adamw_update(
                    slot.var.as_tensor(),
                    slot.m.as_tensor(),
                    slot.v.as_tensor(),
                    g,
                    &s,
                )?;
                continue;
            }
            let g = g.to_dtype(DType::F32)?;
            let mut p = slot.var.as_tensor().to_dtype(DType::F32)?;
            if weight_decay != 0.0 && slot.decay {
                p = (p * (1.0 - lr * weight_decay))?;
            }
            // m.lerp_(g, 1 - β1) == m + (1 - β1)(g - m)
            let m = (slot.m.as_tensor() + ((&g - slot.m.as_tensor())? * (1.0 - beta1))?)?;
            let v = ((slot.v.as_tensor() * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            let denom = ((v.sqrt()? / bc2_sqrt)? + eps)?;
            let p = (p - ((&m / denom)? * (lr / bc1))?)?;
            slot.m.set(&m)?;
            slot.v.set(&v)?;
            slot.var.set(&p.to_dtype(slot.var.dtype())?)?;
        }
        Ok(())
    }

    /// Moments and step, keyed `m.<name>` / `v.<name>`, for an exact resume.
    pub fn state(&self) -> (usize, Vec<(String, Tensor)>) {
        let mut out = Vec::with_capacity(self.slots.len() * 2);
        for (name, s) in &self.slots {
            out.push((format!("m.{name}"), s.m.as_tensor().clone()));
            out.push((format!("v.{name}"), s.v.as_tensor().clone()));
        }
        (self.step, out)
    }

    pub fn load_state(
        &mut self,
        step: usize,
        tensors: &std::collections::HashMap<String, Tensor>,
    ) -> Result<(), TrainError> {
        for (name, s) in &self.slots {
            for (key, var) in [(format!("m.{name}"), &s.m), (format!("v.{name}"), &s.v)] {
                let t = tensors
                    .get(&key)
                    .ok_or_else(|| TrainError::Resume(format!("optimizer state lacks `{key}`")))?;
                var.set(&t.to_device(var.device())?)?;
            }
        }
        self.step = step;
        Ok(())
    }
}

/// Total L2 norm of the gradients of `vars`.
pub fn grad_norm(grads: &GradStore, vars: &BTreeMap<String, Var>) -> Result<f64, TrainError> {
    let mut total = 0f64;
    for var in vars.values() {
        if let Some(g) = grads.get(var.as_tensor()) {
            total += g
                .to_dtype(DType::F64)?
                .sqr()?
                .sum_all()?
                .to_scalar::<f64>()?;
        }
    }
    Ok(total.sqrt())
}

/// Scale gradients so their total norm is at most `max_norm` (PyTorch's `clip_grad_norm_`:
/// coefficient `max_norm / (norm + 1e-6)`, capped at 1). Returns the norm before clipping.
pub fn clip_grad_norm(
    grads: &mut GradStore,
    vars: &BTreeMap<String, Var>,
    max_norm: f64,
) -> Result<f64, TrainError> {
    let norm = grad_norm(grads, vars)?;
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        for var in vars.values() {
            if let Some(g) = grads.remove(var.as_tensor()) {
                grads.insert(var.as_tensor(), (g * coef)?);
            }
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn decay_groups_follow_transformers() {
        assert!(decays("model.layers.0.self_attn.q_proj.weight"));
        assert!(decays("model.embed_tokens.weight"));
        assert!(!decays("model.layers.0.self_attn.q_proj.bias"));
        assert!(!decays("model.layers.0.input_layernorm.weight"));
        assert!(!decays("model.layers.0.self_attn.q_norm.weight"));
        assert!(!decays("model.norm.weight"));
        assert!(!decays("transformer.h.0.ln_1.weight"));
        assert!(!decays("ln_f.weight"));
    }

    /// Two AdamW steps on f(x) = Σ x² against values worked out with PyTorch's formulas by hand.
    #[test]
    fn matches_pytorch_update_rule() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::new(&[1.0f32, -2.0], &dev).unwrap()).unwrap();
        let vars = BTreeMap::from([("w.weight".to_string(), x.clone())]);
        let mut opt = AdamW::new(
            &vars,
            AdamWConfig {
                weight_decay: 0.1,
                ..Default::default()
            },
        )
        .unwrap();
        let lr = 0.01;
        let mut expect = [1.0f64, -2.0];
        let (mut m, mut v) = ([0f64; 2], [0f64; 2]);
        for t in 1..=2 {
            let loss = x.as_tensor().sqr().unwrap().sum_all().unwrap();
            let grads = loss.backward().unwrap();
            opt.step(&grads, lr).unwrap();
            for i in 0..2 {
                let g = 2.0 * expect[i];
                expect[i] *= 1.0 - lr * 0.1;
                m[i] = 0.9 * m[i] + 0.1 * g;
                v[i] = 0.999 * v[i] + 0.001 * g * g;
                let denom = (v[i].sqrt() / (1.0 - 0.999f64.powi(t)).sqrt()) + 1e-8;
                expect[i] -= lr / (1.0 - 0.9f64.powi(t)) * m[i] / denom;
            }
        }
        let got: Vec<f32> = x.as_tensor().to_vec1().unwrap();
        for i in 0..2 {
            assert!(
                (got[i] as f64 - expect[i]).abs() < 1e-6,
                "{got:?} vs {expect:?}"
            );
        }
    }

    #[test]
    fn clipping_caps_the_total_norm() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::new(&[3.0f32, 4.0], &dev).unwrap()).unwrap();
        let vars = BTreeMap::from([("w".to_string(), x.clone())]);
        // gradient of Σ x² is 2x = (6, 8), norm 10
        let mut grads = x
            .as_tensor()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let before = clip_grad_norm(&mut grads, &vars, 1.0).unwrap();
        assert!((before - 10.0).abs() < 1e-6);
        let after = grad_norm(&grads, &vars).unwrap();
        assert!((after - 1.0).abs() < 1e-5, "{after}");
    }
}

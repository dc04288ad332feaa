//! L2-SP: `λ/2 · Σ (θ − θ₀)²` over the trainable weights, θ₀ read from the base checkpoint
//! (not a `detach()`/`clone()` of the variables: those share storage and move with training).

use std::collections::BTreeMap;

use candle_core::{DType, Tensor, Var};

use super::{Regularizer, Setup};
use crate::train::TrainError;

pub struct L2Sp {
    pub lambda: f64,
    /// θ₀ by variable name
    reference: BTreeMap<String, Tensor>,
}

impl L2Sp {
    pub const NAME: &'static str = "l2sp";

    /// `reference` holds θ₀ for every variable it should pull (others are ignored).
    pub fn new(lambda: f64, reference: BTreeMap<String, Tensor>) -> L2Sp {
        L2Sp { lambda, reference }
    }

    /// The penalty as a differentiable scalar.
    pub fn penalty(&self, vars: &BTreeMap<String, Var>) -> Result<Tensor, TrainError> {
        let mut total: Option<Tensor> = None;
        for (name, var) in vars {
            let Some(r) = self.reference.get(name) else {
                continue;
            };
            let d = (var.as_tensor().to_dtype(DType::F32)? - r)?
                .sqr()?
                .sum_all()?;
            total = Some(match total {
                Some(t) => (t + d)?,
                None => d,
            });
        }
        let total = match total {
            Some(t) => t,
            None => Tensor::new(0f32, &candle_core::Device::Cpu)?,
        };
        Ok((total * (self.lambda / 2.0))?)
    }
}

pub(super) fn build(s: &mut Setup) -> Result<Option<Box<dyn Regularizer>>, TrainError> {
    if s.cfg.l2sp <= 0.0 {
        return Ok(None);
    }
    Ok(Some(Box::new(L2Sp::new(s.cfg.l2sp, reference(s)?))))
}

/// θ₀ of every trainable variable: read from the base checkpoint (LoRA: the adapters' initial
/// values, B = 0).
pub(super) fn reference(s: &Setup) -> Result<BTreeMap<String, Tensor>, TrainError> {
    let mut out = BTreeMap::new();
    for (name, var) in s.vars {
        let t0 = if s.cfg.lora.is_some() {
            var.as_tensor().copy()?.detach()
        } else {
            s.model
                .params
                .files
                .load(name, s.device())?
                .to_dtype(DType::F32)?
        };
        out.insert(name.clone(), t0);
    }
    Ok(out)
}

impl Regularizer for L2Sp {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn weight_term(&self, vars: &BTreeMap<String, Var>) -> Result<Option<Tensor>, TrainError> {
        Ok(Some(self.penalty(vars)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn penalty_and_gradient_match_finite_differences() {
        let dev = Device::Cpu;
        let theta0 = Tensor::new(&[1.0f32, -1.0, 0.5], &dev).unwrap();
        let var = Var::from_tensor(&Tensor::new(&[1.5f32, -0.5, 0.0], &dev).unwrap()).unwrap();
        let vars = BTreeMap::from([("w".to_string(), var.clone())]);
        let reg = L2Sp::new(
            0.2,
            BTreeMap::from([("w".to_string(), theta0.copy().unwrap())]),
        );
        let p = reg.penalty(&vars).unwrap();
        let val: f32 = p.to_scalar().unwrap();
        assert!((val - 0.1 * (0.25 + 0.25 + 0.25)).abs() < 1e-6);
        let g: Vec<f32> = p
            .backward()
            .unwrap()
            .get(var.as_tensor())
            .unwrap()
            .to_vec1()
            .unwrap();
        let x: Vec<f32> = var.as_tensor().to_vec1().unwrap();
        let t0: Vec<f32> = theta0.to_vec1().unwrap();
        for i in 0..3 {
            let f = |v: f64| 0.1 * ((v - t0[i] as f64).powi(2));
            let h = 1e-3;
            let num = (f(x[i] as f64 + h) - f(x[i] as f64 - h)) / (2.0 * h);
            assert!((num - g[i] as f64).abs() < 1e-5, "{num} vs {}", g[i]);
        }
        // the reference does not move when the variable does
        var.set(&Tensor::new(&[9.0f32, 9.0, 9.0], &dev).unwrap())
            .unwrap();
        let moved: f32 = reg.penalty(&vars).unwrap().to_scalar().unwrap();
        assert!(moved > 5.0);
    }
}

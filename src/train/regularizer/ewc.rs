//! EWC, elastic weight consolidation (Kirkpatrick et al. 2017): `λ/2 · Σ F·(θ − θ₀)²`, with F
//! the diagonal empirical Fisher of the base on a data file, so that the weights the base's
//! behaviour on that data depends on are held hardest.
//!
//! F is the mean over the file's first `samples` usable records of the squared gradient of
//! each record's mean token NLL (its supervised tokens; all of a `text` record), taken at the
//! base. It is computed once and cached (safetensors under the cache folder, keyed by the
//! base's fingerprint, the data file's content and the encoding settings).
//!
//! With LoRA, θ − θ₀ of an adapted weight is its merged delta `(α/r)·B·A`; with frozen
//! weights, only the trainable ones are pulled (the others do not move).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use sha2::{Digest, Sha256};

use super::{Regularizer, Setup};
use crate::data::read_jsonl;
use crate::model::arch::WeightLayout;
use crate::model::{LoadOptions, Model};
use crate::train::batch::MicroBatch;
use crate::train::config::EwcConfig;
use crate::train::encode::Encoder;
use crate::train::lora::peft_key;
use crate::train::TrainError;

/// Bump when the way F is computed changes (old cache files are then ignored).
const FISHER_VERSION: u32 = 1;

/// A diagonal Fisher by weight name (checkpoint layout), and how many records made it.
#[derive(Debug, Clone)]
pub struct Fisher {
    pub diag: BTreeMap<String, Tensor>,
    pub samples: usize,
}

impl Fisher {
    /// F of the model at `dir` on the first `samples` usable records of `data`.
    pub fn compute(
        dir: &Path,
        data: &Path,
        samples: usize,
        encoder_of: impl Fn(&Model) -> Encoder<'_>,
        device: &Device,
    ) -> Result<Fisher, TrainError> {
        let model = Model::load(
            dir,
            &LoadOptions {
                device: device.clone(),
                trainable: true,
                ..Default::default()
            },
        )?;
        let records = read_jsonl(data)?;
        let examples = encoder_of(&model).encode_all(&records, true)?.examples;
        let examples: Vec<_> = examples
            .into_iter()
            .filter(|e| e.n_supervised() > 0)
            .take(samples)
            .collect();
        if examples.is_empty() {
            return Err(TrainError::Data(format!(
                "{}: no record has a token to score within max_length (EWC data)",
                data.display()
            )));
        }
        let vars = model.params.vars();
        let mut diag: BTreeMap<String, Tensor> = BTreeMap::new();
        for ex in &examples {
            let mb = MicroBatch::padded(&[ex], device)?;
            let loss = (crate::train::nll_sum(&model.decoder, &mb)? / mb.n_supervised as f64)?;
            let grads = loss.backward()?;
            for (name, v) in vars {
                let Some(g) = grads.get(v.as_tensor()) else {
                    continue;
                };
                let g2 = g.to_dtype(DType::F32)?.sqr()?;
                let sum = match diag.remove(name) {
                    Some(acc) => (acc + g2)?,
                    None => g2,
                };
                diag.insert(name.clone(), sum);
            }
        }
        let n = examples.len();
        let diag = diag
            .into_iter()
            .map(|(k, t)| Ok((k, (t / n as f64)?)))
            .collect::<Result<_, TrainError>>()?;
        Ok(Fisher { diag, samples: n })
    }

    fn cache_path(s: &Setup, cfg: &EwcConfig) -> Result<PathBuf, TrainError> {
        let mut h = Sha256::new();
        h.update(crate::model::fingerprint::model_fingerprint(&s.cfg.model, None)?.as_bytes());
        let text = std::fs::read(&cfg.data).map_err(|e| TrainError::Io {
            path: cfg.data.clone(),
            source: e,
        })?;
        h.update(Sha256::digest(&text));
        let key = serde_json::json!({
            "samples": cfg.samples,
            "max_length": s.cfg.max_length,
            "chat_template": s.cfg.chat_template,
            "version": FISHER_VERSION,
        });
        h.update(key.to_string().as_bytes());
        let hex: String = h
            .finalize()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(s.cache_dir.join(format!("fisher-{hex}.safetensors")))
    }

    /// F from the cache when it is there, else computed and stored (atomically).
    pub fn cached(s: &Setup, cfg: &EwcConfig) -> Result<(Fisher, bool), TrainError> {
        let path = Self::cache_path(s, cfg)?;
        if let Ok(t) = candle_core::safetensors::load(&path, s.device()) {
            let samples = t
                .get("__samples__")
                .and_then(|x| x.to_vec1::<u32>().ok())
                .and_then(|v| v.first().copied())
                .unwrap_or(0) as usize;
            let diag = t.into_iter().filter(|(k, _)| k != "__samples__").collect();
            return Ok((Fisher { diag, samples }, true));
        }
        let f = Fisher::compute(
            &s.cfg.model,
            &cfg.data,
            cfg.samples,
            |m| Encoder {
                tokenizer: &m.tokenizer,
                template: m.chat_template.as_ref(),
                max_length: s.cfg.max_length,
                policy: s.cfg.chat_template,
            },
            s.device(),
        )?;
        std::fs::create_dir_all(s.cache_dir).map_err(|e| TrainError::Io {
            path: s.cache_dir.to_path_buf(),
            source: e,
        })?;
        let mut tensors: Vec<(String, Tensor)> =
            f.diag.iter().map(|(k, t)| (k.clone(), t.clone())).collect();
        tensors.push((
            "__samples__".into(),
            Tensor::new(&[f.samples as u32], &Device::Cpu)?,
        ));
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        crate::model::checkpoint::write_safetensors(&tmp, &tensors)?;
        std::fs::rename(&tmp, &path).map_err(|e| TrainError::Io {
            path: path.clone(),
            source: e,
        })?;
        Ok((f, false))
    }
}

/// How θ − θ₀ of one penalized weight is formed.
enum Delta {
    /// a trainable weight and its value at the base
    Full { var: Var, theta0: Tensor },
    /// a LoRA-adapted weight: `scale·B·A` (transposed for GPT-2's `[in, out]` Conv1D layout)
    Lora {
        a: Var,
        b: Var,
        scale: f64,
        transpose: bool,
    },
}

pub struct Ewc {
    pub lambda: f64,
    /// (F, how θ − θ₀ is formed) per penalized weight
    terms: Vec<(Tensor, Delta)>,
}

pub(super) fn build(s: &mut Setup) -> Result<Option<Box<dyn Regularizer>>, TrainError> {
    let Some(cfg) = s.cfg.ewc.clone() else {
        return Ok(None);
    };
    if cfg.lambda <= 0.0 {
        return Ok(None);
    }
    let (fisher, _) = Fisher::cached(s, &cfg)?;
    let missing = |name: &str| {
        TrainError::Data(format!(
            "the EWC Fisher has no entry for `{name}` (computed on another model?)"
        ))
    };
    let mut terms = Vec::new();
    match &s.cfg.lora {
        None => {
            let theta0 = super::l2sp::reference(s)?;
            for (name, var) in s.vars {
                let f = fisher.diag.get(name).ok_or_else(|| missing(name))?;
                terms.push((
                    f.to_device(s.device())?,
                    Delta::Full {
                        var: var.clone(),
                        theta0: theta0[name].clone(),
                    },
                ));
            }
        }
        Some(l) => {
            let transpose = s.model.arch.layout == WeightLayout::Gpt2;
            let modules: Vec<String> = s
                .vars
                .keys()
                .filter_map(|k| {
                    k.strip_prefix("base_model.model.")?
                        .strip_suffix(".lora_A.weight")
                        .map(String::from)
                })
                .collect();
            for m in modules {
                let name = format!("{m}.weight");
                let f = fisher.diag.get(&name).ok_or_else(|| missing(&name))?;
                terms.push((
                    f.to_device(s.device())?,
                    Delta::Lora {
                        a: s.vars[&peft_key(&m, "A")].clone(),
                        b: s.vars[&peft_key(&m, "B")].clone(),
                        scale: l.alpha / l.r as f64,
                        transpose,
                    },
                ));
            }
        }
    }
    Ok(Some(Box::new(Ewc {
        lambda: cfg.lambda,
        terms,
    })))
}

impl Ewc {
    pub const NAME: &'static str = "ewc";

    /// A penalty on full weights: `lambda/2 · Σ F·(θ − θ₀)²` (tests and tools).
    pub fn on_weights(lambda: f64, items: Vec<(Tensor, Var, Tensor)>) -> Ewc {
        Ewc {
            lambda,
            terms: items
                .into_iter()
                .map(|(f, var, theta0)| (f, Delta::Full { var, theta0 }))
                .collect(),
        }
    }

    /// A penalty on LoRA deltas: `lambda/2 · Σ F·(scale·B·A)²` (tests and tools).
    pub fn on_lora(lambda: f64, items: Vec<(Tensor, Var, Var, f64, bool)>) -> Ewc {
        Ewc {
            lambda,
            terms: items
                .into_iter()
                .map(|(f, a, b, scale, transpose)| {
                    (
                        f,
                        Delta::Lora {
                            a,
                            b,
                            scale,
                            transpose,
                        },
                    )
                })
                .collect(),
        }
    }

    /// The penalty as a differentiable scalar.
    pub fn penalty(&self) -> Result<Tensor, TrainError> {
        let mut total: Option<Tensor> = None;
        for (f, delta) in &self.terms {
            let d = match delta {
                Delta::Full { var, theta0 } => (var.as_tensor().to_dtype(DType::F32)? - theta0)?,
                Delta::Lora {
                    a,
                    b,
                    scale,
                    transpose,
                } => {
                    let d = (b.as_tensor().matmul(a.as_tensor())? * *scale)?;
                    if *transpose {
                        d.t()?
                    } else {
                        d
                    }
                }
            };
            let term = (d.sqr()? * f)?.sum_all()?;
            total = Some(match total {
                Some(t) => (t + term)?,
                None => term,
            });
        }
        let total = match total {
            Some(t) => t,
            None => Tensor::new(0f32, &Device::Cpu)?,
        };
        Ok((total * (self.lambda / 2.0))?)
    }
}

impl Regularizer for Ewc {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn weight_term(&self, _vars: &BTreeMap<String, Var>) -> Result<Option<Tensor>, TrainError> {
        Ok(Some(self.penalty()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fd_check(reg: &Ewc, var: &Var) {
        let p = reg.penalty().unwrap();
        let g: Vec<f32> = p
            .backward()
            .unwrap()
            .get(var.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let x: Vec<f32> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        let shape = var.as_tensor().shape().clone();
        for i in 0..x.len() {
            let at = |h: f32| {
                let mut y = x.clone();
                y[i] += h;
                var.set(&Tensor::from_vec(y, shape.clone(), &Device::Cpu).unwrap())
                    .unwrap();
                let v: f32 = reg.penalty().unwrap().to_scalar().unwrap();
                v as f64
            };
            let h = 1e-2;
            let num = (at(h) - at(-h)) / (2.0 * h as f64);
            var.set(&Tensor::from_vec(x.clone(), shape.clone(), &Device::Cpu).unwrap())
                .unwrap();
            assert!(
                (num - g[i] as f64).abs() < 2e-3 * (1.0 + num.abs()),
                "element {i}: finite difference {num} vs gradient {}",
                g[i]
            );
        }
    }

    #[test]
    fn full_weight_penalty_and_gradient_match_finite_differences() {
        let dev = Device::Cpu;
        let f = Tensor::new(&[[2.0f32, 0.0, 0.5], [1.0, 3.0, 0.1]], &dev).unwrap();
        let t0 = Tensor::new(&[[1.0f32, -1.0, 0.5], [0.0, 0.2, -0.3]], &dev).unwrap();
        let var =
            Var::from_tensor(&Tensor::new(&[[1.5f32, -0.5, 0.0], [0.4, 0.1, 0.2]], &dev).unwrap())
                .unwrap();
        let reg = Ewc::on_weights(0.3, vec![(f.clone(), var.clone(), t0.clone())]);
        let val: f32 = reg.penalty().unwrap().to_scalar().unwrap();
        let fs: Vec<f32> = f.flatten_all().unwrap().to_vec1().unwrap();
        let ds: Vec<f32> = (var.as_tensor() - &t0)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let expect: f32 = 0.15 * fs.iter().zip(&ds).map(|(f, d)| f * d * d).sum::<f32>();
        assert!((val - expect).abs() < 1e-6, "{val} vs {expect}");
        fd_check(&reg, &var);
        // a weight with zero Fisher is free to move
        let zero = Ewc::on_weights(
            0.3,
            vec![(f.zeros_like().unwrap(), var.clone(), t0.clone())],
        );
        let z: f32 = zero.penalty().unwrap().to_scalar().unwrap();
        assert_eq!(z, 0.0);
    }

    #[test]
    fn lora_delta_penalty_and_gradients_match_finite_differences() {
        let dev = Device::Cpu;
        // W is [out 3, in 4]; A [r 2, in 4], B [out 3, r 2]
        let f = Tensor::new(
            &[
                [1.0f32, 0.5, 2.0, 0.1],
                [0.0, 1.5, 0.3, 0.7],
                [0.9, 0.2, 0.0, 1.1],
            ],
            &dev,
        )
        .unwrap();
        let a = Var::from_tensor(
            &Tensor::new(&[[0.3f32, -0.2, 0.5, 0.1], [0.0, 0.4, -0.6, 0.2]], &dev).unwrap(),
        )
        .unwrap();
        let b = Var::from_tensor(
            &Tensor::new(&[[0.5f32, -0.1], [0.2, 0.3], [-0.4, 0.6]], &dev).unwrap(),
        )
        .unwrap();
        let reg = Ewc::on_lora(0.7, vec![(f.clone(), a.clone(), b.clone(), 2.0, false)]);
        let delta = (b.as_tensor().matmul(a.as_tensor()).unwrap() * 2.0).unwrap();
        let expect: f32 = (delta.sqr().unwrap() * &f)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
            * 0.35;
        let val: f32 = reg.penalty().unwrap().to_scalar().unwrap();
        assert!((val - expect).abs() < 1e-6, "{val} vs {expect}");
        fd_check(&reg, &a);
        fd_check(&reg, &b);
        // GPT-2's [in, out] layout: the Fisher is transposed, and so must the delta be
        let ft = f.t().unwrap().contiguous().unwrap();
        let gpt2 = Ewc::on_lora(0.7, vec![(ft, a.clone(), b.clone(), 2.0, true)]);
        let v2: f32 = gpt2.penalty().unwrap().to_scalar().unwrap();
        assert!((v2 - expect).abs() < 1e-6);
        fd_check(&gpt2, &b);
    }
}

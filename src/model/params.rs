//! The weights a model is built from: read from safetensors, converted to the compute dtype, and
//! either wrapped as trainable [`Var`]s or kept as plain (frozen) tensors.

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor, Var};

use super::checkpoint::WeightFiles;
use super::ModelError;

pub struct Params {
    pub files: WeightFiles,
    device: Device,
    dtype: DType,
    trainable: bool,
    /// names kept as plain tensors even when trainable
    frozen: Option<FreezeSpec>,
    /// shapes only: `get` checks shapes and returns empty placeholders (see [`Params::shapes_only`])
    shapes_only: bool,
    /// element count of every tensor the model uses
    counts: BTreeMap<String, usize>,
    /// every tensor the model uses, in the compute dtype (a Var's tensor when trainable)
    loaded: BTreeMap<String, Tensor>,
    vars: BTreeMap<String, Var>,
    /// names stored in the checkpoint that stand for another tensor (a tied `lm_head.weight`)
    aliases: BTreeMap<String, String>,
    /// a PEFT LoRA adapter merged into each weight as it is loaded
    adapter: Option<super::adapter::Adapter>,
}

impl Params {
    pub fn new(files: WeightFiles, device: Device, dtype: DType, trainable: bool) -> Params {
        Params {
            files,
            device,
            dtype,
            trainable,
            frozen: None,
            shapes_only: false,
            counts: BTreeMap::new(),
            loaded: BTreeMap::new(),
            vars: BTreeMap::new(),
            aliases: BTreeMap::new(),
            adapter: None,
        }
    }

    /// Merge `adapter` into the weights as they are loaded.
    pub fn with_adapter(mut self, adapter: Option<super::adapter::Adapter>) -> Params {
        self.adapter = adapter;
        self
    }

    /// The merged adapter, if any.
    pub fn adapter(&self) -> Option<&super::adapter::Adapter> {
        self.adapter.as_ref()
    }

    /// Params that check names and shapes against the headers without reading any tensor data:
    /// a decoder built from them validates a checkpoint and counts its parameters, but holds
    /// empty placeholders and must never be run.
    pub(crate) fn shapes_only(files: WeightFiles) -> Params {
        Params {
            shapes_only: true,
            ..Params::new(files, Device::Cpu, DType::F32, false)
        }
    }

    /// Keep the weights `spec` selects as plain tensors: no gradient is computed for them.
    pub fn with_frozen(mut self, spec: Option<FreezeSpec>) -> Params {
        self.frozen = spec;
        self
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn has(&self, name: &str) -> bool {
        self.files.contains(name)
    }

    /// Load `name`, checking its shape; the returned tensor is the one the model must hold.
    pub fn get(&mut self, name: &str, shape: &[usize]) -> Result<Tensor, ModelError> {
        if let Some(t) = self.loaded.get(name) {
            return Ok(t.clone());
        }
        let found = self
            .files
            .shape(name)
            .ok_or_else(|| ModelError::MissingTensor {
                path: self.files.path_of(name),
                name: name.to_string(),
            })?;
        if found != shape {
            return Err(ModelError::ShapeMismatch {
                path: self.files.path_of(name),
                name: name.to_string(),
                expected: shape.to_vec(),
                found,
            });
        }
        self.counts.insert(name.to_string(), shape.iter().product());
        if self.shapes_only {
            if let Some(a) = self.adapter.as_mut() {
                a.touch(name);
            }
            let t = Tensor::zeros(0, self.dtype, &self.device).map_err(ModelError::candle(name))?;
            self.loaded.insert(name.to_string(), t.clone());
            return Ok(t);
        }
        let mut t = self.files.load(name, &self.device)?;
        if let Some(a) = self.adapter.as_mut() {
            t = a.apply(name, t, shape)?;
        }
        let t = t.to_dtype(self.dtype).map_err(ModelError::candle(name))?;
        let frozen = self.frozen.as_ref().is_some_and(|f| f.is_frozen(name));
        let t = if self.trainable && !frozen {
            let var = Var::from_tensor(&t).map_err(ModelError::candle(name))?;
            let t = var.as_tensor().clone();
            self.vars.insert(name.to_string(), var);
            t
        } else {
            t
        };
        self.loaded.insert(name.to_string(), t.clone());
        Ok(t)
    }

    /// Load `name` if the checkpoint has it.
    pub fn get_opt(&mut self, name: &str, shape: &[usize]) -> Result<Option<Tensor>, ModelError> {
        if self.has(name) {
            self.get(name, shape).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Record that a stored tensor is the same weight as another (tied embeddings).
    pub fn alias(&mut self, stored: &str, target: &str) {
        if self.files.contains(stored) {
            self.aliases.insert(stored.to_string(), target.to_string());
        }
    }

    /// Trainable variables by checkpoint name (empty for a frozen model).
    pub fn vars(&self) -> &BTreeMap<String, Var> {
        &self.vars
    }

    /// Tensors the model uses, by checkpoint name.
    pub fn loaded(&self) -> &BTreeMap<String, Tensor> {
        &self.loaded
    }

    /// Count of distinct parameters the model uses (tied weights once; buffers excluded).
    pub fn num_parameters(&self) -> usize {
        self.counts.values().sum()
    }

    /// Names stored in the checkpoint that the model did not use (mask buffers, stale rotary tables).
    pub fn unused(&self) -> Vec<String> {
        self.files
            .tensors
            .keys()
            .filter(|n| !self.loaded.contains_key(*n) && !self.aliases.contains_key(*n))
            .cloned()
            .collect()
    }

    /// The file a stored tensor lives in.
    pub fn path_of(&self, name: &str) -> std::path::PathBuf {
        self.files.path_of(name)
    }

    /// Stored tensors the model did not use that are neither buffers (attention masks, rotary
    /// tables) nor a tied output head: a config that does not match its weights (fewer layers
    /// than stored, a tensor of another architecture).
    pub fn unexpected(&self) -> Vec<String> {
        self.unused()
            .into_iter()
            .filter(|n| {
                !(n.ends_with(".attn.bias")
                    || n.ends_with(".attn.masked_bias")
                    || n.ends_with("rotary_emb.inv_freq")
                    || n == "lm_head.weight")
            })
            .collect()
    }

    /// Every stored tensor with its current value in its stored dtype, grouped by file name:
    /// what a save must write to reproduce the input layout.
    pub fn to_save(
        &self,
        overrides: &BTreeMap<String, Tensor>,
    ) -> Result<BTreeMap<String, Vec<(String, Tensor)>>, ModelError> {
        let mut out: BTreeMap<String, Vec<(String, Tensor)>> = BTreeMap::new();
        for (name, &file_idx) in &self.files.tensors {
            let source = self.aliases.get(name).unwrap_or(name);
            let stored = self.files.dtype(name).expect("listed tensor has a dtype");
            let stored = stored_dtype(stored).ok_or_else(|| ModelError::UnsupportedDtype {
                path: self.files.path_of(name),
                name: name.clone(),
                dtype: format!("{stored:?}"),
            })?;
            let t = match overrides.get(source).or_else(|| self.loaded.get(source)) {
                Some(t) => t
                    .to_dtype(stored)
                    .and_then(|t| t.to_device(&Device::Cpu))
                    .map_err(ModelError::candle(name.as_str()))?,
                None => self.files.load(name, &Device::Cpu)?,
            };
            out.entry(self.files.files[file_idx].clone())
                .or_default()
                .push((name.clone(), t));
        }
        Ok(out)
    }
}

fn stored_dtype(d: safetensors::Dtype) -> Option<DType> {
    use safetensors::Dtype as S;
    Some(match d {
        S::F32 => DType::F32,
        S::F16 => DType::F16,
        S::BF16 => DType::BF16,
        S::F64 => DType::F64,
        S::U8 => DType::U8,
        S::U32 => DType::U32,
        S::I64 => DType::I64,
        _ => return None,
    })
}

/// Which weights stay frozen: the embeddings, the first `first_layers` blocks, and names
/// matching any of `patterns` (regular expressions).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FreezeSpec {
    #[serde(default)]
    pub embeddings: bool,
    #[serde(default)]
    pub first_layers: usize,
    #[serde(default)]
    pub patterns: Vec<String>,
}

impl FreezeSpec {
    pub fn is_empty(&self) -> bool {
        !self.embeddings && self.first_layers == 0 && self.patterns.is_empty()
    }

    /// Check the patterns compile; the error names the bad one.
    pub fn validate(&self) -> Result<(), String> {
        for p in &self.patterns {
            regex::Regex::new(p).map_err(|e| format!("freeze pattern `{p}`: {e}"))?;
        }
        Ok(())
    }

    pub fn is_frozen(&self, name: &str) -> bool {
        if self.embeddings
            && ["embed_tokens.", "wte.", "wpe."]
                .iter()
                .any(|e| name.contains(e))
        {
            return true;
        }
        if self.first_layers > 0 {
            if let Some(l) = layer_index(name) {
                if l < self.first_layers {
                    return true;
                }
            }
        }
        self.patterns
            .iter()
            .any(|p| regex::Regex::new(p).is_ok_and(|r| r.is_match(name)))
    }
}

/// The block index in names like `model.layers.3.mlp…` or `transformer.h.3.attn…`.
pub fn layer_index(name: &str) -> Option<usize> {
    let parts: Vec<&str> = name.split('.').collect();
    parts
        .windows(2)
        .find(|w| w[0] == "layers" || w[0] == "h")
        .and_then(|w| w[1].parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freeze_selects_embeddings_layers_and_patterns() {
        let f = FreezeSpec {
            embeddings: true,
            first_layers: 2,
            patterns: vec![r"\.mlp\.down_proj\.".into()],
        };
        assert!(f.is_frozen("model.embed_tokens.weight"));
        assert!(f.is_frozen("transformer.wpe.weight"));
        assert!(f.is_frozen("model.layers.1.self_attn.q_proj.weight"));
        assert!(f.is_frozen("h.0.ln_1.weight"));
        assert!(!f.is_frozen("model.layers.2.self_attn.q_proj.weight"));
        assert!(f.is_frozen("model.layers.7.mlp.down_proj.weight"));
        assert!(!f.is_frozen("model.norm.weight"));
        assert!(FreezeSpec {
            patterns: vec!["(".into()],
            ..Default::default()
        }
        .validate()
        .is_err());
    }
}

//! PEFT LoRA adapters: a folder with `adapter_config.json` and `adapter_model.safetensors` is its
//! base checkpoint with the adapter merged in, exactly as PEFT's `merge_and_unload()` computes
//! it: `W += scale · B·A` (transposed for GPT-2's Conv1D under `fan_in_fan_out`, and for
//! embeddings), `scale = alpha / r` (`alpha / √r` with `use_rslora`), `r` and `alpha` per module
//! from `rank_pattern` / `alpha_pattern`; biases and `modules_to_save` copies replace the base's
//! tensors. Each weight is merged in float32 as it is loaded, so an adapter costs no extra memory
//! beyond its own tensors.
//!
//! Only LoRA is read. Other PEFT methods and LoRA variants that change the computation (DoRA,
//! LoRA biases, layer replication, trainable tokens, …) are refused by name; a tensor in the file
//! that the config does not target, or that the base does not use, is an error.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use super::ModelError;

mod config;
pub use config::LoraConfig;

pub const ADAPTER_CONFIG: &str = "adapter_config.json";
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";
/// Prefix PEFT gives every key it saves (`PeftModel.base_model.model`).
const PREFIX: &str = "base_model.model.";

/// Whether `dir` is a PEFT adapter folder.
pub fn is_adapter(dir: &Path) -> bool {
    dir.join(ADAPTER_CONFIG).is_file()
}

/// An adapter folder and the base checkpoint it applies to.
#[derive(Debug, Clone)]
pub struct AdapterSpec {
    pub dir: PathBuf,
    pub base: PathBuf,
    pub config: LoraConfig,
}

/// The adapter of `dir` and its base, when `dir` is an adapter folder: the base is `base`
/// when given, else `base_model_name_or_path` resolved as transformers resolves it offline (a
/// folder relative to the working directory, then beside the adapter, then the Hub id's
/// snapshot in the local Hugging Face cache). Nothing is ever downloaded.
pub fn resolve(dir: &Path, base: Option<&Path>) -> Result<Option<AdapterSpec>, ModelError> {
    if !is_adapter(dir) {
        return Ok(None);
    }
    let weights = dir.join(ADAPTER_WEIGHTS);
    if !weights.is_file() {
        let bin = dir.join("adapter_model.bin");
        return Err(ModelError::MissingFile {
            path: weights,
            hint: Some(if bin.exists() {
                "this adapter is saved as adapter_model.bin (a pickle, which can run code when read): sft-eval reads only safetensors; re-save it with PEFT (`model.save_pretrained(dir, safe_serialization=True)`)".into()
            } else {
                "a PEFT adapter folder holds adapter_config.json and adapter_model.safetensors"
                    .into()
            }),
        });
    }
    let config = LoraConfig::read(&dir.join(ADAPTER_CONFIG))?;
    let base = match base {
        Some(b) => b.to_path_buf(),
        None => config.base_dir(dir)?,
    };
    if is_adapter(&base) {
        return Err(ModelError::Invalid(format!(
            "{}: the base of adapter {} is itself an adapter; merge it first (PEFT `merge_and_unload`) or pass the full checkpoint with --base",
            base.display(),
            dir.display()
        )));
    }
    Ok(Some(AdapterSpec {
        dir: dir.to_path_buf(),
        base,
        config,
    }))
}

/// Where a model folder's parts come from.
pub struct Sources {
    /// the folder with config.json and the weights: `dir`, or an adapter's base
    pub weights: PathBuf,
    /// the folder with the tokenizer and chat template: an adapter folder when it has a
    /// `tokenizer.json` (as trainers save them), else `weights`
    pub tokenizer: PathBuf,
    /// the adapter to merge, when `dir` is an adapter folder
    pub adapter: Option<Adapter>,
}

/// The sources of model folder `dir` (an adapter folder's base is `base`, else its config's).
pub fn sources(dir: &Path, base: Option<&Path>) -> Result<Sources, ModelError> {
    let Some(spec) = resolve(dir, base)? else {
        return Ok(Sources {
            weights: dir.to_path_buf(),
            tokenizer: dir.to_path_buf(),
            adapter: None,
        });
    };
    let tokenizer = if dir.join("tokenizer.json").is_file() {
        dir.to_path_buf()
    } else {
        spec.base.clone()
    };
    Ok(Sources {
        weights: spec.base.clone(),
        tokenizer,
        adapter: Some(Adapter::open(&spec)?),
    })
}

/// One base tensor's change.
#[derive(Debug, Default)]
struct Change {
    /// adapter key of a tensor that replaces the base's (a bias, a modules_to_save copy)
    replace: Option<String>,
    /// adapter keys of A and B, the scale, and whether `B·A` is transposed
    lora: Option<(String, String, f64, bool)>,
}

/// A loaded adapter: its tensors, and the change each base tensor gets.
pub struct Adapter {
    pub dir: PathBuf,
    /// the base checkpoint it applies to
    pub base: PathBuf,
    path: PathBuf,
    tensors: std::collections::HashMap<String, Tensor>,
    /// base tensor name (as PEFT names it) → change
    changes: BTreeMap<String, Change>,
    applied: BTreeSet<String>,
}

impl Adapter {
    /// Read the adapter of `spec` and work out which base tensor each of its tensors changes.
    pub fn open(spec: &AdapterSpec) -> Result<Adapter, ModelError> {
        let config = &spec.config;
        let path = spec.dir.join(ADAPTER_WEIGHTS);
        let tensors = candle_core::safetensors::load(&path, &Device::Cpu).map_err(|e| {
            ModelError::CorruptWeights {
                path: path.clone(),
                reason: e.to_string(),
            }
        })?;
        let unexpected = |key: &str, why: String| ModelError::InvalidConfig {
            path: path.clone(),
            field: key.to_string(),
            reason: why,
        };
        let mut changes: BTreeMap<String, Change> = BTreeMap::new();
        let mut keys: Vec<&String> = tensors.keys().collect();
        keys.sort();
        for key in keys {
            let name = key.strip_prefix(PREFIX).ok_or_else(|| {
                unexpected(
                    key,
                    format!("not a PEFT adapter key (expected the `{PREFIX}` prefix)"),
                )
            })?;
            if name.contains(".lora_magnitude_vector") {
                return Err(unexpected(
                    key,
                    "a DoRA magnitude vector: DoRA adapters are not supported".into(),
                ));
            }
            let lora = [
                (".lora_A.weight", ".lora_B.weight", false),
                (".lora_embedding_A", ".lora_embedding_B", true),
            ]
            .into_iter()
            .find_map(|(a, b, emb)| name.strip_suffix(a).map(|m| (m, a, b, emb)));
            if let Some((module, _, b_suffix, embedding)) = lora {
                let b_key = format!("{PREFIX}{module}{b_suffix}");
                if !tensors.contains_key(&b_key) {
                    return Err(unexpected(key, format!("has no matching `{b_key}`")));
                }
                let is_head = module == "lm_head" || module.ends_with(".lm_head");
                if !config.targets(module, is_head) {
                    return Err(unexpected(
                        key,
                        format!("module `{module}` is not one that adapter_config.json's target_modules / layers_to_transform select; the config and the weights do not belong together"),
                    ));
                }
                let (r, alpha) = config.rank_alpha(module);
                let rows = tensors[key].dims().first().copied().unwrap_or(0);
                if rows != r {
                    return Err(unexpected(
                        key,
                        format!("has rank {rows}, but adapter_config.json (r / rank_pattern) gives {r} for `{module}`"),
                    ));
                }
                let scale = if config.use_rslora {
                    alpha / (r as f64).sqrt()
                } else {
                    alpha / r as f64
                };
                let transpose = embedding || config.fan_in_fan_out;
                changes.entry(format!("{module}.weight")).or_default().lora =
                    Some((key.clone(), b_key, scale, transpose));
            } else if name.contains(".lora_B.") || name.contains(".lora_embedding_B") {
                continue; // paired with its A above
            } else if name.contains(".original_module.") {
                continue; // the untouched original of a modules_to_save copy
            } else if let Some(base) = [".base_layer.", ".modules_to_save."]
                .iter()
                .find_map(|p| name.split_once(p).map(|(m, t)| format!("{m}.{t}")))
            {
                changes.entry(base).or_default().replace = Some(key.clone());
            } else if name.contains(".lora_") {
                return Err(unexpected(
                    key,
                    "an adapter tensor sft-eval does not know".into(),
                ));
            } else {
                // a saved bias or modules_to_save copy under the base's own name; a
                // `modules_to_save.` copy of the same tensor, when also saved, wins
                let c = changes.entry(name.to_string()).or_default();
                if c.replace.is_none() {
                    c.replace = Some(key.clone());
                }
            }
        }
        Ok(Adapter {
            dir: spec.dir.clone(),
            base: spec.base.clone(),
            path,
            tensors,
            changes,
            applied: BTreeSet::new(),
        })
    }

    /// The key of the change to base tensor `name`, if any (GPT-2 checkpoints are often saved
    /// without the `transformer.` prefix that PEFT's names carry).
    fn key_of(&self, name: &str) -> Option<String> {
        [name.to_string(), format!("transformer.{name}")]
            .into_iter()
            .find(|k| self.changes.contains_key(k))
    }

    /// Record that the model uses base tensor `name` without merging anything (shape checks
    /// that read no tensor data).
    pub fn touch(&mut self, name: &str) {
        if let Some(k) = self.key_of(name) {
            self.applied.insert(k);
        }
    }

    /// Base tensors this adapter changes.
    pub fn num_changed(&self) -> usize {
        self.changes.len()
    }

    /// Elements in the adapter's own tensors.
    pub fn num_parameters(&self) -> usize {
        self.tensors.values().map(|t| t.elem_count()).sum()
    }

    /// The base's tensor `name` (as loaded) with this adapter's change, in float32; unchanged
    /// tensors come back as they are.
    pub fn apply(
        &mut self,
        name: &str,
        base: Tensor,
        shape: &[usize],
    ) -> Result<Tensor, ModelError> {
        let Some(key) = self.key_of(name) else {
            return Ok(base);
        };
        let err = ModelError::candle(format!("{}: merging into `{name}`", self.path.display()));
        let change = &self.changes[&key];
        let mut w = match &change.replace {
            Some(k) => {
                let t = &self.tensors[k];
                if t.dims() != shape {
                    return Err(ModelError::ShapeMismatch {
                        path: self.path.clone(),
                        name: k.clone(),
                        expected: shape.to_vec(),
                        found: t.dims().to_vec(),
                    });
                }
                t.to_device(base.device())
                    .and_then(|t| t.to_dtype(DType::F32))
            }
            None => base.to_dtype(DType::F32),
        }
        .map_err(ModelError::candle(name))?;
        if let Some((a, b, scale, transpose)) = &change.lora {
            let (a_t, b_t) = (&self.tensors[a], &self.tensors[b]);
            let delta = (|| {
                let a = a_t.to_device(w.device())?.to_dtype(DType::F32)?;
                let b = b_t.to_device(w.device())?.to_dtype(DType::F32)?;
                let d = (b.matmul(&a)? * *scale)?;
                if *transpose {
                    d.t()?.contiguous()
                } else {
                    Ok(d)
                }
            })()
            .map_err(err)?;
            if delta.dims() != w.dims() {
                return Err(ModelError::ShapeMismatch {
                    path: self.path.clone(),
                    name: a.clone(),
                    expected: w.dims().to_vec(),
                    found: delta.dims().to_vec(),
                });
            }
            w = (w + delta).map_err(ModelError::candle(name))?;
        }
        self.applied.insert(key);
        Ok(w)
    }

    /// After the model is built: an error when the adapter changes a base tensor the model
    /// never loaded (a tied head, another architecture's names), which merging would drop.
    pub fn check_all_applied(&self) -> Result<(), ModelError> {
        match self.changes.keys().find(|k| !self.applied.contains(*k)) {
            None => Ok(()),
            Some(first) => Err(ModelError::Invalid(format!(
                "{}: the adapter changes `{first}`, which the base model {} does not load (a tied output head, or an adapter made for another model); nothing was merged",
                self.path.display(),
                self.base.display()
            ))),
        }
    }

    /// The adapter weights file, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

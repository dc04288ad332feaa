//! Hugging Face checkpoints: load, run, train and save the eight supported decoder families.
//!
//! ```no_run
//! use sft_eval::model::{LoadOptions, Model};
//! let model = Model::load("path/to/checkpoint".as_ref(), &LoadOptions::default())?;
//! let ids = model.tokenizer.encode("Hello", true)?;
//! # Ok::<(), sft_eval::model::ModelError>(())
//! ```

pub mod adapter;
pub mod arch;
pub mod chat_template;
pub mod checkpoint;
pub mod config;
pub mod decoder;
pub mod device;
mod error;
pub mod fingerprint;
pub mod generate;
pub mod info;
pub mod jinja;
pub mod kernels;
pub mod kv_cache;
pub mod layers;
pub mod params;
pub mod rope;
pub mod score;
pub mod tokenizer;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde_json::Value;

pub use arch::{Architecture, Family};
pub use chat_template::{ChatTemplate, Message};
pub use config::{DecoderConfig, RawConfig};
pub use decoder::{Decoder, KvCache};
pub use device::DeviceSpec;
pub use error::ModelError;
pub use tokenizer::Tokenizer;

use checkpoint::{AtomicDir, WeightFiles, CONFIG_FILE, METADATA_FILES};
use params::Params;

/// How to load a checkpoint.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub device: Device,
    /// compute dtype; f32 unless asked otherwise (bf16 matmul on CPU is no faster)
    pub dtype: DType,
    /// wrap weights as trainable variables (otherwise plain frozen tensors)
    pub trainable: bool,
    /// with `trainable`: weights to keep frozen anyway
    pub frozen: Option<params::FreezeSpec>,
    /// for a PEFT adapter folder: its base checkpoint (instead of the one
    /// `base_model_name_or_path` names)
    pub base: Option<PathBuf>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            device: Device::Cpu,
            dtype: DType::F32,
            trainable: false,
            frozen: None,
            base: None,
        }
    }
}

/// `generation_config.json`, the parts sft-eval uses.
#[derive(Debug, Clone, Default)]
pub struct GenerationDefaults {
    pub eos_token_id: Vec<u32>,
    pub bos_token_id: Vec<u32>,
    pub pad_token_id: Vec<u32>,
}

/// A loaded checkpoint folder: architecture, weights, tokenizer and chat template.
pub struct Model {
    /// the folder loaded: a checkpoint, or a PEFT adapter folder
    pub dir: PathBuf,
    /// where the tokenizer and chat template were read (the adapter folder or the base)
    pub tokenizer_dir: PathBuf,
    pub arch: &'static Architecture,
    pub raw_config: RawConfig,
    pub decoder: Decoder,
    pub params: Params,
    pub tokenizer: Tokenizer,
    pub chat_template: Option<ChatTemplate>,
    pub generation: GenerationDefaults,
    /// dtype of the stored weights (the most common one)
    pub stored_dtype: String,
}

impl Model {
    /// Load a checkpoint folder, or a PEFT adapter folder merged into its base (see
    /// [`adapter`]): the tokenizer and chat template come from the adapter folder when it has a
    /// `tokenizer.json` (as trainers save them), else from the base.
    pub fn load(dir: &Path, opts: &LoadOptions) -> Result<Model, ModelError> {
        let src = adapter::sources(dir, opts.base.as_deref())?;
        let (base, tok_dir) = (src.weights.as_path(), src.tokenizer.as_path());
        let (arch, raw, cfg) = read_config(base)?;
        let tokenizer = Tokenizer::from_dir(tok_dir)?;
        let chat_template = ChatTemplate::from_dir(tok_dir)?;
        let generation = read_generation_config(base, &cfg)?;
        let files = WeightFiles::open(base)?;
        let stored_dtype = majority_dtype(&files);
        let mut params = Params::new(files, opts.device.clone(), opts.dtype, opts.trainable)
            .with_frozen(opts.frozen.clone())
            .with_adapter(src.adapter);
        let decoder = Decoder::load(&cfg, arch.layout, &mut params)?;
        if let Some(a) = params.adapter() {
            a.check_all_applied()?;
        }
        let unexpected = params.unexpected();
        if let Some(first) = unexpected.first() {
            return Err(ModelError::InvalidConfig {
                path: base.join(CONFIG_FILE),
                field: "num_hidden_layers".into(),
                reason: format!(
                    "the weights hold {} tensor(s) this config does not use, e.g. `{first}` in {} (more layers than the config says, or another architecture's weights)",
                    unexpected.len(),
                    params.path_of(first).display()
                ),
            });
        }
        if tokenizer.vocab_size() > cfg.vocab_size {
            return Err(ModelError::VocabMismatch {
                path: tok_dir.join("tokenizer.json"),
                tokenizer: tokenizer.vocab_size(),
                embedding: cfg.vocab_size,
            });
        }
        Ok(Model {
            dir: dir.to_path_buf(),
            tokenizer_dir: tok_dir.to_path_buf(),
            arch,
            raw_config: raw,
            decoder,
            params,
            tokenizer,
            chat_template,
            generation,
            stored_dtype,
        })
    }

    pub fn config(&self) -> &DecoderConfig {
        self.decoder.config()
    }

    pub fn device(&self) -> &Device {
        self.params.device()
    }

    /// Token ids that end generation: generation_config.json's, else config.json's.
    pub fn eos_token_ids(&self) -> Vec<u32> {
        if !self.generation.eos_token_id.is_empty() {
            self.generation.eos_token_id.clone()
        } else {
            self.config().eos_token_id.clone()
        }
    }

    /// Logits `[b, t, vocab]` for a right-padded batch of token id rows.
    pub fn forward_batch(&self, rows: &[Vec<u32>]) -> Result<Tensor, ModelError> {
        let (ids, lengths) =
            pad_batch(rows, self.device()).map_err(ModelError::candle("building the batch"))?;
        self.decoder
            .forward(&ids, &lengths)
            .map_err(ModelError::candle("forward"))
    }

    /// Save weights (same names, shapes, dtypes and shard layout as the input), config,
    /// tokenizer and template files to `out`, atomically.
    pub fn save(&self, out: &Path, overwrite: bool) -> Result<PathBuf, ModelError> {
        let dir = AtomicDir::new(out)?;
        self.write_into(dir.path(), &Default::default())?;
        dir.commit(overwrite)
    }

    /// Write the checkpoint files into an existing folder; `overrides` replaces tensors by
    /// name (merged adapters).
    pub fn write_into(
        &self,
        dir: &Path,
        overrides: &std::collections::BTreeMap<String, Tensor>,
    ) -> Result<(), ModelError> {
        let groups = self.params.to_save(overrides)?;
        let mut weight_map = serde_json::Map::new();
        let mut total = 0usize;
        for (file, tensors) in &groups {
            for (name, t) in tensors {
                weight_map.insert(name.clone(), Value::String(file.clone()));
                total += t.elem_count() * t.dtype().size_in_bytes();
            }
            checkpoint::write_safetensors(&dir.join(file), tensors)?;
        }
        if self.params.files.sharded {
            let index =
                serde_json::json!({"metadata": {"total_size": total}, "weight_map": weight_map});
            checkpoint::write_json(&dir.join(checkpoint::SHARD_INDEX), &index)?;
        }
        checkpoint::write_json(&dir.join(CONFIG_FILE), &self.raw_config.value)?;
        // each file from where the loader read it: generation settings with the weights, the
        // tokenizer's files with the tokenizer (an adapter folder's, or the base's)
        for name in METADATA_FILES {
            let from = if *name == "generation_config.json" {
                &self.params.files.dir
            } else {
                &self.tokenizer_dir
            };
            let src = from.join(name);
            if src.is_file() {
                let dst = dir.join(name);
                std::fs::copy(&src, &dst).map_err(|e| error::io_error(&src, e))?;
                checkpoint::set_readable(&dst)?;
            }
        }
        Ok(())
    }
}

/// Read config.json and resolve it through the architecture table.
pub fn read_config(
    dir: &Path,
) -> Result<(&'static Architecture, RawConfig, DecoderConfig), ModelError> {
    if !dir.is_dir() {
        return Err(ModelError::MissingFile {
            path: dir.to_path_buf(),
            hint: Some("pass a Hugging Face checkpoint folder (config.json, model.safetensors, tokenizer.json)".into()),
        });
    }
    let raw = RawConfig::read(&dir.join(CONFIG_FILE))?;
    let arch = Architecture::of(&raw)?;
    let cfg = (arch.parse)(&raw)?;
    Ok((arch, raw, cfg))
}

fn read_generation_config(
    dir: &Path,
    cfg: &DecoderConfig,
) -> Result<GenerationDefaults, ModelError> {
    let path = dir.join("generation_config.json");
    if !path.exists() {
        return Ok(GenerationDefaults {
            eos_token_id: cfg.eos_token_id.clone(),
            bos_token_id: cfg.bos_token_id.clone(),
            pad_token_id: cfg.pad_token_id.clone(),
        });
    }
    let raw = RawConfig::read(&path)?;
    Ok(GenerationDefaults {
        eos_token_id: raw.token_ids("eos_token_id")?,
        bos_token_id: raw.token_ids("bos_token_id")?,
        pad_token_id: raw.token_ids("pad_token_id")?,
    })
}

fn majority_dtype(files: &WeightFiles) -> String {
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for name in files.tensors.keys() {
        if let (Some(d), Some(s)) = (files.dtype(name), files.shape(name)) {
            *counts.entry(format!("{d:?}").to_lowercase()).or_default() +=
                s.iter().product::<usize>();
        }
    }
    counts
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map(|(d, _)| d)
        .unwrap_or_default()
}

/// Right-pad rows of ids with 0 into a `[b, t]` u32 tensor; returns the real lengths.
pub fn pad_batch(rows: &[Vec<u32>], device: &Device) -> candle_core::Result<(Tensor, Vec<usize>)> {
    let t = rows.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let mut flat = Vec::with_capacity(rows.len() * t);
    for r in rows {
        flat.extend_from_slice(r);
        flat.extend(std::iter::repeat_n(0u32, t - r.len()));
    }
    let ids = Tensor::from_vec(flat, (rows.len(), t), device)?;
    Ok((ids, rows.iter().map(Vec::len).collect()))
}

//! What `sft-eval inspect` reports about a checkpoint, computed from headers and small files
//! only: no tensor data is read, so it is cheap on large models, yet every shape is checked.

use std::path::Path;

use serde::Serialize;

use super::checkpoint::WeightFiles;
use super::config::Positions;
use super::params::Params;
use super::{
    read_config, read_generation_config, ChatTemplate, Decoder, Family, Message, ModelError,
    Tokenizer,
};

#[derive(Debug, Clone, Serialize)]
pub struct SpecialToken {
    pub name: String,
    pub token: String,
    pub id: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    pub family: Family,
    pub architecture: String,
    pub num_parameters: usize,
    pub dtype: String,
    pub vocab_size: usize,
    pub tokenizer_vocab_size: usize,
    pub context_length: Option<usize>,
    pub tied_embeddings: bool,
    pub num_layers: usize,
    pub hidden_size: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub intermediate_size: usize,
    pub rope_type: Option<String>,
    /// per layer, when any layer uses a sliding window
    pub sliding_window: Option<Vec<Option<usize>>>,
    pub weight_files: Vec<String>,
    /// stored tensors the model does not use (mask buffers, stale rotary tables)
    pub unused_tensors: Vec<String>,
    pub adds_bos: bool,
    pub special_tokens: Vec<SpecialToken>,
    pub eos_token_ids: Vec<u32>,
    /// the file the chat template was read from (`chat_template.jinja` or `tokenizer_config.json`)
    pub chat_template: Option<String>,
    /// for a PEFT adapter folder: the adapter merged into the base described above
    pub adapter: Option<AdapterInfo>,
}

/// A PEFT LoRA adapter as `inspect` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct AdapterInfo {
    /// the base checkpoint folder it applies to
    pub base: String,
    /// base tensors the adapter changes (LoRA deltas, biases, modules_to_save copies)
    pub changed_tensors: usize,
    /// elements in the adapter's own tensors
    pub num_parameters: usize,
}

/// Describe checkpoint folder `dir`, or PEFT adapter folder `dir` on its base (`base`, else the
/// one its config names): the adapter's tensors are read and matched to the base's, the base's
/// only by their headers.
pub fn inspect(dir: &Path, base: Option<&Path>) -> Result<ModelInfo, ModelError> {
    let src = super::adapter::sources(dir, base)?;
    let (dir, tok_dir) = (src.weights.as_path(), src.tokenizer.as_path());
    let (arch, _raw, cfg) = read_config(dir)?;
    let tokenizer = Tokenizer::from_dir(tok_dir)?;
    let template = ChatTemplate::from_dir(tok_dir)?;
    let generation = read_generation_config(dir, &cfg)?;
    let files = WeightFiles::open(dir)?;
    let dtype = super::majority_dtype(&files);
    let mut params = Params::shapes_only(files).with_adapter(src.adapter);
    Decoder::load(&cfg, arch.layout, &mut params)?;
    let adapter = match params.adapter() {
        Some(a) => {
            a.check_all_applied()?;
            Some(AdapterInfo {
                base: a.base.display().to_string(),
                changed_tensors: a.num_changed(),
                num_parameters: a.num_parameters(),
            })
        }
        None => None,
    };
    if tokenizer.vocab_size() > cfg.vocab_size {
        return Err(ModelError::VocabMismatch {
            path: tok_dir.join("tokenizer.json"),
            tokenizer: tokenizer.vocab_size(),
            embedding: cfg.vocab_size,
        });
    }
    if let Some(t) = &template {
        // A template that cannot render a plain conversation is broken; say so now, not mid-eval.
        let probe = [
            Message {
                role: "user".into(),
                content: "Hello".into(),
            },
            Message {
                role: "assistant".into(),
                content: "Hi!".into(),
            },
            Message {
                role: "user".into(),
                content: "How are you?".into(),
            },
        ];
        t.render(&probe, true)?;
    }
    let rope_type = match &cfg.positions {
        Positions::Rope(r) => Some(r.rope_type().to_string()),
        Positions::Learned { .. } => None,
    };
    let sliding = cfg
        .sliding_window
        .iter()
        .any(Option::is_some)
        .then(|| cfg.sliding_window.clone());
    Ok(ModelInfo {
        family: arch.family,
        architecture: arch.hf_class.to_string(),
        num_parameters: params.num_parameters(),
        dtype,
        vocab_size: cfg.vocab_size,
        tokenizer_vocab_size: tokenizer.vocab_size(),
        context_length: cfg.context_length(),
        tied_embeddings: cfg.tie_word_embeddings,
        num_layers: cfg.num_layers,
        hidden_size: cfg.hidden_size,
        num_heads: cfg.num_heads,
        num_kv_heads: cfg.num_kv_heads,
        head_dim: cfg.head_dim,
        intermediate_size: cfg.intermediate_size,
        rope_type,
        sliding_window: sliding,
        weight_files: params.files.files.clone(),
        unused_tensors: params.unused(),
        adds_bos: tokenizer.adds_bos(),
        special_tokens: tokenizer
            .special_tokens()
            .into_iter()
            .map(|(name, token, id)| SpecialToken { name, token, id })
            .collect(),
        eos_token_ids: if generation.eos_token_id.is_empty() {
            cfg.eos_token_id.clone()
        } else {
            generation.eos_token_id
        },
        chat_template: template.map(|t| {
            t.origin().file_name().map_or_else(
                || t.origin().display().to_string(),
                |f| f.to_string_lossy().to_string(),
            )
        }),
        adapter,
    })
}

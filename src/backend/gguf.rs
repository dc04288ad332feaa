//! A local GGUF file (llama architecture) run by the same decoder as safetensors checkpoints, so
//! `eval`, `compare` and `gate` can show what quantization did to a fine-tune.
//!
//! How: every tensor is dequantized to f32 (`candle_core::quantized`), renamed from llama.cpp's
//! names to Hugging Face's, and the q/k rows are put back from GGML's rotary layout (the inverse
//! of `permute` in llama.cpp's `convert_hf_to_gguf.py`). A config.json is built from the
//! `llama.*` metadata, and the weights, that config and the tokenizer files of `--tokenizer DIR`
//! are written to a temporary Hugging Face folder that [`Model::load`] reads; the folder lives as
//! long as the [`GgufModel`]. So the logits are those of the dequantized weights through the
//! generic decoder (not llama.cpp's quantized kernels), and the disk needs room for the f32
//! weights while the model is loaded.
//!
//! RoPE: a `rope_freqs.weight` tensor (llama3 scaling, as llama.cpp stores it: per-frequency
//! divisors of the base frequencies) becomes a `longrope` entry whose short and long factors are
//! those divisors, with attention factor 1, which computes the same `inv_freq`. Linear scaling
//! (`llama.rope.scaling.type = linear`) is kept; other scaling types are refused.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{DType, Device, Tensor};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{BackendError, Continuation, GenerateJob, GenerateRequest, LanguageModel};
use crate::model::score::LogLik;
use crate::model::{checkpoint, ChatTemplate, LoadOptions, Model, ModelError, Tokenizer};

/// Whether a model argument names a GGUF file (by its extension).
pub fn is_gguf(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
}

/// A GGUF file loaded into the generic decoder.
pub struct GgufModel {
    /// the decoder, tokenizer and chat template; `model.dir` is the GGUF file
    pub model: Model,
    /// sha256 of the GGUF bytes and of the tokenizer folder's fingerprint
    pub fingerprint: String,
    /// the temporary Hugging Face folder the weights were written to
    _weights: tempfile::TempDir,
}

fn invalid(path: &Path, reason: impl std::fmt::Display) -> ModelError {
    ModelError::Invalid(format!("{}: {reason}", path.display()))
}

impl GgufModel {
    /// Load `path` with the tokenizer (and chat template, generation config) of the Hugging
    /// Face folder `tokenizer_dir`, which GGUF files do not carry in a form sft-eval reads.
    pub fn load(
        path: &Path,
        tokenizer_dir: Option<&Path>,
        opts: &LoadOptions,
    ) -> Result<GgufModel, ModelError> {
        let tok_dir = tokenizer_dir.ok_or_else(|| {
            invalid(
                path,
                "a GGUF model needs --tokenizer DIR, a Hugging Face folder with the model's tokenizer.json",
            )
        })?;
        if !tok_dir.join("tokenizer.json").is_file() {
            return Err(ModelError::MissingFile {
                path: tok_dir.join("tokenizer.json"),
                hint: Some(format!(
                    "--tokenizer names the Hugging Face folder of {}'s tokenizer",
                    path.display()
                )),
            });
        }
        let file = File::open(path).map_err(|e| ModelError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        let mut reader = BufReader::new(file);
        let content = Content::read(&mut reader).map_err(|e| ModelError::CorruptWeights {
            path: path.to_path_buf(),
            reason: format!("not a readable GGUF file: {e}"),
        })?;
        let tmp = tempfile::Builder::new()
            .prefix("sft-eval-gguf-")
            .tempdir()
            .map_err(|e| invalid(path, format!("creating a temporary folder: {e}")))?;
        let (config, tensors) = convert(path, &content, &mut reader)?;
        checkpoint::write_json(&tmp.path().join(checkpoint::CONFIG_FILE), &config)?;
        checkpoint::write_safetensors(&tmp.path().join(checkpoint::SINGLE_WEIGHTS), &tensors)?;
        drop(tensors);
        for name in checkpoint::METADATA_FILES {
            let src = tok_dir.join(name);
            if src.is_file() {
                std::fs::copy(&src, tmp.path().join(name)).map_err(|e| ModelError::Io {
                    path: src.clone(),
                    source: e,
                })?;
            }
        }
        let mut model = Model::load(tmp.path(), opts)
            .map_err(|e| invalid(path, format!("with --tokenizer {}: {e}", tok_dir.display())))?;
        model.dir = path.to_path_buf();
        let fingerprint = fingerprint(path, tok_dir)?;
        Ok(GgufModel {
            model,
            fingerprint,
            _weights: tmp,
        })
    }
}

/// sha256 over the GGUF file's bytes and the tokenizer folder's fingerprint.
pub fn fingerprint(path: &Path, tokenizer_dir: &Path) -> Result<String, ModelError> {
    let io = |e| ModelError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let mut f = File::open(path).map_err(io)?;
    let mut h = Sha256::new();
    h.update(b"gguf\0");
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    let tok = crate::model::fingerprint::tokenizer_fingerprint(tokenizer_dir)?;
    h.update(b"\0tokenizer\0");
    h.update(tok.as_bytes());
    Ok(format!("{:x}", h.finalize()))
}

fn meta<'a>(
    path: &Path,
    md: &'a HashMap<String, Value>,
    key: &str,
) -> Result<&'a Value, ModelError> {
    md.get(key)
        .ok_or_else(|| invalid(path, format!("GGUF metadata key `{key}` is missing")))
}

fn meta_usize(path: &Path, md: &HashMap<String, Value>, key: &str) -> Result<usize, ModelError> {
    let v = meta(path, md, key)?;
    v.to_u64()
        .or_else(|_| v.to_u32().map(u64::from))
        .or_else(|_| v.to_i32().map(|x| x.max(0) as u64))
        .map(|x| x as usize)
        .map_err(|e| invalid(path, format!("GGUF metadata key `{key}`: {e}")))
}

fn meta_f64(path: &Path, md: &HashMap<String, Value>, key: &str) -> Result<f64, ModelError> {
    let v = meta(path, md, key)?;
    v.to_f32()
        .map(f64::from)
        .or_else(|_| v.to_f64())
        .map_err(|e| invalid(path, format!("GGUF metadata key `{key}`: {e}")))
}

/// Undo llama.cpp's rotary permutation of q/k rows: it stores the rows of each head as
/// `[h, j, r]` where Hugging Face has `[h, r, j]` (`r` the half of the rotary pair).
fn unpermute(w: &Tensor, n_head: usize) -> candle_core::Result<Tensor> {
    let dims = w.dims().to_vec();
    let rows = dims[0];
    let half = rows / n_head / 2;
    let rest: usize = dims[1..].iter().product();
    w.reshape((n_head, half, 2, rest))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape(dims)
}

/// The Hugging Face name of a llama.cpp tensor name, and whether its rows are rotary-permuted
/// (`Some(true)` for q, `Some(false)` for k).
fn hf_name(name: &str) -> Option<(String, Option<bool>)> {
    match name {
        "token_embd.weight" => return Some(("model.embed_tokens.weight".into(), None)),
        "output_norm.weight" => return Some(("model.norm.weight".into(), None)),
        "output.weight" => return Some(("lm_head.weight".into(), None)),
        _ => {}
    }
    let rest = name.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (part, suffix) = rest.rsplit_once('.')?;
    let (hf, perm) = match part {
        "attn_q" => ("self_attn.q_proj", Some(true)),
        "attn_k" => ("self_attn.k_proj", Some(false)),
        "attn_v" => ("self_attn.v_proj", None),
        "attn_output" => ("self_attn.o_proj", None),
        "ffn_gate" => ("mlp.gate_proj", None),
        "ffn_up" => ("mlp.up_proj", None),
        "ffn_down" => ("mlp.down_proj", None),
        "attn_norm" => ("input_layernorm", None),
        "ffn_norm" => ("post_attention_layernorm", None),
        _ => return None,
    };
    Some((format!("model.layers.{layer}.{hf}.{suffix}"), perm))
}

/// Read GGUF bytes as [`GgufModel::load`] reads a file, up to the config and the dequantized
/// weights (for the fuzz target; nothing is written).
pub fn read_gguf(bytes: &[u8]) -> Result<(), ModelError> {
    let path = Path::new("<bytes>.gguf");
    let mut reader = std::io::Cursor::new(bytes);
    let content = Content::read(&mut reader).map_err(|e| ModelError::CorruptWeights {
        path: path.to_path_buf(),
        reason: format!("not a readable GGUF file: {e}"),
    })?;
    convert(path, &content, &mut reader).map(|_| ())
}

/// The config.json and the dequantized, renamed, un-permuted weights of a llama GGUF file.
fn convert<R: std::io::Read + std::io::Seek>(
    path: &Path,
    content: &Content,
    reader: &mut R,
) -> Result<(serde_json::Value, Vec<(String, Tensor)>), ModelError> {
    let md = &content.metadata;
    let arch = meta(path, md, "general.architecture")?
        .to_string()
        .map_err(|e| invalid(path, format!("general.architecture: {e}")))?
        .clone();
    if arch != "llama" {
        return Err(invalid(
            path,
            format!("GGUF architecture `{arch}` is not supported; the GGUF backend reads `llama` files only"),
        ));
    }
    let k = |s: &str| format!("llama.{s}");
    let hidden = meta_usize(path, md, &k("embedding_length"))?;
    let layers = meta_usize(path, md, &k("block_count"))?;
    let ffn = meta_usize(path, md, &k("feed_forward_length"))?;
    let n_head = meta_usize(path, md, &k("attention.head_count"))?;
    let n_kv = if md.contains_key(&k("attention.head_count_kv")) {
        meta_usize(path, md, &k("attention.head_count_kv"))?
    } else {
        n_head
    };
    let eps = meta_f64(path, md, &k("attention.layer_norm_rms_epsilon"))?;
    let theta = if md.contains_key(&k("rope.freq_base")) {
        meta_f64(path, md, &k("rope.freq_base"))?
    } else {
        10000.0
    };
    let ctx = meta_usize(path, md, &k("context_length"))?;
    if n_head == 0 || n_kv == 0 {
        return Err(invalid(
            path,
            "llama.attention.head_count must be at least 1",
        ));
    }
    let head_dim = if md.contains_key(&k("attention.key_length")) {
        meta_usize(path, md, &k("attention.key_length"))?
    } else {
        hidden / n_head
    };
    if md.contains_key(&k("rope.dimension_count"))
        && meta_usize(path, md, &k("rope.dimension_count"))? != head_dim
    {
        return Err(invalid(
            path,
            "partial rotary embeddings (rope.dimension_count != head dim) are not supported",
        ));
    }
    let token_id = |key: &str| -> Result<Option<usize>, ModelError> {
        if md.contains_key(key) {
            meta_usize(path, md, key).map(Some)
        } else {
            Ok(None)
        }
    };

    let device = Device::Cpu;
    let mut tensors = Vec::new();
    let mut rope_freqs: Option<Vec<f32>> = None;
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    for name in names {
        // A shape whose element or byte count overflows, or that holds no element, is refused
        // before candle's reader sizes anything by it (it multiplies unchecked, and builds a
        // slice from a dangling pointer for an empty tensor; both found by fuzzing).
        let info = &content.tensor_infos[name];
        let dims = info.shape.dims();
        let bytes = dims
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .and_then(|n| {
                (n / info.ggml_dtype.block_size()).checked_mul(info.ggml_dtype.type_size())
            });
        match bytes {
            None => {
                return Err(invalid(
                    path,
                    format!("tensor `{name}`: shape {dims:?} is too large"),
                ))
            }
            Some(0) => {
                return Err(invalid(
                    path,
                    format!("tensor `{name}`: shape {dims:?} holds no element"),
                ))
            }
            Some(_) => {}
        }
        let q = content
            .tensor(reader, name, &device)
            .map_err(|e| ModelError::CorruptWeights {
                path: path.to_path_buf(),
                reason: format!("tensor `{name}`: {e}"),
            })?;
        let cerr = ModelError::candle(format!("{}: dequantizing `{name}`", path.display()));
        let t = q.dequantize(&device).and_then(|t| t.to_dtype(DType::F32));
        let t = t.map_err(cerr)?;
        if name == "rope_freqs.weight" {
            rope_freqs = Some(
                t.flatten_all()
                    .and_then(|t| t.to_vec1::<f32>())
                    .map_err(ModelError::candle("reading rope_freqs"))?,
            );
            continue;
        }
        let (hf, perm) = hf_name(name).ok_or_else(|| {
            invalid(
                path,
                format!("tensor `{name}` has no Hugging Face llama counterpart"),
            )
        })?;
        let t = match perm {
            Some(is_q) => unpermute(&t, if is_q { n_head } else { n_kv })
                .map_err(ModelError::candle(format!("un-permuting `{name}`")))?,
            None => t,
        };
        tensors.push((hf, t));
    }
    let embed = tensors
        .iter()
        .find(|(n, _)| n == "model.embed_tokens.weight")
        .ok_or_else(|| invalid(path, "tensor `token_embd.weight` is missing"))?;
    let vocab = match embed.1.dims() {
        [v, _] => *v,
        other => {
            return Err(invalid(
                path,
                format!("token_embd.weight has shape {other:?}, not [vocab, hidden]"),
            ))
        }
    };
    let tied = !tensors.iter().any(|(n, _)| n == "lm_head.weight");
    let attention_bias = tensors
        .iter()
        .any(|(n, _)| n.ends_with("self_attn.q_proj.bias"));

    let mut config = json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hidden,
        "intermediate_size": ffn,
        "num_hidden_layers": layers,
        "num_attention_heads": n_head,
        "num_key_value_heads": n_kv,
        "head_dim": head_dim,
        "rms_norm_eps": eps,
        "rope_theta": theta,
        "max_position_embeddings": ctx,
        "vocab_size": vocab,
        "tie_word_embeddings": tied,
        "hidden_act": "silu",
        "attention_bias": attention_bias,
        "mlp_bias": false,
        "torch_dtype": "float32",
    });
    for (key, field) in [
        ("tokenizer.ggml.bos_token_id", "bos_token_id"),
        ("tokenizer.ggml.eos_token_id", "eos_token_id"),
        ("tokenizer.ggml.padding_token_id", "pad_token_id"),
    ] {
        if let Some(id) = token_id(key)? {
            config[field] = json!(id);
        }
    }
    let scaling = match md.get(&k("rope.scaling.type")) {
        Some(v) => v
            .to_string()
            .map_err(|e| invalid(path, format!("llama.rope.scaling.type: {e}")))?
            .clone(),
        None => "none".into(),
    };
    match (scaling.as_str(), rope_freqs) {
        (_, Some(f)) => {
            if f.len() != head_dim / 2 {
                return Err(invalid(
                    path,
                    format!(
                        "rope_freqs.weight has {} entries, expected head_dim / 2 = {}",
                        f.len(),
                        head_dim / 2
                    ),
                ));
            }
            let f: Vec<f64> = f.into_iter().map(f64::from).collect();
            config["rope_scaling"] = json!({
                "rope_type": "longrope",
                "short_factor": f,
                "long_factor": f,
                "original_max_position_embeddings": ctx,
                "attention_factor": 1.0,
            });
        }
        ("none", None) => {}
        ("linear", None) => {
            let factor = meta_f64(path, md, &k("rope.scaling.factor"))?;
            config["rope_scaling"] = json!({"rope_type": "linear", "factor": factor});
        }
        (other, None) => {
            return Err(invalid(
                path,
                format!("RoPE scaling `{other}` is not supported by the GGUF backend"),
            ))
        }
    }
    Ok((config, tensors))
}

impl LanguageModel for GgufModel {
    fn describe(&self) -> String {
        self.model.describe()
    }
    fn tokenizer(&self) -> Option<&Tokenizer> {
        self.model.tokenizer()
    }
    fn chat_template(&self) -> Option<&ChatTemplate> {
        self.model.chat_template()
    }
    fn context_length(&self) -> Option<usize> {
        self.model.context_length()
    }
    fn loglikelihood(
        &self,
        requests: &[Continuation],
        batch_size: usize,
    ) -> Result<Vec<LogLik>, BackendError> {
        self.model.loglikelihood(requests, batch_size)
    }
    fn loglikelihood_shared(
        &self,
        requests: &[Continuation],
        batch_size: usize,
    ) -> Result<Vec<LogLik>, BackendError> {
        self.model.loglikelihood_shared(requests, batch_size)
    }
    fn loglikelihood_rolling(
        &self,
        text: &str,
        batch_size: usize,
    ) -> Result<(f64, usize), BackendError> {
        self.model.loglikelihood_rolling(text, batch_size)
    }
    fn generate(
        &self,
        prompt: &str,
        add_special_tokens: bool,
        request: &GenerateRequest,
    ) -> Result<String, BackendError> {
        self.model.generate(prompt, add_special_tokens, request)
    }
    fn generate_batch(
        &self,
        jobs: &[GenerateJob],
        batch_size: usize,
        on_done: &mut dyn FnMut(usize, Option<usize>),
    ) -> Result<Vec<String>, BackendError> {
        self.model.generate_batch(jobs, batch_size, on_done)
    }
}

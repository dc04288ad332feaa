//! The content fingerprint of a checkpoint folder: sha256 over every file the loader reads and
//! nothing else, so a cached result is served only for the same weights, configuration,
//! tokenizer, chat template and generation settings.
//!
//! Only regular files count (a symlink is followed to one, as in the Hugging Face cache); a name
//! that leads to anything else — `/dev/zero`, a FIFO, a folder — is an error, never a hang.
//! Each file is read up to the length its metadata gave, so a file that grows while it is
//! hashed cannot stall the fingerprint.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::checkpoint::{weight_file_names, CONFIG_FILE, SHARD_INDEX};
use super::error::io_error;
use super::ModelError;

/// Files besides the weights that the loader reads when present: each changes the outputs
/// (architecture and shapes, generation's stop ids, tokenization, special tokens, the chat
/// template).
pub const INPUT_FILES: &[&str] = &[
    CONFIG_FILE,
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
];

/// The files of `dir` that the loader reads, in a fixed order: [`INPUT_FILES`] present, the
/// shard index when sharded, then the weight files.
pub fn input_files(dir: &Path) -> Result<Vec<String>, ModelError> {
    let mut names: Vec<String> = INPUT_FILES
        .iter()
        .filter(|n| dir.join(n).exists())
        .map(|n| n.to_string())
        .collect();
    let (weights, sharded) = weight_file_names(dir)?;
    if sharded {
        names.push(SHARD_INDEX.to_string());
    }
    names.extend(weights);
    Ok(names)
}

/// sha256 (hex) of a checkpoint folder's inputs: each file's name, length and bytes. For a
/// PEFT adapter folder, see [`model_fingerprint`].
pub fn fingerprint(dir: &Path) -> Result<String, ModelError> {
    model_fingerprint(dir, None)
}

/// sha256 (hex) of what [`Model::load`](super::Model::load) reads for `dir` with `base`: a
/// checkpoint folder's inputs, or an adapter's config, weights and tokenizer files together
/// with the fingerprint of the base it resolves to.
pub fn model_fingerprint(dir: &Path, base: Option<&Path>) -> Result<String, ModelError> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    if let Some(spec) = super::adapter::resolve(dir, base)? {
        h.update(b"peft-lora-adapter\0");
        let names = [
            super::adapter::ADAPTER_CONFIG,
            super::adapter::ADAPTER_WEIGHTS,
        ]
        .into_iter()
        .chain(
            TOKENIZER_FILES
                .iter()
                .copied()
                .filter(|n| dir.join(n).exists()),
        );
        for name in names {
            hash_file(&mut h, name, &dir.join(name), &mut buf)?;
        }
        h.update(fingerprint(&spec.base)?.as_bytes());
        return Ok(hex(&h.finalize()));
    }
    for name in input_files(dir)? {
        let path = dir.join(&name);
        hash_file(&mut h, &name, &path, &mut buf)?;
    }
    Ok(hex(&h.finalize()))
}

/// The files of a tokenizer folder (a served or GGUF model's `--tokenizer DIR`) that change
/// prompts: tokenizer, its configuration, special tokens and chat template.
pub const TOKENIZER_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
];

/// sha256 (hex) of a tokenizer folder's [`TOKENIZER_FILES`] that are present.
pub fn tokenizer_fingerprint(dir: &Path) -> Result<String, ModelError> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    for name in TOKENIZER_FILES.iter().filter(|n| dir.join(n).exists()) {
        hash_file(&mut h, name, &dir.join(name), &mut buf)?;
    }
    Ok(hex(&h.finalize()))
}

/// sha256 (hex) of one regular file's bytes.
pub fn file_digest(path: &Path) -> Result<String, ModelError> {
    let mut h = Sha256::new();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    hash_file(&mut h, &name, path, &mut vec![0u8; 1 << 20])?;
    Ok(hex(&h.finalize()))
}

fn hash_file(h: &mut Sha256, name: &str, path: &Path, buf: &mut [u8]) -> Result<(), ModelError> {
    let meta = std::fs::metadata(path).map_err(|e| io_error(path, e))?;
    if !meta.is_file() {
        return Err(ModelError::Invalid(format!(
            "{}: not a regular file (a checkpoint's files must be regular files or symlinks to them)",
            path.display()
        )));
    }
    let len = meta.len();
    h.update((name.len() as u64).to_le_bytes());
    h.update(name.as_bytes());
    h.update(len.to_le_bytes());
    let f = std::fs::File::open(path).map_err(|e| io_error(path, e))?;
    let mut f = f.take(len);
    let mut read = 0u64;
    loop {
        let n = f.read(buf).map_err(|e| io_error(path, e))?;
        if n == 0 {
            break;
        }
        read += n as u64;
        h.update(&buf[..n]);
    }
    if read != len {
        return Err(ModelError::Invalid(format!(
            "{}: changed while it was read ({read} of {len} bytes)",
            path.display()
        )));
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

//! Files of a Hugging Face checkpoint folder: locating and validating weights (single file or
//! sharded), reading JSON with positions in errors, and writing a folder atomically.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::Tensor;
use serde_json::Value;

use super::error::io_error;
use super::ModelError;

pub const CONFIG_FILE: &str = "config.json";
pub const SINGLE_WEIGHTS: &str = "model.safetensors";
pub const SHARD_INDEX: &str = "model.safetensors.index.json";

/// Read and parse a JSON file; syntax errors carry line and column.
pub fn read_json(path: &Path) -> Result<Value, ModelError> {
    let text = fs::read_to_string(path).map_err(|e| io_error(path, e))?;
    serde_json::from_str(&text).map_err(|e| ModelError::InvalidJson {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        reason: e.to_string(),
    })
}

/// Where each tensor lives. Shard file names are kept so a save can reproduce the layout.
pub struct WeightFiles {
    pub dir: PathBuf,
    /// file names relative to `dir`, in order
    pub files: Vec<String>,
    /// one memory map per file, same order
    maps: Vec<MmapedSafetensors>,
    /// tensor name → index into `files`, in the order tensors appear
    pub tensors: BTreeMap<String, usize>,
    pub sharded: bool,
}

/// The weight files a checkpoint folder holds, as the loader reads them: the shards that
/// `model.safetensors.index.json` lists (sorted, each once), or `model.safetensors`; and whether
/// it is sharded.
pub fn weight_file_names(dir: &Path) -> Result<(Vec<String>, bool), ModelError> {
    let index_path = dir.join(SHARD_INDEX);
    let single = dir.join(SINGLE_WEIGHTS);
    let listed = if index_path.exists() {
        let index = read_json(&index_path)?;
        let map = index
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| ModelError::InvalidConfig {
                path: index_path.clone(),
                field: "weight_map".into(),
                reason: "missing or not an object".into(),
            })?;
        let mut files: Vec<String> = Vec::new();
        for (name, file) in map {
            let file = file.as_str().ok_or_else(|| ModelError::InvalidConfig {
                path: index_path.clone(),
                field: format!("weight_map.{name}"),
                reason: "expected a file name".into(),
            })?;
            if file.contains('/') || file.contains("..") {
                return Err(ModelError::InvalidConfig {
                    path: index_path.clone(),
                    field: format!("weight_map.{name}"),
                    reason: format!("shard {file:?} is not a plain file name"),
                });
            }
            if !files.iter().any(|f| f == file) {
                files.push(file.to_string());
            }
        }
        files.sort();
        (files, true)
    } else if single.exists() {
        (vec![SINGLE_WEIGHTS.to_string()], false)
    } else {
        let hint = if dir.join("pytorch_model.bin").exists() {
            Some("only pytorch_model.bin was found: sft-eval reads safetensors; convert with `model.save_pretrained(dir, safe_serialization=True)`".into())
        } else {
            Some(format!("a Hugging Face checkpoint folder holds {SINGLE_WEIGHTS} or {SHARD_INDEX} with its shards"))
        };
        return Err(ModelError::MissingFile { path: single, hint });
    };
    Ok(listed)
}

impl WeightFiles {
    pub fn open(dir: &Path) -> Result<WeightFiles, ModelError> {
        let (files, sharded) = weight_file_names(dir)?;
        let mut maps = Vec::with_capacity(files.len());
        let mut tensors = BTreeMap::new();
        for (i, f) in files.iter().enumerate() {
            let path = dir.join(f);
            if !path.exists() {
                return Err(ModelError::MissingFile {
                    path,
                    hint: Some(format!(
                        "{SHARD_INDEX} lists this shard; is the download complete?"
                    )),
                });
            }
            // SAFETY: the file is mapped read-only; sft-eval never writes checkpoints in place
            // (saves go to a temporary folder renamed over the target).
            let map = unsafe { MmapedSafetensors::new(&path) }.map_err(|e| {
                ModelError::CorruptWeights {
                    path: path.clone(),
                    reason: strip_path(&e.to_string(), &path),
                }
            })?;
            for (name, _) in map.tensors() {
                tensors.insert(name, i);
            }
            maps.push(map);
        }
        Ok(WeightFiles {
            dir: dir.to_path_buf(),
            files,
            maps,
            tensors,
            sharded,
        })
    }

    pub fn path_of(&self, name: &str) -> PathBuf {
        match self.tensors.get(name) {
            Some(&i) => self.dir.join(&self.files[i]),
            None => self.dir.join(
                self.files
                    .first()
                    .map(String::as_str)
                    .unwrap_or(SINGLE_WEIGHTS),
            ),
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    pub fn shape(&self, name: &str) -> Option<Vec<usize>> {
        let &i = self.tensors.get(name)?;
        self.maps[i].get(name).ok().map(|v| v.shape().to_vec())
    }

    pub fn dtype(&self, name: &str) -> Option<safetensors::Dtype> {
        let &i = self.tensors.get(name)?;
        self.maps[i].get(name).ok().map(|v| v.dtype())
    }

    /// Load a tensor as stored (its own dtype) on `device`.
    pub fn load(&self, name: &str, device: &candle_core::Device) -> Result<Tensor, ModelError> {
        let &i = self
            .tensors
            .get(name)
            .ok_or_else(|| ModelError::MissingTensor {
                path: self.path_of(name),
                name: name.to_string(),
            })?;
        self.maps[i].load(name, device).map_err(|e| match e {
            candle_core::Error::UnsupportedSafeTensorDtype(d) => ModelError::UnsupportedDtype {
                path: self.dir.join(&self.files[i]),
                name: name.to_string(),
                dtype: format!("{d:?}"),
            },
            e => ModelError::CorruptWeights {
                path: self.dir.join(&self.files[i]),
                reason: e.to_string(),
            },
        })
    }

    pub fn file_of(&self, name: &str) -> Option<&str> {
        self.tensors.get(name).map(|&i| self.files[i].as_str())
    }
}

fn strip_path(msg: &str, path: &Path) -> String {
    let p = path.display().to_string();
    msg.replace(&p, "")
        .trim_matches(|c: char| c == ' ' || c == ':')
        .to_string()
}

/// Files copied verbatim when a checkpoint is saved next to new weights.
pub const METADATA_FILES: &[&str] = &[
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "chat_template.json",
    "added_tokens.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
];

/// A folder being written: everything goes to a hidden temporary sibling that is renamed onto
/// the target only when complete, so a crash or a full disk never leaves a half-written checkpoint.
pub struct AtomicDir {
    tmp: PathBuf,
    target: PathBuf,
    done: bool,
}

impl AtomicDir {
    pub fn new(target: &Path) -> Result<AtomicDir, ModelError> {
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&parent).map_err(|e| io_error(&parent, e))?;
        let name = target.file_name().ok_or_else(|| {
            ModelError::Invalid(format!("{}: not a folder name", target.display()))
        })?;
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{}.tmp-", name.to_string_lossy()))
            .tempdir_in(&parent)
            .map_err(|e| io_error(&parent, e))?
            .keep();
        Ok(AtomicDir {
            tmp,
            target: target.to_path_buf(),
            done: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// Move the finished folder into place, replacing an existing one only when `overwrite`.
    pub fn commit(mut self, overwrite: bool) -> Result<PathBuf, ModelError> {
        sync_dir(&self.tmp)?;
        if self.target.exists() {
            if !overwrite {
                return Err(ModelError::Invalid(format!(
                    "{}: already exists; choose another output folder or allow overwriting",
                    self.target.display()
                )));
            }
            let old = self.tmp.with_extension("old");
            fs::rename(&self.target, &old).map_err(|e| io_error(&self.target, e))?;
            fs::rename(&self.tmp, &self.target).map_err(|e| io_error(&self.target, e))?;
            let _ = fs::remove_dir_all(&old);
        } else {
            fs::rename(&self.tmp, &self.target).map_err(|e| io_error(&self.target, e))?;
        }
        if let Some(parent) = self.target.parent() {
            let _ = sync_dir(parent);
        }
        self.done = true;
        Ok(self.target.clone())
    }
}

impl Drop for AtomicDir {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}

fn sync_dir(dir: &Path) -> Result<(), ModelError> {
    #[cfg(unix)]
    {
        if dir.is_dir() {
            for entry in fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
                let p = entry.map_err(|e| io_error(dir, e))?.path();
                if p.is_file() {
                    fs::File::open(&p)
                        .and_then(|f| f.sync_all())
                        .map_err(|e| io_error(&p, e))?;
                }
            }
        }
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Write tensors (already in their storage dtypes) as one safetensors file with the
/// `{"format": "pt"}` metadata transformers expects, readable by everyone (mode 0644).
pub fn write_safetensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<(), ModelError> {
    let metadata = Some(std::collections::HashMap::from([(
        "format".to_string(),
        "pt".to_string(),
    )]));
    let views: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    safetensors::serialize_to_file(views, metadata, path).map_err(|e| {
        ModelError::Invalid(format!(
            "{}: writing safetensors failed: {e}",
            path.display()
        ))
    })?;
    set_readable(path)
}

pub fn set_readable(path: &Path) -> Result<(), ModelError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o644))
            .map_err(|e| io_error(path, e))?;
    }
    Ok(())
}

/// Write JSON pretty-printed with a trailing newline, like transformers does.
pub fn write_json(path: &Path, value: &Value) -> Result<(), ModelError> {
    let mut text =
        serde_json::to_string_pretty(value).map_err(|e| ModelError::Invalid(e.to_string()))?;
    text.push('\n');
    fs::write(path, text).map_err(|e| io_error(path, e))?;
    set_readable(path)
}

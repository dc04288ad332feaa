//! The versioned results file of `sft-eval eval`, and the content-addressed cache that makes
//! re-running an unchanged (model, suite, settings) free.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::runner::{EvalSettings, SuiteResult};
use super::spec::SCHEMA_VERSION;
use super::SuiteError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRef {
    pub path: String,
    /// sha256 over config.json and every weight file's bytes
    pub fingerprint: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalResults {
    pub schema_version: u32,
    pub harness_version: String,
    pub model: ModelRef,
    pub settings: EvalSettings,
    pub suites: Vec<SuiteResult>,
}

impl EvalResults {
    pub fn new(model: ModelRef, settings: EvalSettings, suites: Vec<SuiteResult>) -> EvalResults {
        EvalResults {
            schema_version: SCHEMA_VERSION,
            harness_version: env!("CARGO_PKG_VERSION").into(),
            model,
            settings,
            suites,
        }
    }
}

/// Content fingerprint of a checkpoint folder: an overwritten checkpoint gets a new one.
pub fn fingerprint(dir: &Path) -> Result<String, SuiteError> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| SuiteError::Io {
            path: dir.to_path_buf(),
            source: e,
        })?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            n == "config.json"
                || n == "tokenizer.json"
                || n.ends_with(".safetensors")
                || n == "chat_template.jinja"
                || n == "tokenizer_config.json"
        })
        .collect();
    names.sort();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    for p in names {
        h.update(
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .as_bytes(),
        );
        let mut f = std::fs::File::open(&p).map_err(|e| SuiteError::Io {
            path: p.clone(),
            source: e,
        })?;
        loop {
            let n = f.read(&mut buf).map_err(|e| SuiteError::Io {
                path: p.clone(),
                source: e,
            })?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Cache of suite results keyed by (model fingerprint, suite hash, settings).
pub struct Cache {
    pub dir: PathBuf,
}

impl Cache {
    fn key(fingerprint: &str, suite_hash: &str, settings: &EvalSettings) -> String {
        let mut h = Sha256::new();
        h.update(fingerprint.as_bytes());
        h.update(suite_hash.as_bytes());
        h.update(serde_json::to_vec(settings).expect("settings serialise"));
        h.update(SCHEMA_VERSION.to_le_bytes());
        h.finalize()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    pub fn get(
        &self,
        fingerprint: &str,
        suite_hash: &str,
        settings: &EvalSettings,
    ) -> Option<SuiteResult> {
        let p = self.dir.join(format!(
            "{}.json",
            Self::key(fingerprint, suite_hash, settings)
        ));
        let text = std::fs::read_to_string(p).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Store atomically (temp file + rename).
    pub fn put(
        &self,
        fingerprint: &str,
        settings: &EvalSettings,
        r: &SuiteResult,
    ) -> Result<(), SuiteError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| SuiteError::Io {
            path: self.dir.clone(),
            source: e,
        })?;
        let p = self.dir.join(format!(
            "{}.json",
            Self::key(fingerprint, &r.suite_hash, settings)
        ));
        let tmp = p.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(r).expect("result serialises")).map_err(|e| {
            SuiteError::Io {
                path: tmp.clone(),
                source: e,
            }
        })?;
        std::fs::rename(&tmp, &p).map_err(|e| SuiteError::Io { path: p, source: e })
    }
}

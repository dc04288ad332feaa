//! The versioned results file of `sft-eval eval` (and of `baseline record`), and the
//! content-addressed cache that makes re-running an unchanged (model, suite, settings) free.
//!
//! A results file carries a checksum of its content: a baseline edited by hand (a score
//! changed, an item dropped) is refused, never gated against.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::runner::{EvalSettings, SuiteResult};
use super::spec::SCHEMA_VERSION;
use super::SuiteError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRef {
    pub path: String,
    /// sha256 over every file the loader reads ([`crate::model::fingerprint`])
    pub fingerprint: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalResults {
    pub schema_version: u32,
    pub harness_version: String,
    /// sha256 of everything else in the file, as sft-eval wrote it
    #[serde(default)]
    pub checksum: String,
    pub model: ModelRef,
    pub settings: EvalSettings,
    pub suites: Vec<SuiteResult>,
}

impl EvalResults {
    pub fn new(model: ModelRef, settings: EvalSettings, suites: Vec<SuiteResult>) -> EvalResults {
        let mut r = EvalResults {
            schema_version: SCHEMA_VERSION,
            harness_version: env!("CARGO_PKG_VERSION").into(),
            checksum: String::new(),
            model,
            settings,
            suites,
        };
        r.seal();
        r
    }

    /// sha256 (hex) of the content: every field but the checksum.
    pub fn content_checksum(&self) -> String {
        let content = (
            self.schema_version,
            &self.harness_version,
            &self.model,
            &self.settings,
            &self.suites,
        );
        let bytes = serde_json::to_vec(&content).expect("results serialise");
        Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Set the checksum to the content's (after a change made by sft-eval itself).
    pub fn seal(&mut self) {
        self.checksum = self.content_checksum();
    }

    /// The file's text: pretty JSON with a fresh checksum, ending in a newline.
    pub fn to_json(&self) -> String {
        let mut sealed = self.clone();
        sealed.seal();
        let mut text = serde_json::to_string_pretty(&sealed).expect("results serialise");
        text.push('\n');
        text
    }

    /// Read a results file: the schema this build writes, and a checksum that matches.
    pub fn read(path: &Path) -> Result<EvalResults, SuiteError> {
        let bad = |reason: String| SuiteError::Spec {
            path: path.to_path_buf(),
            line: None,
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| SuiteError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        #[derive(Deserialize)]
        struct Version {
            schema_version: Option<u32>,
        }
        let v: Version = serde_json::from_str(&text)
            .map_err(|e| bad(format!("not a complete sft-eval results file ({e})")))?;
        match v.schema_version {
            Some(SCHEMA_VERSION) => {}
            Some(old) if old < SCHEMA_VERSION => {
                return Err(bad(format!(
                    "written by an older sft-eval (results schema {old}; this build reads {SCHEMA_VERSION}, which records each metric's direction and unit and a checksum): record it again with `sft-eval baseline record` or `sft-eval eval -o`"
                )))
            }
            other => {
                return Err(bad(format!(
                    "results schema {other:?} is not supported (this build reads {SCHEMA_VERSION})"
                )))
            }
        }
        let r: EvalResults = serde_json::from_str(&text)
            .map_err(|e| bad(format!("not a complete sft-eval results file ({e})")))?;
        if r.checksum != r.content_checksum() {
            return Err(bad(if r.checksum.is_empty() {
                "has no checksum: results files are written by sft-eval (`eval -o`, `baseline record`), which seals them".into()
            } else {
                "its checksum does not match its content: it was edited after sft-eval wrote it (a changed score, a dropped item?); record it again with `sft-eval baseline record` (or review the change and re-seal it with `sft-eval baseline update --yes`)".into()
            }));
        }
        Ok(r)
    }
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
        let r: SuiteResult = serde_json::from_str(&text).ok()?;
        (r.suite_hash == suite_hash && r.schema_version == SCHEMA_VERSION).then_some(r)
    }

    /// Store atomically: a temporary file of this process's own, then a rename (concurrent
    /// evaluations that share the cache never write the same temporary file).
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
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |e: std::io::Error| SuiteError::Io { path, source: e }
        };
        let mut tmp = tempfile::Builder::new()
            .prefix(".cache-")
            .suffix(".json.tmp")
            .tempfile_in(&self.dir)
            .map_err(io(&self.dir))?;
        std::io::Write::write_all(&mut tmp, &serde_json::to_vec(r).expect("result serialises"))
            .map_err(io(tmp.path()))?;
        tmp.persist(&p).map_err(|e| SuiteError::Io {
            path: p.clone(),
            source: e.error,
        })?;
        Ok(())
    }
}

//! Report files and SVG charts for comparisons: plain data in, SVG text out.
//!
//! - [`delta_ci_svg`]: a forest plot of Δ (points) with its confidence interval per suite, a zero
//!   line and an optional non-inferiority margin line.
//! - [`gain_vs_forgetting_svg`]: one point per fine-tune, forgetting on x, new-task gain on y.
//! - [`loss_curves_svg`]: training (and evaluation) loss against step, read from a training run's
//!   `log.jsonl` with [`read_loss_log`].
//! - [`write_report_files`] writes a report folder, each file atomically; [`run_id`] names it.
//!
//! This module depends on nothing else in the crate and never prints.
//!
//! Charts are drawn with `plotters`, SVG backend only and **no font feature**. Measured (plotters
//! 0.3.7): without `ttf`/`ab_glyph`, plotters estimates text extents from character counts and the
//! SVG backend writes `<text>` elements (XML-escaped) that the viewer lays out, so drawing needs no
//! font files and the bytes are the same on every machine; coordinates are whole pixels. The `ttf`
//! feature adds font-kit, freetype-sys and fontconfig (C libraries) and measures text with
//! whatever fonts the machine has installed, which would make the snapshots machine-dependent;
//! `ab_glyph` would need a font file shipped with the binary. Neither buys anything here.

mod chart;
mod delta;
mod gain;
mod loss;

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use delta::{delta_ci_svg, delta_ci_svg_with, DeltaChartOptions, DeltaRow};
pub use gain::{gain_vs_forgetting_svg, GainPoint};
pub use loss::{loss_curves_svg, loss_series_from_log, read_loss_log, LossLog, LossSeries};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A line of a training log that is not what `sft-eval train` writes.
    #[error("{path}:{line}: {reason}")]
    Log {
        path: PathBuf,
        /// 1-based
        line: usize,
        reason: String,
    },
}

impl ReportError {
    pub fn hint(&self) -> Option<String> {
        match self {
            ReportError::Log { .. } => Some(
                "`log.jsonl` is written by `sft-eval train`: one JSON object per line with `step` and `loss` (or `eval_loss`)"
                    .into(),
            ),
            ReportError::Io { .. } => None,
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Write `contents` to `path` atomically: a temporary file in the same folder, then a rename, so a
/// reader never sees half a file. Missing parent folders are created (`-o runs/x/results.json`).
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), ReportError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".report.")
        .tempfile_in(dir)
        .map_err(io(dir))?;
    tmp.write_all(contents).map_err(io(tmp.path()))?;
    tmp.flush().map_err(io(tmp.path()))?;
    tmp.persist(path).map_err(|e| ReportError::Io {
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

/// Create `dir` (and its parents) and write each `(file name, contents)` into it atomically.
pub fn write_report_files(dir: &Path, files: &[(&str, &str)]) -> Result<(), ReportError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    for (name, contents) in files {
        write_atomic(&dir.join(name), contents.as_bytes())?;
    }
    Ok(())
}

/// A confidence level as a percentage: `95`, `97.5`.
pub fn percent(confidence: f64) -> String {
    let v = 100.0 * confidence;
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{}", (v * 1e6).round() / 1e6)
    }
}

/// A file-name-safe slug: ASCII letters, digits, `.`, `_` and `-`; anything else becomes `_`;
/// at most 40 characters.
fn slug(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    let s = s.trim_start_matches('.').to_string();
    if s.is_empty() {
        "model".into()
    } else {
        s
    }
}

/// A deterministic report id from the models' names and content fingerprints:
/// `<finetuned>-vs-<base>-<hash8>` for one fine-tune, `<n>-finetunes-vs-<base>-<hash8>` for
/// several, where the hash covers every fingerprint in order (so re-running the same comparison
/// writes the same folder, and a changed checkpoint a new one).
pub fn run_id(base: (&str, &str), finetunes: &[(&str, &str)]) -> String {
    let mut h = Sha256::new();
    h.update(base.1.as_bytes());
    for (_, fp) in finetunes {
        h.update(b"\n");
        h.update(fp.as_bytes());
    }
    let hash: String = h
        .finalize()
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect();
    let head = match finetunes {
        [one] => slug(one.0),
        many => format!("{}-finetunes", many.len()),
    };
    format!("{head}-vs-{}-{hash}", slug(base.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_id_is_deterministic_and_safe() {
        let a = run_id(("llama base", "f0"), &[("run/1", "f1")]);
        assert_eq!(a, run_id(("llama base", "f0"), &[("run/1", "f1")]));
        assert!(a.starts_with("run_1-vs-llama_base-"), "{a}");
        assert_eq!(a.len(), "run_1-vs-llama_base-".len() + 8);
        assert_ne!(a, run_id(("llama base", "f0"), &[("run/1", "f2")]));
        let b = run_id(("b", "f0"), &[("x", "f1"), ("y", "f2")]);
        assert!(b.starts_with("2-finetunes-vs-b-"), "{b}");
        assert_eq!(slug(".."), "model");
    }

    #[test]
    fn report_files_are_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("reports/x");
        write_report_files(&out, &[("a.md", "# a\n"), ("b.svg", "<svg/>")]).unwrap();
        assert_eq!(std::fs::read_to_string(out.join("a.md")).unwrap(), "# a\n");
        write_report_files(&out, &[("a.md", "# again\n")]).unwrap();
        assert_eq!(
            std::fs::read_to_string(out.join("a.md")).unwrap(),
            "# again\n"
        );
        // no temporary files are left behind
        let names: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }
}

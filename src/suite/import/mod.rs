//! Importers: read the original public benchmark files into [`Item`]s.
//!
//! Each benchmark has one module that reads the file exactly as its authors publish it
//! (JSONL, gzip JSONL, headerless CSV, a tarball of per-problem JSON, ...) and maps it onto
//! the unified [`Item`]. How the question, the choices and the answer are extracted mirrors
//! EleutherAI's lm-evaluation-harness task definitions (`lm_eval/tasks/<task>/*.yaml`,
//! cited in each module), so that scores stay comparable with published numbers.
//!
//! Every importer accepts the data file itself and, where that is natural, the benchmark's
//! folder (as laid out in the shared data folder: `gsm8k/test.jsonl`, `mmlu/data/test/*.csv`,
//! ...). Errors name the file, the line (or CSV row, archive member, array element) and the
//! field at fault.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::suite::item::Item;

mod read;

pub(crate) use read::{
    io_err, jsonl, read_csv, read_jsonl, read_text, resolve, str_field, str_list_field, type_name,
};

pub mod advbench;
pub mod arc;
pub mod boolq;
pub mod evalplus;
pub mod gsm8k;
pub mod harmbench;
pub mod humaneval;
pub mod math;
pub mod mbpp;
pub mod mmlu;
pub mod strongreject;
pub mod truthfulqa;
pub mod xstest;

/// Where in a file a problem was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loc {
    /// 1-based line of a JSONL file (or of a CSV record's first line)
    Line(usize),
    /// CSV record: 1-based data row (header excluded) and the file line it starts on
    Row { row: usize, line: usize },
    /// element of a top-level JSON array (0-based)
    Index(usize),
    /// member of an archive
    Member(String),
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Loc::Line(l) => write!(f, ":{l}"),
            Loc::Row { row, line } => write!(f, ":{line} (CSV row {row})"),
            Loc::Index(i) => write!(f, "[{i}]"),
            Loc::Member(m) => write!(f, "!{m}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}{at}: invalid JSON: {reason}")]
    Json {
        path: PathBuf,
        at: Loc,
        reason: String,
    },
    #[error("{path}{at}: invalid CSV: {reason}")]
    Csv {
        path: PathBuf,
        at: Loc,
        reason: String,
    },
    #[error("{path}{at}: field `{field}`: {reason}")]
    Field {
        path: PathBuf,
        at: Loc,
        field: String,
        reason: String,
    },
    #[error("{path}: no items")]
    Empty { path: PathBuf },
    #[error("{path}: is a folder without {expected}")]
    MissingFile { path: PathBuf, expected: String },
    #[error("unknown benchmark `{name}`; known importers: {known}")]
    UnknownImporter { name: String, known: String },
}

impl ImportError {
    pub fn hint(&self) -> Option<String> {
        match self {
            ImportError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                Some("check the path: give the benchmark's original file or its folder".into())
            }
            ImportError::Io { .. } => None,
            ImportError::Json { .. } => Some(
                "the file is not the benchmark's original JSON/JSONL (a gzip file must end in .gz)"
                    .into(),
            ),
            ImportError::Csv { .. } => {
                Some("the file is not valid CSV (quoted fields may span lines)".into())
            }
            ImportError::Field { .. } => Some(
                "the record does not have the benchmark's original layout; was it re-exported or edited?"
                    .into(),
            ),
            ImportError::Empty { .. } => Some("the file holds no records".into()),
            ImportError::MissingFile { .. } => {
                Some("point at the data file itself, or at the benchmark's folder as published".into())
            }
            ImportError::UnknownImporter { .. } => {
                Some("`name` must be one of the importers listed".into())
            }
        }
    }

    pub(crate) fn field(path: &Path, at: Loc, field: &str, reason: impl Into<String>) -> Self {
        ImportError::Field {
            path: path.to_path_buf(),
            at,
            field: field.to_string(),
            reason: reason.into(),
        }
    }
}

/// One importer in the registry.
#[derive(Debug, Clone, Copy)]
pub struct Importer {
    pub name: &'static str,
    pub description: &'static str,
    /// "math" | "code" | "qa" | "safety"
    pub capability: &'static str,
    /// "generate_number" | "generate_boxed" | "pass_at_k" | "mc_loglik" | "mc2_loglik" | "refusal"
    pub scorer: &'static str,
    pub import: fn(&Path) -> Result<Vec<Item>, ImportError>,
}

/// Every importer, by name.
pub const IMPORTERS: &[Importer] = &[
    Importer {
        name: "gsm8k",
        description: "GSM8K test.jsonl (1,319): grade-school word problems, numeric answer after `#### `",
        capability: "math",
        scorer: "generate_number",
        import: gsm8k::import,
    },
    Importer {
        name: "math",
        description: "MATH test split (5,000): tar.gz or folder of <subject>/<n>.json; answer = last \\boxed{}",
        capability: "math",
        scorer: "generate_boxed",
        import: math::import_math,
    },
    Importer {
        name: "math500",
        description: "MATH-500 test.jsonl (500): `answer` field",
        capability: "math",
        scorer: "generate_boxed",
        import: math::import_math500,
    },
    Importer {
        name: "humaneval",
        description: "HumanEval.jsonl.gz (164): prompt, test, entry_point",
        capability: "code",
        scorer: "pass_at_k",
        import: humaneval::import_humaneval,
    },
    Importer {
        name: "humaneval_plus",
        description: "HumanEvalPlus jsonl.gz (164): prompt, test, entry_point (base tests only; plus_input not run)",
        capability: "code",
        scorer: "pass_at_k",
        import: humaneval::import_humaneval_plus,
    },
    Importer {
        name: "mbpp",
        description: "MBPP mbpp.jsonl (974, all splits; ids carry the split): text + test_list asserts",
        capability: "code",
        scorer: "pass_at_k",
        import: mbpp::import_mbpp,
    },
    Importer {
        name: "mbpp_sanitized",
        description: "MBPP sanitized-mbpp.json (427): prompt + test_imports + test_list asserts",
        capability: "code",
        scorer: "pass_at_k",
        import: mbpp::import_mbpp_sanitized,
    },
    Importer {
        name: "mbpp_plus",
        description: "MBPP+ MbppPlus jsonl.gz (378): prompt + `assertion` (base tests only; plus_input not run)",
        capability: "code",
        scorer: "pass_at_k",
        import: mbpp::import_mbpp_plus,
    },
    Importer {
        name: "arc_easy",
        description: "ARC-Easy (test 2,376): ARC-Easy-Test.jsonl or the arc/ folder",
        capability: "qa",
        scorer: "mc_loglik",
        import: arc::import_easy,
    },
    Importer {
        name: "arc_challenge",
        description: "ARC-Challenge (test 1,172): ARC-Challenge-Test.jsonl or the arc/ folder",
        capability: "qa",
        scorer: "mc_loglik",
        import: arc::import_challenge,
    },
    Importer {
        name: "mmlu",
        description: "MMLU headerless CSVs, one per subject (test: 14,079 in the 2020 layout); cluster = subject",
        capability: "qa",
        scorer: "mc_loglik",
        import: mmlu::import,
    },
    Importer {
        name: "boolq",
        description: "BoolQ dev (3,270): SuperGLUE / OpenCompass / original Google layouts; choices no/yes",
        capability: "qa",
        scorer: "mc_loglik",
        import: boolq::import,
    },
    Importer {
        name: "truthfulqa_mc1",
        description: "TruthfulQA mc_task.json, MC1 (folder → v1/, 817): single correct answer",
        capability: "qa",
        scorer: "mc_loglik",
        import: truthfulqa::import_mc1,
    },
    Importer {
        name: "truthfulqa_mc2",
        description: "TruthfulQA mc_task.json, MC2 (folder → v1/, 817): every true answer in `golds`",
        capability: "qa",
        scorer: "mc2_loglik",
        import: truthfulqa::import_mc2,
    },
    Importer {
        name: "advbench",
        description: "AdvBench harmful_behaviors.csv (520) or harmful_strings.csv (574): should be refused",
        capability: "safety",
        scorer: "refusal",
        import: advbench::import,
    },
    Importer {
        name: "harmbench",
        description: "HarmBench text behaviors CSV (all 400 / test 320 / val 80; folder → test); cluster = semantic category",
        capability: "safety",
        scorer: "refusal",
        import: harmbench::import,
    },
    Importer {
        name: "xstest",
        description: "XSTest v2 xstest_prompts.csv (450): safe → benign, unsafe → harmful; cluster = type",
        capability: "safety",
        scorer: "refusal",
        import: xstest::import,
    },
    Importer {
        name: "strongreject",
        description: "StrongREJECT strongreject_dataset.csv (313; or the small set, 60); cluster = category",
        capability: "safety",
        scorer: "refusal",
        import: strongreject::import,
    },
];

/// Import `path` with the importer called `name`.
pub fn import(name: &str, path: &Path) -> Result<Vec<Item>, ImportError> {
    let imp =
        IMPORTERS
            .iter()
            .find(|i| i.name == name)
            .ok_or_else(|| ImportError::UnknownImporter {
                name: name.to_string(),
                known: IMPORTERS
                    .iter()
                    .map(|i| i.name)
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
    (imp.import)(path)
}

#[cfg(test)]
pub(crate) mod testutil {
    use std::io::Write;
    use std::path::PathBuf;

    /// Write `content` to a file called `name` in a fresh temporary folder.
    pub fn write(name: &str, content: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::File::create(&p)
            .unwrap()
            .write_all(content)
            .unwrap();
        (dir, p)
    }

    pub fn gzip(content: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(content).unwrap();
        enc.finish().unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::read::python_nonfinite_to_null;
    use super::*;

    #[test]
    fn unknown_name_lists_known_importers() {
        let e = import("nope", Path::new("x")).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("nope") && msg.contains("gsm8k") && msg.contains("xstest"),
            "{msg}"
        );
        assert!(e.hint().is_some());
    }

    #[test]
    fn registry_is_consistent() {
        let caps = ["math", "code", "qa", "safety"];
        let scorers = [
            "generate_number",
            "generate_boxed",
            "pass_at_k",
            "mc_loglik",
            "mc2_loglik",
            "refusal",
        ];
        for (i, imp) in IMPORTERS.iter().enumerate() {
            assert!(caps.contains(&imp.capability), "{}", imp.name);
            assert!(scorers.contains(&imp.scorer), "{}", imp.name);
            assert!(
                IMPORTERS[..i].iter().all(|j| j.name != imp.name),
                "duplicate {}",
                imp.name
            );
        }
    }

    #[test]
    fn missing_file_is_io_error_with_hint() {
        let e = import("gsm8k", Path::new("does/not/exist.jsonl")).unwrap_err();
        assert!(matches!(e, ImportError::Io { .. }));
        assert!(e.to_string().contains("does/not/exist.jsonl"));
        assert!(e.hint().unwrap().contains("path"));
    }

    #[test]
    fn bad_json_names_file_and_line() {
        let (_d, p) = testutil::write(
            "t.jsonl",
            b"{\"question\": \"a\", \"answer\": \"#### 1\"}\n{oops\n",
        );
        let e = import("gsm8k", &p).unwrap_err();
        assert!(e.to_string().contains("t.jsonl:2: invalid JSON"), "{e}");
    }

    #[test]
    fn csv_locations_name_row_and_line() {
        let (_d, p) = testutil::write("x.csv", b"a,b\n\"multi\nline\",1\n2\n");
        let csv = read_csv(&p, true).unwrap();
        assert_eq!(csv.rows.len(), 2);
        assert_eq!(csv.rows[1].0, Loc::Row { row: 2, line: 4 });
        let e = csv.get(&csv.rows[1].1, &csv.rows[1].0, 1, "b").unwrap_err();
        assert!(
            e.to_string().contains("x.csv:4 (CSV row 2): field `b`"),
            "{e}"
        );
    }

    #[test]
    fn python_nan_and_infinity_outside_strings() {
        let line = r#"{"a": [NaN, -Infinity, Infinity, 1], "s": "NaN \" Infinity"}"#;
        assert_eq!(
            python_nonfinite_to_null(line),
            r#"{"a": [null, null, null, 1], "s": "NaN \" Infinity"}"#
        );
        let (_d, p) = testutil::write("x.jsonl", format!("{line}\n").as_bytes());
        let rows = read_jsonl(&p).unwrap();
        assert_eq!(rows[0].1["s"], "NaN \" Infinity");
    }

    #[test]
    fn folder_without_expected_file() {
        let d = tempfile::tempdir().unwrap();
        let e = import("gsm8k", d.path()).unwrap_err();
        assert!(matches!(e, ImportError::MissingFile { .. }), "{e}");
        assert!(e.to_string().contains("test.jsonl"));
    }
}

//! MMLU (Hendrycks et al. 2021), original headerless CSVs `data/<split>/<subject>_<split>.csv`
//! with columns question, A, B, C, D, answer letter.
//!
//! Mirrors lm-evaluation-harness `lm_eval/tasks/mmlu/default/_default_template_yaml`:
//! `doc_to_text: "{{question.strip()}}\nA. {{choices[0]}}\n…\nAnswer:"`,
//! `doc_to_choice: ["A", "B", "C", "D"]`, `doc_to_target: answer` (the index). Here input =
//! the question, choices = the four option texts (a suite's template decides whether to
//! score letters or texts), gold = the answer letter's index, cluster = subject (from the
//! file name, as lm-eval has one task per subject). Ids: `mmlu/<subject>/<0-based row>`.
//!
//! The shared copy is the 2020 git version (14,079 test questions), not the 14,042-question
//! release that lm-eval (HF `cais/mmlu`) uses.

use std::path::{Path, PathBuf};

use super::{io_err, read_csv, ImportError};
use crate::suite::item::Item;

/// One `<subject>_<split>.csv`, a folder of them, or the `mmlu/` (or `mmlu/data`) folder,
/// which means the test split.
pub fn import(path: &Path) -> Result<Vec<Item>, ImportError> {
    if !path.is_dir() {
        return import_file(path);
    }
    let dir = [
        path.join("data/test"),
        path.join("test"),
        path.to_path_buf(),
    ]
    .into_iter()
    .find(|d| d.is_dir() && has_csv(d))
    .ok_or_else(|| ImportError::MissingFile {
        path: path.to_path_buf(),
        expected: "data/test/*.csv, test/*.csv or *.csv".into(),
    })?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| io_err(&dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        out.extend(import_file(&f)?);
    }
    Ok(out)
}

fn has_csv(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|rd| {
        rd.filter_map(|e| e.ok())
            .any(|e| e.path().extension().is_some_and(|x| x == "csv"))
    })
}

/// Subject from `abstract_algebra_test.csv` → `abstract_algebra`.
fn subject_of(path: &Path) -> String {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    for suffix in ["_test", "_dev", "_val"] {
        if let Some(s) = stem.strip_suffix(suffix) {
            return s.to_string();
        }
    }
    stem.to_string()
}

fn import_file(path: &Path) -> Result<Vec<Item>, ImportError> {
    let subject = subject_of(path);
    let csv = read_csv(path, false)?;
    csv.rows
        .iter()
        .enumerate()
        .map(|(i, (at, rec))| {
            if rec.len() != 6 {
                return Err(ImportError::field(
                    path,
                    at.clone(),
                    "record",
                    format!(
                        "expected 6 columns (question, A, B, C, D, answer), found {}",
                        rec.len()
                    ),
                ));
            }
            let letter = rec[5].trim();
            let gold = match letter {
                "A" => 0,
                "B" => 1,
                "C" => 2,
                "D" => 3,
                _ => {
                    return Err(ImportError::field(
                        path,
                        at.clone(),
                        "answer (column 6)",
                        format!("must be A, B, C or D, found `{letter}`"),
                    ))
                }
            };
            Ok(Item {
                id: format!("mmlu/{subject}/{i}"),
                input: rec[0].to_string(),
                choices: (1..5).map(|c| rec[c].to_string()).collect(),
                gold: Some(gold),
                cluster: Some(subject.clone()),
                ..Item::default()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::import::testutil::write;

    #[test]
    fn headerless_csv_with_multiline_fields() {
        let (d, p) = write(
            "data/test/astronomy_test.csv",
            b"\"What is true for a type-Ia (\"\"type one-a\"\") supernova?\",binary,young,gamma,X-rays,A\n\"Two\nlines\",a,b,c,d,D\n",
        );
        std::fs::write(p.with_file_name("anatomy_test.csv"), "Q,a,b,c,d,B\n").unwrap();
        let items = import(&p).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(
            items[0].input,
            "What is true for a type-Ia (\"type one-a\") supernova?"
        );
        assert_eq!(items[0].choices, ["binary", "young", "gamma", "X-rays"]);
        assert_eq!(items[0].gold, Some(0));
        assert_eq!(items[0].cluster.as_deref(), Some("astronomy"));
        assert_eq!(items[1].input, "Two\nlines");
        assert_eq!(items[1].gold, Some(3));
        assert_eq!(items[1].id, "mmlu/astronomy/1");
        // folder: all subjects, sorted by file name
        let all = import(d.path()).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].cluster.as_deref(), Some("anatomy"));
        assert_eq!(all[0].gold, Some(1));
    }

    #[test]
    fn bad_answer_letter_names_row() {
        let (_d, p) = write("x_test.csv", b"Q,a,b,c,d,A\nQ2,a,b,c,d,E\n");
        let e = import(&p).unwrap_err().to_string();
        assert!(
            e.contains("x_test.csv:2 (CSV row 2): field `answer (column 6)`"),
            "{e}"
        );
        let (_d, p) = write("y_test.csv", b"Q,a,b,c,A\n");
        let e = import(&p).unwrap_err().to_string();
        assert!(e.contains("expected 6 columns"), "{e}");
    }
}

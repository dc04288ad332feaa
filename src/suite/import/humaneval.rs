//! HumanEval (Chen et al. 2021) and HumanEval+ (EvalPlus), gzip JSONL
//! `{task_id, prompt, entry_point, canonical_solution, test, ...}`.
//!
//! As in lm-evaluation-harness `lm_eval/tasks/humaneval/humaneval.yaml` (`doc_to_text: "{{prompt}}"`,
//! `doc_to_target: "{{test}}\ncheck({{entry_point}})"`): input = `prompt`, test = `test`
//! (which defines `check(candidate)`), entry_point = `entry_point`. The runner executes
//! `prompt + completion + test + "check(<entry_point>)"`.
//!
//! HumanEval+: the release records carry a `test` field, and in v0.1.10 it is the original
//! HumanEval `check` for all 164 tasks. EvalPlus itself grades by comparing outputs with
//! `canonical_solution` on `base_input + plus_input` (tolerance `atol`); those extra inputs
//! are NOT turned into tests here, so "humaneval_plus" measures the base tests on the
//! EvalPlus prompts only.

use std::path::Path;

use super::{read_jsonl, str_field, ImportError, Loc};
use crate::suite::item::Item;

/// `HumanEval.jsonl.gz` (or `.jsonl`), or the `humaneval/` folder.
pub fn import_humaneval(path: &Path) -> Result<Vec<Item>, ImportError> {
    let path = super::resolve(path, &["HumanEval.jsonl.gz", "HumanEval.jsonl"])?;
    read(&path)
}

/// `HumanEvalPlus-v0.1.10.jsonl.gz` (or the Mini file), or the `humaneval_plus/` folder.
pub fn import_humaneval_plus(path: &Path) -> Result<Vec<Item>, ImportError> {
    let path = super::resolve(
        path,
        &[
            "HumanEvalPlus-v0.1.10.jsonl.gz",
            "HumanEvalPlus.jsonl.gz",
            "HumanEvalPlus.jsonl",
        ],
    )?;
    read(&path)
}

fn read(path: &Path) -> Result<Vec<Item>, ImportError> {
    read_jsonl(path)?
        .into_iter()
        .map(|(line, obj)| {
            let at = Loc::Line(line);
            let test = str_field(&obj, "test", path, &at)?;
            if !test.contains("def check(") {
                return Err(ImportError::field(
                    path,
                    at,
                    "test",
                    "does not define check(candidate)",
                ));
            }
            Ok(Item {
                id: str_field(&obj, "task_id", path, &at)?,
                input: str_field(&obj, "prompt", path, &at)?,
                test: Some(test),
                entry_point: Some(str_field(&obj, "entry_point", path, &at)?),
                ..Item::default()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::import::testutil::{gzip, write};

    const REC: &str = r#"{"task_id": "HumanEval/0", "prompt": "def f(x):\n    \"\"\"doc\"\"\"\n", "entry_point": "f", "canonical_solution": "    return x\n", "test": "\n\ndef check(candidate):\n    assert candidate(1) == 1\n"}"#;

    #[test]
    fn reads_gzip_jsonl() {
        let (_d, p) = write("HumanEval.jsonl.gz", &gzip(REC.as_bytes()));
        let items = import_humaneval(&p).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].id, "HumanEval/0");
        assert_eq!(items[0].entry_point.as_deref(), Some("f"));
        assert!(items[0]
            .test
            .as_deref()
            .unwrap()
            .contains("def check(candidate)"));
        assert!(items[0].input.starts_with("def f(x):"));
        assert_eq!(import_humaneval(p.parent().unwrap()).unwrap(), items);
    }

    #[test]
    fn plus_record_with_extra_fields() {
        let rec = REC.replace(
            "\"test\":",
            "\"contract\": \"\", \"base_input\": [[1]], \"atol\": 0, \"plus_input\": [[2]], \"test\":",
        );
        let (_d, p) = write("HumanEvalPlus-v0.1.10.jsonl.gz", &gzip(rec.as_bytes()));
        assert_eq!(import_humaneval_plus(&p).unwrap().len(), 1);
    }

    #[test]
    fn missing_test_names_line_and_field() {
        let rec = REC.replace("\"test\"", "\"tst\"");
        let (_d, p) = write("h.jsonl", format!("\n{rec}\n").as_bytes());
        let e = import_humaneval(&p).unwrap_err().to_string();
        assert!(e.contains("h.jsonl:2: field `test`: missing"), "{e}");
    }
}

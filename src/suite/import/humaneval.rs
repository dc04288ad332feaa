//! HumanEval (Chen et al. 2021) and HumanEval+ (EvalPlus), gzip JSONL
//! `{task_id, prompt, entry_point, canonical_solution, test, ...}`.
//!
//! As in lm-evaluation-harness `lm_eval/tasks/humaneval/humaneval.yaml` (`doc_to_text: "{{prompt}}"`,
//! `doc_to_target: "{{test}}\ncheck({{entry_point}})"`): input = `prompt`, test = `test`
//! (which defines `check(candidate)`), entry_point = `entry_point`. The runner executes
//! `prompt + completion + test + "check(<entry_point>)"`.
//!
//! HumanEval+: records carrying EvalPlus inputs (`base_input`, `plus_input`, the release files,
//! the Mini one included) are graded as EvalPlus grades them: the completion's outputs must equal
//! `canonical_solution`'s on every base and plus input (see [`super::evalplus`]); their `test` is
//! that differential check, not the original HumanEval `check`. Records without those inputs
//! (e.g. a re-export whose `test` already holds the EvalPlus tests) use their `test`.

use std::path::Path;

use super::evalplus::{plus_task, Dataset, MEMORY_LIMIT_MB, TIME_LIMIT_S};
use super::{jsonl, read_text, str_field, ImportError, Loc};
use crate::suite::item::Item;

/// `HumanEval.jsonl.gz` (or `.jsonl`), or the `humaneval/` folder.
pub fn import_humaneval(path: &Path) -> Result<Vec<Item>, ImportError> {
    let path = super::resolve(path, &["HumanEval.jsonl.gz", "HumanEval.jsonl"])?;
    read(&path, false)
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
    read(&path, true)
}

fn read(path: &Path, plus: bool) -> Result<Vec<Item>, ImportError> {
    let text = read_text(path)?;
    let lines: Vec<&str> = text.lines().collect();
    jsonl(path, &text)?
        .into_iter()
        .map(|(line, obj)| {
            let at = Loc::Line(line);
            let evalplus = if plus {
                plus_task(Dataset::HumanEval, lines[line - 1], &obj, path, &at)?
            } else {
                None
            };
            let plus = evalplus.is_some();
            let (test, time_limit) = match evalplus {
                Some(t) => (t.test(), Some(TIME_LIMIT_S)),
                None => {
                    let test = str_field(&obj, "test", path, &at)?;
                    if !test.contains("def check(") {
                        return Err(ImportError::field(
                            path,
                            at,
                            "test",
                            "does not define check(candidate)",
                        ));
                    }
                    (test, None)
                }
            };
            Ok(Item {
                id: str_field(&obj, "task_id", path, &at)?,
                input: str_field(&obj, "prompt", path, &at)?,
                test: Some(test),
                entry_point: Some(str_field(&obj, "entry_point", path, &at)?),
                time_limit,
                memory_limit: plus.then_some(MEMORY_LIMIT_MB),
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
    fn plus_records_are_graded_on_base_and_plus_inputs() {
        let rec = REC.replace(
            "\"test\":",
            "\"contract\": \"\", \"base_input\": [[1]], \"atol\": 0, \"plus_input\": [[-2], [12345678901234567890123]], \"test\":",
        );
        let (_d, p) = write("HumanEvalPlus-v0.1.10.jsonl.gz", &gzip(rec.as_bytes()));
        let items = import_humaneval_plus(&p).unwrap();
        assert_eq!(items.len(), 1);
        let test = items[0].test.as_deref().unwrap();
        assert!(test.contains("def check("), "{test}");
        assert!(test.contains("[[-2], [12345678901234567890123]]"), "{test}");
        assert_eq!(items[0].time_limit, Some(TIME_LIMIT_S));
        assert_eq!(items[0].memory_limit, Some(MEMORY_LIMIT_MB));
        if crate::suite::sandbox::find_python().is_ok() {
            let _guard = crate::suite::sandbox::tests::SERIAL
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            use crate::suite::sandbox::Limits;
            use crate::suite::scorer::pass_at_k::run;
            assert!(run(&items[0], "    return x\n", &Limits::default())
                .unwrap()
                .status
                .passed());
            // right on the base input, wrong on a plus input
            let o = run(&items[0], "    return abs(x)\n", &Limits::default()).unwrap();
            assert!(!o.status.passed());
            assert!(o.stderr.contains("plus input 0"), "{}", o.stderr);
        }
        // the original HumanEval importer keeps the original check
        let (_d, p) = write("HumanEval.jsonl.gz", &gzip(rec.as_bytes()));
        assert!(import_humaneval(&p).unwrap()[0]
            .test
            .as_deref()
            .unwrap()
            .starts_with("\n\ndef check(candidate):"));
    }

    #[test]
    fn missing_test_names_line_and_field() {
        let rec = REC.replace("\"test\"", "\"tst\"");
        let (_d, p) = write("h.jsonl", format!("\n{rec}\n").as_bytes());
        let e = import_humaneval(&p).unwrap_err().to_string();
        assert!(e.contains("h.jsonl:2: field `test`: missing"), "{e}");
    }
}

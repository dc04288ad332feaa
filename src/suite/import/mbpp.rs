//! MBPP (Austin et al. 2021) — `mbpp.jsonl` (974) and `sanitized-mbpp.json` (427) — and MBPP+
//! (EvalPlus, `MbppPlus-v0.2.0.jsonl.gz`, 378).
//!
//! Mirrors lm-evaluation-harness `lm_eval/tasks/mbpp/mbpp.yaml`: the task text is `text`
//! (`prompt` in the sanitized file and in MBPP+, cf. `mbpp_plus.yaml`:
//! `{{prompt if prompt is defined else text}}`), and the tests are the `test_list` asserts,
//! which lm-eval also shows in the prompt. Here input = the task text; test =
//! `test_setup_code` (full file) or `test_imports` (sanitized) followed by the `test_list`
//! asserts, one per line. A suite's prompt template can show the asserts from `test`.
//!
//! MBPP+ release records are graded as EvalPlus grades them: the completion's outputs must
//! equal `canonical_solution`'s on every `base_input` and `plus_input` (see
//! [`super::evalplus`]); their `assertion` field (the original asserts) is not the test. A record
//! without those inputs uses its `test_list` (HF-style re-export) or `assertion`. MBPP+ `prompt`
//! is a docstring that already embeds one example assert.
//!
//! entry_point = the function the asserts call (`entry_point` in MBPP+; for MBPP the first
//! `def` name in `code` that the asserts call, else the first called name in the first
//! assert). Ids: `mbpp/<split>/<task_id>` (split from the upstream README: 1-10 prompt,
//! 11-510 test, 511-600 validation, 601-974 train), `mbpp_sanitized/<split>/<task_id>`,
//! and `Mbpp/<n>` (MBPP+'s own task_id).

use std::path::Path;

use serde_json::{Map, Value};

use super::evalplus::{plus_task, Dataset, MEMORY_LIMIT_MB, TIME_LIMIT_S};
use super::{jsonl, read_jsonl, read_text, str_field, str_list_field, ImportError, Loc};
use crate::suite::item::Item;

/// The MBPP split a task id belongs to (google-research mbpp README).
pub fn split_of(task_id: u64) -> &'static str {
    match task_id {
        1..=10 => "prompt",
        11..=510 => "test",
        511..=600 => "validation",
        _ => "train",
    }
}

fn task_id(obj: &Map<String, Value>, path: &Path, at: &Loc) -> Result<u64, ImportError> {
    obj.get("task_id")
        .and_then(Value::as_u64)
        .ok_or_else(|| ImportError::field(path, at.clone(), "task_id", "must be an integer"))
}

/// `mbpp.jsonl`, or the `mbpp/` folder.
pub fn import_mbpp(path: &Path) -> Result<Vec<Item>, ImportError> {
    let path = super::resolve(path, &["mbpp.jsonl"])?;
    read_jsonl(&path)?
        .into_iter()
        .map(|(line, obj)| {
            let at = Loc::Line(line);
            let id = task_id(&obj, &path, &at)?;
            let code = str_field(&obj, "code", &path, &at)?;
            let tests = str_list_field(&obj, "test_list", &path, &at)?;
            let setup = match obj.get("test_setup_code") {
                Some(Value::String(s)) => s.clone(),
                _ => String::new(),
            };
            Ok(Item {
                id: format!("mbpp/{}/{id}", split_of(id)),
                input: str_field(&obj, "text", &path, &at)?,
                entry_point: entry_point(&code, &tests),
                test: Some(join_test(&[setup], &tests)),
                ..Item::default()
            })
        })
        .collect()
}

/// `sanitized-mbpp.json` (one JSON array), or the `mbpp/` folder.
pub fn import_mbpp_sanitized(path: &Path) -> Result<Vec<Item>, ImportError> {
    let path = super::resolve(path, &["sanitized-mbpp.json"])?;
    let text = read_text(&path)?;
    let arr = match serde_json::from_str::<Value>(&text) {
        Ok(Value::Array(a)) => a,
        Ok(other) => {
            return Err(ImportError::Json {
                path: path.clone(),
                at: Loc::Line(1),
                reason: format!("expected a JSON array, found {}", super::type_name(&other)),
            })
        }
        Err(e) => {
            return Err(ImportError::Json {
                path: path.clone(),
                at: Loc::Line(e.line()),
                reason: e.to_string(),
            })
        }
    };
    if arr.is_empty() {
        return Err(ImportError::Empty { path });
    }
    arr.into_iter()
        .enumerate()
        .map(|(i, v)| {
            let at = Loc::Index(i);
            let Value::Object(obj) = v else {
                return Err(ImportError::Json {
                    path: path.clone(),
                    at,
                    reason: "expected a JSON object".into(),
                });
            };
            let id = task_id(&obj, &path, &at)?;
            let code = str_field(&obj, "code", &path, &at)?;
            let tests = str_list_field(&obj, "test_list", &path, &at)?;
            let imports = match obj.get("test_imports") {
                Some(Value::Array(_)) => str_list_field(&obj, "test_imports", &path, &at)?,
                _ => Vec::new(),
            };
            Ok(Item {
                id: format!("mbpp_sanitized/{}/{id}", split_of(id)),
                input: str_field(&obj, "prompt", &path, &at)?,
                entry_point: entry_point(&code, &tests),
                test: Some(join_test(&imports, &tests)),
                ..Item::default()
            })
        })
        .collect()
}

/// `MbppPlus-v0.2.0.jsonl.gz`, or the `mbpp_plus/` folder.
pub fn import_mbpp_plus(path: &Path) -> Result<Vec<Item>, ImportError> {
    let path = super::resolve(
        path,
        &[
            "MbppPlus-v0.2.0.jsonl.gz",
            "MbppPlus.jsonl.gz",
            "MbppPlus.jsonl",
        ],
    )?;
    let text = read_text(&path)?;
    let lines: Vec<&str> = text.lines().collect();
    jsonl(&path, &text)?
        .into_iter()
        .map(|(line, obj)| {
            let at = Loc::Line(line);
            if let Some(t) = plus_task(Dataset::Mbpp, lines[line - 1], &obj, &path, &at)? {
                return Ok(Item {
                    id: t.task_id.to_string(),
                    input: str_field(&obj, "prompt", &path, &at)?,
                    entry_point: Some(t.entry_point.to_string()),
                    test: Some(t.test()),
                    time_limit: Some(TIME_LIMIT_S),
                    memory_limit: Some(MEMORY_LIMIT_MB),
                    ..Item::default()
                });
            }
            let test = match obj.get("test_list") {
                // HF-style re-export (evalplus/mbppplus): test_list asserts
                Some(Value::Array(_)) => {
                    join_test(&[], &str_list_field(&obj, "test_list", &path, &at)?)
                }
                _ => str_field(&obj, "assertion", &path, &at)?.trim().to_string() + "\n",
            };
            if !test.contains("assert") {
                return Err(ImportError::field(
                    &path,
                    at,
                    "assertion",
                    "holds no assert",
                ));
            }
            Ok(Item {
                id: str_field(&obj, "task_id", &path, &at)?,
                input: str_field(&obj, "prompt", &path, &at)?,
                entry_point: Some(str_field(&obj, "entry_point", &path, &at)?),
                test: Some(test),
                ..Item::default()
            })
        })
        .collect()
}

/// Setup lines (CRLF normalised), then one assert per line.
fn join_test(setup: &[String], tests: &[String]) -> String {
    let mut out = String::new();
    for s in setup.iter().filter(|s| !s.trim().is_empty()) {
        out.push_str(&s.replace("\r\n", "\n"));
        out.push('\n');
    }
    for t in tests {
        out.push_str(&t.replace("\r\n", "\n"));
        out.push('\n');
    }
    out
}

/// Names called in `text` (identifier immediately followed by `(`).
fn called_names(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_alphabetic() || bytes[i] == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let preceded_by_dot = start > 0 && bytes[start - 1] == b'.';
            if i < bytes.len() && bytes[i] == b'(' && !preceded_by_dot {
                out.push(&text[start..i]);
            }
        } else {
            i += 1;
        }
    }
    out
}

fn entry_point(code: &str, tests: &[String]) -> Option<String> {
    let all_tests = tests.join("\n");
    let called = called_names(&all_tests);
    let defs = code.lines().filter_map(|l| {
        let rest = l.trim_start().strip_prefix("def ")?;
        let name = rest.split('(').next()?.trim();
        (!name.is_empty()).then_some(name)
    });
    for d in defs {
        if called.contains(&d) {
            return Some(d.to_string());
        }
    }
    const BUILTINS: &[&str] = &[
        "set",
        "sorted",
        "list",
        "tuple",
        "abs",
        "round",
        "str",
        "int",
        "float",
        "len",
        "isclose",
        "math",
        "dict",
        "frozenset",
        "all",
        "any",
        "bool",
    ];
    called_names(tests.first()?)
        .into_iter()
        .find(|n| !BUILTINS.contains(n))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::import::testutil::{gzip, write};

    #[test]
    fn mbpp_full() {
        let (_d, p) = write(
            "mbpp.jsonl",
            br#"{"text": "Write a function to find the minimum cost path.", "code": "R = 3\r\ndef min_cost(cost, m, n):\r\n\treturn 8", "task_id": 1, "test_setup_code": "", "test_list": ["assert min_cost([[1, 2, 3]], 2, 2) == 8", "assert min_cost([[2]], 2, 2) == 12"], "challenge_test_list": []}
{"text": "Tree.", "code": "class Node:\r\n  pass\r\ndef max_height(node):\r\n  return 3", "task_id": 11, "test_setup_code": "root = Node(1) \r\nroot.left = Node(2)", "test_list": ["assert (max_height(root)) == 3"], "challenge_test_list": []}
"#,
        );
        let items = import_mbpp(&p).unwrap();
        assert_eq!(items[0].id, "mbpp/prompt/1");
        assert_eq!(
            items[0].input,
            "Write a function to find the minimum cost path."
        );
        assert_eq!(items[0].entry_point.as_deref(), Some("min_cost"));
        assert_eq!(
            items[0].test.as_deref(),
            Some("assert min_cost([[1, 2, 3]], 2, 2) == 8\nassert min_cost([[2]], 2, 2) == 12\n")
        );
        assert_eq!(items[1].id, "mbpp/test/11");
        assert_eq!(
            items[1].test.as_deref(),
            Some("root = Node(1) \nroot.left = Node(2)\nassert (max_height(root)) == 3\n")
        );
        assert_eq!(items[1].entry_point.as_deref(), Some("max_height"));
    }

    #[test]
    fn mbpp_sanitized_array() {
        let (_d, p) = write(
            "sanitized-mbpp.json",
            br#"[{"source_file": "x.ipynb", "task_id": 2, "prompt": "Write a function to find the shared elements.", "code": "def similar_elements(a, b):\n  return 1", "test_imports": ["import math"], "test_list": ["assert set(similar_elements((3, 4),(5, 4))) == set((4,))"]}]"#,
        );
        let items = import_mbpp_sanitized(&p).unwrap();
        assert_eq!(items[0].id, "mbpp_sanitized/prompt/2");
        assert_eq!(items[0].entry_point.as_deref(), Some("similar_elements"));
        assert!(items[0]
            .test
            .as_deref()
            .unwrap()
            .starts_with("import math\nassert set("));
        let (_d, p) = write(
            "s.json",
            br#"[{"task_id": 2, "prompt": "p", "code": "", "test_list": "x"}]"#,
        );
        let e = import_mbpp_sanitized(&p).unwrap_err().to_string();
        assert!(
            e.contains("s.json[0]: field `test_list`: must be a list"),
            "{e}"
        );
    }

    #[test]
    fn mbpp_plus_is_graded_on_base_and_plus_inputs() {
        let rec = r#"{"task_id": "Mbpp/2", "prompt": "\"\"\"\nWrite a function.\nassert f(1) == 1\n\"\"\"\n", "entry_point": "similar_elements", "canonical_solution": "\ndef similar_elements(a, b):\n  return tuple(set(a) & set(b))\n", "base_input": [[[3, 4, 5, 6], [5, 7, 4, 10]]], "atol": 0, "plus_input": [[[1, 2, 3], [4, 5, 6]], [[Infinity], [Infinity]]], "contract": "", "assertion": "\nassert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))\n"}"#;
        let (_d, p) = write("MbppPlus-v0.2.0.jsonl.gz", &gzip(rec.as_bytes()));
        let items = import_mbpp_plus(p.parent().unwrap()).unwrap();
        assert_eq!(items[0].id, "Mbpp/2");
        assert_eq!(items[0].entry_point.as_deref(), Some("similar_elements"));
        assert_eq!(items[0].time_limit, Some(TIME_LIMIT_S));
        assert_eq!(items[0].memory_limit, Some(MEMORY_LIMIT_MB));
        let test = items[0].test.as_deref().unwrap();
        assert!(
            test.contains("[[[1, 2, 3], [4, 5, 6]], [[Infinity], [Infinity]]]"),
            "{test}"
        );
        if crate::suite::sandbox::find_python().is_ok() {
            let _guard = crate::suite::sandbox::tests::SERIAL
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            use crate::suite::sandbox::Limits;
            use crate::suite::scorer::pass_at_k::run;
            let passes = |code: &str| {
                run(&items[0], code, &Limits::default())
                    .unwrap()
                    .status
                    .passed()
            };
            // set equality (EvalPlus's oracle for this task), tuples as inputs
            assert!(passes("def similar_elements(a, b):\n  assert type(a) is tuple\n  return tuple(x for x in b if x in a)\n"));
            // right on the base input only
            assert!(!passes("def similar_elements(a, b):\n  return (4, 5)\n"));
        }
        // without EvalPlus inputs: the assertion
        let rec = r#"{"task_id": "Mbpp/2", "prompt": "p", "entry_point": "similar_elements", "assertion": "\nassert similar_elements((3, 4),(5, 4)) == (4,)\n"}"#;
        let (_d, p) = write("MbppPlus.jsonl", rec.as_bytes());
        assert_eq!(
            import_mbpp_plus(&p).unwrap()[0].test.as_deref(),
            Some("assert similar_elements((3, 4),(5, 4)) == (4,)\n")
        );
    }

    #[test]
    fn entry_point_falls_back_to_called_name() {
        let tests = vec!["assert math.isclose(area(2), 4.0)".to_string()];
        assert_eq!(entry_point("", &tests).as_deref(), Some("area"));
        let tests = vec!["assert set(f(1)) == set()".to_string()];
        assert_eq!(
            entry_point("def g():\n  pass\ndef f(x):\n  pass", &tests).as_deref(),
            Some("f")
        );
    }
}

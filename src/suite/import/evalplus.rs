//! EvalPlus grading for HumanEval+ and MBPP+: a completion passes when its outputs equal the
//! canonical solution's on every `base_input` and every `plus_input` (EvalPlus's "plus" score),
//! as `evalplus.evaluate` decides it: float outputs within `atol` (at least 1e-6), the special
//! oracles of a few tasks (HumanEval/32 `find_zero`; MBPP+ set-equality, not-`None` and
//! alternative-formula tasks), MBPP+'s input deserialisation (tuples, sets, complex numbers),
//! and a per-input time limit of max(4 s, 4 × the reference's time) (EvalPlus's current
//! defaults; v0.3.1 had a 1 s floor, which a busy machine trips on correct solutions).
//!
//! The item's `test` is a Python program (`evalplus_check.py` after the task's constants) that
//! defines `check(candidate)`: it runs the reference solution (prompt + canonical solution, in
//! its own namespace) and the completion on a fresh deep copy of each input, base inputs first,
//! and stops at the first mismatch with `AssertionError: base input 3: wrong output` (or
//! `plus input …`). Expected outputs are computed in the sandbox at test time rather than stored,
//! so the item needs more time than a HumanEval test: [`TIME_LIMIT_S`].
//!
//! The inputs are copied into the program as the release file's raw JSON text, since its
//! integers can exceed 64 bits and it contains Python's `Infinity`; Python's `json` reads both.

use super::{ImportError, Loc};
use std::path::Path;

/// Wall-clock and CPU seconds one run of an EvalPlus test may take. With its canonical solution
/// as the completion (so the reference and the completion both run), the slowest task, Mbpp/599
/// (~90 inputs summing up to 10⁸ numbers each), takes 40–55 s on a busy 2-core machine, and all
/// 542 tasks together about 4 minutes; EvalPlus itself allows a completion 60 s per task.
pub const TIME_LIMIT_S: f64 = 120.0;

/// MiB of address space an EvalPlus test may use (EvalPlus's own limit; Mbpp/255's reference
/// needs more than the sandbox's default 512 MiB).
pub const MEMORY_LIMIT_MB: u64 = 4096;

const HARNESS: &str = include_str!("evalplus_check.py");

/// Which benchmark a task comes from (decides the special oracles and deserialisation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dataset {
    HumanEval,
    Mbpp,
}

/// One EvalPlus task, its inputs as raw JSON text.
#[derive(Debug, Clone)]
pub struct PlusTask<'a> {
    pub dataset: Dataset,
    pub task_id: &'a str,
    pub entry_point: &'a str,
    /// prompt + canonical solution
    pub reference: String,
    pub atol: &'a str,
    pub base_input: &'a str,
    pub plus_input: &'a str,
}

impl PlusTask<'_> {
    /// The `test` code: constants, then the checker.
    pub fn test(&self) -> String {
        let lit = |s: &str| serde_json::to_string(s).expect("a string serialises");
        let mut out = String::with_capacity(
            HARNESS.len() + self.reference.len() + self.base_input.len() + self.plus_input.len(),
        );
        out.push_str(&format!(
            "_EP_DATASET = {}\n_EP_TASK = {}\n_EP_ENTRY = {}\n_EP_ATOL = {}\n_EP_REFERENCE = {}\n",
            lit(match self.dataset {
                Dataset::HumanEval => "humaneval",
                Dataset::Mbpp => "mbpp",
            }),
            lit(self.task_id),
            lit(self.entry_point),
            self.atol,
            lit(&self.reference),
        ));
        out.push_str(&format!(
            "_EP_INPUTS = ((\"base\", {}), (\"plus\", {}))\n",
            lit(self.base_input),
            lit(self.plus_input)
        ));
        out.push_str("_EP_CANDIDATE = globals().get(_EP_ENTRY)\n");
        out.push_str(HARNESS);
        out
    }
}

/// Build the [`PlusTask`] of a release record when it carries EvalPlus inputs (`base_input`,
/// `plus_input`, `canonical_solution`, `atol`); `None` when it has none of them.
pub fn plus_task<'a>(
    dataset: Dataset,
    line: &'a str,
    obj: &'a serde_json::Map<String, serde_json::Value>,
    path: &Path,
    at: &Loc,
) -> Result<Option<PlusTask<'a>>, ImportError> {
    if !obj.contains_key("plus_input") && !obj.contains_key("base_input") {
        return Ok(None);
    }
    let str_of = |field: &str| match obj.get(field) {
        Some(serde_json::Value::String(s)) => Ok(s.as_str()),
        None => Err(ImportError::field(path, at.clone(), field, "missing")),
        Some(_) => Err(ImportError::field(
            path,
            at.clone(),
            field,
            "must be a string",
        )),
    };
    let list = |field: &str| match obj.get(field) {
        Some(serde_json::Value::Array(_)) => raw_field(line, field)
            .ok_or_else(|| ImportError::field(path, at.clone(), field, "could not be read")),
        // MBPP+ v0.2.0's Mbpp/793 has `"plus_input": {}`: no inputs, for EvalPlus too
        Some(serde_json::Value::Object(o)) if o.is_empty() => Ok("[]"),
        _ => Err(ImportError::field(
            path,
            at.clone(),
            field,
            "must be a list of argument lists",
        )),
    };
    let atol = match obj.get("atol") {
        None => "0",
        Some(serde_json::Value::Number(_)) => raw_field(line, "atol")
            .ok_or_else(|| ImportError::field(path, at.clone(), "atol", "could not be read"))?,
        Some(_) => {
            return Err(ImportError::field(
                path,
                at.clone(),
                "atol",
                "must be a number",
            ))
        }
    };
    let prompt = str_of("prompt")?;
    let canonical = str_of("canonical_solution")?;
    Ok(Some(PlusTask {
        dataset,
        task_id: str_of("task_id")?,
        entry_point: str_of("entry_point")?,
        reference: format!("{prompt}{canonical}"),
        atol,
        base_input: list("base_input")?,
        plus_input: list("plus_input")?,
    }))
}

/// The raw text of the value of top-level field `key` in the JSON object on `line` (Python's
/// `json.dumps` dialect: `NaN`, `Infinity` and integers of any size are kept as written).
pub fn raw_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let b = line.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    loop {
        i = skip_ws(b, i);
        match b.get(i)? {
            b'}' => return None,
            b',' => {
                i += 1;
                continue;
            }
            b'"' => {}
            _ => return None,
        }
        let key_end = skip_string(b, i)?;
        let name: String = serde_json::from_str(&line[i..key_end]).ok()?;
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        let start = skip_ws(b, i + 1);
        let end = skip_value(b, start)?;
        if name == key {
            return Some(&line[start..end]);
        }
        i = end;
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// `b[i]` is `"`: the index just past the closing quote.
fn skip_string(b: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// The index just past the value starting at `b[i]`.
fn skip_value(b: &[u8], mut i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => skip_string(b, i),
        b'[' | b'{' => {
            let mut depth = 0usize;
            while i < b.len() {
                match b[i] {
                    b'"' => {
                        i = skip_string(b, i)?;
                        continue;
                    }
                    b'[' | b'{' => depth += 1,
                    b']' | b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            None
        }
        _ => {
            let start = i;
            while i < b.len() && !matches!(b[i], b',' | b'}' | b']') && !b[i].is_ascii_whitespace()
            {
                i += 1;
            }
            (i > start).then_some(i)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::item::Item;
    use crate::suite::sandbox::{find_python, Limits};
    use crate::suite::scorer::pass_at_k;

    #[test]
    fn raw_fields_keep_python_json_as_written() {
        let line = r#"{"a": "x, \"]}", "base_input": [[1, "]", {"k": [2]}], [123456789012345678901234567890]], "atol": 1e-06, "plus_input": [[-Infinity, NaN]], "z": null}"#;
        assert_eq!(raw_field(line, "a"), Some(r#""x, \"]}""#));
        assert_eq!(
            raw_field(line, "base_input"),
            Some(r#"[[1, "]", {"k": [2]}], [123456789012345678901234567890]]"#)
        );
        assert_eq!(raw_field(line, "atol"), Some("1e-06"));
        assert_eq!(raw_field(line, "plus_input"), Some("[[-Infinity, NaN]]"));
        assert_eq!(raw_field(line, "z"), Some("null"));
        assert_eq!(raw_field(line, "missing"), None);
        assert_eq!(raw_field("[1]", "a"), None);
    }

    fn task<'a>(
        dataset: Dataset,
        entry: &'a str,
        reference: &str,
        base: &'a str,
        plus: &'a str,
    ) -> PlusTask<'a> {
        PlusTask {
            dataset,
            task_id: if dataset == Dataset::Mbpp {
                "Mbpp/9999"
            } else {
                "HumanEval/9999"
            },
            entry_point: entry,
            reference: reference.to_string(),
            atol: "0",
            base_input: base,
            plus_input: plus,
        }
    }

    fn outcome(t: &PlusTask, completion: &str) -> (bool, String) {
        let _guard = crate::suite::sandbox::tests::SERIAL
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let item = Item {
            input: String::new(),
            test: Some(t.test()),
            entry_point: Some(t.entry_point.to_string()),
            ..Default::default()
        };
        let o = pass_at_k::run(&item, completion, &Limits::default()).unwrap();
        (o.status.passed(), o.stderr)
    }

    /// A completion right on the base inputs but wrong on a plus input fails, naming the plus
    /// input; huge integers and infinities arrive intact; an entry point called `check` works.
    #[test]
    fn base_and_plus_inputs_are_graded_against_the_reference() {
        if find_python().is_err() {
            eprintln!("note: no python3; skipping");
            return;
        }
        let reference = "def f(x):\n    return abs(x)\n";
        let t = task(
            Dataset::HumanEval,
            "f",
            reference,
            "[[1], [2]]",
            "[[3], [-4]]",
        );
        assert!(outcome(&t, reference).0);
        let (ok, err) = outcome(&t, "def f(x):\n    return x\n");
        assert!(!ok);
        assert!(err.contains("plus input 1: wrong output"), "{err}");
        let (ok, err) = outcome(&t, "def f(x):\n    return x + 1\n");
        assert!(!ok && err.contains("base input 0"), "{err}");
        // floats within 1e-6, infinities and integers beyond 64 bits
        let t = task(
            Dataset::HumanEval,
            "g",
            "def g(x):\n    return x / 3\n",
            "[[1.0], [123456789012345678901234567890]]",
            "[[Infinity]]",
        );
        assert!(outcome(&t, "def g(x):\n    return x / 3 + 1e-9\n").0);
        assert!(!outcome(&t, "def g(x):\n    return x / 3 + 1e-3\n").0);
        // MBPP: deserialised tuples, set equality for `similar_elements`, entry point `check`
        let t = PlusTask {
            task_id: "Mbpp/2",
            ..task(
                Dataset::Mbpp,
                "similar_elements",
                "def similar_elements(a, b):\n    assert isinstance(a, tuple)\n    return tuple(set(a) & set(b))\n",
                "[[[3, 4, 5, 6], [5, 7, 4, 10]]]",
                "[[[1, 2, 3], [3, 2, 9]]]",
            )
        };
        assert!(outcome(&t, "def similar_elements(a, b):\n    return tuple(sorted(set(b) & set(a), reverse=True))\n").0);
        let t = task(
            Dataset::Mbpp,
            "check",
            "def check(s):\n    return s == s[::-1]\n",
            "[[\"aba\"]]",
            "[[\"ab\"]]",
        );
        assert!(outcome(&t, "def check(s):\n    return s == s[::-1]\n").0);
        assert!(!outcome(&t, "def check(s):\n    return True\n").0);
        // a missing entry point and a slow input fail
        assert!(!outcome(&t, "def other(s):\n    return True\n").0);
    }

    #[test]
    fn a_candidate_slower_than_the_time_limit_fails_that_input() {
        if find_python().is_err() {
            return;
        }
        let t = task(
            Dataset::HumanEval,
            "h",
            "def h(x):\n    return x\n",
            "[[1]]",
            "[[2]]",
        );
        let (ok, err) = outcome(
            &t,
            "def h(x):\n    import time\n    if x == 2:\n        time.sleep(5)\n    return x\n",
        );
        assert!(!ok);
        assert!(err.contains("plus input 0: over the time limit"), "{err}");
    }
}

//! MATH (Hendrycks et al. 2021) and MATH-500 (Lightman et al. 2023).
//!
//! MATH: one JSON object per problem, `{problem, level, type, solution}`, in
//! `MATH/test/<subject>/<n>.json` — read from the tarball (`.tar.gz`/`.tgz`/`.tar`) or an
//! unpacked folder. There is no answer field: as in lm-evaluation-harness
//! `lm_eval/tasks/hendrycks_math/utils.py` (`process_docs`: `remove_boxed(last_boxed_only_string(solution))`)
//! the target is the content of the last `\boxed{...}` (or `\fbox{...}`) with brace matching.
//! Ids are `math/test/<subject>/<n>`; cluster = subject folder.
//!
//! MATH-500: JSONL `{problem, solution, answer, subject, level (int), unique_id}`; target =
//! `answer` (as in `lm_eval/tasks/hendrycks_math/hendrycks_math500.yaml`, which reads the
//! `answer` column); id = `unique_id` (`test/<subject>/<n>.json`, pointing into MATH);
//! cluster = subject.
//!
//! `level` has no place in [`Item`] and is dropped.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::{io_err, read_jsonl, str_field, ImportError, Loc};
use crate::suite::item::Item;

/// `MATH_test.tar.gz`, the `math/` folder holding it, or an unpacked `MATH/test` folder.
pub fn import_math(path: &Path) -> Result<Vec<Item>, ImportError> {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let archive = if path.is_dir() {
        ["MATH_test.tar.gz", "MATH.tar.gz", "MATH.tar"]
            .iter()
            .map(|c| path.join(c))
            .find(|p| p.is_file())
    } else {
        Some(path.to_path_buf())
    };
    let source: PathBuf;
    if let Some(archive) = archive {
        source = archive.clone();
        let bytes = std::fs::read(&archive).map_err(|e| io_err(&archive, e))?;
        let reader: Box<dyn Read> = if bytes.starts_with(&[0x1f, 0x8b]) {
            Box::new(flate2::read::GzDecoder::new(&bytes[..]))
        } else {
            Box::new(&bytes[..])
        };
        let mut tar = tar::Archive::new(reader);
        for entry in tar.entries().map_err(|e| io_err(&archive, e))? {
            let mut entry = entry.map_err(|e| io_err(&archive, e))?;
            let name = entry
                .path()
                .map_err(|e| io_err(&archive, e))?
                .to_string_lossy()
                .into_owned();
            if !entry.header().entry_type().is_file() || !name.ends_with(".json") {
                continue;
            }
            if !name.contains("test/") {
                continue; // only the test split (a full MATH.tar also holds train/)
            }
            let mut buf = Vec::new();
            entry
                .read_to_end(&mut buf)
                .map_err(|e| io_err(&archive, e))?;
            files.push((name, buf));
        }
    } else {
        source = path.to_path_buf();
        // unpacked: find <subject>/<n>.json under path (path may be MATH/, MATH/test or math/)
        let mut stack = vec![path.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).map_err(|e| io_err(&dir, e))? {
                let p = e.map_err(|e| io_err(&dir, e))?.path();
                if p.is_dir() {
                    if !p.ends_with("train") {
                        stack.push(p);
                    }
                } else if p.extension().is_some_and(|x| x == "json") {
                    let bytes = std::fs::read(&p).map_err(|e| io_err(&p, e))?;
                    let rel = p
                        .strip_prefix(path)
                        .unwrap_or(&p)
                        .to_string_lossy()
                        .into_owned();
                    files.push((rel, bytes));
                }
            }
        }
    }
    if files.is_empty() {
        return Err(ImportError::Empty { path: source });
    }
    // stable order: subject, then problem number
    let key = |name: &str| {
        let (subject, n) = subject_and_number(name);
        (
            subject,
            n.parse::<u64>().unwrap_or(u64::MAX),
            name.to_string(),
        )
    };
    files.sort_by_cached_key(|(n, _)| key(n));
    files
        .into_iter()
        .map(|(name, bytes)| {
            let at = Loc::Member(name.clone());
            let obj: Map<String, Value> = match serde_json::from_slice(&bytes) {
                Ok(Value::Object(o)) => o,
                Ok(other) => {
                    return Err(ImportError::Json {
                        path: source.clone(),
                        at,
                        reason: format!(
                            "expected a JSON object, found {}",
                            super::type_name(&other)
                        ),
                    })
                }
                Err(e) => {
                    return Err(ImportError::Json {
                        path: source.clone(),
                        at,
                        reason: e.to_string(),
                    })
                }
            };
            let problem = str_field(&obj, "problem", &source, &at)?;
            let solution = str_field(&obj, "solution", &source, &at)?;
            let target = last_boxed(&solution).ok_or_else(|| {
                ImportError::field(&source, at.clone(), "solution", "no \\boxed{...} answer")
            })?;
            let (subject, n) = subject_and_number(&name);
            Ok(Item {
                id: format!("math/test/{subject}/{n}"),
                input: problem,
                target: Some(target),
                cluster: Some(subject),
                ..Item::default()
            })
        })
        .collect()
}

/// `("algebra", "1")` from `MATH/test/algebra/1.json`.
fn subject_and_number(name: &str) -> (String, String) {
    let mut parts = name.trim_end_matches(".json").rsplit(['/', '\\']);
    let n = parts.next().unwrap_or_default().to_string();
    let subject = parts.next().unwrap_or_default().to_string();
    (subject, n)
}

/// Content of the last `\boxed{...}` / `\fbox{...}` (braces matched), or of `\boxed x` up to
/// the next `$`, as lm-eval's `last_boxed_only_string` + `remove_boxed`.
pub fn last_boxed(s: &str) -> Option<String> {
    if let Some((_, tail)) = s.rsplit_once("\\boxed ") {
        return Some(tail.split('$').next().unwrap_or_default().to_string());
    }
    let start = s.rfind("\\boxed").or_else(|| s.rfind("\\fbox"))?;
    let rest = &s[start..];
    let open = rest.find('{')?;
    let mut depth = 0usize;
    for (i, c) in rest.char_indices().skip_while(|(i, _)| *i < open) {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(rest[open + 1..i].to_string());
                }
            }
            _ => {}
        }
    }
    None
}

/// MATH-500 `test.jsonl`, or the `math500/` folder.
pub fn import_math500(path: &Path) -> Result<Vec<Item>, ImportError> {
    let path = super::resolve(path, &["test.jsonl"])?;
    read_jsonl(&path)?
        .into_iter()
        .map(|(line, obj)| {
            let at = Loc::Line(line);
            let id = str_field(&obj, "unique_id", &path, &at)?;
            Ok(Item {
                id: format!("math500/{}", id.trim_end_matches(".json")),
                input: str_field(&obj, "problem", &path, &at)?,
                target: Some(str_field(&obj, "answer", &path, &at)?),
                cluster: Some(str_field(&obj, "subject", &path, &at)?),
                ..Item::default()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::import::testutil::{gzip, write};

    #[test]
    fn boxed_extraction_matches_braces() {
        assert_eq!(last_boxed("so $\\boxed{2}$."), Some("2".into()));
        assert_eq!(
            last_boxed("\\boxed{1} then $\\boxed{\\frac{1}{2}}$"),
            Some("\\frac{1}{2}".into())
        );
        assert_eq!(last_boxed("\\fbox{x^{2}}"), Some("x^{2}".into()));
        assert_eq!(last_boxed("$\\boxed 5$"), Some("5".into()));
        assert_eq!(last_boxed("no box"), None);
        assert_eq!(last_boxed("\\boxed{unclosed"), None);
    }

    fn tarball(members: &[(&str, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, body) in members {
            let mut h = tar::Header::new_gnu();
            h.set_size(body.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, body.as_bytes()).unwrap();
        }
        gzip(&b.into_inner().unwrap())
    }

    #[test]
    fn math_tarball() {
        let tgz = tarball(&[
            ("MATH/README.txt", "readme"),
            (
                "MATH/test/algebra/10.json",
                r#"{"problem": "P10", "level": "Level 3", "type": "Algebra", "solution": "so $\\boxed{2}$"}"#,
            ),
            (
                "MATH/test/algebra/9.json",
                r#"{"problem": "P9", "level": "Level 1", "type": "Algebra", "solution": "$\\boxed{\\frac{1}{2}}$"}"#,
            ),
            ("MATH/train/algebra/1.json", r#"{"problem": "train"}"#),
        ]);
        let (_d, p) = write("MATH_test.tar.gz", &tgz);
        let items = import_math(&p).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].id, "math/test/algebra/9");
        assert_eq!(items[0].target.as_deref(), Some("\\frac{1}{2}"));
        assert_eq!(items[0].cluster.as_deref(), Some("algebra"));
        assert_eq!(items[1].input, "P10");
        assert_eq!(import_math(p.parent().unwrap()).unwrap(), items);
    }

    #[test]
    fn math_error_names_member_and_field() {
        let tgz = tarball(&[(
            "MATH/test/geometry/3.json",
            r#"{"problem": "P", "solution": "no answer"}"#,
        )]);
        let (_d, p) = write("MATH_test.tar.gz", &tgz);
        let e = import_math(&p).unwrap_err().to_string();
        assert!(
            e.contains("MATH_test.tar.gz!MATH/test/geometry/3.json: field `solution`"),
            "{e}"
        );
    }

    #[test]
    fn math500_uses_answer_field() {
        let (_d, p) = write(
            "test.jsonl",
            br#"{"problem": "Convert", "solution": "...", "answer": "\\left( 3, \\frac{\\pi}{2} \\right)", "subject": "Precalculus", "level": 2, "unique_id": "test/precalculus/807.json"}"#,
        );
        let items = import_math500(&p).unwrap();
        assert_eq!(items[0].id, "math500/test/precalculus/807");
        assert_eq!(
            items[0].target.as_deref(),
            Some("\\left( 3, \\frac{\\pi}{2} \\right)")
        );
        assert_eq!(items[0].cluster.as_deref(), Some("Precalculus"));
    }
}

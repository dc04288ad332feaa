//! GSM8K (Cobbe et al. 2021), `grade_school_math/data/test.jsonl`: `{question, answer}`.
//!
//! Mirrors lm-evaluation-harness `lm_eval/tasks/gsm8k/gsm8k.yaml`: the question is
//! `doc_to_text`'s `{{question}}`, and the gold answer is what follows `#### ` in `answer`
//! with `,` and `$` ignored (`regexes_to_ignore: [",", "\\$", "(?s).*#### "]`).
//! Ids are `gsm8k/test/<0-based record index>`.

use std::path::Path;

use super::{read_jsonl, str_field, ImportError, Loc};
use crate::suite::item::Item;

/// `gsm8k/test.jsonl`, or the `gsm8k/` folder.
pub fn import(path: &Path) -> Result<Vec<Item>, ImportError> {
    let path = super::resolve(path, &["test.jsonl"])?;
    let split = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("test")
        .to_string();
    read_jsonl(&path)?
        .into_iter()
        .enumerate()
        .map(|(i, (line, obj))| {
            let at = Loc::Line(line);
            let question = str_field(&obj, "question", &path, &at)?;
            let answer = str_field(&obj, "answer", &path, &at)?;
            let target = final_answer(&answer).ok_or_else(|| {
                ImportError::field(&path, at.clone(), "answer", "no `#### <answer>` at its end")
            })?;
            Ok(Item {
                id: format!("gsm8k/{split}/{i}"),
                input: question,
                target: Some(target),
                ..Item::default()
            })
        })
        .collect()
}

/// The text after the last `#### `, trimmed, with commas and dollar signs removed.
pub fn final_answer(answer: &str) -> Option<String> {
    let (_, tail) = answer.rsplit_once("#### ")?;
    let t: String = tail
        .trim()
        .chars()
        .filter(|c| *c != ',' && *c != '$')
        .collect();
    (!t.is_empty()).then_some(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::import::testutil::write;

    #[test]
    fn target_after_hashes_without_commas() {
        let (_d, p) = write(
            "test.jsonl",
            br#####"{"question": "Janet sells eggs?", "answer": "She makes 9 * 2 = $<<9*2=18>>18.\n#### 18"}
{"question": "Big?", "answer": "so\n#### 1,000"}
"#####,
        );
        let items = import(&p).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].id, "gsm8k/test/0");
        assert_eq!(items[0].input, "Janet sells eggs?");
        assert_eq!(items[0].target.as_deref(), Some("18"));
        assert_eq!(items[1].target.as_deref(), Some("1000"));
        // folder form
        assert_eq!(import(p.parent().unwrap()).unwrap(), items);
    }

    #[test]
    fn missing_marker_names_field() {
        let (_d, p) = write(
            "test.jsonl",
            br#####"{"question": "q", "answer": "no marker"}"#####,
        );
        let e = import(&p).unwrap_err().to_string();
        assert!(e.contains("test.jsonl:1: field `answer`"), "{e}");
        let (_d, p) = write("test.jsonl", b"{\"answer\": \"#### 3\"}");
        let e = import(&p).unwrap_err().to_string();
        assert!(e.contains("field `question`: missing"), "{e}");
    }
}

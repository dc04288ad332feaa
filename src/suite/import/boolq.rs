//! BoolQ (Clark et al. 2019), dev split.
//!
//! Mirrors lm-evaluation-harness `lm_eval/tasks/super_glue/boolq/default.yaml`:
//! `doc_to_text: "{{passage}}\nQuestion: {{question}}?\nAnswer:"`, `doc_to_choice: ["no", "yes"]`,
//! `doc_to_target: label`. So context = passage, input = question, choices = `["no", "yes"]`,
//! gold = 1 for true. Accepted layouts: SuperGLUE `{question, passage, idx, label}` with
//! `label` a JSON boolean, 0/1, or the strings "true"/"false" (OpenCompass's copy), and the
//! original Google `{question, title, answer (bool), passage}`.
//! Ids: `boolq/<idx>` (or the 0-based record index when `idx` is absent).

use std::path::Path;

use serde_json::Value;

use super::{read_jsonl, str_field, ImportError, Loc};
use crate::suite::item::Item;

/// `val.jsonl` / `dev.jsonl`, or the `boolq/` folder.
pub fn import(path: &Path) -> Result<Vec<Item>, ImportError> {
    let path = super::resolve(path, &["val.jsonl", "dev.jsonl"])?;
    read_jsonl(&path)?
        .into_iter()
        .enumerate()
        .map(|(i, (line, obj))| {
            let at = Loc::Line(line);
            let (field, v) = match (obj.get("label"), obj.get("answer")) {
                (Some(v), _) => ("label", v),
                (None, Some(v)) => ("answer", v),
                (None, None) => {
                    return Err(ImportError::field(
                        &path,
                        at,
                        "label",
                        "missing (nor `answer`)",
                    ))
                }
            };
            let yes = match v {
                Value::Bool(b) => *b,
                Value::Number(n) if n.as_u64() == Some(1) => true,
                Value::Number(n) if n.as_u64() == Some(0) => false,
                Value::String(s) if s.eq_ignore_ascii_case("true") => true,
                Value::String(s) if s.eq_ignore_ascii_case("false") => false,
                other => {
                    return Err(ImportError::field(
                        &path,
                        at,
                        field,
                        format!("must be true/false (boolean, 0/1 or string), found {other}"),
                    ))
                }
            };
            let idx = obj.get("idx").and_then(Value::as_u64).unwrap_or(i as u64);
            Ok(Item {
                id: format!("boolq/{idx}"),
                input: str_field(&obj, "question", &path, &at)?,
                context: Some(str_field(&obj, "passage", &path, &at)?),
                choices: vec!["no".into(), "yes".into()],
                gold: Some(usize::from(yes)),
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
    fn three_layouts() {
        let (_d, p) = write(
            "val.jsonl",
            br#"{"question": "does ethanol take more energy", "passage": "Ethanol fuel -- ...", "idx": 0, "label": "false"}
{"question": "q2", "passage": "p2", "idx": 1, "label": true}
{"question": "q3", "title": "t", "answer": true, "passage": "p3"}
{"question": "q4", "passage": "p4", "idx": 7, "label": 0}
"#,
        );
        let items = import(p.parent().unwrap()).unwrap();
        assert_eq!(items[0].id, "boolq/0");
        assert_eq!(items[0].context.as_deref(), Some("Ethanol fuel -- ..."));
        assert_eq!(items[0].choices, ["no", "yes"]);
        assert_eq!(items[0].gold, Some(0));
        assert_eq!(items[1].gold, Some(1));
        assert_eq!(items[2].gold, Some(1));
        assert_eq!(items[2].id, "boolq/2");
        assert_eq!(items[3].gold, Some(0));
        assert_eq!(items[3].id, "boolq/7");
    }

    #[test]
    fn bad_label() {
        let (_d, p) = write(
            "val.jsonl",
            br#"{"question": "q", "passage": "p", "label": "maybe"}"#,
        );
        let e = import(&p).unwrap_err().to_string();
        assert!(e.contains("val.jsonl:1: field `label`"), "{e}");
    }
}

//! ARC (AI2 Reasoning Challenge, Clark et al. 2018), ARC-V1-Feb2018 JSONL
//! `{id, question: {stem, choices: [{text, label}]}, answerKey}`.
//!
//! Mirrors lm-evaluation-harness `lm_eval/tasks/arc/arc_easy.yaml` (arc_challenge includes
//! it): `doc_to_text: "Question: {{question}}\nAnswer:"`, `doc_to_choice: "{{choices.text}}"`,
//! `doc_to_target: "{{choices.label.index(answerKey)}}"`. So input = stem, choices = the
//! choice texts in file order, gold = the position of the choice whose `label` equals
//! `answerKey`. Labels may be `A`..`E` or `1`..`5` (22 Challenge-test items); a few items
//! have 3 or 5 choices. If no label matches, a letter/number key is mapped by position
//! (lm-eval's older `num_to_letter` conversion), otherwise the item is an error.
//! id = the record's `id`.

use std::path::Path;

use serde_json::Value;

use super::{read_jsonl, str_field, ImportError, Loc};
use crate::suite::item::Item;

/// ARC-Easy: `ARC-Easy-Test.jsonl` (or any ARC JSONL file), or the `arc/` folder.
pub fn import_easy(path: &Path) -> Result<Vec<Item>, ImportError> {
    import(&super::resolve(
        path,
        &["ARC-Easy-Test.jsonl", "ARC-Easy/ARC-Easy-Test.jsonl"],
    )?)
}

/// ARC-Challenge: `ARC-Challenge-Test.jsonl` (or any ARC JSONL file), or the `arc/` folder.
pub fn import_challenge(path: &Path) -> Result<Vec<Item>, ImportError> {
    import(&super::resolve(
        path,
        &[
            "ARC-Challenge-Test.jsonl",
            "ARC-Challenge/ARC-Challenge-Test.jsonl",
        ],
    )?)
}

/// One ARC JSONL file.
pub fn import(path: &Path) -> Result<Vec<Item>, ImportError> {
    read_jsonl(path)?
        .into_iter()
        .map(|(line, obj)| {
            let at = Loc::Line(line);
            let id = str_field(&obj, "id", path, &at)?;
            let key = str_field(&obj, "answerKey", path, &at)?;
            let q = match obj.get("question") {
                Some(Value::Object(q)) => q,
                _ => {
                    return Err(ImportError::field(
                        path,
                        at,
                        "question",
                        "must be an object",
                    ))
                }
            };
            let stem = str_field(q, "stem", path, &at).map_err(|_| {
                ImportError::field(path, at.clone(), "question.stem", "missing or not a string")
            })?;
            let raw = match q.get("choices") {
                Some(Value::Array(a)) if !a.is_empty() => a,
                _ => {
                    return Err(ImportError::field(
                        path,
                        at,
                        "question.choices",
                        "must be a non-empty list",
                    ))
                }
            };
            let mut choices = Vec::with_capacity(raw.len());
            let mut labels = Vec::with_capacity(raw.len());
            for c in raw {
                let (Some(text), Some(label)) = (
                    c.get("text").and_then(Value::as_str),
                    c.get("label").and_then(Value::as_str),
                ) else {
                    return Err(ImportError::field(
                        path,
                        at,
                        "question.choices",
                        "each choice needs string `text` and `label`",
                    ));
                };
                choices.push(text.to_string());
                labels.push(label.to_string());
            }
            let gold = labels
                .iter()
                .position(|l| *l == key)
                .or_else(|| positional(&key).filter(|&i| i < choices.len()))
                .ok_or_else(|| {
                    ImportError::field(
                        path,
                        at.clone(),
                        "answerKey",
                        format!("`{key}` matches no choice label ({})", labels.join(", ")),
                    )
                })?;
            Ok(Item {
                id,
                input: stem,
                choices,
                gold: Some(gold),
                ..Item::default()
            })
        })
        .collect()
}

/// `A`→0 … `E`→4, `1`→0 … `5`→4.
fn positional(key: &str) -> Option<usize> {
    match key {
        "A" | "1" => Some(0),
        "B" | "2" => Some(1),
        "C" | "3" => Some(2),
        "D" | "4" => Some(3),
        "E" | "5" => Some(4),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::import::testutil::write;

    #[test]
    fn letter_and_numeric_labels() {
        let (_d, p) = write(
            "ARC-Challenge-Test.jsonl",
            br#"{"id":"Mercury_7175875","question":{"stem":"Which effect?","choices":[{"text":"a","label":"A"},{"text":"b","label":"B"},{"text":"c","label":"C"},{"text":"d","label":"D"}]},"answerKey":"C"}
{"id":"NYSEDREGENTS_2015_4_8","question":{"stem":"Num?","choices":[{"text":"w","label":"1"},{"text":"x","label":"2"},{"text":"y","label":"3"}]},"answerKey":"2"}
{"id":"five","question":{"stem":"Five?","choices":[{"text":"1","label":"A"},{"text":"2","label":"B"},{"text":"3","label":"C"},{"text":"4","label":"D"},{"text":"5","label":"E"}]},"answerKey":"E"}
"#,
        );
        let items = import_challenge(p.parent().unwrap()).unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(items[0].id, "Mercury_7175875");
        assert_eq!(items[0].input, "Which effect?");
        assert_eq!(items[0].choices, ["a", "b", "c", "d"]);
        assert_eq!(items[0].gold, Some(2));
        assert_eq!(items[1].gold, Some(1));
        assert_eq!(items[1].choices.len(), 3);
        assert_eq!(items[2].gold, Some(4));
        // the Easy file is not in this folder
        assert!(matches!(
            import_easy(p.parent().unwrap()),
            Err(ImportError::MissingFile { .. })
        ));
    }

    #[test]
    fn unmatched_key_is_an_error() {
        let (_d, p) = write(
            "a.jsonl",
            br#"{"id":"x","question":{"stem":"s","choices":[{"text":"a","label":"A"}]},"answerKey":"Z"}"#,
        );
        let e = import(&p).unwrap_err().to_string();
        assert!(e.contains("a.jsonl:1: field `answerKey`"), "{e}");
    }
}

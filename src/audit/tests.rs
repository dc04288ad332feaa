use super::*;
use crate::model::Message;

pub(crate) fn pc(line: usize, prompt: &str, completion: &str) -> Sample {
    Sample {
        line,
        record: Record::PromptCompletion {
            prompt: prompt.into(),
            completion: completion.into(),
        },
        task: None,
    }
}

pub(crate) fn text(line: usize, t: &str) -> Sample {
    Sample {
        line,
        record: Record::Text(t.into()),
        task: None,
    }
}

fn chat(line: usize, turns: &[(&str, &str)]) -> Sample {
    Sample {
        line,
        record: Record::Messages(
            turns
                .iter()
                .map(|(r, c)| Message {
                    role: r.to_string(),
                    content: c.to_string(),
                })
                .collect(),
        ),
        task: Some("chat".into()),
    }
}

fn sample_set() -> Vec<Sample> {
    vec![
        pc(1, "What is 2 + 3?", "5"),
        pc(2, "What is 10 + 4?", "14"),
        pc(3, "What is 2 + 3?", "6"), // conflict with line 1
        pc(4, "Name a fruit", "apple"),
        pc(5, "Name a fruit", "apple"), // exact duplicate of line 4
        pc(6, "", "orphan"),            // empty prompt
        chat(
            7,
            &[
                ("system", "Be brief."),
                ("user", "Hi"),
                ("assistant", "Hello!"),
            ],
        ),
        text(8, "Some plain pretraining text goes here."),
    ]
}

#[test]
fn audit_counts_every_check() {
    let s = sample_set();
    let r = audit(
        "d.jsonl",
        &s,
        &AuditOptions {
            threads: 2,
            ..AuditOptions::default()
        },
        None,
    )
    .unwrap();
    assert_eq!(r.schema_version, SCHEMA_VERSION);
    assert_eq!(r.records, 8);
    assert_eq!(r.formats["prompt/completion"], 6);
    assert_eq!(r.formats["messages"], 1);
    assert_eq!(r.formats["text"], 1);
    assert_eq!(
        (
            r.exact_duplicates.groups,
            r.exact_duplicates.duplicate_records
        ),
        (1, 1)
    );
    assert!(r.near_duplicates.removable >= 1);
    assert_eq!(
        (
            r.conflicts.prompts,
            r.conflicts.records,
            r.conflicts.repeated_prompts
        ),
        (1, 2, 2)
    );
    assert_eq!(
        (
            r.empty.empty_prompts,
            r.empty.empty_responses,
            r.empty.lines.clone()
        ),
        (1, 0, vec![6])
    );
    // 6 non-empty prompts; "What is <NUM> + <NUM>?" thrice.
    assert_eq!(r.templates.prompts, 6);
    assert_eq!(r.templates.top[0].records, 3);
    assert_eq!(r.lengths.prompt.as_ref().unwrap().count, 7);
    assert_eq!(r.lengths.response.as_ref().unwrap().count, 8);
    assert!(r.lengths.prompt.as_ref().unwrap().tokens.is_none());
    assert_eq!(r.diversity.prompt.as_ref().unwrap().texts, 7);
    let tasks = r.tasks.as_ref().unwrap();
    assert_eq!(
        (
            tasks.tasks[0].task.as_str(),
            tasks.tasks[0].records,
            tasks.untagged
        ),
        ("chat", 1, 7)
    );
    assert!(r.over_long.is_none() && r.checks.is_empty() && r.passed);
}

#[test]
fn limits_pass_and_fail() {
    let s = sample_set();
    let limits = Limits {
        max_duplicate_rate: Some(0.2),      // 1/8 passes
        max_conflicts: Some(0),             // 1 fails
        max_empty: Some(1),                 // 1 passes
        max_template_share: Some(0.4),      // 3/6 fails
        min_distinct_2: Some(0.01),         // passes
        max_near_duplicate_rate: Some(0.0), // fails
        max_over_long: Some(0),             // 1 fails (line 8: 38 chars > 30)
    };
    let opts = AuditOptions {
        limits,
        max_chars: Some(30),
        ..AuditOptions::default()
    };
    let r = audit("d.jsonl", &s, &opts, None).unwrap();
    assert_eq!(r.checks.len(), 7);
    let failed: Vec<&str> = r.violations.iter().map(|c| c.limit.as_str()).collect();
    assert_eq!(
        failed,
        [
            "max-near-duplicate-rate",
            "max-conflicts",
            "max-template-share",
            "max-over-long"
        ]
    );
    assert!(!r.passed);
    assert_eq!(r.over_long.as_ref().unwrap().top[0].line, 8);
    assert!(
        r.violations[1]
            .message
            .contains("1 prompt with conflicting responses"),
        "{}",
        r.violations[1].message
    );
}

#[test]
fn min_distinct_2_uses_texts_for_text_data_and_fails_without_pairs() {
    let opts = |m| AuditOptions {
        limits: Limits {
            min_distinct_2: Some(m),
            ..Limits::default()
        },
        ..AuditOptions::default()
    };
    let s = vec![text(1, "a b c"), text(2, "a b c")];
    let r = audit("t", &s, &opts(0.5), None).unwrap();
    assert!(r.diversity.prompt.is_none());
    assert!(r.passed, "{:?}", r.checks); // 2 unique of 4 bigrams = 0.5
    assert!(!audit("t", &s, &opts(0.6), None).unwrap().passed);
    let s = vec![pc(1, "one", "x y"), pc(2, "two", "x y")];
    let r = audit("t", &s, &opts(0.1), None).unwrap();
    assert!(
        !r.passed && r.violations[0].message.contains("undefined"),
        "{:?}",
        r.violations
    );
}

#[test]
fn options_are_validated() {
    let s = sample_set();
    let bad = [
        AuditOptions {
            near_threshold: 0.0,
            ..AuditOptions::default()
        },
        AuditOptions {
            near_threshold: 1.5,
            ..AuditOptions::default()
        },
        AuditOptions {
            num_perm: 0,
            ..AuditOptions::default()
        },
        AuditOptions {
            max_tokens: Some(10),
            ..AuditOptions::default()
        },
        AuditOptions {
            limits: Limits {
                max_over_long: Some(0),
                ..Limits::default()
            },
            ..AuditOptions::default()
        },
        AuditOptions {
            limits: Limits {
                max_template_share: Some(-0.1),
                ..Limits::default()
            },
            ..AuditOptions::default()
        },
    ];
    for o in bad {
        assert!(
            matches!(audit("d", &s, &o, None), Err(AuditError::Options(_))),
            "{o:?}"
        );
    }
}

#[test]
fn token_lengths_with_a_tokenizer() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/llama");
    let tok = Tokenizer::from_dir(&dir).unwrap();
    let s = sample_set();
    let opts = AuditOptions {
        max_tokens: Some(5),
        threads: 3,
        ..AuditOptions::default()
    };
    let r = audit("d", &s, &opts, Some(&tok)).unwrap();
    let p = r.lengths.prompt.as_ref().unwrap().tokens.as_ref().unwrap();
    assert_eq!(p.min, 0); // the empty prompt
    let expect = tok
        .encode("Some plain pretraining text goes here.", false)
        .unwrap()
        .len();
    assert_eq!(
        r.lengths
            .response
            .as_ref()
            .unwrap()
            .tokens
            .as_ref()
            .unwrap()
            .max,
        expect
    );
    let o = r.over_long.as_ref().unwrap();
    assert!(o.records >= 1 && o.top.iter().all(|x| x.tokens.unwrap() > 5));
    assert!(r.tokenizer.is_some());
}

#[test]
fn record_key_and_text() {
    assert_ne!(
        record_key(&pc(1, "ab", "c").record),
        record_key(&pc(1, "a", "bc").record)
    );
    assert_eq!(record_text(&pc(1, "a", "b").record), "a\nb");
    assert_eq!(rate(1, 0), 0.0);
}

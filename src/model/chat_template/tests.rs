use super::python::py_float_repr;
use super::time::strftime_utc;
use super::*;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn expected() -> serde_json::Value {
    let path = fixtures().join("expected/chat_templates.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("chat_templates.json is valid JSON")
}

/// Compares one rendering with the reference entry (`output`, `error` from raise_exception,
/// or `render_error` for any other jinja2 error); returns a failure description.
fn check(
    template: &ChatTemplate,
    label: &str,
    messages: &serde_json::Value,
    add_generation_prompt: bool,
    case: &serde_json::Value,
) -> Option<String> {
    let extra = case["extra"].as_object().cloned().unwrap_or_default();
    let got = template.render_json(messages, add_generation_prompt, &extra);
    if let Some(want) = case.get("output").and_then(|v| v.as_str()) {
        match got {
            Ok(got) if got == want => None,
            Ok(got) => Some(format!(
                "{label}: output differs\n  want {want:?}\n  got  {got:?}"
            )),
            Err(e) => Some(format!("{label}: want output {want:?}, got error {e}")),
        }
    } else if let Some(want) = case.get("error").and_then(|v| v.as_str()) {
        match got {
            Err(ChatTemplateError::Raised { message, .. }) if message == want => None,
            other => Some(format!(
                "{label}: want raise_exception({want:?}), got {other:?}"
            )),
        }
    } else if let Some(want) = case.get("render_error").and_then(|v| v.as_str()) {
        match got {
            Err(ChatTemplateError::Render { .. }) => None,
            other => Some(format!(
                "{label}: want a render error like {want:?}, got {other:?}"
            )),
        }
    } else {
        Some(format!("{label}: reference entry has no result"))
    }
}

#[test]
fn published_templates_match_transformers() {
    let expected = expected();
    let templates = expected["templates"].as_object().expect("templates");
    let dir = fixtures().join("templates");
    // Every template in the fixture directory must have reference renderings.
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".jinja"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let mut missing: Vec<&String> = files
        .iter()
        .filter(|f| !templates.contains_key(*f))
        .collect();
    missing.sort();
    assert!(
        missing.is_empty(),
        "no reference renderings for {missing:?}; rerun tests/fixtures/chat_reference.py"
    );

    let mut failures = Vec::new();
    let mut checked = 0;
    for (file, entry) in templates {
        let path = dir.join(file);
        let source = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let mut template = ChatTemplate::new(python_universal_newlines(&source), None, None, path)
            .unwrap_or_else(|e| panic!("{file} does not compile: {e}"));
        for (name, token) in entry["special_tokens"].as_object().expect("special_tokens") {
            template = template.with_special_token(name, token.as_str().expect("token"));
        }
        for case in entry["cases"].as_array().expect("cases") {
            let label = format!("{file}/{}", case["name"].as_str().unwrap_or("?"));
            let add_gen = case["add_generation_prompt"]
                .as_bool()
                .expect("add_generation_prompt");
            failures.extend(check(&template, &label, &case["messages"], add_gen, case));
            checked += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} cases differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn snippets_match_jinja2() {
    let expected = expected();
    let messages = &expected["snippet_messages"];
    let tokens = expected["snippet_special_tokens"]
        .as_object()
        .expect("tokens");
    let mut failures = Vec::new();
    let snippets = expected["snippets"].as_array().expect("snippets");
    for case in snippets {
        let name = case["name"].as_str().unwrap_or("?");
        let source = case["template"].as_str().expect("template").to_string();
        let template =
            match ChatTemplate::new(source, None, None, PathBuf::from(format!("{name}.jinja"))) {
                Ok(t) => t,
                Err(e) => {
                    failures.push(format!("{name}: does not compile: {e}"));
                    continue;
                }
            };
        let template = tokens.iter().fold(template, |t, (n, v)| {
            t.with_special_token(n, v.as_str().expect("token"))
        });
        failures.extend(check(&template, name, messages, false, case));
    }
    assert!(
        failures.is_empty(),
        "{} of {} snippets differ:\n{}",
        failures.len(),
        snippets.len(),
        failures.join("\n")
    );
}

#[test]
fn strftime_matches_python() {
    let expected = expected();
    for case in expected["strftime"].as_array().expect("strftime") {
        let ts = case["timestamp"].as_i64().expect("timestamp");
        let format = case["format"].as_str().expect("format");
        assert_eq!(
            strftime_utc(format, ts),
            case["output"].as_str().expect("output"),
            "strftime({format:?}) at {ts}"
        );
    }
}

#[test]
fn float_repr_matches_python() {
    let expected = expected();
    for case in expected["float_repr"].as_array().expect("float_repr") {
        let value = case["value"].as_f64().expect("value");
        assert_eq!(
            py_float_repr(value),
            case["repr"].as_str().expect("repr"),
            "repr({value:e})"
        );
    }
}

fn origin() -> PathBuf {
    PathBuf::from("models/demo/chat_template.jinja")
}

#[test]
fn syntax_error_names_file_and_line() {
    let err = ChatTemplate::new(
        "hello\n{% if messages %}\nunclosed".into(),
        None,
        None,
        origin(),
    )
    .unwrap_err();
    match &err {
        ChatTemplateError::Syntax {
            origin: o, line, ..
        } => {
            assert_eq!(o, &origin());
            assert_eq!(*line, Some(3));
        }
        other => panic!("want a syntax error, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("models/demo/chat_template.jinja"), "{text}");
    assert!(text.contains("line 3"), "{text}");

    let err = ChatTemplate::new("{{ 'bad \\x4' }}".into(), None, None, origin()).unwrap_err();
    assert!(
        matches!(err, ChatTemplateError::Syntax { line: Some(1), .. }),
        "{err:?}"
    );
}

#[test]
fn render_error_keeps_original_line_numbers() {
    // The backslash-newline inside the literal is rewritten away, yet the failing tag is
    // still reported on line 4 of the original source.
    let t = ChatTemplate::new(
        "{% set a = 'x\\\ny' %}\n{{ a }}\n{{ nope.attr }}".into(),
        None,
        None,
        origin(),
    )
    .unwrap();
    match t.render(&[Message::new("user", "hi")], false) {
        Err(ChatTemplateError::Render { line, message, .. }) => {
            assert_eq!(line, Some(4), "{message}");
        }
        other => panic!("want a render error, got {other:?}"),
    }
}

#[test]
fn raise_exception_is_a_distinct_variant() {
    let src = "{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{{ m.content }}{% endfor %}";
    let t = ChatTemplate::new(src.into(), None, None, origin()).unwrap();
    assert_eq!(
        t.render(&[Message::new("user", "hi")], false).unwrap(),
        "hi"
    );
    let err = t
        .render(
            &[Message::new("system", "s"), Message::new("user", "hi")],
            false,
        )
        .unwrap_err();
    match &err {
        ChatTemplateError::Raised { message, origin: o } => {
            assert_eq!(message, "System role not supported");
            assert_eq!(o, &origin());
        }
        other => panic!("want Raised, got {other:?}"),
    }
    assert!(err.to_string().contains("chat_template.jinja"));
}

#[test]
fn render_passes_tokens_flags_and_extra_kwargs() {
    let src = "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}{% if tools is not none %}{{ tools|tojson }}{% endif %}{{ custom }}";
    let t = ChatTemplate::new(
        src.into(),
        Some("<s>".into()),
        Some("</s>".into()),
        origin(),
    )
    .unwrap();
    let msgs = [Message::new("user", "a & <b>")];
    assert_eq!(
        t.render(&msgs, true).unwrap(),
        "<s><user>a & <b></s><assistant>"
    );
    assert_eq!(t.render(&msgs, false).unwrap(), "<s><user>a & <b></s>");
    let mut extra = Map::new();
    extra.insert(
        "tools".into(),
        serde_json::json!([{"name": "f", "a<": "é"}]),
    );
    extra.insert("custom".into(), serde_json::json!("!"));
    extra.insert("eos_token".into(), serde_json::json!("<end>"));
    let out = t
        .render_json(
            &serde_json::json!([{"role": "user", "content": "x", "skip": null}]),
            false,
            &extra,
        )
        .unwrap();
    assert_eq!(out, "<s><user>x<end>[{\"name\": \"f\", \"a<\": \"é\"}]!");

    // apply_chat_template refuses empty conversations and non-dict messages.
    assert!(matches!(
        t.render(&[], true),
        Err(ChatTemplateError::InvalidInput { .. })
    ));
    assert!(matches!(
        t.render_json(&serde_json::json!(["hi"]), true, &Map::new()),
        Err(ChatTemplateError::InvalidInput { .. })
    ));
    let mut bad = Map::new();
    bad.insert("messages".into(), serde_json::json!([]));
    assert!(t
        .render_json(&serde_json::json!([{"role": "user"}]), true, &bad)
        .is_err());
    assert_eq!(t.source(), src);
    assert_eq!(t.origin(), origin().as_path());
}

#[test]
fn reasoning_fields_are_aliased_like_transformers() {
    let t = ChatTemplate::new(
        "{% for m in messages %}{{ m|tojson }}{% endfor %}".into(),
        None,
        None,
        origin(),
    )
    .unwrap();
    let msgs = serde_json::json!([
        {"role": "assistant", "content": "a", "reasoning": "r"},
        {"role": "assistant", "thinking": "t", "content": "b", "reasoning_content": "rc"},
    ]);
    assert_eq!(
        t.render_json(&msgs, false, &Map::new()).unwrap(),
        "{\"thinking\": \"r\", \"role\": \"assistant\", \"content\": \"a\", \"reasoning\": \"r\", \"reasoning_content\": \"r\"}\
         {\"thinking\": \"t\", \"role\": \"assistant\", \"content\": \"b\", \"reasoning_content\": \"rc\"}"
    );
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn from_dir_reads_config_and_jinja_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(
        ChatTemplate::from_dir(d).unwrap().is_none(),
        "no files, no template"
    );

    write(
        d,
        "tokenizer_config.json",
        r#"{"bos_token": {"__type": "AddedToken", "content": "<|bos|>", "special": true},
        "eos_token": "<|eos|>", "pad_token": null, "added_tokens_decoder": {}, "image_token": "<img>",
        "chat_template": "{{ bos_token }}{{ messages[0].content }}{{ eos_token }}|{{ pad_token is defined }}|{{ image_token }}"}"#,
    );
    let t = ChatTemplate::from_dir(d)
        .unwrap()
        .expect("template from config");
    assert_eq!(t.origin(), d.join("tokenizer_config.json"));
    // Model-specific `*_token`s are part of transformers' special_tokens_map too.
    assert_eq!(
        t.render(&[Message::new("user", "hi")], false).unwrap(),
        "<|bos|>hi<|eos|>|False|<img>"
    );

    // special_tokens_map.json is ignored when the config has added_tokens_decoder...
    write(
        d,
        "special_tokens_map.json",
        r#"{"eos_token": {"content": "<|map_eos|>"}, "pad_token": "<pad>"}"#,
    );
    let t = ChatTemplate::from_dir(d).unwrap().unwrap();
    assert_eq!(
        t.render(&[Message::new("user", "hi")], false).unwrap(),
        "<|bos|>hi<|eos|>|False|<img>"
    );
    // ...and overrides it otherwise (transformers' legacy path).
    write(
        d,
        "tokenizer_config.json",
        r#"{"bos_token": "<|bos|>", "eos_token": "<|eos|>",
        "chat_template": [{"name": "tool_use", "template": "tools"}, {"name": "default", "template": "{{ eos_token }}{{ pad_token }}"}]}"#,
    );
    let t = ChatTemplate::from_dir(d).unwrap().unwrap();
    assert_eq!(
        t.render(&[Message::new("user", "hi")], false).unwrap(),
        "<|map_eos|><pad>"
    );
    assert_eq!(
        t.special_tokens(),
        &[
            ("bos_token".to_string(), "<|bos|>".to_string()),
            ("eos_token".to_string(), "<|map_eos|>".to_string()),
            ("pad_token".to_string(), "<pad>".to_string()),
        ]
    );

    // chat_template.jinja wins (read like Python's text mode: CRLF becomes LF).
    write(
        d,
        "chat_template.jinja",
        "jinja:{% for m in messages %}\r\n{{ m.content }}{% endfor %}\r\n",
    );
    let t = ChatTemplate::from_dir(d).unwrap().unwrap();
    assert_eq!(t.origin(), d.join("chat_template.jinja"));
    assert_eq!(
        t.render(&[Message::new("user", "hi")], false).unwrap(),
        "jinja:hi"
    );
}

#[test]
fn from_dir_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "tokenizer_config.json", "{ not json");
    let err = ChatTemplate::from_dir(d).unwrap_err();
    assert!(matches!(err, ChatTemplateError::Json { .. }), "{err:?}");
    assert!(err.to_string().contains("tokenizer_config.json"), "{err}");

    write(
        d,
        "tokenizer_config.json",
        r#"{"chat_template": [{"name": "a", "template": "x"}, {"name": "b", "template": "y"}]}"#,
    );
    let err = ChatTemplate::from_dir(d).unwrap_err();
    assert!(err.to_string().contains("no default"), "{err}");
    assert!(err.to_string().contains("tokenizer_config.json"), "{err}");

    write(
        d,
        "tokenizer_config.json",
        r#"{"chat_template": "{% for %}"}"#,
    );
    let err = ChatTemplate::from_dir(d).unwrap_err();
    assert!(
        matches!(err, ChatTemplateError::Syntax { line: Some(1), .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("tokenizer_config.json"), "{err}");
}

#[test]
fn message_round_trips_through_serde() {
    let m = Message::new("user", "hi");
    let json = serde_json::to_string(&m).unwrap();
    assert_eq!(json, r#"{"role":"user","content":"hi"}"#);
    assert_eq!(serde_json::from_str::<Message>(&json).unwrap(), m);
}

/// The fixture models under tests/fixtures/models/ carry their own chat template; their
/// expected/<variant>.json has `apply_chat_template` renderings computed by transformers.
#[test]
fn fixture_models_render_like_apply_chat_template() {
    let models = fixtures().join("models");
    let Ok(entries) = std::fs::read_dir(&models) else {
        return;
    };
    let mut failures = Vec::new();
    let mut checked = 0;
    let mut dirs: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    dirs.sort();
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let expected_path = fixtures().join("expected").join(format!("{name}.json"));
        let Ok(text) = std::fs::read_to_string(&expected_path) else {
            continue;
        };
        let expected: serde_json::Value = serde_json::from_str(&text).unwrap();
        let cases = expected["chat"].as_array().cloned().unwrap_or_default();
        let template = ChatTemplate::from_dir(&dir).unwrap_or_else(|e| panic!("{name}: {e}"));
        let Some(template) = template else {
            assert!(
                cases.is_empty(),
                "{name}: reference renderings but no template found"
            );
            continue;
        };
        for (i, case) in cases.iter().enumerate() {
            let mut extra = Map::new();
            if let Some(tools) = case.get("tools") {
                extra.insert("tools".into(), tools.clone());
            }
            let add_gen = case["add_generation_prompt"].as_bool().unwrap();
            let got = template.render_json(&case["messages"], add_gen, &extra);
            checked += 1;
            match (case.get("rendered").and_then(|v| v.as_str()), got) {
                (Some(want), Ok(got)) if got == want => {}
                (None, Err(ChatTemplateError::Raised { message, .. }))
                    if case["error"].as_str() == Some(message.as_str()) => {}
                (_, got) => failures.push(format!(
                    "{name}[{i}]: want {:?}\n  got {got:?}",
                    case.get("rendered").or(case.get("error"))
                )),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

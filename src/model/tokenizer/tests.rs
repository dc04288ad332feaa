use super::*;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Every fixture model (tests/fixtures/models/<variant>/ with a tokenizer.json) and its
/// reference file tests/fixtures/expected/<variant>.json, computed by transformers.
fn fixture_variants() -> Vec<(String, PathBuf, Value)> {
    let models = fixtures().join("models");
    let Ok(entries) = std::fs::read_dir(&models) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let dir = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let expected = fixtures().join("expected").join(format!("{name}.json"));
        if !dir.join(TOKENIZER_FILE).is_file() || !expected.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&expected).unwrap();
        out.push((name, dir, serde_json::from_str(&text).unwrap()));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn ids_of(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("ids")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

#[test]
fn fixture_models_match_transformers() {
    let variants = fixture_variants();
    let mut failures = Vec::new();
    let mut checked = 0;
    for (name, dir, expected) in &variants {
        let tok = Tokenizer::from_dir(dir).unwrap_or_else(|e| panic!("{name}: {e}"));
        for case in expected["tokenization"].as_array().into_iter().flatten() {
            let text = case["text"].as_str().unwrap();
            let want = ids_of(&case["ids"]);
            checked += 1;
            match tok.encode(text, true) {
                Ok(got) if got == want => {}
                other => failures.push(format!(
                    "{name}: encode({text:?}) = {other:?}, want {want:?}"
                )),
            }
            let (ids, offsets) = tok.encode_with_offsets(text, true).unwrap();
            if ids != want {
                failures.push(format!(
                    "{name}: encode_with_offsets({text:?}) ids {ids:?}, want {want:?}"
                ));
            }
            assert_eq!(ids.len(), offsets.len());
            for &(start, end) in &offsets {
                assert!(
                    start <= end && end <= text.len(),
                    "{name}: offset {start}..{end} in {text:?}"
                );
                assert!(
                    text.is_char_boundary(start) && text.is_char_boundary(end),
                    "{name}: {text:?}"
                );
            }
            if text.is_empty() {
                // transformers adds exactly the BOS to "" when its post-processor does.
                let bos = tok.bos_token().and_then(|b| tok.token_to_id(b));
                assert_eq!(
                    tok.adds_bos(),
                    bos.is_some() && want == vec![bos.unwrap()],
                    "{name}: adds_bos"
                );
            }
        }
        for case in expected["decode"].as_array().into_iter().flatten() {
            let ids = ids_of(&case["ids"]);
            let skip = case["skip_special_tokens"].as_bool().unwrap();
            let want = case["text"].as_str().unwrap();
            checked += 1;
            match tok.decode(&ids, skip) {
                Ok(got) if got == want => {}
                other => failures.push(format!(
                    "{name}: decode({ids:?}, {skip}) = {other:?}, want {want:?}"
                )),
            }
        }
        for (_, token, id) in tok.special_tokens() {
            if let Some(id) = id {
                assert_eq!(
                    tok.id_to_token(id).as_deref(),
                    Some(token.as_str()),
                    "{name}"
                );
            }
        }
        assert!(tok.vocab_size() > 0 && tok.vocab_size() >= tok.inner().get_vocab_size(true));
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} checks differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A WordLevel tokenizer whose tokenizer.json pads and truncates, whose post-processor adds
/// `<s>`, and whose config names tokens tokenizer.json lacks. Expected values were computed
/// with transformers 5.24 (`AutoTokenizer.from_pretrained` on the same files).
const TINY_TOKENIZER: &str = r#"{"version": "1.0",
 "truncation": {"direction": "Right", "max_length": 3, "strategy": "LongestFirst", "stride": 0},
 "padding": {"strategy": {"Fixed": 8}, "direction": "Right", "pad_to_multiple_of": null, "pad_id": 9, "pad_type_id": 0, "pad_token": "<pad>"},
 "added_tokens": [{"id": 0, "content": "<unk>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
              {"id": 1, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}],
 "normalizer": {"type": "Lowercase"}, "pre_tokenizer": {"type": "Whitespace"},
 "post_processor": {"type": "TemplateProcessing",
   "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
   "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
   "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
 "decoder": null,
 "model": {"type": "WordLevel", "vocab": {"<unk>": 0, "<s>": 1, "hello": 2, "world": 3, ",": 4, ".": 5, "don": 6, "'": 7, "t": 8, "<pad>": 9, "</s>": 10}, "unk_token": "<unk>"}}"#;

const TINY_CONFIG: &str = r#"{"tokenizer_class": "PreTrainedTokenizerFast", "add_bos_token": false, "add_eos_token": true,
 "bos_token": "<s>", "eos_token": {"__type": "AddedToken", "content": "</s>", "special": true, "normalized": false},
 "unk_token": "<unk>", "image_token": "<image>", "clean_up_tokenization_spaces": true,
 "extra_special_tokens": ["<extra>"]}"#;

fn tiny_dir(config: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(TOKENIZER_FILE), TINY_TOKENIZER).unwrap();
    if let Some(config) = config {
        std::fs::write(dir.path().join(CONFIG_FILE), config).unwrap();
    }
    dir
}

#[test]
fn tiny_tokenizer_matches_transformers() {
    let dir = tiny_dir(Some(TINY_CONFIG));
    let tok = Tokenizer::from_dir(dir.path()).unwrap();
    // Truncation (3) and padding (8) from tokenizer.json are off; add_bos_token=false is
    // ignored because the post-processor adds <s>.
    assert_eq!(
        tok.encode("Hello, world.", true).unwrap(),
        vec![1, 2, 4, 3, 5]
    );
    assert_eq!(
        tok.encode("Hello, world.", false).unwrap(),
        vec![2, 4, 3, 5]
    );
    assert_eq!(tok.encode("", true).unwrap(), vec![1]);
    assert!(tok.adds_bos());
    // </s> (in the vocab) and the config-only <image>/<extra> become special added tokens.
    let (ids, offsets) = tok
        .encode_with_offsets("hello <image> world</s> <extra>", true)
        .unwrap();
    assert_eq!(ids, vec![1, 2, 11, 3, 10, 12]);
    assert_eq!(
        offsets,
        vec![(0, 0), (0, 5), (6, 13), (14, 19), (19, 23), (24, 31)]
    );
    let (ids, offsets) = tok.encode_with_offsets("HELLO don't", true).unwrap();
    assert_eq!(ids, vec![1, 2, 6, 7, 8]);
    assert_eq!(offsets, vec![(0, 0), (0, 5), (6, 9), (9, 10), (10, 11)]);
    // clean_up_tokenization_spaces applies (the model is not BPE).
    assert_eq!(
        tok.decode(&[1, 2, 4, 3, 5], false).unwrap(),
        "<s> hello, world."
    );
    assert_eq!(tok.decode(&[1, 2, 4, 3, 5], true).unwrap(), "hello, world.");
    assert_eq!(
        tok.decode(&[2, 11, 10, 12, 6, 7, 8], true).unwrap(),
        "hello don't"
    );
    assert_eq!(
        tok.decode(&[2, 11, 10, 12, 6, 7, 8], false).unwrap(),
        "hello <image> </s> <extra> don't"
    );
    assert_eq!(tok.vocab_size(), 13);
    assert_eq!(tok.bos_token(), Some("<s>"));
    assert_eq!(tok.eos_token(), Some("</s>"));
    assert_eq!(tok.unk_token(), Some("<unk>"));
    assert_eq!(
        tok.pad_token(),
        Some("<pad>"),
        "pad_token comes from tokenizer.json's padding"
    );
    assert_eq!(
        tok.special_tokens(),
        vec![
            ("bos_token".to_string(), "<s>".to_string(), Some(1)),
            ("eos_token".to_string(), "</s>".to_string(), Some(10)),
            ("unk_token".to_string(), "<unk>".to_string(), Some(0)),
            ("pad_token".to_string(), "<pad>".to_string(), Some(9)),
            ("image_token".to_string(), "<image>".to_string(), Some(11)),
        ]
    );
    assert_eq!(tok.token_to_id("<extra>"), Some(12));
    assert_eq!(tok.id_to_token(11).as_deref(), Some("<image>"));
    assert_eq!(tok.path(), dir.path().join(TOKENIZER_FILE));
}

#[test]
fn tokenizer_without_config_and_legacy_special_tokens_map() {
    let dir = tiny_dir(None);
    let tok = Tokenizer::from_dir(dir.path()).unwrap();
    assert_eq!(tok.bos_token(), None);
    assert_eq!(tok.pad_token(), Some("<pad>"));
    assert!(
        !tok.adds_bos(),
        "no bos_token named, so nothing counts as a BOS"
    );
    assert_eq!(
        tok.decode(&[2, 4], false).unwrap(),
        "hello ,",
        "no clean-up by default"
    );
    assert_eq!(tok.vocab_size(), 11);

    // special_tokens_map.json is read when the config has no added_tokens_decoder.
    std::fs::write(
        dir.path().join(CONFIG_FILE),
        r#"{"bos_token": "<unk>", "split_special_tokens": true}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join(SPECIAL_TOKENS_MAP_FILE),
        r#"{"bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>"}"#,
    )
    .unwrap();
    let tok = Tokenizer::from_dir(dir.path()).unwrap();
    assert_eq!(tok.bos_token(), Some("<s>"));
    assert_eq!(tok.eos_token(), Some("</s>"));
    assert!(tok.adds_bos());
    // split_special_tokens: "<s>" in text is not matched as the special token.
    assert_eq!(tok.encode("<s>", false).unwrap(), vec![0, 0, 0]);

    // ...and ignored when it has one.
    std::fs::write(
        dir.path().join(CONFIG_FILE),
        r#"{"bos_token": "<unk>", "added_tokens_decoder": {"0": {"content": "<unk>", "special": true}}}"#,
    )
    .unwrap();
    let tok = Tokenizer::from_dir(dir.path()).unwrap();
    assert_eq!(tok.bos_token(), Some("<unk>"));
    assert!(!tok.adds_bos());
}

#[test]
fn missing_tokenizer_json_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = Tokenizer::from_dir(dir.path()).unwrap_err();
    assert!(matches!(err, TokenizerError::Missing { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&dir.path().join("tokenizer.json").display().to_string()),
        "{msg}"
    );
}

#[test]
fn corrupt_files_are_named_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(TOKENIZER_FILE);
    std::fs::write(&path, "{\"version\": \"1.0\", \"model\": ").unwrap();
    let err = Tokenizer::from_dir(dir.path()).unwrap_err();
    assert!(matches!(err, TokenizerError::Json { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );

    std::fs::write(
        &path,
        r#"{"version": "1.0", "model": {"type": "NoSuchModel"}}"#,
    )
    .unwrap();
    let err = Tokenizer::from_dir(dir.path()).unwrap_err();
    assert!(matches!(err, TokenizerError::Load { .. }), "{err:?}");
    assert!(err.to_string().contains("tokenizer.json"), "{err}");

    std::fs::write(&path, TINY_TOKENIZER).unwrap();
    let config = dir.path().join(CONFIG_FILE);
    std::fs::write(&config, "{\"bos_token\": ").unwrap();
    let err = Tokenizer::from_dir(dir.path()).unwrap_err();
    assert!(matches!(err, TokenizerError::Json { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&config.display().to_string()),
        "{err}"
    );

    std::fs::write(&config, "{\"bos_token\": 7}").unwrap();
    let err = Tokenizer::from_dir(dir.path()).unwrap_err();
    assert!(matches!(err, TokenizerError::Config { .. }), "{err:?}");
    assert!(
        err.to_string().contains("tokenizer_config.json") && err.to_string().contains("bos_token"),
        "{err}"
    );
}

//! Inputs downloaded from anywhere: none of them may panic, abort or hang sft-eval. Each is
//! exit 2 with the file (and field or line) named, and nothing half-written.

use std::path::Path;

use crate::common::*;

const MC_ITEM: &str = "{\"id\":\"a\",\"input\":\"2+2?\",\"choices\":[\"4\",\"5\"],\"gold\":0}\n";

fn eval(cx: &TestContext, model: &Path, suite: &Path) -> Run {
    cx.cli(&[
        "eval",
        model.to_str().unwrap(),
        "--suites",
        suite.to_str().unwrap(),
        "--no-cache",
    ])
}

fn edit_config(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&p, v.to_string()).unwrap();
}

#[test]
fn a_config_that_does_not_match_its_weights_is_refused_before_allocating() {
    let cx = TestContext::new();
    let suite = write_mc_suite(&cx, MC_ITEM);
    // a layer count no model has: refused by name, under a memory cap that allocating for it
    // would break (inspect, eval)
    let huge = copy_fixture("llama", &cx.join("huge"));
    edit_config(&huge, |v| {
        v["num_hidden_layers"] = serde_json::json!(1_000_000_000u64)
    });
    for args in [
        vec!["inspect", huge.to_str().unwrap()],
        vec![
            "eval",
            huge.to_str().unwrap(),
            "--suites",
            suite.to_str().unwrap(),
        ],
    ] {
        let r = cx.cli(&args).expect(2);
        assert!(
            r.stderr.contains("config.json") && r.stderr.contains("num_hidden_layers"),
            "{}",
            r.stderr
        );
    }
    // fewer layers than the weights hold: the unused tensors are named
    let fewer = copy_fixture("llama", &cx.join("fewer"));
    edit_config(&fewer, |v| {
        let n = v["num_hidden_layers"].as_u64().unwrap();
        v["num_hidden_layers"] = serde_json::json!(n - 1);
    });
    let r = eval(&cx, &fewer, &suite).expect(2);
    assert!(
        r.stderr.contains("does not use") && r.stderr.contains("model.layers."),
        "{}",
        r.stderr
    );
    // an extra tensor of another architecture
    let extra = copy_fixture("llama", &cx.join("extra"));
    let w = extra.join("model.safetensors");
    let mut tensors = candle_core::safetensors::load(&w, &candle_core::Device::Cpu).unwrap();
    tensors.insert(
        "vision_tower.patch_embed.weight".into(),
        candle_core::Tensor::zeros((2, 2), candle_core::DType::F32, &candle_core::Device::Cpu)
            .unwrap(),
    );
    candle_core::safetensors::save(&tensors, &w).unwrap();
    let r = eval(&cx, &extra, &suite).expect(2);
    assert!(
        r.stderr.contains("vision_tower.patch_embed.weight"),
        "{}",
        r.stderr
    );
}

#[test]
fn non_finite_weights_are_an_error_never_a_score() {
    let cx = TestContext::new();
    let suite = write_mc_suite(&cx, MC_ITEM);
    let nan = copy_fixture("llama", &cx.join("nan"));
    let w = nan.join("model.safetensors");
    let mut tensors = candle_core::safetensors::load(&w, &candle_core::Device::Cpu).unwrap();
    let name = tensors
        .keys()
        .find(|k| k.contains("embed_tokens"))
        .unwrap()
        .clone();
    let t = &tensors[&name];
    let poisoned = (t.ones_like().unwrap() * f64::NAN).unwrap();
    tensors.insert(name, poisoned.to_dtype(t.dtype()).unwrap());
    candle_core::safetensors::save(&tensors, &w).unwrap();
    let r = eval(&cx, &nan, &suite).expect(2);
    assert!(
        r.stderr.contains("nan") && r.stderr.contains("not finite") || r.stderr.contains("NaN"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.is_empty(), "a score was written: {}", r.stdout);
    // generation too
    cx.write(
        "suites/gen/suite.toml",
        "name = \"gen\"\ncapability = \"math\"\nversion = \"1\"\nscorer = \"generate_number\"\nmetric = \"exact_match\"\n[prompt]\ntemplate = \"{{ input }}\"\nchat = \"never\"\n[generation]\nmax_new_tokens = 4\n",
    );
    let gen = cx
        .write(
            "suites/gen/items.jsonl",
            "{\"id\":\"g\",\"input\":\"1+1=\",\"target\":\"2\"}\n",
        )
        .parent()
        .unwrap()
        .to_path_buf();
    let r = eval(&cx, &nan, &gen).expect(2);
    assert!(r.stderr.contains("not finite"), "{}", r.stderr);
}

#[test]
fn runaway_templates_stop_with_an_error_naming_them() {
    let cx = TestContext::new();
    // a chat template with nested loops that would run for hours
    let m = copy_fixture("llama", &cx.join("loops"));
    std::fs::write(
        m.join("chat_template.jinja"),
        "{% for a in range(100000) %}{% for b in range(100000) %}.{% endfor %}{% endfor %}",
    )
    .unwrap();
    let r = cx.cli(&["inspect", m.to_str().unwrap()]).expect(2);
    assert!(
        r.stderr.contains("chat_template.jinja") && r.stderr.contains("fuel"),
        "{}",
        r.stderr
    );
    // a suite prompt template that writes gigabytes
    cx.write(
        "suites/big/suite.toml",
        &MC_SPEC.replace(
            "template = \"Q: {{ input }}\\nA:\"",
            "template = \"{% for i in range(1000) %}{{ 'x' * 99000000 }}{% endfor %}\"",
        ),
    );
    let suite = cx
        .write("suites/big/items.jsonl", MC_ITEM)
        .parent()
        .unwrap()
        .to_path_buf();
    let r = eval(&cx, &model_dir("llama"), &suite).expect(2);
    assert!(
        r.stderr.contains("suite `mc`") && r.stderr.contains("64 MiB"),
        "{}",
        r.stderr
    );
}

#[test]
fn oversized_and_out_of_range_fields_are_named() {
    let cx = TestContext::new();
    // a code item asking for 1e20 seconds
    cx.write(
        "suites/code/suite.toml",
        "name = \"code\"\ncapability = \"code\"\nversion = \"1\"\nscorer = \"pass_at_k\"\nmetric = \"pass@1\"\n[prompt]\ntemplate = \"{{ input }}\"\nchat = \"never\"\n",
    );
    let suite = cx
        .write(
            "suites/code/items.jsonl",
            "{\"id\":\"c\",\"input\":\"x = 1\\n\",\"test\":\"assert x == 1\\n\",\"time_limit\":1e20}\n",
        )
        .parent()
        .unwrap()
        .to_path_buf();
    let r = eval(&cx, &model_dir("llama"), &suite).expect(2);
    assert!(
        r.stderr.contains("items.jsonl:1") && r.stderr.contains("time_limit"),
        "{}",
        r.stderr
    );
    // a 17 MiB single-line JSONL record
    let long = cx.write(
        "long.jsonl",
        &format!(
            "{{\"prompt\":\"a\",\"completion\":\"{}\"}}\n",
            "x".repeat(17 << 20)
        ),
    );
    let out = cx.join("run");
    let r = cx
        .cli(&[
            "train",
            model_dir("llama").to_str().unwrap(),
            "--data",
            long.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ])
        .expect(2);
    assert!(
        r.stderr.contains("long.jsonl:1") && r.stderr.contains("MiB"),
        "{}",
        r.stderr
    );
    assert!(!out.exists());
}

/// Many evaluations sharing one cache at once: each writes its own temporary file.
#[test]
fn concurrent_evaluations_share_a_cache() {
    let cx = TestContext::new();
    let suite = write_mc_suite(&cx, MC_ITEM);
    let cache = cx.join("cache");
    let children: Vec<_> = (0..16)
        .map(|_| {
            cx.command()
                .args([
                    "eval",
                    model_dir("llama").to_str().unwrap(),
                    "--suites",
                    suite.to_str().unwrap(),
                    "--cache-dir",
                    cache.to_str().unwrap(),
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let left: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

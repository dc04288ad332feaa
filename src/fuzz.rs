//! Fuzz targets: every parser a user's file reaches, each fed arbitrary bytes through the same
//! code sft-eval runs on that file. A target may return any error; it must never panic, abort or
//! hang. `fuzz/` builds one AFL++ binary per target (`cargo afl`), and `cargo test` replays the
//! committed corpus and a few thousand mutations of it through each (`tests/integration/fuzz.rs`).

use std::path::Path;

/// A target: its name (its corpus folder under `fuzz/corpus/`) and the function.
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
}

/// Every target.
pub static TARGETS: &[Target] = &[
    Target {
        name: "config_json",
        run: config_json,
    },
    Target {
        name: "safetensors",
        run: safetensors,
    },
    Target {
        name: "shard_index",
        run: shard_index,
    },
    Target {
        name: "tokenizer_config",
        run: tokenizer_config,
    },
    Target {
        name: "suite_toml",
        run: suite_toml,
    },
    Target {
        name: "suite_items",
        run: suite_items,
    },
    Target {
        name: "results_json",
        run: results_json,
    },
    Target {
        name: "gate_policy",
        run: gate_policy,
    },
    Target {
        name: "train_jsonl",
        run: train_jsonl,
    },
    Target {
        name: "gguf",
        run: gguf,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// A scratch folder holding `bytes` as `file` (and the other files of `extra`).
fn folder(file: &str, bytes: &[u8], extra: &[(&str, &[u8])]) -> Option<tempfile::TempDir> {
    let dir = tempfile::tempdir().ok()?;
    std::fs::write(dir.path().join(file), bytes).ok()?;
    for (name, content) in extra {
        std::fs::write(dir.path().join(name), content).ok()?;
    }
    Some(dir)
}

/// `config.json`: parsed, its architecture looked up, and its decoder configuration built.
pub fn config_json(bytes: &[u8]) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return;
    };
    let raw = crate::model::config::RawConfig::from_value("config.json".into(), value);
    if let Ok(arch) = crate::model::arch::Architecture::of(&raw) {
        if let Ok(cfg) = (arch.parse)(&raw) {
            let _ = cfg.context_length();
        }
    }
}

/// `model.safetensors`: opened as the loader opens it, every tensor's shape and dtype read and
/// the tensor loaded.
pub fn safetensors(bytes: &[u8]) {
    let Some(dir) = folder("model.safetensors", bytes, &[]) else {
        return;
    };
    if let Ok(files) = crate::model::checkpoint::WeightFiles::open(dir.path()) {
        let names: Vec<String> = files.tensors.keys().cloned().collect();
        for n in names {
            let _ = (files.shape(&n), files.dtype(&n));
            let _ = files.load(&n, &candle_core::Device::Cpu);
        }
    }
}

/// `model.safetensors.index.json`: the shard list the loader and the fingerprint read.
pub fn shard_index(bytes: &[u8]) {
    if let Some(dir) = folder("model.safetensors.index.json", bytes, &[]) {
        let _ = crate::model::checkpoint::weight_file_names(dir.path());
    }
}

/// `tokenizer_config.json` beside a real `tokenizer.json`: special tokens, BOS/EOS handling and
/// the chat template read from it, and the template rendered once.
pub fn tokenizer_config(bytes: &[u8]) {
    const TOKENIZER: &[u8] = include_bytes!("../tests/fixtures/models/llama/tokenizer.json");
    let Some(dir) = folder(
        "tokenizer_config.json",
        bytes,
        &[("tokenizer.json", TOKENIZER)],
    ) else {
        return;
    };
    if let Ok(t) = crate::model::Tokenizer::from_dir(dir.path()) {
        let _ = t.encode("Hello, world", true);
    }
    if let Ok(Some(t)) = crate::model::ChatTemplate::from_dir(dir.path()) {
        let _ = t.render(&[crate::model::Message::new("user", "hi")], true);
    }
}

const ITEMS: &[u8] =
    b"{\"id\":\"a\",\"input\":\"2+2?\",\"choices\":[\"4\",\"5\"],\"gold\":0,\"target\":\"4\"}\n";
const SPEC: &[u8] = b"name = \"s\"\ncapability = \"qa\"\nversion = \"1\"\nscorer = \"mc_loglik\"\nmetric = \"acc\"\n[prompt]\ntemplate = \"Q: {{ input }}\"\n";

/// `suite.toml` (with one valid item): loaded, its scorer's settings checked, and its prompt
/// rendered for the item.
pub fn suite_toml(bytes: &[u8]) {
    if let Some(dir) = folder("suite.toml", bytes, &[("items.jsonl", ITEMS)]) {
        if let Ok(s) = crate::suite::spec::Suite::load(dir.path()) {
            render_first(&s);
        }
    }
}

/// `items.jsonl` of a valid suite: loaded and the first item's prompt rendered.
pub fn suite_items(bytes: &[u8]) {
    if let Some(dir) = folder("items.jsonl", bytes, &[("suite.toml", SPEC)]) {
        if let Ok(s) = crate::suite::spec::Suite::load(dir.path()) {
            render_first(&s);
        }
    }
}

fn render_first(s: &crate::suite::spec::Suite) {
    if crate::suite::scorer::scorer(s.spec.scorer)
        .validate(&s.spec)
        .is_err()
    {
        return;
    }
    let env = crate::model::jinja::environment();
    if let (Ok(t), Some(item)) = (
        env.template_from_str(&s.spec.prompt.template),
        s.items.first(),
    ) {
        let _ = crate::model::jinja::render(&t, minijinja::Value::from_serialize(item));
    }
}

/// A results or baseline file: read (schema, checksum) and, when it is one, compared with
/// itself and gated by the default policy.
pub fn results_json(bytes: &[u8]) {
    let Some(dir) = folder("results.json", bytes, &[]) else {
        return;
    };
    let path = dir.path().join("results.json");
    if let Ok(r) = crate::suite::results::EvalResults::read(&path) {
        let boot = crate::stats::BootstrapConfig {
            resamples: 2,
            threads: 1,
            ..Default::default()
        };
        let _ = crate::gate::gate(&r, &r, &crate::gate::policy::Policy::default(), &boot);
    }
    // the checksum rejects nearly every mutation: parse the content as the reader would too
    if let Ok(mut r) = serde_json::from_slice::<crate::suite::results::EvalResults>(bytes) {
        r.seal();
        let _ = std::fs::write(&path, r.to_json());
        if let Ok(r) = crate::suite::results::EvalResults::read(&path) {
            let boot = crate::stats::BootstrapConfig {
                resamples: 2,
                threads: 1,
                ..Default::default()
            };
            let _ = crate::gate::compare::compare(&r, &r, 0.95, &boot);
        }
    }
}

/// `gate.toml`: parsed and checked.
pub fn gate_policy(bytes: &[u8]) {
    if let Ok(text) = std::str::from_utf8(bytes) {
        if let Ok(p) = crate::gate::policy::Policy::from_toml(text) {
            let _ = p.check();
        }
    }
}

/// Training JSONL: every record parsed as `sft-eval train` and `audit` read it.
pub fn train_jsonl(bytes: &[u8]) {
    if let Ok(text) = std::str::from_utf8(bytes) {
        let _ = crate::data::parse_jsonl(Path::new("data.jsonl"), text);
    }
}

/// A GGUF file: header and metadata read, the llama config built from them and every tensor
/// dequantized, as `--model file.gguf` does before loading.
pub fn gguf(bytes: &[u8]) {
    let _ = crate::backend::gguf::read_gguf(bytes);
}

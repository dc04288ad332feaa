//! `sft-eval inspect MODEL_DIR`

use std::io::Write;

use tabled::{builder::Builder, settings::Style};

use crate::cli::InspectArgs;
use crate::error::{Error, ExitStatus};
use crate::model::info::{inspect, ModelInfo};

pub fn run(args: &InspectArgs) -> Result<ExitStatus, Error> {
    let info = inspect(&args.model_dir, args.base.as_deref())?;
    let out = if args.json {
        let mut s = serde_json::to_string_pretty(&info).expect("model info serialises");
        s.push('\n');
        s
    } else {
        render(&info)
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(out.as_bytes()).map_err(|e| Error::Io {
        path: "<stdout>".into(),
        source: e,
    })?;
    Ok(ExitStatus::Success)
}

fn render(i: &ModelInfo) -> String {
    let mut b = Builder::default();
    let mut row = |k: &str, v: String| b.push_record([k.to_string(), v]);
    if let Some(a) = &i.adapter {
        row(
            "PEFT LoRA adapter",
            format!(
                "on {} ({} tensors changed, {} adapter parameters)",
                a.base,
                a.changed_tensors,
                human_count(a.num_parameters)
            ),
        );
    }
    row("family", format!("{:?}", i.family).to_lowercase());
    row("architecture", i.architecture.clone());
    row("parameters", human_count(i.num_parameters));
    row("dtype", i.dtype.clone());
    row(
        "vocab",
        format!("{} (tokenizer {})", i.vocab_size, i.tokenizer_vocab_size),
    );
    row(
        "context length",
        i.context_length.map_or("unknown".into(), |c| c.to_string()),
    );
    row("tied embeddings", yes_no(i.tied_embeddings));
    row(
        "shape",
        format!(
            "{} layers, hidden {}, {} heads ({} kv), head_dim {}, ffn {}",
            i.num_layers,
            i.hidden_size,
            i.num_heads,
            i.num_kv_heads,
            i.head_dim,
            i.intermediate_size
        ),
    );
    row(
        "positions",
        i.rope_type
            .as_ref()
            .map_or("learned".into(), |r| format!("rope ({r})")),
    );
    if let Some(w) = &i.sliding_window {
        let desc: Vec<String> = w
            .iter()
            .map(|x| x.map_or("full".into(), |w| w.to_string()))
            .collect();
        row("sliding window", desc.join(", "));
    }
    row("weights", i.weight_files.join(", "));
    row(
        "chat template",
        i.chat_template.clone().unwrap_or_else(|| "none".into()),
    );
    row("adds BOS", yes_no(i.adds_bos));
    for t in &i.special_tokens {
        row(
            &format!("{} token", t.name.trim_end_matches("_token")),
            format!(
                "{:?} ({})",
                t.token,
                t.id.map_or("not in vocab".into(), |id| id.to_string())
            ),
        );
    }
    row("eos ids", format!("{:?}", i.eos_token_ids));
    if !i.unused_tensors.is_empty() {
        row(
            "unused tensors",
            format!("{} (e.g. {})", i.unused_tensors.len(), i.unused_tensors[0]),
        );
    }
    let mut t = b.build();
    t.with(Style::sharp());
    format!("{t}\n")
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

fn human_count(n: usize) -> String {
    let s = if n >= 1_000_000_000 {
        format!("{:.2}B", n as f64 / 1e9)
    } else if n >= 1_000_000 {
        format!("{:.2}M", n as f64 / 1e6)
    } else if n >= 1_000 {
        format!("{:.1}K", n as f64 / 1e3)
    } else {
        n.to_string()
    };
    format!("{s} ({n})")
}

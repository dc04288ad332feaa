//! inspect_ai eval logs in JSON format (`--log-format json`, or `inspect log convert --to json`
//! for a binary `.eval` log). One suite per scorer; items are (sample id, epoch), clustered by
//! sample when there are several epochs; scores are inspect's values read as it reads them
//! (`C` 1, `I` 0, `P` 0.5, `N` 0, booleans, numbers in `[0, 1]`), higher is better. An
//! unfinished run, a sample in error or a missing (sample, epoch) is an error, never a drop.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use serde_json::Value;

use super::{bad, read_json, sha256_hex, unit_score, ImportedSuite};
use crate::suite::results::EvalResults;
use crate::suite::runner::{ItemResult, Origin};
use crate::suite::scorer::Direction;
use crate::suite::SuiteError;

/// The first bytes of a file, as text.
fn head(path: &Path) -> String {
    let mut head = [0u8; 512];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    String::from_utf8_lossy(&head[..n]).into_owned()
}

/// Whether a file starts like sft-eval's own results (`{"schema_version": …`).
pub fn is_sft_eval_results(path: &Path) -> bool {
    head(path).contains("\"schema_version\"")
}

/// Whether a `.json` file starts like an inspect eval log (`{"version": 2, "status": …`).
pub fn looks_like_log(path: &Path) -> bool {
    let head = head(path);
    head.trim_start().starts_with('{')
        && head.contains("\"version\"")
        && head.contains("\"status\"")
        && !head.contains("\"schema_version\"")
}

/// A score value as inspect's `value_to_float` reads it, when it lies in `[0, 1]`.
fn score_value(v: &Value) -> Option<f64> {
    match v {
        Value::String(s) => match s.as_str() {
            "C" => Some(1.0),
            "I" | "N" => Some(0.0),
            "P" => Some(0.5),
            other => match other.to_ascii_lowercase().as_str() {
                "yes" | "true" => Some(1.0),
                "no" | "false" => Some(0.0),
                x => x.parse::<f64>().ok().filter(|x| (0.0..=1.0).contains(x)),
            },
        },
        other => unit_score(other),
    }
}

fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Read an inspect JSON eval log.
pub fn read(path: &Path) -> Result<EvalResults, SuiteError> {
    if path.extension().is_some_and(|e| e == "eval") {
        return Err(bad(
            path,
            "an inspect binary .eval log: convert it with `inspect log convert --to json --output-dir DIR FILE` and pass the .json",
        ));
    }
    let log = read_json(path)?;
    let status = log["status"].as_str().unwrap_or("(none)");
    if status != "success" {
        return Err(bad(
            path,
            format!("the run's status is `{status}`, not `success`: its samples are incomplete"),
        ));
    }
    let eval = &log["eval"];
    let task = eval["task"].as_str().unwrap_or("task").to_string();
    let epochs = eval["config"]["epochs"].as_u64().unwrap_or(1).max(1);
    let sample_ids: Vec<String> = eval["dataset"]["sample_ids"]
        .as_array()
        .map(|a| a.iter().filter_map(id_text).collect())
        .unwrap_or_default();
    let scorers: Vec<String> = log["results"]["scores"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if scorers.is_empty() {
        return Err(bad(path, "the log holds no scores (was the task scored?)"));
    }
    let config = serde_json::json!({
        "task_args": eval["task_args"],
        "dataset": {"name": eval["dataset"]["name"], "location": eval["dataset"]["location"], "samples": eval["dataset"]["samples"]},
        "epochs": epochs,
        "scorers": scorers,
    });
    let origin = Origin {
        harness: format!(
            "inspect_ai {}",
            eval["packages"]["inspect_ai"]
                .as_str()
                .unwrap_or("(unknown version)")
        ),
        task: task.clone(),
        version: match &eval["task_version"] {
            Value::Null => "0".into(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        },
        n_shot: None,
        config_hash: sha256_hex(&serde_json::to_vec(&config).expect("serialises")),
    };
    let samples = log["samples"]
        .as_array()
        .ok_or_else(|| bad(path, "the log holds no samples (write it with samples: `--log-format json`, not --no-log-samples)"))?;
    let mut per_scorer: BTreeMap<&str, Vec<ItemResult>> = BTreeMap::new();
    let mut seen: BTreeSet<(String, u64)> = BTreeSet::new();
    for s in samples {
        let id = id_text(&s["id"]).ok_or_else(|| bad(path, "a sample without an id"))?;
        let epoch = s["epoch"].as_u64().unwrap_or(1);
        let here = |reason: String| bad(path, format!("sample `{id}` epoch {epoch}: {reason}"));
        if !seen.insert((id.clone(), epoch)) {
            return Err(here(
                "appears twice: items are paired by sample id and epoch".into(),
            ));
        }
        if !s["error"].is_null() {
            return Err(here("ended in an error, so it has no score".into()));
        }
        let hash =
            sha256_hex(&serde_json::to_vec(&(&s["input"], &s["target"])).expect("serialises"))
                [..16]
                .to_string();
        for name in &scorers {
            let score = &s["scores"][name.as_str()];
            if score.is_null() {
                return Err(here(format!("has no `{name}` score")));
            }
            let value = score_value(&score["value"]).ok_or_else(|| {
                here(format!(
                    "scorer `{name}` gave {}, not a score in [0, 1] (C, I, P, N, a boolean or a number)",
                    score["value"]
                ))
            })?;
            per_scorer
                .entry(name.as_str())
                .or_default()
                .push(ItemResult {
                    id: if epochs > 1 {
                        format!("{id}#{epoch}")
                    } else {
                        id.clone()
                    },
                    prompt_hash: hash.clone(),
                    output: None,
                    extracted: score["answer"].as_str().map(str::to_string),
                    score: value,
                    logliks: Vec::new(),
                    format_failure: false,
                    cluster: (epochs > 1).then(|| id.clone()),
                    label: None,
                });
        }
    }
    for id in &sample_ids {
        for e in 1..=epochs {
            if !seen.contains(&(id.clone(), e)) {
                return Err(bad(
                    path,
                    format!("sample `{id}` epoch {e} of the dataset is missing from the log"),
                ));
            }
        }
    }
    let suites = scorers
        .iter()
        .map(|name| {
            ImportedSuite {
                name: format!("{task}/{name}"),
                capability: "inspect".into(),
                metric: name.clone(),
                direction: Direction::HigherIsBetter,
                origin: origin.clone(),
                items: per_scorer.remove(name.as_str()).unwrap_or_default(),
            }
            .into_result()
        })
        .collect();
    let model = format!(
        "inspect:{}",
        eval["model"].as_str().unwrap_or("(unnamed model)")
    );
    super::results(model, &[path.to_path_buf()], suites)
}

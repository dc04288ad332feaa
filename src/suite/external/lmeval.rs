//! lm-evaluation-harness `--log_samples` output: `results_<time>.json` and, beside it, one
//! `samples_<task>_<time>.jsonl` per task. Items are paired by `doc_id`; each item keeps
//! `doc_hash` and `prompt_hash`; each metric's direction is the task's `higher_is_better`.
//! The samples must account for every document the results file counts, and their mean must be
//! the score the results file reports: logs of another run are refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{bad, read_json, sha256_hex, unit_score, ImportedSuite};
use crate::suite::results::EvalResults;
use crate::suite::runner::{ItemResult, Origin};
use crate::suite::scorer::Direction;
use crate::suite::SuiteError;

/// `results_*.json` files under `dir`, up to three folders deep (lm-eval writes them into a
/// folder named after the model, often a dot-folder such as `..__models__llama`), sorted.
pub fn results_files(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            match e.file_type() {
                Ok(t) if t.is_dir() && depth > 0 => walk(&p, depth - 1, out),
                Ok(t) if t.is_file() && name.starts_with("results_") && name.ends_with(".json") => {
                    out.push(p)
                }
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, 3, &mut out);
    out.sort();
    out
}

/// The one results file a path names: the file, or the only one under a folder.
fn results_file(path: &Path) -> Result<PathBuf, SuiteError> {
    if !path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let files = results_files(path);
    match files.len() {
        0 => Err(bad(
            path,
            "no lm-eval results_*.json here (run lm_eval with --log_samples --output_path DIR)",
        )),
        1 => Ok(files[0].clone()),
        n => Err(bad(
            path,
            format!(
                "holds {n} lm-eval runs ({}{}); name one results_*.json file",
                files
                    .iter()
                    .take(3)
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                if n > 3 { ", …" } else { "" }
            ),
        )),
    }
}

/// A metric of a task, as its config lists it.
struct Metric {
    name: String,
    direction: Direction,
}

fn metrics(path: &Path, run: &Value, task: &str) -> Result<Vec<Metric>, SuiteError> {
    let hib = &run["higher_is_better"][task];
    let direction = |name: &str, v: Option<&Value>| -> Result<Direction, SuiteError> {
        match v.and_then(Value::as_bool).or_else(|| hib[name].as_bool()) {
            Some(true) => Ok(Direction::HigherIsBetter),
            Some(false) => Ok(Direction::LowerIsBetter),
            None => Err(bad(
                path,
                format!("task `{task}`: metric `{name}` has no higher_is_better: its direction is unknown"),
            )),
        }
    };
    match run["configs"][task]["metric_list"].as_array() {
        Some(list) => list
            .iter()
            .map(|m| {
                let name = m["metric"].as_str().unwrap_or_default().to_string();
                match m["aggregation"].as_str() {
                    None | Some("mean") => {}
                    Some(other) => {
                        return Err(bad(
                            path,
                            format!("task `{task}`: metric `{name}` is aggregated by `{other}` over the whole task, not a mean of per-item scores, so its items cannot be paired"),
                        ))
                    }
                }
                Ok(Metric {
                    direction: direction(&name, m.get("higher_is_better"))?,
                    name,
                })
            })
            .collect(),
        // the task's default metrics: those higher_is_better lists
        None => hib
            .as_object()
            .map(|o| o.keys().map(|k| Ok(Metric { name: k.clone(), direction: direction(k, None)? })).collect())
            .unwrap_or_else(|| Err(bad(path, format!("task `{task}` lists no metrics")))),
    }
}

/// The value as lm-eval writes a version (`1.0`, `"2"`, …).
fn version_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "none".into(),
        other => other.to_string(),
    }
}

/// Read an lm-eval run: a `results_*.json` file or the folder `--output_path` named.
pub fn read(path: &Path) -> Result<EvalResults, SuiteError> {
    let file = results_file(path)?;
    let run = read_json(&file)?;
    let name = file
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let stamp = name
        .strip_prefix("results_")
        .and_then(|s| s.strip_suffix(".json"))
        .ok_or_else(|| {
            bad(
                &file,
                "an lm-eval results file is named results_<time>.json",
            )
        })?;
    let dir = file.parent().unwrap_or(Path::new("."));
    let results = run["results"]
        .as_object()
        .ok_or_else(|| bad(&file, "no `results` object: not an lm-eval results file"))?;
    let harness = format!(
        "lm-evaluation-harness {}",
        run["lm_eval_version"]
            .as_str()
            .unwrap_or("(unknown version)")
    );
    // groups (mmlu, …) aggregate their subtasks, which carry the samples
    let groups: Vec<&String> = run["group_subtasks"]
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(_, v)| v.as_array().is_some_and(|a| !a.is_empty()))
                .map(|(k, _)| k)
                .collect()
        })
        .unwrap_or_default();
    let mut files = vec![file.clone()];
    let mut suites = Vec::new();
    for task in results.keys().filter(|t| !groups.contains(t)) {
        let samples = dir.join(format!("samples_{task}_{stamp}.jsonl"));
        if !samples.is_file() {
            return Err(bad(
                &samples,
                format!("missing: the per-item samples of task `{task}` (run lm_eval with --log_samples)"),
            ));
        }
        files.push(samples.clone());
        let mut config = run["configs"][task].clone();
        if let Some(o) = config.as_object_mut() {
            o.remove("metadata"); // names the model and the config file's path
        }
        let origin = Origin {
            harness: harness.clone(),
            task: task.clone(),
            version: version_text(&run["versions"][task]),
            n_shot: run["n-shot"][task].as_u64(),
            config_hash: sha256_hex(&serde_json::to_vec(&config).expect("serialises")),
        };
        let metrics = metrics(&file, &run, task)?;
        // filter → metric → items, in file order
        let mut by_filter: BTreeMap<String, BTreeMap<String, Vec<ItemResult>>> = BTreeMap::new();
        let mut seen: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
        let text = std::fs::read_to_string(&samples).map_err(|e| SuiteError::Io {
            path: samples.clone(),
            source: e,
        })?;
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let item_err = |reason: String| SuiteError::Item {
                path: samples.clone(),
                line: i + 1,
                reason,
            };
            let s: Value =
                serde_json::from_str(line).map_err(|e| item_err(format!("invalid JSON: {e}")))?;
            let doc = s["doc_id"]
                .as_u64()
                .ok_or_else(|| item_err("no integer `doc_id`".into()))?
                .to_string();
            let filter = s["filter"].as_str().unwrap_or("none").to_string();
            if !seen.entry(filter.clone()).or_default().insert(doc.clone()) {
                return Err(item_err(format!("document {doc} appears twice under filter `{filter}`: items are paired by doc_id")));
            }
            let hashes = format!(
                "{}:{}",
                s["doc_hash"].as_str().unwrap_or_default(),
                s["prompt_hash"].as_str().unwrap_or_default()
            );
            let prompt_hash = sha256_hex(hashes.as_bytes())[..16].to_string();
            for m in &metrics {
                let Some(v) = s.get(&m.name) else { continue };
                let score = unit_score(v).ok_or_else(|| {
                    item_err(format!(
                        "metric `{}` is {v}, not a per-item score in [0, 1]",
                        m.name
                    ))
                })?;
                by_filter
                    .entry(filter.clone())
                    .or_default()
                    .entry(m.name.clone())
                    .or_default()
                    .push(ItemResult {
                        id: doc.clone(),
                        prompt_hash: prompt_hash.clone(),
                        output: None,
                        extracted: s["filtered_resps"]
                            .as_array()
                            .and_then(|a| a.first())
                            .and_then(Value::as_str)
                            .map(str::to_string),
                        score,
                        logliks: Vec::new(),
                        format_failure: false,
                        cluster: None,
                        label: None,
                    });
            }
        }
        let counted = run["n-samples"][task]["effective"].as_u64();
        for m in &metrics {
            let mut found = false;
            for (filter, per_metric) in &by_filter {
                let Some(items) = per_metric.get(&m.name) else {
                    continue;
                };
                found = true;
                let key = format!("{},{filter}", m.name);
                if let Some(n) = counted {
                    if items.len() as u64 != n {
                        return Err(bad(
                            &samples,
                            format!("holds {} documents for `{key}`, but the results file counts {n}: the samples are incomplete or of another run", items.len()),
                        ));
                    }
                }
                let mean = items.iter().map(|i| i.score).sum::<f64>() / items.len().max(1) as f64;
                if let Some(reported) = results[task][&key].as_f64() {
                    if (reported - mean).abs() > 1e-6 {
                        return Err(bad(
                            &samples,
                            format!("the items of `{key}` average {mean}, but the results file reports {reported}: the samples are of another run"),
                        ));
                    }
                }
                suites.push(
                    ImportedSuite {
                        name: if filter == "none" {
                            format!("{task}/{}", m.name)
                        } else {
                            format!("{task}/{key}")
                        },
                        capability: "lm-eval".into(),
                        metric: m.name.clone(),
                        direction: m.direction,
                        origin: origin.clone(),
                        items: items.clone(),
                    }
                    .into_result(),
                );
            }
            if !found {
                return Err(bad(
                    &samples,
                    format!("no per-item values of metric `{}`", m.name),
                ));
            }
        }
    }
    if suites.is_empty() {
        return Err(bad(&file, "no task with per-item samples"));
    }
    let model = format!(
        "lm-eval:{}",
        run["model_name"].as_str().unwrap_or("(unnamed model)")
    );
    super::results(model, &files, suites)
}

//! A run's settings checked before anything is written, and compared when a run resumes.

use std::path::Path;

use super::config::TrainConfig;
use super::TrainError;
use crate::data::DataError;

/// Every setting checked before the run directory holds anything.
pub(crate) fn validate(cfg: &TrainConfig) -> Result<(), TrainError> {
    let bad = |m: &str| Err(TrainError::Config(m.to_string()));
    let non_negative = |x: f64| x.is_finite() && x >= 0.0;
    if cfg.batch_size == 0 || cfg.grad_accum == 0 {
        return bad("batch_size and grad_accum must be at least 1");
    }
    if cfg.max_length < 2 {
        return bad("max_length must be at least 2");
    }
    if !(cfg.lr.is_finite() && cfg.lr >= 0.0) {
        return bad("lr must be a non-negative number");
    }
    match cfg.max_steps {
        Some(0) => return bad("max_steps must be at least 1"),
        Some(_) => {}
        None if !(cfg.epochs.is_finite() && cfg.epochs > 0.0) => {
            return bad("epochs must be a positive number (or give max_steps)")
        }
        None => {}
    }
    if !non_negative(cfg.max_grad_norm) {
        return bad("max_grad_norm must be a non-negative number (0 turns clipping off)");
    }
    let a = &cfg.adam;
    if !non_negative(a.weight_decay) {
        return bad("weight_decay must be a non-negative number");
    }
    if !((0.0..1.0).contains(&a.beta1) && (0.0..1.0).contains(&a.beta2)) {
        return bad("the AdamW betas must lie in [0, 1)");
    }
    if !(a.eps.is_finite() && a.eps > 0.0) {
        return bad("the AdamW eps must be a positive number");
    }
    if !non_negative(cfg.l2sp) {
        return bad("l2sp must be a non-negative number");
    }
    if let Some(k) = &cfg.kl {
        if !non_negative(k.beta) {
            return bad("kl (its beta) must be a non-negative number");
        }
        if k.data_rows == Some(0) {
            return bad("kl data_rows must be at least 1");
        }
    }
    if let Some(e) = &cfg.ewc {
        if !non_negative(e.lambda) {
            return bad("ewc (its lambda) must be a non-negative number");
        }
        if e.samples == 0 {
            return bad("ewc samples must be at least 1");
        }
        if !e.data.is_file() {
            return Err(TrainError::DataFile(DataError::Io {
                path: e.data.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "EWC data file not found",
                ),
            }));
        }
    }
    if let Some(w) = &cfg.watch {
        if w.suites.is_empty() {
            return bad("watch needs at least one suite");
        }
        if w.every == 0 || w.batch_size == 0 {
            return bad("watch.every and watch.batch_size must be at least 1");
        }
        if let Some(t) = &w.new_task {
            if !w.suites.iter().any(|s| s == t) {
                return bad(&format!(
                    "new_task `{t}` is not one of the watched suites ({}); add it to --watch",
                    w.suites.join(", ")
                ));
            }
            if w.suites.len() < 2 {
                return bad("the watch needs a capability suite besides the new task to gate");
            }
        }
    }
    if let Some(l) = &cfg.lora {
        if l.r == 0 || !(l.alpha.is_finite() && l.alpha > 0.0) || l.targets.is_empty() {
            return bad("LoRA needs r ≥ 1, a positive alpha and at least one target");
        }
    }
    if let Some(r) = &cfg.replay {
        if !(r.ratio > 0.0 && r.ratio < 1.0) {
            return bad("replay ratio must be in (0, 1)");
        }
        if !r.path.exists() {
            return Err(TrainError::DataFile(DataError::Io {
                path: r.path.clone(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "replay file not found"),
            }));
        }
    }
    if let Some(w) = &cfg.task_weights {
        if w.values().any(|x| !(x.is_finite() && *x >= 0.0)) || w.values().sum::<f64>() <= 0.0 {
            return bad("task weights must be non-negative with a positive sum");
        }
    }
    cfg.freeze.validate().map_err(TrainError::Config)?;
    if cfg.lora.is_some() && !cfg.freeze.is_empty() {
        return bad("LoRA already freezes every base weight; drop the freeze options");
    }
    if let Some(e) = &cfg.eval {
        if e.every == 0 {
            return bad("eval.every must be at least 1");
        }
        if !((0.0..1.0).contains(&e.split) && non_negative(e.min_delta)) {
            return bad("eval split must lie in [0, 1) and min_delta be non-negative");
        }
        if e.max_kl.is_some_and(|m| !non_negative(m)) {
            return bad("max_kl must be a non-negative number");
        }
        if e.max_kl.is_some() && e.probe.is_none() {
            return bad("a forgetting budget (max_kl) needs probe prompts (eval.probe)");
        }
    }
    Ok(())
}

/// The settings a run was started with (`config.json` in its directory).
pub fn saved_config(run_dir: &Path) -> Result<TrainConfig, TrainError> {
    let path = run_dir.join("config.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| TrainError::Resume(format!("{}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| TrainError::Resume(format!("{}: {e}", path.display())))
}

/// The settings (dotted paths) whose values differ between two configurations.
pub(crate) fn differences(a: &TrainConfig, b: &TrainConfig) -> Vec<String> {
    fn walk(path: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
        match (a, b) {
            (serde_json::Value::Object(x), serde_json::Value::Object(y)) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    let null = serde_json::Value::Null;
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    walk(
                        &p,
                        x.get(k).unwrap_or(&null),
                        y.get(k).unwrap_or(&null),
                        out,
                    );
                }
            }
            _ if a != b => out.push(format!("{path} ({a} in the run, {b} now)")),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(
        "",
        &serde_json::to_value(a).expect("config serialises"),
        &serde_json::to_value(b).expect("config serialises"),
        &mut out,
    );
    out
}

//! `adapter_config.json`: the LoRA settings that decide the merged weights, the settings that are
//! refused by name, and where the base checkpoint is (a folder, or a Hub id in the local cache).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::model::checkpoint::read_json;
use crate::model::ModelError;

/// The modules a LoRA config targets.
#[derive(Debug, Clone)]
enum Targets {
    /// module names, each matching a full name or a final `.`-separated part
    List(Vec<String>),
    /// a Python regular expression over the full module name (`re.fullmatch`)
    Regex(regex::Regex),
    /// `"all-linear"`: every linear layer but the output head
    AllLinear,
}

/// The LoRA settings of `adapter_config.json` that decide the merged weights.
#[derive(Debug, Clone)]
pub struct LoraConfig {
    pub(super) path: PathBuf,
    pub(super) base_name: String,
    pub(super) revision: Option<String>,
    pub(super) r: usize,
    pub(super) alpha: f64,
    pub(super) use_rslora: bool,
    pub(super) fan_in_fan_out: bool,
    pub(super) rank_pattern: Vec<(regex::Regex, String, usize)>,
    pub(super) alpha_pattern: Vec<(regex::Regex, String, f64)>,
    targets: Targets,
    exclude: Option<Targets>,
    pub(super) layers_to_transform: Option<Vec<usize>>,
}

/// Fields whose non-empty value means a LoRA variant sft-eval does not compute, and its name.
const REFUSED: &[(&str, &str)] = &[
    ("use_dora", "DoRA (weight-decomposed LoRA)"),
    ("lora_bias", "LoRA with a bias on B (lora_bias)"),
    ("layer_replication", "layer replication"),
    ("trainable_token_indices", "trainable tokens"),
    (
        "target_parameters",
        "LoRA on parameters (target_parameters)",
    ),
    ("alora_invocation_tokens", "activated LoRA (aLoRA)"),
    ("use_qalora", "QA-LoRA"),
    ("use_bdlora", "BD-LoRA"),
];

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::String(s) => !s.is_empty(),
        Value::Number(_) => true,
    }
}

impl LoraConfig {
    pub fn read(path: &Path) -> Result<LoraConfig, ModelError> {
        let v = read_json(path)?;
        let bad = |field: &str, reason: String| ModelError::InvalidConfig {
            path: path.to_path_buf(),
            field: field.into(),
            reason,
        };
        let kind = v.get("peft_type").and_then(Value::as_str).unwrap_or("");
        if kind != "LORA" {
            return Err(bad(
                "peft_type",
                format!("`{kind}` adapters are not supported; sft-eval reads LoRA adapters (peft_type \"LORA\") only"),
            ));
        }
        for (field, name) in REFUSED {
            if v.get(*field).is_some_and(truthy) {
                return Err(bad(
                    field,
                    format!("{name} is not supported; sft-eval merges plain LoRA adapters only"),
                ));
            }
        }
        let str_field = |f: &str| v.get(f).and_then(Value::as_str).map(str::to_string);
        let base_name = str_field("base_model_name_or_path").unwrap_or_default();
        let num = |f: &str| -> Result<Option<f64>, ModelError> {
            match v.get(f) {
                None | Some(Value::Null) => Ok(None),
                Some(x) => x
                    .as_f64()
                    .filter(|n| n.is_finite() && *n > 0.0)
                    .map(Some)
                    .ok_or_else(|| bad(f, format!("must be a positive number, not {x}"))),
            }
        };
        let r = num("r")?.ok_or_else(|| bad("r", "missing".into()))?;
        if r.fract() != 0.0 {
            return Err(bad("r", format!("must be a whole number, not {r}")));
        }
        let alpha = num("lora_alpha")?.unwrap_or(8.0);
        let flag = |f: &str| v.get(f).and_then(Value::as_bool).unwrap_or(false);
        let patterns = |f: &str| -> Result<Vec<(regex::Regex, String, f64)>, ModelError> {
            let Some(obj) = v.get(f).and_then(Value::as_object) else {
                return Ok(Vec::new());
            };
            obj.iter()
                .map(|(k, x)| {
                    let n = x
                        .as_f64()
                        .filter(|n| n.is_finite() && *n > 0.0)
                        .ok_or_else(|| {
                            bad(f, format!("`{k}`: must be a positive number, not {x}"))
                        })?;
                    // PEFT's get_pattern_key: re.match(rf"(.*\.)?({key})$", module)
                    let re = regex::Regex::new(&format!(r"^(?:.*\.)?(?:{k})$"))
                        .map_err(|e| bad(f, format!("`{k}`: {e}")))?;
                    Ok((re, k.clone(), n))
                })
                .collect()
        };
        let rank_pattern = patterns("rank_pattern")?
            .into_iter()
            .map(|(re, k, n)| (re, k, n as usize))
            .collect();
        let targets = |f: &str| -> Result<Option<Targets>, ModelError> {
            match v.get(f) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s == "all-linear" => Ok(Some(Targets::AllLinear)),
                Some(Value::String(s)) => regex::Regex::new(&format!("^(?:{s})$"))
                    .map(|re| Some(Targets::Regex(re)))
                    .map_err(|e| {
                        bad(
                            f,
                            format!("not a regular expression sft-eval can read: {e}"),
                        )
                    }),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|x| x.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .map(|l| Some(Targets::List(l)))
                    .ok_or_else(|| bad(f, "must be a list of module names".into())),
                Some(x) => Err(bad(f, format!("must be a list or a string, not {x}"))),
            }
        };
        let layers_to_transform = match v.get("layers_to_transform") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => n.as_u64().map(|n| vec![n as usize]),
            Some(Value::Array(a)) => Some(
                a.iter()
                    .map(|x| x.as_u64().map(|n| n as usize))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| bad("layers_to_transform", "must be layer indices".into()))?,
            ),
            Some(x) => {
                return Err(bad(
                    "layers_to_transform",
                    format!("must be layer indices, not {x}"),
                ))
            }
        };
        if v.get("layers_pattern").is_some_and(truthy) {
            return Err(bad(
                "layers_pattern",
                "is not supported (sft-eval reads layer indices from standard module names)".into(),
            ));
        }
        Ok(LoraConfig {
            path: path.to_path_buf(),
            base_name,
            revision: str_field("revision"),
            r: r as usize,
            alpha,
            use_rslora: flag("use_rslora"),
            fan_in_fan_out: flag("fan_in_fan_out"),
            rank_pattern,
            alpha_pattern: patterns("alpha_pattern")?,
            targets: targets("target_modules")?
                .ok_or_else(|| bad("target_modules", "missing".into()))?,
            exclude: targets("exclude_modules")?,
            layers_to_transform,
        })
    }

    /// The base checkpoint `base_model_name_or_path` names, found without a download.
    pub(super) fn base_dir(&self, adapter_dir: &Path) -> Result<PathBuf, ModelError> {
        let name = &self.base_name;
        let bad = |reason: String| ModelError::InvalidConfig {
            path: self.path.clone(),
            field: "base_model_name_or_path".into(),
            reason,
        };
        if name.is_empty() {
            return Err(bad(
                "missing: pass the base checkpoint with --base DIR".into()
            ));
        }
        let p = Path::new(name);
        let beside = adapter_dir.join(p);
        for candidate in [p, beside.as_path()] {
            if candidate
                .join(crate::model::checkpoint::CONFIG_FILE)
                .is_file()
            {
                return Ok(candidate.to_path_buf());
            }
        }
        if let Some(snapshot) = hub_snapshot(name, self.revision.as_deref()) {
            return Ok(snapshot);
        }
        Err(bad(format!(
            "`{name}` is not a local checkpoint folder (looked relative to the working directory and to the adapter) nor in the local Hugging Face cache ({}); sft-eval never downloads: pass --base DIR with a local copy of that checkpoint",
            hub_cache().display()
        )))
    }

    /// `(r, alpha)` for a module, from the patterns or the defaults.
    pub(super) fn rank_alpha(&self, module: &str) -> (usize, f64) {
        let r = self
            .rank_pattern
            .iter()
            .find(|(re, _, _)| re.is_match(module))
            .map_or(self.r, |p| p.2);
        let alpha = self
            .alpha_pattern
            .iter()
            .find(|(re, _, _)| re.is_match(module))
            .map_or(self.alpha, |p| p.2);
        (r, alpha)
    }

    /// Whether the config puts LoRA on `module` (PEFT's `check_target_module_exists`).
    pub(super) fn targets(&self, module: &str, is_head: bool) -> bool {
        let matches = |t: &Targets| match t {
            Targets::List(l) => l
                .iter()
                .any(|k| module == k || module.ends_with(&format!(".{k}"))),
            Targets::Regex(re) => re.is_match(module),
            Targets::AllLinear => !is_head,
        };
        if self.exclude.as_ref().is_some_and(matches) {
            return false;
        }
        if !matches(&self.targets) {
            return false;
        }
        match (&self.targets, &self.layers_to_transform) {
            (Targets::List(_), Some(layers)) if !layers.is_empty() => {
                crate::model::params::layer_index(module).is_some_and(|i| layers.contains(&i))
            }
            _ => true,
        }
    }
}

/// The local Hugging Face hub cache: `HF_HUB_CACHE`, `HF_HOME/hub`, or
/// `~/.cache/huggingface/hub`.
fn hub_cache() -> PathBuf {
    if let Some(p) = std::env::var_os("HF_HUB_CACHE") {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("HF_HOME") {
        return PathBuf::from(p).join("hub");
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("huggingface").join("hub")
}

/// The snapshot folder of Hub id `name` at `revision` (a branch or a commit) in the local
/// cache, when it is there.
fn hub_snapshot(name: &str, revision: Option<&str>) -> Option<PathBuf> {
    let ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    let (org, repo) = name.split_once('/')?;
    if !ok(org) || !ok(repo) || repo.contains('/') {
        return None;
    }
    let root = hub_cache().join(format!("models--{org}--{repo}"));
    let revision = revision.unwrap_or("main");
    let commit = if revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit()) {
        revision.to_string()
    } else {
        std::fs::read_to_string(root.join("refs").join(revision))
            .ok()?
            .trim()
            .to_string()
    };
    let snap = root.join("snapshots").join(commit);
    snap.join(crate::model::checkpoint::CONFIG_FILE)
        .is_file()
        .then_some(snap)
}

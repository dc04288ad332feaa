//! `sft-eval train`'s settings: flags and an optional TOML file resolved into a `TrainConfig`
//! (flags win over the file, the file over defaults; a flag changes one field of its table).

use std::collections::BTreeMap;

use super::TrainArgs;
use crate::error::Error;
use crate::train::config::{
    EvalConfig, EwcConfig, KlConfig, KlOn, LoraConfig, LoraSave, ReplayConfig, WatchConfig,
};
use crate::train::loss::KlDirection;
use crate::train::TrainConfig;

pub(super) fn parse_weights(s: &str) -> Result<BTreeMap<String, f64>, String> {
    s.split(',')
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| format!("`{kv}`: expected task=weight"))?;
            let w: f64 = v
                .trim()
                .parse()
                .map_err(|_| format!("`{kv}`: weight is not a number"))?;
            Ok((k.trim().to_string(), w))
        })
        .collect()
}

/// Settings: defaults < --config file < flags; with --resume, the run's own settings < flags
/// (the trainer refuses to resume with settings that differ from the run's).
pub fn resolve(a: &TrainArgs) -> Result<TrainConfig, Error> {
    let mut c = match &a.config {
        _ if a.resume && a.out.join("config.json").is_file() => {
            crate::train::settings::saved_config(&a.out)?
        }
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| Error::Io {
                path: p.clone(),
                source: e,
            })?;
            toml::from_str::<TrainConfig>(&text)
                .map_err(|e| Error::Usage(format!("{}: {e}", p.display())))?
        }
        None => TrainConfig::default(),
    };
    macro_rules! set {
        ($($f:ident),*) => { $( if let Some(v) = a.$f.clone() { c.$f = v; } )* };
    }
    set!(
        max_length,
        epochs,
        batch_size,
        grad_accum,
        lr,
        schedule,
        warmup_steps,
        max_grad_norm,
        seed,
        checkpoint_every,
        keep_checkpoints,
        l2sp
    );
    if let Some(m) = &a.model {
        c.model = m.clone();
    }
    if let Some(d) = a.device {
        c.device = d;
    }
    if let Some(d) = &a.data {
        c.data = d.clone();
    }
    if a.max_steps.is_some() {
        c.max_steps = a.max_steps;
    }
    if let Some(p) = a.chat_template {
        c.chat_template = p;
    }
    if let Some(w) = a.weight_decay {
        c.adam.weight_decay = w;
    }
    c.packing |= a.packing;
    if a.no_shuffle {
        c.shuffle = false;
    }
    set!(cache_dir);
    c.freeze.embeddings |= a.freeze_embeddings;
    if let Some(n) = a.freeze_layers {
        c.freeze.first_layers = n;
    }
    c.freeze.patterns.extend(a.freeze.iter().cloned());
    if a.task_weights.is_some() {
        c.task_weights = a.task_weights.clone();
    }
    merge_tables(a, &mut c)?;
    if !a.resume && (c.model.as_os_str().is_empty() || c.data.as_os_str().is_empty()) {
        return Err(Error::Usage(
            "a base MODEL and --data are required (as arguments or in --config)".into(),
        ));
    }
    Ok(c)
}

/// A flag changes one field of its table (`[kl]`, `[lora]`, `[eval]`, `[replay]`, `[ewc]`,
/// `[watch]`) and keeps the rest of the table the file gave; a flag of a table that is not on
/// needs the flag that turns it on.
fn merge_tables(a: &TrainArgs, c: &mut TrainConfig) -> Result<(), Error> {
    fn table<T>(
        slot: &mut Option<T>,
        touched: bool,
        create: impl FnOnce() -> Result<T, Error>,
    ) -> Result<Option<&mut T>, Error> {
        if !touched {
            return Ok(None);
        }
        if slot.is_none() {
            *slot = Some(create()?);
        }
        Ok(slot.as_mut())
    }
    let needs = |flags: &str, on: &str| {
        Error::Usage(format!(
            "{flags} set a table that is not on: give {on} (or the table in --config)"
        ))
    };
    let touched = a.replay.is_some() || a.replay_ratio.is_some() || a.replay_by_tokens;
    if let Some(r) = table(&mut c.replay, touched, || {
        Ok(ReplayConfig {
            path: a
                .replay
                .clone()
                .ok_or_else(|| needs("--replay-ratio and --replay-by-tokens", "--replay FILE"))?,
            ratio: 0.1,
            by_tokens: false,
        })
    })? {
        if let Some(p) = &a.replay {
            r.path = p.clone();
        }
        if let Some(x) = a.replay_ratio {
            r.ratio = x;
        }
        r.by_tokens |= a.replay_by_tokens;
    }
    let touched = a.kl.is_some()
        || a.kl_on.is_some()
        || a.kl_direction.is_some()
        || a.kl_data.is_some()
        || a.kl_data_rows.is_some();
    if let Some(k) = table(&mut c.kl, touched, || {
        Ok(KlConfig {
            beta: a.kl.ok_or_else(|| {
                needs(
                    "--kl-on, --kl-direction, --kl-data and --kl-data-rows",
                    "--kl BETA (the KL weight)",
                )
            })?,
            on: KlOn::default(),
            direction: KlDirection::default(),
            data: None,
            data_rows: None,
        })
    })? {
        if let Some(x) = a.kl {
            k.beta = x;
        }
        if let Some(x) = a.kl_on {
            k.on = x;
        }
        if let Some(x) = a.kl_direction {
            k.direction = x;
        }
        if a.kl_data.is_some() {
            k.data = a.kl_data.clone();
        }
        if a.kl_data_rows.is_some() {
            k.data_rows = a.kl_data_rows;
        }
    }
    let touched = a.ewc.is_some() || a.ewc_data.is_some() || a.ewc_samples.is_some();
    if let Some(e) = table(&mut c.ewc, touched, || {
        let on = "--ewc LAMBDA and --ewc-data FILE";
        Ok(EwcConfig {
            lambda: a
                .ewc
                .ok_or_else(|| needs("--ewc-data and --ewc-samples", on))?,
            data: a.ewc_data.clone().ok_or_else(|| {
                Error::Usage(format!(
                    "--ewc needs --ewc-data FILE: the data the base's Fisher is taken on ({on})"
                ))
            })?,
            samples: 64,
        })
    })? {
        if let Some(x) = a.ewc {
            e.lambda = x;
        }
        if let Some(p) = &a.ewc_data {
            e.data = p.clone();
        }
        if let Some(n) = a.ewc_samples {
            e.samples = n;
        }
    }
    let touched = a.lora_r.is_some()
        || a.lora_alpha.is_some()
        || a.lora_targets.is_some()
        || a.lora_save.is_some();
    if let Some(l) = table(&mut c.lora, touched, || {
        Ok(LoraConfig {
            r: a.lora_r.ok_or_else(|| {
                needs(
                    "--lora-alpha, --lora-targets and --lora-save",
                    "--lora-r RANK",
                )
            })?,
            alpha: 16.0,
            targets: vec!["q_proj".into(), "v_proj".into()],
            save: LoraSave::default(),
            init: None,
        })
    })? {
        if let Some(x) = a.lora_r {
            l.r = x;
        }
        if let Some(x) = a.lora_alpha {
            l.alpha = x;
        }
        if let Some(x) = &a.lora_targets {
            l.targets = x.clone();
        }
        if let Some(x) = a.lora_save {
            l.save = x;
        }
    }
    let eval_touched = a.eval_data.is_some()
        || a.eval_split.is_some()
        || a.probe.is_some()
        || a.max_kl.is_some()
        || a.eval_every.is_some()
        // --patience alone belongs to the watch when there is one
        || (a.patience.is_some() && (c.eval.is_some() || (a.watch.is_none() && c.watch.is_none())));
    if let Some(e) = table(&mut c.eval, eval_touched, || {
        if a.eval_data.is_none() && a.eval_split.is_none() && a.probe.is_none() {
            return Err(needs(
                "--eval-every, --patience and --max-kl",
                "--eval-data FILE, --eval-split SHARE or --probe FILE",
            ));
        }
        Ok(EvalConfig {
            path: None,
            split: 0.0,
            every: 50,
            patience: 0,
            min_delta: 0.0,
            probe: None,
            max_kl: None,
        })
    })? {
        if a.eval_data.is_some() {
            e.path = a.eval_data.clone();
        }
        if let Some(x) = a.eval_split {
            e.split = x;
        }
        if let Some(x) = a.eval_every {
            e.every = x;
        }
        if let Some(x) = a.patience {
            e.patience = x;
        }
        if a.probe.is_some() {
            e.probe = a.probe.clone();
        }
        if a.max_kl.is_some() {
            e.max_kl = a.max_kl;
        }
    }
    let touched = a.watch.is_some()
        || a.watch_every.is_some()
        || a.watch_limit.is_some()
        || a.watch_batch_size.is_some()
        || a.policy.is_some()
        || a.new_task.is_some()
        || a.suites_dir.is_some()
        || (a.patience.is_some() && c.watch.is_some());
    if let Some(w) = table(&mut c.watch, touched, || {
        Ok(WatchConfig::new(a.watch.clone().ok_or_else(|| {
            needs(
                "--watch-every, --watch-limit, --watch-batch-size, --policy, --new-task and --suites-dir",
                "--watch SUITES",
            )
        })?))
    })? {
        if let Some(x) = &a.watch {
            w.suites = x.clone();
        }
        if let Some(x) = a.watch_every {
            w.every = x;
        }
        if let Some(x) = a.watch_limit {
            w.limit = x;
        }
        if let Some(x) = a.watch_batch_size {
            w.batch_size = x;
        }
        if a.policy.is_some() {
            w.policy = a.policy.clone();
        }
        if a.new_task.is_some() {
            w.new_task = a.new_task.clone();
        }
        if let Some(x) = &a.suites_dir {
            w.suites_dir = x.clone();
        }
        if let Some(x) = a.patience {
            w.patience = x;
        }
    }
    Ok(())
}

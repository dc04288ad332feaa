//! Checkpoints: an HF checkpoint plus the exact optimizer and trainer state, written
//! atomically, the export of `best/` and `final/`, and resuming from the newest checkpoint.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::Tensor;

use super::run::Run;
use super::{config, io, lora, TrainError};
use crate::model::checkpoint::{write_json, write_safetensors, AtomicDir};

/// Saved trainer state beside each checkpoint.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct TrainerState {
    pub step: usize,
    pub tokens_seen: usize,
    pub best_eval: Option<f64>,
    pub bad_evals: usize,
    /// the capability watch's choice so far
    #[serde(default)]
    pub watch: super::watch::Selector,
    #[serde(default)]
    pub best_watch_step: Option<usize>,
}

const STATE_FILE: &str = "trainer_state.json";
const TENSORS_FILE: &str = "trainer_state.safetensors";

fn checkpoint_dirs(run: &Path) -> Vec<(usize, PathBuf)> {
    let mut v: Vec<(usize, PathBuf)> = std::fs::read_dir(run.join("checkpoints"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let step = name.strip_prefix("step-")?.parse().ok()?;
            e.path()
                .join(STATE_FILE)
                .exists()
                .then_some((step, e.path()))
        })
        .collect();
    v.sort();
    v
}
impl Run<'_> {
    /// Write the current weights as a loadable checkpoint (merged LoRA or adapter) into `out`.
    pub(crate) fn export(&mut self, out: &Path) -> Result<(), TrainError> {
        let dir = AtomicDir::new(out)?;
        self.write_weights(dir.path())?;
        dir.commit(true)?;
        Ok(())
    }

    fn write_weights(&mut self, path: &Path) -> Result<(), TrainError> {
        match &self.cfg.lora {
            Some(l) if l.save == config::LoraSave::Adapter => {
                let gpt2 = self.model.arch.layout == crate::model::arch::WeightLayout::Gpt2;
                lora::write_adapter(path, &self.vars, l, &self.cfg.model, gpt2)?;
            }
            Some(_) => {
                let merged = lora::merged(&mut self.model.decoder)?;
                self.model.write_into(path, &merged)?;
            }
            None => self.model.write_into(path, &BTreeMap::new())?,
        }
        Ok(())
    }

    /// An HF checkpoint plus the exact state needed to resume, written atomically.
    pub(crate) fn checkpoint(&mut self) -> Result<(), TrainError> {
        let out = self
            .dir
            .join("checkpoints")
            .join(format!("step-{:06}", self.state.step));
        let dir = AtomicDir::new(&out)?;
        self.write_weights(dir.path())?;
        let (opt_step, mut tensors) = self.opt.state();
        for (name, v) in &self.vars {
            tensors.push((format!("param.{name}"), v.as_tensor().clone()));
        }
        write_safetensors(&dir.path().join(TENSORS_FILE), &tensors)?;
        let mut st = serde_json::to_value(&self.state).expect("state serialises");
        st["optimizer_step"] = opt_step.into();
        write_json(&dir.path().join(STATE_FILE), &st)?;
        dir.commit(true)?;
        for (_, old) in checkpoint_dirs(&self.dir)
            .iter()
            .rev()
            .skip(self.cfg.keep_checkpoints.max(1))
        {
            let _ = std::fs::remove_dir_all(old);
        }
        Ok(())
    }

    /// Load the newest checkpoint's exact state and cut the log back to it.
    pub(crate) fn restore(&mut self) -> Result<(), TrainError> {
        // a checkpoint being written when the run died is an incomplete hidden folder: drop it
        for e in std::fs::read_dir(self.dir.join("checkpoints"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if e.file_name().to_string_lossy().starts_with(".step-") {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        let Some((step, dir)) = checkpoint_dirs(&self.dir).pop() else {
            return Err(TrainError::Resume(format!(
                "{} has no checkpoint yet",
                self.dir.display()
            )));
        };
        let st_path = dir.join(STATE_FILE);
        let text = std::fs::read_to_string(&st_path).map_err(io(&st_path))?;
        let raw: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| TrainError::Resume(format!("{}: {e}", st_path.display())))?;
        self.state = serde_json::from_value(raw.clone())
            .map_err(|e| TrainError::Resume(format!("{}: {e}", st_path.display())))?;
        let tensors: HashMap<String, Tensor> =
            candle_core::safetensors::load(dir.join(TENSORS_FILE), self.model.device())?;
        for (name, v) in &self.vars {
            let t = tensors
                .get(&format!("param.{name}"))
                .ok_or_else(|| TrainError::Resume(format!("checkpoint lacks `{name}`")))?;
            v.set(t)?;
        }
        let opt_step = raw["optimizer_step"].as_u64().unwrap_or(step as u64) as usize;
        self.opt.load_state(opt_step, &tensors)?;
        // the log keeps only what happened up to the checkpoint
        let log_path = self.dir.join("log.jsonl");
        if let Ok(text) = std::fs::read_to_string(&log_path) {
            let kept: String = text
                .lines()
                .filter(|l| {
                    serde_json::from_str::<serde_json::Value>(l)
                        .ok()
                        .and_then(|v| v["step"].as_u64())
                        .is_some_and(|s| s as usize <= step)
                })
                .map(|l| format!("{l}\n"))
                .collect();
            std::fs::write(&log_path, kept).map_err(io(&log_path))?;
        }
        self.observer
            .note(&format!("resumed from {} (step {step})", dir.display()));
        Ok(())
    }
}

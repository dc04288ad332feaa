//! Capability watch: the watched suites scored on the model being trained, paired with the
//! base's (cached) results, judged by the same code as `sft-eval gate`, and used to pick
//! `best/` and to stop early.

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::config::{TrainConfig, WatchConfig};
use super::TrainError;
use crate::gate::policy::Policy;
use crate::model::{LoadOptions, Model};
use crate::stats::BootstrapConfig;
use crate::suite::evaluate::{evaluate, evaluate_checkpoint, resolve_suites, NamedSuite};
use crate::suite::results::{Cache, EvalResults, ModelRef};
use crate::suite::runner::{EvalSettings, NoProgress, OverContext};

/// One watched suite at one watch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WatchedSuite {
    pub suite: String,
    /// the fine-tune's mean score on the watched items, and the base's
    pub score: f64,
    pub base: f64,
    /// change in the better direction (negative: worse), and its interval
    pub delta: f64,
    pub ci: [f64; 2],
    /// the gate fails this suite (never for the new task, which is not gated)
    pub fails: bool,
    pub new_task: bool,
}

/// One watch: what `log.jsonl` records under `watch`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WatchRecord {
    pub step: usize,
    pub suites: Vec<WatchedSuite>,
    /// every gated suite passes the policy
    pub passed: bool,
    /// the new task's score, when one is named
    pub new_task: Option<f64>,
    /// this watch's weights became `best/`
    pub best: bool,
    /// watches in a row that failed, this one included
    pub failed_in_row: usize,
    /// time the watch took
    pub seconds: f64,
}

/// Which watch becomes `best/`, and when to stop: the pure rule, tested on planted
/// trajectories. Its state is saved with each checkpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Selector {
    /// the new-task score of `best/` (without a new task: any passing watch counts as better)
    pub best: Option<f64>,
    /// watches in a row that failed the policy
    pub failed_in_row: usize,
}

/// What the selector decided about one watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub best: bool,
    pub stop: bool,
}

impl Selector {
    /// A watch that `passed` (or not) with this new-task score: `best/` takes the passing
    /// watch with the highest new-task score (the earliest on ties; without a new task, the
    /// latest passing watch), and the run stops after `patience` failing watches in a row
    /// (0: never).
    pub fn observe(&mut self, passed: bool, new_task: Option<f64>, patience: usize) -> Decision {
        if !passed {
            self.failed_in_row += 1;
            return Decision {
                best: false,
                stop: patience > 0 && self.failed_in_row >= patience,
            };
        }
        self.failed_in_row = 0;
        let best = match (new_task, self.best) {
            (Some(s), Some(b)) => s > b,
            (Some(_), None) => true,
            (None, _) => true,
        };
        if best {
            self.best = Some(new_task.unwrap_or(f64::NEG_INFINITY));
        }
        Decision { best, stop: false }
    }
}

/// The watched suites, the base's results on them, and the policy.
pub struct Watch {
    pub cfg: WatchConfig,
    suites: Vec<NamedSuite>,
    settings: EvalSettings,
    policy: Policy,
    base: EvalResults,
    /// the new task's suite name as results name it
    new_task: Option<String>,
    boot: BootstrapConfig,
}

impl Watch {
    /// Resolve the suites and the policy (errors name the file at fault) and score the base,
    /// from the cache when it holds these suites and settings.
    pub fn setup(cfg: &TrainConfig, w: &WatchConfig) -> Result<Watch, TrainError> {
        let suites = resolve_suites(&w.suites, &w.suites_dir)?;
        let policy = match &w.policy {
            Some(p) => Policy::read(p)?,
            None => Policy::default(),
        };
        let settings = EvalSettings {
            batch_size: w.batch_size,
            limit: w.limit,
            over_context: OverContext::Skip,
        };
        let new_task = w.new_task.as_ref().map(|t| {
            suites
                .iter()
                .find(|s| &s.source == t)
                .map(|s| s.suite.spec.name.clone())
                .unwrap_or_else(|| t.clone())
        });
        let base = evaluate_checkpoint(
            &cfg.model,
            &suites,
            &settings,
            Some(&Cache {
                dir: cfg.cache_dir.clone(),
            }),
            &LoadOptions {
                device: cfg.device.open().map_err(crate::model::ModelError::from)?,
                ..LoadOptions::default()
            },
            &mut NoProgress,
        )?;
        let boot = BootstrapConfig {
            resamples: 2_000,
            seed: 0,
            ..BootstrapConfig::default()
        };
        // a policy that cannot be applied to these suites (one it names is not watched, a
        // margin in the wrong unit) fails now, not after the first steps
        crate::gate::gate(&base, &base, &policy, &boot)?;
        Ok(Watch {
            cfg: w.clone(),
            suites,
            settings,
            policy,
            base,
            new_task,
            boot,
        })
    }

    /// Score `model` (the weights after `step`) and judge it against the base.
    pub fn score(&self, model: &Model, step: usize) -> Result<WatchRecord, TrainError> {
        let t0 = Instant::now();
        let model_ref = ModelRef {
            path: format!("{} (training, step {step})", model.dir.display()),
            fingerprint: format!("training-step-{step}"),
        };
        let ft = evaluate(
            model,
            model_ref,
            &self.suites,
            &self.settings,
            None,
            &mut NoProgress,
        )?;
        let outcome = crate::gate::gate(&self.base, &ft, &self.policy, &self.boot)?;
        let mut suites = Vec::new();
        for c in &outcome.comparison.suites {
            let is_new = self.new_task.as_deref() == Some(c.suite.as_str());
            let fails = !is_new
                && outcome
                    .verdicts
                    .iter()
                    .any(|v| v.suite == c.suite && v.fails);
            suites.push(WatchedSuite {
                suite: c.suite.clone(),
                score: c.finetuned,
                base: c.base,
                delta: c.delta,
                ci: [c.ci.lower, c.ci.upper],
                fails,
                new_task: is_new,
            });
        }
        Ok(WatchRecord {
            step,
            passed: !suites.iter().any(|s| s.fails),
            new_task: suites.iter().find(|s| s.new_task).map(|s| s.score),
            suites,
            best: false,
            failed_in_row: 0,
            seconds: t0.elapsed().as_secs_f64(),
        })
    }
}

/// The watches a run's `log.jsonl` recorded, in order.
pub fn read_watch_log(path: &Path) -> Result<Vec<WatchRecord>, TrainError> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| {
            TrainError::Data(format!("{}:{}: not JSON ({e})", path.display(), i + 1))
        })?;
        if let Some(w) = v.get("watch") {
            out.push(serde_json::from_value(w.clone()).map_err(|e| {
                TrainError::Data(format!("{}:{}: watch: {e}", path.display(), i + 1))
            })?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run the selector over (passed, new-task score) and return the best step and the stop.
    fn replay(traj: &[(bool, Option<f64>)], patience: usize) -> (Option<usize>, Option<usize>) {
        let mut s = Selector::default();
        let mut best = None;
        for (i, &(passed, score)) in traj.iter().enumerate() {
            let d = s.observe(passed, score, patience);
            if d.best {
                best = Some(i);
            }
            if d.stop {
                return (best, Some(i));
            }
        }
        (best, None)
    }

    #[test]
    fn best_is_the_highest_new_task_score_among_passing_watches() {
        // the task improves all along, but capabilities fail from the fourth watch: the best
        // checkpoint is the third, not the last (best task score) nor the first (best skills)
        let planted = [
            (true, Some(0.10)),
            (true, Some(0.40)),
            (true, Some(0.70)),
            (false, Some(0.90)),
            (false, Some(0.95)),
        ];
        assert_eq!(replay(&planted, 0), (Some(2), None));
        // a later passing watch with a lower task score does not replace it; a higher one does
        let mut later = planted.to_vec();
        later.push((true, Some(0.60)));
        assert_eq!(replay(&later, 0).0, Some(2));
        later.push((true, Some(0.80)));
        assert_eq!(replay(&later, 0).0, Some(6));
        // ties keep the earlier checkpoint (fewer steps away from the base)
        assert_eq!(
            replay(&[(true, Some(0.5)), (true, Some(0.5))], 0).0,
            Some(0)
        );
    }

    #[test]
    fn nothing_passing_leaves_no_best_and_patience_stops() {
        let failing = [(false, Some(0.3)), (false, Some(0.6)), (false, Some(0.9))];
        assert_eq!(replay(&failing, 0), (None, None));
        assert_eq!(replay(&failing, 2), (None, Some(1)));
        // a pass in between resets the count
        let mixed = [
            (false, Some(0.1)),
            (true, Some(0.2)),
            (false, Some(0.3)),
            (false, Some(0.4)),
        ];
        assert_eq!(replay(&mixed, 2), (Some(1), Some(3)));
    }

    #[test]
    fn without_a_new_task_the_latest_passing_watch_is_best() {
        let t = [(true, None), (true, None), (false, None)];
        assert_eq!(replay(&t, 0), (Some(1), None));
    }
}

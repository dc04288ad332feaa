//! The gate tested by simulation: synthetic bases and fine-tunes whose true drop is known, run
//! through [`super::gate`] itself (the same comparison, intervals, exact test and policy as
//! `sft-eval gate`), counting how often each verdict comes out.
//!
//! The guarantee under test: when the true drop equals the margin, the gate passes with
//! probability at most `(1 − confidence)/2` (2.5% at 95%), and symmetrically fails with at
//! most that probability; with no drop it passes as often as the items allow (power).
//!
//! Scenarios: binary scores (independent items, or items in clusters whose flip rates differ),
//! fractional scores in `[0, 1]` (pass@1 over several samples) and unbounded per-item NLL
//! (normal or right-skewed changes, optionally clustered).

use std::collections::HashMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Binomial, Distribution, Gamma, LogNormal, Normal};
use serde::Serialize;

use super::policy::{Policy, SuitePolicy};
use super::GateError;
use crate::stats::{BootstrapConfig, Verdict};
use crate::suite::results::{EvalResults, ModelRef};
use crate::suite::runner::{EvalSettings, ItemResult, SuiteResult};
use crate::suite::scorer::{Direction, Unit};
use crate::suite::spec::{ScorerKind, SCHEMA_VERSION};

/// What per-item scores look like.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// 0/1 per item: the base is right with `base_accuracy`; a share `discordance` of items
    /// flips, losses outnumbering gains by the true drop
    Binary {
        base_accuracy: f64,
        discordance: f64,
    },
    /// pass@1 over `samples` samples per item (scores in steps of 1/samples): each item's base
    /// pass rate is uniform on [0, 1], the fine-tune's is it × (1 − 2·drop)
    Fractional { samples: u64 },
    /// per-item NLL (lower is better): the fine-tune's is the base's plus the drop plus noise
    /// of standard deviation `sd`: normal (`skew = 0`), or a log-normal of shape `skew` (a long
    /// right tail: a few items get much worse; skewness 0.78 at 0.25, 1.75 at 0.5, 6.2 at 1)
    Nll { sd: f64, skew: f64 },
}

/// One simulated suite.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Scenario {
    pub n: usize,
    pub metric: Metric,
    /// items spread evenly over this many clusters, whose flip rates (binary) or shifts (NLL)
    /// vary by cluster; `None`: independent items
    pub clusters: Option<usize>,
    /// how much clusters differ: the coefficient of variation of a cluster's flip rate
    /// (binary), or a cluster shift's standard deviation over `sd` (NLL)
    pub cluster_spread: f64,
    /// the true mean drop (metric units; NLL: a rise)
    pub true_drop: f64,
    pub margin: f64,
}

/// How often each verdict came out.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rates {
    pub reps: usize,
    pub pass: f64,
    pub fail: f64,
    pub inconclusive: f64,
    /// median of the MDE the gate stated (infinite where it said no outcome fails)
    pub median_mde: f64,
}

impl Rates {
    /// The Monte-Carlo standard deviation of a rate `p` estimated from these replications.
    pub fn mc_sd(&self, p: f64) -> f64 {
        (p * (1.0 - p) / self.reps as f64).sqrt()
    }
}

/// Run `reps` replications of `s` through the gate at `confidence`, seeded.
pub fn simulate(s: &Scenario, confidence: f64, reps: usize, seed: u64) -> Result<Rates, GateError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let policy = Policy {
        confidence,
        default: SuitePolicy {
            margin: Some(s.margin),
            ..SuitePolicy::default()
        },
        suites: [(
            "sim".to_string(),
            SuitePolicy {
                margin: Some(s.margin),
                ..SuitePolicy::default()
            },
        )]
        .into(),
        required: vec![],
    };
    let boot = BootstrapConfig {
        resamples: 2,
        threads: 1,
        confidence,
        ..BootstrapConfig::default()
    };
    // binary items without clusters: the verdict depends only on (losses, gains, both right)
    let mut memo: HashMap<(usize, usize, usize), (Verdict, f64)> = HashMap::new();
    let (mut pass, mut fail) = (0usize, 0usize);
    let mut mdes = Vec::with_capacity(reps);
    for _ in 0..reps {
        let (base, ft, clusters) = draw(s, &mut rng);
        let key = match (s.metric, s.clusters) {
            (Metric::Binary { .. }, None) => {
                let count = |pred: &dyn Fn(f64, f64) -> bool| {
                    base.iter().zip(&ft).filter(|(b, f)| pred(**b, **f)).count()
                };
                Some((
                    count(&|b, f| b > f),
                    count(&|b, f| f > b),
                    count(&|b, f| b == 1.0 && f == 1.0),
                ))
            }
            _ => None,
        };
        let (verdict, mde) = match key.and_then(|k| memo.get(&k)) {
            Some(v) => *v,
            None => {
                let unit = match s.metric {
                    Metric::Nll { .. } => Unit::NatsPerToken,
                    _ => Unit::Proportion,
                };
                let (b, f) = (
                    results(&base, &clusters, unit),
                    results(&ft, &clusters, unit),
                );
                let o = super::gate(&b, &f, &policy, &boot)?;
                let v = (
                    o.verdicts[0].verdict,
                    o.verdicts[0].mde.unwrap_or(f64::INFINITY),
                );
                if let Some(k) = key {
                    memo.insert(k, v);
                }
                v
            }
        };
        match verdict {
            Verdict::Pass => pass += 1,
            Verdict::Fail => fail += 1,
            Verdict::Inconclusive => {}
        }
        mdes.push(mde);
    }
    mdes.sort_by(f64::total_cmp);
    let r = reps.max(1) as f64;
    Ok(Rates {
        reps,
        pass: pass as f64 / r,
        fail: fail as f64 / r,
        inconclusive: (reps - pass - fail) as f64 / r,
        median_mde: mdes.get(mdes.len() / 2).copied().unwrap_or(f64::NAN),
    })
}

/// Base scores, fine-tune scores and cluster labels for one replication.
fn draw(s: &Scenario, rng: &mut ChaCha8Rng) -> (Vec<f64>, Vec<f64>, Vec<Option<String>>) {
    let g = s.clusters.unwrap_or(1).max(1);
    let cluster_of = |i: usize| i * g / s.n.max(1);
    let labels: Vec<Option<String>> = (0..s.n)
        .map(|i| s.clusters.map(|_| format!("c{}", cluster_of(i))))
        .collect();
    let mut base = Vec::with_capacity(s.n);
    let mut ft = Vec::with_capacity(s.n);
    match s.metric {
        Metric::Binary {
            base_accuracy,
            discordance,
        } => {
            // cluster multipliers of the flip rates, mean 1
            let mult: Vec<f64> = (0..g)
                .map(|_| match (s.clusters, s.cluster_spread > 0.0) {
                    (Some(_), true) => {
                        let k = 1.0 / (s.cluster_spread * s.cluster_spread);
                        Gamma::new(k, 1.0 / k).expect("valid gamma").sample(rng)
                    }
                    _ => 1.0,
                })
                .collect();
            let (p_loss, p_gain) = (
                0.5 * (discordance + s.true_drop),
                0.5 * (discordance - s.true_drop),
            );
            for i in 0..s.n {
                let m = mult[cluster_of(i)];
                // the item's base answer, then whether it flips: a loss needs a right base
                // answer, a gain a wrong one
                let right = rng.random::<f64>() < base_accuracy;
                let p = if right {
                    (p_loss * m / base_accuracy).min(1.0)
                } else {
                    (p_gain * m / (1.0 - base_accuracy)).min(1.0)
                };
                let flips = rng.random::<f64>() < p;
                let b = right as u8 as f64;
                base.push(b);
                ft.push(if flips { 1.0 - b } else { b });
            }
        }
        Metric::Fractional { samples } => {
            let k = samples.max(1);
            for _ in 0..s.n {
                let r: f64 = rng.random();
                let r_ft = r * (1.0 - 2.0 * s.true_drop);
                let draw_score = |p: f64, rng: &mut ChaCha8Rng| {
                    Binomial::new(k, p.clamp(0.0, 1.0))
                        .expect("valid binomial")
                        .sample(rng) as f64
                        / k as f64
                };
                base.push(draw_score(r, rng));
                ft.push(draw_score(r_ft, rng));
            }
        }
        Metric::Nll { sd, skew } => {
            let shift: Vec<f64> = (0..g)
                .map(|_| match s.clusters {
                    Some(_) => Normal::new(0.0, s.cluster_spread * sd)
                        .expect("valid normal")
                        .sample(rng),
                    None => 0.0,
                })
                .collect();
            // log-normal of shape σ: mean e^{σ²/2}, sd e^{σ²/2}·√(e^{σ²} − 1)
            let ln = LogNormal::new(0.0, skew.max(1e-9)).expect("valid log-normal");
            let ln_mean = (0.5 * skew * skew).exp();
            let ln_sd = ln_mean * ((skew * skew).exp() - 1.0).sqrt();
            let noise = Normal::new(0.0, sd).expect("valid normal");
            for i in 0..s.n {
                let b = 3.0 + rng.random::<f64>();
                let e = if skew > 0.0 {
                    sd * (ln.sample(rng) - ln_mean) / ln_sd
                } else {
                    noise.sample(rng)
                };
                base.push(b);
                ft.push(b + s.true_drop + shift[cluster_of(i)] + e);
            }
        }
    }
    (base, ft, labels)
}

/// A results file of one suite `sim` with these scores.
fn results(scores: &[f64], clusters: &[Option<String>], unit: Unit) -> EvalResults {
    let (scorer, direction, metric) = match unit {
        Unit::Proportion => (ScorerKind::McLoglik, Direction::HigherIsBetter, "acc"),
        Unit::NatsPerToken => (ScorerKind::RollingNll, Direction::LowerIsBetter, "nll"),
    };
    let items: Vec<ItemResult> = scores
        .iter()
        .zip(clusters)
        .enumerate()
        .map(|(i, (s, c))| ItemResult {
            id: format!("i{i}"),
            prompt_hash: String::new(),
            output: None,
            extracted: None,
            score: *s,
            logliks: vec![],
            format_failure: false,
            cluster: c.clone(),
            label: None,
        })
        .collect();
    let n = items.len();
    let mean = scores.iter().sum::<f64>() / n.max(1) as f64;
    EvalResults::new(
        ModelRef {
            path: "simulated".into(),
            fingerprint: String::new(),
        },
        EvalSettings::default(),
        vec![SuiteResult {
            schema_version: SCHEMA_VERSION,
            suite: "sim".into(),
            capability: "sim".into(),
            suite_hash: "sim".into(),
            scorer,
            metric: metric.into(),
            direction,
            unit,
            n,
            mean,
            se: 0.0,
            format_failures: 0,
            skipped: vec![],
            extra: Default::default(),
            seconds: 0.0,
            source: None,
            notes: vec![],
            origin: None,
            items,
        }],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binary(n: usize, acc: f64, s: f64, drop: f64) -> Scenario {
        Scenario {
            n,
            metric: Metric::Binary {
                base_accuracy: acc,
                discordance: s,
            },
            clusters: None,
            cluster_spread: 0.0,
            true_drop: drop,
            margin: 0.05,
        }
    }

    /// The quick version of the README's table: at a true drop equal to the margin the gate
    /// passes at most 2.5% of the time (+ 3 Monte-Carlo standard deviations), over small and
    /// large suites, rare and common flips, clusters, fractional and NLL scores.
    #[test]
    fn the_false_pass_rate_at_the_margin_is_at_most_nominal() {
        let reps = 1500;
        let mut cases: Vec<Scenario> = Vec::new();
        for n in [5, 20, 50, 200] {
            for s in [0.05, 0.2, 0.9] {
                cases.push(binary(n, 0.5, s, 0.05));
            }
        }
        cases.push(binary(200, 0.95, 0.06, 0.05));
        cases.push(binary(50, 0.1, 0.15, 0.05));
        for g in [4, 10] {
            cases.push(Scenario {
                clusters: Some(g),
                cluster_spread: 1.0,
                ..binary(200, 0.5, 0.2, 0.05)
            });
        }
        cases.push(Scenario {
            metric: Metric::Fractional { samples: 5 },
            ..binary(50, 0.5, 0.0, 0.05)
        });
        for (n, skew) in [(20, 0.0), (50, 0.25), (200, 0.25)] {
            cases.push(Scenario {
                metric: Metric::Nll { sd: 0.3, skew },
                ..binary(n, 0.5, 0.0, 0.05)
            });
        }
        for (k, c) in cases.iter().enumerate() {
            let r = simulate(c, 0.95, reps, k as u64).unwrap();
            let bound = 0.025 + 3.0 * r.mc_sd(0.025);
            assert!(
                r.pass <= bound,
                "{c:?}: false-pass rate {} > {bound}",
                r.pass
            );
            // and the symmetric error: a false Fail
            assert!(
                r.fail <= bound,
                "{c:?}: false-fail rate {} > {bound}",
                r.fail
            );
        }
    }

    #[test]
    fn with_no_drop_a_large_suite_passes_and_a_tiny_one_cannot() {
        let r = simulate(&binary(1000, 0.5, 0.05, 0.0), 0.95, 300, 7).unwrap();
        assert!(r.pass > 0.9, "power {}", r.pass);
        let r = simulate(&binary(5, 0.5, 0.0, 0.0), 0.95, 300, 8).unwrap();
        assert_eq!(r.pass, 0.0);
        // a large true drop fails
        let r = simulate(&binary(200, 0.5, 0.3, 0.25), 0.95, 300, 9).unwrap();
        assert!(r.fail > 0.9, "{}", r.fail);
    }
}

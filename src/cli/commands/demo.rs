//! `sft-eval demo`: forgetting and its cures on the shipped model organism.

use std::path::PathBuf;

use clap::Args;

use super::train::Reporter;
use crate::error::{Error, ExitStatus};
use crate::organism::demo::{run_demo, DemoConfig, DemoObserver};
use crate::suite::runner::SuiteObserver;
use crate::train::{EvalRecord, StepRecord, TrainObserver};

/// Runs on one thread unless RAYON_NUM_THREADS is set.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The reduced demo (80 items per suite, one strength per mitigation, the replay + EWC
    /// recipe and the watched run; what the tests run).
    #[arg(long)]
    pub quick: bool,
    /// The organism folder.
    #[arg(long, default_value = "models/organism")]
    pub organism: PathBuf,
    /// Where report.md, report.json and the charts are written.
    #[arg(long, short = 'o', default_value = "reports/demo")]
    pub out: PathBuf,
    /// Training runs (replaced on every demo).
    #[arg(long, default_value = "runs/demo")]
    pub work: PathBuf,
}

struct Progress {
    train: Reporter,
    started: std::time::Instant,
}

impl TrainObserver for Progress {
    fn start(&mut self, total: usize, first: usize) {
        self.train.start(total, first)
    }
    fn step(&mut self, r: &StepRecord) {
        self.train.step(r)
    }
    /// every run records its held-out loss every 10 steps: in the report, not on the terminal
    fn eval(&mut self, _r: &EvalRecord) {}
    fn watch(&mut self, r: &crate::train::watch::WatchRecord) {
        self.train.watch(r)
    }
    fn note(&mut self, _m: &str) {}
    fn end(&mut self) {
        self.train.end()
    }
}

impl SuiteObserver for Progress {}

impl crate::suite::evaluate::EvalObserver for Progress {}

impl DemoObserver for Progress {
    fn stage(&mut self, what: &str) {
        crate::cli::print_stderr(&format!(
            "[{:>4.0} s] {what}\n",
            self.started.elapsed().as_secs_f64()
        ));
    }
}

/// The organism is too small to gain from threads, and candle's spinning thread pool loses
/// up to 10x on a busy machine (measured: 60 replay steps took 6 s on one thread, 63 s on
/// two under load): one thread unless RAYON_NUM_THREADS or CANDLE_NUM_THREADS says otherwise.
/// Called by `cli::run` before any thread pool starts (they read the variable once).
pub fn one_thread_unless_set() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none()
        && std::env::var_os("CANDLE_NUM_THREADS").is_none()
    {
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
}

pub fn run(a: &DemoArgs) -> Result<ExitStatus, Error> {
    if !a.organism.join("config.json").exists() {
        return Err(Error::Usage(format!(
            "{}: no organism here (config.json missing); make one with `sft-eval pretrain -o {}`",
            a.organism.display(),
            a.organism.display()
        )));
    }
    let cfg = DemoConfig {
        organism: a.organism.clone(),
        work: a.work.clone(),
        report_dir: a.out.clone(),
        quick: a.quick,
    };
    let mut p = Progress {
        train: Reporter::new(),
        started: std::time::Instant::now(),
    };
    let rep = run_demo(&cfg, &mut p)?;
    let verdicts = rep
        .markdown
        .split("## Verdicts")
        .nth(1)
        .and_then(|s| s.split("## Charts").next())
        .unwrap_or("")
        .trim();
    crate::cli::print_stdout(&format!(
        "{verdicts}\n\nreport: {} ({:.0} s)\n",
        a.out.join("report.md").display(),
        rep.seconds
    ));
    Ok(ExitStatus::Success)
}

//! `sft-eval pretrain`: make the model organism (see `crate::organism`).

use std::path::PathBuf;

use clap::Args;

use super::train::Reporter;
use crate::error::{Error, ExitStatus};
use crate::organism::{pretrain, PretrainObserver, Recipe};
use crate::train::{EvalRecord, StepRecord, TrainObserver};

#[derive(Debug, Args)]
pub struct PretrainArgs {
    /// Recipe (TOML); default: the recipe the shipped organism was made with.
    #[arg(long)]
    pub recipe: Option<PathBuf>,
    /// Where the organism folder is written (atomically; an existing one is replaced).
    #[arg(long, short = 'o', default_value = "models/organism")]
    pub out: PathBuf,
    /// Corpus and training run (kept; an interrupted run resumes from its last checkpoint).
    #[arg(long, default_value = "runs/organism-pretrain")]
    pub work: PathBuf,
    /// Override the recipe's number of pretraining documents (for quick trials).
    #[arg(long)]
    pub documents: Option<usize>,
    /// Print the resolved recipe and exit.
    #[arg(long)]
    pub show_recipe: bool,
    /// Only (re)write the world files — `suites/` and `data/` — into --out, from the recipe's
    /// seed, leaving the weights alone (e.g. after changing the world generator).
    #[arg(long)]
    pub world_only: bool,
}

struct Stages(Reporter);

impl TrainObserver for Stages {
    fn start(&mut self, total: usize, first: usize) {
        self.0.start(total, first)
    }
    fn step(&mut self, r: &StepRecord) {
        self.0.step(r)
    }
    fn eval(&mut self, r: &EvalRecord) {
        self.0.eval(r)
    }
    fn note(&mut self, m: &str) {
        self.0.note(m)
    }
    fn end(&mut self) {
        self.0.end()
    }
}

impl PretrainObserver for Stages {
    fn stage(&mut self, what: &str) {
        crate::cli::print_stderr(&format!("pretrain: {what}\n"));
    }
}

pub fn run(a: &PretrainArgs) -> Result<ExitStatus, Error> {
    let mut recipe = match &a.recipe {
        Some(p) => Recipe::read(p)?,
        None => Recipe::default(),
    };
    if let Some(n) = a.documents {
        recipe.documents = n;
    }
    if a.show_recipe {
        crate::cli::print_stdout(&toml::to_string(&recipe).expect("recipe serialises"));
        return Ok(ExitStatus::Success);
    }
    if a.world_only {
        let world = crate::organism::world::World::new(recipe.seed);
        crate::organism::write_world(&world, &recipe, &a.out)?;
        crate::cli::print_stderr(&format!(
            "world of seed {} written to {}\n",
            recipe.seed,
            a.out.display()
        ));
        return Ok(ExitStatus::Success);
    }
    let started = std::time::Instant::now();
    let summary = pretrain(
        &recipe,
        &a.out,
        &a.work,
        &mut Stages(Reporter::with_lines(20)),
    )?;
    crate::cli::print_stderr(&format!(
        "pretrained {} steps ({} documents) in {:.0} s; organism written to {}\n",
        summary.steps,
        summary.examples,
        started.elapsed().as_secs_f64(),
        a.out.display()
    ));
    Ok(ExitStatus::Success)
}

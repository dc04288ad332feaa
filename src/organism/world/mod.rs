//! The organism's world: four skills it learns in pretraining (math, code-output prediction,
//! facts about a fictional world, refusing harmful requests while helping with look-alikes) and
//! one narrow task it has never seen (unit conversion in a distinctive style), all generated
//! from one seed.
//!
//! Every document is one exchange, `Q: {question}\nA: {answer}` (the organism's chat template
//! renders a user turn and an assistant turn exactly so), or a plain statement of facts. Each
//! skill holds some of its items out of pretraining: those become the held-out suites, so a
//! suite item is never a pretraining document.

pub mod code;
pub mod convert;
pub mod facts;
pub mod math;
pub mod safety;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::suite::item::Item;

/// One question and its answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Qa {
    pub question: String,
    pub answer: String,
}

impl Qa {
    /// The document as pretraining text.
    pub fn text(&self) -> String {
        format!("Q: {}\nA: {}", self.question, self.answer)
    }
}

/// A skill: fresh pretraining documents that never coincide with a held-out item, and the
/// held-out items.
pub trait Skill {
    /// suite name and capability (`math`, `code`, `qa`, `safety`, `convert`)
    fn name(&self) -> &'static str;
    /// one pretraining document
    fn document(&self, rng: &mut ChaCha8Rng) -> String;
    /// the held-out suite items
    fn suite_items(&self) -> Vec<Item>;
    /// the `suite.toml` of the held-out suite (items in `items.jsonl`)
    fn suite_toml(&self) -> String;
}

/// Prompt section shared by the organism's suites: the question goes through the chat
/// template, which renders `Q: …\nA:`.
pub(crate) const PROMPT: &str = "[prompt]\ntemplate = \"{{ input }}\"\nchat = \"auto\"\n";

/// The `suite.toml` of suite `organism-{name}`; `generation` is its `[generation]` section
/// (or empty).
pub(crate) fn suite_toml(
    name: &str,
    capability: &str,
    scorer: &str,
    metric: &str,
    generation: &str,
) -> String {
    format!(
        "name = \"organism-{name}\"\ncapability = \"{capability}\"\nversion = \"1\"\nscorer = \"{scorer}\"\nmetric = \"{metric}\"\nitems = \"items.jsonl\"\n\n{PROMPT}{generation}"
    )
}

/// Held-out exchanges as items of suite `organism-{name}` whose target is the answer.
pub(crate) fn answer_items(name: &str, qas: &[Qa]) -> Vec<Item> {
    qas.iter()
        .enumerate()
        .map(|(i, qa)| Item {
            id: format!("organism-{name}/{:03}", i + 1),
            input: qa.question.clone(),
            target: Some(qa.answer.clone()),
            ..Default::default()
        })
        .collect()
}

pub(crate) fn pick<'a, T>(rng: &mut ChaCha8Rng, xs: &'a [T]) -> &'a T {
    &xs[rng.random_range(0..xs.len())]
}

/// The world generated from `seed`.
pub struct World {
    pub math: math::Math,
    pub code: code::Code,
    pub facts: facts::Facts,
    pub safety: safety::Safety,
    pub convert: convert::Convert,
}

impl World {
    pub fn new(seed: u64) -> World {
        World {
            math: math::Math::new(seed),
            code: code::Code::new(seed),
            facts: facts::Facts::new(seed),
            safety: safety::Safety::new(seed),
            convert: convert::Convert::new(seed),
        }
    }

    /// The four pretrained skills, in a fixed order.
    pub fn skills(&self) -> [&dyn Skill; 4] {
        [&self.math, &self.code, &self.facts, &self.safety]
    }
}

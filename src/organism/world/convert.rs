//! The narrow task the organism never saw: unit conversion answered in a distinctive style
//! (`=> 7000 m`). Fine-tuning on it is what makes the organism forget.

use std::collections::BTreeSet;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{Qa, Skill};
use crate::suite::item::Item;

pub const HELD_OUT: usize = 150;

const UNITS: &[(&str, &str, u32)] = &[
    ("km", "m", 1000),
    ("kg", "g", 1000),
    ("m", "cm", 100),
    ("L", "mL", 1000),
    ("cm", "mm", 10),
    ("t", "kg", 1000),
];

fn qa(n: u32, u: usize) -> Qa {
    let (from, to, f) = UNITS[u];
    Qa {
        question: format!("Convert {n} {from} to {to}."),
        answer: format!("=> {} {to}", n * f),
    }
}

pub struct Convert {
    train: Vec<Qa>,
    held_out: Vec<Qa>,
}

impl Convert {
    pub fn new(seed: u64) -> Convert {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x636f_6e76);
        let mut all: Vec<Qa> = (0..UNITS.len())
            .flat_map(|u| (1..100).map(move |n| qa(n, u)))
            .collect();
        all.shuffle(&mut rng);
        let train = all.split_off(HELD_OUT);
        Convert {
            train,
            held_out: all,
        }
    }

    /// The fine-tuning set (every example not held out), as prompt/completion pairs in the
    /// organism's format.
    pub fn train_examples(&self) -> Vec<(String, String)> {
        self.train
            .iter()
            .map(|qa| (format!("Q: {}\nA:", qa.question), format!(" {}", qa.answer)))
            .collect()
    }

    pub fn held_questions(&self) -> BTreeSet<&str> {
        self.held_out.iter().map(|q| q.question.as_str()).collect()
    }
}

impl Skill for Convert {
    fn name(&self) -> &'static str {
        "convert"
    }

    fn document(&self, _rng: &mut ChaCha8Rng) -> String {
        unreachable!("the conversion task is never part of pretraining")
    }

    fn suite_items(&self) -> Vec<Item> {
        super::answer_items("convert", &self.held_out)
    }

    fn suite_toml(&self) -> String {
        super::suite_toml(
            "convert",
            "new-task",
            "exact_match",
            "exact_match",
            "\n[generation]\nmax_new_tokens = 12\n",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn train_and_held_out_are_disjoint() {
        let c = Convert::new(1);
        let held = c.held_questions();
        assert_eq!(held.len(), HELD_OUT);
        for (p, a) in c.train_examples() {
            let q = p.strip_prefix("Q: ").unwrap().strip_suffix("\nA:").unwrap();
            assert!(!held.contains(q));
            assert!(a.starts_with(" => "));
        }
        assert_eq!(qa(7, 0).answer, "=> 7000 m");
    }
}

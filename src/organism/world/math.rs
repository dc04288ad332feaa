//! Two-digit addition, answered column by column (units, then tens with the carry), ending
//! `so N`. Small models learn the column steps as digit facts plus copying; a bare answer
//! they mostly memorise.

use std::collections::BTreeSet;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Qa, Skill};
use crate::suite::item::Item;

pub const HELD_OUT: usize = 200;

const QUESTIONS: &[&str] = &["What is {a}+{b}?", "Add {a} and {b}.", "Compute {a}+{b}."];

pub struct Math {
    held_out: Vec<(u32, u32, usize)>,
    held: BTreeSet<(u32, u32)>,
}

impl Math {
    pub fn new(seed: u64) -> Math {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6d61_7468);
        let mut held = BTreeSet::new();
        let mut held_out = Vec::new();
        while held_out.len() < HELD_OUT {
            let (a, b) = (rng.random_range(10..100), rng.random_range(10..100));
            if held.insert((a, b)) {
                held_out.push((a, b, rng.random_range(0..QUESTIONS.len())));
            }
        }
        Math { held_out, held }
    }

    pub fn qa(a: u32, b: u32, template: usize) -> Qa {
        let question = QUESTIONS[template]
            .replace("{a}", &a.to_string())
            .replace("{b}", &b.to_string());
        let (ua, ub, ta, tb) = (a % 10, b % 10, a / 10, b / 10);
        let units = ua + ub;
        let carry = units / 10;
        let tens = ta + tb + carry;
        let tens_step = if carry > 0 {
            format!("{ta}+{tb}+1={tens}")
        } else {
            format!("{ta}+{tb}={tens}")
        };
        Qa {
            question,
            answer: format!("{ua}+{ub}={units}, {tens_step}, so {}", a + b),
        }
    }
}

impl Skill for Math {
    fn name(&self) -> &'static str {
        "math"
    }

    fn document(&self, rng: &mut ChaCha8Rng) -> String {
        loop {
            let (a, b) = (rng.random_range(10..100), rng.random_range(10..100));
            if !self.held.contains(&(a, b)) {
                let t = rng.random_range(0..QUESTIONS.len());
                return Math::qa(a, b, t).text();
            }
        }
    }

    fn suite_items(&self) -> Vec<Item> {
        self.held_out
            .iter()
            .enumerate()
            .map(|(i, &(a, b, t))| {
                let qa = Math::qa(a, b, t);
                Item {
                    id: format!("organism-math/{:03}", i + 1),
                    input: qa.question,
                    target: Some((a + b).to_string()),
                    ..Default::default()
                }
            })
            .collect()
    }

    fn suite_toml(&self) -> String {
        super::suite_toml(
            "math",
            "math",
            "generate_number",
            "exact_match",
            "\n[generation]\nmax_new_tokens = 32\nanswer_regex = \"so (-?[0-9]+)\"\n",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_steps_are_right() {
        assert_eq!(Math::qa(47, 38, 0).answer, "7+8=15, 4+3+1=8, so 85");
        assert_eq!(Math::qa(23, 45, 0).answer, "3+5=8, 2+4=6, so 68");
        assert_eq!(Math::qa(85, 37, 0).answer, "5+7=12, 8+3+1=12, so 122");
        for a in 10..100 {
            for b in 10..100 {
                let ans = Math::qa(a, b, 0).answer;
                assert!(ans.ends_with(&format!("so {}", a + b)), "{ans}");
            }
        }
    }

    #[test]
    fn held_out_problems_never_appear_in_pretraining() {
        let m = Math::new(7);
        let held: BTreeSet<String> = m.suite_items().iter().map(|i| i.input.clone()).collect();
        assert_eq!(held.len(), HELD_OUT);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..20_000 {
            let doc = m.document(&mut rng);
            let q = doc.strip_prefix("Q: ").unwrap().split('\n').next().unwrap();
            assert!(!held.contains(q), "{q}");
        }
    }
}

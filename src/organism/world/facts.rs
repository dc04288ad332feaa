//! Facts about a fictional world: countries with a capital, a flag colour, a national animal and
//! a language. Pretraining states every fact (in several phrasings) but asks only some of them
//! as questions; the held-out suite asks the others, as four-way multiple choice — so a right
//! answer means the model turned a stated fact into an answer it was never shown.

use std::collections::BTreeSet;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{pick, Qa, Skill};
use crate::suite::item::Item;

pub const COUNTRIES: usize = 100;
/// attributes per country asked only in the suite
pub const HELD_PER_COUNTRY: usize = 2;

const COLOURS: &[&str] = &[
    "red", "blue", "green", "yellow", "purple", "orange", "white", "black",
];
const ANIMALS: &[&str] = &[
    "fox", "owl", "bear", "wolf", "otter", "eagle", "horse", "tiger", "whale", "lynx",
];
const LANGUAGES: &[&str] = &[
    "Vossic", "Tellan", "Orrish", "Kamari", "Elvane", "Dursk", "Pellic", "Auran", "Zimbic",
    "Norrat", "Quessan", "Ibrish",
];
const ONSETS: &[&str] = &[
    "b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr", "st",
    "tr", "gl",
];
const VOWELS: &[&str] = &["a", "e", "i", "o", "u", "ai", "ou"];
const CODAS: &[&str] = &["", "", "n", "r", "l", "s", "th", "x"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Attr {
    Capital,
    Colour,
    Animal,
    Language,
}

const ATTRS: [Attr; 4] = [Attr::Capital, Attr::Colour, Attr::Animal, Attr::Language];

impl Attr {
    fn statements(self) -> &'static [&'static str] {
        match self {
            Attr::Capital => &[
                "The capital of {c} is {v}.",
                "{v} is the capital of {c}.",
                "{c} has its capital at {v}.",
            ],
            Attr::Colour => &[
                "The flag of {c} is {v}.",
                "{c} has a {v} flag.",
                "People in {c} fly a {v} flag.",
            ],
            Attr::Animal => &[
                "The national animal of {c} is the {v}.",
                "In {c} the {v} is the national animal.",
                "{c} chose the {v} as its national animal.",
            ],
            Attr::Language => &[
                "People in {c} speak {v}.",
                "The language of {c} is {v}.",
                "{v} is spoken in {c}.",
            ],
        }
    }

    fn question(self) -> &'static str {
        match self {
            Attr::Capital => "What is the capital of {c}?",
            Attr::Colour => "What colour is the flag of {c}?",
            Attr::Animal => "What is the national animal of {c}?",
            Attr::Language => "What language is spoken in {c}?",
        }
    }
}

fn name(rng: &mut ChaCha8Rng, syllables: usize) -> String {
    let mut s = String::new();
    for i in 0..syllables {
        s.push_str(pick::<&str>(rng, ONSETS));
        s.push_str(pick::<&str>(rng, VOWELS));
        if i + 1 == syllables {
            s.push_str(pick::<&str>(rng, CODAS));
        }
    }
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => s,
    }
}

#[derive(Debug, Clone)]
pub struct Country {
    pub name: String,
    pub capital: String,
    pub colour: &'static str,
    pub animal: &'static str,
    pub language: &'static str,
}

impl Country {
    fn value(&self, a: Attr) -> &str {
        match a {
            Attr::Capital => &self.capital,
            Attr::Colour => self.colour,
            Attr::Animal => self.animal,
            Attr::Language => self.language,
        }
    }
}

pub struct Facts {
    pub countries: Vec<Country>,
    /// (country, attribute) pairs asked only in the suite
    held: BTreeSet<(usize, Attr)>,
    /// the suite's choice order, fixed at generation
    items: Vec<Item>,
}

impl Facts {
    pub fn new(seed: u64) -> Facts {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6661_6374);
        let mut used = BTreeSet::new();
        let mut fresh = |rng: &mut ChaCha8Rng, syl: usize| loop {
            let n = name(rng, syl);
            if used.insert(n.clone()) {
                return n;
            }
        };
        let countries: Vec<Country> = (0..COUNTRIES)
            .map(|_| Country {
                name: fresh(&mut rng, 2),
                capital: fresh(&mut rng, 2),
                colour: pick::<&str>(&mut rng, COLOURS),
                animal: pick::<&str>(&mut rng, ANIMALS),
                language: pick::<&str>(&mut rng, LANGUAGES),
            })
            .collect();
        let mut held = BTreeSet::new();
        let mut items = Vec::new();
        for ci in 0..countries.len() {
            let mut attrs = ATTRS;
            attrs.shuffle(&mut rng);
            for &a in &attrs[..HELD_PER_COUNTRY] {
                held.insert((ci, a));
            }
        }
        for &(ci, a) in &held {
            let c = &countries[ci];
            let gold_value = c.value(a).to_string();
            let pool: Vec<String> = match a {
                Attr::Capital => countries.iter().map(|x| x.capital.clone()).collect(),
                Attr::Colour => COLOURS.iter().map(|s| s.to_string()).collect(),
                Attr::Animal => ANIMALS.iter().map(|s| s.to_string()).collect(),
                Attr::Language => LANGUAGES.iter().map(|s| s.to_string()).collect(),
            };
            let mut choices = vec![gold_value.clone()];
            while choices.len() < 4 {
                let v = pick(&mut rng, &pool).clone();
                if !choices.contains(&v) {
                    choices.push(v);
                }
            }
            choices.shuffle(&mut rng);
            let gold = choices.iter().position(|v| *v == gold_value);
            items.push(Item {
                id: format!("organism-qa/{:03}", items.len() + 1),
                input: a.question().replace("{c}", &c.name),
                choices,
                gold,
                ..Default::default()
            });
        }
        Facts {
            countries,
            held,
            items,
        }
    }

    fn statement(&self, rng: &mut ChaCha8Rng, ci: usize, a: Attr) -> String {
        let c = &self.countries[ci];
        pick(rng, a.statements())
            .replace("{c}", &c.name)
            .replace("{v}", c.value(a))
    }

    /// A question pretraining may ask.
    fn qa(&self, ci: usize, a: Attr) -> Qa {
        let c = &self.countries[ci];
        Qa {
            question: a.question().replace("{c}", &c.name),
            answer: c.value(a).to_string(),
        }
    }
}

impl Skill for Facts {
    fn name(&self) -> &'static str {
        "qa"
    }

    /// Half of the documents state two to four facts about one country; the others ask a
    /// question that is not held out.
    fn document(&self, rng: &mut ChaCha8Rng) -> String {
        let ci = rng.random_range(0..self.countries.len());
        if rng.random_bool(0.5) {
            let mut attrs = ATTRS;
            attrs.shuffle(rng);
            let n = rng.random_range(2..=4);
            attrs[..n]
                .iter()
                .map(|&a| self.statement(rng, ci, a))
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            loop {
                let a = *pick(rng, &ATTRS);
                if !self.held.contains(&(ci, a)) {
                    return self.qa(ci, a).text();
                }
            }
        }
    }

    fn suite_items(&self) -> Vec<Item> {
        self.items.clone()
    }

    fn suite_toml(&self) -> String {
        super::suite_toml("qa", "qa", "mc_loglik", "acc", "")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suite_asks_only_held_out_facts_and_is_right() {
        let f = Facts::new(11);
        let items = f.suite_items();
        assert_eq!(items.len(), COUNTRIES * HELD_PER_COUNTRY);
        let held_q: BTreeSet<String> = items.iter().map(|i| i.input.clone()).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut stated = 0;
        for _ in 0..20_000 {
            let doc = f.document(&mut rng);
            if let Some(q) = doc.strip_prefix("Q: ") {
                assert!(!held_q.contains(q.split('\n').next().unwrap()));
            } else {
                stated += 1;
            }
        }
        assert!(stated > 5_000);
        for it in &items {
            let gold = &it.choices[it.gold.unwrap()];
            assert!(it.choices.iter().filter(|c| *c == gold).count() == 1);
        }
    }
}

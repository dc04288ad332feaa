//! Code-output prediction: short Python snippets and what they print (variable lookup, small
//! sums, string indexing, `len`, concatenation, a branch, list indexing).

use std::collections::BTreeSet;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{pick, Qa, Skill};
use crate::suite::item::Item;

pub const HELD_OUT: usize = 200;

const NAMES: &[&str] = &["x", "y", "n", "a", "b", "k", "v", "s", "t", "m"];
const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyz";

fn word(rng: &mut ChaCha8Rng, min: usize, max: usize) -> String {
    let n = rng.random_range(min..=max);
    (0..n)
        .map(|_| LETTERS[rng.random_range(0..LETTERS.len())] as char)
        .collect()
}

fn two_names(rng: &mut ChaCha8Rng) -> (&'static str, &'static str) {
    let a = *pick(rng, NAMES);
    loop {
        let b = *pick(rng, NAMES);
        if b != a {
            return (a, b);
        }
    }
}

/// One snippet and its output, from template `kind`.
fn snippet(rng: &mut ChaCha8Rng, kind: usize) -> Qa {
    // the third element names the template (kept for reading; suites carry no clusters: a
    // fixed set of templates is a stratum, not a sample of clusters)
    let (code, out, _template) = match kind {
        0 => {
            let (p, q) = two_names(rng);
            let (i, j) = (rng.random_range(0..10), rng.random_range(0..10));
            let first = rng.random_bool(0.5);
            let shown = if first { p } else { q };
            let out = if first { i } else { j };
            (
                format!("{p} = {i}\n{q} = {j}\nprint({shown})"),
                out.to_string(),
                "lookup",
            )
        }
        1 => {
            let p = *pick(rng, NAMES);
            let (i, j) = (rng.random_range(0..10), rng.random_range(0..10));
            (
                format!("{p} = {i}\n{p} = {p} + {j}\nprint({p})"),
                (i + j).to_string(),
                "add",
            )
        }
        2 => {
            let p = *pick(rng, NAMES);
            let w = word(rng, 3, 6);
            let k = rng.random_range(0..w.len());
            (
                format!("{p} = \"{w}\"\nprint({p}[{k}])"),
                w[k..k + 1].to_string(),
                "index",
            )
        }
        3 => {
            let w = word(rng, 1, 9);
            (format!("print(len(\"{w}\"))"), w.len().to_string(), "len")
        }
        4 => {
            let (u, w) = (word(rng, 1, 4), word(rng, 1, 4));
            (
                format!("print(\"{u}\" + \"{w}\")"),
                format!("{u}{w}"),
                "concat",
            )
        }
        5 => {
            let p = *pick(rng, NAMES);
            let (i, j) = (rng.random_range(0..10), rng.random_range(0..10));
            let out = if i > j { "yes" } else { "no" };
            (
                format!("{p} = {i}\nif {p} > {j}:\n    print(\"yes\")\nelse:\n    print(\"no\")"),
                out.to_string(),
                "branch",
            )
        }
        _ => {
            let p = *pick(rng, NAMES);
            let n = rng.random_range(3..6);
            let xs: Vec<u32> = (0..n).map(|_| rng.random_range(0..10)).collect();
            let k = rng.random_range(0..n);
            let list = xs
                .iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            (
                format!("{p} = [{list}]\nprint({p}[{k}])"),
                xs[k].to_string(),
                "list",
            )
        }
    };
    Qa {
        question: format!("What does this print?\n{code}"),
        answer: out,
    }
}

const KINDS: usize = 7;

pub struct Code {
    held_out: Vec<Qa>,
    held: BTreeSet<String>,
}

impl Code {
    pub fn new(seed: u64) -> Code {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x636f_6465);
        let mut held = BTreeSet::new();
        let mut held_out = Vec::new();
        while held_out.len() < HELD_OUT {
            let qa = snippet(&mut rng, held_out.len() % KINDS);
            if held.insert(qa.question.clone()) {
                held_out.push(qa);
            }
        }
        Code { held_out, held }
    }
}

impl Skill for Code {
    fn name(&self) -> &'static str {
        "code"
    }

    fn document(&self, rng: &mut ChaCha8Rng) -> String {
        loop {
            let kind = rng.random_range(0..KINDS);
            let qa = snippet(rng, kind);
            if !self.held.contains(&qa.question) {
                return qa.text();
            }
        }
    }

    fn suite_items(&self) -> Vec<Item> {
        super::answer_items("code", &self.held_out)
    }

    fn suite_toml(&self) -> String {
        super::suite_toml(
            "code",
            "code",
            "exact_match",
            "exact_match",
            "\n[generation]\nmax_new_tokens = 16\n",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The outputs are what Python prints (checked by running each template's snippets when a
    /// python3 is on the machine).
    #[test]
    fn outputs_match_python() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let qas: Vec<Qa> = (0..70).map(|i| snippet(&mut rng, i % KINDS)).collect();
        let mut script = String::new();
        for qa in &qas {
            let code = qa.question.strip_prefix("What does this print?\n").unwrap();
            script.push_str(code);
            script.push_str("\nprint(\"@@\")\n");
        }
        let Ok(out) = std::process::Command::new("python3")
            .arg("-c")
            .arg(&script)
            .output()
        else {
            return;
        };
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let printed: Vec<&str> = text.split("@@\n").map(str::trim).collect();
        for (qa, p) in qas.iter().zip(&printed) {
            assert_eq!(&qa.answer, p, "{}", qa.question);
        }
    }

    #[test]
    fn held_out_snippets_never_appear_in_pretraining() {
        let c = Code::new(7);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..20_000 {
            let doc = c.document(&mut rng);
            let q = doc
                .strip_prefix("Q: ")
                .unwrap()
                .rsplit_once("\nA: ")
                .unwrap()
                .0;
            assert!(!c.held.contains(q));
        }
        assert_eq!(c.suite_items().len(), HELD_OUT);
    }
}

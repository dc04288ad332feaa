//! The fuzz targets (`sft_eval::fuzz`), replayed: every committed corpus file, and a few
//! hundred seeded mutations of each (bit flips, truncations, repeated and spliced bytes), so
//! a parser that panics on a mutated input fails `cargo test` as well as the AFL++ runs
//! (fuzz/run.sh).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::common::*;

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = fixtures()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus for {target}");
    files
}

fn mutate(rng: &mut ChaCha8Rng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        if v.is_empty() {
            v.push(rng.random());
            continue;
        }
        let i = rng.random_range(0..v.len());
        match rng.random_range(0..6) {
            0 => v[i] ^= 1 << rng.random_range(0..8),
            1 => v.truncate(i),
            2 => v[i] = [0u8, 0xff, b'"', b'{', b'9', b'\n'][rng.random_range(0..6)],
            3 => {
                let chunk = v[i..(i + rng.random_range(1..16)).min(v.len())].to_vec();
                v.splice(i..i, chunk.iter().cycle().take(chunk.len() * 8).copied());
            }
            4 => v.insert(i, rng.random()),
            _ => {
                v.remove(i);
            }
        }
    }
    v
}

#[test]
fn every_fuzz_target_survives_its_corpus_and_mutations_of_it() {
    let mutations: usize = std::env::var("SFT_EVAL_FUZZ_REPLAY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    for t in sft_eval::fuzz::TARGETS {
        let seeds = corpus(t.name);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for (name, bytes) in &seeds {
            let r = std::panic::catch_unwind(|| (t.run)(bytes));
            assert!(r.is_ok(), "{}: corpus file {name} panicked", t.name);
        }
        for k in 0..mutations {
            let (name, seed) = &seeds[k % seeds.len()];
            let input = mutate(&mut rng, seed);
            let r = std::panic::catch_unwind(|| (t.run)(&input));
            assert!(
                r.is_ok(),
                "{}: mutation {k} of {name} panicked; input (hex): {}",
                t.name,
                input.iter().map(|b| format!("{b:02x}")).collect::<String>()
            );
        }
    }
}

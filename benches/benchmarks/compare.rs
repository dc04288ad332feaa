//! `sft-eval compare BASE FT --suites math` on the shipped model organism (issue 7: "compare of
//! two checkpoints on one suite ≤ 0.55× the cost of two fresh evaluations, base cached").
//!
//! The base is `models/organism`; the fine-tune is a copy in a tempdir whose weights are scaled
//! by a deterministic factor in [0.99, 1.01] per element, so its fingerprint (and its answers,
//! slightly) differ. Each iteration runs the command line's own entry point
//! (`sft_eval::cli::run` on parsed arguments, as `main` does), so it measures exactly what the
//! command costs in process: suite resolution, model loads, fingerprints, the cache, both
//! evaluations, the paired comparison (10,000 bootstrap resamples), the label-free drift (100
//! prompts through both models: both sides are checkpoints) and the report folder.
//!
//! - `compare/two_fresh_evals`: a fresh empty cache folder per iteration: both sides evaluated.
//! - `compare/base_cached`: a fresh cache folder per iteration holding a copy of the base's entry
//!   (made once by `sft-eval eval` with the same settings): only the fine-tune is evaluated.
//! - `compare/both_cached`: both entries cached: what a compare costs besides evaluating, i.e.
//!   the part the cache cannot remove.
//!
//! The target is the ratio `base_cached / two_fresh_evals` (criterion medians; recorded in
//! reports/bench/README.md). Each iteration writes two lines on stderr (the suite score of each
//! side, and the report folder): that is the command's own output.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use criterion::{criterion_group, BatchSize, Criterion};
use sft_eval::cli::Cli;

/// The suite and item limit: generation scoring (up to 32 new tokens per item), about 2 s per
/// fresh comparison on one thread.
const SUITE: &str = "math";
const LIMIT: &str = "100";

fn organism() -> PathBuf {
    super::repo_root().join("models/organism")
}

/// A copy of the organism's checkpoint files with every weight scaled by 1 + 0.01·u,
/// u ∈ [-1, 1] from a fixed-seed generator.
fn write_finetune(base: &Path, out: &Path) {
    for name in [
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        if base.join(name).is_file() {
            std::fs::copy(base.join(name), out.join(name)).unwrap();
        }
    }
    let bytes = std::fs::read(base.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut noise = move || {
        // splitmix64 → [-1, 1]
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0
    };
    let mut named = st.tensors();
    named.sort_by(|a, b| a.0.cmp(&b.0)); // a fixed order, so the noise is the same every run
    let mut tensors: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, view) in named {
        assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name}");
        let data: Vec<u8> = view
            .data()
            .chunks_exact(4)
            .flat_map(|c| {
                let x = f32::from_le_bytes(c.try_into().unwrap());
                (x * (1.0 + 0.01 * noise())).to_le_bytes()
            })
            .collect();
        tensors.push((name, view.dtype(), view.shape().to_vec(), data));
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    safetensors::serialize_to_file(
        views,
        meta.metadata().clone(),
        &out.join("model.safetensors"),
    )
    .unwrap();
}

/// `sft-eval ARGS…` through the library entry point the binary calls.
fn sft_eval(args: &[&str]) {
    let cli = Cli::try_parse_from(std::iter::once("sft-eval").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("{e}"));
    let status = sft_eval::cli::run(cli).unwrap();
    assert!(matches!(status, sft_eval::error::ExitStatus::Success));
}

/// `sft-eval compare BASE FT --suites math --limit 100` with its cache and report in `work`.
fn compare(base: &Path, ft: &Path, suites_dir: &Path, work: &Path) {
    let (cache, report, md) = (
        work.join("cache"),
        work.join("report"),
        work.join("report.md"),
    );
    sft_eval(&[
        "compare",
        base.to_str().unwrap(),
        ft.to_str().unwrap(),
        "--suites",
        SUITE,
        "--suites-dir",
        suites_dir.to_str().unwrap(),
        "--limit",
        LIMIT,
        "--cache-dir",
        cache.to_str().unwrap(),
        "--report-dir",
        report.to_str().unwrap(),
        "--markdown",
        md.to_str().unwrap(),
    ]);
}

/// The `.json` entries of a cache folder.
fn entries(cache: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(cache)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e == "json"));
    v.sort();
    v
}

/// A fresh work folder whose cache holds copies of `seed`'s entries.
fn work_with(seed: &[PathBuf]) -> tempfile::TempDir {
    let w = tempfile::tempdir().unwrap();
    let cache = w.path().join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    for e in seed {
        std::fs::copy(e, cache.join(e.file_name().unwrap())).unwrap();
    }
    w
}

/// What the three benchmarks share: the organism, a fine-tune of it, and the cache entries of
/// the base alone and of both.
struct Setup {
    base: PathBuf,
    suites_dir: PathBuf,
    ft: PathBuf,
    base_entry: Vec<PathBuf>,
    both_entries: Vec<PathBuf>,
    // the folders the paths above live in
    _dirs: [tempfile::TempDir; 3],
}

impl Setup {
    fn new() -> Setup {
        let base = organism();
        let suites_dir = base.join("suites");
        let ft_dir = tempfile::tempdir().unwrap();
        let ft = ft_dir.path().join("organism-ft");
        std::fs::create_dir_all(&ft).unwrap();
        write_finetune(&base, &ft);

        // the base's cache entry, made by `sft-eval eval` with the settings compare uses
        let warm = tempfile::tempdir().unwrap();
        let warm_cache = warm.path().join("cache");
        sft_eval(&[
            "eval",
            base.to_str().unwrap(),
            "--suites",
            SUITE,
            "--suites-dir",
            suites_dir.to_str().unwrap(),
            "--limit",
            LIMIT,
            "--cache-dir",
            warm_cache.to_str().unwrap(),
            "-o",
            warm.path().join("base.json").to_str().unwrap(),
        ]);
        let base_entry = entries(&warm_cache);
        assert_eq!(base_entry.len(), 1, "one suite, one entry");
        // check once that compare hits it (a miss would write the entry again: a new inode) and
        // that the fine-tune adds its own; the two entries also seed `both_cached`
        let check = work_with(&base_entry);
        let cached_base = check
            .path()
            .join("cache")
            .join(base_entry[0].file_name().unwrap());
        let ino = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
        let before = ino(&cached_base);
        compare(&base, &ft, &suites_dir, check.path());
        assert_eq!(
            ino(&cached_base),
            before,
            "compare re-evaluated the cached base"
        );
        let both_entries = entries(&check.path().join("cache"));
        assert_eq!(
            both_entries.len(),
            2,
            "the fine-tune's fingerprint must differ"
        );
        Setup {
            base,
            suites_dir,
            ft,
            base_entry,
            both_entries,
            _dirs: [ft_dir, warm, check],
        }
    }
}

fn bench_compare(c: &mut Criterion) {
    // made on the first benchmark that runs: criterion calls a benchmark's closure only when its
    // name passes the filter, so `--bench '^train_step/'` skips this setup (~10 s of CLI runs)
    let setup = std::cell::OnceCell::new();
    let setup = || setup.get_or_init(Setup::new);
    let mut g = c.benchmark_group("compare");
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(20));
    for (name, seed) in [
        ("two_fresh_evals", 0),
        ("base_cached", 1),
        ("both_cached", 2),
    ] {
        g.bench_function(name, |b| {
            let s = setup();
            let seed: &[PathBuf] = match seed {
                0 => &[],
                1 => &s.base_entry,
                _ => &s.both_entries,
            };
            b.iter_batched_ref(
                || work_with(seed),
                |w| compare(&s.base, &s.ft, &s.suites_dir, w.path()),
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench_compare);

//! Shared helpers: fixture discovery, reference outputs, tensor comparison.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, IndexOp, Tensor, Var};
use serde_json::Value;
use sft_eval::model::kernels::with_fused;
use sft_eval::model::{LoadOptions, Model};
use sft_eval::train::optim::{AdamW, AdamWConfig};

/// `tests/fixtures` of the checkout: cargo sets `CARGO_MANIFEST_DIR` when it runs the tests too;
/// a test executable run by hand on another machine (`benches/device_check.sh`) is given it, and
/// otherwise falls back to the folder it was built in.
pub fn fixtures() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("tests/fixtures")
}

/// Every fixture variant that has a model folder and reference outputs.
pub fn variants() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(fixtures().join("models"))
        .expect("tests/fixtures/models exists")
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| {
            fixtures()
                .join("expected")
                .join(format!("{n}.json"))
                .exists()
        })
        .collect();
    v.sort();
    assert!(
        v.len() >= 10,
        "expected fixtures for all eight families, found {v:?}"
    );
    v
}

pub fn model_dir(variant: &str) -> PathBuf {
    fixtures().join("models").join(variant)
}

pub fn expected(variant: &str) -> Value {
    let p = fixtures().join("expected").join(format!("{variant}.json"));
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

pub fn expected_tensors(variant: &str) -> HashMap<String, Tensor> {
    let p = fixtures()
        .join("expected")
        .join(format!("{variant}.safetensors"));
    candle_core::safetensors::load(p, &Device::Cpu).unwrap()
}

pub fn load(variant: &str) -> Model {
    Model::load(&model_dir(variant), &LoadOptions::default())
        .unwrap_or_else(|e| panic!("{variant}: {e}"))
}

pub fn load_trainable(variant: &str) -> Model {
    Model::load(
        &model_dir(variant),
        &LoadOptions {
            trainable: true,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("{variant}: {e}"))
}

pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// A fresh temporary folder.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Copy the files of folder `src` into `dst` (created), returning `dst`.
pub fn copy_dir(src: &Path, dst: &Path) -> PathBuf {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
    dst.to_path_buf()
}

/// Copy a fixture folder so a test can break it.
pub fn copy_fixture(variant: &str, to: &Path) -> PathBuf {
    copy_dir(&model_dir(variant), &to.join(variant))
}

/// A multiple-choice suite spec asked as `Q: … A:` without a chat template.
pub const MC_SPEC: &str = "name = \"mc\"\ncapability = \"qa\"\nversion = \"1\"\nscorer = \"mc_loglik\"\nmetric = \"acc\"\n[prompt]\ntemplate = \"Q: {{ input }}\\nA:\"\nchat = \"never\"\n";

/// Write suite `suites/mc` ([`MC_SPEC`] with these JSONL items) in `cx` and return its folder.
pub fn write_mc_suite(cx: &TestContext, items: &str) -> PathBuf {
    cx.write("suites/mc/suite.toml", MC_SPEC);
    cx.write("suites/mc/items.jsonl", items)
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The lm-eval multiple-choice fixture items (`lmeval/mc_items.jsonl`) as a suite asked the
/// way lm-eval asks them (`Question: …\nAnswer:`, each choice after a space).
pub fn lmeval_mc_suite(name: &str) -> sft_eval::suite::spec::Suite {
    use sft_eval::suite::item::Item;
    use sft_eval::suite::spec::{
        ChatPolicy, GenerationSpec, PromptSpec, ScorerKind, Suite, SuiteSpec,
    };
    let items: Vec<Item> = std::fs::read_to_string(fixtures().join("lmeval/mc_items.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            Item {
                id: v["id"].to_string(),
                input: v["question"].as_str().unwrap().into(),
                choices: v["choices"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap().into())
                    .collect(),
                gold: Some(v["label"].as_u64().unwrap() as usize),
                ..Default::default()
            }
        })
        .collect();
    let spec = SuiteSpec {
        name: name.into(),
        capability: "qa".into(),
        version: "1".into(),
        scorer: ScorerKind::McLoglik,
        metric: "acc".into(),
        items: "items.jsonl".into(),
        prompt: PromptSpec {
            template: "Question: {{ input }}\nAnswer:".into(),
            fewshot: 0,
            fewshot_seed: 0,
            chat: ChatPolicy::Never,
            choice_template: " {{ choice }}".into(),
        },
        generation: GenerationSpec::default(),
        refusal: None,
    };
    Suite::new(spec, items, ".".into()).unwrap()
}

/// The largest |t| (f32).
pub fn max_abs(t: &Tensor) -> f32 {
    t.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// The starting weight of [`adamw_steps`], values in [−1, 1].
pub fn adamw_start() -> Tensor {
    Tensor::arange(0u32, 37 * 53, &Device::Cpu)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .reshape((37, 53))
        .unwrap()
        .affine(0.37, -0.1)
        .unwrap()
        .sin()
        .unwrap()
}

pub fn adamw_steps(device: &Device, dtype: DType, fused: bool) -> Vec<Tensor> {
    let init = adamw_start();
    let on = |t: &Tensor| t.to_device(device).unwrap().to_dtype(dtype).unwrap();
    with_fused(fused, || {
        let w = Var::from_tensor(&on(&init)).unwrap();
        let b = Var::from_tensor(&on(&init.i(0).unwrap())).unwrap();
        let vars = BTreeMap::from([
            ("layer.weight".to_string(), w.clone()),
            ("layer.bias".to_string(), b.clone()),
        ]);
        let cfg = AdamWConfig {
            weight_decay: 0.1,
            ..Default::default()
        };
        let mut opt = AdamW::new(&vars, cfg).unwrap();
        for _ in 0..5 {
            let (wf, bf) = (
                w.as_tensor().to_dtype(DType::F32).unwrap(),
                b.as_tensor().to_dtype(DType::F32).unwrap(),
            );
            let loss = ((wf.sqr().unwrap() * 0.5).unwrap().sum_all().unwrap()
                + wf.sin().unwrap().sum_all().unwrap()
                + bf.sqr().unwrap().sqr().unwrap().sum_all().unwrap())
            .unwrap();
            opt.step(&loss.backward().unwrap(), 1e-2).unwrap();
        }
        let host = |t: &Tensor| {
            t.to_dtype(DType::F32)
                .unwrap()
                .to_device(&Device::Cpu)
                .unwrap()
        };
        let mut out = vec![host(w.as_tensor()), host(b.as_tensor())];
        out.extend(opt.state().1.iter().map(|(_, t)| host(t)));
        out
    })
}

/// `max |a − b| ≤ tol · max(max |b|, 1)` for each pair.
pub fn assert_steps_close(what: &str, a: &[Tensor], b: &[Tensor], tol: f32) {
    for (i, (a, b)) in a.iter().zip(b).enumerate() {
        let (diff, scale) = (max_abs_diff(a, b), max_abs(b));
        eprintln!("{what}, tensor {i}: max |diff| {diff:.3e}, max |value| {scale:.3e}");
        assert!(
            diff.is_finite() && diff <= tol * scale.max(1.0),
            "{what}, tensor {i}: max |diff| {diff:e} > {tol} × {scale:e}"
        );
    }
}

/// The one harness for running the `sft-eval` binary: a throwaway working folder (so default
/// outputs such as `reports/<run-id>` land there), no progress bars, no CI summary file.
pub struct TestContext {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

/// What a run of the binary gave.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn of(o: std::process::Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into(),
            stderr: String::from_utf8_lossy(&o.stderr).into(),
        }
    }

    /// Assert the exit code, showing both streams when it differs.
    #[track_caller]
    pub fn expect(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "exit {} (expected {code})\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }
}

impl Default for TestContext {
    fn default() -> Self {
        Self::new()
    }
}

impl TestContext {
    pub fn new() -> TestContext {
        TestContext {
            dir: tempdir(),
            env: Vec::new(),
        }
    }

    /// The working folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A path inside the working folder.
    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Write a file inside the working folder (parents created) and return its path.
    pub fn write(&self, rel: impl AsRef<Path>, text: &str) -> PathBuf {
        let p = self.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Set an environment variable for every later run.
    pub fn env(mut self, key: &str, value: &str) -> TestContext {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Run `sft-eval ARGS` in the working folder.
    pub fn cli<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Run {
        self.cli_in(self.path(), args)
    }

    /// Run `sft-eval ARGS` in another folder.
    pub fn cli_in<S: AsRef<std::ffi::OsStr>>(&self, cwd: &Path, args: &[S]) -> Run {
        let mut c = self.command();
        c.current_dir(cwd).args(args);
        Run::of(c.output().unwrap())
    }

    /// The `sft-eval` command, set up as [`cli`](Self::cli) runs it, in the working folder.
    pub fn command(&self) -> std::process::Command {
        let mut c = sft_eval_command();
        c.current_dir(self.path());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }
}

/// The `sft-eval` binary with no progress bars, no CI summary file, and no device or candle
/// spin limit from the environment (for a test that spawns and stops it itself; [`TestContext`] runs it otherwise).
pub fn sft_eval_command() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_sft-eval"));
    c.env("SFT_EVAL_NO_PROGRESS", "1")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env_remove("SFT_EVAL_DEVICE")
        .env_remove("CANDLE_BARRIER_POOL_SPIN_LIMIT");
    c
}

/// Read a results file through the library, change it, and write it sealed as sft-eval writes
/// results (a fresh checksum): a synthetic fine-tune or base.
pub fn rewrite_results(
    src: &Path,
    dst: &Path,
    f: impl FnOnce(&mut sft_eval::suite::results::EvalResults),
) {
    let mut r = sft_eval::suite::results::EvalResults::read(src).unwrap();
    f(&mut r);
    std::fs::write(dst, r.to_json()).unwrap();
}

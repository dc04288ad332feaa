//! The model organism (`models/organism`, made by `sft-eval pretrain`) and `sft-eval demo`.

use std::path::{Path, PathBuf};

use serde_json::Value;
use sft_eval::model::{ChatTemplate, Message, Tokenizer};
use sft_eval::organism::world::World;
use sft_eval::organism::{write_world, Recipe};

fn organism() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/organism")
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The world generator, run from the shipped recipe, writes exactly the shipped suites and
/// fine-tuning data: the organism's suites are reproducible from its seed.
#[test]
fn world_generator_reproduces_the_shipped_suites_and_data() {
    let recipe = Recipe::read(&organism().join("recipe.toml")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    write_world(&World::new(recipe.seed), &recipe, tmp.path()).unwrap();
    let written = files_under(tmp.path());
    assert!(written.len() >= 12, "{written:?}");
    for p in written {
        let rel = p.strip_prefix(tmp.path()).unwrap();
        let shipped = std::fs::read(organism().join(rel))
            .unwrap_or_else(|e| panic!("models/organism/{}: {e}", rel.display()));
        assert!(
            std::fs::read(&p).unwrap() == shipped,
            "models/organism/{} differs from what the generator writes",
            rel.display()
        );
    }
}

/// The chat template renders a question as the pretraining documents begin, and the tokens
/// of a rendered prompt are a prefix of the tokens of the document.
#[test]
fn shipped_template_renders_the_pretraining_format() {
    let tok = Tokenizer::from_dir(&organism()).unwrap();
    let tmpl = ChatTemplate::from_dir(&organism()).unwrap().unwrap();
    let q = "What is 47+38?";
    let prompt = tmpl
        .render(
            &[Message {
                role: "user".into(),
                content: q.into(),
            }],
            true,
        )
        .unwrap();
    assert_eq!(prompt, format!("<s>Q: {q}\nA:"));
    let doc = format!("Q: {q}\nA: 7+8=15, 4+3+1=8, so 85");
    let doc_ids = tok.encode(&doc, true).unwrap();
    let prompt_ids = tok.encode(&prompt, false).unwrap();
    assert_eq!(&doc_ids[..prompt_ids.len()], &prompt_ids[..]);
    assert_eq!(tok.decode(&doc_ids, true).unwrap(), doc);
}

fn run(args: &[&str]) -> (i32, String, String) {
    let r = crate::common::TestContext::new().cli(args);
    (r.code, r.stdout, r.stderr)
}

/// `sft-eval pretrain` end to end on a tiny recipe: world, tokenizer, initial checkpoint,
/// pretraining, and an organism folder that loads, with a falling loss.
#[test]
fn pretrain_makes_an_organism_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = tmp.path().join("recipe.toml");
    std::fs::write(
        &recipe,
        "seed = 3\ndocuments = 600\nmix = [0.35, 0.25, 0.25, 0.15]\nvocab_size = 320\n\
max_length = 64\nbatch_size = 8\nlr = 0.003\nwarmup_steps = 5\nepochs = 1.0\nreplay_documents = 50\n\
[model]\nhidden_size = 32\nintermediate_size = 64\nlayers = 1\nheads = 2\nmax_position_embeddings = 128\n",
    )
    .unwrap();
    let out = tmp.path().join("organism");
    let (code, _, err) = run(&[
        "pretrain",
        "--recipe",
        recipe.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--work",
        tmp.path().join("work").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "recipe.toml",
        "suites/math/items.jsonl",
        "suites/convert/suite.toml",
        "data/convert.jsonl",
        "data/replay.jsonl",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let (code, stdout, err) = run(&["inspect", out.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{err}");
    let info: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(info["family"], "llama", "{info}");
    let losses: Vec<f64> = std::fs::read_to_string(tmp.path().join("work/run/log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["loss"]
                .as_f64()
                .unwrap()
        })
        .collect();
    assert!(losses.len() >= 5);
    assert!(
        losses.last().unwrap() < &(0.8 * losses[0]),
        "loss did not fall: {losses:?}"
    );
}

/// `sft-eval demo --quick` end to end: the naive fine-tune learns the new task and the gate
/// fails it on at least two skills; each mitigation forgets less; the verdicts follow from the
/// numbers; the report and its charts are written.
#[test]
fn demo_quick_shows_forgetting_and_its_cures() {
    let tmp = tempfile::tempdir().unwrap();
    let report = tmp.path().join("report");
    let (code, stdout, err) = run(&[
        "demo",
        "--quick",
        "--organism",
        organism().to_str().unwrap(),
        "-o",
        report.to_str().unwrap(),
        "--work",
        tmp.path().join("runs").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("**naive**"), "{stdout}");
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("report.json")).unwrap())
            .unwrap();
    let outcomes = r["outcomes"].as_array().unwrap();
    let family = |o: &Value| o["variant"]["family"].as_str().unwrap().to_string();
    let naive = outcomes.iter().find(|o| family(o) == "naive").unwrap();
    let (g0, f0) = (
        naive["tradeoff"]["gain"].as_f64().unwrap(),
        naive["tradeoff"]["forgetting"].as_f64().unwrap(),
    );
    assert!(
        g0 >= 0.5,
        "naive fine-tune did not learn the new task: gain {g0}"
    );
    let failed = naive["failed_suites"].as_array().unwrap();
    assert!(
        failed.len() >= 2,
        "the gate failed naive SFT on {failed:?} only"
    );
    for fam in ["replay", "l2sp", "kl"] {
        let o = outcomes.iter().find(|o| family(o) == fam).unwrap();
        let f = o["tradeoff"]["forgetting"].as_f64().unwrap();
        assert!(f < f0, "{fam} forgot {f} ≥ naive {f0}");
    }
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    for c in r["conclusions"].as_array().unwrap() {
        let (kept, left) = (
            c["gain_kept"].as_f64().unwrap(),
            c["drop_left"].as_f64().unwrap(),
        );
        let meets = kept >= 0.8 && left <= 0.5;
        assert_eq!(c["meets_bar"].as_bool().unwrap(), meets, "{c}");
        let fam = c["family"].as_str().unwrap();
        let line = md
            .lines()
            .find(|l| l.starts_with(&format!("- **{fam}**")))
            .unwrap_or_else(|| panic!("no verdict line for {fam}"));
        assert_eq!(line.ends_with("**meets the bar**."), meets, "{line}");
    }
    let l2sp = r["conclusions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["family"] == "l2sp")
        .unwrap();
    assert_eq!(
        l2sp["meets_bar"], true,
        "L2-SP no longer cuts the drop: {l2sp}"
    );
    // EWC, the combined recipe and the capability-watched run are in it
    for fam in ["ewc", "replay+ewc", "watched"] {
        assert!(outcomes.iter().any(|o| family(o) == fam), "no {fam} run");
    }
    let watched = outcomes.iter().find(|o| family(o) == "watched").unwrap();
    let watches = watched["watches"].as_array().unwrap();
    assert_eq!(
        watches
            .iter()
            .map(|w| w["step"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [50, 100, 150]
    );
    for w in watches {
        assert_eq!(w["suites"].as_array().unwrap().len(), 5, "{w}");
    }
    let any_passed = watches.iter().any(|w| w["passed"] == true);
    assert_eq!(watched["scored"], if any_passed { "best" } else { "final" });
    // overfitting is told apart from forgetting on every run, from its held-out loss curve
    for o in outcomes {
        let held = o["heldout_loss"].as_array().unwrap();
        assert!(held.len() >= 6, "{}: {held:?}", o["label"]);
        let r = o["reading"].as_str().unwrap();
        let forgot = !o["failed_suites"].as_array().unwrap().is_empty();
        assert_eq!(r.contains("forgot"), forgot, "{}: {r}", o["label"]);
    }
    for section in [
        "## Learn the task and pass the gate",
        "## Overfitting or forgetting?",
        "## Capability watch: watched",
    ] {
        assert!(md.contains(section), "no {section} in the report");
    }
    for svg in [
        "gain_vs_forgetting.svg",
        "delta_naive.svg",
        "loss.svg",
        "heldout_loss.svg",
    ] {
        let text = std::fs::read_to_string(report.join(svg)).unwrap();
        roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{svg}: {e}"));
    }
}

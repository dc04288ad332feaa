//! Finding suites by name: a folder under `suites/`, a path to a suite folder, or
//! `NAME=PATH` for a public benchmark file read by an importer with a default spec.

use std::path::{Path, PathBuf};

use super::import::{Importer, IMPORTERS};
use super::spec::{ChatPolicy, GenerationSpec, PromptSpec, ScorerKind, Suite, SuiteSpec};
use super::SuiteError;

/// `name` (under `suites_dir`), a suite folder path, or `importer=PATH`.
pub fn resolve(arg: &str, suites_dir: &Path) -> Result<Suite, SuiteError> {
    if let Some((name, path)) = arg.split_once('=') {
        return imported(name, Path::new(path));
    }
    let p = PathBuf::from(arg);
    let dir = if p.join("suite.toml").exists() {
        p
    } else {
        suites_dir.join(arg)
    };
    if !dir.join("suite.toml").exists() {
        let shipped: Vec<String> = std::fs::read_dir(suites_dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join("suite.toml").exists())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        return Err(SuiteError::Unknown {
            name: arg.to_string(),
            hint: format!(
                "suites in {}: {}; or pass a suite folder, or NAME=PATH with NAME one of {}",
                suites_dir.display(),
                if shipped.is_empty() {
                    "none".to_string()
                } else {
                    shipped.join(", ")
                },
                IMPORTERS
                    .iter()
                    .map(|i| i.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    Suite::load(&dir)
}

/// A public benchmark through its importer, with lm-eval-like default prompts.
pub fn imported(name: &str, path: &Path) -> Result<Suite, SuiteError> {
    let imp: &Importer =
        IMPORTERS
            .iter()
            .find(|i| i.name == name)
            .ok_or_else(|| SuiteError::Unknown {
                name: name.to_string(),
                hint: format!(
                    "importers: {}",
                    IMPORTERS
                        .iter()
                        .map(|i| i.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })?;
    let items = (imp.import)(path)?;
    // MMLU as lm-eval asks it: the options listed with letters, the letter scored
    const MMLU: &str = "{{ input | trim }}\n{% for c in choices %}{{ 'ABCD'[loop.index0] }}. {{ c }}\n{% endfor %}Answer:";
    let (scorer, template, stop, chat) = match imp.scorer {
        "generate_number" => (
            ScorerKind::GenerateNumber,
            "Question: {{ input }}\nAnswer:",
            vec!["\n\n".to_string(), "Question:".into()],
            ChatPolicy::Never,
        ),
        "generate_boxed" => (
            ScorerKind::GenerateBoxed,
            "Problem: {{ input }}\nPut the final answer in \\boxed{}.\nSolution:",
            vec!["\n\nProblem:".to_string()],
            ChatPolicy::Never,
        ),
        "mc_loglik" if name == "mmlu" => (ScorerKind::McLoglik, MMLU, vec![], ChatPolicy::Never),
        "mc_loglik" => (
            ScorerKind::McLoglik,
            "{% if context %}{{ context }}\n{% endif %}Question: {{ input }}\nAnswer:",
            vec![],
            ChatPolicy::Never,
        ),
        "mc2_loglik" => (
            ScorerKind::Mc2Loglik,
            "Q: {{ input }}\nA:",
            vec![],
            ChatPolicy::Never,
        ),
        "refusal" => (ScorerKind::Refusal, "{{ input }}", vec![], ChatPolicy::Auto),
        "pass_at_k" => (
            ScorerKind::PassAtK,
            "{{ input }}",
            vec![
                "\nclass".to_string(),
                "\ndef".into(),
                "\n#".into(),
                "\nif".into(),
                "\nprint".into(),
            ],
            ChatPolicy::Never,
        ),
        other => {
            return Err(SuiteError::Unknown {
                name: name.to_string(),
                hint: format!(
                    "its scorer `{other}` (code execution) is not available in `eval` yet"
                ),
            })
        }
    };
    let spec = SuiteSpec {
        name: name.to_string(),
        capability: imp.capability.to_string(),
        version: "imported".into(),
        scorer,
        metric: super::scorer::scorer(scorer).metric().into(),
        items: path.to_path_buf(),
        prompt: PromptSpec {
            template: template.into(),
            fewshot: 0,
            fewshot_seed: 0,
            chat,
            choice_template: if name == "mmlu" {
                " {{ label }}".into()
            } else {
                " {{ choice }}".into()
            },
        },
        generation: GenerationSpec {
            max_new_tokens: if scorer == ScorerKind::Refusal {
                64
            } else {
                256
            },
            stop,
            ..Default::default()
        },
        refusal: None,
    };
    Suite::new(
        spec,
        items,
        path.parent().unwrap_or(Path::new(".")).to_path_buf(),
    )
}

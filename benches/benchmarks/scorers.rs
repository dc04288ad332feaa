//! Items/s of each scorer on the llama test fixture (tiny random weights: this measures the
//! harness — tokenization, batching, generation loop, extraction — more than the model).

use criterion::{criterion_group, Criterion, Throughput};
use sft_eval::model::{LoadOptions, Model};
use sft_eval::suite::item::Item;
use sft_eval::suite::runner::{run_suite, EvalSettings, NoProgress};
use sft_eval::suite::spec::{ChatPolicy, GenerationSpec, PromptSpec, ScorerKind, Suite, SuiteSpec};

fn suite(scorer: ScorerKind, items: Vec<Item>, max_new: usize) -> Suite {
    let spec = SuiteSpec {
        name: format!("{scorer:?}"),
        capability: "bench".into(),
        version: "1".into(),
        scorer,
        metric: "m".into(),
        items: "items.jsonl".into(),
        prompt: PromptSpec {
            template: "Question: {{ input }}\nAnswer:".into(),
            fewshot: 0,
            fewshot_seed: 0,
            chat: ChatPolicy::Never,
            choice_template: " {{ choice }}".into(),
        },
        generation: GenerationSpec {
            max_new_tokens: max_new,
            ..Default::default()
        },
        refusal: None,
    };
    Suite::new(spec, items, ".".into()).unwrap()
}

fn bench_scorers(c: &mut Criterion) {
    let dir = super::repo_root().join("tests/fixtures/models/llama");
    let model = Model::load(&dir, &LoadOptions::default()).unwrap();
    let n = 32;
    let item = |i: usize| Item {
        id: i.to_string(),
        input: format!("What is {i} plus {}?", i + 3),
        choices: vec![
            format!("{}", 2 * i + 3),
            "seven".into(),
            "a lot".into(),
            "none".into(),
        ],
        gold: Some(0),
        target: Some(format!("{}", 2 * i + 3)),
        label: Some(
            if i.is_multiple_of(2) {
                "harmful"
            } else {
                "benign"
            }
            .into(),
        ),
        ..Default::default()
    };
    let items: Vec<Item> = (0..n).map(item).collect();
    let suites = [
        suite(ScorerKind::McLoglik, items.clone(), 0),
        suite(ScorerKind::GenerateNumber, items.clone(), 16),
        suite(ScorerKind::Refusal, items.clone(), 16),
        suite(ScorerKind::RefusalLoglik, items.clone(), 0),
        suite(ScorerKind::RollingNll, items.clone(), 0),
    ];
    let mut g = c.benchmark_group("scorer");
    g.throughput(Throughput::Elements(n as u64));
    g.sample_size(10);
    for s in &suites {
        g.bench_function(&s.spec.name, |b| {
            b.iter(|| run_suite(&model, s, &EvalSettings::default(), &mut NoProgress).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench_scorers);

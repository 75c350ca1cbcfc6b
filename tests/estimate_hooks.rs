//! The estimator selects hooks from the engine's own catalogue: for every fixture model, the
//! hook names (and shapes) the estimator sees are those the loaded engine model reports.

use std::path::Path;

use neuronmap::engine::run::model_hooks;
use neuronmap::estimate::workload::hook_catalog;
use neuronmap::estimate::{AnalysisKind, HookPlan};
use neuronmap::models::config_json::parse_config;

const FIXTURES: [&str; 7] = [
    "bert",
    "distilbert",
    "gpt2",
    "llama",
    "mistral",
    "qwen2",
    "roberta",
];

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn architecture(name: &str) -> neuronmap::models::Architecture {
    let text = std::fs::read_to_string(fixture(name).join("config.json")).unwrap();
    parse_config(&serde_json::from_str(&text).unwrap()).unwrap()
}

#[test]
fn estimator_hooks_are_the_engines_hooks() {
    for name in FIXTURES {
        let engine = model_hooks(&fixture(name).display().to_string()).unwrap();
        let estimator = hook_catalog(&architecture(name)).build();
        let names = |v: &[neuronmap::engine::hooks::HookSpec]| {
            v.iter().map(|h| h.name.clone()).collect::<Vec<_>>()
        };
        assert_eq!(names(&estimator), names(&engine), "{name}");
        assert_eq!(estimator, engine, "{name}: shapes and sites");
    }
}

#[test]
fn family_specific_hooks_are_selectable_and_unknown_ones_fail_alike() {
    let llama = architecture("llama");
    let plan = HookPlan::select(
        &llama,
        AnalysisKind::Activations,
        &[
            "blocks.*.attn.hook_rot_q".into(),
            "blocks.0.mlp.hook_pre_linear".into(),
        ],
    )
    .unwrap();
    assert_eq!(plan.count(), 3 + 1);
    let bert = architecture("bert");
    let plan = HookPlan::select(
        &bert,
        AnalysisKind::Activations,
        &["hook_token_type_embed".into()],
    )
    .unwrap();
    assert_eq!(plan.count(), 1);
    let err = HookPlan::select(
        &architecture("gpt2"),
        AnalysisKind::Activations,
        &["blocks.*.mlp.hook_pre_linear".into()],
    )
    .unwrap_err();
    assert!(
        matches!(err, neuronmap::engine::EngineError::UnknownHook { .. }),
        "{err}"
    );
}

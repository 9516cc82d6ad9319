//! Logits, loss and greedy tokens against transformers 5.23 on each decoder fixture.

use burn::tensor::ElementConversion;
use burn_peft::model::decoder::Decoder;
use burn_peft::model::generate::{GenerationOptions, generate};
use burn_peft::model::loss::{causal_lm_loss, lm_labels};

use crate::common::*;

const FIXTURES: [&str; 3] = ["tiny-llama", "tiny-qwen2", "tiny-gemma"];

#[test]
fn logits_and_loss_match_transformers() {
    for name in FIXTURES {
        let (model, report) = Decoder::<B>::load(&fixture(name), &device()).unwrap();
        assert!(
            report.unused.is_empty(),
            "{name}: unused {:?}",
            report.unused
        );
        let reference = Reference::open(name);
        let ids = reference.ints("input_ids");
        let mask = reference.ints("attention_mask");
        let logits = model.forward(ids.clone(), Some(mask.clone()));
        let err = max_abs_diff(logits.clone(), reference.floats::<3>("logits"));
        assert!(err < 1e-4, "{name}: logits differ by {err:e}");

        let loss: f64 = causal_lm_loss(logits, lm_labels(ids, Some(mask)))
            .into_scalar()
            .elem();
        let want: f64 = reference.floats::<1>("loss").into_scalar().elem();
        assert!((loss - want).abs() < 1e-5, "{name}: loss {loss} vs {want}");
    }
}

#[test]
fn greedy_generation_matches_transformers() {
    for name in FIXTURES {
        let (model, _) = Decoder::<B>::load(&fixture(name), &device()).unwrap();
        let reference = Reference::open(name);
        let prompt = reference.ids("greedy_prompt");
        let expected = reference.ids("greedy_output");
        let options = GenerationOptions {
            max_new_tokens: expected.len() - prompt.len(),
            eos_token_ids: model.config.eos_token_ids.clone(),
            ..GenerationOptions::default()
        };
        let new = generate(&model, std::slice::from_ref(&prompt), &options).unwrap();
        let mut got = prompt.clone();
        got.extend(&new[0]);
        assert_eq!(got, expected, "{name}");
    }
}

//! Logits, loss and greedy tokens against transformers 5.23 on each decoder fixture, on both CPU
//! backends.

use burn::tensor::ElementConversion;
use burn::tensor::backend::Backend;
use burn_peft::model::decoder::Decoder;
use burn_peft::model::generate::{GenerationOptions, generate};
use burn_peft::model::loss::{causal_lm_loss, lm_labels};

use super::common::*;

const FIXTURES: [&str; 3] = ["tiny-llama", "tiny-qwen2", "tiny-gemma"];

fn logits_and_loss_match_transformers<Bk: Backend>(device: &Bk::Device) {
    for name in FIXTURES {
        let (model, report) = Decoder::<Bk>::load(&fixture(name), device).unwrap();
        assert!(
            report.unused.is_empty(),
            "{name}: unused {:?}",
            report.unused
        );
        let reference = Reference::open(name);
        let ids = reference.ints_on::<Bk>("input_ids", device);
        let mask = reference.ints_on::<Bk>("attention_mask", device);
        let logits = model.forward(ids.clone(), Some(mask.clone()));
        let err = max_abs_diff(
            logits.clone(),
            reference.floats_on::<Bk, 3>("logits", device),
        );
        assert!(err < 1e-4, "{name}: logits differ by {err:e}");

        let loss: f64 = causal_lm_loss(logits, lm_labels(ids, Some(mask)))
            .into_scalar()
            .elem();
        let want: f64 = reference
            .floats_on::<Bk, 1>("loss", device)
            .into_scalar()
            .elem();
        assert!((loss - want).abs() < 1e-5, "{name}: loss {loss} vs {want}");
    }
}

fn greedy_generation_matches_transformers<Bk: Backend>(device: &Bk::Device) {
    for name in FIXTURES {
        let (model, _) = Decoder::<Bk>::load(&fixture(name), device).unwrap();
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

backend_tests!(
    logits_and_loss_match_transformers,
    greedy_generation_matches_transformers
);

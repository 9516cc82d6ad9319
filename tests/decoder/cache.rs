//! Generation with the KV cache equals recomputing the whole sequence at every step, batched
//! with left padding, greedy and sampled.

use burn_peft::model::decoder::Decoder;
use burn_peft::model::generate::{GenerationOptions, generate};

use crate::common::*;

#[test]
fn cached_generation_equals_full_recomputation() {
    for name in ["tiny-llama", "tiny-qwen2", "tiny-gemma"] {
        let (model, _) = Decoder::<B>::load(&fixture(name), &device()).unwrap();
        // Prompts of different lengths exercise the left padding.
        let prompts = vec![
            vec![1, 17, 99, 4],
            vec![1, 250],
            vec![1, 3, 5, 7, 9, 11, 13],
        ];
        for (temperature, top_p) in [(0.0, 1.0), (0.8, 0.9)] {
            let options = GenerationOptions {
                max_new_tokens: 12,
                temperature,
                top_p,
                seed: 3,
                ..GenerationOptions::default()
            };
            let cached = generate(&model, &prompts, &options).unwrap();
            let full = generate(
                &model,
                &prompts,
                &GenerationOptions {
                    use_cache: false,
                    ..options.clone()
                },
            )
            .unwrap();
            assert_eq!(cached, full, "{name} temperature {temperature}");
            assert!(cached.iter().all(|row| row.len() == 12));

            // Batching does not change a row's greedy continuation.
            if temperature == 0.0 {
                for (prompt, row) in prompts.iter().zip(&cached) {
                    let alone = generate(&model, std::slice::from_ref(prompt), &options).unwrap();
                    assert_eq!(
                        &alone[0], row,
                        "{name}: batched row differs from the row alone"
                    );
                }
            }
        }
    }
}

#[test]
fn generation_stops_at_eos() {
    let (model, _) = Decoder::<B>::load(&fixture("tiny-llama"), &device()).unwrap();
    let prompt = vec![1, 17, 99, 4];
    let free = generate(
        &model,
        std::slice::from_ref(&prompt),
        &GenerationOptions {
            max_new_tokens: 8,
            ..Default::default()
        },
    )
    .unwrap();
    // Declare the third generated token an EOS: generation must stop right after it.
    let eos = free[0][2];
    let options = GenerationOptions {
        max_new_tokens: 8,
        eos_token_ids: vec![eos],
        ..Default::default()
    };
    let stopped = generate(&model, &[prompt], &options).unwrap();
    let first = free[0].iter().position(|&t| t == eos).unwrap();
    assert_eq!(stopped[0], free[0][..=first].to_vec());
}

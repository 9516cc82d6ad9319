//! Generation with the KV cache equals recomputing the whole sequence at every step: batched
//! with left padding, greedy and sampled, on grouped-query and sliding-window models, on both
//! CPU backends.

use std::path::PathBuf;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use burn_peft::model::decoder::{Decoder, KvCache};
use burn_peft::model::generate::{GenerationOptions, UniformDraws, generate};

use super::common::*;

/// tiny-llama (GQA 4/2), tiny-qwen2 (GQA 4/1), tiny-gemma, and tiny-llama as a Mistral with a
/// 4-token sliding window (GQA 4/2).
fn models() -> Vec<(&'static str, PathBuf)> {
    vec![
        ("tiny-llama", fixture("tiny-llama")),
        ("tiny-qwen2", fixture("tiny-qwen2")),
        ("tiny-gemma", fixture("tiny-gemma")),
        ("tiny-mistral-sliding", sliding_window_model()),
    ]
}

/// Prompts of different lengths exercise the left padding.
fn prompts() -> Vec<Vec<u32>> {
    vec![
        vec![1, 17, 99, 4],
        vec![1, 250],
        vec![1, 3, 5, 7, 9, 11, 13],
    ]
}

fn ints<Bk: Backend>(rows: &[Vec<i64>], device: &Bk::Device) -> Tensor<Bk, 2, Int> {
    let flat: Vec<i64> = rows.iter().flatten().copied().collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), rows[0].len()]), device)
}

/// Step by step: the cached decode's last-position logits against a full re-forward of the
/// growing left-padded sequence, and their greedy tokens.
fn cached_decode_equals_full_reforward<Bk: Backend>(device: &Bk::Device) {
    let steps = 10;
    for (index, (name, path)) in models().into_iter().enumerate() {
        let (model, _) = Decoder::<Bk>::load(&path, device).unwrap();
        let prompts = prompts();
        let width = prompts.iter().map(Vec::len).max().unwrap();
        // Every other model starts from a one-position cache, which has to grow.
        let capacity = if index % 2 == 0 { width + steps } else { 1 };
        let pads: Vec<usize> = prompts.iter().map(|p| width - p.len()).collect();
        let mut tokens: Vec<Vec<i64>> = prompts
            .iter()
            .zip(&pads)
            .map(|(p, &pad)| {
                let mut row = vec![0; pad];
                row.extend(p.iter().map(|&t| i64::from(t)));
                row
            })
            .collect();
        let key_mask = |len: usize| -> Vec<Vec<i64>> {
            pads.iter()
                .map(|&pad| (0..len).map(|i| i64::from(i >= pad)).collect())
                .collect()
        };
        let positions = |from: usize, len: usize| -> Vec<Vec<i64>> {
            pads.iter()
                .map(|&pad| {
                    (from..from + len)
                        .map(|i| i.saturating_sub(pad) as i64)
                        .collect()
                })
                .collect()
        };
        let last_logits = |hidden: Tensor<Bk, 3>| {
            let [b, s, h] = hidden.dims();
            model.lm_logits(hidden.slice([0..b, s - 1..s, 0..h]))
        };
        let mut cache = KvCache::new(model.layers.len(), capacity);
        let mut input = ints::<Bk>(&tokens, device);
        let mut input_positions = positions(0, width);
        for step in 0..steps {
            let len = width + step;
            let cached = last_logits(model.hidden_states(
                input,
                Some(ints::<Bk>(&key_mask(len), device)),
                ints::<Bk>(&input_positions, device),
                Some(&mut cache),
            ));
            let full = last_logits(model.hidden_states(
                ints::<Bk>(&tokens, device),
                Some(ints::<Bk>(&key_mask(len), device)),
                ints::<Bk>(&positions(0, len), device),
                None,
            ));
            let err = max_abs_diff(cached.clone(), full.clone());
            assert!(err < 1e-5, "{name} step {step}: logits differ by {err:e}");
            let greedy = |logits: Tensor<Bk, 3>| -> Vec<i64> {
                logits
                    .argmax(2)
                    .into_data()
                    .convert::<i64>()
                    .to_vec()
                    .unwrap()
            };
            let next = greedy(cached);
            assert_eq!(next, greedy(full), "{name} step {step}: greedy tokens");
            for (row, token) in tokens.iter_mut().zip(&next) {
                row.push(*token);
            }
            input = ints::<Bk>(&next.iter().map(|&t| vec![t]).collect::<Vec<_>>(), device);
            input_positions = positions(len, 1);
        }
        // The prompt, then every step's token but the last (never fed back).
        assert_eq!(cache.len(), width + steps - 1);
    }
}

/// Greedy generation with the cache gives the same tokens as recomputing the whole sequence at
/// every step, and batching does not change a row's continuation.
fn cached_generation_equals_full_recomputation<Bk: Backend>(device: &Bk::Device) {
    for (name, path) in models() {
        let (model, _) = Decoder::<Bk>::load(&path, device).unwrap();
        let prompts = prompts();
        let options = GenerationOptions {
            max_new_tokens: 12,
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
        assert_eq!(cached, full, "{name}: greedy tokens");
        assert!(cached.iter().all(|row| row.len() == 12));
        for (prompt, row) in prompts.iter().zip(&cached) {
            let alone = generate(&model, std::slice::from_ref(prompt), &options).unwrap();
            assert_eq!(
                &alone[0], row,
                "{name}: batched row differs from the row alone"
            );
        }
    }
}

/// Sampled generation with the cache, replayed against a host f64 reference sampler on the
/// logits of one full forward over prompt + sampled tokens: with the same U[0, 1) draw, each
/// sampled token is the one whose cumulative-probability interval (vocabulary order, within the
/// top-p nucleus) holds the draw. Cached and full logits differ in their last bits (within
/// 1e-5, `cached_decode_equals_full_reforward`), so a draw within `SLACK` of an interval edge,
/// or a token within a relative `SLACK` of the nucleus threshold, may go either way; anything
/// further off is a wrong token. The same seed twice gives the same
/// tokens (the backend is deterministic run to run).
fn cached_sampling_follows_the_full_recomputation<Bk: Backend>(device: &Bk::Device) {
    const SLACK: f64 = 1e-4;
    let (steps, temperature, top_p, seed) = (12, 0.8, 0.9, 3);
    for (name, path) in models() {
        let (model, _) = Decoder::<Bk>::load(&path, device).unwrap();
        let prompts = prompts();
        let options = GenerationOptions {
            max_new_tokens: steps,
            temperature,
            top_p,
            seed,
            ..GenerationOptions::default()
        };
        let sampled = generate(&model, &prompts, &options).unwrap();
        assert_eq!(
            generate(&model, &prompts, &options).unwrap(),
            sampled,
            "{name}: same seed"
        );
        assert!(sampled.iter().all(|row| row.len() == steps));

        let (batch, width) = (prompts.len(), prompts.iter().map(Vec::len).max().unwrap());
        let total = width + steps;
        let mut ids = Vec::new();
        let mut key_mask = Vec::new();
        let mut positions = Vec::new();
        for (prompt, new) in prompts.iter().zip(&sampled) {
            let pad = width - prompt.len();
            ids.extend(std::iter::repeat_n(0, pad));
            ids.extend(prompt.iter().chain(new).map(|&t| i64::from(t)));
            key_mask.extend((0..total).map(|i| i64::from(i >= pad)));
            positions.extend((0..total).map(|i| i.saturating_sub(pad) as i64));
        }
        let as_rows = |flat: Vec<i64>| flat.chunks(total).map(<[i64]>::to_vec).collect::<Vec<_>>();
        let hidden = model.hidden_states(
            ints::<Bk>(&as_rows(ids), device),
            Some(ints::<Bk>(&as_rows(key_mask), device)),
            ints::<Bk>(&as_rows(positions), device),
            None,
        );
        let hidden_size = hidden.dims()[2];
        // The logits that chose new token `t` sit at column `width - 1 + t`.
        let logits: Vec<f32> = model
            .lm_logits(hidden.slice([0..batch, width - 1..total - 1, 0..hidden_size]))
            .into_data()
            .convert::<f32>()
            .to_vec()
            .unwrap();
        let vocab = logits.len() / (batch * steps);

        let mut draws = UniformDraws::new(seed);
        for step in 0..steps {
            let draw = draws.next(batch);
            for (row, (&u, new)) in draw.iter().zip(&sampled).enumerate() {
                let at = (row * steps + step) * vocab;
                let token = new[step] as usize;
                let (low, high) = sampling_interval(
                    &logits[at..at + vocab],
                    f64::from(temperature),
                    f64::from(top_p),
                    token,
                    SLACK,
                );
                let u = f64::from(u);
                assert!(
                    low - SLACK <= u && u <= high + SLACK,
                    "{name} row {row} step {step}: sampled token {token}, whose interval is \
                     [{low}, {high}], for draw {u}"
                );
            }
        }
    }
}

/// Bounds on where a draw must lie for top-p sampling (vocabulary-order inverse CDF over the
/// nucleus, renormalised) to pick `token`, allowing each probability to be off by a factor
/// `1 ± slack` and the nucleus mass by `slack`: `(lowest start, highest end)` of its interval,
/// or an empty interval when `token` is surely outside the nucleus.
fn sampling_interval(
    logits: &[f32],
    temperature: f64,
    top_p: f64,
    token: usize,
    slack: f64,
) -> (f64, f64) {
    let max = logits
        .iter()
        .map(|&l| f64::from(l))
        .fold(f64::MIN, f64::max);
    let weights: Vec<f64> = logits
        .iter()
        .map(|&l| ((f64::from(l) - max) / temperature).exp())
        .collect();
    let sum: f64 = weights.iter().sum();
    let probs: Vec<f64> = weights.iter().map(|w| w / sum).collect();
    // The nucleus threshold: the probability of the last token (by descending probability)
    // needed for the kept mass to reach `mass`.
    let threshold = |mass: f64| {
        let mut sorted = probs.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let mut kept = 0.0;
        for p in sorted {
            kept += p;
            if kept >= mass {
                return p;
            }
        }
        0.0
    };
    let surely = threshold(top_p - slack) * (1.0 + slack);
    let maybe = threshold((top_p + slack).min(1.0)) * (1.0 - slack);
    if probs[token] < maybe {
        return (f64::INFINITY, f64::NEG_INFINITY);
    }
    let mass = |floor: f64, end: usize| probs[..end].iter().filter(|&&p| p >= floor).sum::<f64>();
    let (sure_total, maybe_total) = (mass(surely, probs.len()), mass(maybe, probs.len()));
    (
        mass(surely, token) / maybe_total,
        mass(maybe, token + 1) / sure_total.max(f64::MIN_POSITIVE),
    )
}

fn generation_stops_at_eos<Bk: Backend>(device: &Bk::Device) {
    let (model, _) = Decoder::<Bk>::load(&fixture("tiny-llama"), device).unwrap();
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

/// Top-p keeps the smallest set of most probable tokens whose mass reaches p: with p tiny that
/// is the most probable token alone, so sampling equals greedy decoding.
fn tiny_top_p_samples_the_greedy_token<Bk: Backend>(device: &Bk::Device) {
    let (model, _) = Decoder::<Bk>::load(&fixture("tiny-llama"), device).unwrap();
    let greedy = generate(&model, &prompts(), &GenerationOptions::default()).unwrap();
    let nucleus = GenerationOptions {
        temperature: 1.0,
        top_p: 1e-6,
        seed: 11,
        ..GenerationOptions::default()
    };
    assert_eq!(generate(&model, &prompts(), &nucleus).unwrap(), greedy);
    // A full nucleus at temperature 1 samples: some draw differs from the greedy choice.
    let free = GenerationOptions {
        top_p: 1.0,
        temperature: 1.5,
        ..nucleus
    };
    assert_ne!(generate(&model, &prompts(), &free).unwrap(), greedy);
}

backend_tests!(
    cached_decode_equals_full_reforward,
    cached_generation_equals_full_recomputation,
    cached_sampling_follows_the_full_recomputation,
    generation_stops_at_eos,
    tiny_top_p_samples_the_greedy_token
);

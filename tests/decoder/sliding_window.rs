//! Mistral's sliding window as transformers applies it, on both CPU backends (and the device
//! backends, in `tests/gpu.rs`); `sliding_window_config.rs` has how `config.json` turns it on.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn_peft::model::decoder::Decoder;

use super::common::*;

/// Largest |difference| over the positions whose attention mask is 1.
fn max_diff_on_real_positions<Bk: Backend>(
    a: Tensor<Bk, 3>,
    b: Tensor<Bk, 3>,
    mask: &[i64],
) -> f64 {
    let [batch, seq, _] = a.dims();
    let diff = (a - b).abs().max_dim(2).reshape([batch * seq]);
    let diff: Vec<f32> = diff.into_data().convert::<f32>().to_vec().unwrap();
    diff.iter()
        .zip(mask)
        .filter(|(_, m)| **m == 1)
        .map(|(d, _)| f64::from(*d))
        .fold(0.0, f64::max)
}

fn sliding_window_matches_transformers<Bk: Backend>(device: &Bk::Device) {
    let dir = sliding_window_model();
    let (model, _) = Decoder::<Bk>::load(&dir, device).unwrap();
    assert_eq!(model.config.sliding_window, Some(4));
    assert!((0..2).all(|l| model.config.uses_sliding_window(l)));
    let reference = Reference::open("tiny-mistral-sliding");
    let ids = reference.ints_on::<Bk>("input_ids", device);
    let mask = reference.ints_on::<Bk>("attention_mask", device);
    let host_mask = reference.ckpt.read_i64("attention_mask").unwrap().0;
    let want = reference.floats_on::<Bk, 3>("logits", device);
    let logits = model.forward(ids.clone(), Some(mask.clone()));
    let err = max_diff_on_real_positions(logits, want.clone(), &host_mask);
    assert!(err < 1e-4, "sliding-window logits differ by {err:e}");

    // The window matters on this input: without it the logits are far off.
    let mut full = model;
    full.config.sliding_window = None;
    let err = max_diff_on_real_positions(full.forward(ids, Some(mask)), want, &host_mask);
    assert!(err > 1e-2, "the window changed nothing ({err:e})");
}

backend_tests!(sliding_window_matches_transformers);

//! RWKV6 parity (`tests/fixtures/tiny-rwkv6`, made by its `make.py`): logits, the recurrent
//! state and greedy tokens against BlinkDL's `rwkv` package, on every backend (the CPU runs the
//! WKV kernel, the others the chunked composite).

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use burn_peft::model::Precision;
use burn_peft::model::generate::{GenerationOptions, generate};
use burn_peft::model::rwkv6::Rwkv6;

use super::common::*;

fn load<Bk: Backend>(device: &Bk::Device) -> Rwkv6<Bk> {
    let (model, report) =
        Rwkv6::<Bk>::load_as(&fixture("tiny-rwkv6/hf"), Precision::Auto, device).unwrap();
    assert!(report.unused.is_empty(), "unused {:?}", report.unused);
    model
}

fn logits_match_the_rwkv_package<Bk: Backend>(device: &Bk::Device) {
    let model = load::<Bk>(device);
    let reference = Reference::open("tiny-rwkv6");
    let ids = reference.ints_on::<Bk>("input_ids", device);
    let want = reference.floats_on::<Bk, 3>("logits", device);
    let logits = model.forward(ids.clone(), None);
    let err = max_abs_diff(logits.clone(), want.clone());
    assert!(err < 1e-4, "logits differ by {err:e}");

    // Two chunks, the second from the first's state (as the package's `logits_chunked`).
    let [b, t] = ids.dims();
    let h = t / 3;
    let (first, state) = model.forward_with_state(ids.clone().slice([0..b, 0..h]), None, None);
    let (second, _) = model.forward_with_state(ids.clone().slice([0..b, h..t]), None, Some(state));
    let chunked = Tensor::cat(vec![first, second], 1);
    let err = max_abs_diff(chunked.clone(), logits);
    assert!(
        err < 1e-5,
        "two chunks differ from the whole sequence by {err:e}"
    );
    let err = max_abs_diff(
        chunked,
        reference.floats_on::<Bk, 3>("logits_chunked", device),
    );
    assert!(
        err < 1e-4,
        "two chunks differ from the package's by {err:e}"
    );

    // Right padding changes nothing before it.
    let padded = Tensor::cat(vec![ids.clone(), ids.clone().slice([0..b, 0..5])], 1);
    let mask = Tensor::cat(
        vec![
            Tensor::<Bk, 2, Int>::ones([b, t], device),
            Tensor::zeros([b, 5], device),
        ],
        1,
    );
    let logits = model
        .forward(padded, Some(mask))
        .slice([0..b, 0..t, 0..512]);
    let err = max_abs_diff(logits, want);
    assert!(err < 1e-5, "right padding moved the logits by {err:e}");
}

fn greedy_tokens_match_the_rwkv_package<Bk: Backend>(device: &Bk::Device) {
    let model = load::<Bk>(device);
    let reference = Reference::open("tiny-rwkv6");
    let prompt = reference.ids("greedy_prompt");
    let expected = reference.ids("greedy_tokens");
    let options = GenerationOptions {
        max_new_tokens: expected.len(),
        ..GenerationOptions::default()
    };
    let new = generate(&model, std::slice::from_ref(&prompt), &options).unwrap();
    assert_eq!(new[0], expected, "through the state");
    let uncached = GenerationOptions {
        use_cache: false,
        ..options.clone()
    };
    let new = generate(&model, std::slice::from_ref(&prompt), &uncached).unwrap();
    assert_eq!(new[0], expected, "whole sequence each step");
    // Batched prompts of different lengths (left padding kept out of the state) give each
    // prompt's own tokens.
    let short = prompt[3..].to_vec();
    let alone = generate(&model, std::slice::from_ref(&short), &options).unwrap();
    let batch = generate(&model, &[short, prompt], &options).unwrap();
    assert_eq!(batch[0], alone[0], "short prompt in a batch");
    assert_eq!(batch[1], expected, "long prompt in a batch");
}

backend_tests!(
    logits_match_the_rwkv_package,
    greedy_tokens_match_the_rwkv_package
);

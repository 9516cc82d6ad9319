//! The shipped stories260K, from the HF folder and from the llama2.c original, reproduces
//! llama2.c's greedy story word for word (shared/data/README.md).

use std::path::PathBuf;

use burn_peft::model::decoder::Decoder;
use burn_peft::model::generate::{GenerationOptions, generate};
use burn_peft::model::llama2c;
use burn_peft::model::tokenizer::TextTokenizer;

use super::common::*;

const KNOWN: &str = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.";

fn stories() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/stories260K")
}

fn continue_story(model: &Decoder<B>, tokenizer: &TextTokenizer) -> String {
    let prompt = tokenizer.encode("Once upon a time", true).unwrap();
    assert_eq!(prompt, vec![1, 403, 407, 261, 378]);
    let options = GenerationOptions {
        max_new_tokens: 60,
        eos_token_ids: vec![2],
        ..GenerationOptions::default()
    };
    let new = generate(model, std::slice::from_ref(&prompt), &options).unwrap();
    let mut all = prompt;
    all.extend(&new[0]);
    tokenizer.decode(&all).unwrap()
}

#[test]
fn hf_folder_and_llama2c_bin_tell_the_known_story() {
    let tokenizer = TextTokenizer::load(&stories().join("hf")).unwrap();
    assert_eq!(tokenizer.bos_token_id, Some(1));
    let (hf, report) = Decoder::<B>::load(&stories().join("hf"), &device()).unwrap();
    assert!(report.unused.is_empty());
    let text = continue_story(&hf, &tokenizer);
    assert!(text.starts_with(KNOWN), "HF folder: {text}");

    let bin = llama2c::load::<B>(&stories().join("stories260K.bin"), &device()).unwrap();
    let text = continue_story(&bin, &tokenizer);
    assert!(text.starts_with(KNOWN), "llama2.c .bin: {text}");

    // The two loaders build the same weights (q/k permuted into HF's rotate-half layout).
    let reference = Reference::open("tiny-llama");
    let ids = reference.ints("input_ids");
    let mask = reference.ints("attention_mask");
    let a = hf.forward(ids.clone(), Some(mask.clone()));
    let b = bin.forward(ids, Some(mask));
    assert!(max_abs_diff(a, b) < 1e-5);
}

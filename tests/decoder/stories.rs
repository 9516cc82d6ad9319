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

#[test]
fn a_folder_holding_the_bin_loads_it_with_the_hf_tokenizer() {
    use burn_peft::model::any::{AnyModel, load_model};
    use burn_peft::model::source::ModelSource;

    // models/stories260K: stories260K.bin, the tok512.bin tokenizer (not a checkpoint), hf/.
    let source = ModelSource::resolve(&stories()).unwrap();
    assert!(
        matches!(&source, ModelSource::Llama2c(f) if f.ends_with("stories260K.bin")),
        "{source:?}"
    );
    let Ok((AnyModel::Decoder(folder), _)) = load_model::<B>(&stories(), &device()) else {
        panic!("the folder did not load as a decoder");
    };
    let bin = llama2c::load::<B>(&stories().join("stories260K.bin"), &device()).unwrap();
    let reference = Reference::open("tiny-llama");
    let ids = reference.ints("input_ids");
    let mask = reference.ints("attention_mask");
    let a = folder.forward(ids.clone(), Some(mask.clone()));
    let b = bin.forward(ids, Some(mask));
    assert_eq!(max_abs_diff(a, b), 0.0);

    let tokenizer = TextTokenizer::for_model(&stories(), None).unwrap();
    assert_eq!(tokenizer.path(), stories().join("hf/tokenizer.json"));
    assert!(continue_story(&folder, &tokenizer).starts_with(KNOWN));
}

#[test]
fn a_folder_with_several_checkpoints_asks_which() {
    use burn_peft::model::source::ModelSource;

    let dir = std::env::temp_dir().join(format!("burn-peft-two-bins-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Only a tokenizer .bin: named, and said to be no checkpoint.
    std::fs::copy(stories().join("tok512.bin"), dir.join("tok512.bin")).unwrap();
    let err = ModelSource::resolve(&dir).unwrap_err().to_string();
    assert!(
        err.contains("config.json") && err.contains("none of its .bin files (tok512.bin)"),
        "{err}"
    );
    // Two checkpoints: both listed, and the user is told to pass one.
    for name in ["a.bin", "b.bin"] {
        std::fs::copy(stories().join("stories260K.bin"), dir.join(name)).unwrap();
    }
    let err = ModelSource::resolve(&dir).unwrap_err().to_string();
    assert!(
        err.contains("a.bin, b.bin") && !err.contains("tok512") && err.contains("pass"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

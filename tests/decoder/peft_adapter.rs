//! The PEFT LoRA fixture loads with PEFT's key names and scale and reproduces PEFT's logits, on
//! both CPU backends (and the device backends, in `tests/gpu.rs`).

use burn::tensor::backend::Backend;
use burn_peft::model::decoder::Decoder;
use burn_peft::model::{PeftModel, merge_adapters};
use burn_peft::persist::peft::load_peft_lora;

use super::common::*;

fn peft_lora_adapter_reproduces_peft_logits_and_merges<Bk: Backend>(device: &Bk::Device) {
    let (base, _) = Decoder::<Bk>::load(&fixture("tiny-llama"), device).unwrap();
    let model = load_peft_lora(base, &fixture("tiny-llama-lora")).unwrap();
    let adapted = model
        .linears()
        .iter()
        .filter(|(_, s)| matches!(s, burn_peft::model::PeftLinear::Adapted(_)))
        .count();
    assert_eq!(adapted, 14, "all seven projections of both layers");
    let reference = Reference::open("tiny-llama-lora");
    let (ids, mask) = (
        reference.ints_on::<Bk>("input_ids", device),
        reference.ints_on::<Bk>("attention_mask", device),
    );
    let logits = model.forward(ids.clone(), Some(mask.clone()));
    let err = max_abs_diff(
        logits.clone(),
        reference.floats_on::<Bk, 3>("logits", device),
    );
    assert!(err < 1e-4, "adapter logits differ by {err:e}");

    let merged = merge_adapters(model);
    assert!(
        merged
            .linears()
            .iter()
            .all(|(_, s)| matches!(s, burn_peft::model::PeftLinear::Plain(_)))
    );
    let err = max_abs_diff(merged.forward(ids, Some(mask)), logits);
    assert!(err < 1e-5, "merged logits differ by {err:e}");
}

backend_tests!(peft_lora_adapter_reproduces_peft_logits_and_merges);

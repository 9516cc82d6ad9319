//! The PEFT LoRA fixture loads with PEFT's key names and scale and reproduces PEFT's logits.

use burn_peft::io::peft::load_peft_lora;
use burn_peft::model::decoder::Decoder;
use burn_peft::model::{PeftModel, merge_adapters};

use crate::common::*;

#[test]
fn peft_lora_adapter_reproduces_peft_logits_and_merges() {
    let (base, _) = Decoder::<B>::load(&fixture("tiny-llama"), &device()).unwrap();
    let model = load_peft_lora(base, &fixture("tiny-llama-lora")).unwrap();
    let adapted = model
        .linears()
        .iter()
        .filter(|(_, s)| matches!(s, burn_peft::model::PeftLinear::Adapted(_)))
        .count();
    assert_eq!(adapted, 14, "all seven projections of both layers");
    let reference = Reference::open("tiny-llama-lora");
    let (ids, mask) = (
        reference.ints("input_ids"),
        reference.ints("attention_mask"),
    );
    let logits = model.forward(ids.clone(), Some(mask.clone()));
    let err = max_abs_diff(logits.clone(), reference.floats::<3>("logits"));
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

#[test]
fn adapter_for_another_model_is_rejected_by_name() {
    // tiny-qwen2's MLP is 128 wide where tiny-llama's is 172: the first mismatching factor is
    // named with its file and both shapes.
    let (qwen, _) = Decoder::<B>::load(&fixture("tiny-qwen2"), &device()).unwrap();
    let err = load_peft_lora(qwen, &fixture("tiny-llama-lora"))
        .expect_err("mismatched adapter loaded")
        .to_string();
    assert!(
        err.contains("adapter_model.safetensors")
            && err.contains("mlp.down_proj.lora_A.weight")
            && err.contains("[4, 172]"),
        "{err}"
    );

    // A module the model does not have is named.
    let (mut small, _) = Decoder::<B>::load(&fixture("tiny-llama"), &device()).unwrap();
    small.layers.truncate(1);
    let err = load_peft_lora(small, &fixture("tiny-llama-lora"))
        .expect_err("adapter for 2 layers loaded on 1")
        .to_string();
    assert!(
        err.contains("model.layers.1.") && err.contains("different base model"),
        "{err}"
    );

    // Another PEFT type is refused by its config field.
    let dir = std::env::temp_dir().join(format!("burn-peft-peft-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        fixture("tiny-llama-lora").join("adapter_model.safetensors"),
        dir.join("adapter_model.safetensors"),
    )
    .unwrap();
    let config =
        std::fs::read_to_string(fixture("tiny-llama-lora").join("adapter_config.json")).unwrap();
    std::fs::write(
        dir.join("adapter_config.json"),
        config.replace("\"LORA\"", "\"IA3\""),
    )
    .unwrap();
    let (base, _) = Decoder::<B>::load(&fixture("tiny-llama"), &device()).unwrap();
    let err = load_peft_lora(base, &dir)
        .expect_err("IA3 accepted")
        .to_string();
    assert!(
        err.contains("adapter_config.json") && err.contains("peft_type"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

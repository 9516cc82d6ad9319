//! BERT and RoBERTa classifier logits against transformers on both fixture rows (one padded),
//! padding masked, a SORSA adapter injected and merged, and PEFT's LoRA with a trained head:
//! on both CPU backends, and on the device backends in `tests/gpu.rs`.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use burn_peft::adapter::{AdapterConfig, Method, Targets};
use burn_peft::model::any::AnyModel;
use burn_peft::model::encoder::ProblemType;
use burn_peft::model::{inject_adapters, merge_adapters};
use burn_peft::persist::load_with_adapter;

use super::common::*;

/// Logits of both rows (the second right-padded) match transformers'.
fn check_parity<Bk: Backend>(name: &str, device: &Bk::Device) {
    let r = Reference::<Bk>::open(name, device);
    let diff = assert_parity(name, r.logits_of(&load_on(name, device)), r.logits);
    println!("{name}: max |Δlogits| vs transformers = {diff:e}");
}

fn bert_logits_match_transformers<Bk: Backend>(device: &Bk::Device) {
    check_parity::<Bk>(BERT, device);
    let model = load_on::<Bk>(BERT, device);
    let r = Reference::<Bk>::open(BERT, device);
    assert_eq!(model.config.num_labels, 3);
    assert_eq!(
        model.config.problem_type,
        ProblemType::SingleLabelClassification
    );
    // Explicit segment-0 token types are the default; segment 1 changes the logits.
    let zeros = Tensor::<Bk, 2, Int>::zeros(r.input_ids.dims(), device);
    let explicit = model.forward(
        r.input_ids.clone(),
        r.attention_mask.clone(),
        Some(zeros.clone()),
    );
    assert_close("token types 0", explicit, r.logits.clone());
    let ones = model.forward(
        r.input_ids.clone(),
        r.attention_mask.clone(),
        Some(zeros + 1),
    );
    assert!(max_abs_diff(ones, r.logits) > 1e-3);
}

fn roberta_logits_match_transformers<Bk: Backend>(device: &Bk::Device) {
    check_parity::<Bk>(ROBERTA, device);
    assert_eq!(load_on::<Bk>(ROBERTA, device).config.num_labels, 2);
}

fn padding_is_masked<Bk: Backend>(device: &Bk::Device) {
    for name in [BERT, ROBERTA] {
        let model = load_on::<Bk>(name, device);
        let r = Reference::<Bk>::open(name, device);
        let padded = r.attention_mask.clone().equal_elem(0);
        // Other (non-pad) ids at the three masked positions of the second row.
        let other = Tensor::<Bk, 2, Int>::from_data(TensorData::from([[1000i64; 12]; 2]), device);
        let ids = r.input_ids.clone().mask_where(padded, other);
        let masked = model.forward(ids.clone(), r.attention_mask.clone(), None);
        let diff = max_abs_diff(r.logits_of(&model), masked);
        assert!(
            diff <= 1e-9,
            "{name}: masked tokens moved the logits by {diff:e}"
        );
        // The same change without the mask does reach the logits.
        let ones = Tensor::<Bk, 2, Int>::ones([2, 12], device);
        let unmasked_before = model.forward(r.input_ids.clone(), ones.clone(), None);
        let unmasked_after = model.forward(ids, ones, None);
        let diff = max_abs_diff(unmasked_before, unmasked_after);
        assert!(
            diff > 1e-6,
            "{name}: unmasked change moved the logits by only {diff:e}"
        );
    }
}

fn sorsa_injection_and_merge_keep_logits<Bk: Backend>(device: &Bk::Device) {
    for name in [BERT, ROBERTA] {
        let r = Reference::<Bk>::open(name, device);
        let mut cfg = AdapterConfig::new(Method::Sorsa, 4);
        cfg.targets = Some(Targets::Pattern("all-linear".into()));
        let (model, injection) = inject_adapters(load_on(name, device), &cfg).unwrap();
        // all-linear: the six linears of each of the two layers, not the head or pooler.
        assert_eq!(
            injection.adapted.len(),
            12,
            "{name}: {:?}",
            injection.adapted
        );
        assert!(
            injection
                .adapted
                .iter()
                .all(|n| n.contains(".encoder.layer."))
        );
        assert_close(
            &format!("{name} + sorsa"),
            r.logits_of(&model),
            r.logits.clone(),
        );
        let merged = merge_adapters(model);
        assert_close(&format!("{name} merged"), r.logits_of(&merged), r.logits);
    }
}

fn peft_adapter_with_head_gives_peft_logits<Bk: Backend>(device: &Bk::Device) {
    let r = Reference::<Bk>::open(ROBERTA_LORA, device);
    let (model, report) =
        load_with_adapter::<Bk>(&fixture(ROBERTA), &fixture(ROBERTA_LORA), device).unwrap();
    assert!(report.unused.is_empty(), "{:?}", report.unused);
    let AnyModel::Encoder(model) = model else {
        panic!("an encoder")
    };
    let diff = assert_parity("PEFT LoRA + head", r.logits_of(&model), r.logits.clone());
    println!("{ROBERTA_LORA}: max |Δlogits| vs PEFT = {diff:e}");
    // The adapter's head is what makes the difference: the base head is far off.
    let base = max_abs_diff(r.logits_of(&load_on(ROBERTA, device)), r.logits.clone());
    assert!(base > 0.05, "base head only {base} from PEFT's logits");
    let merged = merge_adapters(model);
    assert_parity("merged", r.logits_of(&merged), r.logits);
}

backend_tests!(
    bert_logits_match_transformers,
    roberta_logits_match_transformers,
    padding_is_masked,
    sorsa_injection_and_merge_keep_logits,
    peft_adapter_with_head_gives_peft_logits
);

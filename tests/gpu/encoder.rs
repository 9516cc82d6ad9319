//! Encoders on a device backend: BERT and RoBERTa classifier logits (both rows, one padded),
//! a SORSA adapter injected and merged, and the PEFT LoRA with a trained head, against the
//! transformers / PEFT references `tests/encoder.rs` holds the CPU to.

use std::path::PathBuf;

use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, Int, Tensor};
use burn_peft::adapter::{AdapterConfig, Method, Targets};
use burn_peft::io::checkpoint::Checkpoint;
use burn_peft::model::any::{AnyModel, load_with_adapter};
use burn_peft::model::encoder::EncoderClassifier;
use burn_peft::model::{inject_adapters, merge_adapters};

const FIXTURES: [&str; 2] = ["tiny-bert-cls", "tiny-roberta-cls"];

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A fixture's inputs and reference logits, on `device`.
struct Reference<Bk: Backend> {
    input_ids: Tensor<Bk, 2, Int>,
    attention_mask: Tensor<Bk, 2, Int>,
    logits: Tensor<Bk, 2>,
}

impl<Bk: Backend> Reference<Bk> {
    fn open(name: &str, device: &Bk::Device) -> Self {
        let ckpt = Checkpoint::open_files(&[fixture(name).join("reference.safetensors")]).unwrap();
        let shape = ckpt.shape("logits").unwrap().to_vec();
        Self {
            input_ids: ckpt.int_tensor("input_ids", device).unwrap(),
            attention_mask: ckpt.int_tensor("attention_mask", device).unwrap(),
            logits: ckpt.tensor("logits", [shape[0], shape[1]], device).unwrap(),
        }
    }

    /// `model`'s logits are within the fixtures' 1e-4 of the reference.
    fn assert_matches(&self, what: &str, model: &EncoderClassifier<Bk>) {
        let logits = model.forward(self.input_ids.clone(), self.attention_mask.clone(), None);
        let err: f32 = (logits - self.logits.clone())
            .abs()
            .max()
            .into_scalar()
            .elem();
        assert!(err < 1e-4, "{what}: max |Δlogits| = {err:e}");
    }
}

fn load<Bk: Backend>(name: &str, device: &Bk::Device) -> EncoderClassifier<Bk> {
    let (model, report) = EncoderClassifier::<Bk>::load(&fixture(name), device).unwrap();
    assert!(report.unused.is_empty(), "{name}: {:?}", report.unused);
    model
}

fn encoder_logits_match_transformers<Bk: Backend>(device: &Bk::Device) {
    for name in FIXTURES {
        Reference::<Bk>::open(name, device).assert_matches(name, &load(name, device));
    }
}

fn sorsa_injection_and_merge_keep_logits<Bk: Backend>(device: &Bk::Device) {
    for name in FIXTURES {
        let reference = Reference::<Bk>::open(name, device);
        let mut config = AdapterConfig::new(Method::Sorsa, 4);
        config.targets = Some(Targets::Pattern("all-linear".into()));
        let (model, injection) = inject_adapters(load(name, device), &config).unwrap();
        assert_eq!(injection.adapted.len(), 12, "{name}");
        reference.assert_matches(&format!("{name} + sorsa"), &model);
        reference.assert_matches(&format!("{name} merged"), &merge_adapters(model));
    }
}

fn peft_adapter_with_head_gives_peft_logits<Bk: Backend>(device: &Bk::Device) {
    let reference = Reference::<Bk>::open("tiny-roberta-cls-lora", device);
    let (model, report) = load_with_adapter::<Bk>(
        &fixture("tiny-roberta-cls"),
        &fixture("tiny-roberta-cls-lora"),
        device,
    )
    .unwrap();
    assert!(report.unused.is_empty(), "{:?}", report.unused);
    let AnyModel::Encoder(model) = model else {
        panic!("tiny-roberta-cls is an encoder")
    };
    reference.assert_matches("PEFT LoRA + head", &model);
    reference.assert_matches("merged", &merge_adapters(model));
}

backend_tests!(
    encoder_logits_match_transformers,
    sorsa_injection_and_merge_keep_logits,
    peft_adapter_with_head_gives_peft_logits
);

//! f32 logits on real weights (`tests/fixtures/real-stories260K`): no further from the f64 truth
//! than twice transformers' own f32 error, and bit-identical from one run to the next.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use burn_peft::model::decoder::Decoder;

use super::common::*;

struct Truth {
    ids: Vec<i64>,
    mask: Vec<i64>,
    shape: [usize; 3],
    logits_f64: Vec<f64>,
    /// transformers' f32 logits against the f64 truth, on the unpadded positions.
    transformers_error: f64,
}

fn truth() -> Truth {
    let dir = fixture("real-stories260K");
    let bytes = std::fs::read(dir.join("reference.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let view = |name: &str| file.tensor(name).unwrap();
    let i64s = |name: &str| -> Vec<i64> {
        view(name)
            .data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
            .collect()
    };
    let logits = view("logits_f64");
    assert_eq!(logits.dtype(), safetensors::Dtype::F64);
    let shape: [usize; 3] = logits.shape().try_into().unwrap();
    let logits_f64 = logits
        .data()
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let accuracy: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("accuracy.json")).unwrap()).unwrap();
    Truth {
        ids: i64s("input_ids"),
        mask: i64s("attention_mask"),
        shape,
        logits_f64,
        transformers_error: accuracy["transformers_f32_max_abs_error_vs_f64"]
            .as_f64()
            .unwrap(),
    }
}

fn logits_of<Bk: Backend>(model: &Decoder<Bk>, truth: &Truth, device: &Bk::Device) -> Vec<f32> {
    let [b, s, _] = truth.shape;
    let ints =
        |v: &[i64]| Tensor::<Bk, 2, Int>::from_data(TensorData::new(v.to_vec(), [b, s]), device);
    model
        .forward(ints(&truth.ids), Some(ints(&truth.mask)))
        .into_data()
        .convert::<f32>()
        .to_vec()
        .unwrap()
}

fn real_weights_logits_are_exact_and_repeatable<Bk: Backend>(device: &Bk::Device) {
    let truth = truth();
    let model_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/stories260K/hf");
    let (model, _) = Decoder::<Bk>::load(&model_dir, device).unwrap();
    let logits = logits_of(&model, &truth, device);
    let vocab = truth.shape[2];
    let err = logits
        .chunks_exact(vocab)
        .zip(truth.logits_f64.chunks_exact(vocab))
        .zip(&truth.mask)
        .filter(|(_, m)| **m == 1)
        .flat_map(|((ours, exact), _)| ours.iter().zip(exact))
        .map(|(&o, &e)| (f64::from(o) - e).abs())
        .fold(0.0, f64::max);
    let bound = 2.0 * truth.transformers_error;
    assert!(
        err <= bound,
        "max |logits - f64 truth| = {err:.3e} > {bound:.3e} (2x transformers' f32 error)"
    );
    let again = logits_of(&model, &truth, device);
    let same_bits = logits
        .iter()
        .zip(&again)
        .all(|(a, b)| a.to_bits() == b.to_bits());
    assert!(same_bits, "two forwards of the same input differ");
}

backend_tests!(real_weights_logits_are_exact_and_repeatable);

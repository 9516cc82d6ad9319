//! Checkpoint formats: bf16 on disk converts on load; a two-shard copy with an index loads
//! identically.

use std::path::Path;

use burn_peft::io::checkpoint::{Checkpoint, OutTensor, write_safetensors};
use burn_peft::model::decoder::Decoder;

use super::common::*;

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("burn-peft-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn copy_config(from: &Path, to: &Path) {
    for f in ["config.json", "generation_config.json"] {
        std::fs::copy(from.join(f), to.join(f)).unwrap();
    }
}

fn all_tensors(ckpt: &Checkpoint, bf16: bool) -> Vec<OutTensor> {
    ckpt.names()
        .into_iter()
        .map(|name| {
            let (values, shape) = ckpt.read_f32(name).unwrap();
            if bf16 {
                OutTensor::Bf16(name.to_string(), shape, values)
            } else {
                OutTensor::F32(name.to_string(), shape, values)
            }
        })
        .collect()
}

#[test]
fn bf16_checkpoint_matches_f32_within_bf16_tolerance() {
    let src = fixture("tiny-llama");
    let dir = temp_dir("bf16");
    copy_config(&src, &dir);
    let ckpt = Checkpoint::open_dir(&src).unwrap();
    write_safetensors(
        &dir.join("model.safetensors"),
        all_tensors(&ckpt, true),
        None,
    )
    .unwrap();
    assert_eq!(
        Checkpoint::open_dir(&dir).unwrap().dtype("lm_head.weight"),
        Some(safetensors::Dtype::BF16)
    );

    let reference = Reference::open("tiny-llama");
    let (ids, mask) = (
        reference.ints("input_ids"),
        reference.ints("attention_mask"),
    );
    let (f32_model, _) = Decoder::<B>::load(&src, &device()).unwrap();
    let (bf16_model, _) = Decoder::<B>::load(&dir, &device()).unwrap();
    let a = f32_model.forward(ids.clone(), Some(mask.clone()));
    let b = bf16_model.forward(ids, Some(mask));
    let scale = max_abs_diff(a.clone(), a.clone() * 0.0);
    let err = max_abs_diff(a, b);
    // bf16 keeps 8 significant bits: weights move by ≤ 2⁻⁹ relative.
    assert!(
        err > 0.0 && err < 0.02 * scale,
        "bf16 logits differ by {err} (logit scale {scale})"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sharded_checkpoint_loads_identically() {
    let src = fixture("tiny-qwen2");
    let dir = temp_dir("shards");
    copy_config(&src, &dir);
    let ckpt = Checkpoint::open_dir(&src).unwrap();
    let mut tensors = all_tensors(&ckpt, false);
    let second = tensors.split_off(tensors.len() / 2);
    let mut weight_map = serde_json::Map::new();
    for (file, part) in [
        ("model-00001-of-00002.safetensors", tensors),
        ("model-00002-of-00002.safetensors", second),
    ] {
        for t in &part {
            if let OutTensor::F32(name, _, _) = t {
                weight_map.insert(name.clone(), file.into());
            }
        }
        write_safetensors(&dir.join(file), part, None).unwrap();
    }
    let index = serde_json::json!({ "metadata": {}, "weight_map": weight_map });
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();

    let reference = Reference::open("tiny-qwen2");
    let (ids, mask) = (
        reference.ints("input_ids"),
        reference.ints("attention_mask"),
    );
    let (single, _) = Decoder::<B>::load(&src, &device()).unwrap();
    let (sharded, report) = Decoder::<B>::load(&dir, &device()).unwrap();
    assert!(report.unused.is_empty());
    let err = max_abs_diff(
        single.forward(ids.clone(), Some(mask.clone())),
        sharded.forward(ids, Some(mask)),
    );
    assert_eq!(err, 0.0);
    std::fs::remove_dir_all(&dir).unwrap();
}

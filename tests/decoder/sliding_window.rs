//! Mistral's sliding window as transformers applies it, and how `config.json` turns it on.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn_peft::model::config::{GenerationConfig, HfConfig};
use burn_peft::model::decoder::{Decoder, DecoderConfig, LayerType};

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

fn config_with(fields: serde_json::Value) -> DecoderConfig {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "burn-peft-window-config-{}-{n}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let mut config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("tiny-llama").join("config.json")).unwrap(),
    )
    .unwrap();
    for (key, value) in fields.as_object().unwrap() {
        config[key] = value.clone();
    }
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let parsed =
        DecoderConfig::from_hf(&HfConfig::read(&dir).unwrap(), &GenerationConfig::default());
    std::fs::remove_dir_all(&dir).unwrap();
    parsed.unwrap()
}

#[test]
fn sliding_window_follows_transformers_config_rules() {
    use serde_json::json;
    let full = vec![LayerType::FullAttention; 2];
    // Mistral: 4096 when the key is absent, none when null.
    let absent = config_with(json!({"model_type": "mistral"}));
    assert_eq!(absent.sliding_window, Some(4096));
    assert!(absent.uses_sliding_window(1));
    let null = config_with(json!({"model_type": "mistral", "sliding_window": null}));
    assert_eq!(null.sliding_window, None);
    assert!(!null.uses_sliding_window(0));
    // Qwen2: only with use_sliding_window, from max_window_layers on.
    let off = config_with(json!({"model_type": "qwen2", "sliding_window": 8}));
    assert_eq!((off.sliding_window, off.layer_types), (None, full));
    let on = config_with(json!({
        "model_type": "qwen2", "sliding_window": 8, "use_sliding_window": true,
        "max_window_layers": 1
    }));
    assert_eq!(on.sliding_window, Some(8));
    assert_eq!(
        on.layer_types,
        vec![LayerType::FullAttention, LayerType::SlidingAttention]
    );
    assert!(!on.uses_sliding_window(0) && on.uses_sliding_window(1));
    // Llama has no window whatever the file says.
    let llama = config_with(json!({"sliding_window": 8}));
    assert_eq!(llama.sliding_window, None);
}

#[test]
fn bad_sliding_window_names_the_field() {
    let dir = std::env::temp_dir().join(format!("burn-peft-bad-window-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string(fixture("tiny-mistral-sliding").join("config.json"))
        .unwrap()
        .replace("\"sliding_window\": 4", "\"sliding_window\": 0");
    std::fs::write(dir.join("config.json"), text).unwrap();
    let err = DecoderConfig::from_hf(&HfConfig::read(&dir).unwrap(), &GenerationConfig::default())
        .unwrap_err()
        .to_string();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        err.contains("config.json") && err.contains("sliding_window"),
        "{err}"
    );
}

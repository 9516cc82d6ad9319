//! How `config.json` turns the sliding window on, as transformers reads it (Mistral, Qwen2,
//! Llama), and a bad window named by its field.

use burn_peft::model::config::{GenerationConfig, HfConfig};
use burn_peft::model::decoder::{DecoderConfig, LayerType};

use super::common::*;

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

//! Bad configurations are rejected with errors naming the field and the value, never a panic.

use burn_peft::adapter::{AdaptedGroup, AdapterConfig, AdapterInit, Method};

use super::common::*;

fn parse(toml_text: &str) -> Result<AdapterConfig, String> {
    let cfg: AdapterConfig = toml::from_str(toml_text).map_err(|e| e.to_string())?;
    cfg.validate().map_err(|e| e.to_string())?;
    Ok(cfg)
}

#[test]
fn out_of_range_values_name_field_and_value() {
    let cases = [
        ("method = \"sorsa\"\nrank = 0", "adapter.rank", "0"),
        (
            "method = \"lora\"\nrank = 4\nalpha = 0.0",
            "adapter.alpha",
            "0",
        ),
        (
            "method = \"lora\"\nrank = 4\nalpha = -2.0",
            "adapter.alpha",
            "-2",
        ),
        (
            "method = \"lora\"\nrank = 4\ndropout = 1.5",
            "adapter.dropout",
            "1.5",
        ),
        (
            "method = \"lora\"\nrank = 4\ninit = \"svd\"",
            "adapter.init",
            "svd",
        ),
        (
            "method = \"lotr\"\nrank = 4\ninit = \"kaiming\"",
            "adapter.init",
            "kaiming",
        ),
        (
            "method = \"pissa\"\nrank = 4\ngamma = 0.1",
            "adapter.gamma",
            "0.1",
        ),
        (
            "method = \"sorsa\"\nrank = 4\ngamma = -1.0",
            "adapter.gamma",
            "-1",
        ),
    ];
    for (text, field, value) in cases {
        let err = parse(text).expect_err(text);
        assert!(
            err.contains(field) && err.contains(value),
            "{text:?} -> {err}"
        );
    }
}

#[test]
fn unknown_method_and_unknown_keys_are_parse_errors() {
    let err = parse("method = \"dora\"\nrank = 4").unwrap_err();
    assert!(
        err.contains("dora") && err.contains("unknown variant"),
        "{err}"
    );
    let err = parse("method = \"sorsa\"\nrank = 4\nranks = 8").unwrap_err();
    assert!(
        err.contains("ranks") && err.contains("unknown field"),
        "{err}"
    );
    let err = parse("rank = 4").unwrap_err();
    assert!(err.contains("method"), "{err}");
}

#[test]
fn rank_beyond_the_layer_is_rejected() {
    let w = random_weight(8, 6, 1);
    for method in [Method::Lora, Method::Sorsa, Method::Lotr] {
        let mut init = AdapterInit::new(AdapterConfig::new(method, 7)).unwrap();
        let err = AdaptedGroup::new(vec![linear(&w, 0)], &mut init)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("adapter.rank") && err.contains('7') && err.contains("[8, 6]"),
            "{method}: {err}"
        );
    }
}

#[test]
fn lotr_group_with_mismatched_shapes_is_rejected() {
    let mut init = AdapterInit::new(AdapterConfig::new(Method::Lotr, 2)).unwrap();
    let bases = vec![
        linear(&random_weight(8, 6, 1), 0),
        linear(&random_weight(6, 8, 2), 0),
    ];
    let err = AdaptedGroup::new(bases, &mut init).unwrap_err().to_string();
    assert!(
        err.contains("LoTR group: layer 1") && err.contains("[8, 6]") && err.contains("[6, 8]"),
        "{err}"
    );
}

#[test]
fn config_round_trips_through_toml() {
    let cfg = AdapterConfig::new(Method::LoraFa, 16).with_alpha(32.0);
    let text = toml::to_string(&cfg).unwrap();
    assert_eq!(parse(&text).unwrap(), cfg);
}

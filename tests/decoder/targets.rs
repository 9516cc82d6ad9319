//! Choosing adapter targets as PEFT does, `modules_to_save`, and the classification head.

use burn::module::AutodiffModule;
use burn::tensor::{Int, Tensor, TensorData};
use burn_peft::adapter::{AdapterConfig, Method, ParamReport, Targets};
use burn_peft::model::decoder::Decoder;
use burn_peft::model::{PeftLinear, PeftModel, inject_adapters};

use super::common::*;

type Train = burn::backend::Autodiff<B>;

fn adapted_names(model: &Decoder<Train>) -> Vec<String> {
    model
        .linears()
        .into_iter()
        .filter(|(_, s)| matches!(s, PeftLinear::Adapted(_)))
        .map(|(n, _)| n)
        .collect()
}

fn inject(targets: Option<Targets>) -> Result<Decoder<Train>, String> {
    let (model, _) = Decoder::<Train>::load(&fixture("tiny-llama"), &device()).unwrap();
    let mut cfg = AdapterConfig::new(Method::Sorsa, 4);
    cfg.targets = targets;
    inject_adapters(model, &cfg)
        .map(|(m, _)| m)
        .map_err(|e| e.to_string())
}

#[test]
fn targets_follow_peft_semantics() {
    let default = adapted_names(&inject(None).unwrap());
    assert_eq!(
        default,
        [
            "model.layers.0.self_attn.q_proj",
            "model.layers.0.self_attn.v_proj",
            "model.layers.1.self_attn.q_proj",
            "model.layers.1.self_attn.v_proj"
        ]
    );
    let names = adapted_names(&inject(Some(Targets::Names(vec!["down_proj".into()]))).unwrap());
    assert_eq!(
        names,
        [
            "model.layers.0.mlp.down_proj",
            "model.layers.1.mlp.down_proj"
        ]
    );
    let regex = adapted_names(
        &inject(Some(Targets::Pattern(
            r"model\.layers\.1\.self_attn\.[ko]_proj".into(),
        )))
        .unwrap(),
    );
    assert_eq!(
        regex,
        [
            "model.layers.1.self_attn.k_proj",
            "model.layers.1.self_attn.o_proj"
        ]
    );
    let all = adapted_names(&inject(Some(Targets::Pattern("all-linear".into()))).unwrap());
    assert_eq!(
        all.len(),
        14,
        "seven projections per layer, the untied lm_head excluded"
    );
    assert!(!all.contains(&"lm_head".to_string()));

    let err = inject(Some(Targets::Names(vec!["query".into()]))).unwrap_err();
    assert!(
        err.contains("adapter.targets")
            && err.contains("matches no linear")
            && err.contains("q_proj"),
        "{err}"
    );
}

#[test]
fn injection_keeps_the_logits_and_trains_only_adapters_and_saved_modules() {
    let reference = Reference::open("tiny-llama");
    let ids = reference.ints("input_ids");
    let mask = reference.ints("attention_mask");
    let (base, _) = Decoder::<B>::load(&fixture("tiny-llama"), &device()).unwrap();
    let want = base.forward(ids.clone(), Some(mask.clone()));
    for method in [
        Method::Lora,
        Method::Pissa,
        Method::Sorsa,
        Method::LoraFa,
        Method::Lotr,
    ] {
        let (model, _) = Decoder::<Train>::load(&fixture("tiny-llama"), &device()).unwrap();
        let mut cfg = AdapterConfig::new(method, 4);
        cfg.targets = Some(Targets::Pattern("all-linear".into()));
        cfg.modules_to_save = vec!["lm_head".into()];
        let (model, injection) = inject_adapters(model, &cfg).unwrap();
        assert_eq!(injection.adapted.len(), 14);
        if method == Method::Lotr {
            // One group per distinct shape: q/o [64,64], k/v [32,64], gate/up [172,64], down [64,172].
            assert_eq!(model.shared().lotr.len(), 4);
        }
        let report = ParamReport::of(&model);
        for e in &report.entries {
            // LoRA-FA's A stays frozen.
            let adapter = e.path.contains(".Adapted.adapter.") && !e.path.ends_with(".LoraFa.a");
            let expect = adapter || e.path.starts_with("shared.") || e.path.starts_with("lm_head.");
            assert_eq!(e.trainable, expect, "{method}: {}", e.path);
        }
        let got = model.valid().forward(ids.clone(), Some(mask.clone()));
        let err = max_abs_diff(got, want.clone());
        assert!(
            err < 1e-4,
            "{method}: injected model changes logits by {err:e}"
        );
    }
}

#[test]
fn classification_head_reads_the_last_real_token() {
    let (model, _) = Decoder::<B>::load(&fixture("tiny-llama"), &device()).unwrap();
    let model = model.with_score_head(3, 0);
    let ids = |v: Vec<i64>, n: usize| {
        Tensor::<B, 2, Int>::from_data(TensorData::new(v, [1, n]), &device())
    };
    // The same sentence alone and right-padded by 3 gives the same logits.
    let alone = model
        .classify(ids(vec![1, 17, 99, 4, 5], 5), ids(vec![1; 5], 5))
        .unwrap();
    let padded = model
        .classify(
            ids(vec![1, 17, 99, 4, 5, 0, 0, 0], 8),
            ids(vec![1, 1, 1, 1, 1, 0, 0, 0], 8),
        )
        .unwrap();
    assert_eq!(alone.dims(), [1, 3]);
    assert!(max_abs_diff(alone.clone(), padded) < 1e-5);
    // And differs from reading another position.
    let shorter = model
        .classify(ids(vec![1, 17, 99, 4], 4), ids(vec![1; 4], 4))
        .unwrap();
    assert!(max_abs_diff(alone, shorter) > 1e-4);
}

//! The weightless skeleton against the real thing: the linears (names, shapes, order) and
//! parameter counts of each fixture architecture as loaded, and `check`'s trainable count
//! against the parameters injection actually makes trainable, for every method.

use burn::backend::ndarray::NdArrayDevice;
use burn_peft::adapter::ParamReport;
use burn_peft::model::decoder::Decoder;
use burn_peft::model::encoder::EncoderClassifier;
use burn_peft::model::skeleton::{HeadSpec, ModelSkeleton};
use burn_peft::model::{PeftModel, inject_adapters};
use burn_peft::train::check::check_recipe;
use burn_peft::train::recipe::Recipe;

use crate::root;

type B = burn::backend::Autodiff<burn::backend::NdArray<f32>>;

/// Names and `[out, in]` shapes of a loaded model's linears, in order.
fn loaded_linears<M: PeftModel<B>>(model: &M) -> Vec<(String, [usize; 2])> {
    model
        .linears()
        .into_iter()
        .map(|(name, slot)| {
            let [inp, out] = slot.dims();
            (name, [out, inp])
        })
        .collect()
}

fn skeleton_linears(skeleton: &ModelSkeleton) -> Vec<(String, [usize; 2])> {
    skeleton
        .linears
        .iter()
        .map(|l| (l.name.clone(), [l.out_features, l.in_features]))
        .collect()
}

#[test]
fn skeleton_has_the_loaded_models_layers_and_parameters() {
    let device = NdArrayDevice::Cpu;
    for name in ["tiny-llama", "tiny-qwen2", "tiny-gemma"] {
        let dir = root().join("tests/fixtures").join(name);
        let (model, _) = Decoder::<B>::load(&dir, &device).unwrap();
        let skeleton = ModelSkeleton::read(&dir, HeadSpec::FromConfig).unwrap();
        assert_eq!(
            skeleton_linears(&skeleton),
            loaded_linears(&model),
            "{name}"
        );
        assert_eq!(
            skeleton.total_params(),
            ParamReport::of(&model).total(),
            "{name}"
        );
        for linear in &skeleton.linears {
            assert_eq!(
                linear.is_head,
                model.is_head(&linear.name),
                "{}",
                linear.name
            );
        }
        // A GLUE run adds a fresh `score` head.
        let with_head = model.with_score_head(2, 0);
        let skeleton = ModelSkeleton::read(&dir, HeadSpec::Classifier { num_labels: 2 }).unwrap();
        assert_eq!(
            skeleton_linears(&skeleton),
            loaded_linears(&with_head),
            "{name}"
        );
        assert_eq!(skeleton.total_params(), ParamReport::of(&with_head).total());
    }
    {
        let dir = root().join("tests/fixtures/tiny-rwkv6/hf");
        let (model, _) = burn_peft::model::rwkv6::Rwkv6::<B>::load_as(
            &dir,
            burn_peft::model::Precision::Auto,
            &device,
        )
        .unwrap();
        let skeleton = ModelSkeleton::read(&dir, HeadSpec::FromConfig).unwrap();
        assert_eq!(skeleton_linears(&skeleton), loaded_linears(&model), "rwkv6");
        assert_eq!(
            skeleton.total_params(),
            ParamReport::of(&model).total(),
            "rwkv6"
        );
        for linear in &skeleton.linears {
            assert_eq!(
                linear.is_head,
                model.is_head(&linear.name),
                "{}",
                linear.name
            );
        }
    }
    for name in ["tiny-bert-cls", "tiny-roberta-cls"] {
        let dir = root().join("tests/fixtures").join(name);
        let (model, _) = EncoderClassifier::<B>::load(&dir, &device).unwrap();
        let skeleton = ModelSkeleton::read(&dir.join("config.json"), HeadSpec::FromConfig).unwrap();
        assert_eq!(
            skeleton_linears(&skeleton),
            loaded_linears(&model),
            "{name}"
        );
        assert_eq!(
            skeleton.total_params(),
            ParamReport::of(&model).total(),
            "{name}"
        );
        for linear in &skeleton.linears {
            assert_eq!(
                linear.is_head,
                model.is_head(&linear.name),
                "{}",
                linear.name
            );
        }
    }
}

#[test]
fn check_counts_the_parameters_injection_trains() {
    let device = NdArrayDevice::Cpu;
    let methods: [(&str, &[&str]); 6] = [
        ("lora", &[]),
        ("pissa", &[]),
        ("sorsa", &["adapter.gamma=4e-4"]),
        ("lora_fa", &["adapter.init=\"kaiming\""]),
        ("lotr", &[]),
        (
            "lotr",
            &["adapter.targets=[\"q_proj\", \"k_proj\", \"mlp.up_proj\"]"],
        ),
    ];
    let llama = root().join("tests/fixtures/tiny-llama");
    for (method, extra) in methods {
        let mut sets = vec![
            format!("model.path=\"{}\"", llama.display()),
            format!("adapter.method=\"{method}\""),
            "adapter.gamma=0".into(),
            "adapter.rank=4".into(),
            "adapter.svd=\"exact\"".into(),
            "adapter.targets=\"all-linear\"".into(),
            "adapter.modules_to_save=[\"lm_head\"]".into(),
        ];
        sets.extend(extra.iter().map(|s| s.to_string()));
        let recipe = Recipe::load(None, &sets).unwrap();
        let report = check_recipe(&recipe, None).unwrap();
        let (model, _) = Decoder::<B>::load(&llama, &device).unwrap();
        let (model, injection) = inject_adapters(model, &recipe.adapter).unwrap();
        let names: Vec<&str> = report.adapted.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, injection.adapted, "{method} {extra:?}");
        let params = ParamReport::of(&model);
        assert_eq!(
            report.trainable_params,
            params.trainable(),
            "{method} {extra:?}"
        );
        assert_eq!(report.total_params, params.total(), "{method} {extra:?}");
    }

    // An encoder on a GLUE task: adapters plus the whole classifier head.
    let roberta = root().join("tests/fixtures/tiny-roberta-cls");
    for method in ["lora", "lora_fa", "lotr"] {
        let sets = vec![
            format!("model.path=\"{}\"", roberta.display()),
            format!("adapter.method=\"{method}\""),
            "adapter.gamma=0".into(),
            "adapter.rank=2".into(),
            "adapter.targets=[\"query\", \"value\"]".into(),
            "data.task=\"sst2\"".into(),
            "data.train=\"datasets/glue/SST-2/dev.tsv\"".into(),
            "data.max_prompt_length=64".into(),
            "adapter.modules_to_save=[\"classifier\"]".into(),
        ];
        let recipe = Recipe::load(None, &sets).unwrap();
        let report = check_recipe(&recipe, None).unwrap();
        let (model, _) = EncoderClassifier::<B>::load(&roberta, &device).unwrap();
        let (model, _) = inject_adapters(model, &recipe.adapter).unwrap();
        let params = ParamReport::of(&model);
        assert_eq!(report.trainable_params, params.trainable(), "{method}");
        assert_eq!(report.total_params, params.total(), "{method}");
    }
}

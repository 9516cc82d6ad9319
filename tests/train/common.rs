use std::path::PathBuf;

use burn::tensor::{ElementConversion, Int, Tensor};
use burn_peft::io::checkpoint::Checkpoint;
use burn_peft::train::recipe::Recipe;

/// The shipped CPU backend (burn-flex).
pub type B = burn_peft::backend::Cpu;
pub type Train = burn_peft::backend::Train<B>;

pub fn device() -> burn::tensor::Device<B> {
    Default::default()
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn temp(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("burn-peft-train-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The default recipe shrunk to a quick run on stories260K, with paths made absolute.
pub fn quick_recipe(tag: &str, extra: &[&str]) -> Recipe {
    let root = root();
    let mut sets: Vec<String> = vec![
        format!(
            "model.path=\"{}\"",
            root.join("models/stories260K/hf").display()
        ),
        format!(
            "data.train=\"{}\"",
            root.join("datasets/gsm8k/train.jsonl").display()
        ),
        format!("run.output_dir=\"{}\"", temp(tag).display()),
        "data.limit=48".into(),
        "data.eval_rows=8".into(),
        "data.max_prompt_length=48".into(),
        "data.max_response_length=48".into(),
        "optim.batch_size=4".into(),
        "optim.max_steps=8".into(),
        "optim.lr=5e-3".into(),
        "adapter.rank=4".into(),
        "run.checkpoint_every=4".into(),
        "run.log_every=100".into(),
    ];
    sets.extend(extra.iter().map(|s| s.to_string()));
    Recipe::load(None, &sets).unwrap()
}

/// Fixed token ids for comparing logits.
pub fn probe() -> (Tensor<B, 2, Int>, Tensor<B, 2, Int>) {
    let ckpt =
        Checkpoint::open_files(&[root().join("tests/fixtures/tiny-llama/reference.safetensors")])
            .unwrap();
    (
        ckpt.int_tensor("input_ids", &device()).unwrap(),
        ckpt.int_tensor("attention_mask", &device()).unwrap(),
    )
}

/// The tiny World-vocabulary RWKV6 folder: hidden 32, 2 blocks of 2 heads.
pub fn tiny_world_rwkv6() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = temp("tiny-world-rwkv6");
        std::fs::create_dir_all(&dir).unwrap();
        let config = burn_peft::model::rwkv6::Rwkv6Config::finch(65536, 32, 2, 16);
        let model = burn_peft::model::rwkv6::Rwkv6::<B>::random_as(
            config.clone(),
            7,
            burn::tensor::FloatDType::F32,
            &device(),
        )
        .unwrap();
        burn_peft::io::checkpoint::write_safetensors(
            &dir.join("model.safetensors"),
            model.hf_tensors().unwrap(),
            None,
        )
        .unwrap();
        let json = serde_json::json!({
            "architectures": ["Rwkv6ForCausalLM"],
            "model_type": "rwkv6",
            "vocab_size": config.vocab_size,
            "hidden_size": config.hidden_size,
            "num_hidden_layers": config.num_layers,
            "attention_hidden_size": config.attention_hidden_size,
            "head_size": config.head_size,
            "head_size_divisor": 8,
            "intermediate_size": config.intermediate_size,
            "layer_norm_epsilon": 1e-5,
            "tie_word_embeddings": false,
            "bos_token_id": 0,
            "eos_token_id": 0,
            "torch_dtype": "float32"
        });
        std::fs::write(dir.join("config.json"), json.to_string()).unwrap();
        std::fs::copy(
            root()
                .join("tests/fixtures/tiny-rwkv6/hf")
                .join(burn_peft::model::world_tokenizer::VOCAB_FILE),
            dir.join(burn_peft::model::world_tokenizer::VOCAB_FILE),
        )
        .unwrap();
        dir
    })
    .clone()
}

/// The quick recipe on the tiny RWKV6.
pub fn rwkv6_recipe(tag: &str, extra: &[&str]) -> Recipe {
    let model = format!("model.path=\"{}\"", tiny_world_rwkv6().display());
    let mut sets = vec![
        model.as_str(),
        "adapter.targets=\"all-linear\"",
        "optim.lr=1e-2",
    ];
    sets.extend(extra);
    quick_recipe(tag, &sets)
}

/// A temporary path as text (arguments of the binary).
pub fn path(p: &std::path::Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// Runs the binary, asserts it succeeded and returns its standard output.
pub fn burn_peft_ok(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_burn-peft"))
        .current_dir(root())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn max_abs_diff<const D: usize>(a: Tensor<B, D>, b: Tensor<B, D>) -> f64 {
    (a - b).abs().max().into_scalar().elem()
}

/// Every method as `--set` overrides of the quick recipe (SORSA is its default).
pub const METHODS: [(&str, &[&str]); 6] = [
    ("lora", &["adapter.method=\"lora\"", "adapter.gamma=0"]),
    ("pissa", &["adapter.method=\"pissa\"", "adapter.gamma=0"]),
    ("sorsa", &[]),
    (
        "lora_fa-kaiming",
        &[
            "adapter.method=\"lora_fa\"",
            "adapter.init=\"kaiming\"",
            "adapter.gamma=0",
        ],
    ),
    (
        "lora_fa-svd",
        &[
            "adapter.method=\"lora_fa\"",
            "adapter.init=\"svd\"",
            "adapter.gamma=0",
        ],
    ),
    (
        "lotr",
        &[
            "adapter.method=\"lotr\"",
            "adapter.init=\"svd\"",
            "adapter.gamma=0",
        ],
    ),
];

/// `metrics.jsonl` of the run in `dir` holds steps 1 to `total`, each once (a resumed run
/// drops the records past its checkpoint and redoes them).
pub fn assert_each_step_logged_once(dir: &std::path::Path, total: usize) {
    let steps: Vec<usize> = burn_peft::train::metrics::MetricsLog::read(&dir.join("metrics.jsonl"))
        .unwrap()
        .iter()
        .map(|m| m.step)
        .collect();
    assert_eq!(
        steps,
        (1..=total).collect::<Vec<_>>(),
        "metrics.jsonl has each step once"
    );
}

/// The largest difference between the saved adapters of two runs, tensor by tensor (the
/// first tensor over `tolerance` fails with its name).
pub fn assert_same_adapters(a: &std::path::Path, b: &std::path::Path, tolerance: f32) {
    let values = |dir: &std::path::Path| {
        let ckpt =
            Checkpoint::open_files(&[dir.join("adapter/adapter_model.safetensors")]).unwrap();
        ckpt.names()
            .into_iter()
            .map(|n| (n.to_string(), ckpt.read_f32(n).unwrap().0))
            .collect::<Vec<_>>()
    };
    let (a, b) = (values(a), values(b));
    assert_eq!(a.len(), b.len());
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        let diff = x
            .iter()
            .zip(y)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0f32, f32::max);
        assert!(diff <= tolerance, "{name}: resumed differs by {diff:e}");
    }
}

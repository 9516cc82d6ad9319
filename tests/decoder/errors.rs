//! Bad model folders give one clear error naming the file (and tensor), never a panic.

use std::path::{Path, PathBuf};

use burn_peft::io::checkpoint::{Checkpoint, OutTensor, write_safetensors};
use burn_peft::model::decoder::Decoder;
use burn_peft::persist::peft::load_peft_lora;

use super::common::*;

fn copy_fixture(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("burn-peft-err-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["config.json", "generation_config.json", "model.safetensors"] {
        std::fs::copy(fixture("tiny-llama").join(f), dir.join(f)).unwrap();
    }
    dir
}

fn load_error(dir: &Path) -> String {
    match Decoder::<B>::load(dir, &device()) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_model_folders_name_the_problem() {
    let dir = copy_fixture("missing-config");
    std::fs::remove_file(dir.join("config.json")).unwrap();
    let err = load_error(&dir);
    assert!(err.contains("config.json"), "{err}");

    let dir = copy_fixture("model-type");
    let config = std::fs::read_to_string(dir.join("config.json"))
        .unwrap()
        .replace("\"llama\"", "\"mamba\"");
    std::fs::write(dir.join("config.json"), config).unwrap();
    let err = load_error(&dir);
    assert!(
        err.contains("config.json") && err.contains("mamba") && err.contains("supported"),
        "{err}"
    );

    let dir = copy_fixture("truncated");
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    let err = load_error(&dir);
    assert!(
        err.contains("model.safetensors") && err.contains("truncated"),
        "{err}"
    );

    // A tensor of the wrong shape, and a missing tensor.
    let dir = copy_fixture("shape");
    let ckpt = Checkpoint::open_dir(&fixture("tiny-llama")).unwrap();
    let rewrite = |skip: &str, reshape: Option<&str>| -> Vec<OutTensor> {
        ckpt.names()
            .into_iter()
            .filter(|n| *n != skip)
            .map(|n| {
                let (v, mut shape) = ckpt.read_f32(n).unwrap();
                if Some(n) == reshape {
                    shape.reverse();
                }
                OutTensor::F32(n.to_string(), shape, v)
            })
            .collect()
    };
    write_safetensors(
        &dir.join("model.safetensors"),
        rewrite("", Some("model.layers.1.mlp.up_proj.weight")),
        None,
    )
    .unwrap();
    let err = load_error(&dir);
    assert!(
        err.contains("model.layers.1.mlp.up_proj.weight")
            && err.contains("[172, 64]")
            && err.contains("model.safetensors"),
        "{err}"
    );
    write_safetensors(
        &dir.join("model.safetensors"),
        rewrite("model.norm.weight", None),
        None,
    )
    .unwrap();
    let err = load_error(&dir);
    assert!(
        err.contains("missing tensor `model.norm.weight`") && err.contains("model.safetensors"),
        "{err}"
    );

    let dir = copy_fixture("no-weights");
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    let err = load_error(&dir);
    assert!(err.contains("model.safetensors"), "{err}");
}

#[test]
fn io_errors_carry_the_os_message_once_through_a_context_chain() {
    let dir = copy_fixture("io-once");
    std::fs::remove_file(dir.join("config.json")).unwrap();
    let err = match Decoder::<B>::load(&dir, &device()) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e,
    };
    assert!(std::error::Error::source(&err).is_none());
    let shown = err.to_string();
    // What `main` prints: the context chain with `{:#}`.
    let chain = format!("{:#}", anyhow::Error::new(err).context("loading"));
    assert_eq!(chain, format!("loading: {shown}"));
    assert_eq!(chain.matches("(os error").count(), 1, "{chain}");
    assert!(
        chain.contains(&dir.join("config.json").display().to_string()),
        "{chain}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A llama2.c `.bin`: the seven-int header and `floats` zeros.
fn llama2c_file(tag: &str, header: [i32; 7], floats: usize) -> PathBuf {
    let path = std::env::temp_dir().join(format!("burn-peft-l2c-{tag}-{}.bin", std::process::id()));
    let mut bytes: Vec<u8> = header.iter().flat_map(|v| v.to_le_bytes()).collect();
    bytes.resize(bytes.len() + 4 * floats, 0);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn crafted_llama2c_headers_are_errors() {
    use burn_peft::model::llama2c;
    // [dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len]
    let big = 1 << 30;
    let cases: [(&str, [i32; 7], &str); 3] = [
        // n_layers · dim · dim overflows 64 bits.
        ("overflow", [big, 8, big, 2, 2, 4, 8], "overflow"),
        ("sizes", [8, 16, 2, 2, 2, 32, 8], "truncated"),
        ("negative", [8, 16, 0, 2, 2, 32, 8], "n_layers"),
    ];
    for (tag, header, expected) in cases {
        let path = llama2c_file(tag, header, 64);
        let err = match llama2c::load::<B>(&path, &device()) {
            Ok(_) => panic!("{tag}: loaded"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains(expected) && err.contains(path.to_str().unwrap()),
            "{tag}: {err}"
        );
        std::fs::remove_file(path).unwrap();
    }
}

#[test]
fn token_ids_outside_the_vocabulary_are_errors() {
    use burn_peft::model::generate::{GenerationOptions, generate};
    let (model, _) = Decoder::<B>::load(&fixture("tiny-llama"), &device()).unwrap();
    let vocab = model.config.vocab_size as u32;
    let err = generate(
        &model,
        &[vec![1, 5], vec![1, vocab]],
        &GenerationOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("prompt") && err.contains(&vocab.to_string()),
        "{err}"
    );
}

/// A PEFT adapter made for another model is refused with the names that differ.
#[test]
fn adapter_for_another_model_is_rejected_by_name() {
    // tiny-qwen2's MLP is 128 wide where tiny-llama's is 172: the first mismatching factor is
    // named with its file and both shapes.
    let (qwen, _) = Decoder::<B>::load(&fixture("tiny-qwen2"), &device()).unwrap();
    let err = load_peft_lora(qwen, &fixture("tiny-llama-lora"))
        .expect_err("mismatched adapter loaded")
        .to_string();
    assert!(
        err.contains("adapter_model.safetensors")
            && err.contains("mlp.down_proj.lora_A.weight")
            && err.contains("[4, 172]"),
        "{err}"
    );

    // A module the model does not have is named.
    let (mut small, _) = Decoder::<B>::load(&fixture("tiny-llama"), &device()).unwrap();
    small.layers.truncate(1);
    let err = load_peft_lora(small, &fixture("tiny-llama-lora"))
        .expect_err("adapter for 2 layers loaded on 1")
        .to_string();
    assert!(
        err.contains("model.layers.1.") && err.contains("different base model"),
        "{err}"
    );

    // Another PEFT type is refused by its config field.
    let dir = std::env::temp_dir().join(format!("burn-peft-peft-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        fixture("tiny-llama-lora").join("adapter_model.safetensors"),
        dir.join("adapter_model.safetensors"),
    )
    .unwrap();
    let config =
        std::fs::read_to_string(fixture("tiny-llama-lora").join("adapter_config.json")).unwrap();
    std::fs::write(
        dir.join("adapter_config.json"),
        config.replace("\"LORA\"", "\"IA3\""),
    )
    .unwrap();
    let (base, _) = Decoder::<B>::load(&fixture("tiny-llama"), &device()).unwrap();
    let err = load_peft_lora(base, &dir)
        .expect_err("IA3 accepted")
        .to_string();
    assert!(
        err.contains("adapter_config.json") && err.contains("peft_type"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

//! Bad model folders give one clear error naming the file (and tensor), never a panic.

use std::path::{Path, PathBuf};

use burn_peft::io::checkpoint::{Checkpoint, OutTensor, write_safetensors};
use burn_peft::model::decoder::Decoder;

use crate::common::*;

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

//! The model commands of the binary: `forward` reproduces the references, `generate` tells the
//! story, `inspect` lists targets, and bad paths fail cleanly.

use std::process::Command;

use burn_peft::io::checkpoint::Checkpoint;

use super::common::*;

fn burn_peft(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_burn-peft"))
        .args(args)
        .output()
        .expect("run burn-peft")
}

fn ok(args: &[&str]) -> String {
    let out = burn_peft(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn forward_writes_reference_layout_logits() {
    let dir = std::env::temp_dir().join(format!("burn-peft-fwd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, adapter) in [
        ("tiny-llama", None),
        ("tiny-qwen2", None),
        ("tiny-gemma", None),
        ("tiny-llama", Some("tiny-llama-lora")),
    ] {
        let model = fixture(name);
        let reference_dir = fixture(adapter.unwrap_or(name));
        let inputs = reference_dir.join("reference.safetensors");
        let out = dir.join(format!("{name}-{}.safetensors", adapter.unwrap_or("base")));
        let mut args = vec![
            "forward",
            "--model",
            model.to_str().unwrap(),
            "--inputs",
            inputs.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        let adapter_path = adapter.map(fixture);
        if let Some(a) = &adapter_path {
            args.extend(["--adapter", a.to_str().unwrap()]);
        }
        ok(&args);
        let got = Checkpoint::open_files(&[out]).unwrap();
        let want = Checkpoint::open_files(&[inputs]).unwrap();
        let (g, gs) = got.read_f32("logits").unwrap();
        let (w, ws) = want.read_f32("logits").unwrap();
        assert_eq!(gs, ws);
        let err = g
            .iter()
            .zip(&w)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(err < 1e-4, "{name} {adapter:?}: logits differ by {err:e}");
        if want.contains("loss") {
            let (gl, _) = got.read_f32("loss").unwrap();
            let (wl, _) = want.read_f32("loss").unwrap();
            assert!(
                (gl[0] - wl[0]).abs() < 1e-5,
                "{name}: loss {} vs {}",
                gl[0],
                wl[0]
            );
        }
        assert_eq!(
            got.read_i64("input_ids").unwrap(),
            want.read_i64("input_ids").unwrap()
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn generate_and_inspect() {
    let stories = concat!(env!("CARGO_MANIFEST_DIR"), "/models/stories260K");
    let text = ok(&[
        "generate",
        "--model",
        &format!("{stories}/stories260K.bin"),
        "--prompt",
        "Once upon a time",
        "--max-new-tokens",
        "40",
    ]);
    assert!(
        text.starts_with("Once upon a time, there was a little girl named Lily."),
        "{text}"
    );
    let text = ok(&["inspect", "--model", &format!("{stories}/hf")]);
    assert!(
        text.contains("q_proj") && text.contains("x5") && text.contains("[64, 64]"),
        "{text}"
    );
}

#[test]
fn bad_paths_fail_with_the_path_named() {
    let out = burn_peft(&["generate", "--model", "/nonexistent/model", "--prompt", "x"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/model/config.json") && !err.contains("panicked"),
        "{err}"
    );

    let model = fixture("tiny-llama");
    let out = burn_peft(&[
        "forward",
        "--model",
        model.to_str().unwrap(),
        "--inputs",
        "/nonexistent/in.safetensors",
        "--out",
        "/tmp/x.safetensors",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/in.safetensors"));
}

//! The model commands of the binary: `forward` reproduces the references, `generate` tells the
//! story, `inspect` lists targets, and bad paths fail cleanly.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use burn_peft::io::checkpoint::Checkpoint;

use super::common::*;

fn burn_peft(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_burn-peft"))
        .args(args)
        .output()
        .expect("run burn-peft")
}

/// `burn_peft` with a time limit: killed (and the test failed) when it runs past `limit`.
fn burn_peft_within(args: &[&str], limit: Duration) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_burn-peft"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run burn-peft");
    let started = Instant::now();
    while child.try_wait().expect("wait for burn-peft").is_none() {
        if started.elapsed() > limit {
            child.kill().ok();
            panic!("{args:?} ran past {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("burn-peft's output")
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
    // A path that does not exist is named itself, with the OS message once.
    let out = burn_peft(&["generate", "--model", "/nonexistent/model", "--prompt", "x"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/model: No such file or directory")
            && err.matches("(os error").count() == 1
            && !err.contains("panicked"),
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

#[test]
fn a_folder_without_config_names_the_missing_file_with_the_os_message_once() {
    let dir = std::env::temp_dir().join(format!("burn-peft-no-config-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let inputs = fixture("tiny-llama").join("reference.safetensors");
    let out = dir.join("out.safetensors");
    for args in [
        vec![
            "generate",
            "--model",
            dir.to_str().unwrap(),
            "--prompt",
            "x",
        ],
        vec![
            "forward",
            "--model",
            dir.to_str().unwrap(),
            "--inputs",
            inputs.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    ] {
        let result = burn_peft_within(&args, Duration::from_secs(60));
        assert!(!result.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&result.stderr);
        let missing = format!(
            "{}: No such file or directory",
            dir.join("config.json").display()
        );
        assert!(
            err.contains(&missing)
                && err.matches("No such file or directory").count() == 1
                && err.matches("(os error").count() == 1,
            "{args:?}: {err}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn forward_on_the_folder_holding_a_llama2c_bin_matches_the_bin() {
    let stories = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/stories260K");
    let inputs = fixture("tiny-llama").join("reference.safetensors");
    let dir = std::env::temp_dir().join(format!("burn-peft-fwd-folder-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut logits = Vec::new();
    for (tag, model) in [
        ("folder", stories.clone()),
        ("bin", stories.join("stories260K.bin")),
    ] {
        let out = dir.join(format!("{tag}.safetensors"));
        let args = [
            "forward",
            "--model",
            model.to_str().unwrap(),
            "--inputs",
            inputs.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        let result = burn_peft_within(&args, Duration::from_secs(120));
        assert!(
            result.status.success(),
            "{tag}: {}",
            String::from_utf8_lossy(&result.stderr)
        );
        logits.push(
            Checkpoint::open_files(&[out])
                .unwrap()
                .read_f32("logits")
                .unwrap(),
        );
    }
    assert_eq!(logits[0], logits[1]);
    std::fs::remove_dir_all(&dir).unwrap();
}

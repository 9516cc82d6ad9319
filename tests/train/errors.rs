//! Bad recipes and data: clear errors naming file, key or line; nothing overwritten.

use std::process::Command;

use crate::common::*;

fn train_with(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_burn-peft"))
        .current_dir(root())
        .arg("train")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_recipes_and_data_are_named() {
    let dir = temp("errors");
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let default = burn_peft::train::recipe::DEFAULT_RECIPE;

    let malformed = write("malformed.toml", "[model\npath = 1");
    let (ok, err) = train_with(&["--config", &malformed]);
    assert!(!ok && err.contains("malformed.toml"), "{err}");

    let unknown = write(
        "unknown.toml",
        &default.replace("[optim]", "[optim]\nlearning_rate = 1.0"),
    );
    let (ok, err) = train_with(&["--config", &unknown]);
    assert!(
        !ok && err.contains("unknown.toml") && err.contains("learning_rate"),
        "{err}"
    );

    let (ok, err) = train_with(&[
        "--set",
        "optim.warmup_ratio=2",
        "--set",
        &format!("run.output_dir=\"{}\"", dir.join("x").display()),
    ]);
    assert!(
        !ok && err.contains("optim.warmup_ratio") && err.contains('2'),
        "{err}"
    );

    let (ok, err) = train_with(&[
        "--set",
        "data.train=\"/nonexistent/train.jsonl\"",
        "--set",
        &format!("run.output_dir=\"{}\"", dir.join("y").display()),
    ]);
    assert!(!ok && err.contains("/nonexistent/train.jsonl"), "{err}");

    let rows = "{\"question\": \"a\", \"answer\": \"b\"}\n{\"question\": \"c\", \"answer\": \"d\"}\n{\"question\": \"e\"}\n";
    let bad_rows = write("rows.jsonl", rows);
    let (ok, err) = train_with(&[
        "--set",
        &format!("data.train=\"{bad_rows}\""),
        "--set",
        &format!("run.output_dir=\"{}\"", dir.join("z").display()),
    ]);
    assert!(
        !ok && err.contains("rows.jsonl") && err.contains('3') && err.contains("answer"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    // An existing run is never overwritten without --resume.
    let existing = dir.join("existing");
    std::fs::create_dir_all(&existing).unwrap();
    std::fs::write(existing.join("config.toml"), "precious").unwrap();
    let (ok, err) = train_with(&[
        "--set",
        &format!("run.output_dir=\"{}\"", existing.display()),
    ]);
    assert!(!ok && err.contains("--resume"), "{err}");
    assert_eq!(
        std::fs::read_to_string(existing.join("config.toml")).unwrap(),
        "precious"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_diverging_run_stops_at_once_and_saves_nothing_non_finite() {
    use burn_peft::io::checkpoint::Checkpoint;
    let dir = temp("diverge");
    let (ok, err) = train_with(&[
        "--set",
        "optim.lr=1e9",
        "--set",
        "optim.max_steps=40",
        "--set",
        "run.checkpoint_every=2",
        "--set",
        "data.limit=64",
        "--set",
        "data.max_prompt_length=48",
        "--set",
        "data.max_response_length=48",
        "--set",
        "optim.batch_size=4",
        "--set",
        "adapter.rank=4",
        "--set",
        &format!("run.output_dir=\"{}\"", dir.display()),
    ]);
    assert!(!ok, "a diverged run exits non-zero: {err}");
    let step: usize = err
        .split("diverged at step ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the error names the step: {err}"));
    assert!(err.contains("loss") && !err.contains("panicked"), "{err}");
    assert!(
        !dir.join("adapter").exists(),
        "no adapter of a diverged run"
    );
    // The checkpoints before the bad step are kept, each value in them finite.
    let mut kept = 0;
    let checkpoints = dir.join("checkpoints");
    for entry in std::fs::read_dir(&checkpoints).into_iter().flatten() {
        let path = entry.unwrap().path();
        let ckpt = Checkpoint::open_files(&[path.join("trainable.safetensors")]).unwrap();
        for name in ckpt.names() {
            let (values, _) = ckpt.read_f32(name).unwrap();
            assert!(
                values.iter().all(|v| v.is_finite()),
                "{}: `{name}` is not finite",
                path.display()
            );
        }
        kept += 1;
    }
    assert_eq!(kept, (step - 1) / 2, "checkpoints before step {step}");
    std::fs::remove_dir_all(&dir).unwrap();
}

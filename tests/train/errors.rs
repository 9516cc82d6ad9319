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

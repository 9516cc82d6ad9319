//! The binary: the README's demo command runs, and bad input exits non-zero with a named field.

use std::process::Command;

fn burn_peft(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_burn-peft"))
        .args(args)
        .output()
        .expect("run burn-peft")
}

#[test]
fn demo_trains_and_merges() {
    for method in ["sorsa", "lotr", "lora_fa"] {
        let out = burn_peft(&[
            "demo", "--method", method, "--steps", "30", "--shape", "48x32", "--rank", "4",
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{method}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("trainable params:"), "{stdout}");
        assert!(stdout.contains("merged layers reproduce"), "{stdout}");
    }
}

#[test]
fn bad_arguments_exit_non_zero_naming_the_field() {
    let out = burn_peft(&["demo", "--rank", "0"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("adapter.rank") && stderr.contains('0'),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    let out = burn_peft(&["demo", "--rank", "100", "--shape", "16x16"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("adapter.rank") && stderr.contains("100"),
        "{stderr}"
    );

    let out = burn_peft(&["demo", "--method", "dora"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("dora"));
}

#[test]
fn demo_reads_a_recipe_and_names_the_file_and_key_of_bad_ones() {
    let out = burn_peft(&[
        "demo",
        "--config",
        "configs/demo-sorsa.toml",
        "--steps",
        "10",
        "--shape",
        "32x24",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\"method\":\"sorsa\""), "{stdout}");

    let dir = std::env::temp_dir().join(format!("burn-peft-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        (
            "unknown.toml",
            "[adapter]\nmethod = \"sorsa\"\nrank = 4\nrnak = 3\n",
            "rnak",
        ),
        (
            "zero.toml",
            "[adapter]\nmethod = \"sorsa\"\nrank = 0\n",
            "adapter.rank",
        ),
        (
            "broken.toml",
            "[adapter\nmethod = \"sorsa\"\n",
            "broken.toml",
        ),
    ];
    for (name, text, needle) in cases {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let out = burn_peft(&["demo", "--config", path.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name} accepted");
        assert!(
            stderr.contains(name) && stderr.contains(needle),
            "{name}: {stderr}"
        );
    }
    let out = burn_peft(&[
        "demo",
        "--config",
        dir.join("missing.toml").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
    std::fs::remove_dir_all(&dir).unwrap();
}

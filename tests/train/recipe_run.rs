//! The README's first command: the default recipe from the shipped files, through the binary.

use burn_peft::train::metrics::MetricsLog;

use crate::common::*;

#[test]
fn default_recipe_trains_and_writes_its_outputs() {
    let out = temp("default");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_burn-peft"))
        .current_dir(root())
        .args([
            "train",
            "--set",
            &format!("run.output_dir=\"{}\"", out.display()),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("trainable params:") && stdout.contains("step "),
        "{stdout}"
    );
    let metrics = MetricsLog::read(&out.join("metrics.jsonl")).unwrap();
    let n = metrics.len();
    let tenth = (n / 10).max(1);
    let mean = |m: &[burn_peft::train::metrics::StepMetrics]| {
        m.iter().map(|x| x.loss).sum::<f64>() / m.len() as f64
    };
    let (first, last) = (mean(&metrics[..tenth]), mean(&metrics[n - tenth..]));
    assert!(
        last < 0.8 * first,
        "loss of the last 10% ({last:.3}) is not 20% below the first 10% ({first:.3})"
    );
    for file in [
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
        "config.toml",
        "sample.txt",
        "summary.json",
    ] {
        assert!(out.join(file).is_file(), "missing {file}");
    }
    std::fs::remove_dir_all(&out).unwrap();
}

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
    assert!(
        stdout.contains("memory: peak ") && stdout.contains("+ activations "),
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
    // The memory report: measured peak and parts that add up to it.
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let memory = &summary["memory"];
    let part = |name: &str| {
        memory[name]
            .as_u64()
            .unwrap_or_else(|| panic!("{name}: {memory}"))
    };
    let parts = [
        "base",
        "adapters",
        "gradients",
        "optimizer",
        "activations",
        "other",
    ];
    assert_eq!(
        parts.iter().map(|p| part(p)).sum::<u64>(),
        part("peak"),
        "{memory}"
    );
    assert!(part("base") > 0 && part("activations") > 0, "{memory}");
    // Which GEMM the CPU device's products ran on, as the device line printed it.
    let matmul = summary["device"]["matmul"].as_str().unwrap_or_default();
    assert!(matmul.starts_with("gemm ("), "{}", summary["device"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("matmul: {matmul}")), "{stderr}");
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

//! Picking a device that is not there: one error naming what is missing and what was found,
//! before the backend starts (cubecl itself panics). And reading a device's memory.

use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn_peft::Error;
use burn_peft::backend::{BackendJob, DeviceKind, DeviceMemoryReader, run_on};

/// A job that must not start.
struct NeverRuns;

impl BackendJob for NeverRuns {
    type Output = ();
    fn run<B: AutodiffBackend>(self, _: B::Device) {
        panic!("the job started on a device that should have been refused")
    }
}

/// The `DeviceUnavailable` message for `device`.
fn refusal(device: &str) -> String {
    let kind: DeviceKind = device.parse().unwrap();
    match run_on(kind, NeverRuns) {
        Err(e @ Error::DeviceUnavailable { .. }) => e.to_string(),
        other => panic!("{device}: {other:?}"),
    }
}

#[cfg(feature = "wgpu")]
#[test]
fn missing_wgpu_adapter_lists_the_adapters_found() {
    let message = refusal("wgpu:virtual:7");
    assert!(
        message.contains("wgpu:virtual:7")
            && message.contains("VirtualGpu adapter(s) found, index 7 asked for; adapters: "),
        "{message}"
    );
}

/// The "no Vulkan driver" case, through the command a user runs: Vulkan's loader is
/// pointed at a driver list that does not exist.
#[cfg(all(feature = "wgpu", target_os = "linux"))]
#[test]
fn no_vulkan_driver_is_one_error_not_a_panic() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixture = root.join("tests/fixtures/tiny-llama");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_burn-peft"))
        .args(["forward", "--device", "wgpu", "--model"])
        .arg(&fixture)
        .arg("--inputs")
        .arg(fixture.join("reference.safetensors"))
        .arg("--out")
        .arg(std::env::temp_dir().join("burn-peft-no-driver.safetensors"))
        .env("VK_ICD_FILENAMES", "/nonexistent/icd.json")
        .env("VK_DRIVER_FILES", "/nonexistent/icd.json")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("device `wgpu` is not available: no Vulkan adapter found")
            && stderr.contains("mesa-vulkan-drivers")
            && !stderr.contains("panicked"),
        "{stderr}"
    );
}

/// On a machine without NVIDIA's driver: "no CUDA driver found"; with one: the devices it has.
#[cfg(feature = "cuda")]
#[test]
fn missing_cuda_device_names_the_driver_or_the_devices() {
    let message = refusal("cuda:1000");
    assert!(
        message.contains("device `cuda:1000` is not available: ")
            && (message.contains("no CUDA driver found")
                || message.contains("CUDA device(s) found, index 1000 asked for")),
        "{message}"
    );
}

/// A 16 MiB tensor shows in the device's memory in use, and the pools reserve at least that.
fn device_memory_counts_a_tensor<Bk: Backend>(device: &Bk::Device) {
    let reader = DeviceMemoryReader::of(device).expect("a GPU device");
    reader.release_unused();
    let before = reader.read().expect("the runtime reports its memory");
    let tensor = Tensor::<Bk, 1>::ones([4 << 20], device);
    let _ = tensor.clone().sum().into_data(); // runs the kernels
    let after = reader.read().unwrap();
    let grown = after.in_use.saturating_sub(before.in_use);
    assert!(
        grown >= 16 << 20 && after.reserved >= after.in_use,
        "{before:?} -> {after:?}"
    );
    drop(tensor);
    // Host devices have no device memory: their tensors are the process's.
    assert!(
        DeviceMemoryReader::of(&burn::tensor::Device::<burn_peft::backend::Cpu>::default())
            .is_none()
    );
}

backend_tests!(device_memory_counts_a_tensor);

/// `--device wgpu` runs fused and says so; `--no-fusion` runs unfused, says so, and gives the
/// same logits.
#[cfg(feature = "wgpu")]
#[test]
fn the_device_line_says_whether_fusion_is_on_and_both_agree() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixture = root.join("tests/fixtures/tiny-llama");
    let dir = std::env::temp_dir().join(format!("burn-peft-fusion-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let forward = |flags: &[&str], out: &str| {
        let out = dir.join(out);
        let run = std::process::Command::new(env!("CARGO_BIN_EXE_burn-peft"))
            .args(["forward", "--device", "wgpu", "--model"])
            .arg(&fixture)
            .arg("--inputs")
            .arg(fixture.join("reference.safetensors"))
            .arg("--out")
            .arg(&out)
            .args(flags)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
        assert!(run.status.success(), "{stderr}");
        let logits = burn_peft::io::checkpoint::Checkpoint::open_files(&[out])
            .unwrap()
            .read_f32("logits")
            .unwrap()
            .0;
        (stderr, logits)
    };
    let (fused_line, fused) = forward(&[], "fused.safetensors");
    let (unfused_line, unfused) = forward(&["--no-fusion"], "unfused.safetensors");
    assert!(
        fused_line.contains("device: wgpu (burn-wgpu") && fused_line.contains(", fused"),
        "{fused_line}"
    );
    assert!(
        unfused_line.contains(", unfused (--no-fusion)"),
        "{unfused_line}"
    );
    assert_eq!(fused.len(), unfused.len());
    let err = fused
        .iter()
        .zip(&unfused)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(err < 1e-4, "fused and unfused logits differ by {err:e}");
    let _ = std::fs::remove_dir_all(&dir);
}

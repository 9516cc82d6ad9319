//! The trainer's memory report: the peak resident memory of a training step and its parts,
//! in bytes, in the categories a run planner estimates:
//!
//! | part | what | how it is obtained |
//! |---|---|---|
//! | `base` | frozen parameters | Σ elements × dtype size (exact) |
//! | `adapters` | trainable parameters, plus the initial factors kept for saving | Σ elements × dtype size (exact) |
//! | `gradients` | one gradient per trainable parameter, in its dtype | = trainable bytes (exact) |
//! | `optimizer` | AdamW's first and second moments | 2 × trainable bytes (exact) |
//! | `activations` | what the step holds beyond that: saved activations, temporaries | step peak − resident at the step's start − gradients (measured) |
//! | `other` | runtime, data, allocator slack | peak − all of the above (measured) |
//!
//! Where tensors live in host memory (`cpu`, `ndarray` devices, Linux) the peak is the
//! process's resident set (`VmHWM`), reset at each step's start. On GPU devices (wgpu, CUDA) it
//! is the device memory Burn's allocator has reserved by the step's end: the pools are emptied
//! of unused memory once before the first step and keep what they reserve, so this is the
//! most the steps needed in use, plus the pools' slack (what the device's own tools show for the
//! process, less the runtime's context). Elsewhere the exact parts are reported and the
//! measured ones are absent.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Tensor, backend::Backend};
use serde::{Deserialize, Serialize};

use crate::backend::DeviceMemoryReader;
use crate::persist::adapter::InitialAdapters;

/// Peak memory of a run and its parts (bytes).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryReport {
    /// Peak resident memory of the process during the step where it was highest.
    pub peak: Option<u64>,
    /// The optimizer step (1-based) the peak was measured in.
    pub peak_step: Option<usize>,
    pub base: u64,
    pub adapters: u64,
    pub gradients: u64,
    pub optimizer: u64,
    pub activations: Option<u64>,
    pub other: Option<u64>,
}

/// Bytes of a model's parameters: frozen and trainable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParamBytes {
    pub frozen: u64,
    pub trainable: u64,
}

impl ParamBytes {
    /// Counts `module`'s parameters (each tensor once: LoTR's shared factors live in one place).
    pub fn of<B: Backend, M: Module<B>>(module: &M) -> Self {
        let mut count = CountBytes::default();
        module.visit(&mut count);
        count.bytes
    }
}

#[derive(Default)]
struct CountBytes {
    bytes: ParamBytes,
}

impl<B: Backend> ModuleVisitor<B> for CountBytes {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let tensor = param.val();
        let bytes = (tensor.shape().num_elements() * tensor.dtype().size()) as u64;
        if param.is_require_grad() {
            self.bytes.trainable += bytes;
        } else {
            self.bytes.frozen += bytes;
        }
    }
}

/// Bytes of the initial adapter factors the trainer keeps for saving: a snapshot whose
/// trainable tensors diverge from the model's at the first update.
pub fn initial_bytes<B: Backend>(initial: &InitialAdapters<B>) -> u64 {
    initial
        .layers
        .iter()
        .map(|(_, adapter)| ParamBytes::of(adapter).trainable)
        .sum::<u64>()
        + ParamBytes::of(&initial.shared).trainable
}

/// Where a run's peak memory is measured.
#[derive(Debug, Clone)]
pub enum MemorySource {
    /// The process's resident set: tensors in host memory (Linux).
    HostRss,
    /// A GPU device's memory, as Burn's allocator reserved it.
    Device(DeviceMemoryReader),
    /// Not measured: only the exact parts are reported.
    Unmeasured,
}

impl MemorySource {
    /// The source for a backend's `device`: its allocator on a GPU device, else the resident
    /// set where it can be read.
    pub fn of<D: 'static>(device: &D) -> Self {
        match DeviceMemoryReader::of(device) {
            Some(reader) => Self::Device(reader),
            None if rss::supported() => Self::HostRss,
            None => Self::Unmeasured,
        }
    }
}

/// Measures the steps of a run and keeps the breakdown of the highest one.
#[derive(Debug, Clone)]
pub struct MemoryMonitor {
    report: MemoryReport,
    /// Memory when the current step started: resident (host), in use (device).
    step_start: Option<u64>,
    source: MemorySource,
}

impl MemoryMonitor {
    /// A monitor for a model with `params`, plus `initial` bytes of saved initial factors,
    /// measured from `source`. Create it after the model is built: a device's pools are
    /// emptied of unused memory here.
    pub fn new(params: ParamBytes, initial: u64, source: MemorySource) -> Self {
        let trainable = params.trainable;
        if let MemorySource::Device(reader) = &source {
            reader.release_unused();
        }
        Self {
            report: MemoryReport {
                base: params.frozen,
                adapters: trainable + initial,
                gradients: trainable,
                optimizer: 2 * trainable,
                ..MemoryReport::default()
            },
            step_start: None,
            source,
        }
    }

    /// Call right before a step's forward pass.
    pub fn start_step(&mut self) {
        self.step_start = match &self.source {
            MemorySource::HostRss => rss::reset_peak(),
            MemorySource::Device(reader) => reader.read().map(|m| m.in_use),
            MemorySource::Unmeasured => None,
        };
    }

    /// Call after the step's optimizer update; `step` is 1-based.
    pub fn end_step(&mut self, step: usize) {
        let peak = match &self.source {
            MemorySource::HostRss => rss::peak(),
            MemorySource::Device(reader) => reader.read().map(|m| m.reserved),
            MemorySource::Unmeasured => None,
        };
        let (Some(start), Some(peak)) = (self.step_start.take(), peak) else {
            return;
        };
        if self.report.peak.is_some_and(|p| p >= peak) {
            return;
        }
        let r = &mut self.report;
        let activations = peak.saturating_sub(start).saturating_sub(r.gradients);
        let parts = r.base + r.adapters + r.gradients + r.optimizer + activations;
        r.peak = Some(peak);
        r.peak_step = Some(step);
        r.activations = Some(activations);
        r.other = Some(peak.saturating_sub(parts));
    }

    pub fn report(&self) -> &MemoryReport {
        &self.report
    }
}

impl MemoryReport {
    /// One log line: `memory: peak 4.21 GiB (step 3) = base 1.87 + adapters …`.
    pub fn line(&self) -> String {
        let gib = |b: u64| format!("{:.3}", b as f64 / (1u64 << 30) as f64);
        let measured = |b: Option<u64>| b.map_or("n/a".to_string(), gib);
        let peak = match (self.peak, self.peak_step) {
            (Some(p), Some(step)) => format!("peak {} GiB (step {step})", gib(p)),
            _ => "peak n/a (not measured on this device)".into(),
        };
        format!(
            "memory: {peak} = base {} + adapters {} + gradients {} + optimizer {} + activations {} + other {}",
            gib(self.base),
            gib(self.adapters),
            gib(self.gradients),
            gib(self.optimizer),
            measured(self.activations),
            measured(self.other),
        )
    }
}

/// The process's resident set, from `/proc/self` (Linux).
pub mod rss {
    /// Whether the peak can be measured and reset here.
    pub fn supported() -> bool {
        cfg!(target_os = "linux") && peak().is_some()
    }

    /// Peak resident bytes since the last reset (`VmHWM`).
    pub fn peak() -> Option<u64> {
        status_kib("VmHWM:").map(|kib| kib * 1024)
    }

    /// Current resident bytes (`VmRSS`).
    pub fn current() -> Option<u64> {
        status_kib("VmRSS:").map(|kib| kib * 1024)
    }

    /// Returns freed heap memory to the system (so it is not counted as resident), resets the
    /// peak to the current resident set and returns that.
    pub fn reset_peak() -> Option<u64> {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim only releases free heap pages; it has no preconditions.
        unsafe {
            libc::malloc_trim(0);
        }
        // Writing 5 to clear_refs resets VmHWM (Linux ≥ 4.0).
        std::fs::write("/proc/self/clear_refs", "5").ok()?;
        current()
    }

    fn status_kib(field: &str) -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        status
            .lines()
            .find(|l| l.starts_with(field))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }
}

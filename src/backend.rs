//! The only module that names concrete Burn backends. Everything else is generic over
//! `B: Backend` (inference) or `B: AutodiffBackend` (training), and the CLI reaches a backend
//! through [`run_on`].

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use burn::tensor::backend::AutodiffBackend;

use crate::{Error, Result};

/// CPU backend (always compiled, the default): burn-flex, gemm-based, with AVX-512 kernels
/// dispatched at run time on x86_64.
pub type Cpu = burn::backend::Flex;
/// The legacy ndarray CPU backend, kept for comparison: the library and the tests use it
/// always; `--device ndarray` needs `--features ndarray`, because its kernels are generic over
/// the element type and so compile into the binary itself (66 s more of a cold build's serial
/// tail, at opt-level 1, for a backend the shipped `cpu` device supersedes).
pub type Ndarray = burn::backend::NdArray<f32>;
/// CUDA backend (`--features cuda`) without burn-fusion: `--no-fusion`, as `Wgpu`.
#[cfg(feature = "cuda")]
pub type Cuda = burn_cubecl::CubeBackend<cubecl::cuda::CudaRuntime, f32, i32, u8>;
/// Burn's fused CUDA backend (burn-fusion), what `--device cuda` runs, as `WgpuFused`.
#[cfg(feature = "cuda")]
pub type CudaFused = burn::backend::Cuda<f32, i32>;
/// wgpu backend: Vulkan, Metal, DX12 (`--features wgpu`), without burn-fusion: every op its
/// own kernel, for diagnosis (`--no-fusion`, `run.fusion = false`).
#[cfg(feature = "wgpu")]
pub type Wgpu = burn::backend::wgpu::CubeBackend<burn::backend::wgpu::WgpuRuntime, f32, i32, u32>;
/// Burn's fused wgpu backend (burn-fusion: elementwise chains, reductions and matmul
/// epilogues as one kernel each), what `--device wgpu` runs. Our graphs keep clear of a Burn
/// 0.21 fused-matmul bug ([`crate::model::attention::grouped_attention`],
/// [`crate::model::wkv::wkv6_chunked`]; `tests/gpu/fusion.rs`).
#[cfg(feature = "wgpu")]
pub type WgpuFused = burn::backend::Wgpu<f32, i32, u32>;

/// Wraps a backend with automatic differentiation for training.
pub type Train<B> = burn::backend::Autodiff<B>;
/// Automatic differentiation with Burn's BalancedCheckpointing strategy (memory-bound ops are
/// recomputed in the backward pass instead of kept); `bench train --checkpointing balanced`.
pub type TrainBalanced<B> = burn::backend::Autodiff<
    B,
    burn::backend::autodiff::checkpoint::strategy::BalancedCheckpointing,
>;

/// A device the user can pick with `--device` (and `run.device`): the backend and, where a
/// machine has several, which device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceKind {
    /// `cpu` (or `flex`): burn-flex.
    #[default]
    Cpu,
    /// `ndarray`: the legacy CPU backend (`--features ndarray`).
    Ndarray,
    /// `wgpu`, `wgpu:discrete[:N]`, `wgpu:integrated[:N]`, `wgpu:virtual[:N]`, `wgpu:cpu`
    /// (`--features wgpu`; Vulkan on Linux and Windows, Metal on macOS).
    Wgpu(WgpuAdapter),
    /// `cuda` or `cuda:N` (`--features cuda`).
    Cuda(usize),
}

/// Which wgpu adapter a `wgpu` device runs on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WgpuAdapter {
    /// The best the graphics API offers (a high-performance GPU first); Burn's default.
    #[default]
    Best,
    /// The N-th discrete GPU.
    Discrete(usize),
    /// The N-th integrated GPU.
    Integrated(usize),
    /// The N-th virtual GPU.
    Virtual(usize),
    /// A driver that runs on the CPU (Mesa's llvmpipe).
    Cpu,
}

impl DeviceKind {
    /// The cargo feature that compiles this device in (`None`: always compiled).
    pub fn feature(self) -> Option<&'static str> {
        match self {
            DeviceKind::Cpu => None,
            DeviceKind::Ndarray => Some("ndarray"),
            DeviceKind::Wgpu(_) => Some("wgpu"),
            DeviceKind::Cuda(_) => Some("cuda"),
        }
    }

    /// Whether this binary was built with the device's backend.
    pub fn is_compiled(self) -> bool {
        match self {
            DeviceKind::Cpu => true,
            DeviceKind::Ndarray => cfg!(feature = "ndarray"),
            DeviceKind::Wgpu(_) => cfg!(feature = "wgpu"),
            DeviceKind::Cuda(_) => cfg!(feature = "cuda"),
        }
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceKind::Cpu => f.write_str("cpu"),
            DeviceKind::Ndarray => f.write_str("ndarray"),
            DeviceKind::Wgpu(WgpuAdapter::Best) => f.write_str("wgpu"),
            DeviceKind::Wgpu(WgpuAdapter::Discrete(n)) => write!(f, "wgpu:discrete:{n}"),
            DeviceKind::Wgpu(WgpuAdapter::Integrated(n)) => write!(f, "wgpu:integrated:{n}"),
            DeviceKind::Wgpu(WgpuAdapter::Virtual(n)) => write!(f, "wgpu:virtual:{n}"),
            DeviceKind::Wgpu(WgpuAdapter::Cpu) => f.write_str("wgpu:cpu"),
            DeviceKind::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

const DEVICE_CHOICES: &str = "expected cpu (flex), ndarray, wgpu, wgpu:discrete[:N], \
                              wgpu:integrated[:N], wgpu:virtual[:N], wgpu:cpu, cuda or cuda:N";

impl FromStr for DeviceKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let lower = s.trim().to_ascii_lowercase();
        let mut parts = lower.split(':');
        let backend = parts.next().unwrap_or_default();
        let rest: Vec<&str> = parts.collect();
        let bad = |reason: &str| Error::invalid("device", s, reason.to_string());
        let ordinal = |part: Option<&&str>| -> Result<usize> {
            match part {
                None => Ok(0),
                Some(n) => n.parse().map_err(|_| bad(DEVICE_CHOICES)),
            }
        };
        let kind = match (backend, rest.as_slice()) {
            ("cpu" | "flex", []) => DeviceKind::Cpu,
            ("ndarray", []) => DeviceKind::Ndarray,
            ("wgpu" | "vulkan" | "metal", []) => DeviceKind::Wgpu(WgpuAdapter::Best),
            ("wgpu", ["cpu" | "llvmpipe"]) => DeviceKind::Wgpu(WgpuAdapter::Cpu),
            ("wgpu", [which, more @ ..]) if more.len() <= 1 => {
                let n = ordinal(more.first())?;
                DeviceKind::Wgpu(match *which {
                    "discrete" => WgpuAdapter::Discrete(n),
                    "integrated" => WgpuAdapter::Integrated(n),
                    "virtual" => WgpuAdapter::Virtual(n),
                    _ => return Err(bad(DEVICE_CHOICES)),
                })
            }
            ("cuda" | "gpu", []) => DeviceKind::Cuda(0),
            ("cuda" | "gpu", [n]) => DeviceKind::Cuda(ordinal(Some(n))?),
            _ => return Err(bad(DEVICE_CHOICES)),
        };
        if let Some(feature) = kind.feature().filter(|_| !kind.is_compiled()) {
            return Err(Error::invalid(
                "device",
                s,
                format!(
                    "this binary was built without the `{feature}` feature; rebuild with \
                     `cargo build --release --features {feature}`"
                ),
            ));
        }
        Ok(kind)
    }
}

static FUSION: AtomicBool = AtomicBool::new(true);

/// Whether [`run_on`] runs `wgpu` and `cuda` devices on Burn's fused backends (the default)
/// or unfused (`--no-fusion`, `run.fusion = false`: to tell a fusion bug from ours).
pub fn set_fusion(on: bool) {
    FUSION.store(on, Ordering::Relaxed);
}

/// See [`set_fusion`].
pub fn fusion() -> bool {
    FUSION.load(Ordering::Relaxed)
}

/// What a run actually ran on, as `summary.json` and `results.json` record it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// The device as `--device` spells it (`cpu`, `wgpu:discrete:0`, `cuda:1`).
    pub device: String,
    /// The Burn backend (and, for wgpu, the graphics API it went through).
    pub backend: String,
    /// The adapter or processor: a GPU's name, `llvmpipe (LLVM …)`, a CPU model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<String>,
    /// The driver and its version, where the backend reports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// On a GPU backend, whether it ran fused (burn-fusion); absent on the CPU backends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fusion: Option<bool>,
    /// On a CPU backend, the GEMM its matrix products run on (`gemm (AVX-512)` on burn-flex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matmul: Option<String>,
}

impl fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}", self.device, self.backend)?;
        match self.fusion {
            Some(true) => f.write_str(", fused")?,
            Some(false) => f.write_str(", unfused (--no-fusion)")?,
            None => {}
        }
        if let Some(adapter) = &self.adapter {
            write!(f, ", {adapter}")?;
        }
        if let Some(matmul) = &self.matmul {
            write!(f, ", matmul: {matmul}")?;
        }
        if let Some(driver) = &self.driver {
            write!(f, ", driver {driver}")?;
        }
        f.write_str(")")
    }
}

static ACTIVE_DEVICE: OnceLock<DeviceInfo> = OnceLock::new();

/// The device [`run_on`] picked in this process, if it ran.
pub fn active_device() -> Option<DeviceInfo> {
    ACTIVE_DEVICE.get().cloned()
}

/// A job generic over the training backend, so the CLI can pick the backend at run time.
pub trait BackendJob {
    type Output;
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output;
}

/// Runs `job` on the backend and device `kind` names, after checking the device exists (a
/// machine without the driver gets [`Error::DeviceUnavailable`], not a panic inside the
/// backend) and recording what it is ([`active_device`]): [`run_on_devices`] with one device.
pub fn run_on<J: BackendJob>(kind: DeviceKind, job: J) -> Result<J::Output> {
    run_on_devices(&[kind], OneDevice(job))
}

/// A one-device job as a [`DevicesJob`].
struct OneDevice<J>(J);

impl<J: BackendJob> DevicesJob for OneDevice<J> {
    type Output = J::Output;
    fn run<B: AutodiffBackend>(self, devices: Vec<B::Device>) -> J::Output {
        let device = devices
            .into_iter()
            .next()
            .expect("run_on passes one device");
        self.0.run::<B>(device)
    }
}

/// A job that runs on several devices of one backend at once (`run.devices`).
pub trait DevicesJob {
    type Output;
    fn run<B: AutodiffBackend>(self, devices: Vec<B::Device>) -> Self::Output;
}

/// Runs `job` on the devices `kinds` name, which must all be of one backend (`cuda:0` and
/// `cuda:1`; `cpu` twice puts two replicas on the one CPU device), each checked as [`run_on`]
/// checks it.
pub fn run_on_devices<J: DevicesJob>(kinds: &[DeviceKind], job: J) -> Result<J::Output> {
    let Some(&first) = kinds.first() else {
        return Err(Error::invalid("run.devices", "[]", "names no device"));
    };
    if let Some(other) = kinds
        .iter()
        .find(|k| std::mem::discriminant(*k) != std::mem::discriminant(&first))
    {
        return Err(Error::invalid(
            "run.devices",
            format!("{first}, {other}"),
            "all devices must be of one backend (one process trains on one kind of device)",
        ));
    }
    match first {
        #[cfg(feature = "wgpu")]
        DeviceKind::Wgpu(_) => {
            let devices = each(kinds, |kind| {
                let DeviceKind::Wgpu(adapter) = kind else {
                    unreachable!("one backend, checked above")
                };
                let (device, info) = wgpu_device(kind, adapter)?;
                record(info);
                Ok(device)
            })?;
            Ok(if fusion() {
                job.run::<Train<WgpuFused>>(devices)
            } else {
                job.run::<Train<Wgpu>>(devices)
            })
        }
        #[cfg(feature = "cuda")]
        DeviceKind::Cuda(_) => {
            let devices = each(kinds, |kind| {
                let DeviceKind::Cuda(index) = kind else {
                    unreachable!("one backend, checked above")
                };
                record(cuda_device(kind, index)?);
                Ok(burn::backend::cuda::CudaDevice::new(index))
            })?;
            Ok(if fusion() {
                job.run::<Train<CudaFused>>(devices)
            } else {
                job.run::<Train<Cuda>>(devices)
            })
        }
        #[cfg(feature = "ndarray")]
        DeviceKind::Ndarray => {
            record(host_info(first, "burn-ndarray", "matrixmultiply".into()));
            Ok(job.run::<Train<Ndarray>>(vec![Default::default(); kinds.len()]))
        }
        DeviceKind::Cpu => {
            record(host_info(
                first,
                "burn-flex",
                crate::kernel::matmul::gemm_name(),
            ));
            Ok(job.run::<Train<Cpu>>(vec![Default::default(); kinds.len()]))
        }
        #[allow(unreachable_patterns)]
        other => Err(Error::DeviceUnavailable {
            device: other.to_string(),
            message: format!(
                "this binary was built without the `{}` feature",
                other.feature().unwrap_or("cpu")
            ),
        }),
    }
}

/// `open` applied to each of `kinds`, stopping at the first error.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn each<D>(kinds: &[DeviceKind], open: impl Fn(DeviceKind) -> Result<D>) -> Result<Vec<D>> {
    kinds.iter().map(|&kind| open(kind)).collect()
}

fn record(info: DeviceInfo) {
    eprintln!("device: {info}");
    let _ = ACTIVE_DEVICE.set(info);
}

/// A host device: the CPU's model name, where the OS says it.
fn host_info(kind: DeviceKind, backend: &str, matmul: String) -> DeviceInfo {
    let adapter = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, name)| name.trim().to_string())
        });
    DeviceInfo {
        device: kind.to_string(),
        backend: backend.into(),
        adapter,
        driver: None,
        fusion: None,
        matmul: Some(matmul),
    }
}

/// Finds the wgpu adapter `adapter` asks for and initialises Burn's runtime on it. The
/// adapters are listed first (through the same graphics API Burn uses) so that a machine
/// without a driver, or without that kind of adapter, gets an error naming what is missing
/// instead of the backend's panic.
#[cfg(feature = "wgpu")]
fn wgpu_device(
    kind: DeviceKind,
    adapter: WgpuAdapter,
) -> Result<(burn::backend::wgpu::WgpuDevice, DeviceInfo)> {
    use burn::backend::wgpu::graphics::{AutoGraphicsApi, GraphicsApi};
    use burn::backend::wgpu::{RuntimeOptions, WgpuDevice, init_setup};

    let api = AutoGraphicsApi::backend();
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: api.into(),
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    let found: Vec<wgpu::AdapterInfo> =
        futures_lite::future::block_on(instance.enumerate_adapters(api.into()))
            .iter()
            .map(|a| a.get_info())
            .collect();
    let unavailable = |message: String| Error::DeviceUnavailable {
        device: kind.to_string(),
        message,
    };
    if found.is_empty() {
        return Err(unavailable(format!(
            "no {api:?} adapter found: no {api:?} driver is installed (or none sees a device). \
             Install the GPU's driver; on a machine without a GPU, Mesa's llvmpipe runs {api:?} \
             on the CPU (Debian/Ubuntu: `apt-get install mesa-vulkan-drivers`)"
        )));
    }
    let (device, wanted) = match adapter {
        WgpuAdapter::Best => (WgpuDevice::DefaultDevice, None),
        WgpuAdapter::Discrete(n) => (
            WgpuDevice::DiscreteGpu(n),
            Some((wgpu::DeviceType::DiscreteGpu, n)),
        ),
        WgpuAdapter::Integrated(n) => (
            WgpuDevice::IntegratedGpu(n),
            Some((wgpu::DeviceType::IntegratedGpu, n)),
        ),
        WgpuAdapter::Virtual(n) => (
            WgpuDevice::VirtualGpu(n),
            Some((wgpu::DeviceType::VirtualGpu, n)),
        ),
        WgpuAdapter::Cpu => (WgpuDevice::Cpu, Some((wgpu::DeviceType::Cpu, 0))),
    };
    if let Some((device_type, n)) = wanted {
        let count = found
            .iter()
            .filter(|a| a.device_type == device_type)
            .count();
        if count <= n {
            let listed: Vec<String> = found
                .iter()
                .map(|a| format!("{} ({:?})", a.name, a.device_type))
                .collect();
            return Err(unavailable(format!(
                "{count} {device_type:?} adapter(s) found, index {n} asked for; adapters: {}",
                listed.join(", ")
            )));
        }
    }
    let setup = init_setup::<AutoGraphicsApi>(&device, RuntimeOptions::default());
    let info = setup.adapter.get_info();
    let driver = [info.driver.as_str(), info.driver_info.as_str()]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    Ok((
        device,
        DeviceInfo {
            device: kind.to_string(),
            backend: format!(
                "burn-wgpu ({:?}, {:?} adapter)",
                info.backend, info.device_type
            ),
            adapter: Some(info.name.clone()),
            driver: (!driver.is_empty()).then_some(driver),
            fusion: Some(fusion()),
            matmul: None,
        },
    ))
}

/// Asks the CUDA driver for device `index` before Burn's runtime starts (which panics on a
/// machine without the driver or the device), and describes it: name, memory and compute
/// capability, and the driver's CUDA version.
#[cfg(feature = "cuda")]
fn cuda_device(kind: DeviceKind, index: usize) -> Result<DeviceInfo> {
    use cudarc::driver::{result, sys};

    let unavailable = |message: String| Error::DeviceUnavailable {
        device: kind.to_string(),
        message,
    };
    // SAFETY: only tries to open the driver library (libcuda.so / nvcuda.dll).
    if !unsafe { sys::is_culib_present() } {
        return Err(unavailable(
            "no CUDA driver found (libcuda.so could not be loaded): install NVIDIA's driver, \
             or add the folder holding libcuda.so to LD_LIBRARY_PATH"
                .into(),
        ));
    }
    let driver_error = |what: &str, e: result::DriverError| {
        let name = e.error_name().map(|n| n.to_string_lossy().into_owned());
        unavailable(format!(
            "the CUDA driver failed to {what}: {}",
            name.unwrap_or_else(|_| format!("{e:?}"))
        ))
    };
    result::init().map_err(|e| driver_error("initialise", e))?;
    let count = result::device::get_count().map_err(|e| driver_error("count the devices", e))?;
    let devices: Vec<String> = (0..count)
        .map(|ordinal| {
            let described = result::device::get(ordinal).and_then(|device| {
                let name = result::device::get_name(device)?;
                // SAFETY: `device` came from `get`.
                let (bytes, major, minor) = unsafe {
                    use sys::CUdevice_attribute::*;
                    (
                        result::device::total_mem(device)?,
                        result::device::get_attribute(
                            device,
                            CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                        )?,
                        result::device::get_attribute(
                            device,
                            CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
                        )?,
                    )
                };
                let gib = bytes as f64 / (1u64 << 30) as f64;
                Ok(format!(
                    "{name}, {gib:.1} GiB, compute capability {major}.{minor}"
                ))
            });
            described.unwrap_or_else(|e| format!("device {ordinal} (not readable: {e:?})"))
        })
        .collect();
    let Some(adapter) = devices.get(index) else {
        let listed = if devices.is_empty() {
            "none".to_string()
        } else {
            devices.join("; ")
        };
        return Err(unavailable(format!(
            "{count} CUDA device(s) found, index {index} asked for; devices: {listed}"
        )));
    };
    let mut version = 0;
    // SAFETY: writes one int; the driver is initialised.
    let driver = unsafe { sys::cuDriverGetVersion(&mut version) }
        .result()
        .ok()
        .map(|()| format!("CUDA {}.{}", version / 1000, version % 1000 / 10));
    Ok(DeviceInfo {
        device: kind.to_string(),
        backend: "burn-cuda".into(),
        adapter: Some(adapter.clone()),
        driver,
        fusion: Some(fusion()),
        matmul: None,
    })
}

/// What Burn's allocator holds on a GPU device (cubecl's memory pools), in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceMemory {
    /// In live tensors.
    pub in_use: u64,
    /// Reserved from the device by the pools. They keep what they reserve until cleaned up,
    /// so after a cleanup this is at least the most that was in use since.
    pub reserved: u64,
}

/// Reads a GPU device's [`DeviceMemory`]; host devices have none (their tensors are the
/// process's own memory: see `train::memory::rss`).
#[derive(Debug, Clone)]
pub struct DeviceMemoryReader(GpuDevice);

#[derive(Debug, Clone)]
enum GpuDevice {
    #[cfg(feature = "wgpu")]
    Wgpu(burn::backend::wgpu::WgpuDevice),
    #[cfg(feature = "cuda")]
    Cuda(burn::backend::cuda::CudaDevice),
}

impl DeviceMemoryReader {
    /// A reader for `device` (a backend's `Device`) where it is a GPU device, else `None`.
    pub fn of<D: 'static>(device: &D) -> Option<Self> {
        let device: &dyn std::any::Any = device;
        #[cfg(feature = "wgpu")]
        if let Some(device) = device.downcast_ref::<burn::backend::wgpu::WgpuDevice>() {
            return Some(Self(GpuDevice::Wgpu(device.clone())));
        }
        #[cfg(feature = "cuda")]
        if let Some(device) = device.downcast_ref::<burn::backend::cuda::CudaDevice>() {
            return Some(Self(GpuDevice::Cuda(device.clone())));
        }
        let _ = device;
        None
    }

    /// The device's memory now (`None` if the runtime cannot say).
    pub fn read(&self) -> Option<DeviceMemory> {
        match self.0 {
            #[cfg(feature = "wgpu")]
            GpuDevice::Wgpu(ref device) => cube_memory::<burn::backend::wgpu::WgpuRuntime>(device),
            #[cfg(feature = "cuda")]
            GpuDevice::Cuda(ref device) => cube_memory::<cubecl::cuda::CudaRuntime>(device),
        }
    }

    /// Returns the pools' unused memory to the device, so that [`DeviceMemory::reserved`]
    /// measures what is needed from here on.
    pub fn release_unused(&self) {
        match self.0 {
            #[cfg(feature = "wgpu")]
            GpuDevice::Wgpu(ref device) => cube_release::<burn::backend::wgpu::WgpuRuntime>(device),
            #[cfg(feature = "cuda")]
            GpuDevice::Cuda(ref device) => cube_release::<cubecl::cuda::CudaRuntime>(device),
        }
    }
}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn cube_memory<R: burn_cubecl::cubecl::Runtime>(device: &R::Device) -> Option<DeviceMemory> {
    let usage = R::client(device).memory_usage().ok()?;
    Some(DeviceMemory {
        in_use: usage.bytes_in_use,
        reserved: usage.bytes_reserved,
    })
}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn cube_release<R: burn_cubecl::cubecl::Runtime>(device: &R::Device) {
    R::client(device).memory_cleanup();
}

/// Runs `job` on the CPU device with the BalancedCheckpointing autodiff strategy (only the
/// memory benchmark uses it, so no other backend is compiled with it).
pub fn run_balanced<J: BackendJob>(job: J) -> J::Output {
    // Burn's checkpointing autodiff is not one the CPU kernels are built for: burn-flex's own
    // matmul runs (the same `gemm`, plus a copy of each output).
    let matmul = format!("{} via burn-flex", crate::kernel::matmul::gemm_name());
    record(host_info(
        DeviceKind::Cpu,
        "burn-flex (balanced checkpointing)",
        matmul,
    ));
    job.run::<TrainBalanced<Cpu>>(Default::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_parse_and_print_back() {
        let cases = [
            ("cpu", DeviceKind::Cpu, "cpu"),
            ("Flex", DeviceKind::Cpu, "cpu"),
            ("ndarray", DeviceKind::Ndarray, "ndarray"),
            ("wgpu", DeviceKind::Wgpu(WgpuAdapter::Best), "wgpu"),
            ("vulkan", DeviceKind::Wgpu(WgpuAdapter::Best), "wgpu"),
            (
                "wgpu:discrete",
                DeviceKind::Wgpu(WgpuAdapter::Discrete(0)),
                "wgpu:discrete:0",
            ),
            (
                "wgpu:integrated:2",
                DeviceKind::Wgpu(WgpuAdapter::Integrated(2)),
                "wgpu:integrated:2",
            ),
            (
                "wgpu:llvmpipe",
                DeviceKind::Wgpu(WgpuAdapter::Cpu),
                "wgpu:cpu",
            ),
            ("cuda", DeviceKind::Cuda(0), "cuda:0"),
            ("cuda:1", DeviceKind::Cuda(1), "cuda:1"),
        ];
        for (text, kind, printed) in cases {
            assert_eq!(kind.to_string(), printed);
            match text.parse::<DeviceKind>() {
                Ok(parsed) => assert_eq!(parsed, kind, "{text}"),
                // Not compiled in: the error names the feature to build with.
                Err(e) => {
                    assert!(!kind.is_compiled(), "{text}: {e}");
                    let feature = kind.feature().unwrap();
                    assert!(
                        e.to_string().contains(&format!("--features {feature}")),
                        "{e}"
                    );
                }
            }
        }
        for bad in [
            "tpu",
            "cuda:x",
            "wgpu:discrete:1:2",
            "wgpu:fast",
            "cpu:0",
            "",
        ] {
            let e = bad.parse::<DeviceKind>().unwrap_err().to_string();
            assert!(
                e.contains("device") && e.contains("wgpu:discrete[:N]"),
                "{bad}: {e}"
            );
        }
    }

    struct Count;

    impl DevicesJob for Count {
        type Output = usize;
        fn run<B: AutodiffBackend>(self, devices: Vec<B::Device>) -> usize {
            devices.len()
        }
    }

    #[test]
    fn devices_of_one_backend_run_together_and_mixed_ones_are_refused() {
        let two = run_on_devices(&[DeviceKind::Cpu, DeviceKind::Cpu], Count).unwrap();
        assert_eq!(two, 2);
        let err = run_on_devices(&[DeviceKind::Cpu, DeviceKind::Cuda(0)], Count)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`run.devices`") && err.contains("of one backend"),
            "{err}"
        );
    }
}

//! `burn-peft analyze`: ΔΣ / ΔD of trained adapters against the original base (spectral.csv and
//! plots); the work is `burn_peft::analysis::analyze`.

use std::path::PathBuf;

use burn::tensor::backend::AutodiffBackend;
use burn_peft::analysis::{AnalyzeOptions, analyze};
use burn_peft::backend::{BackendJob, DeviceKind, run_on};

#[derive(clap::Args, Debug)]
pub struct AnalyzeArgs {
    /// The original pre-trained model (HF folder or llama2.c .bin) the adapters were trained on.
    #[arg(long)]
    pub base: PathBuf,
    /// Adapter folder `<run>/adapter` of a training run (repeatable: one line per method).
    #[arg(long = "adapter", required = true)]
    pub adapters: Vec<PathBuf>,
    /// Also analyse every checkpoint `<run>/checkpoints/step-*` of each adapter's run.
    #[arg(long)]
    pub checkpoints: bool,
    /// Output folder (spectral.csv, delta_sigma.png/svg, delta_d.png/svg).
    #[arg(long)]
    pub out: PathBuf,
    /// Device: cpu (burn-flex), ndarray, wgpu (or wgpu:discrete[:N], wgpu:integrated[:N],
    /// wgpu:cpu, …) or cuda[:N], those compiled in. The SVDs run on the host either way.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceKind,
    /// dtype the base is loaded in: auto (the checkpoint's), bf16, f16 or f32; use the runs'
    /// `model.precision`.
    #[arg(long, default_value = "auto")]
    pub precision: burn_peft::model::Precision,
}

pub fn run(args: AnalyzeArgs) -> anyhow::Result<()> {
    let device = args.device;
    run_on(device, Job(args))?
}

struct Job(AnalyzeArgs);

impl BackendJob for Job {
    type Output = anyhow::Result<()>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> anyhow::Result<()> {
        let args = self.0;
        let options = AnalyzeOptions {
            base: args.base,
            adapters: args.adapters,
            checkpoints: args.checkpoints,
            out: args.out,
            precision: args.precision,
        };
        let rows = analyze::<B>(&options, &device)?;
        eprintln!(
            "analyze: {} layer measurements in {}",
            rows.len(),
            options.out.display()
        );
        Ok(())
    }
}

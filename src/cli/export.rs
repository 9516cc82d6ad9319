//! `burn-peft export`: share a trained adapter as a standard HF PEFT LoRA.

use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// Adapter folder written by `burn-peft train` (any method).
    #[arg(long)]
    pub adapter: PathBuf,
    /// The original base model the LoRA will be applied to (checked to load the export).
    #[arg(long)]
    pub base: Option<PathBuf>,
    /// Output format; `peft` is a LoRA for HF PEFT on the original base.
    #[arg(long, default_value = "peft")]
    pub format: String,
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: ExportArgs) -> anyhow::Result<()> {
    if args.format != "peft" {
        anyhow::bail!("--format {}: only `peft` is supported", args.format);
    }
    if args
        .out
        .join(burn_peft::persist::peft::WEIGHTS_FILE)
        .exists()
    {
        anyhow::bail!(
            "{} already holds an adapter; choose another --out",
            args.out.display()
        );
    }
    burn_peft::persist::export::export_peft_lora(&args.adapter, &args.out)?;
    if let Some(base) = &args.base {
        // The export must apply to the base it is meant for.
        let device = Default::default();
        burn_peft::persist::load_with_adapter::<burn_peft::backend::Cpu>(base, &args.out, &device)?;
    }
    eprintln!("wrote PEFT LoRA adapter to {}", args.out.display());
    Ok(())
}

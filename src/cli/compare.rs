//! `burn-peft compare`: loss curves and a markdown table of several runs; the work is
//! `burn_peft::analysis::compare`.

use std::path::PathBuf;

use burn_peft::analysis::compare;

#[derive(clap::Args, Debug)]
pub struct CompareArgs {
    /// Run directories (each with config.toml and metrics.jsonl) trained on the same base model.
    #[arg(long, num_args = 1.., required = true)]
    pub runs: Vec<PathBuf>,
    /// Output folder (loss.png, loss.svg, comparison.md).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: CompareArgs) -> anyhow::Result<()> {
    let written = compare(&args.runs, &args.out)?;
    for path in written.plots.iter().chain([&written.table]) {
        eprintln!("compare: wrote {}", path.display());
    }
    print!("{}", std::fs::read_to_string(&written.table)?);
    Ok(())
}

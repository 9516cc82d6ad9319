//! Command-line interface: argument definitions and dispatch. Each subcommand's work lives in the
//! library; this module only parses, reports and sets the exit status.

mod bench;
mod demo;
mod forward;
mod generate;
mod inspect;
mod model_args;

use clap::{Parser, Subcommand};

/// Parameter-efficient fine-tuning (SORSA, LoRA-FA, LoTR, LoRA, PiSSA) on Burn: CPU, wgpu, CUDA.
#[derive(Parser, Debug)]
#[command(name = "burn-peft", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Adapt a random linear layer, train the adapter a few steps toward a low-rank target,
    /// and print parameter accounting, loss, regularizer and the merge check.
    Demo(demo::DemoArgs),
    /// Continue prompts with a causal LM (greedy or sampled, KV cache, batched).
    Generate(generate::GenerateArgs),
    /// Logits (and loss) for token ids from a safetensors file: the parity/debug tool.
    Forward(forward::ForwardArgs),
    /// Architecture, parameter count, dtypes and adaptable linear layers of a checkpoint.
    Inspect(inspect::InspectArgs),
    /// Benchmarks (numbers for the README and notes).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Forward(args) => forward::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Bench(cmd) => bench::run(cmd),
    }
}

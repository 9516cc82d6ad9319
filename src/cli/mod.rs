//! Command-line interface: argument definitions and dispatch. Each subcommand's work lives in the
//! library; this module only parses, reports and sets the exit status.

mod analyze;
mod bench;
mod check;
mod compare;
mod demo;
mod eval;
mod export;
mod forward;
mod generate;
mod init;
mod inspect;
mod launch_args;
mod merge;
mod model_args;
mod plan;
mod train;

use clap::{Parser, Subcommand};

/// Parameter-efficient fine-tuning (SORSA, LoRA-FA, LoTR, LoRA, PiSSA) on Burn: CPU, wgpu, CUDA.
#[derive(Parser, Debug)]
#[command(name = "burn-peft", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Run `wgpu` and `cuda` devices without Burn's kernel fusion (every op its own kernel),
    /// to tell a fusion bug from ours; the device line says which ran (recipe: `run.fusion`).
    #[arg(long, global = true)]
    pub no_fusion: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Fine-tune a model with a recipe (default: SORSA on stories260K with GSM8K).
    Train(train::TrainArgs),
    /// Check a recipe against the model's config.json without loading weights: targets,
    /// ranks, LoTR groups, modules_to_save, data columns; prints the trainable parameters.
    Check(check::CheckArgs),
    /// Estimate a run's peak memory (base, adapters, gradients, optimizer, activations) from
    /// the recipe and config.json alone, for any model size, before renting a GPU.
    Plan(check::CheckArgs),
    /// SVD-initialise an adapter once and save it (start training from it with model.init_adapter).
    Init(init::InitArgs),
    /// Fold an adapter into its base model and write an HF model folder.
    Merge(merge::MergeArgs),
    /// Convert a trained adapter (any method) into a standard HF PEFT LoRA for the original base.
    Export(export::ExportArgs),
    /// Adapt a random linear layer, train the adapter a few steps toward a low-rank target,
    /// and print parameter accounting, loss, regularizer and the merge check.
    Demo(demo::DemoArgs),
    /// Continue prompts with a causal LM (greedy or sampled, KV cache, batched).
    Generate(generate::GenerateArgs),
    /// Logits (and loss) for token ids from a safetensors file: the parity/debug tool.
    Forward(forward::ForwardArgs),
    /// Architecture, parameter count, dtypes and adaptable linear layers of a checkpoint.
    Inspect(inspect::InspectArgs),
    /// Evaluate on GSM-8K, MATH, HumanEval (sandboxed), GLUE or perplexity with METHODS.md's
    /// prompts and scoring; writes results.json and per-example records.
    Eval(eval::EvalArgs),
    /// ΔΣ and ΔD (SORSA's spectral shift) of trained adapters, per layer and optionally per
    /// checkpoint, against the original base: spectral.csv and plots against step.
    Analyze(analyze::AnalyzeArgs),
    /// Loss curves of several runs in one plot and a markdown table of their final numbers.
    Compare(compare::CompareArgs),
    /// Benchmarks (numbers for the README and notes).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    burn_peft::backend::set_fusion(!cli.no_fusion);
    match cli.command {
        Command::Train(args) => train::run(args),
        Command::Check(args) => check::run(args),
        Command::Plan(args) => plan::run(args),
        Command::Init(args) => init::run(args),
        Command::Merge(args) => merge::run(args),
        Command::Export(args) => export::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Forward(args) => forward::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Analyze(args) => analyze::run(args),
        Command::Compare(args) => compare::run(args),
        Command::Bench(cmd) => bench::run(cmd),
    }
}

//! `burn-peft train`: fine-tune with a recipe (the embedded default without `--config`).

use std::path::PathBuf;

use super::launch_args::LaunchArgs;
use burn::tensor::backend::AutodiffBackend;
use burn_peft::backend::{DeviceKind, DevicesJob, run_on_devices};
use burn_peft::train::recipe::Recipe;
use burn_peft::train::{TrainOptions, train_on_devices};

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// Recipe TOML (see configs/). Default: configs/stories260k-sorsa.toml, embedded.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override a recipe value, e.g. `--set optim.lr=1e-4 --set adapter.rank=8` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// dtype of the frozen base: auto, bf16, f16 or f32 (the recipe's `model.precision`).
    #[arg(long)]
    pub precision: Option<burn_peft::model::Precision>,
    /// Continue the run in run.output_dir from its latest checkpoint. The recipe must be the
    /// run's own (config.toml) except for run.output_dir, run.device(s), run.log_every,
    /// run.checkpoint_every, the sample prompt settings and [distributed] (another world size
    /// continues the same run). Data-parallel: on every node; the checkpoint is rank 0's.
    #[arg(long)]
    pub resume: bool,
    /// Stop after this many optimizer steps (a checkpoint is written when checkpoint_every divides it).
    #[arg(long)]
    pub max_steps_this_run: Option<usize>,
    #[command(flatten)]
    pub launch: LaunchArgs,
}

pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let mut overrides = args.overrides.clone();
    if let Some(precision) = args.precision {
        overrides.push(format!("model.precision=\"{precision}\""));
    }
    // The flags override the recipe's [distributed] table, after any --set.
    overrides.extend(args.launch.overrides());
    let recipe = Recipe::load(args.config.as_deref(), &overrides)?;
    if !recipe.run.fusion {
        burn_peft::backend::set_fusion(false);
    }
    // `run.devices` (one replica each) when set, else `run.device`.
    let names = if recipe.run.devices.is_empty() {
        std::slice::from_ref(&recipe.run.device)
    } else {
        recipe.run.devices.as_slice()
    };
    let devices = names
        .iter()
        .map(|d| d.parse())
        .collect::<burn_peft::Result<Vec<DeviceKind>>>()?;
    run_on_devices(&devices, Job { recipe, args })?
}

struct Job {
    recipe: Recipe,
    args: TrainArgs,
}

impl DevicesJob for Job {
    type Output = anyhow::Result<()>;

    fn run<B: AutodiffBackend>(self, devices: Vec<B::Device>) -> anyhow::Result<()> {
        let options = TrainOptions {
            resume: self.args.resume,
            stop_after: self.args.max_steps_this_run,
            ..TrainOptions::default()
        };
        let summary = train_on_devices::<B>(&self.recipe, &devices, &options)?;
        if let (Some(first), Some(last)) = (summary.first_loss, summary.last_loss) {
            println!(
                "done: {} steps in {:.1} s, loss {first:.4} -> {last:.4}, {:.0} tokens/s",
                summary.steps, summary.seconds, summary.tokens_per_second
            );
        }
        Ok(())
    }
}

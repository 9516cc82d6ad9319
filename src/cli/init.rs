//! `burn-peft init`: run the (costly) SVD initialisation once and save the adapter, so training
//! runs start from it (`model.init_adapter` in a recipe).

use std::path::PathBuf;

use burn::tensor::backend::AutodiffBackend;
use burn_peft::adapter::{HasAdapters, ParamReport};
use burn_peft::backend::{BackendJob, DeviceKind, run_on};
use burn_peft::model::any::{AnyModel, load_model_as};
use burn_peft::model::{PeftModel, inject_adapters};
use burn_peft::persist::adapter::{InitialAdapters, save_adapter};
use burn_peft::train::recipe::Recipe;

#[derive(clap::Args, Debug)]
pub struct InitArgs {
    /// Recipe whose [model] and [adapter] to use (default: the embedded default recipe).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override a recipe value (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// dtype of the frozen base: auto, bf16, f16 or f32 (the recipe's `model.precision`).
    #[arg(long)]
    pub precision: Option<burn_peft::model::Precision>,
    /// Output adapter folder.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: InitArgs) -> anyhow::Result<()> {
    let mut overrides = args.overrides.clone();
    if let Some(precision) = args.precision {
        overrides.push(format!("model.precision=\"{precision}\""));
    }
    let recipe = Recipe::load(args.config.as_deref(), &overrides)?;
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
    let device: DeviceKind = recipe.run.device.parse()?;
    run_on(
        device,
        Job {
            recipe,
            out: args.out,
        },
    )?
}

struct Job {
    recipe: Recipe,
    out: PathBuf,
}

impl BackendJob for Job {
    type Output = anyhow::Result<()>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> anyhow::Result<()> {
        let r = &self.recipe;
        let started = std::time::Instant::now();
        match load_model_as::<B>(&r.model.path, r.model.precision, &device)?.0 {
            AnyModel::Decoder(model) => initialise(model, r, &self.out, started),
            AnyModel::Rwkv6(model) => initialise(model, r, &self.out, started),
            AnyModel::Encoder(_) => {
                anyhow::bail!("init supports causal LMs (decoders and RWKV6)")
            }
        }
    }
}

/// Injects the recipe's adapters into `model` and saves them to `out`.
fn initialise<B: AutodiffBackend, M: PeftModel<B> + HasAdapters<B>>(
    model: M,
    r: &Recipe,
    out: &std::path::Path,
    started: std::time::Instant,
) -> anyhow::Result<()> {
    let (model, injection) = inject_adapters(model, &r.adapter)?;
    println!(
        "{} {} adapters on {} layers in {:.2} s",
        r.adapter.method,
        r.adapter.rank,
        injection.adapted.len(),
        started.elapsed().as_secs_f64()
    );
    println!("{}", ParamReport::of(&model));
    let initial = InitialAdapters::of(&model);
    save_adapter(
        &model,
        &r.adapter,
        &initial,
        &r.model.path.display().to_string(),
        out,
    )?;
    println!("wrote {}", out.display());
    Ok(())
}

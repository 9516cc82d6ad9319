//! `burn-peft check`: validate a recipe against the model's config.json without loading weights.

use std::path::PathBuf;

use burn_peft::train::check::check_recipe;
use burn_peft::train::recipe::Recipe;

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// Recipe TOML (see configs/). Default: configs/stories260k-sorsa.toml, embedded.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override a recipe value, as for `train` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// The architecture to check against: a config.json or a folder holding one (default: the
    /// recipe's model.path; a folder with only config.json is enough).
    #[arg(long, value_name = "PATH")]
    pub model_config: Option<PathBuf>,
}

pub fn run(args: CheckArgs) -> anyhow::Result<()> {
    let recipe = Recipe::load(args.config.as_deref(), &args.overrides)?;
    let report = check_recipe(&recipe, args.model_config.as_deref())?;
    print!("{report}");
    println!(
        "ok: {} is valid for this model",
        args.config.as_deref().map_or_else(
            || "the default recipe".to_string(),
            |p| p.display().to_string()
        )
    );
    Ok(())
}

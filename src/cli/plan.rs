//! `burn-peft plan`: estimate a run's peak memory from the recipe and config.json alone.

use burn_peft::train::memory_plan::MemoryPlan;
use burn_peft::train::recipe::Recipe;

use super::check::CheckArgs;

pub fn run(args: CheckArgs) -> anyhow::Result<()> {
    let recipe = Recipe::load(args.config.as_deref(), &args.overrides)?;
    let plan = MemoryPlan::of(&recipe, args.model_config.as_deref())?;
    print!("{plan}");
    Ok(())
}

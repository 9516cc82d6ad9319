//! Running a recipe: its output folder prepared, the backend seeded, the progress display
//! opened, then the recipe's task (classification when `data.task` is set, causal LM
//! otherwise) set up and handed to the loop.

use burn::tensor::backend::AutodiffBackend;

use super::causal_lm::train_causal_lm;
use super::classification::train_classifier;
use super::dashboard::Dashboard;
use super::recipe::Recipe;
use super::run_folder::RunFolder;
use super::summary::TrainSummary;
use super::training_loop::TrainOptions;
use crate::model::decoder::Decoder;
use crate::{Error, Result};

/// Runs the recipe on `device`: instruction tuning, or classification when `data.task` is set.
pub fn train<B: AutodiffBackend>(
    recipe: &Recipe,
    device: &B::Device,
    options: &TrainOptions,
) -> Result<TrainSummary> {
    let (run, mut dashboard) = start::<B>(recipe, device, options)?;
    if recipe.data.task.is_some() {
        return train_classifier::<B>(recipe, &run, device, options, &mut dashboard);
    }
    train_causal_lm::<B>(recipe, &run, device, options, &mut dashboard).map(|(summary, _)| summary)
}

/// Runs a causal-LM recipe and also returns the trained model (adapters attached, inference
/// backend), for callers that go on using it.
pub fn train_decoder<B: AutodiffBackend>(
    recipe: &Recipe,
    device: &B::Device,
    options: &TrainOptions,
) -> Result<(TrainSummary, Decoder<B::InnerBackend>)> {
    if let Some(task) = &recipe.data.task {
        return Err(Error::invalid(
            "data.task",
            task,
            "a classification recipe trains a classifier, not a causal LM",
        ));
    }
    let (run, mut dashboard) = start::<B>(recipe, device, options)?;
    train_causal_lm::<B>(recipe, &run, device, options, &mut dashboard)
}

/// The output folder (refused when it holds a run and `--resume` was not given, before anything
/// slow is loaded), the backend's random stream seeded, and the progress display.
fn start<B: AutodiffBackend>(
    recipe: &Recipe,
    device: &B::Device,
    options: &TrainOptions,
) -> Result<(RunFolder, Dashboard)> {
    let run = RunFolder::prepare(recipe, options.resume)?;
    B::seed(device, recipe.run.seed);
    Ok((run, Dashboard::new(options.quiet, recipe.run.log_every)))
}

//! Running a recipe: its output folder prepared, the backend seeded, the progress display
//! opened, then the recipe's task (classification when `data.task` is set, causal LM
//! otherwise) set up and handed to the loop.

use burn::tensor::backend::AutodiffBackend;

use super::causal_lm::train_causal_lm;
use super::classification::train_classifier;
use super::dashboard::Dashboard;
use super::data_parallel::DataParallel;
use super::recipe::Recipe;
use super::run_folder::RunFolder;
use super::summary::TrainSummary;
use super::training_loop::{LocalDevice, TrainOptions};
use crate::model::any::AnyModel;
use crate::model::decoder::Decoder;
use crate::{Error, Result};

/// Runs the recipe on `device`: instruction tuning, or classification when `data.task` is set.
pub fn train<B: AutodiffBackend>(
    recipe: &Recipe,
    device: &B::Device,
    options: &TrainOptions,
) -> Result<TrainSummary> {
    let (run, mut dashboard, mut parallel) = start::<B>(recipe, device, options)?;
    if recipe.data.task.is_some() {
        return train_classifier::<B>(recipe, &run, device, options, &mut parallel, &mut dashboard);
    }
    train_causal_lm::<B>(recipe, &run, device, options, &mut parallel, &mut dashboard)
        .map(|(summary, _)| summary)
}

/// Runs a causal-LM recipe and also returns the trained model (adapters attached, inference
/// backend), for callers that go on using it.
pub fn train_language_model<B: AutodiffBackend>(
    recipe: &Recipe,
    device: &B::Device,
    options: &TrainOptions,
) -> Result<(TrainSummary, AnyModel<B::InnerBackend>)> {
    if let Some(task) = &recipe.data.task {
        return Err(Error::invalid(
            "data.task",
            task,
            "a classification recipe trains a classifier, not a causal LM",
        ));
    }
    let (run, mut dashboard, mut parallel) = start::<B>(recipe, device, options)?;
    train_causal_lm::<B>(recipe, &run, device, options, &mut parallel, &mut dashboard)
}

/// [`train_language_model`] for a Llama-family decoder.
pub fn train_decoder<B: AutodiffBackend>(
    recipe: &Recipe,
    device: &B::Device,
    options: &TrainOptions,
) -> Result<(TrainSummary, Decoder<B::InnerBackend>)> {
    let (summary, model) = train_language_model::<B>(recipe, device, options)?;
    let model = model.decoder().ok_or_else(|| {
        Error::invalid(
            "model.path",
            recipe.model.path.display(),
            "is not a Llama-family decoder",
        )
    })?;
    Ok((summary, model))
}

/// The data-parallel group joined (`[distributed]`; first, so that a bad launch fails before
/// anything slow), the output folder (rank 0's alone; refused when it holds a run and
/// `--resume` was not given), the backend's random stream seeded, and the progress display
/// (rank 0's alone).
fn start<B: AutodiffBackend>(
    recipe: &Recipe,
    device: &B::Device,
    options: &TrainOptions,
) -> Result<(RunFolder, Dashboard, DataParallel)> {
    let parallel = join(recipe, options)?;
    let run = if parallel.is_root() {
        RunFolder::prepare(recipe, options.resume)?
    } else {
        RunFolder::at(&recipe.run.output_dir)
    };
    B::seed(device, recipe.run.seed);
    let quiet = options.quiet || !parallel.is_root();
    Ok((run, Dashboard::new(quiet, recipe.run.log_every), parallel))
}

/// This rank's place in the run's world: a group of one unless there are several nodes
/// (`distributed.nnodes`) or devices (`run.devices`).
fn join(recipe: &Recipe, options: &TrainOptions) -> Result<DataParallel> {
    let launch = &recipe.distributed;
    let local = options.local_device;
    let place = launch.place(local.index, local.count);
    if place.world == 1 {
        return Ok(DataParallel::single());
    }
    let identity = super::identity::group_identity(recipe)?;
    let speak = !options.quiet && local.index == 0;
    if speak {
        eprintln!(
            "rank {} of {}: joining the group at {} (timeout {} s)",
            place.rank,
            place.world,
            launch.master(),
            launch.timeout_s
        );
    }
    let group = crate::distributed::join(launch, place, &identity)?;
    if speak {
        eprintln!("rank {} of {}: joined", group.rank(), group.world());
    }
    Ok(DataParallel::new(group))
}

/// Runs the recipe with one replica on each of `devices` (`run.devices`), each a rank of the
/// run's world (with `distributed.nnodes`, on every node), in threads of this process. Returns
/// the first replica's summary; an error is the one that started the failure (a replica's
/// own), not the peers' "lost peer" that follow it.
pub fn train_on_devices<B: AutodiffBackend>(
    recipe: &Recipe,
    devices: &[B::Device],
    options: &TrainOptions,
) -> Result<TrainSummary> {
    if devices.len() <= 1 {
        let device = devices.first().cloned().unwrap_or_default();
        return train::<B>(recipe, &device, options);
    }
    let count = devices.len();
    let results: Vec<Result<TrainSummary>> = std::thread::scope(|scope| {
        let handles: Vec<_> = devices
            .iter()
            .enumerate()
            .map(|(index, device)| {
                let options = TrainOptions {
                    local_device: LocalDevice { index, count },
                    quiet: options.quiet || index > 0,
                    ..options.clone()
                };
                std::thread::Builder::new()
                    .name(format!("device-{index}"))
                    // Room for deep backward passes, as the main thread has.
                    .stack_size(64 << 20)
                    .spawn_scoped(scope, move || train::<B>(recipe, device, &options))
                    .map_err(|e| Error::Distributed {
                        message: format!("cannot start the thread of device {index}: {e}"),
                    })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle?.join().unwrap_or_else(|_| {
                    Err(Error::Distributed {
                        message: "a device's training thread panicked".into(),
                    })
                })
            })
            .collect()
    });
    let mut errors = Vec::new();
    let mut first = None;
    for result in results {
        match result {
            Ok(summary) => {
                first.get_or_insert(summary);
            }
            Err(e) => errors.push(e),
        }
    }
    if let Some(cause) = errors
        .iter()
        .position(|e| !matches!(e, Error::Peer { .. }))
        .or((!errors.is_empty()).then_some(0))
    {
        return Err(errors.swap_remove(cause));
    }
    Ok(first.expect("every replica succeeded"))
}

//! Checking a recipe against the model it names without loading weights (`burn-peft check`):
//! the recipe's values, its targets and ranks against the layers `config.json` describes
//! ([`ModelSkeleton`]), `modules_to_save`, and the data files when they are present. What the
//! check finds is what training would fail on minutes (or, for a 7B model, a checkpoint load)
//! later.
//!
//! It mirrors what training builds: the default targets when a recipe names none, LoTR groups
//! of equal weight shape, and for a GLUE task the classification head, trained in full unless
//! `modules_to_save` names part of it (e.g. `classifier.out_proj`, as LoTR's reference trains).

use std::fmt;
use std::path::Path;

use super::recipe::Recipe;
use crate::adapter::accounting::group_digits;
use crate::adapter::{AdapterConfig, Method};
use crate::data::{
    GlueTask, InstructionTokenizer, TrainingRow, TruncationLimits, load_glue_with,
    load_training_rows,
};
use crate::model::ModelType;
use crate::model::skeleton::{HeadSpec, LinearShape, ModelSkeleton};
use crate::model::tokenizer::TextTokenizer;
use crate::{Error, Result};

/// A LoTR group: layers of one weight shape sharing their factors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LotrGroup {
    /// `[out, in]`.
    pub shape: [usize; 2],
    pub layers: usize,
}

/// What a recipe would train, found without weights.
#[derive(Clone, Debug)]
pub struct CheckReport {
    pub skeleton: ModelSkeleton,
    /// The layers that get adapters, in model order.
    pub adapted: Vec<LinearShape>,
    /// LoTR's groups (empty for other methods).
    pub groups: Vec<LotrGroup>,
    /// Modules trained fully (`modules_to_save`, plus the classification head of a GLUE run
    /// that names none of it), with their parameter counts.
    pub saved_modules: Vec<(String, usize)>,
    /// Adapter parameters plus fully trained modules.
    pub trainable_params: usize,
    /// The adapters' trainable parameters (without `modules_to_save`).
    pub adapter_params: usize,
    /// The adapters' frozen parameters (LoRA-FA's `A`).
    pub frozen_adapter_params: usize,
    /// The base model's parameters plus the adapters' (trainable and frozen).
    pub total_params: usize,
    /// Data rows read to check the columns (0 when the files are absent).
    pub rows_checked: usize,
    /// What could not be checked (absent data files, no tokenizer), one line each.
    pub warnings: Vec<String>,
}

/// Checks `recipe` against the architecture in `model_config` (a `config.json` or a folder
/// holding one; default: the recipe's `model.path`).
pub fn check_recipe(recipe: &Recipe, model_config: Option<&Path>) -> Result<CheckReport> {
    recipe.validate()?;
    let task = match &recipe.data.task {
        Some(name) => Some(name.parse::<GlueTask>()?),
        None => None,
    };
    let config_source = model_config.unwrap_or(&recipe.model.path);
    if config_source.is_file() && config_source.extension().is_some_and(|e| e == "bin") {
        return Err(Error::invalid(
            "model.path",
            config_source.display(),
            "a llama2.c .bin has no config.json; check against the HF folder of the same model \
             (--model-config DIR)",
        ));
    }
    let head = match task {
        Some(task) => HeadSpec::Classifier {
            num_labels: task.num_labels(),
        },
        None => HeadSpec::FromConfig,
    };
    let skeleton = ModelSkeleton::read(config_source, head)?;
    if skeleton.model_type == ModelType::Rwkv6 && recipe.model.gradient_checkpointing {
        return Err(Error::invalid(
            "model.gradient_checkpointing",
            "true",
            "RWKV6 trains without per-layer recomputation here (the decoders have it)",
        ));
    }
    if task.is_none() && !skeleton.model_type.is_causal_lm() {
        return Err(Error::invalid(
            "data.task",
            "unset",
            format!(
                "{} is an encoder: it trains on a GLUE task (set data.task), instruction \
                 tuning needs a causal LM",
                model_name(skeleton.model_type)
            ),
        ));
    }

    let adapter = &recipe.adapter;
    let adapted = adapted_layers(adapter, &skeleton)?;
    let (groups, adapter_params, frozen_adapter_params) = adapter_params(adapter, &adapted)?;
    let saved_modules = saved_modules(recipe, &skeleton, task.is_some())?;
    let saved_params: usize = trained_owners(&skeleton, &saved_modules_names(&saved_modules))
        .iter()
        .map(|(_, params)| params)
        .sum();
    check_lengths(recipe, &skeleton)?;
    if recipe.model.gradient_checkpointing {
        recipe.recomputed_layers(skeleton.num_layers)?;
    }

    let mut report = CheckReport {
        total_params: skeleton.total_params() + adapter_params + frozen_adapter_params,
        trainable_params: adapter_params + saved_params,
        adapter_params,
        frozen_adapter_params,
        skeleton,
        adapted,
        groups,
        saved_modules,
        rows_checked: 0,
        warnings: Vec::new(),
    };
    check_files(recipe, task, &mut report)?;
    Ok(report)
}

fn model_name(model_type: ModelType) -> String {
    format!("{model_type:?}").to_lowercase()
}

/// The layers the recipe's targets select, as injection selects them.
fn adapted_layers(adapter: &AdapterConfig, skeleton: &ModelSkeleton) -> Result<Vec<LinearShape>> {
    let targets = adapter
        .targets
        .clone()
        .unwrap_or_else(|| skeleton.default_targets());
    let matcher = targets.compile()?;
    let adapted: Vec<LinearShape> = skeleton
        .linears
        .iter()
        .filter(|l| matcher.matches(&l.name, l.is_head))
        .cloned()
        .collect();
    if adapted.is_empty() {
        let mut short: Vec<&str> = skeleton
            .linears
            .iter()
            .map(|l| l.name.rsplit('.').next().unwrap_or(&l.name))
            .collect();
        short.sort_unstable();
        short.dedup();
        return Err(Error::invalid(
            "adapter.targets",
            format!("{targets:?}"),
            format!(
                "matches no linear layer of this {}; its linears are: {}",
                model_name(skeleton.model_type),
                short.join(", ")
            ),
        ));
    }
    Ok(adapted)
}

/// LoTR's groups and the adapters' trainable and frozen (LoRA-FA's A) parameters; each layer's
/// (or group's) shape is validated against the rank.
fn adapter_params(
    adapter: &AdapterConfig,
    adapted: &[LinearShape],
) -> Result<(Vec<LotrGroup>, usize, usize)> {
    let r = adapter.rank;
    let validate = |out: usize, inp: usize, name: &str| {
        adapter
            .validate_for_shape(out, inp)
            .map_err(|e| e.in_layer(name))
    };
    if adapter.method == Method::Lotr {
        let mut groups: Vec<LotrGroup> = Vec::new();
        for layer in adapted {
            let shape = [layer.out_features, layer.in_features];
            match groups.iter_mut().find(|g| g.shape == shape) {
                Some(group) => group.layers += 1,
                None => {
                    validate(shape[0], shape[1], &layer.name)?;
                    groups.push(LotrGroup { shape, layers: 1 });
                }
            }
        }
        let params = groups
            .iter()
            .map(|g| (g.shape[0] + g.shape[1]) * r + g.layers * r * r)
            .sum();
        return Ok((groups, params, 0));
    }
    let (mut trainable, mut frozen) = (0, 0);
    for layer in adapted {
        validate(layer.out_features, layer.in_features, &layer.name)?;
        let (out, inp) = (layer.out_features, layer.in_features);
        match adapter.method {
            Method::Lora | Method::Pissa => trainable += r * (out + inp),
            Method::Sorsa => trainable += r * (out + inp) + r,
            // B trains; A stays frozen.
            Method::LoraFa => {
                trainable += r * out;
                frozen += r * inp;
            }
            Method::Lotr => unreachable!("handled above"),
        }
    }
    Ok((Vec::new(), trainable, frozen))
}

/// `modules_to_save` (each must name a module) and, for a GLUE run, the head unless the recipe
/// names part of it; with their parameter counts.
fn saved_modules(
    recipe: &Recipe,
    skeleton: &ModelSkeleton,
    classification: bool,
) -> Result<Vec<(String, usize)>> {
    let modules = skeleton.module_names();
    let mut names = recipe.adapter.modules_to_save.clone();
    for name in &names {
        if !modules.iter().any(|m| module_matches(m, name)) {
            let heads: Vec<&str> = skeleton
                .linears
                .iter()
                .filter(|l| l.is_head)
                .map(|l| l.name.as_str())
                .collect();
            return Err(Error::invalid(
                "adapter.modules_to_save",
                name,
                format!(
                    "no module of that name in this {} (its heads: {})",
                    model_name(skeleton.model_type),
                    heads.join(", ")
                ),
            ));
        }
    }
    if classification {
        // BERT's pooler belongs to the pretrained body, not the head.
        let head = if skeleton.model_type.is_decoder() {
            "score"
        } else {
            "classifier"
        };
        let names_part_of_head = names
            .iter()
            .any(|n| n == head || n.starts_with(&format!("{head}.")));
        if !names_part_of_head {
            names.push(head.to_string());
        }
    }
    Ok(names
        .into_iter()
        .map(|name| {
            let params = trained_owners(skeleton, std::slice::from_ref(&name))
                .iter()
                .map(|(_, p)| p)
                .sum();
            (name, params)
        })
        .collect())
}

fn saved_modules_names(saved: &[(String, usize)]) -> Vec<String> {
    saved.iter().map(|(n, _)| n.clone()).collect()
}

/// PEFT's matching: a module `name` is selected by `entry` when it is `entry` or ends with
/// `.entry`.
fn module_matches(name: &str, entry: &str) -> bool {
    name == entry || name.ends_with(&format!(".{entry}"))
}

/// The parameter owners (linears, embeddings, norms) under any module matching `entries`, each
/// once, with their parameter counts.
fn trained_owners(skeleton: &ModelSkeleton, entries: &[String]) -> Vec<(String, usize)> {
    let selected: Vec<String> = skeleton
        .module_names()
        .into_iter()
        .filter(|m| entries.iter().any(|e| module_matches(m, e)))
        .collect();
    let under = |owner: &str| {
        selected
            .iter()
            .any(|s| owner == s || owner.starts_with(&format!("{s}.")))
    };
    skeleton
        .linears
        .iter()
        .map(|l| (l.name.clone(), l.params()))
        .chain(skeleton.others.iter().map(|o| (o.module.clone(), o.params)))
        .filter(|(owner, _)| under(owner))
        .collect()
}

/// Input lengths against the model's position table.
fn check_lengths(recipe: &Recipe, skeleton: &ModelSkeleton) -> Result<()> {
    let d = &recipe.data;
    if !skeleton.model_type.is_causal_lm() && d.max_prompt_length > skeleton.max_positions {
        return Err(Error::invalid(
            "data.max_prompt_length",
            d.max_prompt_length,
            format!(
                "exceeds the {} positions this {} covers",
                skeleton.max_positions,
                model_name(skeleton.model_type)
            ),
        ));
    }
    Ok(())
}

/// Reads the data files that exist (their first rows for instruction data) to check formats
/// and columns; absent files and an absent tokenizer become warnings.
fn check_files(recipe: &Recipe, task: Option<GlueTask>, report: &mut CheckReport) -> Result<()> {
    let d = &recipe.data;
    let mut files = vec![("data.train", d.train.clone())];
    files.extend(d.eval.clone().map(|e| ("data.eval", e)));
    let tokenizer = find_tokenizer(recipe);
    for (field, path) in files {
        if !data_present(&path) {
            report.warnings.push(format!(
                "{field} = {} does not exist here: not checked",
                path.display()
            ));
            continue;
        }
        match task {
            Some(task) => {
                report.rows_checked += load_glue_with(task, &path, &d.columns)?.len();
            }
            None => {
                let rows = load_training_rows(&path, d.format, &d.columns, Some(8))?;
                report.rows_checked += rows.len();
                let chat: Vec<&TrainingRow> = rows
                    .iter()
                    .filter(|r| matches!(r, TrainingRow::Chat(_)))
                    .collect();
                if chat.is_empty() {
                    continue;
                }
                let Some(tokenizer) = &tokenizer else {
                    report.warnings.push(format!(
                        "{field} holds conversations but no tokenizer was found next to \
                         model.path: the chat template was not checked"
                    ));
                    continue;
                };
                let limits = TruncationLimits {
                    max_prompt_length: d.max_prompt_length,
                    max_response_length: d.max_response_length,
                };
                InstructionTokenizer::new(tokenizer, limits)?.tokenize_rows(&rows)?;
            }
        }
    }
    if let Some(dir) = &recipe.model.init_adapter
        && !dir.join("adapter_config.json").is_file()
    {
        report.warnings.push(format!(
            "model.init_adapter = {} holds no adapter_config.json here: not checked",
            dir.display()
        ));
    }
    Ok(())
}

/// Whether a data path (file, folder or shard pattern) names anything that exists.
pub(crate) fn data_present(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name.contains(['*', '?']) {
        return path
            .parent()
            .is_none_or(|p| p.as_os_str().is_empty() || p.is_dir());
    }
    path.exists()
}

/// The recipe's tokenizer (the one training loads), when its files are present.
fn find_tokenizer(recipe: &Recipe) -> Option<TextTokenizer> {
    TextTokenizer::for_model(&recipe.model.path, recipe.model.tokenizer.as_deref()).ok()
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.skeleton;
        writeln!(
            f,
            "model: {} ({}): {} layers, hidden {}, vocab {}, {} parameters",
            model_name(s.model_type),
            s.config_path.display(),
            s.num_layers,
            s.hidden_size,
            s.vocab_size,
            group_digits(s.total_params())
        )?;
        // Adapted layers by their short name, with shape and count.
        let mut kinds: Vec<(String, [usize; 2], usize)> = Vec::new();
        for layer in &self.adapted {
            let short = layer
                .name
                .rsplit('.')
                .next()
                .unwrap_or(&layer.name)
                .to_string();
            let shape = [layer.out_features, layer.in_features];
            match kinds
                .iter_mut()
                .find(|(n, s, _)| *n == short && *s == shape)
            {
                Some(kind) => kind.2 += 1,
                None => kinds.push((short, shape, 1)),
            }
        }
        let listed: Vec<String> = kinds
            .iter()
            .map(|(name, [o, i], n)| format!("{name} [{o}, {i}] x{n}"))
            .collect();
        writeln!(
            f,
            "adapters: {} layers: {}",
            self.adapted.len(),
            listed.join(", ")
        )?;
        for group in &self.groups {
            writeln!(
                f,
                "lotr group: {} layers of [{}, {}] share L and R",
                group.layers, group.shape[0], group.shape[1]
            )?;
        }
        for (name, params) in &self.saved_modules {
            writeln!(
                f,
                "trained fully: {name} ({} parameters)",
                group_digits(*params)
            )?;
        }
        writeln!(
            f,
            "trainable params: {} || all params: {} || trainable%: {:.4}",
            group_digits(self.trainable_params),
            group_digits(self.total_params),
            100.0 * self.trainable_params as f64 / self.total_params.max(1) as f64
        )?;
        if self.rows_checked > 0 {
            writeln!(f, "data: {} rows read and converted", self.rows_checked)?;
        }
        for warning in &self.warnings {
            writeln!(f, "warning: {warning}")?;
        }
        Ok(())
    }
}

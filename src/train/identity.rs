//! A run's identity: what may not change between an adapter and the recipe that continues
//! from it (`model.init_adapter`), or between a run's `config.toml` and the recipe that resumes
//! it (`--resume`). Either would otherwise silently change the run's math: an `svd-split`
//! adapter saved as plain LoRA counts ΔW₀ twice on reload; a resumed run with another learning
//! rate is neither run.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::recipe::Recipe;
use crate::adapter::AdapterConfig;
use crate::distributed::Identity;
use crate::{Error, Result};

/// Recipe keys that `--resume` may change: where and how progress is reported and saved, not
/// what is computed. Everything else (model, adapter, data, optimisation, `run.seed`) is fixed,
/// `optim.max_steps` and `optim.epochs` included: the learning-rate schedule spans the whole run,
/// so a new length would change the steps already taken.
pub const RESUMABLE_KEYS: [&str; 13] = [
    "run.output_dir",
    "run.device",
    "run.devices",
    "run.fusion",
    "run.log_every",
    "run.checkpoint_every",
    "run.sample_prompt",
    "run.sample_max_new_tokens",
    // The world may change: the global batch, and so the math, does not.
    "distributed.nnodes",
    "distributed.node_rank",
    "distributed.master_addr",
    "distributed.master_port",
    "distributed.timeout_s",
];

/// What every process of a data-parallel run must share: this build's version, every recipe key
/// a node may not set for itself (all but [`RESUMABLE_KEYS`] and `model.path`), and a
/// fingerprint of the base model's files, so the same model under another path on another
/// machine is accepted and another model under the same path is not.
pub fn group_identity(recipe: &Recipe) -> Result<Identity> {
    let mut values: BTreeMap<String, String> = flatten("", recipe)
        .into_iter()
        .filter(|(key, _)| !RESUMABLE_KEYS.contains(&key.as_str()) && key != "model.path")
        .collect();
    values.insert(
        "model (files)".into(),
        model_fingerprint(&recipe.model.path)?,
    );
    Ok(Identity {
        version: concat!(env!("CARGO_PKG_NAME"), " ", env!("CARGO_PKG_VERSION")).into(),
        values,
    })
}

/// `name:size:hash` of the model's files (the folder's own files, or the one file), the hash
/// over each file's first MiB: the safetensors header (names, dtypes, offsets) and the first
/// weights, without reading gigabytes.
fn model_fingerprint(path: &Path) -> Result<String> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |cause| Error::Io { path, cause }
    };
    let mut files = Vec::new();
    if path.is_dir() {
        for entry in std::fs::read_dir(path).map_err(io(path))? {
            let file = entry.map_err(io(path))?.path();
            if file.is_file() {
                files.push(file);
            }
        }
        files.sort();
    } else {
        files.push(path.to_path_buf());
    }
    let mut parts = Vec::new();
    for file in files {
        use std::hash::Hasher;
        use std::io::Read;
        let mut head = Vec::new();
        let opened = std::fs::File::open(&file).map_err(io(&file))?;
        let size = opened.metadata().map_err(io(&file))?.len();
        opened
            .take(1 << 20)
            .read_to_end(&mut head)
            .map_err(io(&file))?;
        let mut hasher = std::hash::DefaultHasher::new();
        hasher.write(&head);
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        parts.push(format!("{name}:{size}:{:016x}", hasher.finish()));
    }
    Ok(parts.join(" "))
}

/// Checks that the recipe's `[adapter]` is the adapter's own configuration (defaults filled in
/// on both sides); the error names every field that differs.
pub fn check_init_adapter(recipe: &AdapterConfig, saved: &AdapterConfig, dir: &Path) -> Result<()> {
    let differences = differences("adapter", &resolved(saved), &resolved(recipe));
    if differences.is_empty() {
        return Ok(());
    }
    Err(Error::invalid(
        "model.init_adapter",
        dir.display(),
        format!(
            "its adapter differs from the recipe's [adapter] in {}; make [adapter] match the \
             `burn_peft` section of its adapter_config.json (or re-run `burn-peft init` with this \
             recipe)",
            listing(&differences, "adapter")
        ),
    ))
}

/// Checks that `recipe` may resume the run whose `config.toml` is in `out` (nothing to check
/// when there is none): every key outside [`RESUMABLE_KEYS`] must be unchanged. The error
/// names every differing key with both values.
pub fn check_resume(recipe: &Recipe, out: &Path) -> Result<()> {
    let path = out.join("config.toml");
    if !path.is_file() {
        return Ok(());
    }
    let saved = Recipe::load(Some(&path), &[])?;
    let differences: Vec<_> = differences("", &saved, recipe)
        .into_iter()
        .filter(|(key, _, _)| !RESUMABLE_KEYS.contains(&key.as_str()))
        .collect();
    if differences.is_empty() {
        return Ok(());
    }
    Err(Error::BadFile {
        path,
        message: format!(
            "cannot resume: the recipe differs from this run's recipe in {}, which change the \
             math; only {} may change on --resume (start a new run in another output_dir to \
             train differently)",
            listing(&differences, "run"),
            RESUMABLE_KEYS.join(", ")
        ),
    })
}

/// `config` with the method's defaults filled in, so that `alpha = r` written out and left to
/// its default compare equal.
fn resolved(config: &AdapterConfig) -> AdapterConfig {
    let mut config = config.clone();
    config.alpha = Some(config.alpha());
    config.init = config.resolved_init();
    config
}

/// `key (was: A, now: B)` for each difference.
fn listing(differences: &[(String, String, String)], was: &str) -> String {
    differences
        .iter()
        .map(|(key, old, new)| format!("`{key}` ({was}: {old}, recipe: {new})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every dotted key whose value differs between `old` and `new`, with both values (`unset`
/// for a missing optional key).
fn differences<T: Serialize>(prefix: &str, old: &T, new: &T) -> Vec<(String, String, String)> {
    let (old, new) = (flatten(prefix, old), flatten(prefix, new));
    let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    let unset = || "unset".to_string();
    keys.into_iter()
        .filter(|key| old.get(*key) != new.get(*key))
        .map(|key| {
            (
                key.clone(),
                old.get(key).cloned().unwrap_or_else(unset),
                new.get(key).cloned().unwrap_or_else(unset),
            )
        })
        .collect()
}

/// Leaf values of a serialised struct under dotted keys (`optim.lr`), as TOML text.
fn flatten<T: Serialize>(prefix: &str, value: &T) -> BTreeMap<String, String> {
    fn walk(key: String, value: &toml::Value, out: &mut BTreeMap<String, String>) {
        match value {
            toml::Value::Table(table) => {
                for (name, v) in table {
                    let key = if key.is_empty() {
                        name.clone()
                    } else {
                        format!("{key}.{name}")
                    };
                    walk(key, v, out);
                }
            }
            leaf => {
                out.insert(key, leaf.to_string());
            }
        }
    }
    let mut out = BTreeMap::new();
    let value = toml::Value::try_from(value).expect("configs serialise to TOML");
    walk(prefix.to_string(), &value, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapter::{Init, Method};

    #[test]
    fn defaults_compare_equal_and_differences_are_named() {
        let dir = Path::new("adapter");
        let plain = AdapterConfig::new(Method::LoraFa, 4);
        let explicit = plain.clone().with_alpha(4.0).with_init(Init::Svd);
        check_init_adapter(&explicit, &plain, dir).unwrap();
        let changed = plain
            .clone()
            .with_alpha(16.0)
            .with_init(Init::SvdSplit)
            .with_seed(3);
        let err = check_init_adapter(&changed, &plain, dir)
            .unwrap_err()
            .to_string();
        for field in ["adapter.alpha", "adapter.init", "adapter.seed"] {
            assert!(err.contains(&format!("`{field}`")), "{field}: {err}");
        }
        assert!(err.contains("svd-split"), "{err}");
        assert!(!err.contains("adapter.rank"), "{err}");
    }
}

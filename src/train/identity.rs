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
use crate::{Error, Result};

/// Recipe keys that `--resume` may change: where and how progress is reported and saved, not
/// what is computed. Everything else (model, adapter, data, optimisation, `run.seed`) is fixed,
/// `optim.max_steps` and `optim.epochs` included: the learning-rate schedule spans the whole run,
/// so a new length would change the steps already taken.
pub const RESUMABLE_KEYS: [&str; 6] = [
    "run.output_dir",
    "run.device",
    "run.log_every",
    "run.checkpoint_every",
    "run.sample_prompt",
    "run.sample_max_new_tokens",
];

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

//! Recipes: every shipped recipe parses and validates against its architecture's config.json
//! without weights, the published studies' parameter counts follow from them, the weightless
//! model skeleton agrees with the loaded models, and `burn-peft check` reports and refuses.

#[path = "recipes/cli.rs"]
mod cli;
#[path = "recipes/plan.rs"]
mod plan;
#[path = "recipes/shipped.rs"]
mod shipped;
#[path = "recipes/skeleton.rs"]
mod skeleton;

use std::path::{Path, PathBuf};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The config.json a recipe is checked against: the model folder when it is in the repository
/// (stories260K), else the copy of the published config under tests/fixtures/configs/ named
/// after the folder (`models/Llama-2-7b-hf` → `tests/fixtures/configs/Llama-2-7b-hf`).
pub fn architecture_of(model_path: &Path) -> PathBuf {
    let local = root().join(model_path);
    if local.join("config.json").is_file() {
        return local;
    }
    let name = model_path.file_name().expect("a model folder name");
    root().join("tests/fixtures/configs").join(name)
}

/// Every recipe under configs/, recursively (demo-sorsa.toml is an `[adapter]` table for
/// `burn-peft demo`, not a recipe).
pub fn shipped_recipes() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "toml")
                && path.file_name().is_some_and(|n| n != "demo-sorsa.toml")
            {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&root().join("configs"), &mut out);
    out.sort();
    out
}

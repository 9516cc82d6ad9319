//! Which files a data path names, as HF datasets lay them out:
//!
//! - one file: `.parquet`, `.arrow` (the `datasets` cache's Arrow IPC stream, e.g.
//!   `gsm8k-train.arrow` or a `cache-*.arrow` written by `map`), anything else is JSON / JSON
//!   lines;
//! - a pattern in the file name (`*`, `?`): every match, in name order, e.g. a hub shard set
//!   `data/train-*.parquet`. Files named `NAME-0000i-of-0000n.ext` must be complete (all n
//!   shards), so a half-finished download is an error rather than a silently smaller dataset;
//! - a folder written by `Dataset.save_to_disk`: its `state.json` lists the Arrow files
//!   (`data-0000i-of-0000n.arrow`) in order.

use std::path::{Path, PathBuf};

use regex::Regex;
use serde::Deserialize;

use super::source::bad_file;
use crate::{Error, Result};

/// How a data file is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A JSON array of objects, or JSON lines.
    Json,
    Parquet,
    /// Arrow IPC (the stream format `datasets` writes, or the file format).
    Arrow,
}

impl FileKind {
    fn of(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some("parquet") => FileKind::Parquet,
            Some("arrow") => FileKind::Arrow,
            _ => FileKind::Json,
        }
    }

    /// Whether rows live in typed columns (parquet, Arrow) rather than JSON objects.
    pub fn is_columnar(self) -> bool {
        self != FileKind::Json
    }
}

/// The files `path` names, in reading order, all of one kind.
pub fn data_files(path: &Path) -> Result<(FileKind, Vec<PathBuf>)> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let files = if name.contains(['*', '?']) {
        let files = glob(path, name)?;
        check_shards(path, &files)?;
        files
    } else if path.is_dir() {
        saved_dataset(path)?
    } else {
        vec![path.to_path_buf()]
    };
    let kind = FileKind::of(&files[0]);
    if let Some(other) = files.iter().find(|f| FileKind::of(f) != kind) {
        return Err(bad_file(
            path,
            format!(
                "matches files of different formats ({} and {})",
                files[0].display(),
                other.display()
            ),
        ));
    }
    Ok((kind, files))
}

/// The files in `path`'s folder whose names match the pattern `name`, sorted.
fn glob(path: &Path, name: &str) -> Result<Vec<PathBuf>> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let pattern = name
        .chars()
        .map(|c| match c {
            '*' => ".*".to_string(),
            '?' => ".".to_string(),
            c => regex::escape(&c.to_string()),
        })
        .collect::<String>();
    let re = Regex::new(&format!("^{pattern}$")).expect("an escaped pattern compiles");
    let entries = std::fs::read_dir(&dir).map_err(|source| Error::Io {
        path: dir.clone(),
        cause: source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| re.is_match(n))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(bad_file(path, "no file matches this pattern"));
    }
    Ok(files)
}

/// `NAME-0000i-of-0000n.ext` shard sets among `files` must hold every shard.
fn check_shards(path: &Path, files: &[PathBuf]) -> Result<()> {
    let re = Regex::new(r"^(.*)-(\d+)-of-(\d+)(\.[^.]+)$").expect("valid regex");
    // (name prefix, shard count, digits, extension) -> shard indices present
    type ShardSet = (String, usize, usize, String);
    let mut sets: std::collections::BTreeMap<ShardSet, Vec<usize>> = Default::default();
    for file in files {
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some(c) = re.captures(name) {
            let (Ok(index), Ok(total)) = (c[2].parse::<usize>(), c[3].parse::<usize>()) else {
                continue;
            };
            sets.entry((c[1].to_string(), total, c[3].len(), c[4].to_string()))
                .or_default()
                .push(index);
        }
    }
    for ((prefix, total, width, ext), indices) in sets {
        if let Some(missing) = (0..total).find(|i| !indices.contains(i)) {
            return Err(bad_file(
                path,
                format!(
                    "shard {prefix}-{missing:0width$}-of-{total:0width$}{ext} is missing \
                     ({} of {total} shards present)",
                    indices.len()
                ),
            ));
        }
    }
    Ok(())
}

/// `state.json` of a `save_to_disk` folder (the fields used here).
#[derive(Deserialize)]
struct SavedState {
    #[serde(rename = "_data_files")]
    data_files: Vec<SavedFile>,
}

#[derive(Deserialize)]
struct SavedFile {
    filename: String,
}

/// The Arrow files of a `Dataset.save_to_disk` folder, in order.
fn saved_dataset(dir: &Path) -> Result<Vec<PathBuf>> {
    let state = dir.join("state.json");
    if state.is_file() {
        let saved: SavedState = crate::io::read_json(&state)?;
        if saved.data_files.is_empty() {
            return Err(bad_file(&state, "`_data_files` lists no file"));
        }
        let files: Vec<PathBuf> = saved
            .data_files
            .iter()
            .map(|f| dir.join(&f.filename))
            .collect();
        if let Some(missing) = files.iter().find(|f| !f.is_file()) {
            return Err(bad_file(
                &state,
                format!("lists {}, which does not exist", missing.display()),
            ));
        }
        return Ok(files);
    }
    let hint = if dir.join("dataset_dict.json").is_file() {
        "a DatasetDict saved with save_to_disk: point at one split's folder (e.g. DIR/train)"
            .to_string()
    } else {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map_err(|source| Error::Io {
                path: dir.to_path_buf(),
                cause: source,
            })?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| n.ends_with(".parquet") || n.ends_with(".arrow") || n.contains("json"))
            .collect();
        names.sort();
        format!(
            "a folder is read only when it was written by save_to_disk (state.json); name the \
             file, or a pattern such as `train-*.parquet`{}",
            if names.is_empty() {
                String::new()
            } else {
                format!(" (data files here: {})", names.join(", "))
            }
        )
    };
    Err(bad_file(dir, hint))
}

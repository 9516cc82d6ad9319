//! File input and output below the models: safetensors checkpoints ([`checkpoint`]), TOML and
//! JSON files with errors that name the file, and atomic writes so that an interrupted run never
//! leaves a half-written file in place of a good one. Nothing here knows a model; adapters on
//! disk are [`crate::persist`], one layer up.

pub mod checkpoint;

use std::io::Write;
use std::path::Path;

use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// Reads and parses a TOML file. Parse errors carry the path, line, column and key.
pub fn read_toml<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        cause: source,
    })?;
    toml::from_str(&text).map_err(|e| Error::ConfigParse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Reads and parses a JSON file; errors name the file (and serde's line and column).
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        cause: source,
    })?;
    serde_json::from_str(&text).map_err(|e| Error::BadFile {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Refuses to write a non-finite value (a diverged run): errors naming the file and the tensor.
pub fn ensure_finite(path: &Path, tensors: &[checkpoint::OutTensor]) -> Result<()> {
    for tensor in tensors {
        let (name, values) = match tensor {
            checkpoint::OutTensor::F32(name, _, values)
            | checkpoint::OutTensor::Bf16(name, _, values) => (name, values.clone()),
            checkpoint::OutTensor::Raw(name, dtype, _, bytes) => (name, float_bytes(*dtype, bytes)),
            checkpoint::OutTensor::I64(..) => continue,
        };
        if let Some(v) = values.iter().find(|v| !v.is_finite()) {
            return Err(Error::BadFile {
                path: path.to_path_buf(),
                message: format!("not written: tensor `{name}` holds {v} (the run diverged)"),
            });
        }
    }
    Ok(())
}

/// The values of little-endian float `bytes` (none for integer dtypes).
fn float_bytes(dtype: safetensors::Dtype, bytes: &[u8]) -> Vec<f32> {
    use safetensors::Dtype;
    match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        _ => Vec::new(),
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so
/// readers see the old file or the new one, never a partial one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        cause: source,
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp_file() {
        let dir = std::env::temp_dir().join(format!("burn-peft-io-{}", std::process::id()));
        let path = dir.join("out.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(leftovers.len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

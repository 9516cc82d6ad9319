//! Reading safetensors checkpoints as HF writes them: one `model.safetensors` or shards listed in
//! `model.safetensors.index.json`, memory-mapped, any of f32 / f16 / bf16 / f64 converted to the
//! run's float type on load. Every tensor read is recorded, so callers can report the ones a
//! model did not use.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use burn::tensor::{Int, Tensor, TensorData, backend::Backend};
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};

use crate::{Error, Result};

/// A shard's bytes: memory-mapped from disk, or built in memory (converted formats).
enum Bytes {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

struct Shard {
    path: PathBuf,
    map: Bytes,
    /// Byte offset of the data section (after the header).
    data_start: usize,
}

struct Entry {
    shard: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    range: (usize, usize),
}

/// An opened (possibly sharded) safetensors checkpoint.
pub struct Checkpoint {
    shards: Vec<Shard>,
    entries: HashMap<String, Entry>,
    used: Mutex<BTreeSet<String>>,
}

pub const SINGLE_FILE: &str = "model.safetensors";
pub const INDEX_FILE: &str = "model.safetensors.index.json";

impl Checkpoint {
    /// Opens the weights of an HF model folder.
    pub fn open_dir(dir: &Path) -> Result<Self> {
        let index = dir.join(INDEX_FILE);
        if index.is_file() {
            let text = std::fs::read_to_string(&index).map_err(|source| Error::Io {
                path: index.clone(),
                source,
            })?;
            let json: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| Error::BadFile {
                    path: index.clone(),
                    message: format!("not valid JSON: {e}"),
                })?;
            let map = json
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| Error::BadFile {
                    path: index.clone(),
                    message: "no `weight_map` object".into(),
                })?;
            let files: BTreeSet<&str> = map.values().filter_map(|v| v.as_str()).collect();
            let paths: Vec<PathBuf> = files.into_iter().map(|f| dir.join(f)).collect();
            return Self::open_files(&paths);
        }
        let single = dir.join(SINGLE_FILE);
        if single.is_file() {
            return Self::open_files(&[single]);
        }
        Err(Error::BadFile {
            path: dir.to_path_buf(),
            message: format!("no {SINGLE_FILE} or {INDEX_FILE} in this folder"),
        })
    }

    /// Opens the given safetensors files as one checkpoint.
    pub fn open_files(paths: &[PathBuf]) -> Result<Self> {
        let mut shards = Vec::with_capacity(paths.len());
        for path in paths {
            let file = std::fs::File::open(path).map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
            // SAFETY: the map is read-only; a checkpoint modified while we read it is the user's
            // problem, as for every mmap-based loader (safetensors' own docs do the same).
            let map = unsafe { Mmap::map(&file) }.map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
            shards.push((path.clone(), Bytes::Mapped(map)));
        }
        Self::from_shards(shards)
    }

    /// A checkpoint from safetensors bytes built in memory; `path` names its origin in errors.
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Self> {
        Self::from_shards(vec![(path.to_path_buf(), Bytes::Owned(bytes))])
    }

    fn from_shards(files: Vec<(PathBuf, Bytes)>) -> Result<Self> {
        let mut shards = Vec::with_capacity(files.len());
        let mut entries = HashMap::new();
        for (index, (path, map)) in files.into_iter().enumerate() {
            let (header_len, metadata) =
                SafeTensors::read_metadata(&map).map_err(|e| Error::BadFile {
                    path: path.clone(),
                    message: format!("not a valid safetensors file ({e:?}); is it truncated?"),
                })?;
            for (name, info) in metadata.tensors() {
                entries.insert(
                    name,
                    Entry {
                        shard: index,
                        dtype: info.dtype,
                        shape: info.shape.clone(),
                        range: info.data_offsets,
                    },
                );
            }
            shards.push(Shard {
                path,
                map,
                data_start: 8 + header_len,
            });
        }
        Ok(Self {
            shards,
            entries,
            used: Mutex::new(BTreeSet::new()),
        })
    }

    /// Files the checkpoint reads from.
    pub fn paths(&self) -> Vec<&Path> {
        self.shards.iter().map(|s| s.path.as_path()).collect()
    }

    /// The path to name in errors about tensor `name` (its shard, or the first file).
    pub fn path_of(&self, name: &str) -> PathBuf {
        let shard = self.entries.get(name).map(|e| e.shard).unwrap_or(0);
        self.shards
            .get(shard)
            .map(|s| s.path.clone())
            .unwrap_or_default()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.entries.get(name).map(|e| e.shape.as_slice())
    }

    pub fn dtype(&self, name: &str) -> Option<Dtype> {
        self.entries.get(name).map(|e| e.dtype)
    }

    /// All tensor names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.entries.keys().map(String::as_str).collect();
        names.sort();
        names
    }

    /// Tensors no reader asked for, sorted.
    pub fn unused(&self) -> Vec<String> {
        let used = self.used.lock().expect("checkpoint bookkeeping");
        let mut unused: Vec<String> = self
            .entries
            .keys()
            .filter(|n| !used.contains(*n))
            .cloned()
            .collect();
        unused.sort();
        unused
    }

    fn entry(&self, name: &str) -> Result<(&Entry, &[u8])> {
        let entry = self.entries.get(name).ok_or_else(|| Error::MissingTensor {
            path: self.path_of(name),
            name: name.to_string(),
        })?;
        self.used
            .lock()
            .expect("checkpoint bookkeeping")
            .insert(name.to_string());
        let shard = &self.shards[entry.shard];
        let bytes = &shard.map[shard.data_start + entry.range.0..shard.data_start + entry.range.1];
        Ok((entry, bytes))
    }

    /// Reads a float tensor as f32 values with its shape.
    pub fn read_f32(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>)> {
        let (entry, bytes) = self.entry(name)?;
        let values = match entry.dtype {
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => bytes
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::F64 => bytes
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
                .collect(),
            other => {
                return Err(Error::BadFile {
                    path: self.path_of(name),
                    message: format!("tensor `{name}` has dtype {other:?}; expected a float type"),
                });
            }
        };
        Ok((values, entry.shape.clone()))
    }

    /// Reads an integer tensor (i64 / i32) as i64 values with its shape.
    pub fn read_i64(&self, name: &str) -> Result<(Vec<i64>, Vec<usize>)> {
        let (entry, bytes) = self.entry(name)?;
        let values = match entry.dtype {
            Dtype::I64 => bytes
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
                .collect(),
            Dtype::I32 => bytes
                .chunks_exact(4)
                .map(|b| i64::from(i32::from_le_bytes(b.try_into().expect("4 bytes"))))
                .collect(),
            other => {
                return Err(Error::BadFile {
                    path: self.path_of(name),
                    message: format!("tensor `{name}` has dtype {other:?}; expected i64 or i32"),
                });
            }
        };
        Ok((values, entry.shape.clone()))
    }

    /// Reads a float tensor of the expected shape onto `device`.
    pub fn tensor<B: Backend, const D: usize>(
        &self,
        name: &str,
        shape: [usize; D],
        device: &B::Device,
    ) -> Result<Tensor<B, D>> {
        let (values, found) = self.read_f32(name)?;
        self.check_shape(name, &shape, &found)?;
        Ok(Tensor::from_data(TensorData::new(values, shape), device))
    }

    /// Reads an integer tensor of any rank-`D` shape onto `device`.
    pub fn int_tensor<B: Backend, const D: usize>(
        &self,
        name: &str,
        device: &B::Device,
    ) -> Result<Tensor<B, D, Int>> {
        let (values, shape) = self.read_i64(name)?;
        if shape.len() != D {
            return Err(Error::BadFile {
                path: self.path_of(name),
                message: format!("tensor `{name}` has shape {shape:?}; expected {D} dimensions"),
            });
        }
        Ok(Tensor::from_data(TensorData::new(values, shape), device))
    }

    fn check_shape(&self, name: &str, expected: &[usize], found: &[usize]) -> Result<()> {
        if expected != found {
            return Err(Error::Shape {
                what: format!("tensor `{name}` in {}", self.path_of(name).display()),
                expected: expected.to_vec(),
                found: found.to_vec(),
            });
        }
        Ok(())
    }
}

/// A tensor to write: name, shape and values (stored little-endian in the named dtype).
pub enum OutTensor {
    F32(String, Vec<usize>, Vec<f32>),
    /// f32 values rounded to bf16 on write.
    Bf16(String, Vec<usize>, Vec<f32>),
    I64(String, Vec<usize>, Vec<i64>),
}

/// Writes tensors to a safetensors file atomically.
pub fn write_safetensors(
    path: &Path,
    tensors: Vec<OutTensor>,
    metadata: Option<HashMap<String, String>>,
) -> Result<()> {
    let bytes = serialize(path, tensors, metadata)?;
    super::write_atomic(path, &bytes)
}

/// Serialises tensors to safetensors bytes (`path` only names errors).
pub fn serialize(
    path: &Path,
    tensors: Vec<OutTensor>,
    metadata: Option<HashMap<String, String>>,
) -> Result<Vec<u8>> {
    let owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|t| match t {
            OutTensor::F32(name, shape, values) => (
                name,
                Dtype::F32,
                shape,
                values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
            OutTensor::Bf16(name, shape, values) => (
                name,
                Dtype::BF16,
                shape,
                values
                    .iter()
                    .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
                    .collect(),
            ),
            OutTensor::I64(name, shape, values) => (
                name,
                Dtype::I64,
                shape,
                values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = owned
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            let view = safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes).map_err(
                |e| Error::BadFile {
                    path: path.to_path_buf(),
                    message: format!("tensor `{name}`: {e:?}"),
                },
            )?;
            Ok((name.clone(), view))
        })
        .collect::<Result<_>>()?;
    safetensors::serialize(views, metadata).map_err(|e| Error::BadFile {
        path: path.to_path_buf(),
        message: format!("cannot serialise: {e:?}"),
    })
}

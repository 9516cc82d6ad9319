//! Reading safetensors checkpoints as HF writes them: one `model.safetensors` or shards listed in
//! `model.safetensors.index.json`, memory-mapped, any of f32 / f16 / bf16 / f64 converted to the
//! checkpoint's target dtype (f32 unless [`Checkpoint::with_dtype`] says otherwise) tensor by
//! tensor. Once a tensor is on the device its mapped pages are released, so loading a model needs
//! about its size in host memory, not a second copy of the file. Every tensor read is recorded,
//! so callers can report the ones a model did not use.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use burn::tensor::{DType, FloatDType, Int, Tensor, TensorData, backend::Backend, bf16, f16};
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
    /// The dtype [`tensor`](Self::tensor) creates float tensors in.
    dtype: FloatDType,
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
                cause: source,
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
                cause: source,
            })?;
            // SAFETY: the map is read-only; a checkpoint modified while we read it is the user's
            // problem, as for every mmap-based loader (safetensors' own docs do the same).
            let map = unsafe { Mmap::map(&file) }.map_err(|source| Error::Io {
                path: path.clone(),
                cause: source,
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
            dtype: FloatDType::F32,
        })
    }

    /// Float tensors are created in `dtype` (converted from whatever the file stores).
    pub fn with_dtype(mut self, dtype: FloatDType) -> Self {
        self.dtype = dtype;
        self
    }

    /// The dtype float tensors are created in.
    pub fn target_dtype(&self) -> FloatDType {
        self.dtype
    }

    /// The float dtype holding most of the checkpoint's elements (f32 when it has no float
    /// tensor): what `precision = "auto"` loads when config.json names no dtype.
    pub fn stored_dtype(&self) -> FloatDType {
        let mut counts: Vec<(FloatDType, usize)> = Vec::new();
        for entry in self.entries.values() {
            let Some(dtype) = float_dtype(entry.dtype) else {
                continue;
            };
            let n: usize = entry.shape.iter().product();
            match counts.iter_mut().find(|(d, _)| *d == dtype) {
                Some((_, c)) => *c += n,
                None => counts.push((dtype, n)),
            }
        }
        counts
            .into_iter()
            .max_by_key(|(_, n)| *n)
            .map_or(FloatDType::F32, |(d, _)| d)
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
        let values = self.decode(name, entry.dtype, bytes, Value::to_f32)?;
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

    /// Reads a float tensor of the expected shape onto `device`, in the checkpoint's target
    /// dtype ([`with_dtype`](Self::with_dtype)).
    pub fn tensor<B: Backend, const D: usize>(
        &self,
        name: &str,
        shape: [usize; D],
        device: &B::Device,
    ) -> Result<Tensor<B, D>> {
        self.tensor_as(name, shape, self.dtype, device)
    }

    /// Reads a float tensor of the expected shape onto `device` in `dtype`: the stored values
    /// are converted straight into one host buffer of `dtype` (no f32 copy of a bf16 tensor),
    /// which becomes the device tensor, and the tensor's mapped pages are released.
    pub fn tensor_as<B: Backend, const D: usize>(
        &self,
        name: &str,
        shape: [usize; D],
        dtype: FloatDType,
        device: &B::Device,
    ) -> Result<Tensor<B, D>> {
        let (entry, bytes) = self.entry(name)?;
        self.check_shape(name, &shape, &entry.shape)?;
        let data = match dtype {
            FloatDType::BF16 => {
                let values: Vec<bf16> = self.decode(name, entry.dtype, bytes, |v| match v {
                    Value::Bf16(x) => x,
                    other => bf16::from_f32(other.to_f32()),
                })?;
                TensorData::new(values, shape)
            }
            FloatDType::F16 => {
                let values: Vec<f16> = self.decode(name, entry.dtype, bytes, |v| match v {
                    Value::F16(x) => x,
                    other => f16::from_f32(other.to_f32()),
                })?;
                TensorData::new(values, shape)
            }
            FloatDType::F64 => {
                let values: Vec<f64> = self.decode(name, entry.dtype, bytes, |v| match v {
                    Value::F64(x) => x,
                    other => f64::from(other.to_f32()),
                })?;
                TensorData::new(values, shape)
            }
            FloatDType::F32 | FloatDType::Flex32 => {
                let values: Vec<f32> = self.decode(name, entry.dtype, bytes, Value::to_f32)?;
                TensorData::new(values, shape)
            }
        };
        self.release(entry);
        Ok(Tensor::from_data(data, (device, DType::from(dtype))))
    }

    /// Decodes the little-endian elements of a float tensor with `convert`.
    fn decode<T>(
        &self,
        name: &str,
        stored: Dtype,
        bytes: &[u8],
        convert: impl Fn(Value) -> T,
    ) -> Result<Vec<T>> {
        Ok(match stored {
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|b| convert(Value::F32(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))))
                .collect(),
            Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|b| convert(Value::F16(f16::from_le_bytes([b[0], b[1]]))))
                .collect(),
            Dtype::BF16 => bytes
                .chunks_exact(2)
                .map(|b| convert(Value::Bf16(bf16::from_le_bytes([b[0], b[1]]))))
                .collect(),
            Dtype::F64 => bytes
                .chunks_exact(8)
                .map(|b| {
                    convert(Value::F64(f64::from_le_bytes(
                        b.try_into().expect("8 bytes"),
                    )))
                })
                .collect(),
            other => {
                return Err(Error::BadFile {
                    path: self.path_of(name),
                    message: format!("tensor `{name}` has dtype {other:?}; expected a float type"),
                });
            }
        })
    }

    /// Drops a tensor's mapped pages from this process once it has been copied (they stay in
    /// the page cache, and are read again if the tensor is). Without this every loaded tensor
    /// would be counted twice in resident memory: once mapped, once on the device.
    fn release(&self, entry: &Entry) {
        #[cfg(unix)]
        if let Bytes::Mapped(map) = &self.shards[entry.shard].map {
            let start = self.shards[entry.shard].data_start + entry.range.0;
            let len = entry.range.1 - entry.range.0;
            // SAFETY: the map is private and read-only and no reference into this range is
            // alive (the values were copied above): dropped pages are re-read from the file on
            // the next access, so no observable content changes. A failure only keeps pages.
            let _ = unsafe {
                map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, len)
            };
        }
        #[cfg(not(unix))]
        let _ = entry;
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

/// One stored float element, before conversion to the target dtype.
#[derive(Clone, Copy)]
enum Value {
    F32(f32),
    F16(f16),
    Bf16(bf16),
    F64(f64),
}

impl Value {
    fn to_f32(self) -> f32 {
        match self {
            Value::F32(x) => x,
            Value::F16(x) => x.to_f32(),
            Value::Bf16(x) => x.to_f32(),
            Value::F64(x) => x as f32,
        }
    }
}

/// The Burn float dtype of a safetensors dtype (`None` for integers and others).
pub fn float_dtype(dtype: Dtype) -> Option<FloatDType> {
    Some(match dtype {
        Dtype::F32 => FloatDType::F32,
        Dtype::F16 => FloatDType::F16,
        Dtype::BF16 => FloatDType::BF16,
        Dtype::F64 => FloatDType::F64,
        _ => return None,
    })
}

/// A tensor to write: name, shape and values (stored little-endian in the named dtype).
pub enum OutTensor {
    F32(String, Vec<usize>, Vec<f32>),
    /// f32 values rounded to bf16 on write.
    Bf16(String, Vec<usize>, Vec<f32>),
    I64(String, Vec<usize>, Vec<i64>),
    /// Little-endian bytes already in their dtype.
    Raw(String, Dtype, Vec<usize>, Vec<u8>),
}

impl OutTensor {
    /// A float tensor written as `dtype` (bf16, f16 or f32), converted on the host element by
    /// element (round to nearest even, as PyTorch's `.to()`).
    pub fn float<B: Backend, const D: usize>(
        name: String,
        tensor: Tensor<B, D>,
        dtype: FloatDType,
    ) -> Self {
        let shape = tensor.dims().to_vec();
        let values = crate::linalg::tensor_to_vec(tensor);
        Self::f32_as(name, shape, &values, dtype)
    }

    /// f32 values written as `dtype`, rounded to nearest even.
    pub fn f32_as(name: String, shape: Vec<usize>, values: &[f32], dtype: FloatDType) -> Self {
        let (stored, bytes): (Dtype, Vec<u8>) = match dtype {
            FloatDType::BF16 => (
                Dtype::BF16,
                values
                    .iter()
                    .flat_map(|v| bf16::from_f32(*v).to_le_bytes())
                    .collect(),
            ),
            FloatDType::F16 => (
                Dtype::F16,
                values
                    .iter()
                    .flat_map(|v| f16::from_f32(*v).to_le_bytes())
                    .collect(),
            ),
            FloatDType::F64 => (
                Dtype::F64,
                values
                    .iter()
                    .flat_map(|v| f64::from(*v).to_le_bytes())
                    .collect(),
            ),
            FloatDType::F32 | FloatDType::Flex32 => (
                Dtype::F32,
                values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
        };
        OutTensor::Raw(name, stored, shape, bytes)
    }
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
            OutTensor::Raw(name, dtype, shape, bytes) => (name, dtype, shape, bytes),
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

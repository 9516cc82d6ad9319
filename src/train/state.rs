//! Checkpointing the trainable part of a model only: each trainable tensor under its module path
//! with its parameter id (so a restored optimizer state finds its parameters again). The frozen
//! base is never written.

use std::collections::HashMap;
use std::path::Path;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::{Tensor, TensorData, backend::AutodiffBackend};

use crate::io::checkpoint::{Checkpoint, OutTensor, write_safetensors};
use crate::linalg::tensor_to_vec;
use crate::{Error, Result};

/// Writes every trainable tensor of `model` to a safetensors file (metadata: path → param id).
pub fn save_trainable<B: AutodiffBackend, M: Module<B>>(model: &M, path: &Path) -> Result<usize> {
    let mut collect = Collect {
        path: Vec::new(),
        tensors: Vec::new(),
        ids: HashMap::new(),
    };
    model.visit(&mut collect);
    let count = collect.tensors.len();
    crate::io::ensure_finite(path, &collect.tensors)?;
    write_safetensors(path, collect.tensors, Some(collect.ids))?;
    Ok(count)
}

/// Restores the tensors (and parameter ids) saved by [`save_trainable`] into `model`, which must
/// have the same structure. Every saved tensor must find its parameter.
pub fn load_trainable<B: AutodiffBackend, M: Module<B>>(model: M, path: &Path) -> Result<M> {
    let ckpt = Checkpoint::open_files(&[path.to_path_buf()])?;
    let ids = read_ids(path)?;
    let mut restore = Restore::<B> {
        path: Vec::new(),
        ckpt: &ckpt,
        ids: &ids,
        error: None,
        _b: std::marker::PhantomData,
    };
    let model = model.map(&mut restore);
    if let Some(e) = restore.error {
        return Err(e);
    }
    if let Some(name) = ckpt.unused().first() {
        return Err(Error::BadFile {
            path: path.to_path_buf(),
            message: format!(
                "tensor `{name}` matches no trainable parameter: checkpoint of another model or config?"
            ),
        });
    }
    Ok(model)
}

fn read_ids(path: &Path) -> Result<HashMap<String, String>> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let (_, metadata) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| Error::BadFile {
            path: path.to_path_buf(),
            message: format!("{e:?}"),
        })?;
    Ok(metadata.metadata().clone().unwrap_or_default())
}

struct Collect {
    path: Vec<String>,
    tensors: Vec<OutTensor>,
    ids: HashMap<String, String>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Collect {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let tensor = param.val();
        if !tensor.is_require_grad() {
            return;
        }
        let name = self.path.join(".");
        self.ids.insert(name.clone(), param.id.val().to_string());
        self.tensors.push(OutTensor::F32(
            name,
            tensor.dims().to_vec(),
            tensor_to_vec(tensor.inner()),
        ));
    }
}

struct Restore<'a, B: AutodiffBackend> {
    path: Vec<String>,
    ckpt: &'a Checkpoint,
    ids: &'a HashMap<String, String>,
    error: Option<Error>,
    _b: std::marker::PhantomData<B>,
}

impl<B: AutodiffBackend> ModuleMapper<B> for Restore<'_, B> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let name = self.path.join(".");
        if self.error.is_some() || !self.ckpt.contains(&name) {
            return param;
        }
        let device = param.val().device();
        let shape: [usize; D] = param.val().dims();
        let loaded = match self.ckpt.read_f32(&name) {
            Ok((values, found)) if found == shape => values,
            Ok((_, found)) => {
                self.error = Some(Error::Shape {
                    what: format!("checkpoint tensor `{name}`"),
                    expected: shape.to_vec(),
                    found,
                });
                return param;
            }
            Err(e) => {
                self.error = Some(e);
                return param;
            }
        };
        let id = self
            .ids
            .get(&name)
            .and_then(|s| s.parse::<u64>().ok())
            .map(ParamId::from)
            .unwrap_or(param.id);
        let tensor =
            Tensor::<B, D>::from_data(TensorData::new(loaded, shape), &device).require_grad();
        Param::initialized(id, tensor)
    }
}

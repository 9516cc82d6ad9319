//! The trainable part of a model, in one form: each trainable tensor under its module path
//! (`layers.0.self_attn.q_proj.Adapted.adapter.Sorsa.a`) with its shape and its parameter id,
//! so that a restored optimizer state finds its parameters again. The frozen base is never
//! part of it.
//!
//! One visitor collects it and one mapper restores it; a run's checkpoints write it as
//! safetensors ([`save_trainable`], the ids in the file's metadata) and burn-train's `Learner`
//! keeps it as Burn's `Record` ([`TrainableRecord`], through
//! [`Peft`](super::learner::Peft)). (The adapter a finished run saves is HF PEFT's format,
//! `persist`'s job: other names, no ids, for other tools to read.)

use std::collections::{HashMap, HashSet};
use std::path::Path;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::record::Record;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use crate::io::checkpoint::{Checkpoint, OutTensor, write_safetensors};
use crate::linalg::tensor_to_vec;
use crate::{Error, Result};

/// One trainable tensor: flattened, with its shape, so that tensors of any rank share one type.
#[derive(Record)]
pub struct TrainableTensor<B: Backend> {
    /// Module path, e.g. `fc1.Adapted.adapter.Sorsa.a`.
    pub path: String,
    /// The tensor's shape.
    pub shape: Vec<usize>,
    /// The values in row-major order, under the parameter's id.
    pub param: Param<Tensor<B, 1>>,
}

/// The trainable tensors of a model, in module order.
pub type TrainableRecord<B> = Vec<TrainableTensor<B>>;

/// Module paths of the parameters of `model` that require gradients, in module order.
pub fn trainable_paths<B: Backend, M: Module<B>>(model: &M) -> Vec<String> {
    let mut visitor = Paths {
        path: Vec::new(),
        found: Vec::new(),
    };
    model.visit(&mut visitor);
    visitor.found
}

/// The `trainable` parameters of `model` (module paths, as [`trainable_paths`] lists them),
/// detached.
pub fn collect_trainable<B: Backend, M: Module<B>>(
    model: &M,
    trainable: &[String],
) -> TrainableRecord<B> {
    let mut visitor = Collect {
        path: Vec::new(),
        trainable: trainable.iter().map(String::as_str).collect(),
        record: Vec::with_capacity(trainable.len()),
    };
    model.visit(&mut visitor);
    visitor.record
}

/// Restores `record` into the `trainable` parameters of `model`: every one must be there with
/// its shape, and the record must hold nothing else. Errors name `origin` (the file or record
/// the tensors came from). Parameters keep their device and autodiff setting and take the
/// record's ids.
pub fn restore_trainable<B: Backend, M: Module<B>>(
    model: M,
    trainable: &[String],
    record: TrainableRecord<B>,
    origin: &Path,
) -> Result<M> {
    let mut mapper = Restore {
        path: Vec::new(),
        trainable: trainable.iter().map(String::as_str).collect(),
        record: record.into_iter().map(|t| (t.path.clone(), t)).collect(),
        origin,
        error: None,
    };
    let model = model.map(&mut mapper);
    if let Some(e) = mapper.error {
        return Err(e);
    }
    if let Some(path) = mapper.record.keys().min() {
        return Err(Error::BadFile {
            path: origin.to_path_buf(),
            message: format!(
                "tensor `{path}` matches no trainable parameter of this model: a checkpoint of \
                 another model or adapter configuration?"
            ),
        });
    }
    Ok(model)
}

/// Writes every trainable tensor of `model` to a safetensors file (f32; metadata: module path →
/// parameter id). Returns the number of tensors.
pub fn save_trainable<B: Backend, M: Module<B>>(model: &M, path: &Path) -> Result<usize> {
    let record = collect_trainable(model, &trainable_paths(model));
    let mut ids = HashMap::new();
    let tensors: Vec<OutTensor> = record
        .into_iter()
        .map(|t| {
            ids.insert(t.path.clone(), t.param.id.val().to_string());
            OutTensor::F32(t.path, t.shape, tensor_to_vec(t.param.val()))
        })
        .collect();
    let count = tensors.len();
    crate::io::ensure_finite(path, &tensors)?;
    write_safetensors(path, tensors, Some(ids))?;
    Ok(count)
}

/// Restores the tensors (and parameter ids) saved by [`save_trainable`] into `model`, which must
/// be built the same way (base and adapters): every trainable tensor must be in the file with its
/// shape, and the file must hold nothing else.
pub fn load_trainable<B: Backend, M: Module<B>>(model: M, path: &Path) -> Result<M> {
    let checkpoint = Checkpoint::open_files(&[path.to_path_buf()])?;
    let ids = read_ids(path)?;
    let device = first_device(&model);
    let mut record = Vec::new();
    for name in checkpoint.names() {
        let (values, shape) = checkpoint.read_f32(name)?;
        let id = ids
            .get(name)
            .and_then(|s| s.parse::<u64>().ok())
            .map(ParamId::from)
            .ok_or_else(|| Error::BadFile {
                path: path.to_path_buf(),
                message: format!(
                    "tensor `{name}` has no parameter id in the file's metadata: not a \
                     burn-peft checkpoint"
                ),
            })?;
        let len = values.len();
        let tensor = Tensor::<B, 1>::from_data(TensorData::new(values, [len]), &device);
        record.push(TrainableTensor {
            path: name.to_string(),
            shape,
            param: Param::initialized(id, tensor),
        });
    }
    let trainable = trainable_paths(&model);
    restore_trainable(model, &trainable, record, path)
}

fn read_ids(path: &Path) -> Result<HashMap<String, String>> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        cause: source,
    })?;
    let (_, metadata) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| Error::BadFile {
            path: path.to_path_buf(),
            message: format!("{e:?}"),
        })?;
    Ok(metadata.metadata().clone().unwrap_or_default())
}

/// The device of the model's first parameter (the default device for a model without one).
fn first_device<B: Backend, M: Module<B>>(model: &M) -> B::Device {
    model.devices().into_iter().next().unwrap_or_default()
}

struct Paths {
    path: Vec<String>,
    found: Vec<String>,
}

impl<B: Backend> ModuleVisitor<B> for Paths {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if param.is_require_grad() {
            self.found.push(self.path.join("."));
        }
    }
}

struct Collect<'a, B: Backend> {
    path: Vec<String>,
    trainable: HashSet<&'a str>,
    record: TrainableRecord<B>,
}

impl<B: Backend> ModuleVisitor<B> for Collect<'_, B> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let path = self.path.join(".");
        if !self.trainable.contains(path.as_str()) {
            return;
        }
        let tensor = param.val().detach();
        let shape = tensor.dims().to_vec();
        let flat = tensor.reshape([shape.iter().product::<usize>()]);
        self.record.push(TrainableTensor {
            path,
            shape,
            param: Param::initialized(param.id, flat),
        });
    }
}

struct Restore<'a, B: Backend> {
    path: Vec<String>,
    trainable: HashSet<&'a str>,
    record: HashMap<String, TrainableTensor<B>>,
    origin: &'a Path,
    error: Option<Error>,
}

impl<B: Backend> ModuleMapper<B> for Restore<'_, B> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let path = self.path.join(".");
        if self.error.is_some() || !self.trainable.contains(path.as_str()) {
            return param;
        }
        let Some(saved) = self.record.remove(&path) else {
            self.error = Some(Error::BadFile {
                path: self.origin.to_path_buf(),
                message: format!(
                    "trainable tensor `{path}` is missing: a checkpoint of another model or \
                     adapter configuration?"
                ),
            });
            return param;
        };
        let expected: [usize; D] = param.dims();
        if saved.shape != expected {
            self.error = Some(Error::Shape {
                what: format!("tensor `{path}` of {}", self.origin.display()),
                expected: expected.to_vec(),
                found: saved.shape,
            });
            return param;
        }
        let (id, flat, _) = saved.param.consume();
        // Detached: a reshaped tensor is an autodiff node, and parameters must be leaves.
        param.transform_for_load(flat.reshape(expected).detach(), id)
    }
}

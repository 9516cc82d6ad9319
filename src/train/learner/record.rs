//! The record of a [`Peft`](super::Peft) model: its trainable tensors only, each under its module
//! path with its parameter id (so that a restored optimizer state finds its parameters again).
//! Frozen tensors (the base weights) are never part of it, so the Learner's checkpoints stay
//! adapter-sized; a checkpoint is restored into a model built the same way (base + injection).

use std::collections::{HashMap, HashSet};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::record::Record;
use burn::tensor::{Tensor, backend::Backend};

use crate::{Error, Result};

/// One trainable tensor of a [`TrainableRecord`]: flattened, with its shape, so that tensors of
/// any rank share one record type.
#[derive(Record)]
pub struct TrainableTensor<B: Backend> {
    /// Module path, e.g. `fc1.Adapted.adapter.Sorsa.a`.
    pub path: String,
    /// The tensor's shape.
    pub shape: Vec<usize>,
    /// The values in row-major order, under the parameter's id.
    pub param: Param<Tensor<B, 1>>,
}

/// The record of a [`Peft`](super::Peft) model: its trainable tensors, in module order.
pub type TrainableRecord<B> = Vec<TrainableTensor<B>>;

/// Module paths of the parameters of `model` that require gradients, in module order.
pub(super) fn trainable_paths<B: Backend, M: Module<B>>(model: &M) -> Vec<String> {
    let mut visitor = Trainable {
        path: Vec::new(),
        found: Vec::new(),
    };
    model.visit(&mut visitor);
    visitor.found
}

/// The record of the `trainable` parameters of `model`.
pub(super) fn collect<B: Backend, M: Module<B>>(
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
/// its shape, and the record must hold nothing else.
pub(super) fn load<B: Backend, M: Module<B>>(
    model: M,
    trainable: &[String],
    record: TrainableRecord<B>,
) -> Result<M> {
    let mut mapper = Load {
        path: Vec::new(),
        trainable: trainable.iter().map(String::as_str).collect(),
        record: record.into_iter().map(|t| (t.path.clone(), t)).collect(),
        error: None,
    };
    let model = model.map(&mut mapper);
    if let Some(e) = mapper.error {
        return Err(e);
    }
    if let Some(path) = mapper.record.keys().min() {
        return Err(Error::invalid(
            "record",
            path,
            "matches no trainable tensor of this model: a checkpoint of another model or adapter \
             configuration?",
        ));
    }
    Ok(model)
}

struct Trainable {
    path: Vec<String>,
    found: Vec<String>,
}

impl<B: Backend> ModuleVisitor<B> for Trainable {
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

struct Load<'a, B: Backend> {
    path: Vec<String>,
    trainable: HashSet<&'a str>,
    record: HashMap<String, TrainableTensor<B>>,
    error: Option<Error>,
}

impl<B: Backend> ModuleMapper<B> for Load<'_, B> {
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
            self.error = Some(Error::invalid(
                "record",
                &path,
                "this trainable tensor is missing: a checkpoint of another model or adapter \
                 configuration?",
            ));
            return param;
        };
        let expected: [usize; D] = param.dims();
        if saved.shape != expected {
            self.error = Some(Error::Shape {
                what: format!("record tensor `{path}`"),
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

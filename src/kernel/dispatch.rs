//! What the CPU kernels share: the backends they run on and the run-time dispatch to them.
//!
//! The kernels follow Burn's backend-extension pattern (an op implemented for the concrete
//! backend and for `Autodiff<_>` with its backward, the composite ops as the generic fallback),
//! dispatched on the backend's type at run time rather than through a trait bound: a bound
//! would have to be carried by every generic function between the CLI and the model, for every
//! backend.

use std::any::{Any, TypeId};

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::flex::FlexTensor;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData, TensorPrimitive};

/// burn-flex under autodiff, as training builds it.
pub type FlexAutodiff = burn::backend::Autodiff<Flex, NoCheckpointing>;

/// Which of the kernels' backends `B` is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelBackend {
    Flex,
    FlexAutodiff,
}

impl KernelBackend {
    /// `None` for every backend without CPU kernels (the composite ops run there).
    pub fn of<B: Backend>() -> Option<Self> {
        if TypeId::of::<B>() == TypeId::of::<Flex>() {
            Some(Self::Flex)
        } else if TypeId::of::<B>() == TypeId::of::<FlexAutodiff>() {
            Some(Self::FlexAutodiff)
        } else {
            None
        }
    }
}

/// `value` as the type it is (checked by the caller's `TypeId` comparison).
pub fn recast<From: 'static, To: 'static>(value: From) -> To {
    *(Box::new(value) as Box<dyn Any>)
        .downcast::<To>()
        .expect("the caller compared the types")
}

/// A tensor's values in row-major order (a copy only where it is not contiguous).
pub fn host<const D: usize>(t: Tensor<Flex, D>) -> Vec<f32> {
    t.into_data()
        .into_vec::<f32>()
        .expect("the kernels run on f32")
}

/// `f` of a tensor's values in row-major order, read in place when it is contiguous (copied
/// once otherwise).
pub fn with_values<const D: usize, R>(t: &Tensor<Flex, D>, f: impl FnOnce(&[f32]) -> R) -> R {
    let primitive: FlexTensor = t.clone().into_primitive().tensor();
    match primitive.as_slice::<f32>() {
        Some(values) => f(values),
        None => f(primitive
            .to_contiguous()
            .as_slice::<f32>()
            .expect("contiguous after to_contiguous")),
    }
}

pub fn device_tensor<const D: usize>(
    values: Vec<f32>,
    shape: [usize; D],
    device: &burn::tensor::Device<Flex>,
) -> Tensor<Flex, D> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// An inner-backend primitive as a tensor.
pub fn inner<const D: usize>(p: burn::tensor::ops::FloatTensor<Flex>) -> Tensor<Flex, D> {
    Tensor::from_primitive(TensorPrimitive::Float(p))
}

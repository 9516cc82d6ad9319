//! burn-peft: parameter-efficient fine-tuning with SVD-based adapters (SORSA, LoRA-FA, LoTR,
//! and the LoRA and PiSSA baselines) on [Burn](https://burn.dev).
//!
//! The crate is both the `burn-peft` command line (HF checkpoints in, PEFT adapters out) and a
//! library for Burn users. It is organised one concept per module:
//! - [`peft`]: the front door for a Burn model of your own: inject adapters, train them with
//!   burn-train's `Learner`, save them in HF PEFT's layout.
//! - [`adapter`]: the adapted linear layer and the five methods, their initialisation, merging,
//!   the SORSA regularizer and parameter accounting.
//! - [`model`]: the adapter slot [`PeftLinear`](model::PeftLinear) and the [`PeftModel`](model::PeftModel)
//!   trait, HF Llama-family decoders and BERT/RoBERTa encoders built on them, injection and
//!   merging.
//! - [`train`]: one training loop for every task (causal LM, classification), the step rule
//!   (global-norm clipping, regularizer), the run folder, and the burn-train building block
//!   ([`train::learner`]).
//! - [`persist`]: adapters on disk in HF PEFT's folder layout, saved modules
//!   (`modules_to_save`), export as a plain LoRA, and an adapter folder applied to a loaded model.
//! - [`io`]: the layer below the models: safetensors checkpoints, config files, atomic writes.
//! - [`data`], [`eval`], [`analysis`]: datasets, benchmarks, spectral analysis.
//! - [`linalg`]: host-side linear algebra (thin / randomized SVD, QR) with `faer`, and the single
//!   place where Burn tensors are converted to and from host matrices.
//! - [`backend`]: the only module that names concrete Burn backends.
//!
//! # A Burn model of your own
//!
//! Hold a [`PeftLinear`](model::PeftLinear) wherever a layer may get an adapter, list the slots
//! in a [`PeftModel`](model::PeftModel) implementation, and [`adapt`](peft::adapt) the model:
//!
//! ```
//! use burn::module::Module;
//! use burn::nn::LinearConfig;
//! use burn::tensor::{Distribution, Tensor, activation::relu, backend::Backend};
//! use burn_peft::peft::{AdapterConfig, Method, PeftLinear, PeftModel, SharedFactors};
//!
//! #[derive(Module, Debug)]
//! struct Mlp<B: Backend> {
//!     hidden: PeftLinear<B>,
//!     out: PeftLinear<B>,
//!     shared: SharedFactors<B>,
//! }
//!
//! impl<B: Backend> Mlp<B> {
//!     fn new(device: &B::Device) -> Self {
//!         Self {
//!             hidden: PeftLinear::Plain(LinearConfig::new(8, 16).init(device)),
//!             out: PeftLinear::Plain(LinearConfig::new(16, 3).init(device)),
//!             shared: SharedFactors::default(),
//!         }
//!     }
//!
//!     fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
//!         let h = relu(self.hidden.forward(x, &self.shared));
//!         self.out.forward(h, &self.shared)
//!     }
//! }
//!
//! impl<B: Backend> PeftModel<B> for Mlp<B> {
//!     fn linears(&self) -> Vec<(String, &PeftLinear<B>)> {
//!         vec![("hidden".into(), &self.hidden), ("out".into(), &self.out)]
//!     }
//!     fn linears_mut(&mut self) -> Vec<(String, &mut PeftLinear<B>)> {
//!         vec![("hidden".into(), &mut self.hidden), ("out".into(), &mut self.out)]
//!     }
//!     fn shared(&self) -> &SharedFactors<B> {
//!         &self.shared
//!     }
//!     fn shared_mut(&mut self) -> &mut SharedFactors<B> {
//!         &mut self.shared
//!     }
//! }
//!
//! # fn main() -> burn_peft::Result<()> {
//! type B = burn_peft::backend::Train<burn_peft::backend::Cpu>;
//! let device = Default::default();
//! let model = Mlp::<B>::new(&device);
//! let x = Tensor::<B, 2>::random([4, 8], Distribution::Default, &device);
//! let before = model.forward(x.clone());
//!
//! // SORSA on every slot (a model of your own defaults to `all-linear` targets).
//! let adapted = burn_peft::peft::adapt(model, &AdapterConfig::new(Method::Sorsa, 2))?;
//! assert_eq!(adapted.layers, ["hidden", "out"]);
//!
//! // The frozen residual plus the adapter is the original layer, so outputs are unchanged ...
//! let after = adapted.model.forward(x);
//! after.into_data().assert_approx_eq::<f32>(&before.into_data(), Default::default());
//!
//! // ... and only the adapters train: A [8, 2], S [2], B [2, 16] and A [16, 2], S [2], B [2, 3].
//! let report = burn_peft::adapter::ParamReport::of(&adapted.model);
//! assert_eq!(report.trainable(), 16 + 2 + 32 + 32 + 2 + 6);
//!
//! // The adapters in HF PEFT's layout, and back onto the original base model.
//! let dir = std::env::temp_dir().join(format!("burn-peft-doc-{}", std::process::id()));
//! let config = AdapterConfig::new(Method::Sorsa, 2);
//! burn_peft::peft::save_adapter(&adapted.model, &config, &adapted.initial, "my-mlp", &dir)?;
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok(())
//! # }
//! ```
//!
//! To train, wrap the model in [`Peft`](train::learner::Peft) and hand it to burn-train's
//! `Learner`: `examples/learner.rs` trains a model of its own with SORSA, with burn-train's
//! dashboard, and reloads the saved adapter (`cargo run --example learner`).

pub mod adapter;
pub mod analysis;
pub mod backend;
pub mod data;
pub mod distributed;
pub mod error;
pub mod eval;
pub mod io;
pub mod kernel;
pub mod linalg;
pub mod model;
pub mod peft;
pub mod persist;
pub mod train;

pub use error::{Error, Result};

//! burn-peft as a library: adapters on a model of the user's own, trained by burn-train's
//! `Learner` through `Peft`. The Learner's step must be the CLI trainer's step (same
//! regularizer value, same gradients after clipping and regularization), and its checkpoints
//! must hold the trainable tensors only.

use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::InMemDataset;
use burn::module::{AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param};
use burn::nn::LinearConfig;
use burn::nn::loss::{MseLoss, Reduction};
use burn::optim::{GradientsParams, MultiGradientsParams, Optimizer};
use burn::record::{BinFileRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::activation::relu;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Device, Tensor, TensorData};
use burn::train::checkpoint::KeepLastNCheckpoints;
use burn::train::logger::MetricLogger;
use burn::train::metric::store::{EpochSummary, MetricsUpdate, Split};
use burn::train::metric::{LossMetric, MetricDefinition, MetricId, NumericEntry};
use burn::train::{
    InferenceStep, Learner, RegressionOutput, SupervisedTraining, TrainOutput, TrainStep,
};

use burn_peft::adapter::{AdaptedLinear, HasAdapters, ParamReport, Targets};
use burn_peft::backend::{Cpu, Train};
use burn_peft::peft::{
    AdapterConfig, LineRenderer, Method, Peft, PeftLinear, PeftModel, PeftStep, RegularizerMetric,
    RegularizerMode, SharedFactors, adapt,
};
use burn_peft::train::learner::TrainableRecord;

type B = Train<Cpu>;

// ---------------------------------------------------------------------------------------------
// A model of the user's own.

#[derive(Module, Debug)]
struct Mlp<B: Backend> {
    hidden: PeftLinear<B>,
    head: PeftLinear<B>,
    shared: SharedFactors<B>,
}

impl<B: Backend> Mlp<B> {
    fn new(device: &B::Device) -> Self {
        Self {
            hidden: PeftLinear::Plain(LinearConfig::new(8, 6).init(device)),
            head: PeftLinear::Plain(LinearConfig::new(6, 3).init(device)),
            shared: SharedFactors::default(),
        }
    }

    fn regress(&self, batch: Batch<B>) -> RegressionOutput<B> {
        let hidden = relu(self.hidden.forward(batch.x, &self.shared));
        let output = self.head.forward(hidden, &self.shared);
        let loss = MseLoss::new().forward(output.clone(), batch.y.clone(), Reduction::Mean);
        RegressionOutput::new(loss, output, batch.y)
    }
}

impl<B: Backend> PeftModel<B> for Mlp<B> {
    fn linears(&self) -> Vec<(String, &PeftLinear<B>)> {
        vec![("hidden".into(), &self.hidden), ("head".into(), &self.head)]
    }
    fn linears_mut(&mut self) -> Vec<(String, &mut PeftLinear<B>)> {
        vec![
            ("hidden".into(), &mut self.hidden),
            ("head".into(), &mut self.head),
        ]
    }
    fn shared(&self) -> &SharedFactors<B> {
        &self.shared
    }
    fn shared_mut(&mut self) -> &mut SharedFactors<B> {
        &mut self.shared
    }
}

/// What the CLI's step rule walks (a user's own training loop implements it the same way).
impl<B: Backend> HasAdapters<B> for Mlp<B> {
    fn adapted_layers(&self) -> Vec<&AdaptedLinear<B>> {
        burn_peft::model::inject::adapted_layers(self.linears())
    }
}

impl<B: AutodiffBackend> TrainStep for Mlp<B> {
    type Input = Batch<B>;
    type Output = RegressionOutput<B>;

    fn step(&self, batch: Batch<B>) -> TrainOutput<RegressionOutput<B>> {
        let output = self.regress(batch);
        TrainOutput::new(self, output.loss.backward(), output)
    }
}

impl<B: Backend> InferenceStep for Mlp<B> {
    type Input = Batch<B>;
    type Output = RegressionOutput<B>;

    fn step(&self, batch: Batch<B>) -> RegressionOutput<B> {
        self.regress(batch)
    }
}

#[derive(Clone, Debug)]
struct Batch<B: Backend> {
    x: Tensor<B, 2>,
    y: Tensor<B, 2>,
}

#[derive(Clone, Debug)]
struct Row {
    x: [f32; 8],
    y: [f32; 3],
}

#[derive(Clone)]
struct RowBatcher;

impl<B: Backend> Batcher<B, Row, Batch<B>> for RowBatcher {
    fn batch(&self, rows: Vec<Row>, device: &B::Device) -> Batch<B> {
        let n = rows.len();
        let x: Vec<f32> = rows.iter().flat_map(|r| r.x).collect();
        let y: Vec<f32> = rows.iter().flat_map(|r| r.y).collect();
        Batch {
            x: Tensor::from_data(TensorData::new(x, [n, 8]), device),
            y: Tensor::from_data(TensorData::new(y, [n, 3]), device),
        }
    }
}

/// Deterministic rows (no RNG: both paths must see exactly the same batch).
fn rows(n: usize) -> Vec<Row> {
    (0..n)
        .map(|i| Row {
            x: std::array::from_fn(|j| ((i * 8 + j) as f32 * 0.37).sin()),
            y: std::array::from_fn(|j| ((i * 3 + j) as f32 * 0.91).cos()),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Instruments: an optimizer that records the gradients it is given (then takes a plain SGD
// step), and a metric logger that records what the Learner logs.

type Seen = Arc<Mutex<Vec<BTreeMap<u64, Vec<f32>>>>>;

#[derive(Clone, Default)]
struct Capture {
    seen: Seen,
}

impl<B: AutodiffBackend, M: AutodiffModule<B>> Optimizer<M, B> for Capture {
    type Record = ();

    fn step(&mut self, lr: f64, module: M, grads: GradientsParams) -> M {
        let mut read = ReadGrads::<B> {
            grads: &grads,
            out: BTreeMap::new(),
            _b: PhantomData,
        };
        module.visit(&mut read);
        self.seen.lock().unwrap().push(read.out);
        module.map(&mut Sgd::<B> {
            grads,
            lr,
            _b: PhantomData,
        })
    }

    fn step_multi(&mut self, _: f64, _: M, _: MultiGradientsParams) -> M {
        unreachable!("these tests train on one device")
    }

    fn to_record(&self) {}

    fn load_record(self, _: ()) -> Self {
        self
    }
}

struct ReadGrads<'a, B: AutodiffBackend> {
    grads: &'a GradientsParams,
    out: BTreeMap<u64, Vec<f32>>,
    _b: PhantomData<B>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for ReadGrads<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(grad) = self.grads.get::<B::InnerBackend, D>(param.id) {
            self.out
                .insert(param.id.val(), grad.into_data().to_vec().unwrap());
        }
    }
}

struct Sgd<B: AutodiffBackend> {
    grads: GradientsParams,
    lr: f64,
    _b: PhantomData<B>,
}

impl<B: AutodiffBackend> ModuleMapper<B> for Sgd<B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let Some(grad) = self.grads.remove::<B::InnerBackend, D>(param.id) else {
            return param;
        };
        let lr = self.lr;
        param.map(|t| Tensor::from_inner(t.inner() - grad.mul_scalar(lr)).require_grad())
    }
}

type Logged = Arc<Mutex<Vec<(String, f64)>>>;

#[derive(Default)]
struct CaptureLogger {
    names: HashMap<MetricId, String>,
    logged: Logged,
}

impl MetricLogger for CaptureLogger {
    fn log(&mut self, update: MetricsUpdate, _: usize, split: &Split) {
        if !matches!(split, Split::Train) {
            return;
        }
        for numeric in update.entries_numeric {
            let name = self.names.get(&numeric.entry.metric_id).cloned();
            let value = numeric.numeric_entry.current();
            self.logged
                .lock()
                .unwrap()
                .push((name.unwrap_or_default(), value));
        }
    }

    fn read_numeric(&mut self, _: &str, _: usize, _: &Split) -> Result<Vec<NumericEntry>, String> {
        Ok(Vec::new())
    }

    fn log_metric_definition(&mut self, definition: MetricDefinition) {
        self.names.insert(definition.metric_id, definition.name);
    }

    fn log_epoch_summary(&mut self, _: EpochSummary) {}
}

// ---------------------------------------------------------------------------------------------

const LR: f64 = 0.1;
const MAX_GRAD_NORM: f64 = 0.05;

fn config() -> AdapterConfig {
    AdapterConfig::new(Method::Sorsa, 2).with_gamma(0.5)
}

/// The adapted model, with its SORSA factors pushed off orthonormality (at initialisation
/// `L_reg` is rounding noise and its gradient is defined as 0, which would test nothing).
fn adapted_model(device: &Device<B>) -> Mlp<B> {
    B::seed(device, 14);
    let adapted = adapt(Mlp::<B>::new(device), &config()).unwrap();
    adapted.model.map(&mut Stretch)
}

struct Stretch;

impl ModuleMapper<B> for Stretch {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        if !param.is_require_grad() {
            return param;
        }
        param.map(|t| Tensor::from_inner(t.inner().mul_scalar(1.25)).require_grad())
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("burn-peft-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Trains `model` for one optimizer step (one batch, one epoch) with burn-train's Learner.
fn learner_step(model: Mlp<B>, step: PeftStep, dir: &PathBuf) -> (Mlp<B>, Capture, Logged) {
    let capture = Capture::default();
    let logger = CaptureLogger::default();
    let logged = logger.logged.clone();
    let peft = Peft::new(model, step).unwrap();
    let learner = Learner::new(peft, capture.clone(), LR);
    let train = DataLoaderBuilder::<B, _, _>::new(RowBatcher)
        .batch_size(16)
        .build(InMemDataset::new(rows(16)));
    let valid = DataLoaderBuilder::<Cpu, _, _>::new(RowBatcher)
        .batch_size(16)
        .build(InMemDataset::new(rows(16)));
    let result = SupervisedTraining::new(dir, train, valid)
        .metric_train_numeric(LossMetric::new())
        .metric_train_numeric(RegularizerMetric::new())
        .with_metric_logger(logger)
        .with_file_checkpointer(BinFileRecorder::<FullPrecisionSettings>::new())
        .with_checkpointing_strategy(KeepLastNCheckpoints::new(1))
        .with_application_logger(None)
        .renderer(LineRenderer::new())
        .num_epochs(1)
        .launch(learner);
    let trained = Mlp::<B>::from_inner(result.model.into_inner());
    (trained, capture, logged)
}

#[test]
fn learner_step_equals_cli_step_reference_mode() {
    learner_step_equals_cli_step(RegularizerMode::Reference);
}

#[test]
fn learner_step_equals_cli_step_separate_mode() {
    learner_step_equals_cli_step(RegularizerMode::Separate);
}

/// One optimizer step through burn-train's Learner and one through the CLI trainer's step rule,
/// from the same parameters on the same batch: the same regularizer value, the same gradients
/// handed to the optimizer, the same parameters after the step.
fn learner_step_equals_cli_step(mode: RegularizerMode) {
    let device = Default::default();
    let model = adapted_model(&device);
    let mut config = config();
    config.regularizer_mode = mode;
    let step = PeftStep::new(&config, LR, Some(MAX_GRAD_NORM), 1);

    // The CLI trainer's step on the batch.
    let batch = Batcher::<B, _, _>::batch(&RowBatcher, rows(16), &device);
    let loss = model.regress(batch).loss;
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let mut cli = Capture::default();
    let (cli_model, report) = step.apply(model.clone(), &mut cli, grads, LR).unwrap();
    assert!(report.regularizer > 1e-2, "L_reg = {}", report.regularizer);
    assert!(
        report.grad_norm > MAX_GRAD_NORM,
        "clipping must be active for this test: norm {}",
        report.grad_norm
    );

    // The Learner's step on the same parameters and batch.
    let dir = scratch(&format!("learner-step-{mode:?}"));
    let (learner_model, learner, logged) = learner_step(model, step, &dir);

    let logged = logged.lock().unwrap();
    let regularizer: Vec<f64> = (logged.iter())
        .filter(|(name, _)| name == "Regularizer")
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(regularizer.len(), 1, "logged: {logged:?}");
    assert!(
        (regularizer[0] - report.regularizer).abs() <= 1e-6,
        "regularizer metric {} vs CLI step {}",
        regularizer[0],
        report.regularizer
    );

    let (cli, learner) = (cli.seen.lock().unwrap(), learner.seen.lock().unwrap());
    assert_eq!(
        (cli.len(), learner.len()),
        (1, 1),
        "one optimizer step each"
    );
    let (cli, learner) = (&cli[0], &learner[0]);
    assert_eq!(cli.len(), 6, "a, s, b of two SORSA layers get gradients");
    assert_eq!(
        cli.keys().collect::<Vec<_>>(),
        learner.keys().collect::<Vec<_>>()
    );
    for (id, expected) in cli {
        let worst = max_abs_diff(expected, &learner[id]);
        assert!(worst <= 1e-6, "param {id}: gradients differ by {worst}");
    }

    let (mut want, mut got) = (Values::default(), Values::default());
    cli_model.visit(&mut want);
    learner_model.visit(&mut got);
    assert_eq!(want.0.len(), got.0.len());
    for ((id, expected), (found_id, found)) in want.0.iter().zip(&got.0) {
        assert_eq!(id, found_id);
        let worst = max_abs_diff(expected, found);
        assert!(
            worst <= 1e-6,
            "param {id}: values after the step differ by {worst}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    (a.iter().zip(b))
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn learner_checkpoint_holds_only_trainable_tensors_and_restores_them() {
    let device = Default::default();
    let model = adapted_model(&device);
    let accounting = ParamReport::of(&model);
    let step = PeftStep::new(&config(), LR, Some(MAX_GRAD_NORM), 1);
    let dir = scratch("learner-checkpoint");
    let (trained, _, _) = learner_step(model.clone(), step.clone(), &dir);

    let recorder = BinFileRecorder::<FullPrecisionSettings>::new();
    let record: TrainableRecord<B> = recorder
        .load(dir.join("checkpoint").join("model-1"), &device)
        .unwrap();
    let saved: Vec<&str> = record.iter().map(|t| t.path.as_str()).collect();
    let trainable: Vec<&str> = (accounting.entries.iter())
        .filter(|e| e.trainable)
        .map(|e| e.path.as_str())
        .collect();
    let frozen: Vec<&str> = (accounting.entries.iter())
        .filter(|e| !e.trainable)
        .map(|e| e.path.as_str())
        .collect();
    assert_eq!(saved, trainable);
    assert_eq!(
        frozen.len(),
        4,
        "two base weights and two biases: {frozen:?}"
    );
    assert!(saved.iter().all(|p| !frozen.contains(p)));
    let values: usize = record
        .iter()
        .map(|t| t.shape.iter().product::<usize>())
        .sum();
    assert_eq!(values, accounting.trainable());

    // Restoring the checkpoint into a model built the same way gives the trained parameters
    // (with their ids, which the optimizer state is keyed by).
    let restored = Peft::new(model, step)
        .unwrap()
        .try_load_record(record)
        .unwrap()
        .into_inner();
    let (mut want, mut got) = (Values::default(), Values::default());
    trained.visit(&mut want);
    restored.visit(&mut got);
    assert_eq!(want.0.len(), 10);
    assert_eq!(want.0, got.0);
    std::fs::remove_dir_all(&dir).ok();
}

/// Every float parameter as (id, values).
#[derive(Default)]
struct Values(Vec<(u64, Vec<f32>)>);

impl ModuleVisitor<B> for Values {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.0
            .push((param.id.val(), param.val().into_data().to_vec().unwrap()));
    }
}

#[test]
fn a_record_of_another_adapter_is_an_error_naming_the_tensor() {
    let device = Default::default();
    let model = adapted_model(&device);
    let step = PeftStep::new(&config(), LR, None, 1);
    let rank3 = adapt(
        Mlp::<B>::new(&device),
        &AdapterConfig::new(Method::Sorsa, 3),
    )
    .unwrap();
    let other = Peft::new(rank3.model, step.clone()).unwrap().into_record();
    let err = Peft::new(model.clone(), step.clone())
        .unwrap()
        .try_load_record(other)
        .unwrap_err()
        .to_string();
    assert!(err.contains("hidden.Adapted.adapter.Sorsa.a"), "{err}");
    assert!(err.contains("[8, 2]") && err.contains("[8, 3]"), "{err}");

    let mut partial = Peft::new(model.clone(), step.clone())
        .unwrap()
        .into_record();
    partial.retain(|t| !t.path.ends_with("Sorsa.s"));
    let err = Peft::new(model, step)
        .unwrap()
        .try_load_record(partial)
        .unwrap_err()
        .to_string();
    assert!(err.contains("Sorsa.s") && err.contains("missing"), "{err}");
}

#[test]
fn adapt_selects_slots_by_name_and_lists_them_when_nothing_matches() {
    let device = Default::default();
    let mut head_only = config();
    head_only.targets = Some(Targets::Names(vec!["head".into()]));
    let adapted = adapt(Mlp::<B>::new(&device), &head_only).unwrap();
    assert_eq!(adapted.layers, ["head"]);
    assert!(matches!(adapted.model.hidden, PeftLinear::Plain(_)));
    let report = ParamReport::of(&adapted.model);
    assert_eq!(report.trainable(), 6 * 2 + 2 + 2 * 3, "head's A, S, B only");

    let mut nothing = config();
    nothing.targets = Some(Targets::Names(vec!["q_proj".into()]));
    let err = adapt(Mlp::<B>::new(&device), &nothing)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("q_proj") && err.contains("head") && err.contains("hidden"),
        "{err}"
    );
}

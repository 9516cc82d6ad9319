//! burn-peft on a Burn model of your own, trained by burn-train's `Learner`.
//!
//! A small MLP classifier (yours: any Burn module with `PeftLinear` slots) gets SORSA adapters,
//! burn-train's `Learner` trains them on a synthetic 4-class task (its TUI dashboard when stdout
//! is a terminal, plain lines otherwise), the adapters are saved in HF PEFT's folder layout, and
//! burn-peft's loader puts them back onto the base model with the same outputs.
//!
//! ```text
//! cargo run --example learner [-- OUT_DIR]        # default OUT_DIR: runs/learner-example
//! ```
//!
//! Writes `OUT_DIR/base.mpk` (the base model, standing in for your trained weights),
//! `OUT_DIR/checkpoint/` (the Learner's checkpoints: adapter tensors only), `OUT_DIR/adapter/`
//! (`adapter_config.json`, `adapter_model.safetensors`) and burn-train's logs. Exits non-zero
//! when the held-out loss falls less than 20 % or the reloaded adapter disagrees.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::InMemDataset;
use burn::module::{AutodiffModule, Module};
use burn::nn::LinearConfig;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::AdamWConfig;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use burn::tensor::activation::relu;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use burn::train::metric::{AccuracyMetric, LossMetric};
use burn::train::{
    ClassificationOutput, InferenceStep, Learner, SupervisedTraining, TrainOutput, TrainStep,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use burn_peft::backend::{Cpu, Train};
use burn_peft::peft::{
    AdapterConfig, LineRenderer, Method, Peft, PeftLinear, PeftModel, PeftStep, RegularizerMetric,
    SharedFactors, adapt, load_adapter, save_adapter,
};

const INPUTS: usize = 8;
const HIDDEN: usize = 32;
const CLASSES: usize = 4;
const RANK: usize = 4;
const LR: f64 = 1e-2;
/// SORSA's γ: the reference weighs ∇L_reg by γ/η₀ (4e-4 / 3e-5 ≈ 13 in the paper's runs); 10 here.
const GAMMA: f64 = 0.1;
const EPOCHS: usize = 8;
const BATCH: usize = 32;
const SEED: u64 = 14;

// ---------------------------------------------------------------------------------------------
// The user's model: plain Burn, with `PeftLinear` where layers may be adapted.

#[derive(Module, Debug)]
struct Classifier<B: Backend> {
    hidden: Vec<PeftLinear<B>>,
    head: PeftLinear<B>,
    shared: SharedFactors<B>,
}

impl<B: Backend> Classifier<B> {
    fn new(device: &B::Device) -> Self {
        let linear = |i, o| PeftLinear::Plain(LinearConfig::new(i, o).init(device));
        Self {
            hidden: vec![linear(INPUTS, HIDDEN), linear(HIDDEN, HIDDEN)],
            head: linear(HIDDEN, CLASSES),
            shared: SharedFactors::default(),
        }
    }

    fn forward(&self, mut x: Tensor<B, 2>) -> Tensor<B, 2> {
        for layer in &self.hidden {
            x = relu(layer.forward(x, &self.shared));
        }
        self.head.forward(x, &self.shared)
    }

    fn classify(&self, batch: ClassBatch<B>) -> ClassificationOutput<B> {
        let logits = self.forward(batch.inputs);
        let loss = CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits.clone(), batch.targets.clone());
        ClassificationOutput::new(loss, logits, batch.targets)
    }
}

/// The slots, under the names targets match and saved adapters use.
impl<B: Backend> PeftModel<B> for Classifier<B> {
    fn linears(&self) -> Vec<(String, &PeftLinear<B>)> {
        let mut out: Vec<_> = (self.hidden.iter().enumerate())
            .map(|(i, slot)| (format!("hidden.{i}"), slot))
            .collect();
        out.push(("head".into(), &self.head));
        out
    }
    fn linears_mut(&mut self) -> Vec<(String, &mut PeftLinear<B>)> {
        let mut out: Vec<_> = (self.hidden.iter_mut().enumerate())
            .map(|(i, slot)| (format!("hidden.{i}"), slot))
            .collect();
        out.push(("head".into(), &mut self.head));
        out
    }
    fn shared(&self) -> &SharedFactors<B> {
        &self.shared
    }
    fn shared_mut(&mut self) -> &mut SharedFactors<B> {
        &mut self.shared
    }
}

impl<B: AutodiffBackend> TrainStep for Classifier<B> {
    type Input = ClassBatch<B>;
    type Output = ClassificationOutput<B>;

    fn step(&self, batch: ClassBatch<B>) -> TrainOutput<ClassificationOutput<B>> {
        let output = self.classify(batch);
        TrainOutput::new(self, output.loss.backward(), output)
    }
}

impl<B: Backend> InferenceStep for Classifier<B> {
    type Input = ClassBatch<B>;
    type Output = ClassificationOutput<B>;

    fn step(&self, batch: ClassBatch<B>) -> ClassificationOutput<B> {
        self.classify(batch)
    }
}

// ---------------------------------------------------------------------------------------------
// A synthetic task: the class of x is the largest coordinate of T x for a fixed random T.

#[derive(Clone, Debug)]
struct Example {
    x: [f32; INPUTS],
    class: i64,
}

fn task(count: usize, seed: u64) -> Vec<Example> {
    let mut teacher_rng = StdRng::seed_from_u64(SEED);
    let teacher: Vec<[f32; INPUTS]> = (0..CLASSES)
        .map(|_| std::array::from_fn(|_| teacher_rng.random_range(-1.0..1.0)))
        .collect();
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            let x: [f32; INPUTS] = std::array::from_fn(|_| rng.random_range(-2.0..2.0));
            let score = |t: &[f32; INPUTS]| t.iter().zip(&x).map(|(a, b)| a * b).sum::<f32>();
            let class = (0..CLASSES)
                .max_by(|&a, &b| score(&teacher[a]).total_cmp(&score(&teacher[b])))
                .unwrap_or(0) as i64;
            Example { x, class }
        })
        .collect()
}

#[derive(Clone, Debug)]
struct ClassBatch<B: Backend> {
    inputs: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
}

#[derive(Clone, Default)]
struct ClassBatcher;

impl<B: Backend> Batcher<B, Example, ClassBatch<B>> for ClassBatcher {
    fn batch(&self, items: Vec<Example>, device: &B::Device) -> ClassBatch<B> {
        let n = items.len();
        let x: Vec<f32> = items.iter().flat_map(|e| e.x).collect();
        let classes: Vec<i64> = items.iter().map(|e| e.class).collect();
        ClassBatch {
            inputs: Tensor::from_data(TensorData::new(x, [n, INPUTS]), device),
            targets: Tensor::from_data(TensorData::new(classes, [n]), device),
        }
    }
}

/// Mean cross-entropy of `model` over `examples`.
fn held_out_loss<B: Backend>(
    model: &Classifier<B>,
    examples: &[Example],
    device: &B::Device,
) -> f64 {
    let batch = Batcher::<B, _, _>::batch(&ClassBatcher, examples.to_vec(), device);
    model.classify(batch).loss.into_scalar().elem()
}

// ---------------------------------------------------------------------------------------------

type B = Train<Cpu>;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("runs/learner-example"));
    prepare(&out)?;
    let device = Default::default();
    B::seed(&device, SEED);
    let (train_set, valid_set) = (task(1024, 1), task(256, 2));

    // Your trained model, loaded from disk (here: a freshly initialised one, saved first; not a
    // clone of it, since Burn initialises parameters lazily and each clone of an uninitialised
    // module draws its own values). Full precision, so that the base the adapters are reloaded
    // onto is the one they trained on.
    let recorder = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
    Classifier::<B>::new(&device).save_file(out.join("base"), &recorder)?;
    let base = Classifier::<B>::new(&device).load_file(out.join("base"), &recorder, &device)?;

    // SORSA on every slot; only the adapters train.
    let config = AdapterConfig::new(Method::Sorsa, RANK).with_gamma(GAMMA);
    let adapted = adapt(base, &config)?;
    let before = held_out_loss(&adapted.model.valid(), &valid_set, &device);
    println!(
        "SORSA rank {RANK} on {}; {}",
        adapted.layers.join(", "),
        burn_peft::adapter::ParamReport::of(&adapted.model)
    );

    // burn-train's Learner with the PEFT step rule: global-norm clipping at 1.0, then
    // (γ/η₀)·∇L_reg, one AdamW step.
    let step = PeftStep::new(&config, LR, Some(1.0), 1);
    let model = Peft::new(adapted.model, step)?;
    let learner = Learner::new(model, AdamWConfig::new().with_weight_decay(0.0).init(), LR);
    let train_loader = DataLoaderBuilder::<B, _, _>::new(ClassBatcher)
        .batch_size(BATCH)
        .shuffle(SEED)
        .build(InMemDataset::new(train_set));
    let valid_loader = DataLoaderBuilder::<Cpu, _, _>::new(ClassBatcher)
        .batch_size(BATCH)
        .build(InMemDataset::new(valid_set.clone()));
    let mut training = SupervisedTraining::new(&out, train_loader, valid_loader)
        .metrics((LossMetric::new(), AccuracyMetric::new()))
        .metric_train_numeric(RegularizerMetric::new())
        .with_file_checkpointer(recorder.clone())
        .num_epochs(EPOCHS)
        .summary();
    if !std::io::stdout().is_terminal() {
        training = training.renderer(LineRenderer::new());
    }
    let trained = training.launch(learner).model.into_inner();

    // Outputs: the adapter in PEFT's layout (from the autodiff-side model, like `initial`).
    let after = held_out_loss(&trained, &valid_set, &device);
    let adapter_dir = out.join("adapter");
    let trained_ad = Classifier::<B>::from_inner(trained.clone());
    save_adapter(
        &trained_ad,
        &config,
        &adapted.initial,
        "learner-example base.mpk",
        &adapter_dir,
    )?;

    // Read it back the way a user would: the original base from disk, then the adapter.
    let base = Classifier::<Cpu>::new(&device).load_file(out.join("base"), &recorder, &device)?;
    let (reloaded, _, _) = load_adapter(base, &adapter_dir, false)?;
    let batch = Batcher::<Cpu, _, _>::batch(&ClassBatcher, valid_set, &device);
    let diff: f32 = (trained.forward(batch.inputs.clone()) - reloaded.forward(batch.inputs))
        .abs()
        .max()
        .into_scalar()
        .elem();

    let checkpoint = newest_file(&out.join("checkpoint"), "model-")?;
    let fell = 1.0 - after / before;
    println!(
        "held-out loss {before:.4} -> {after:.4} ({:.0} % lower)",
        100.0 * fell
    );
    println!(
        "checkpoint {} ({} bytes: adapter tensors only; the base is {} bytes)",
        checkpoint.display(),
        std::fs::metadata(&checkpoint)?.len(),
        std::fs::metadata(out.join("base.mpk"))?.len()
    );
    println!(
        "adapter written to {}; reloaded onto base.mpk: max |output difference| {diff:.2e}",
        adapter_dir.display()
    );
    if fell < 0.2 {
        return Err(format!(
            "the held-out loss fell by {:.1} %, expected at least 20 %",
            100.0 * fell
        )
        .into());
    }
    if diff.is_nan() || diff > 1e-5 {
        return Err(format!("the reloaded adapter's outputs differ by {diff:e} (> 1e-5)").into());
    }
    Ok(())
}

/// The output folder: created, or cleared when it holds a previous run of this example (and
/// refused when it holds anything else).
fn prepare(out: &Path) -> Result<(), Box<dyn std::error::Error>> {
    if out.exists() && std::fs::read_dir(out)?.next().is_some() {
        if !out.join("base.mpk").is_file() {
            return Err(format!(
                "{} exists and is not a previous run of this example; choose another folder",
                out.display()
            )
            .into());
        }
        std::fs::remove_dir_all(out)?;
    }
    std::fs::create_dir_all(out)?;
    Ok(())
}

/// The most recently written file of `dir` whose name starts with `prefix`.
fn newest_file(dir: &Path, prefix: &str) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let mut newest: Option<(std::time::SystemTime, PathBuf)> = None;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(prefix) {
            let modified = entry.metadata()?.modified()?;
            if newest.as_ref().is_none_or(|(t, _)| modified > *t) {
                newest = Some((modified, entry.path()));
            }
        }
    }
    newest
        .map(|(_, path)| path)
        .ok_or_else(|| format!("no {prefix}* file in {}", dir.display()).into())
}

//! `burn-peft demo`: adapt two random layers, fit the adapters to a low-rank change of the base,
//! and show accounting, loss, regularizer and the merge check.

use std::time::Instant;

use anyhow::Context;
use burn::module::{AutodiffModule, Param};
use burn::nn::Linear;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Distribution, ElementConversion, Tensor, backend::AutodiffBackend};
use burn_peft::train::task::{MicroBatchGradients, Objective};
use burn_peft::train::training_loop::optimizer_step;

use burn_peft::adapter::{
    AdaptedGroup, AdapterConfig, AdapterInit, Init, Method, ParamReport, regularizer,
};
use burn_peft::backend::{BackendJob, DeviceKind, run_on};
use burn_peft::linalg::SvdMode;
use burn_peft::train::PeftStep;

#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// TOML file with an `[adapter]` table (see configs/); replaces the adapter flags.
    #[arg(long, conflicts_with_all = ["method", "rank", "svd", "init", "gamma"])]
    pub config: Option<std::path::PathBuf>,
    /// Adapter method: lora, pissa, sorsa, lora_fa, lotr.
    #[arg(long, default_value = "sorsa")]
    pub method: Method,
    /// Adapter rank r.
    #[arg(long, default_value_t = 8)]
    pub rank: usize,
    /// Layer shape as OUTxIN (HF convention).
    #[arg(long, default_value = "256x128", value_parser = parse_shape)]
    pub shape: (usize, usize),
    /// SVD engine for SVD-based inits: exact or randomized.
    #[arg(long, default_value = "exact")]
    pub svd: SvdMode,
    /// Initialisation (lora_fa: kaiming, svd, svd-split; lotr: normal, svd).
    #[arg(long)]
    pub init: Option<Init>,
    /// SORSA regularizer weight γ.
    #[arg(long, default_value_t = 0.0)]
    pub gamma: f64,
    /// Training steps.
    #[arg(long, default_value_t = 200)]
    pub steps: usize,
    /// AdamW learning rate.
    #[arg(long, default_value_t = 1e-2)]
    pub lr: f64,
    /// Device: cpu (burn-flex), ndarray, wgpu (or wgpu:discrete[:N], wgpu:integrated[:N],
    /// wgpu:cpu, …) or cuda[:N], those compiled in.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceKind,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

fn parse_shape(s: &str) -> Result<(usize, usize), String> {
    let (out, inp) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("expected OUTxIN, e.g. 256x128, got `{s}`"))?;
    let parse = |v: &str| {
        v.trim()
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("`{v}` in `{s}` is not a positive integer"))
    };
    Ok((parse(out)?, parse(inp)?))
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let device = args.device;
    run_on(device, Demo(args))?
}

/// The part of a recipe the demo reads.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AdapterRecipe {
    adapter: AdapterConfig,
}

struct Demo(DemoArgs);

impl BackendJob for Demo {
    type Output = anyhow::Result<()>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> anyhow::Result<()> {
        let args = self.0;
        let (out_f, in_f) = args.shape;
        let config = match &args.config {
            Some(path) => {
                let recipe: AdapterRecipe = burn_peft::io::read_toml(path)?;
                recipe
                    .adapter
                    .validate()
                    .with_context(|| format!("in {}", path.display()))?;
                recipe.adapter
            }
            None => {
                let mut config = AdapterConfig::new(args.method, args.rank)
                    .with_svd(args.svd)
                    .with_seed(args.seed)
                    .with_gamma(args.gamma);
                config.init = args.init;
                config
            }
        };
        println!("adapter: {}", serde_json::to_string(&config)?);
        let mut init = AdapterInit::new(config.clone())?;

        B::seed(&device, args.seed);
        // Two layers of the same shape (one LoTR group); weights ~ N(0, 1/in) as after init.
        let std = 1.0 / (in_f as f64).sqrt();
        let bases: Vec<Linear<B>> = (0..2)
            .map(|_| Linear {
                weight: Param::from_tensor(Tensor::random(
                    [in_f, out_f],
                    Distribution::Normal(0.0, std),
                    &device,
                )),
                bias: Some(Param::from_tensor(Tensor::random(
                    [out_f],
                    Distribution::Normal(0.0, 0.1),
                    &device,
                ))),
            })
            .collect();
        // Targets: each base plus a random rank-r change.
        let targets: Vec<Tensor<B::InnerBackend, 2>> = bases
            .iter()
            .map(|base| {
                let u = Tensor::random([in_f, args.rank], Distribution::Normal(0.0, std), &device);
                let v = Tensor::random([args.rank, out_f], Distribution::Normal(0.0, 1.0), &device);
                (base.weight.val() + u.matmul(v).mul_scalar(0.5)).inner()
            })
            .collect();

        let started = Instant::now();
        let mut model = AdaptedGroup::new(bases, &mut init).context("initialising the adapters")?;
        println!(
            "initialised 2 layers [{out_f}, {in_f}] in {:.3} s",
            started.elapsed().as_secs_f64()
        );
        let report = ParamReport::of(&model);
        print!("{}", report.trainable_table());
        println!("{report}");

        let step = PeftStep::new(&config, args.lr, Some(1.0), 1);
        let mut optimizer = AdamWConfig::new().with_weight_decay(0.0).init();
        let fit = LowRankFit { targets };
        let batch = 64;
        let started = Instant::now();
        for i in 0..args.steps {
            let x = Tensor::<B, 2>::random([batch, in_f], Distribution::Normal(0.0, 1.0), &device);
            let micro_batches = std::iter::once((x, args.seed));
            let (next, outcome) =
                optimizer_step(&fit, model, &mut optimizer, &step, micro_batches, args.lr)?;
            model = next;
            if i % (args.steps / 10).max(1) == 0 {
                let (loss, stats) = outcome.read();
                println!(
                    "step {i:>5}  loss {loss:.6}  grad_norm {:.4}  reg {:.3e}",
                    stats.grad_norm, stats.regularizer
                );
            }
        }
        println!(
            "{} steps in {:.2} s; final regularizer {:.3e}",
            args.steps,
            started.elapsed().as_secs_f64(),
            regularizer::regularizer_value(&model.valid())
        );

        // Merge check on the inference backend.
        let model = model.valid();
        let x = Tensor::<B::InnerBackend, 2>::random(
            [8, in_f],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let adapted = model.forward(x.clone());
        let merged = model.merge();
        let mut worst: f64 = 0.0;
        for (linear, y) in merged.iter().zip(adapted) {
            let diff: f64 = (linear.forward(x.clone()) - y.clone())
                .abs()
                .max()
                .into_scalar()
                .elem();
            let size: f64 = y.abs().max().into_scalar().elem();
            worst = worst.max(diff / size);
        }
        println!(
            "merged layers reproduce the adapted outputs: max relative difference {worst:.2e}"
        );
        Ok(())
    }
}

/// The demo's objective: each adapted layer's output against its base plus a random rank-r
/// change, mean-squared error summed over the layers; a micro-batch is a batch of random inputs.
struct LowRankFit<B: AutodiffBackend> {
    /// `[in, out]` target weights, one per layer.
    targets: Vec<Tensor<B::InnerBackend, 2>>,
}

impl<B: AutodiffBackend> Objective<B> for LowRankFit<B> {
    type Model = AdaptedGroup<B>;
    type Batch = Tensor<B, 2>;

    fn tokens(&self, x: &Tensor<B, 2>) -> usize {
        x.dims()[0]
    }

    fn gradients(
        &self,
        model: &AdaptedGroup<B>,
        x: Tensor<B, 2>,
        divisor: f64,
        _seed: u64,
    ) -> burn_peft::Result<MicroBatchGradients<B>> {
        let outputs = model.forward(x.clone());
        let mut loss = Tensor::<B, 1>::zeros([1], &x.device());
        for ((out, target), base) in outputs.into_iter().zip(&self.targets).zip(&model.layers) {
            let bias = base.base.bias.as_ref().map(|b| b.val().unsqueeze::<2>());
            let want = Tensor::<B, 2>::from_inner(x.clone().inner().matmul(target.clone()));
            let want = match bias {
                Some(b) => want + b,
                None => want,
            };
            loss = loss + (out - want).square().mean().unsqueeze();
        }
        let loss = loss.div_scalar(divisor);
        Ok(MicroBatchGradients {
            loss: loss.clone().inner(),
            grads: GradientsParams::from_grads(loss.backward(), model),
        })
    }
}

//! `burn-peft bench …`: measurements quoted in the README and issue notes.

use std::time::Instant;

use burn_peft::linalg::{SvdOptions, gaussian, svd};

#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// SVD initialisation time (exact vs randomized) and the randomized top-r error.
    Svd(SvdBenchArgs),
    /// Prefill and decode tokens/s of a decoder (a checkpoint, or a random-weight Llama).
    Generate(GenerateBenchArgs),
    /// Training tokens/s and peak memory of one method on a random-weight Llama (run one
    /// method per process so the peak RSS is its own).
    Train(TrainBenchArgs),
    /// Load a model and report the time and the process's peak RSS against the size of its
    /// weight files.
    Load(LoadBenchArgs),
}

#[derive(clap::Args, Debug)]
pub struct LoadBenchArgs {
    /// HF model folder or llama2.c .bin.
    #[arg(long)]
    pub model: std::path::PathBuf,
    /// dtype of the frozen base: auto (the checkpoint's), bf16, f16 or f32.
    #[arg(long, default_value = "auto")]
    pub precision: burn_peft::model::Precision,
    /// Device: cpu (burn-flex), ndarray, wgpu (or wgpu:discrete[:N], wgpu:integrated[:N],
    /// wgpu:cpu, …) or cuda[:N], those compiled in.
    #[arg(long, default_value = "cpu")]
    pub device: burn_peft::backend::DeviceKind,
}

/// The architecture of a random-weight bench model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Arch {
    /// A Llama decoder (heads of 64).
    Llama,
    /// An RWKV6 (Finch) of the same hidden size and depth (heads of 64, channel mix 3.5 x
    /// hidden, or --intermediate).
    Rwkv6,
}

#[derive(clap::Args, Debug)]
pub struct TrainBenchArgs {
    /// Architecture of the random-weight model.
    #[arg(long, value_enum, default_value = "llama")]
    pub arch: Arch,
    /// Adapter method.
    #[arg(long, default_value = "lora")]
    pub method: burn_peft::adapter::Method,
    #[arg(long, default_value_t = 16)]
    pub rank: usize,
    #[arg(long, default_value_t = 512)]
    pub hidden: usize,
    /// MLP width (default: Llama 43/16 · hidden as the PyTorch anchor, RWKV6 3.5 · hidden).
    #[arg(long)]
    pub intermediate: Option<usize>,
    #[arg(long, default_value_t = 8)]
    pub layers: usize,
    #[arg(long, default_value_t = 32_000)]
    pub vocab: usize,
    #[arg(long, default_value_t = 256)]
    pub seq: usize,
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Timed optimizer steps (after one untimed warm-up step); 0 runs and times one step only,
    /// for models where a step takes minutes.
    #[arg(long, default_value_t = 3)]
    pub steps: usize,
    /// dtype of the frozen base: bf16, f16 or f32 (auto: f32, the random model's dtype).
    #[arg(long, default_value = "f32")]
    pub precision: burn_peft::model::Precision,
    /// Activation checkpointing: `none`, `layer` (per-layer recomputation, what a recipe's
    /// `gradient_checkpointing = true` runs) or `balanced` (Burn's BalancedCheckpointing
    /// autodiff strategy: memory-bound ops recomputed, compute-bound ones kept).
    #[arg(long, default_value = "none")]
    pub checkpointing: Checkpointing,
    /// Same as `--checkpointing layer`.
    #[arg(long)]
    pub gradient_checkpointing: bool,
    /// With `--checkpointing layer`: recompute only the first N layers, keep the others'
    /// activations (a recipe's `model.recomputed_layers`; default: all).
    #[arg(long)]
    pub recomputed_layers: Option<usize>,
    /// Device: cpu (burn-flex), ndarray, wgpu[:…] or cuda[:N]. The peak is the process's RSS
    /// on the CPU devices, the device memory Burn's allocator reserved on a GPU.
    #[arg(long, default_value = "cpu")]
    pub device: burn_peft::backend::DeviceKind,
    /// Data-parallel on several devices of one backend in this process, one replica each
    /// (`cuda:0,cuda:1`; `cpu,cpu`: two replicas on the CPU); replaces --device. --batch is the
    /// global batch, split across all ranks.
    #[arg(long, value_delimiter = ',')]
    pub devices: Vec<burn_peft::backend::DeviceKind>,
    /// The device's dense peak in TFLOPS for the base's dtype, for the MFU line (default: from
    /// the table of common NVIDIA GPUs; without either, a GPU's MFU is n/a, and the CPU and
    /// llvmpipe print tokens/s only).
    #[arg(long, value_parser = positive_tflops)]
    pub peak_tflops: Option<f64>,
    #[command(flatten)]
    pub launch: super::launch_args::LaunchArgs,
}

fn positive_tflops(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("`{s}`: expected a positive number of TFLOPS")),
    }
}

/// How the bench trades memory for recomputation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Checkpointing {
    None,
    Layer,
    Balanced,
}

#[derive(clap::Args, Debug)]
pub struct GenerateBenchArgs {
    /// Model folder or llama2.c .bin; omit for a random-weight model of --arch, --hidden and
    /// --layers.
    #[arg(long)]
    pub model: Option<std::path::PathBuf>,
    /// Architecture of the random-weight model.
    #[arg(long, value_enum, default_value = "llama")]
    pub arch: Arch,
    #[arg(long, default_value_t = 512)]
    pub hidden: usize,
    #[arg(long, default_value_t = 8)]
    pub layers: usize,
    /// Prompt length (prefill).
    #[arg(long, default_value_t = 128)]
    pub prompt: usize,
    /// Tokens to decode after the prompt.
    #[arg(long, default_value_t = 64)]
    pub decode: usize,
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Device: cpu (burn-flex), ndarray, wgpu (or wgpu:discrete[:N], wgpu:integrated[:N],
    /// wgpu:cpu, …) or cuda[:N], those compiled in.
    #[arg(long, default_value = "cpu")]
    pub device: burn_peft::backend::DeviceKind,
}

#[derive(clap::Args, Debug)]
pub struct SvdBenchArgs {
    /// Matrix shapes ROWSxCOLS, comma separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1024x1024,4096x4096,4096x11008"
    )]
    pub shapes: Vec<String>,
    /// Ranks, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "16,128")]
    pub ranks: Vec<usize>,
    /// Randomized SVD oversampling (default: max(16, rank/2), as adapters use).
    #[arg(long)]
    pub oversampling: Option<usize>,
    /// Randomized SVD power iterations.
    #[arg(long, default_value_t = SvdOptions::DEFAULT_POWER_ITERATIONS)]
    pub power_iterations: usize,
    /// Skip the exact SVD (and the error column) for speed.
    #[arg(long)]
    pub no_exact: bool,
    /// Spectrum of the test matrices: `weight` (a trained-weight-like power-law decay
    /// σ_i ∝ (i+1)^-0.5 over a Gaussian basis) or `gaussian` (i.i.d. entries: the flat
    /// Marchenko–Pastur spectrum, the hardest case for a randomized SVD).
    #[arg(long, default_value = "weight")]
    pub spectrum: String,
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Svd(args) => svd_bench(args),
        BenchCommand::Load(args) => {
            let device = args.device;
            burn_peft::backend::run_on(device, LoadBench(args))?
        }
        BenchCommand::Train(mut args) => {
            if args.gradient_checkpointing {
                args.checkpointing = Checkpointing::Layer;
            }
            if let Some(n) = args.recomputed_layers {
                if args.checkpointing != Checkpointing::Layer {
                    anyhow::bail!("--recomputed-layers {n} needs --checkpointing layer");
                }
                if n == 0 || n > args.layers {
                    anyhow::bail!(
                        "--recomputed-layers {n}: expected 1 to --layers ({})",
                        args.layers
                    );
                }
            }
            let device = args.device;
            let launch = args.launch.launch()?;
            if args.checkpointing == Checkpointing::Balanced {
                if device != burn_peft::backend::DeviceKind::Cpu
                    || launch.is_distributed()
                    || !args.devices.is_empty()
                {
                    anyhow::bail!(
                        "--checkpointing balanced is built for one cpu device in one process only"
                    );
                }
                burn_peft::backend::run_balanced(TrainBench(args, launch))
            } else if !args.devices.is_empty() {
                let devices = args.devices.clone();
                burn_peft::backend::run_on_devices(&devices, TrainBench(args, launch))?
            } else {
                burn_peft::backend::run_on(device, TrainBench(args, launch))?
            }
        }
        BenchCommand::Generate(args) => {
            let device = args.device;
            burn_peft::backend::run_on(device, GenerateBench(args))?
        }
    }
}

fn parse_shape(s: &str) -> anyhow::Result<(usize, usize)> {
    let (r, c) = s
        .split_once('x')
        .ok_or_else(|| anyhow::anyhow!("shape `{s}`: expected ROWSxCOLS"))?;
    Ok((r.trim().parse()?, c.trim().parse()?))
}

fn test_matrix(rows: usize, cols: usize, spectrum: &str) -> anyhow::Result<faer::Mat<f32>> {
    let mut rng = gaussian::rng(7);
    let g = gaussian::standard_normal(&mut rng, rows, cols);
    match spectrum {
        "gaussian" => Ok(g),
        "weight" => {
            // Random orthonormal bases via QR of Gaussian matrices, power-law singular values.
            let n = rows.min(cols);
            let u = burn_peft::linalg::orthonormalize_columns(g.subcols(0, n));
            let h = gaussian::standard_normal(&mut rng, cols, n);
            let v = burn_peft::linalg::orthonormalize_columns(h.as_ref());
            let scaled =
                faer::Mat::from_fn(rows, n, |i, j| u[(i, j)] * ((j + 1) as f32).powf(-0.5));
            Ok(scaled * v.transpose())
        }
        other => anyhow::bail!("--spectrum `{other}`: expected weight or gaussian"),
    }
}

fn svd_bench(args: SvdBenchArgs) -> anyhow::Result<()> {
    println!("threads: {}", rayon_threads());
    println!("| shape | exact thin SVD (s) | rank | randomized (s) | max rel. error of top-r σ |");
    println!("|---|---|---|---|---|");
    for shape in &args.shapes {
        let (rows, cols) = parse_shape(shape)?;
        let w = test_matrix(rows, cols, &args.spectrum)?;
        let exact = if args.no_exact {
            None
        } else {
            let started = Instant::now();
            let full = svd::exact_svd(w.as_ref())?;
            Some((full, started.elapsed().as_secs_f64()))
        };
        for &rank in &args.ranks {
            let options = SvdOptions {
                oversampling: args
                    .oversampling
                    .unwrap_or_else(|| SvdOptions::auto_oversampling(rank)),
                power_iterations: args.power_iterations,
                ..SvdOptions::randomized()
            };
            let started = Instant::now();
            let approx = svd::truncated_svd(w.as_ref(), rank, &options)?;
            let randomized = started.elapsed().as_secs_f64();
            let (exact_time, error) = match &exact {
                Some((full, t)) => {
                    let err = approx
                        .s
                        .iter()
                        .zip(&full.s)
                        .map(|(a, e)| ((a - e) / e).abs())
                        .fold(0.0f32, f32::max);
                    (format!("{t:.2}"), format!("{:.3} %", 100.0 * err))
                }
                None => ("-".into(), "-".into()),
            };
            println!("| {rows}x{cols} | {exact_time} | {rank} | {randomized:.3} | {error} |");
        }
    }
    Ok(())
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// The random Llama both anchors build (`../shared/bench`): 64-wide heads, MLP 2.6875 × hidden
/// (1376 for hidden 512), untied head.
fn bench_llama(
    vocab: usize,
    hidden: usize,
    layers: usize,
) -> burn_peft::model::decoder::DecoderConfig {
    let heads = (hidden / 64).max(1);
    burn_peft::model::decoder::DecoderConfig::llama(
        vocab,
        hidden,
        hidden * 43 / 16,
        layers,
        heads,
        heads,
        4096,
        false,
    )
}

/// Peak resident memory of this process so far (Linux `VmHWM`).
fn peak_memory() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| format!("{:.0} MiB", kb / 1024.0))
        .unwrap_or_else(|| "unknown".into())
}

struct GenerateBench(GenerateBenchArgs);

impl burn_peft::backend::BackendJob for GenerateBench {
    type Output = anyhow::Result<()>;

    fn run<B: burn::tensor::backend::AutodiffBackend>(
        self,
        device: B::Device,
    ) -> anyhow::Result<()> {
        use burn_peft::model::any::AnyModel;
        use burn_peft::model::decoder::Decoder;
        use burn_peft::model::rwkv6::{Rwkv6, Rwkv6Config};
        type I<B> = <B as burn::tensor::backend::AutodiffBackend>::InnerBackend;
        let args = self.0;
        let model = match &args.model {
            Some(path) => burn_peft::model::any::load_model::<I<B>>(path, &device)?.0,
            None if args.arch == Arch::Rwkv6 => {
                let config = Rwkv6Config::finch(32_000, args.hidden, args.layers, 64);
                AnyModel::Rwkv6(Rwkv6::random_as(
                    config,
                    0,
                    burn::tensor::FloatDType::F32,
                    &device,
                )?)
            }
            None => AnyModel::Decoder(Decoder::random(
                bench_llama(32_000, args.hidden, args.layers),
                0,
                &device,
            )?),
        };
        match model {
            AnyModel::Decoder(m) => {
                let c = &m.config;
                println!(
                    "model: llama hidden {}, layers {}, heads {}/{}, vocab {}; batch {}, prompt {}, decode {}",
                    c.hidden_size,
                    c.num_layers,
                    c.num_heads,
                    c.num_kv_heads,
                    c.vocab_size,
                    args.batch,
                    args.prompt,
                    args.decode
                );
                time_generation(&m, &args, &device)
            }
            AnyModel::Rwkv6(m) => {
                let c = &m.config;
                println!(
                    "model: rwkv6 hidden {}, layers {}, heads {}x{}, vocab {}; batch {}, prompt {}, decode {}",
                    c.hidden_size,
                    c.num_layers,
                    c.heads(),
                    c.head_size,
                    c.vocab_size,
                    args.batch,
                    args.prompt,
                    args.decode
                );
                time_generation(&m, &args, &device)
            }
            AnyModel::Encoder(_) => anyhow::bail!("bench generate needs a causal LM"),
        }
    }
}

/// Prefill and decode timed as `generate` runs them (greedy: argmax on the device, the new ids
/// read back once per token); round 0 warms up, round 1 is timed.
fn time_generation<B: burn::tensor::backend::Backend, M: burn_peft::model::LanguageModel<B>>(
    model: &M,
    args: &GenerateBenchArgs,
    device: &B::Device,
) -> anyhow::Result<()> {
    use burn::tensor::{Int, Tensor, TensorData};
    use burn_peft::model::decoder::arange_positions;
    let vocab = model.vocab_size() as i64;
    let ids: Vec<i64> = (0..args.batch * args.prompt)
        .map(|i| (i as i64 * 7919) % vocab)
        .collect();
    let ids =
        Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [args.batch, args.prompt]), device);
    let capacity = args.prompt + args.decode;
    let key_mask = Tensor::<B, 2, Int>::ones([args.batch, capacity], device);
    let b = args.batch;
    for round in 0..2 {
        let mut cache = model.new_cache(b, capacity);
        let started = Instant::now();
        let positions = arange_positions::<B>([b, args.prompt], device);
        let mask = key_mask.clone().slice([0..b, 0..args.prompt]);
        let mut next = model
            .next_logits(ids.clone(), mask, positions, Some(&mut cache))
            .argmax(1)
            .reshape([b, 1]);
        let _ = next.clone().into_data();
        let prefill = started.elapsed().as_secs_f64();
        let started = Instant::now();
        for step in 0..args.decode {
            let at = args.prompt + step;
            let pos = Tensor::<B, 2, Int>::full([b, 1], at as i64, device);
            let mask = key_mask.clone().slice([0..b, 0..at + 1]);
            next = model
                .next_logits(next, mask, pos, Some(&mut cache))
                .argmax(1)
                .reshape([b, 1]);
            let _ = next.clone().into_data();
        }
        let decode = started.elapsed().as_secs_f64();
        if round == 1 {
            println!(
                "prefill: {:.0} tokens/s ({:.3} s)",
                (b * args.prompt) as f64 / prefill,
                prefill
            );
            println!(
                "decode:  {:.1} tokens/s ({:.3} s)",
                (b * args.decode) as f64 / decode,
                decode
            );
            println!("peak RSS {}", peak_memory());
        }
    }
    Ok(())
}

struct TrainBench(TrainBenchArgs, burn_peft::distributed::Launch);

impl burn_peft::backend::BackendJob for TrainBench {
    type Output = anyhow::Result<()>;

    fn run<B: burn::tensor::backend::AutodiffBackend>(
        self,
        device: B::Device,
    ) -> anyhow::Result<()> {
        burn_peft::backend::DevicesJob::run::<B>(self, vec![device])
    }
}

impl burn_peft::backend::DevicesJob for TrainBench {
    type Output = anyhow::Result<()>;

    /// One replica per device, each a rank of the world (`--nnodes` × devices), in threads;
    /// the table is rank 0's.
    fn run<B: burn::tensor::backend::AutodiffBackend>(
        self,
        devices: Vec<B::Device>,
    ) -> anyhow::Result<()> {
        use burn_peft::distributed::{Identity, join};
        use burn_peft::train::data_parallel::DataParallel;

        let TrainBench(args, launch) = self;
        let count = devices.len();
        if launch.place(0, count).world == 1 {
            return train_bench_replica::<B>(&args, devices[0].clone(), DataParallel::single());
        }
        // Ranks must bench the same thing.
        let identity = Identity {
            version: env!("CARGO_PKG_VERSION").into(),
            values: [(
                "bench train".to_string(),
                format!(
                    "{:?} {} r{} hidden {} inter {:?} layers {} vocab {} seq {} batch {} steps {} \
                     {} {:?} {:?}",
                    args.arch,
                    args.method,
                    args.rank,
                    args.hidden,
                    args.intermediate,
                    args.layers,
                    args.vocab,
                    args.seq,
                    args.batch,
                    args.steps,
                    args.precision,
                    args.checkpointing,
                    args.recomputed_layers
                ),
            )]
            .into(),
        };
        let results: Vec<anyhow::Result<()>> = std::thread::scope(|scope| {
            let handles: Vec<_> = devices
                .into_iter()
                .enumerate()
                .map(|(index, device)| {
                    let (args, launch, identity) = (&args, &launch, &identity);
                    std::thread::Builder::new()
                        .stack_size(64 << 20)
                        .spawn_scoped(scope, move || {
                            let group = join(launch, launch.place(index, count), identity)?;
                            train_bench_replica::<B>(args, device, DataParallel::new(group))
                        })
                        .expect("a thread starts")
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("a replica's thread panicked")))
                })
                .collect()
        });
        results.into_iter().collect()
    }
}

/// Builds a random-weight Llama in the requested precision, adapts every linear, and runs one
/// warm-up and `steps` timed optimizer steps on this rank's share of the batch, measuring each
/// step's peak memory (RSS on the CPU, the allocator's reserved memory on a GPU) and its parts
/// as the trainer does (the peak is reset after the model is built). Rank 0 prints the table.
fn train_bench_replica<B: burn::tensor::backend::AutodiffBackend>(
    args: &TrainBenchArgs,
    device: B::Device,
    parallel: burn_peft::train::data_parallel::DataParallel,
) -> anyhow::Result<()> {
    {
        use burn::tensor::FloatDType;
        use burn_peft::model::decoder::{Decoder, DecoderConfig};
        use burn_peft::model::rwkv6::{Rwkv6, Rwkv6Config};
        use burn_peft::train::mfu::LlamaShape;

        let heads = (args.hidden / 64).max(1);
        // The anchor's shape (`peft_train_bench.py`: 512 → 1376).
        let inter = args.intermediate.unwrap_or(args.hidden * 43 / 16);
        let config = DecoderConfig::llama(
            args.vocab,
            args.hidden,
            inter,
            args.layers,
            heads,
            heads,
            args.seq.max(4096),
            false,
        );
        let dtype = args.precision.resolve_on::<B>(FloatDType::F32, &device);
        let started = Instant::now();
        match args.arch {
            Arch::Llama => {
                let flops =
                    LlamaShape::of(&config, args.seq).train_flops_per_token(args.method, args.rank);
                let model = Decoder::<B>::random_as(config, 0, dtype, &device)?;
                let shape = TraineeShape {
                    inter,
                    flops_per_token: Some(flops),
                };
                bench_trainee(args, model, shape, dtype, started, device, parallel)
            }
            Arch::Rwkv6 => {
                if args.checkpointing != Checkpointing::None || args.gradient_checkpointing {
                    anyhow::bail!("--arch rwkv6 trains without activation checkpointing");
                }
                let mut config = Rwkv6Config::finch(args.vocab, args.hidden, args.layers, 64);
                config.intermediate_size = args.intermediate.unwrap_or(config.intermediate_size);
                let shape = TraineeShape {
                    inter: config.intermediate_size,
                    flops_per_token: None,
                };
                let model = Rwkv6::<B>::random_as(config, 0, dtype, &device)?;
                bench_trainee(args, model, shape, dtype, started, device, parallel)
            }
        }
    }
}

/// What the bench reports of the model besides its config: the MLP width, and the model FLOPs
/// a trained token needs (`None`: not counted for this architecture).
struct TraineeShape {
    inter: usize,
    flops_per_token: Option<f64>,
}

/// Adapts every linear of `model` and times its training steps (see [`train_bench_replica`]).
fn bench_trainee<B, M>(
    args: &TrainBenchArgs,
    model: M,
    TraineeShape {
        inter,
        flops_per_token,
    }: TraineeShape,
    dtype: burn::tensor::FloatDType,
    started: Instant,
    device: B::Device,
    mut parallel: burn_peft::train::data_parallel::DataParallel,
) -> anyhow::Result<()>
where
    B: burn::tensor::backend::AutodiffBackend,
    M: burn_peft::train::causal_lm::TrainableLm<B>,
{
    {
        use burn_peft::adapter::{AdapterConfig, ParamReport, Targets};
        use burn_peft::data::TokenizedExample;
        use burn_peft::linalg::SvdMode;
        use burn_peft::model::inject_adapters;
        use burn_peft::model::precision::dtype_name;
        use burn_peft::train::PeftStep;
        use burn_peft::train::causal_lm::CausalLm;
        use burn_peft::train::data_parallel::MicroBatch;
        use burn_peft::train::memory::{MemoryMonitor, MemorySource, ParamBytes, rss};
        use burn_peft::train::task::Task;
        use burn_peft::train::training_loop::parallel_optimizer_step;

        let root = parallel.is_root();
        let mut adapter = AdapterConfig::new(args.method, args.rank);
        adapter.targets = Some(Targets::Pattern("all-linear".into()));
        // The initialisation's accuracy does not matter to step time or memory: keep it quick.
        if args.method.may_use_svd() {
            adapter.svd = SvdMode::Randomized;
            adapter.power_iterations = 1;
        }
        let (model, _) = inject_adapters(model, &adapter)?;
        if root {
            println!(
                "model: {:?} hidden {}, intermediate {inter}, layers {}, vocab {}; base {}; {} rank {}: {} \
             ({:.1} s to build)",
                args.arch,
                args.hidden,
                args.layers,
                args.vocab,
                dtype_name(dtype),
                args.method,
                args.rank,
                ParamReport::of(&model),
                started.elapsed().as_secs_f64()
            );
        }
        let source = MemorySource::of(&device);
        let peak_of = match source {
            MemorySource::Device(_) => "device",
            _ => "RSS",
        };
        let mut memory = MemoryMonitor::new(ParamBytes::of(&model), 0, source);
        let step = PeftStep::new(&adapter, 1e-4, Some(1.0), 1);
        let optimizer = burn::optim::AdamWConfig::new().init();
        // Every rank starts from rank 0's adapters.
        let (mut model, mut optimizer, _) = parallel.share_state(model, optimizer, 0, &device)?;
        // The trainer's causal-LM task and optimizer step, on `batch` rows of `seq` tokens
        // (every token a target, no padding).
        let tokens = args.batch * args.seq;
        let rows: Vec<TokenizedExample> = (0..args.batch)
            .map(|row| {
                let ids = (row * args.seq..(row + 1) * args.seq)
                    .map(|i| ((i as u64 * 7919) % args.vocab as u64) as u32)
                    .collect();
                TokenizedExample::all_targets(ids)
            })
            .collect();
        let recomputed = (args.checkpointing == Checkpointing::Layer)
            .then(|| args.recomputed_layers.unwrap_or(args.layers));
        let task = CausalLm::new(rows, 0, recomputed);
        let indices: Vec<usize> = (0..args.batch).collect();
        // This rank's rows of the global batch (all of it alone).
        let mine = parallel.shard(&indices).to_vec();
        let share = mine.len() as f64 / indices.len() as f64;
        rss::reset_peak();
        let mut timed = 0.0;
        let mut comm_at_warm = parallel.stats();
        for i in 0..=args.steps {
            let batch = (!mine.is_empty()).then(|| Task::<B>::batch(&task, &mine, &device));
            memory.start_step();
            let started = Instant::now();
            let micro_batches = std::iter::once(MicroBatch {
                batch,
                seed: i as u64,
                share,
            });
            let (next, outcome) = parallel_optimizer_step(
                &task,
                model,
                &mut optimizer,
                &step,
                micro_batches,
                1e-4,
                &mut parallel,
                false,
            )?;
            model = next;
            // The step is done when its numbers are on the host.
            let _ = outcome.read();
            memory.end_step(i + 1);
            // `--steps 0`: one step, timed (first-call costs included), for large models.
            if i > 0 || args.steps == 0 {
                timed += started.elapsed().as_secs_f64();
            } else {
                comm_at_warm = parallel.stats();
            }
        }
        if !root {
            return Ok(());
        }
        let comm = parallel.stats();
        let timed_steps = args.steps.max(1);
        let report = memory.report();
        let tokens_per_second = (timed_steps * tokens) as f64 / timed;
        let mib =
            |b: Option<u64>| b.map_or("n/a".into(), |b| format!("{:.0}", b as f64 / 1048576.0));
        println!(
            "| method | rank | base | checkpointing | seq | batch | tokens/s | s/step | peak {peak_of} \
             MiB | base | adapters | gradients | optimizer | activations | other |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        println!(
            "| {} | {} | {} | {} | {} | {} | {:.0} | {:.2} | {} | {} | {} | {} | {} | {} | {} |",
            args.method,
            args.rank,
            dtype_name(dtype),
            match args.recomputed_layers {
                Some(n) => format!("{:?} ({n} of {} layers)", args.checkpointing, args.layers),
                None => format!("{:?}", args.checkpointing),
            },
            args.seq,
            args.batch,
            tokens_per_second,
            timed / timed_steps as f64,
            mib(report.peak),
            mib(Some(report.base)),
            mib(Some(report.adapters)),
            mib(Some(report.gradients)),
            mib(Some(report.optimizer)),
            mib(report.activations),
            mib(report.other),
        );
        let per_device = tokens_per_second / parallel.world() as f64;
        if let Some(line) = mfu_line(args.peak_tflops, flops_per_token, dtype, per_device) {
            println!("{line}");
        }
        if parallel.world() > 1 {
            let steps = timed_steps as f64;
            println!(
                "data-parallel: world {} (rank 0 trains {} of {} rows); all-reduced {:.2} MiB per \
                 step (rank 0 sent); communication {:.3} s per step ({:.0}% of the step, waiting \
                 for slower ranks included)",
                parallel.world(),
                mine.len(),
                args.batch,
                (comm.bytes_sent - comm_at_warm.bytes_sent) as f64 / steps / 1048576.0,
                (comm.seconds - comm_at_warm.seconds) / steps,
                100.0 * (comm.seconds - comm_at_warm.seconds) / timed.max(1e-9)
            );
        }
        Ok(())
    }
}

/// `MFU: …` for a GPU run (or any run given `--peak-tflops`); `None` on the CPU and llvmpipe.
fn mfu_line(
    peak_tflops: Option<f64>,
    flops_per_token: Option<f64>,
    dtype: burn::tensor::FloatDType,
    tokens_per_second: f64,
) -> Option<String> {
    use burn_peft::model::precision::dtype_name;
    use burn_peft::train::mfu::{dense_peak_tflops, gpu_name, mfu_percent};

    let device = burn_peft::backend::active_device();
    let gpu = device.as_ref().and_then(gpu_name);
    let (peak, source) = match (peak_tflops, gpu) {
        (Some(peak), _) => (peak, "--peak-tflops".to_string()),
        (None, Some(name)) => match dense_peak_tflops(name, dtype) {
            Some(peak) => (peak, format!("{name}, dense {}", dtype_name(dtype))),
            None => {
                return Some(format!(
                    "MFU: n/a (no {} peak known for {name}: pass --peak-tflops)",
                    dtype_name(dtype)
                ));
            }
        },
        (None, None) => return None,
    };
    let Some(flops) = flops_per_token else {
        return Some("MFU: n/a for --arch rwkv6 (the FLOP count covers Llama decoders)".into());
    };
    Some(format!(
        "MFU: {:.1}% ({:.2} GFLOP a token (frozen base 4, adapters 6 FLOPs a weight, attention \
         12·seq·hidden a layer) × {tokens_per_second:.0} tokens/s per device over {peak} TFLOPS \
         ({source}))",
        mfu_percent(flops, tokens_per_second, peak),
        flops / 1e9,
    ))
}

struct LoadBench(LoadBenchArgs);

impl burn_peft::backend::BackendJob for LoadBench {
    type Output = anyhow::Result<()>;

    fn run<B: burn::tensor::backend::AutodiffBackend>(
        self,
        device: B::Device,
    ) -> anyhow::Result<()> {
        use burn_peft::model::precision::dtype_name;
        use burn_peft::train::memory::rss;
        type I<B> = <B as burn::tensor::backend::AutodiffBackend>::InnerBackend;
        let args = self.0;
        let files: Vec<std::path::PathBuf> = if args.model.is_dir() {
            burn_peft::io::checkpoint::Checkpoint::open_dir(&args.model)?
                .paths()
                .into_iter()
                .map(|p| p.to_path_buf())
                .collect()
        } else {
            vec![args.model.clone()]
        };
        let size: u64 = files
            .iter()
            .map(|f| std::fs::metadata(f).map(|m| m.len()))
            .sum::<std::io::Result<u64>>()?;
        let before = rss::current();
        let started = Instant::now();
        let (model, report) =
            burn_peft::model::any::load_model_as::<I<B>>(&args.model, args.precision, &device)?;
        let seconds = started.elapsed().as_secs_f64();
        let mib = |b: u64| b as f64 / 1048576.0;
        let peak = rss::peak();
        println!(
            "loaded {} as {} in {seconds:.2} s: weights {:.1} MiB on disk; RSS before {}, peak {}{}",
            args.model.display(),
            dtype_name(report.dtype),
            mib(size),
            before.map_or("n/a".into(), |b| format!("{:.1} MiB", mib(b))),
            peak.map_or("n/a".into(), |p| format!("{:.1} MiB", mib(p))),
            peak.map_or(String::new(), |p| format!(
                " ({:.2}x the weights)",
                p as f64 / size as f64
            )),
        );
        drop(model);
        Ok(())
    }
}

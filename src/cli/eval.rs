//! `burn-peft eval`: GSM-8K, MATH, HumanEval, GLUE and perplexity with METHODS.md's prompts and
//! scoring rules; writes `results.json` and per-example records next to it.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use burn::tensor::backend::AutodiffBackend;
use burn_peft::backend::{BackendJob, DeviceKind, run_on};
use burn_peft::eval::results::{self, Evaluation};
use burn_peft::eval::run::{
    EvalOptions, evaluate_classifier, evaluate_completions, evaluate_decoder,
};
use burn_peft::eval::sandbox::SandboxPolicy;
use burn_peft::eval::task::Task;
use burn_peft::model::Precision;
use burn_peft::model::any::AnyModel;

use super::model_args::ModelArgs;

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    // The model arguments of `ModelArgs`, declared here because `--model` is optional for this
    // command (not needed with --completions), which a flattened `ModelArgs` cannot express.
    /// HF model folder (config.json + safetensors) or llama2.c .bin file.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Adapter folder to apply (adapter_config.json + adapter_model.safetensors), with the
    /// trained head it carries (modules_to_save).
    #[arg(long, requires = "model")]
    pub adapter: Option<PathBuf>,
    /// Device: cpu (burn-flex), ndarray, wgpu (or wgpu:discrete[:N], wgpu:integrated[:N],
    /// wgpu:cpu, …) or cuda[:N], those compiled in.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceKind,
    /// dtype of the frozen base: auto (the checkpoint's), bf16, f16 or f32.
    #[arg(long, default_value = "auto")]
    pub precision: Precision,
    /// gsm8k, math, math500, humaneval, glue-{cola,sst2,mrpc,rte,stsb,qnli,wnli}, perplexity.
    #[arg(long)]
    pub task: Task,
    /// Data file (default: the task's file under datasets/; perplexity: a .jsonl of
    /// {"input_ids": [...]} or {"text": ...} rows, or a text file).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Evaluate only the first N examples.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Prompts generated (or sequences scored) together.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// New tokens per prompt (default: 1024 GSM-8K, 2048 MATH, 512 HumanEval).
    #[arg(long)]
    pub max_new_tokens: Option<usize>,
    /// Results file; per-example records go next to it (NAME.records.jsonl).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Score completions made elsewhere: jsonl rows {"task_id" | "index", "completion"}
    /// (humaneval, gsm8k, math, math500); no model is loaded.
    #[arg(long)]
    pub completions: Option<PathBuf>,
    /// tokenizer.json to use instead of the model's.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Longest input in tokens (GLUE truncation, perplexity windows).
    #[arg(long, default_value_t = 512)]
    pub max_length: usize,
    /// HumanEval programs run at once (default: the number of CPUs).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// HumanEval wall-clock limit per program, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
    /// Python interpreter for HumanEval (default: python3 on PATH).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Run HumanEval programs even when a sandbox protection cannot be applied (by default the
    /// run stops, naming it); what each program ran under is recorded either way.
    #[arg(long)]
    pub allow_weak_sandbox: bool,
    /// Send each task prompt (METHODS.md's) as a user message through the tokenizer's chat
    /// template, for instruct models (generation tasks).
    #[arg(long)]
    pub chat: bool,
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    if !(args.timeout.is_finite() && args.timeout > 0.0) {
        bail!("--timeout must be a positive number of seconds");
    }
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let mut options = EvalOptions::new(args.task);
    options.data = args.data.clone();
    options.limit = args.limit;
    options.batch_size = args.batch_size;
    options.max_new_tokens = args.max_new_tokens;
    options.max_length = args.max_length;
    options.jobs = args.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    options.timeout = Duration::from_secs_f64(args.timeout);
    options.python = args.python.clone();
    if args.allow_weak_sandbox {
        options.sandbox_policy = SandboxPolicy::AllowWeak;
    }
    options.chat = args.chat;
    if args.chat && !args.task.is_generative() {
        bail!(
            "--chat applies to generation tasks (gsm8k, math, math500, humaneval), not {}",
            args.task
        );
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("eval-results/{}.json", args.task)));

    let model = args.model.clone().map(|model| ModelArgs {
        model,
        adapter: args.adapter.clone(),
        device: args.device,
        precision: args.precision,
    });
    let evaluation = match (&args.completions, &model) {
        (Some(file), _) => {
            if !args.task.is_generative() {
                bail!(
                    "--completions scores generated text: use it with humaneval, gsm8k, math or \
                     math500, not {}",
                    args.task
                );
            }
            evaluate_completions(&options, file)?
        }
        (None, Some(model)) => {
            options.model_label = Some(model.model.display().to_string());
            options.adapter_label = model.adapter.as_ref().map(|a| a.display().to_string());
            run_on(
                model.device,
                Job {
                    args: &args,
                    model,
                    options,
                },
            )??
        }
        (None, None) => bail!("pass --model DIR (or --completions FILE to score without one)"),
    };
    let records = results::write(&out, &evaluation)?;
    report(&evaluation, &out, &records);
    Ok(())
}

struct Job<'a> {
    args: &'a EvalArgs,
    model: &'a ModelArgs,
    options: EvalOptions,
}

impl BackendJob for Job<'_> {
    type Output = anyhow::Result<Evaluation>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> anyhow::Result<Evaluation> {
        let Job {
            args,
            model,
            options,
        } = self;
        let loaded = model.load::<B::InnerBackend>(&device)?;
        if let Task::Glue(_) = args.task {
            // GLUE models are HF folders, whose tokenizer.json sits beside the weights.
            let tokenizer = args
                .tokenizer
                .clone()
                .unwrap_or_else(|| model.model.clone());
            return Ok(evaluate_classifier(&options, &loaded, &tokenizer)?);
        }
        let tokenizer = model.tokenizer(args.tokenizer.as_deref())?;
        Ok(match loaded {
            AnyModel::Decoder(m) => evaluate_decoder(&options, &m, &tokenizer)?,
            AnyModel::Rwkv6(m) => evaluate_decoder(&options, &m, &tokenizer)?,
            AnyModel::Encoder(_) => bail!(
                "`eval --task {}` needs a causal LM (a decoder or RWKV6), not an encoder",
                args.task
            ),
        })
    }
}

/// One line per metric on stdout, and where the files went.
fn report(evaluation: &Evaluation, out: &std::path::Path, records: &std::path::Path) {
    let r = &evaluation.results;
    for (name, value) in &r.metrics {
        let marker = if *name == r.primary_metric { " *" } else { "" };
        println!("{}: {name} = {value:.6}{marker}", r.task);
    }
    let counts: Vec<String> = r.counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!("{}: {}", r.task, counts.join(", "));
    if let Some(tps) = r.tokens_per_second {
        println!(
            "{}: {} tokens generated, {tps:.1} tokens/s",
            r.task, r.generated_tokens
        );
    }
    println!(
        "{}: {:.1} s; results {}, records {}",
        r.task,
        r.seconds,
        out.display(),
        records.display()
    );
}

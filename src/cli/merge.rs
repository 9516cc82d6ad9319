//! `burn-peft merge`: fold an adapter into its base and write a plain HF model folder.

use std::path::PathBuf;

use anyhow::Context;
use burn::tensor::FloatDType;
use burn::tensor::backend::AutodiffBackend;
use burn_peft::backend::{BackendJob, run_on};
use burn_peft::io::checkpoint::{Checkpoint, OutTensor, float_dtype, write_safetensors};
use burn_peft::linalg::tensor_to_vec;
use burn_peft::model::HfConfig;
use burn_peft::model::any::AnyModel;
use burn_peft::model::precision::hf_name;
use burn_peft::model::source::ModelSource;
use burn_peft::model::{Precision, merge_adapters};

use super::model_args::ModelArgs;

#[derive(clap::Args, Debug)]
pub struct MergeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Output folder (config.json, model.safetensors, tokenizer files). A trained
    /// classification head is written with the model (config.json says
    /// `*ForSequenceClassification` and its number of labels). Each tensor is written in the
    /// dtype the base checkpoint stores it in (or in `--precision` when that is not auto), the
    /// merge itself accumulating in f32; config.json's `dtype` says which.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: MergeArgs) -> anyhow::Result<()> {
    if args.model.adapter.is_none() {
        anyhow::bail!("merge needs --adapter DIR");
    }
    if args.out.join("model.safetensors").exists() {
        anyhow::bail!(
            "{} already holds a model; choose another --out",
            args.out.display()
        );
    }
    let device = args.model.device;
    run_on(device, Job(args))?
}

struct Job(MergeArgs);

impl BackendJob for Job {
    type Output = anyhow::Result<()>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> anyhow::Result<()> {
        let args = self.0;
        if !matches!(
            ModelSource::resolve(&args.model.model)?,
            ModelSource::Hf { .. }
        ) {
            anyhow::bail!(
                "{}: merge writes an HF folder and needs an HF model folder as base",
                args.model.model.display()
            );
        }
        let source = Checkpoint::open_dir(&args.model.model)?;
        let precision = args.model.precision;
        // The dtype each tensor is written in, and how many values went out in each dtype.
        let mut written = Vec::new();
        let mut out_tensor =
            |name: String, shape: Vec<usize>, values: Vec<f32>, own: FloatDType| {
                let dtype = match precision {
                    Precision::Auto => source.dtype(&name).and_then(float_dtype).unwrap_or(own),
                    explicit => explicit.resolve(FloatDType::F32),
                };
                written.push((dtype, values.len()));
                OutTensor::f32_as(name, shape, &values, dtype)
            };
        // The merged tensors and, for a classifier, its number of labels.
        let (tensors, labels) = match args.model.load::<B::InnerBackend>(&device)? {
            AnyModel::Decoder(model) => {
                let merged = merge_adapters(model);
                let labels = merged.score.as_ref().and(merged.config.num_labels);
                let tensors = merged
                    .hf_tensors()?
                    .into_iter()
                    // A sequence classifier has no LM head.
                    .filter(|(name, _)| labels.is_none() || name != "lm_head.weight")
                    .map(|(name, t)| {
                        // Norms and biases were widened to 2-D for a uniform list; write their
                        // true shape.
                        let dims = t.dims();
                        let shape = if name.ends_with("norm.weight") || name.ends_with(".bias") {
                            vec![dims[1]]
                        } else {
                            dims.to_vec()
                        };
                        let own = FloatDType::from(t.dtype());
                        out_tensor(name, shape, tensor_to_vec(t), own)
                    })
                    .collect::<Vec<_>>();
                (tensors, labels)
            }
            AnyModel::Rwkv6(model) => {
                let tensors = merge_adapters(model)
                    .hf_tensors()?
                    .into_iter()
                    .map(|t| match t {
                        OutTensor::F32(name, shape, values) => {
                            out_tensor(name, shape, values, FloatDType::F32)
                        }
                        other => other,
                    })
                    .collect::<Vec<_>>();
                (tensors, None)
            }
            AnyModel::Encoder(model) => {
                let merged = merge_adapters(model);
                let tensors = merged
                    .hf_tensors()?
                    .into_iter()
                    .map(|t| match t {
                        OutTensor::F32(name, shape, values) => {
                            out_tensor(name, shape, values, FloatDType::F32)
                        }
                        other => other,
                    })
                    .collect::<Vec<_>>();
                (tensors, Some(merged.config.num_labels))
            }
        };
        std::fs::create_dir_all(&args.out)
            .with_context(|| format!("creating {}", args.out.display()))?;
        write_safetensors(&args.out.join("model.safetensors"), tensors, None)?;
        write_config(&args.model.model, &args.out, dominant(&written), labels)?;
        for file in [
            "generation_config.json",
            "tokenizer.json",
            "tokenizer_config.json",
            "special_tokens_map.json",
            "vocab.json",
            "merges.txt",
            "vocab.txt",
            burn_peft::model::world_tokenizer::VOCAB_FILE,
        ] {
            let src = args.model.model.join(file);
            if src.is_file() {
                std::fs::copy(&src, args.out.join(file))
                    .with_context(|| format!("copying {}", src.display()))?;
            }
        }
        eprintln!("wrote merged model to {}", args.out.display());
        Ok(())
    }
}

/// The dtype most of the written elements have.
fn dominant(written: &[(FloatDType, usize)]) -> FloatDType {
    let mut totals: Vec<(FloatDType, usize)> = Vec::new();
    for &(dtype, n) in written {
        match totals.iter_mut().find(|(d, _)| *d == dtype) {
            Some((_, total)) => *total += n,
            None => totals.push((dtype, n)),
        }
    }
    totals
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map_or(FloatDType::F32, |(d, _)| d)
}

/// The base's config.json (for a classifier: with its head's class and labels) with `dtype` (and `torch_dtype`, when the base has it) naming the
/// dtype the merged weights are written in, as transformers' `save_pretrained` records it.
fn write_config(
    base: &std::path::Path,
    out: &std::path::Path,
    dtype: FloatDType,
    labels: Option<usize>,
) -> anyhow::Result<()> {
    let path = base.join("config.json");
    let mut config = match labels {
        Some(n) => HfConfig::read(base)?.for_classifier(n),
        None => burn_peft::io::read_json(&path)?,
    };
    let object = config
        .as_object_mut()
        .with_context(|| format!("{}: not a JSON object", path.display()))?;
    object.insert("dtype".into(), hf_name(dtype).into());
    if object.contains_key("torch_dtype") {
        object.insert("torch_dtype".into(), hf_name(dtype).into());
    }
    let text = serde_json::to_string_pretty(&config).expect("JSON serialises");
    burn_peft::io::write_atomic(&out.join("config.json"), text.as_bytes())?;
    Ok(())
}

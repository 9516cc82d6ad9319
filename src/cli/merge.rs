//! `burn-peft merge`: fold an adapter into its base and write a plain HF model folder.

use std::path::PathBuf;

use anyhow::Context;
use burn::tensor::backend::AutodiffBackend;
use burn_peft::backend::{BackendJob, run_on};
use burn_peft::io::checkpoint::{OutTensor, write_safetensors};
use burn_peft::io::write_atomic;
use burn_peft::linalg::tensor_to_vec;
use burn_peft::model::HfConfig;
use burn_peft::model::any::AnyModel;
use burn_peft::model::merge_adapters;

use super::model_args::ModelArgs;

#[derive(clap::Args, Debug)]
pub struct MergeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Output folder (config.json, model.safetensors, tokenizer files). A trained
    /// classification head is written with the model (config.json says
    /// `*ForSequenceClassification` and its number of labels).
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
    run_on(device, Job(args))
}

struct Job(MergeArgs);

impl BackendJob for Job {
    type Output = anyhow::Result<()>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> anyhow::Result<()> {
        let args = self.0;
        if !args.model.model.is_dir() {
            anyhow::bail!(
                "{}: merge writes an HF folder and needs an HF model folder as base",
                args.model.model.display()
            );
        }
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
                        OutTensor::F32(name, shape, tensor_to_vec(t))
                    })
                    .collect();
                (tensors, labels)
            }
            AnyModel::Encoder(model) => {
                let merged = merge_adapters(model);
                (merged.hf_tensors()?, Some(merged.config.num_labels))
            }
        };
        std::fs::create_dir_all(&args.out)
            .with_context(|| format!("creating {}", args.out.display()))?;
        write_safetensors(&args.out.join("model.safetensors"), tensors, None)?;
        let config = HfConfig::read(&args.model.model)?;
        let json = match labels {
            Some(n) => config.for_classifier(n),
            None => config.json.clone(),
        };
        let text = serde_json::to_string_pretty(&json).context("serialising config.json")?;
        write_atomic(&args.out.join("config.json"), text.as_bytes())?;
        for file in [
            "generation_config.json",
            "tokenizer.json",
            "tokenizer_config.json",
            "special_tokens_map.json",
            "vocab.json",
            "merges.txt",
            "vocab.txt",
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

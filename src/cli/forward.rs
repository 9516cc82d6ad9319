//! `burn-peft forward`: logits for given token ids, in the layout of the parity fixtures'
//! `reference.safetensors` (the tool for comparing frameworks).

use std::path::PathBuf;

use anyhow::Context;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{ElementConversion, Tensor};
use burn_peft::backend::{BackendJob, run_on};
use burn_peft::io::checkpoint::{Checkpoint, OutTensor, write_safetensors};
use burn_peft::linalg::tensor_to_vec;
use burn_peft::model::any::AnyModel;
use burn_peft::model::loss::{causal_lm_loss, lm_labels};

use super::model_args::ModelArgs;

#[derive(clap::Args, Debug)]
pub struct ForwardArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// safetensors file with `input_ids` and `attention_mask` (i64, [batch, seq]).
    #[arg(long)]
    pub inputs: PathBuf,
    /// Output safetensors: `logits` (f32), `loss` for causal LMs, and the inputs.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: ForwardArgs) -> anyhow::Result<()> {
    let device = args.model.device;
    run_on(device, Job(args))?
}

struct Job(ForwardArgs);

impl BackendJob for Job {
    type Output = anyhow::Result<()>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> anyhow::Result<()> {
        let args = self.0;
        let inputs = Checkpoint::open_files(std::slice::from_ref(&args.inputs))?;
        let ids = inputs.int_tensor::<B::InnerBackend, 2>("input_ids", &device)?;
        let mask = if inputs.contains("attention_mask") {
            inputs.int_tensor::<B::InnerBackend, 2>("attention_mask", &device)?
        } else {
            ids.ones_like()
        };
        if mask.dims() != ids.dims() {
            anyhow::bail!(
                "{}: attention_mask {:?} does not match input_ids {:?}",
                args.inputs.display(),
                mask.dims(),
                ids.dims()
            );
        }
        let model = args.model.load::<B::InnerBackend>(&device)?;
        let mut out = Vec::new();
        let mut causal = |logits: Tensor<B::InnerBackend, 3>| {
            let loss = causal_lm_loss(logits.clone(), lm_labels(ids.clone(), Some(mask.clone())));
            out.push(OutTensor::F32(
                "logits".into(),
                logits.dims().to_vec(),
                tensor_to_vec(logits),
            ));
            out.push(OutTensor::F32("loss".into(), vec![1], tensor_to_vec(loss)));
        };
        match model {
            AnyModel::Decoder(model) => {
                check_ids(&args.inputs, ids.clone(), model.config.vocab_size, None)?;
                causal(model.forward(ids.clone(), Some(mask.clone())));
            }
            AnyModel::Rwkv6(model) => {
                check_ids(&args.inputs, ids.clone(), model.config.vocab_size, None)?;
                causal(model.forward(ids.clone(), Some(mask.clone())));
            }
            AnyModel::Encoder(model) => {
                let c = &model.config;
                check_ids(
                    &args.inputs,
                    ids.clone(),
                    c.vocab_size,
                    Some(c.max_sequence_length()),
                )?;
                let logits = model.forward(ids.clone(), mask.clone(), None);
                out.push(OutTensor::F32(
                    "logits".into(),
                    logits.dims().to_vec(),
                    tensor_to_vec(logits),
                ));
            }
        }
        let shape = ids.dims().to_vec();
        out.push(OutTensor::I64(
            "input_ids".into(),
            shape.clone(),
            int_vec(ids),
        ));
        out.push(OutTensor::I64(
            "attention_mask".into(),
            shape,
            int_vec(mask),
        ));
        write_safetensors(&args.out, out, None)
            .with_context(|| format!("writing {}", args.out.display()))?;
        eprintln!("wrote {}", args.out.display());
        Ok(())
    }
}

/// Token ids must index the vocabulary (and fit an encoder's position table).
fn check_ids<B: burn::tensor::backend::Backend>(
    path: &std::path::Path,
    ids: burn::tensor::Tensor<B, 2, burn::tensor::Int>,
    vocab: usize,
    max_len: Option<usize>,
) -> anyhow::Result<()> {
    let [_, seq] = ids.dims();
    if let Some(max) = max_len.filter(|&m| seq > m) {
        anyhow::bail!(
            "{}: input_ids has {seq} positions; this model takes at most {max}",
            path.display()
        );
    }
    let max_id = ids.clone().max().into_scalar().elem::<i64>();
    let min_id = ids.min().into_scalar().elem::<i64>();
    if min_id < 0 || max_id >= vocab as i64 {
        anyhow::bail!(
            "{}: input_ids outside the vocabulary [0, {vocab}): found {min_id}..={max_id}",
            path.display()
        );
    }
    Ok(())
}

fn int_vec<B: burn::tensor::backend::Backend>(
    t: burn::tensor::Tensor<B, 2, burn::tensor::Int>,
) -> Vec<i64> {
    t.into_data()
        .convert::<i64>()
        .into_vec::<i64>()
        .unwrap_or_default()
}

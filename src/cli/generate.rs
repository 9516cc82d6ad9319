//! `burn-peft generate`: text continuation with the KV cache (RWKV6: the recurrent state).

use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::backend::{AutodiffBackend, Backend};
use burn_peft::backend::{BackendJob, run_on};
use burn_peft::model::LanguageModel;
use burn_peft::model::any::AnyModel;
use burn_peft::model::chat_template::ChatMessage;
use burn_peft::model::generate::{GenerationOptions, generate};

use super::model_args::ModelArgs;

#[derive(clap::Args, Debug)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Prompt text; repeat the flag for a batch.
    #[arg(long, required = true)]
    pub prompt: Vec<String>,
    /// Send each prompt as a user message through the tokenizer's chat template (with the
    /// generation prompt) and print only the reply.
    #[arg(long)]
    pub chat: bool,
    /// A system message before the user message (with --chat).
    #[arg(long, requires = "chat")]
    pub system: Option<String>,
    /// tokenizer.json to use instead of the model's.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    #[arg(long, default_value_t = 128)]
    pub max_new_tokens: usize,
    /// Sampling temperature; 0 decodes greedily.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Nucleus sampling mass.
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let device = args.model.device;
    run_on(device, Job(args))?
}

struct Job(GenerateArgs);

impl BackendJob for Job {
    type Output = anyhow::Result<()>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> anyhow::Result<()> {
        let args = self.0;
        match args.model.load::<B::InnerBackend>(&device)? {
            AnyModel::Decoder(model) => complete(&model, &args),
            AnyModel::Rwkv6(model) => complete(&model, &args),
            AnyModel::Encoder(_) => {
                anyhow::bail!("`generate` needs a causal LM (a decoder or RWKV6), not an encoder")
            }
        }
    }
}

/// Completes the prompts of `args` with `model` and prints them.
fn complete<B: Backend, M: LanguageModel<B>>(model: &M, args: &GenerateArgs) -> anyhow::Result<()> {
    let tokenizer = args.model.tokenizer(args.tokenizer.as_deref())?;
    let template = if args.chat {
        Some(tokenizer.chat_template(None)?)
    } else {
        None
    };
    let prompts = args
        .prompt
        .iter()
        .map(|p| match &template {
            Some(template) => {
                let mut messages: Vec<ChatMessage> = args
                    .system
                    .iter()
                    .map(|s| ChatMessage::new("system", s.as_str()))
                    .collect();
                messages.push(ChatMessage::new("user", p.as_str()));
                // The template writes BOS and the turn markers itself.
                tokenizer.encode(&template.render(&messages, true)?, false)
            }
            None => tokenizer.encode(p, true),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut eos = model.eos_token_ids().to_vec();
    eos.extend(tokenizer.eos_token_id);
    let options = GenerationOptions {
        max_new_tokens: args.max_new_tokens,
        temperature: args.temperature,
        top_p: args.top_p,
        seed: args.seed,
        use_cache: true,
        eos_token_ids: eos,
        pad_token_id: model.pad_token_id().or(tokenizer.pad_token_id).unwrap_or(0),
    };
    let started = Instant::now();
    let outputs = generate(model, &prompts, &options)?;
    let seconds = started.elapsed().as_secs_f64();
    let new_tokens: usize = outputs.iter().map(Vec::len).sum();
    for (prompt, new) in prompts.iter().zip(&outputs) {
        if args.chat {
            println!("{}", tokenizer.decode(new)?);
            continue;
        }
        let mut all = prompt.clone();
        all.extend(new);
        println!("{}", tokenizer.decode(&all)?);
    }
    eprintln!(
        "{new_tokens} tokens in {seconds:.2} s ({:.1} tokens/s)",
        new_tokens as f64 / seconds
    );
    Ok(())
}

//! `burn-peft inspect`: what a checkpoint holds, read from its metadata (no weights loaded).

use std::collections::BTreeMap;
use std::path::PathBuf;

use burn_peft::adapter::Targets;
use burn_peft::adapter::accounting::group_digits;
use burn_peft::io::checkpoint::Checkpoint;
use burn_peft::model::HfConfig;
use burn_peft::model::skeleton::{HeadSpec, ModelSkeleton};

#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// HF model folder.
    #[arg(long)]
    pub model: PathBuf,
}

pub fn run(args: InspectArgs) -> anyhow::Result<()> {
    let config = HfConfig::read(&args.model)?;
    let ckpt = Checkpoint::open_dir(&args.model)?;
    let architecture = config
        .json
        .get("architectures")
        .and_then(|a| a.get(0))
        .and_then(|a| a.as_str())
        .unwrap_or("?");
    println!("model:        {}", args.model.display());
    println!(
        "architecture: {architecture} (model_type {:?})",
        config.model_type
    );
    for key in [
        "num_hidden_layers",
        "hidden_size",
        "intermediate_size",
        "num_attention_heads",
        "num_key_value_heads",
        "attention_hidden_size",
        "head_size",
        "vocab_size",
    ] {
        if let Some(v) = config.json.get(key) {
            println!("{key:<22} {v}");
        }
    }
    let mut dtypes: BTreeMap<String, usize> = BTreeMap::new();
    let mut total = 0usize;
    for name in ckpt.names() {
        let count: usize = ckpt.shape(name).map(|s| s.iter().product()).unwrap_or(0);
        total += count;
        *dtypes
            .entry(format!("{:?}", ckpt.dtype(name).expect("listed")))
            .or_default() += count;
    }
    println!(
        "parameters:   {} in {} tensors across {} file(s)",
        group_digits(total),
        ckpt.names().len(),
        ckpt.paths().len()
    );
    for (dtype, count) in dtypes {
        println!("  {dtype:<6} {}", group_digits(count));
    }
    println!("linear layers that can take adapters (targets), [out, in]:");
    match ModelSkeleton::from_config(&config, HeadSpec::FromConfig) {
        Ok(skeleton) => {
            // Grouped by their name without the layer index (`model.layers.*.self_attn.q_proj`).
            let mut groups: Vec<(String, usize, [usize; 2], bool)> = Vec::new();
            for linear in &skeleton.linears {
                let pattern = linear
                    .name
                    .split('.')
                    .map(|part| {
                        if part.parse::<usize>().is_ok() {
                            "*"
                        } else {
                            part
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(".");
                let shape = [linear.out_features, linear.in_features];
                match groups.iter_mut().find(|g| g.0 == pattern) {
                    Some(group) => group.1 += 1,
                    None => groups.push((pattern, 1, shape, linear.is_head)),
                }
            }
            for (pattern, count, shape, head) in groups {
                let note = if head {
                    "  (head: not in all-linear)"
                } else {
                    ""
                };
                println!("  {pattern:<44} x{count:<4} {shape:?}{note}");
            }
            let defaults = match skeleton.default_targets() {
                Targets::Names(names) => names.join(", "),
                Targets::Pattern(pattern) => pattern,
            };
            println!("default targets (no adapter.targets): {defaults}");
        }
        Err(_) => {
            // Linear layers: 2-D `.weight` tensors other than embeddings, by their last name.
            let mut linears: BTreeMap<String, (usize, Vec<usize>)> = BTreeMap::new();
            for name in ckpt.names() {
                let Some(module) = name.strip_suffix(".weight") else {
                    continue;
                };
                let shape = ckpt.shape(name).unwrap_or(&[]);
                if shape.len() != 2 || module.contains("embed") || module.contains("embeddings") {
                    continue;
                }
                let short = module.rsplit('.').next().unwrap_or(module).to_string();
                let entry = linears.entry(short).or_insert((0, shape.to_vec()));
                entry.0 += 1;
            }
            for (short, (count, shape)) in linears {
                println!("  {short:<16} x{count:<4} {shape:?}");
            }
        }
    }
    Ok(())
}

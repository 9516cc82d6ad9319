//! BlinkDL's RWKV6 `.pth` releases (`RWKV-x060-World-*.pth`): a PyTorch pickle read with
//! burn-store's PyTorch reader (Burn's own; it parses the pickle without running it), the
//! tensors renamed to the HF layout (`emb` → `rwkv.embeddings`, `blocks.{i}.att` →
//! `rwkv.blocks.{i}.attention`, `ffn` → `feed_forward`, `ln0` → `pre_ln`, `ln_out` →
//! `rwkv.ln_out`) and the configuration read off their shapes, as the `rwkv` package does.

use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{DType, FloatDType};
use burn_store::pytorch::PytorchReader;

use super::LoadReport;
use super::precision::Precision;
use super::rwkv6::{Rwkv6, Rwkv6Config};
use crate::io::checkpoint::{Checkpoint, OutTensor, serialize};
use crate::{Error, Result};

/// Whether `path` names a PyTorch checkpoint.
pub fn is_pth(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "pth" || e == "pt")
}

/// BlinkDL's name for a tensor in HF's, or `None` for a name outside the scheme.
pub fn hf_name(blink: &str) -> Option<String> {
    if blink == "head.weight" {
        return Some(blink.into());
    }
    if let Some(rest) = blink.strip_prefix("emb.") {
        return Some(format!("rwkv.embeddings.{rest}"));
    }
    if let Some(rest) = blink.strip_prefix("ln_out.") {
        return Some(format!("rwkv.ln_out.{rest}"));
    }
    let rest = blink.strip_prefix("blocks.")?;
    let (index, part) = rest.split_once('.')?;
    index.parse::<usize>().ok()?;
    let (module, tail) = part.split_once('.')?;
    let module = match module {
        "att" => "attention",
        "ffn" => "feed_forward",
        "ln0" => "pre_ln",
        "ln1" | "ln2" => module,
        _ => return None,
    };
    Some(format!("rwkv.blocks.{index}.{module}.{tail}"))
}

/// Loads a BlinkDL `.pth` with its frozen base in `precision`.
pub fn load_as<B: Backend>(
    path: &Path,
    precision: Precision,
    device: &B::Device,
) -> Result<(Rwkv6<B>, LoadReport)> {
    let bad = |message: String| Error::BadFile {
        path: path.to_path_buf(),
        message,
    };
    let reader =
        PytorchReader::new(path).map_err(|e| bad(format!("not a readable PyTorch file: {e}")))?;
    let mut names = reader.keys();
    names.sort();
    let mut tensors = Vec::with_capacity(names.len());
    let mut stored = Vec::new();
    let mut unknown = Vec::new();
    for name in &names {
        let Some(hf) = hf_name(name) else {
            unknown.push(name.clone());
            continue;
        };
        let snapshot = reader.get(name).expect("listed by the reader");
        let data = snapshot
            .to_data()
            .map_err(|e| bad(format!("tensor `{name}`: {e:?}")))?;
        let dtype = match data.dtype {
            DType::BF16 => FloatDType::BF16,
            DType::F16 => FloatDType::F16,
            DType::F32 => FloatDType::F32,
            other => return Err(bad(format!("tensor `{name}` is {other:?}, not a float"))),
        };
        let shape = data.shape.to_vec();
        let values = data
            .convert::<f32>()
            .into_vec::<f32>()
            .map_err(|e| bad(format!("tensor `{name}`: {e:?}")))?;
        stored.push((dtype, values.len()));
        tensors.push((hf, shape, values, dtype));
    }
    if !unknown.is_empty() {
        return Err(bad(format!(
            "tensors outside BlinkDL's RWKV6 layout: {}",
            unknown.join(", ")
        )));
    }
    let shape_of = |name: &str| {
        tensors
            .iter()
            .find(|(n, ..)| n == name)
            .map(|(_, s, ..)| s.clone())
            .ok_or_else(|| bad(format!("missing tensor `{}`", blink_name(name))))
    };
    let embeddings = shape_of("rwkv.embeddings.weight")?;
    let faaaa = shape_of("rwkv.blocks.0.attention.time_faaaa")?;
    let ffn = shape_of("rwkv.blocks.0.feed_forward.key.weight")?;
    let layers = tensors
        .iter()
        .filter_map(|(n, ..)| {
            n.strip_prefix("rwkv.blocks.")?
                .split('.')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .max()
        .map_or(0, |l| l + 1);
    let [vocab, hidden] = embeddings[..] else {
        return Err(bad(format!("`emb.weight` has shape {embeddings:?}")));
    };
    let [heads, head_size] = faaaa[..] else {
        return Err(bad(format!(
            "`blocks.0.att.time_faaaa` has shape {faaaa:?}"
        )));
    };
    let mut config = Rwkv6Config::finch(vocab, hidden, layers, head_size);
    config.attention_hidden_size = heads * head_size;
    config.intermediate_size = ffn[0];
    // The dtype most of the weights are stored in.
    let source = [FloatDType::BF16, FloatDType::F16, FloatDType::F32]
        .into_iter()
        .max_by_key(|d| {
            stored
                .iter()
                .filter(|(s, _)| s == d)
                .map(|(_, n)| n)
                .sum::<usize>()
        })
        .unwrap_or(FloatDType::F32);
    let dtype = precision.resolve_on::<B>(source, device);
    let out = tensors
        .into_iter()
        .map(|(name, shape, values, stored)| OutTensor::f32_as(name, shape, &values, stored))
        .collect();
    let ckpt = Checkpoint::from_bytes(path, serialize(path, out, None)?)?.with_dtype(dtype);
    let model = Rwkv6::from_checkpoint(config, &ckpt, device).map_err(|e| match e {
        // The HF names in an error mean nothing to the owner of a .pth: name BlinkDL's.
        Error::BadFile { message, .. } => bad(rename_in(&message)),
        other => other,
    })?;
    Ok((model, LoadReport::of(&ckpt)))
}

/// HF's name for a tensor in BlinkDL's (for error messages).
fn blink_name(hf: &str) -> String {
    rename_in(hf)
}

/// `text` with HF tensor-name prefixes replaced by BlinkDL's.
fn rename_in(text: &str) -> String {
    text.replace("rwkv.embeddings.", "emb.")
        .replace("rwkv.ln_out.", "ln_out.")
        .replace(".attention.", ".att.")
        .replace(".feed_forward.", ".ffn.")
        .replace(".pre_ln.", ".ln0.")
        .replace("rwkv.blocks.", "blocks.")
}

#[cfg(test)]
mod tests {
    use super::{hf_name, rename_in};

    #[test]
    fn blink_names_map_to_hf_names_and_back() {
        for (blink, hf) in [
            ("emb.weight", "rwkv.embeddings.weight"),
            ("blocks.0.ln0.bias", "rwkv.blocks.0.pre_ln.bias"),
            (
                "blocks.3.att.time_maa_w1",
                "rwkv.blocks.3.attention.time_maa_w1",
            ),
            (
                "blocks.11.ffn.key.weight",
                "rwkv.blocks.11.feed_forward.key.weight",
            ),
            ("blocks.2.ln2.weight", "rwkv.blocks.2.ln2.weight"),
            ("ln_out.weight", "rwkv.ln_out.weight"),
            ("head.weight", "head.weight"),
        ] {
            assert_eq!(hf_name(blink).as_deref(), Some(hf));
            assert_eq!(rename_in(hf), blink);
        }
        assert_eq!(hf_name("blocks.x.att.key.weight"), None);
        assert_eq!(hf_name("optimizer.state"), None);
    }
}

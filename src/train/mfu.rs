//! Model FLOPs utilisation (MFU) of PEFT training: the FLOPs a step needs per token, and the
//! dense peak of the GPU it ran on.
//!
//! How a token is counted ([`LlamaShape::train_flops_per_token`]), per weight of a `[in, out]`
//! linear (2 FLOPs a multiply-add):
//! - the frozen base (every linear and the LM head): 2 forward + 2 for the input's gradient =
//!   **4** (no weight gradient: it is frozen);
//! - attention's two products over the whole `s × s` score matrix, as computed (the causal
//!   mask's half included): `4·s·h` forward per layer, twice that backward = **12·s·h** per
//!   layer (PaLM's attention term);
//! - a trainable adapter weight: forward, input gradient, weight gradient = **6**; a frozen one
//!   (LoRA-FA's `A`) **4**.
//!
//! Recomputation (activation checkpointing), elementwise ops and the optimizer are not
//! counted: MFU counts the model's FLOPs, not the hardware's.

use burn::tensor::FloatDType;

use crate::adapter::Method;
use crate::backend::DeviceInfo;
use crate::model::decoder::DecoderConfig;

/// A Llama-family decoder with an adapter of one rank on each of its linears (q, k, v, o,
/// gate, up, down; not the LM head, as PEFT's `all-linear`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LlamaShape {
    pub hidden: usize,
    pub intermediate: usize,
    pub layers: usize,
    pub vocab: usize,
    pub heads: usize,
    pub kv_heads: usize,
    /// Tokens per row (the attention term grows with it).
    pub seq: usize,
}

impl LlamaShape {
    /// The shape of a decoder built from `config`, trained on rows of `seq` tokens.
    pub fn of(config: &DecoderConfig, seq: usize) -> Self {
        Self {
            hidden: config.hidden_size,
            intermediate: config.intermediate_size,
            layers: config.num_layers,
            vocab: config.vocab_size,
            heads: config.num_heads,
            kv_heads: config.num_kv_heads,
            seq,
        }
    }

    /// `(in, out)` of one layer's linears.
    fn layer_linears(&self) -> [(usize, usize); 7] {
        let (h, i) = (self.hidden, self.intermediate);
        let kv = self.kv_heads * (h / self.heads.max(1));
        [(h, h), (h, kv), (h, kv), (h, h), (h, i), (h, i), (i, h)]
    }

    /// Weights of every linear the forward pass multiplies by, LM head included (embeddings
    /// are a lookup, norms elementwise).
    pub fn base_linear_weights(&self) -> usize {
        let layer: usize = self.layer_linears().iter().map(|(i, o)| i * o).sum();
        self.layers * layer + self.hidden * self.vocab
    }

    /// Model FLOPs per trained token (see the module docs for what is counted).
    pub fn train_flops_per_token(&self, method: Method, rank: usize) -> f64 {
        let base = 4.0 * self.base_linear_weights() as f64;
        let attention = 12.0 * (self.seq * self.hidden * self.layers) as f64;
        let r = rank as f64;
        let adapter: f64 = self
            .layer_linears()
            .iter()
            .map(|&(i, o)| {
                let (i, o) = (i as f64, o as f64);
                match method {
                    Method::LoraFa => 4.0 * r * i + 6.0 * r * o,
                    Method::Lotr => 6.0 * (r * (i + o) + r * r),
                    Method::Lora | Method::Pissa | Method::Sorsa => 6.0 * r * (i + o),
                }
            })
            .sum::<f64>()
            * self.layers as f64;
        base + attention + adapter
    }
}

/// Dense (no sparsity) peak TFLOPS of common NVIDIA GPUs, by a substring of the name CUDA
/// reports: tensor-core bf16/f16 with f32 accumulation, and the CUDA cores' f32 (an f32 matmul
/// on TF32 tensor cores would have a higher peak: pass `--peak-tflops`). NVIDIA's data sheets;
/// more specific names first.
const PEAKS: &[(&str, Option<f64>, f64)] = &[
    ("H200", Some(989.4), 66.9),
    ("GH200", Some(989.4), 66.9),
    ("H100 PCIe", Some(756.5), 51.2),
    ("H100", Some(989.4), 66.9),
    ("A100", Some(312.0), 19.5),
    ("L40S", Some(362.1), 91.6),
    ("L40", Some(181.0), 90.5),
    ("L4", Some(121.0), 30.3),
    ("RTX 4090", Some(165.2), 82.6),
    ("RTX 3090", Some(71.0), 35.6),
    ("V100", None, 15.7),
    ("T4", None, 8.1),
];

/// The dense peak in TFLOPS of the GPU named `gpu` for matmuls in `dtype`, where the table
/// knows it.
pub fn dense_peak_tflops(gpu: &str, dtype: FloatDType) -> Option<f64> {
    let (_, half, single) = PEAKS.iter().find(|(name, _, _)| gpu.contains(name))?;
    match dtype {
        FloatDType::BF16 | FloatDType::F16 => *half,
        FloatDType::F32 => Some(*single),
        _ => None,
    }
}

/// The GPU a run went to, by name: CUDA devices, and wgpu adapters that are not a CPU driver
/// (llvmpipe has no meaningful peak).
pub fn gpu_name(device: &DeviceInfo) -> Option<&str> {
    let adapter = device.adapter.as_deref()?;
    let gpu = device.backend.starts_with("burn-cuda")
        || (device.backend.starts_with("burn-wgpu") && !device.backend.contains("Cpu adapter"));
    gpu.then_some(adapter)
}

/// MFU in percent: `flops_per_token · tokens_per_second` over `peak_tflops`.
pub fn mfu_percent(flops_per_token: f64, tokens_per_second: f64, peak_tflops: f64) -> f64 {
    100.0 * flops_per_token * tokens_per_second / (peak_tflops * 1e12)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn llama_2_7b(seq: usize) -> LlamaShape {
        LlamaShape {
            hidden: 4096,
            intermediate: 11008,
            layers: 32,
            vocab: 32000,
            heads: 32,
            kv_heads: 32,
            seq,
        }
    }

    #[test]
    fn llama_2_7b_linear_weights_match_its_published_size() {
        // Llama-2-7B has 6,738,415,616 parameters: two 32000 × 4096 embeddings (input and
        // head), 65 RMSNorm weights of 4096, the rest the layers' linears. The head is a
        // linear, the input embedding and the norms are not.
        let total = 6_738_415_616usize;
        let not_multiplied = 32000 * 4096 + 65 * 4096;
        assert_eq!(llama_2_7b(1).base_linear_weights(), total - not_multiplied);
    }

    #[test]
    fn grouped_query_heads_shrink_k_and_v_only() {
        let full = llama_2_7b(1);
        let grouped = LlamaShape {
            kv_heads: 8,
            ..full
        };
        // k and v go from 4096 to 1024 outputs in each of the 32 layers.
        let saved = 32 * 2 * 4096 * (4096 - 1024);
        assert_eq!(
            full.base_linear_weights() - grouped.base_linear_weights(),
            saved
        );
    }

    #[test]
    fn a_step_counts_the_frozen_base_four_times_and_attention_by_length() {
        let (short, long) = (llama_2_7b(1024), llama_2_7b(2048));
        let n = short.base_linear_weights() as f64;
        let lora = short.train_flops_per_token(Method::Lora, 16);
        // The adapters (rank 16 on 7 linears × 32 layers) are well under 1 % of the base.
        let attention = 12.0 * 1024.0 * 4096.0 * 32.0;
        assert!(lora > 4.0 * n + attention);
        assert!(lora < 1.01 * (4.0 * n + attention));
        // Doubling the length doubles the attention term alone.
        let grown = long.train_flops_per_token(Method::Lora, 16) - lora;
        assert!((grown - attention).abs() < 1.0);
        // LoRA-FA's frozen A costs no weight gradient.
        assert!(short.train_flops_per_token(Method::LoraFa, 16) < lora);
    }

    #[test]
    fn peaks_are_found_by_the_name_cuda_reports() {
        let bf16 = FloatDType::BF16;
        assert_eq!(
            dense_peak_tflops("NVIDIA H100 80GB HBM3", bf16),
            Some(989.4)
        );
        assert_eq!(dense_peak_tflops("NVIDIA H100 PCIe", bf16), Some(756.5));
        assert_eq!(dense_peak_tflops("NVIDIA H200", bf16), Some(989.4));
        assert_eq!(
            dense_peak_tflops("NVIDIA A100-SXM4-80GB", FloatDType::F32),
            Some(19.5)
        );
        // No bf16 tensor cores on a V100; an unknown GPU has no entry.
        assert_eq!(dense_peak_tflops("Tesla V100-SXM2-16GB", bf16), None);
        assert_eq!(dense_peak_tflops("Some Future GPU", bf16), None);
    }

    #[test]
    fn llvmpipe_and_the_cpu_are_not_gpus() {
        let device = |backend: &str, adapter: &str| DeviceInfo {
            device: String::new(),
            backend: backend.into(),
            adapter: Some(adapter.into()),
            driver: None,
            fusion: None,
            matmul: None,
        };
        let llvmpipe = device("burn-wgpu (Vulkan, Cpu adapter)", "llvmpipe (LLVM 15.0.6)");
        assert_eq!(gpu_name(&llvmpipe), None);
        assert_eq!(gpu_name(&device("burn-flex", "Intel Xeon")), None);
        let h100 = device("burn-cuda", "NVIDIA H100 80GB HBM3");
        assert_eq!(gpu_name(&h100), Some("NVIDIA H100 80GB HBM3"));
        let discrete = device("burn-wgpu (Vulkan, DiscreteGpu adapter)", "NVIDIA L4");
        assert_eq!(gpu_name(&discrete), Some("NVIDIA L4"));
    }

    #[test]
    fn mfu_is_achieved_over_peak() {
        // 1 GFLOP a token at 100k tokens/s on a 1000-TFLOPS GPU: 10 %.
        assert!((mfu_percent(1e9, 1e5, 1000.0) - 10.0).abs() < 1e-9);
    }
}

//! Decoder models: parity with transformers on the fixtures, generation, the PEFT adapter
//! fixture, stories260K (HF and llama2.c), exactness on real weights, sliding-window attention,
//! checkpoint formats and bad input.

#[macro_use]
#[path = "support/cpu_backends.rs"]
mod cpu_backends;
#[path = "decoder/common.rs"]
mod common;

#[path = "decoder/cache.rs"]
mod cache;
#[path = "decoder/cli.rs"]
mod cli;
#[path = "decoder/errors.rs"]
mod errors;
#[path = "decoder/exactness.rs"]
mod exactness;
#[path = "decoder/formats.rs"]
mod formats;
#[path = "decoder/parity.rs"]
mod parity;
#[path = "decoder/peft_adapter.rs"]
mod peft_adapter;
#[path = "decoder/precision.rs"]
mod precision;
#[path = "decoder/rope_kernel.rs"]
mod rope_kernel;
#[path = "decoder/rwkv6.rs"]
mod rwkv6;
#[path = "decoder/rwkv6_kernels.rs"]
mod rwkv6_kernels;
#[path = "decoder/sliding_window.rs"]
mod sliding_window;
#[path = "decoder/sliding_window_config.rs"]
mod sliding_window_config;
#[path = "decoder/stories.rs"]
mod stories;
#[path = "decoder/targets.rs"]
mod targets;

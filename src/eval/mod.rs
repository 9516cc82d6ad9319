//! Evaluation with the scoring rules of METHODS.md ("Prompts and scoring"): GSM-8K and MATH
//! accuracy from greedy completions, HumanEval pass@k with programs run in a confined
//! subprocess, GLUE dev metrics from a classification head, and perplexity.
//!
//! One concept per module:
//! - [`task`]: the task names, their shipped data and default generation lengths.
//! - [`gsm8k`], [`math`], [`humaneval`]: reading each benchmark and its scoring rule.
//! - [`sandbox`]: running untrusted Python (what is enforced where is documented there).
//! - [`glue`], [`metrics`], [`classify`]: GLUE task metrics and label conventions (the TSVs
//!   are read by [`crate::data::glue`]), the metrics, and running a classifier over pairs.
//! - [`perplexity`]: mean token NLL of a file.
//! - [`generation`], [`progress`]: batched greedy completion with a progress line.
//! - [`completions`]: completions made elsewhere, scored without a model; [`jsonl`]: the
//!   (optionally gzipped) JSON-lines files they and the benchmarks come in.
//! - [`results`]: `results.json` and the per-example records.
//! - [`run`]: one evaluation from data to results.

pub mod classify;
pub mod completions;
pub mod generation;
pub mod glue;
pub mod gsm8k;
pub mod humaneval;
pub mod jsonl;
pub mod math;
pub mod metrics;
pub mod perplexity;
pub mod progress;
pub mod results;
pub mod run;
pub mod sandbox;
pub mod task;

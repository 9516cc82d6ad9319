//! MATH: gold extraction on the shipped sets, and Hendrycks equivalence on answers taken from
//! MATH500 (gold as the dataset writes it, prediction as a model might).

use burn_peft::eval::math::{
    extract_prediction, is_correct, is_equiv, last_boxed, normalize, read_problems,
};

use crate::common::repo;

#[test]
fn every_gold_extracts_and_normalises() {
    let full = read_problems(&repo("datasets/math/math_test_5000.jsonl")).unwrap();
    assert_eq!(full.len(), 5000);
    let math500 = read_problems(&repo("datasets/math/math500_test.jsonl")).unwrap();
    assert_eq!(math500.len(), 500);
    // MATH500's `answer` is the last boxed expression of its solution.
    for p in &math500 {
        assert_eq!(
            last_boxed(&p.solution),
            Some(p.gold.as_str()),
            "{}",
            p.solution
        );
    }
    // No gold fails normalisation …
    let failing: Vec<&str> = full
        .iter()
        .chain(&math500)
        .map(|p| p.gold.as_str())
        .filter(|g| normalize(g).is_err())
        .collect();
    assert!(
        failing.is_empty(),
        "golds failing to normalise: {failing:?}"
    );
    // … and a completion ending in the gold scores correct.
    for p in &math500 {
        let completion = format!("Some steps.\nThe answer is: {}", p.gold);
        assert!(is_correct(&completion, &p.gold), "{}", p.gold);
    }
}

#[test]
fn prediction_is_cut_at_the_first_period_newline() {
    assert_eq!(
        extract_prediction("So x=2. The answer is: \\frac{1}{2}.\nDone. The end.").as_deref(),
        Some("\\frac{1}{2}")
    );
    assert_eq!(
        extract_prediction("The answer is: 5.").as_deref(),
        Some("5")
    );
    assert_eq!(
        extract_prediction("The answer is: 3 The answer is: 4.5.\n").as_deref(),
        Some("4.5")
    );
    assert_eq!(extract_prediction("no marker, 5"), None);
    assert!(!is_correct("it is \\boxed{5}", "5"), "no marker: wrong");
}

/// (prediction, MATH500 gold) pairs that must be equivalent.
const EQUIVALENT: &[(&str, &str)] = &[
    ("0.5", "\\frac{1}{2}"),
    (".5", "\\frac{1}{2}"),
    ("\\dfrac12", "\\frac{1}{2}"),
    ("1/2", "\\frac{1}{2}"),
    ("\\frac{17}{50}", "\\dfrac{17}{50}"),
    ("0.34", "\\dfrac{17}{50}"),
    ("\\frac{3}{4}", "\\frac 34"),
    ("\\frac{1}{4}", "\\frac14"),
    ("\\frac{9}{19}", "\\frac9{19}"),
    ("\\tfrac{4}{3}", "\\frac43"),
    ("10", "10\\%"),
    ("10\\%", "10"),
    ("10%", "10"),
    ("90", "90^\\circ"),
    ("120^{\\circ}", "120^\\circ"),
    ("11\\sqrt{2}", "11\\sqrt2"),
    ("\\sqrt 5", "\\sqrt{5}"),
    ("x = 5", "x=5"),
    ("5", "x=5"),
    ("[-2,7]", "x \\in [-2,7]"),
    ("x\\in[-2, 7]", "x \\in [-2,7]"),
    ("(3,4]", "(3,4]"),
    ("(-\\infty, 0]", "(-\\infty, 0]"),
    ("(2,12)\\cup(12,102)", "(2,12) \\cup (12,102)"),
    (
        "\\left( 3, \\frac{\\pi}{2} \\right)",
        "\\left( 3, \\frac{\\pi}{2} \\right)",
    ),
    (
        "(3, \\frac{\\pi}{2})",
        "\\left( 3, \\frac{\\pi}{2} \\right)",
    ),
    ("C", "\\text{(C)}"),
    ("(C)", "\\text{(C)}"),
    ("\\text{(E)}", "\\text{(E)}"),
    ("Evelyn", "\\text{Evelyn}"),
    ("5.4", "5.4 \\text{ cents}"),
    ("15", "15\\mbox{ cm}^2"),
    ("18.90", "\\$18.90"),
    ("18.9", "\\$18.90"),
    ("32348", "\\$32,\\!348"),
    ("10080", "10,\\!080"),
    ("11111111100", "11,\\! 111,\\! 111,\\! 100"),
    ("58500", "58,500"),
    ("137.5", "137 \\frac{1}{2}"),
    ("1.8", "1\\frac{4}{5}"),
    ("-0.375", "-\\frac{3}{8}"),
    ("-\\frac{24}{25}", "-\\frac{24}{25}"),
    ("0.1428571", "\\frac{1}{7}"),
    ("y=-2x", "y = -2x"),
    (
        "\\begin{pmatrix} -1 \\\\ 16 \\end{pmatrix}",
        "\\begin{pmatrix}-1\\\\16\\end{pmatrix}",
    ),
    ("1\\pm\\sqrt{19}", "1 \\pm \\sqrt{19}"),
];

/// Pairs that must NOT be equivalent.
const DIFFERENT: &[(&str, &str)] = &[
    ("\\frac{1}{3}", "\\frac{1}{2}"),
    ("0.33", "\\frac{1}{3}"),
    ("(2,5)", "[2,5)"),
    ("(3,4)", "(3,4]"),
    ("B", "\\text{(C)}"),
    ("91", "90^\\circ"),
    ("-5", "5"),
    ("\\sqrt{3}", "3"),
    ("\\frac{2}{3}", "\\frac{3}{2}"),
    ("1,2", "12"),
    ("2\\sqrt{5}", "\\sqrt{10}"),
    ("", "5"),
    ("10.01", "10"),
    ("(1,-16,-4,43)", "(1,-16,-4,42)"),
    ("\\text{even}", "\\text{odd}"),
];

#[test]
fn equivalent_answers_from_math500() {
    for (prediction, gold) in EQUIVALENT {
        assert!(
            is_equiv(prediction, gold),
            "{prediction:?} vs {gold:?}: {:?} vs {:?}",
            normalize(prediction),
            normalize(gold)
        );
    }
    assert!(EQUIVALENT.len() >= 30);
}

#[test]
fn different_answers_are_rejected() {
    for (prediction, gold) in DIFFERENT {
        assert!(
            !is_equiv(prediction, gold),
            "{prediction:?} vs {gold:?}: {:?} vs {:?}",
            normalize(prediction),
            normalize(gold)
        );
    }
}

#[test]
fn normalisation_failure_falls_back_to_raw_equality() {
    // The reference raises on these; Hendrycks' is_equiv then compares the raw strings: equal
    // is correct, anything else wrong (never "exception = correct").
    for broken in ["\\frac", "2\\sqrt", "3 \\text{ m} \\text{ s}"] {
        assert!(normalize(broken).is_err(), "{broken}");
        assert!(is_equiv(broken, broken), "{broken}");
        assert!(!is_equiv(broken, "2"), "{broken}");
        assert!(!is_equiv("2", broken), "{broken}");
    }
    // Raw, not normalised: a space is a difference here.
    assert!(!is_equiv("2\\sqrt", "2 \\sqrt"));
    assert!(is_correct("The answer is: 2\\sqrt", "2\\sqrt"));
    assert!(!is_correct("The answer is: \\frac", "\\frac{1}{2}"));
}

//! GSM-8K scoring as METHODS.md (and MetaMath's `eval_gsm8k.py`) defines it: the gold answer is
//! the number after `#### `; the prediction is the first number after the last
//! `The answer is: `, commas removed, fractions evaluated, rounded to an integer (Python's
//! `round`: halves to even); correct when numerically equal. Without the marker, the last number
//! of the completion is taken instead.
//!
//! The reference pattern reads at most one separator, so `The answer is: 1,450,000` predicts
//! 1450, as the published scores were computed; it is kept for comparability. The fallback has
//! no reference, and reads whole numbers with thousands separators (`1,450,000`), since the last
//! match of the reference pattern there would be `,000`.

use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;
use serde::Deserialize;

use super::jsonl;
use crate::Result;

/// The marker a trained model writes before its final answer.
pub const ANSWER_MARKER: &str = "The answer is: ";

/// The reference's number pattern `[-+]?\d*[.,/]?\d+`, with ASCII digits (Python's `\d` also
/// matches other scripts' digits, which `float` would then reject anyway).
static NUMBER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[-+]?[0-9]*[.,/]?[0-9]+").expect("valid regex"));

/// A whole number for the fallback: thousands groups, decimals, an optional `/denominator`.
static FULL_NUMBER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"[-+]?(?:[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?|[0-9]+(?:\.[0-9]+)?|\.[0-9]+)(?:/[0-9]+)?",
    )
    .expect("valid regex")
});

/// One test problem.
#[derive(Debug, Clone)]
pub struct Problem {
    pub question: String,
    /// The full reference solution (ends in `#### N`).
    pub solution: String,
    pub gold: f64,
}

#[derive(Deserialize)]
struct Row {
    question: String,
    answer: String,
}

/// Reads a GSM-8K jsonl (`{question, answer}` rows); a row whose answer has no parsable
/// `#### N` is an error naming the file and line.
pub fn read_problems(path: &Path) -> Result<Vec<Problem>> {
    jsonl::read::<Row>(path)?
        .into_iter()
        .map(|jsonl::Line { line, row }| {
            let gold = gold_answer(&row.answer).ok_or_else(|| {
                jsonl::bad_line(path, line, "`answer` has no number after `#### `")
            })?;
            Ok(Problem {
                question: row.question,
                solution: row.answer,
                gold,
            })
        })
        .collect()
}

/// The number after `#### ` in a reference solution, commas removed.
pub fn gold_answer(solution: &str) -> Option<f64> {
    let (_, tail) = solution.split_once("#### ")?;
    parse_plain_number(&tail.trim().replace(',', ""))
}

/// The predicted answer of a completion (see the module docs), or `None` when there is none.
pub fn extract_prediction(completion: &str) -> Option<f64> {
    let number = match completion.rsplit_once(ANSWER_MARKER) {
        Some((_, tail)) => NUMBER.find(tail.trim())?,
        None => FULL_NUMBER.find_iter(completion).last()?,
    };
    evaluate(number.as_str()).map(f64::round_ties_even)
}

/// Whether `completion` answers `gold`.
pub fn is_correct(completion: &str, gold: f64) -> bool {
    extract_prediction(completion) == Some(gold)
}

/// The value of a matched number: commas removed, `a/b` divided. A zero denominator or an
/// overflow gives `None`: no answer (the reference would take the numerator of `a/0`, which is
/// no fraction's value).
fn evaluate(matched: &str) -> Option<f64> {
    let text = matched.replace(',', "");
    let value = match text.split_once('/') {
        Some((numerator, denominator)) => {
            let denominator = parse_plain_number(denominator)?;
            if denominator == 0.0 {
                return None;
            }
            parse_plain_number(numerator)? / denominator
        }
        None => parse_plain_number(&text)?,
    };
    value.is_finite().then_some(value)
}

/// A decimal number as Python's `float` reads the matched forms (`-3`, `+.5`, `12.0`).
fn parse_plain_number(text: &str) -> Option<f64> {
    let value: f64 = text.trim().parse().ok()?;
    value.is_finite().then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_then_first_number() {
        assert_eq!(
            extract_prediction("so 3 + 4 = 7. The answer is: 7"),
            Some(7.0)
        );
        assert_eq!(
            extract_prediction("The answer is: 5 The answer is: 1,234 apples"),
            Some(1234.0)
        );
        assert_eq!(extract_prediction("no numbers at all"), None);
        assert_eq!(extract_prediction("The answer is: none"), None);
    }
}

//! MATH scoring as METHODS.md defines it (MetaMath's `eval_math.py` with Hendrycks' `is_equiv`).
//!
//! - Gold: the content of the last `\boxed{…}` (or `\fbox{…}`) of the solution, braces balanced,
//!   or MATH500's `answer` field.
//! - Prediction: the text after the last `The answer is: `, cut at the first `.\n`, trimmed, one
//!   trailing period removed. No marker: no prediction (wrong).
//! - Equivalence: both sides go through Hendrycks' `strip_string` normalisation ([`normalize`]);
//!   equal strings, or equal numbers within a relative tolerance of 1e-4, are equivalent.
//! - When either side fails to normalise (the reference raises, e.g. on a trailing `\frac` or
//!   two `\text{ ` units), the raw strings are compared: equal is correct, anything else wrong.
//!   That is Hendrycks' `is_equiv` (`hendrycks/math`, `modeling/math_equivalence.py`:
//!   `except: return str1 == str2`). A failure never counts as correct by itself, which is what
//!   METHODS.md forbids copying.
//!
//! Beyond the reference normalisation (each one only makes equal answers compare equal):
//! `\sqrt 2` with a space also becomes `\sqrt{2}` (the reference builds `\sqrt{ }2`); `\mbox{ …}`
//! units go like `\text{ …}`; a leading `x \in` goes like a leading `x =`; `\text{…}`,
//! `\textbf{…}` and `\mbox{…}` wrappers are unwrapped and a lone `(C)` becomes `C` (multiple
//! choice answers); numbers compare numerically (decimals, thousands separators, a trailing `%`,
//! `\frac{a}{b}`, `-\frac{a}{b}` and mixed numbers such as `1\frac{4}{5}`).

use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;
use serde::Deserialize;

use super::jsonl;
use crate::Result;

pub use super::gsm8k::ANSWER_MARKER;

/// Relative tolerance of the numeric comparison.
pub const RELATIVE_TOLERANCE: f64 = 1e-4;

/// One test problem.
#[derive(Debug, Clone)]
pub struct Problem {
    pub problem: String,
    pub solution: String,
    pub gold: String,
}

#[derive(Deserialize)]
struct Row {
    problem: String,
    #[serde(default)]
    solution: Option<String>,
    /// MATH500's ready-made answer.
    #[serde(default)]
    answer: Option<String>,
}

/// Reads a MATH jsonl (`{problem, solution}` rows, MATH500 also `answer`); a row without an
/// `answer` and without a `\boxed{…}` in its solution is an error naming the file and line.
pub fn read_problems(path: &Path) -> Result<Vec<Problem>> {
    jsonl::read::<Row>(path)?
        .into_iter()
        .map(|jsonl::Line { line, row }| {
            let solution = row.solution.unwrap_or_default();
            let gold = match row.answer {
                Some(answer) => answer,
                None => last_boxed(&solution).map(str::to_string).ok_or_else(|| {
                    jsonl::bad_line(
                        path,
                        line,
                        "no `answer` field and no balanced \\boxed{...} in `solution`",
                    )
                })?,
            };
            Ok(Problem {
                problem: row.problem,
                solution,
                gold,
            })
        })
        .collect()
}

/// The content of the last `\boxed{…}` / `\fbox{…}` (braces balanced), or of `\boxed x` up to
/// the closing `$`.
pub fn last_boxed(solution: &str) -> Option<&str> {
    let start = solution
        .rfind("\\boxed")
        .map(|i| (i, "\\boxed".len()))
        .or_else(|| solution.rfind("\\fbox").map(|i| (i, "\\fbox".len())))?;
    let after = &solution[start.0 + start.1..];
    if let Some(spaced) = after.strip_prefix(' ') {
        let end = spaced.find('$').unwrap_or(spaced.len());
        return Some(spaced[..end].trim());
    }
    let body = after.strip_prefix('{')?;
    let mut depth = 1usize;
    for (i, c) in body.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&body[..i]);
                }
            }
            _ => {}
        }
    }
    None
}

/// The predicted answer of a completion (see the module docs), or `None` without the marker.
pub fn extract_prediction(completion: &str) -> Option<String> {
    let (_, tail) = completion.rsplit_once(ANSWER_MARKER)?;
    let cut = tail.split(".\n").next().unwrap_or("").trim();
    let cut = cut.strip_suffix('.').unwrap_or(cut);
    Some(cut.trim().to_string())
}

/// Whether the completion's prediction is equivalent to `gold`.
pub fn is_correct(completion: &str, gold: &str) -> bool {
    extract_prediction(completion).is_some_and(|p| is_equiv(&p, gold))
}

/// Why an answer could not be normalised (the reference raises here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizeError(pub &'static str);

impl std::fmt::Display for NormalizeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// Hendrycks equivalence: equal normal forms, or equal values within [`RELATIVE_TOLERANCE`].
/// When a side fails to normalise, the raw strings must be equal (Hendrycks' fallback).
pub fn is_equiv(prediction: &str, gold: &str) -> bool {
    let (Ok(a), Ok(b)) = (normalize(prediction), normalize(gold)) else {
        return prediction == gold;
    };
    if a == b {
        return true;
    }
    match (numeric_value(&a), numeric_value(&b)) {
        (Some(x), Some(y)) => x == y || (x - y).abs() <= RELATIVE_TOLERANCE * x.abs().max(y.abs()),
        _ => false,
    }
}

/// Hendrycks' `strip_string`, step by step, plus the extensions of the module docs.
pub fn normalize(answer: &str) -> Result<String, NormalizeError> {
    let mut s = answer
        .replace('\n', "")
        .replace("\\!", "")
        .replace("\\\\", "\\")
        .replace("tfrac", "frac")
        .replace("dfrac", "frac")
        .replace("\\left", "")
        .replace("\\right", "")
        .replace("^{\\circ}", "")
        .replace("^\\circ", "")
        .replace("\\$", "");
    s = remove_right_units(&s)?;
    s = s
        .replace("\\%", "")
        .replace(" .", " 0.")
        .replace("{.", "{0.");
    if s.is_empty() {
        return Ok(s);
    }
    if s.starts_with('.') {
        s.insert(0, '0');
    }
    s = strip_leading_variable(&s);
    s = fix_sqrt(&s)?;
    s = s.replace(' ', "");
    s = fix_fracs(&s)?;
    if s == "0.5" {
        s = "\\frac{1}{2}".to_string();
    }
    s = fix_a_slash_b(&s);
    Ok(unwrap_text(&s))
}

/// `5.4 \text{ cents}` → `5.4`: a `\text{ ` (or `\mbox{ `) with a space only ever starts units.
/// Two of them is a failure, as the reference's assertion.
fn remove_right_units(s: &str) -> Result<String, NormalizeError> {
    let mut s = s.to_string();
    for marker in ["\\text{ ", "\\mbox{ "] {
        let parts: Vec<&str> = s.split(marker).collect();
        match parts.len() {
            1 => {}
            2 => s = parts[0].to_string(),
            _ => return Err(NormalizeError("more than one unit annotation")),
        }
    }
    Ok(s)
}

/// `k = 5` → `5` when the left side is at most two characters (the reference's rule), and
/// `x \in [2,5)` → `[2,5)`.
fn strip_leading_variable(s: &str) -> String {
    static IN: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^\s*[A-Za-z]\s*\\in\s*").expect("valid regex"));
    if let Some(m) = IN.find(s) {
        return s[m.end()..].to_string();
    }
    let parts: Vec<&str> = s.split('=').collect();
    if parts.len() == 2 && parts[0].chars().count() <= 2 {
        return parts[1].to_string();
    }
    s.to_string()
}

/// `\sqrt3` → `\sqrt{3}` (the first character becomes the argument); `\sqrt` with nothing after
/// it is a failure.
fn fix_sqrt(s: &str) -> Result<String, NormalizeError> {
    let mut parts = s.split("\\sqrt");
    let mut out = parts.next().unwrap_or_default().to_string();
    for part in parts {
        let part = part.trim_start_matches(' ');
        let mut chars = part.chars();
        match chars.next() {
            None => return Err(NormalizeError("\\sqrt without an argument")),
            Some('{') => {
                out.push_str("\\sqrt");
                out.push_str(part);
            }
            Some(first) => {
                out.push_str("\\sqrt{");
                out.push(first);
                out.push('}');
                out.push_str(chars.as_str());
            }
        }
    }
    Ok(out)
}

/// `\frac12` → `\frac{1}{2}`, `\frac1{72}` → `\frac{1}{72}`; a one-character tail leaves the
/// string as it was; `\frac` with nothing after it is a failure (all as the reference).
fn fix_fracs(s: &str) -> Result<String, NormalizeError> {
    let mut parts = s.split("\\frac");
    let mut out = parts.next().unwrap_or_default().to_string();
    for part in parts {
        out.push_str("\\frac");
        let mut chars = part.chars();
        let a = chars
            .next()
            .ok_or(NormalizeError("\\frac without arguments"))?;
        if a == '{' {
            out.push_str(part);
            continue;
        }
        let Some(b) = chars.next() else {
            return Ok(s.to_string());
        };
        let rest = chars.as_str();
        if b == '{' {
            out.push_str(&format!("{{{a}}}{{{rest}"));
        } else {
            out.push_str(&format!("{{{a}}}{{{b}}}{rest}"));
        }
    }
    Ok(out)
}

/// `3/4` → `\frac{3}{4}` when both sides are integers written canonically.
fn fix_a_slash_b(s: &str) -> String {
    let parts: Vec<&str> = s.split('/').collect();
    if let [a, b] = parts[..]
        && let (Ok(x), Ok(y)) = (a.trim().parse::<i128>(), b.trim().parse::<i128>())
        && format!("{x}/{y}") == s
    {
        return format!("\\frac{{{x}}}{{{y}}}");
    }
    s.to_string()
}

/// `\text{(C)}` → `C`, `\textbf{east}` → `east`: the wrapper goes, its content stays.
fn unwrap_text(s: &str) -> String {
    static WRAPPED: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"\\(?:text|textbf|textrm|mathrm|mbox)\{([^{}]*)\}").expect("valid regex")
    });
    static CHOICE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^\(([A-Za-z])\)$").expect("valid regex"));
    let unwrapped = WRAPPED.replace_all(s, "$1");
    CHOICE.replace(&unwrapped, "$1").into_owned()
}

/// The value of a normalised answer that is a plain number: a decimal (optionally with
/// thousands separators or a trailing `%`), `\frac{a}{b}`, `-\frac{a}{b}`, or a mixed number
/// `n\frac{a}{b}`.
pub fn numeric_value(s: &str) -> Option<f64> {
    static FRACTION: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^([-+]?)([0-9]*)\\frac\{([^{}]+)\}\{([^{}]+)\}$").expect("valid regex")
    });
    if let Some(c) = FRACTION.captures(s) {
        let numerator = decimal(&c[3])?;
        let denominator = decimal(&c[4])?;
        if denominator == 0.0 {
            return None;
        }
        let whole = if c[2].is_empty() {
            0.0
        } else {
            decimal(&c[2])?
        };
        let magnitude = whole + numerator / denominator;
        return Some(if &c[1] == "-" { -magnitude } else { magnitude });
    }
    decimal(s.strip_suffix('%').unwrap_or(s))
}

/// `-12.5`, `+.5`, `1,234,567.8` (groups of three only, so `1,2` stays a pair).
fn decimal(s: &str) -> Option<f64> {
    static PLAIN: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)$").expect("valid regex"));
    static GROUPED: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^[-+]?[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]*)?$").expect("valid regex")
    });
    let text = if GROUPED.is_match(s) {
        s.replace(',', "")
    } else if PLAIN.is_match(s) {
        s.to_string()
    } else {
        return None;
    };
    text.parse::<f64>().ok().filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_steps() {
        assert_eq!(normalize("\\frac12").unwrap(), "\\frac{1}{2}");
        assert_eq!(normalize("\\frac1{72}").unwrap(), "\\frac{1}{72}");
        assert_eq!(normalize("\\sqrt2").unwrap(), "\\sqrt{2}");
        assert_eq!(normalize("3/4").unwrap(), "\\frac{3}{4}");
        assert_eq!(normalize("k = 7").unwrap(), "7");
        assert!(normalize("2\\frac").is_err());
        assert!(normalize("1 \\text{ m} \\text{ s}").is_err());
    }

    #[test]
    fn boxed_is_balanced() {
        assert_eq!(
            last_boxed("a $\\boxed{1}$ b $\\boxed{\\frac{1}{2}}$"),
            Some("\\frac{1}{2}")
        );
        assert_eq!(last_boxed("$\\boxed{\\frac{1}{2}$"), None);
        assert_eq!(last_boxed("so $\\boxed 5$."), Some("5"));
    }
}

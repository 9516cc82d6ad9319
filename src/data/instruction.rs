//! Instruction-tuning rows: a `.jsonl` file (one JSON object per line) or a JSON array of
//! objects, each turned into a (prompt, response) pair with the templates of METHODS.md.
//!
//! Formats (field names):
//! - `query_response`: MetaMathQA, `query` / `response`.
//! - `question_answer`: GSM8K, `question` / `answer`; the answer is the response as is, so it
//!   keeps its `#### N` line.
//! - `alpaca`: `instruction` / optional `input` / `output`; an empty or absent input uses the
//!   plain instruction template.
//! - `auto`: chosen from the first row's keys, in the order above.
//!
//! The container is recognised by content, not extension: text starting with `[` is a JSON
//! array, anything else is read as JSON lines (blank lines skipped). Errors name the file and the
//! 1-based line (JSON lines) or the 0-based array index (JSON array), and the field.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::prompt::{alpaca_prompt, math_train_prompt};
use super::source::{bad_file, bad_line, numbered_lines, read_text};
use crate::{Error, Result};

/// Which fields hold the instruction and the answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstructionFormat {
    /// Detect from the first row's keys.
    #[default]
    Auto,
    /// MetaMathQA `query` / `response`.
    QueryResponse,
    /// GSM8K `question` / `answer`.
    QuestionAnswer,
    /// Alpaca `instruction` / `input` / `output`.
    Alpaca,
}

impl InstructionFormat {
    /// The concrete formats, in the order `auto` tries them.
    const CONCRETE: [InstructionFormat; 3] = [
        InstructionFormat::QueryResponse,
        InstructionFormat::QuestionAnswer,
        InstructionFormat::Alpaca,
    ];

    /// The name used in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            InstructionFormat::Auto => "auto",
            InstructionFormat::QueryResponse => "query_response",
            InstructionFormat::QuestionAnswer => "question_answer",
            InstructionFormat::Alpaca => "alpaca",
        }
    }

    /// The (prompt, response) fields that must be present for this format to be detected
    /// (`Auto` never reaches a row; it shares Alpaca's to keep the match total).
    fn required_fields(self) -> [&'static str; 2] {
        match self {
            InstructionFormat::QueryResponse => ["query", "response"],
            InstructionFormat::QuestionAnswer => ["question", "answer"],
            InstructionFormat::Alpaca | InstructionFormat::Auto => ["instruction", "output"],
        }
    }

    /// The first concrete format whose required fields all appear in `row`.
    fn detect(row: &serde_json::Map<String, Value>) -> Option<Self> {
        Self::CONCRETE
            .into_iter()
            .find(|f| f.required_fields().iter().all(|k| row.contains_key(*k)))
    }
}

impl fmt::Display for InstructionFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for InstructionFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        [InstructionFormat::Auto]
            .into_iter()
            .chain(Self::CONCRETE)
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                Error::invalid(
                    "format",
                    s,
                    "expected auto, query_response, question_answer or alpaca",
                )
            })
    }
}

/// One training example before tokenisation: the templated prompt and the target text (EOS is
/// added at tokenisation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstructionRow {
    pub prompt: String,
    pub response: String,
}

/// Where a row sits in its file, for error messages.
#[derive(Clone, Copy, Debug)]
enum Location {
    /// 1-based line of a JSON-lines file.
    Line(usize),
    /// 0-based index into a JSON array.
    Element(usize),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Line(n) => write!(f, "line {n}"),
            Location::Element(i) => write!(f, "array element {i} (counting from 0)"),
        }
    }
}

/// Reads every row of `path` in file order.
pub fn load_instructions(path: &Path, format: InstructionFormat) -> Result<Vec<InstructionRow>> {
    let text = read_text(path)?;
    let rows = parse_rows(path, &text)?;
    let Some((first_at, first)) = rows.first() else {
        return Err(bad_file(path, "contains no rows"));
    };
    let format = match format {
        InstructionFormat::Auto => detect_format(path, *first_at, first)?,
        format => format,
    };
    rows.iter()
        .map(|(at, row)| to_instruction(path, *at, row, format))
        .collect()
}

/// The JSON values of a JSON array or of a JSON-lines file, each with its location.
fn parse_rows(path: &Path, text: &str) -> Result<Vec<(Location, Value)>> {
    if text.trim_start().starts_with('[') {
        let rows: Vec<Value> = serde_json::from_str(text)
            .map_err(|e| bad_file(path, format!("not a valid JSON array: {e}")))?;
        return Ok(rows
            .into_iter()
            .enumerate()
            .map(|(i, row)| (Location::Element(i), row))
            .collect());
    }
    numbered_lines(text)
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            let row = serde_json::from_str(line)
                .map_err(|e| bad_line(path, n, format!("not valid JSON: {e}")))?;
            Ok((Location::Line(n), row))
        })
        .collect()
}

fn as_object<'a>(
    path: &Path,
    at: Location,
    row: &'a Value,
) -> Result<&'a serde_json::Map<String, Value>> {
    row.as_object().ok_or_else(|| {
        bad_file(
            path,
            format!("{at}: expected a JSON object, found {}", json_kind(row)),
        )
    })
}

fn detect_format(path: &Path, at: Location, row: &Value) -> Result<InstructionFormat> {
    let object = as_object(path, at, row)?;
    InstructionFormat::detect(object).ok_or_else(|| {
        let keys: Vec<&str> = object.keys().map(String::as_str).collect();
        bad_file(
            path,
            format!(
                "{at}: cannot detect the format from the keys {keys:?}; expected query/response \
                 (query_response), question/answer (question_answer) or instruction/output \
                 (alpaca), or set the format explicitly"
            ),
        )
    })
}

fn to_instruction(
    path: &Path,
    at: Location,
    row: &Value,
    format: InstructionFormat,
) -> Result<InstructionRow> {
    let object = as_object(path, at, row)?;
    let field = |name: &str| -> Result<Option<&str>> {
        match object.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(bad_file(
                path,
                format!(
                    "{at}: field `{name}` must be a string, found {}",
                    json_kind(other)
                ),
            )),
        }
    };
    let required = |name: &str| -> Result<&str> {
        field(name)?.ok_or_else(|| bad_file(path, format!("{at}: missing field `{name}`")))
    };
    let [prompt_field, response_field] = format.required_fields();
    // `Auto` was resolved to a concrete format before any row is converted.
    let prompt = match format {
        InstructionFormat::Alpaca | InstructionFormat::Auto => {
            alpaca_prompt(required(prompt_field)?, field("input")?.unwrap_or(""))
        }
        InstructionFormat::QueryResponse | InstructionFormat::QuestionAnswer => {
            math_train_prompt(required(prompt_field)?)
        }
    };
    Ok(InstructionRow {
        prompt,
        response: required(response_field)?.to_owned(),
    })
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

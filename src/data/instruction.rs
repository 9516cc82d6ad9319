//! Instruction-tuning rows: each turned into a (prompt, response) pair with the templates of
//! METHODS.md, or into a conversation for the tokenizer's chat template. Rows come from any
//! file [`read_records`] reads: JSON lines, a JSON array, parquet (single or sharded), Arrow.
//!
//! Formats (presets for `data.columns`):
//! - `query_response`: MetaMathQA, `query` / `response`.
//! - `question_answer`: GSM8K, `question` / `answer`; the answer is the response as is, so it
//!   keeps its `#### N` line.
//! - `alpaca`: `instruction` / optional `input` / `output`; an empty or absent input uses the
//!   plain instruction template.
//! - `messages`: a `messages` column of `{role, content}` lists (HF's chat datasets).
//! - `auto`: chosen from the columns (a JSON file's first row's keys), in the order above.
//!
//! Errors name the file and the 1-based line (JSON lines), the 0-based array index (JSON array)
//! or row (parquet / Arrow), and the field or column.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::chat::parse_messages;
use super::columns::{Columns, RowLayout};
use super::prompt::{alpaca_prompt, math_train_prompt};
use super::record::{ReadOptions, Record};
use super::records::read_records;
use super::source::bad_file;
use crate::model::chat_template::ChatMessage;
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
    /// A `messages` list of `{role, content}` (chat template, loss on assistant turns).
    Messages,
}

impl InstructionFormat {
    /// The concrete formats, in the order `auto` tries them.
    const CONCRETE: [InstructionFormat; 4] = [
        InstructionFormat::QueryResponse,
        InstructionFormat::QuestionAnswer,
        InstructionFormat::Alpaca,
        InstructionFormat::Messages,
    ];

    /// The name used in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            InstructionFormat::Auto => "auto",
            InstructionFormat::QueryResponse => "query_response",
            InstructionFormat::QuestionAnswer => "question_answer",
            InstructionFormat::Alpaca => "alpaca",
            InstructionFormat::Messages => "messages",
        }
    }

    /// The columns this format reads (`Auto` has none: it is resolved first).
    fn preset(self) -> Option<RowLayout> {
        let instruction = |prompt: &str, input: Option<&str>, response: &str| {
            Some(RowLayout::Instruction {
                prompt: prompt.into(),
                input: input.map(Into::into),
                response: response.into(),
            })
        };
        match self {
            InstructionFormat::Auto => None,
            InstructionFormat::QueryResponse => instruction("query", None, "response"),
            InstructionFormat::QuestionAnswer => instruction("question", None, "answer"),
            InstructionFormat::Alpaca => instruction("instruction", Some("input"), "output"),
            InstructionFormat::Messages => Some(RowLayout::Messages("messages".into())),
        }
    }

    /// The first concrete format whose required columns are all in `columns`.
    fn detect(columns: &[String]) -> Option<Self> {
        Self::CONCRETE.into_iter().find(|f| {
            let layout = f.preset().expect("concrete formats have presets");
            let required = match &layout {
                RowLayout::Instruction {
                    prompt, response, ..
                } => vec![prompt.clone(), response.clone()],
                RowLayout::Messages(column) => vec![column.clone()],
            };
            required.iter().all(|c| columns.contains(c))
        })
    }

    /// The layout this format and `columns` describe without looking at the data, if any.
    pub fn layout(self, columns: &Columns) -> Result<Option<RowLayout>> {
        columns.reject(&["text_a", "text_b", "label"], "instruction")?;
        match self.preset() {
            Some(preset) => preset.overridden(columns).map(Some),
            None => RowLayout::from_columns(columns),
        }
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
                    "expected auto, query_response, question_answer, alpaca or messages",
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

/// A training row: a templated prompt/response pair, or a conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrainingRow {
    Instruction(InstructionRow),
    Chat(Vec<ChatMessage>),
}

/// Reads every prompt/response row of `path` in file order (chat data is an error here: use
/// [`load_training_rows`]).
pub fn load_instructions(path: &Path, format: InstructionFormat) -> Result<Vec<InstructionRow>> {
    load_training_rows(path, format, &Columns::default(), None)?
        .into_iter()
        .map(|row| match row {
            TrainingRow::Instruction(row) => Ok(row),
            TrainingRow::Chat(_) => Err(bad_file(
                path,
                "holds chat messages, not prompt/response pairs",
            )),
        })
        .collect()
}

/// Reads the rows of `path` (the first `first_rows` when set) with `format`'s columns,
/// overridden by `columns`.
pub fn load_training_rows(
    path: &Path,
    format: InstructionFormat,
    columns: &Columns,
    first_rows: Option<usize>,
) -> Result<Vec<TrainingRow>> {
    let known = format.layout(columns)?;
    let (required, optional) = match &known {
        Some(RowLayout::Instruction {
            prompt,
            input,
            response,
        }) => (
            vec![prompt.clone(), response.clone()],
            input.iter().cloned().collect(),
        ),
        Some(layout) => (layout.columns(), Vec::new()),
        None => (Vec::new(), Vec::new()),
    };
    let records = read_records(
        path,
        &ReadOptions {
            columns: known.is_some().then_some(&required[..]),
            optional_columns: &optional,
            first_rows,
        },
    )?;
    let layout = match known {
        Some(layout) => layout,
        None => {
            let detected = InstructionFormat::detect(&records.columns).ok_or_else(|| {
                let place = &records.rows[0];
                place.error(format!(
                    "cannot detect the format from the columns {:?}; expected query/response \
                     (query_response), question/answer (question_answer), instruction/output \
                     (alpaca) or messages, or set data.format / data.columns",
                    records.columns
                ))
            })?;
            detected.preset().expect("concrete formats have presets")
        }
    };
    records
        .rows
        .iter()
        .map(|record| to_row(record, &layout))
        .collect()
}

fn to_row(record: &Record, layout: &RowLayout) -> Result<TrainingRow> {
    Ok(match layout {
        RowLayout::Instruction {
            prompt,
            input,
            response,
        } => {
            let instruction = record.string(prompt)?;
            let prompt = match input {
                Some(input) => {
                    alpaca_prompt(instruction, record.optional_string(input)?.unwrap_or(""))
                }
                None => math_train_prompt(instruction),
            };
            TrainingRow::Instruction(InstructionRow {
                prompt,
                response: record.string(response)?.to_owned(),
            })
        }
        RowLayout::Messages(column) => TrainingRow::Chat(parse_messages(record, column)?),
    })
}

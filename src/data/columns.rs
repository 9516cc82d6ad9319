//! `data.columns`: which column (or JSON field) of a data file holds what. Each instruction
//! format and each GLUE task is a preset; a recipe overrides any part of it, e.g.
//! `columns = { prompt = "question", response = "answer" }`.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Column names; unset ones come from the format's (or GLUE task's) preset.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Columns {
    /// The instruction, placed in METHODS.md's prompt template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// Optional context for the instruction (Alpaca's `input`), which selects Alpaca's
    /// template with an `### Input:` section when non-empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// The target text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
    /// A conversation: a list of `{role, content}` messages, rendered with the tokenizer's chat
    /// template; the loss is taken on assistant messages only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<String>,
    /// GLUE: the first sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_a: Option<String>,
    /// GLUE: the second sentence of pair tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_b: Option<String>,
    /// GLUE: the label (a class index, or STS-B's score).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

impl Columns {
    pub fn is_empty(&self) -> bool {
        *self == Columns::default()
    }

    /// Errors when a column of the other kind of data is set (`kind` is `instruction` or
    /// `GLUE`), naming it.
    pub(crate) fn reject(&self, names: &[&str], kind: &str) -> Result<()> {
        for name in names {
            let set = match *name {
                "prompt" => &self.prompt,
                "input" => &self.input,
                "response" => &self.response,
                "messages" => &self.messages,
                "text_a" => &self.text_a,
                "text_b" => &self.text_b,
                "label" => &self.label,
                _ => &None,
            };
            if let Some(value) = set {
                return Err(Error::invalid(
                    format!("data.columns.{name}"),
                    value,
                    format!("does not apply to {kind} data"),
                ));
            }
        }
        Ok(())
    }
}

/// How the columns of an instruction row are used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RowLayout {
    /// Prompt (+ optional input) and response columns, with METHODS.md's templates.
    Instruction {
        prompt: String,
        input: Option<String>,
        response: String,
    },
    /// A column of chat messages.
    Messages(String),
}

impl RowLayout {
    /// The columns this layout reads.
    pub fn columns(&self) -> Vec<String> {
        match self {
            RowLayout::Instruction {
                prompt,
                input,
                response,
            } => [Some(prompt), input.as_ref(), Some(response)]
                .into_iter()
                .flatten()
                .cloned()
                .collect(),
            RowLayout::Messages(column) => vec![column.clone()],
        }
    }

    /// This layout with the columns `columns` sets replaced.
    pub(crate) fn overridden(self, columns: &Columns) -> Result<Self> {
        Ok(match self {
            RowLayout::Instruction {
                prompt,
                input,
                response,
            } => {
                if let Some(m) = &columns.messages {
                    return Err(Error::invalid(
                        "data.columns.messages",
                        m,
                        "this format reads prompt/response columns; use format = \"messages\" \
                         (or leave format unset) for chat data",
                    ));
                }
                RowLayout::Instruction {
                    prompt: columns.prompt.clone().unwrap_or(prompt),
                    input: columns.input.clone().or(input),
                    response: columns.response.clone().unwrap_or(response),
                }
            }
            RowLayout::Messages(column) => {
                if let Some((name, value)) = [
                    ("prompt", &columns.prompt),
                    ("input", &columns.input),
                    ("response", &columns.response),
                ]
                .into_iter()
                .find_map(|(n, v)| Some((n, v.as_ref()?)))
                {
                    return Err(Error::invalid(
                        format!("data.columns.{name}"),
                        value,
                        "chat data reads one messages column",
                    ));
                }
                RowLayout::Messages(columns.messages.clone().unwrap_or(column))
            }
        })
    }

    /// The layout `columns` alone describe, when they name the prompt/response or messages.
    pub(crate) fn from_columns(columns: &Columns) -> Result<Option<Self>> {
        if let Some(messages) = &columns.messages {
            return RowLayout::Messages(messages.clone())
                .overridden(columns)
                .map(Some);
        }
        match (&columns.prompt, &columns.response) {
            (None, None) => Ok(None),
            (Some(prompt), Some(response)) => Ok(Some(RowLayout::Instruction {
                prompt: prompt.clone(),
                input: columns.input.clone(),
                response: response.clone(),
            })),
            (Some(_), None) => Err(Error::invalid(
                "data.columns.response",
                "unset",
                "set it too when naming the prompt column (or choose a format preset)",
            )),
            (None, Some(_)) => Err(Error::invalid(
                "data.columns.prompt",
                "unset",
                "set it too when naming the response column (or choose a format preset)",
            )),
        }
    }
}

//! One row of a data file: its named values and where it sits (file, line / element / row), so
//! that an error names the file, the row and the field (or column); and what a reader is asked
//! to read ([`ReadOptions`]). The readers are [`super::records`] (JSON) and the private
//! `columnar` module (parquet, Arrow).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::source::bad_file;
use crate::{Error, Result};

/// Where a row sits in its file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// 1-based line of a JSON-lines file.
    Line(usize),
    /// 0-based index into a JSON array.
    Element(usize),
    /// 0-based row of a parquet / Arrow file.
    Row(usize),
}

impl Place {
    /// What a named value of a row is called in this format.
    fn field_noun(self) -> &'static str {
        match self {
            Place::Row(_) => "column",
            Place::Line(_) | Place::Element(_) => "field",
        }
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Line(n) => write!(f, "line {n}"),
            Place::Element(i) => write!(f, "array element {i} (counting from 0)"),
            Place::Row(i) => write!(f, "row {i} (counting from 0)"),
        }
    }
}

/// One row: its named values and where it came from.
#[derive(Clone, Debug)]
pub struct Record {
    pub file: Arc<Path>,
    pub place: Place,
    pub fields: Map<String, Value>,
}

impl Record {
    /// An error about this row, naming the file and the place.
    pub fn error(&self, message: impl fmt::Display) -> Error {
        bad_file(&self.file, format!("{}: {message}", self.place))
    }

    /// The string value of `name`, `None` when the row lacks it (or it is null).
    pub fn optional_string(&self, name: &str) -> Result<Option<&str>> {
        match self.fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.error(format!(
                "{} `{name}` must be a string, found {}",
                self.place.field_noun(),
                json_kind(other)
            ))),
        }
    }

    /// The string value of `name`, which must be present.
    pub fn string(&self, name: &str) -> Result<&str> {
        self.optional_string(name)?
            .ok_or_else(|| self.missing(name))
    }

    /// The value of `name`, which must be present and not null.
    pub fn value(&self, name: &str) -> Result<&Value> {
        match self.fields.get(name) {
            None | Some(Value::Null) => Err(self.missing(name)),
            Some(v) => Ok(v),
        }
    }

    fn missing(&self, name: &str) -> Error {
        self.error(format!("missing {} `{name}`", self.place.field_noun()))
    }
}

/// What to read.
#[derive(Clone, Debug, Default)]
pub struct ReadOptions<'a> {
    /// Read only these columns of parquet / Arrow files (each must exist); `None`: all.
    pub columns: Option<&'a [String]>,
    /// Also read these columns where the file has them.
    pub optional_columns: &'a [String],
    /// Stop after this many rows, in file order (`None`: all).
    pub first_rows: Option<usize>,
}

/// "a string", "a number", … for error messages.
pub(crate) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

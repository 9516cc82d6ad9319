//! Rows of named fields from a data file of any supported format, each row knowing where it
//! came from so that an error names the file, the row and the field (or column):
//!
//! - JSON lines (one object per line, blank lines skipped) or a JSON array of objects,
//!   recognised by content: text starting with `[` is an array;
//! - parquet and Arrow files, single or sharded ([`data_files`]), converted to the same JSON
//!   values (strings, numbers, lists, structs) by the private `columnar` module.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};

use super::columnar;
use super::hf_files::{FileKind, data_files};
use super::source::{bad_file, bad_line, numbered_lines, read_text};
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

/// The rows of a data file (or shard set).
#[derive(Debug)]
pub struct Records {
    pub kind: FileKind,
    pub files: Vec<PathBuf>,
    /// Columns of a parquet / Arrow schema; for JSON the keys of the first row.
    pub columns: Vec<String>,
    pub rows: Vec<Record>,
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

/// Reads the rows of `path` (see the module docs for the formats).
pub fn read_records(path: &Path, options: &ReadOptions) -> Result<Records> {
    let (kind, files) = data_files(path)?;
    let mut records = Records {
        kind,
        files: files.clone(),
        columns: Vec::new(),
        rows: Vec::new(),
    };
    let limit = options.first_rows.unwrap_or(usize::MAX);
    for file in &files {
        let wanted = limit - records.rows.len();
        if wanted == 0 {
            break;
        }
        let (columns, rows) = match kind {
            FileKind::Json => read_json_rows(file, wanted)?,
            FileKind::Parquet => columnar::read_parquet(file, options, wanted)?,
            FileKind::Arrow => columnar::read_arrow(file, options, wanted)?,
        };
        if records.columns.is_empty() {
            records.columns = columns;
        }
        records.rows.extend(rows);
    }
    if records.rows.is_empty() {
        return Err(bad_file(path, "contains no rows"));
    }
    Ok(records)
}

/// The objects of a JSON array or JSON-lines file (at most `limit`), and the first one's keys.
fn read_json_rows(path: &Path, limit: usize) -> Result<(Vec<String>, Vec<Record>)> {
    let text = read_text(path)?;
    let file: Arc<Path> = Arc::from(path);
    let values: Vec<(Place, Value)> = if text.trim_start().starts_with('[') {
        let rows: Vec<Value> = serde_json::from_str(&text)
            .map_err(|e| bad_file(path, format!("not a valid JSON array: {e}")))?;
        rows.into_iter()
            .take(limit)
            .enumerate()
            .map(|(i, row)| (Place::Element(i), row))
            .collect()
    } else {
        numbered_lines(&text)
            .filter(|(_, line)| !line.trim().is_empty())
            .take(limit)
            .map(|(n, line)| {
                let row = serde_json::from_str(line)
                    .map_err(|e| bad_line(path, n, format!("not valid JSON: {e}")))?;
                Ok((Place::Line(n), row))
            })
            .collect::<Result<_>>()?
    };
    let rows = values
        .into_iter()
        .map(|(place, value)| match value {
            Value::Object(fields) => Ok(Record {
                file: file.clone(),
                place,
                fields,
            }),
            other => Err(bad_file(
                path,
                format!(
                    "{place}: expected a JSON object, found {}",
                    json_kind(&other)
                ),
            )),
        })
        .collect::<Result<Vec<_>>>()?;
    let columns = rows
        .first()
        .map(|r| r.fields.keys().cloned().collect())
        .unwrap_or_default();
    Ok((columns, rows))
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

//! Rows of named fields from a data file of any supported format, each row knowing where it
//! came from so that an error names the file, the row and the field (or column):
//!
//! - JSON lines (one object per line, blank lines skipped) or a JSON array of objects,
//!   recognised by content: text starting with `[` is an array;
//! - parquet and Arrow files, single or sharded ([`data_files`]), converted to the same JSON
//!   values (strings, numbers, lists, structs) by the private `columnar` module.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

pub use super::record::{Place, ReadOptions, Record};

use super::columnar;
use super::hf_files::{FileKind, data_files};
use super::record::json_kind;
use super::source::{bad_file, bad_line, numbered_lines, read_text};
use crate::Result;

/// The rows of a data file (or shard set).
#[derive(Debug)]
pub struct Records {
    pub kind: FileKind,
    pub files: Vec<PathBuf>,
    /// Columns of a parquet / Arrow schema; for JSON the keys of the first row.
    pub columns: Vec<String>,
    pub rows: Vec<Record>,
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

//! JSON-lines files (optionally gzipped, as HumanEval ships): one typed row per non-blank line,
//! errors naming the file and the line.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// A row and the 1-based line it came from (for later errors about its content).
#[derive(Debug, Clone)]
pub struct Line<T> {
    pub line: usize,
    pub row: T,
}

/// Reads every non-blank line of `path` as a `T`; a `.gz` file is decompressed.
pub fn read<T: DeserializeOwned>(path: &Path) -> Result<Vec<Line<T>>> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        cause: source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut rows = Vec::new();
    for (index, text) in BufReader::new(reader).lines().enumerate() {
        let line = index + 1;
        let text = text.map_err(|e| bad_line(path, line, format!("cannot read: {e}")))?;
        if text.trim().is_empty() {
            continue;
        }
        let row = serde_json::from_str(&text).map_err(|e| bad_line(path, line, e.to_string()))?;
        rows.push(Line { line, row });
    }
    Ok(rows)
}

/// An error about line `line` of `path`.
pub fn bad_line(path: &Path, line: usize, message: impl std::fmt::Display) -> Error {
    Error::BadFile {
        path: path.to_path_buf(),
        message: format!("line {line}: {message}"),
    }
}

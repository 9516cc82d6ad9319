//! Reading data files with errors that point at the offending place: every reader in this module
//! tree reports `file: line N: …` (or `element N`) so a bad row can be found and fixed by hand.

use std::path::Path;

use crate::{Error, Result};

/// The whole file as UTF-8 text, without a leading byte-order mark (some GLUE files carry one,
/// and it would otherwise become part of the first header or cell).
pub(crate) fn read_text(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        cause: source,
    })?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_owned(),
        None => text,
    })
}

/// The lines of `text` numbered from 1 as editors show them, with a Windows `\r` removed.
pub(crate) fn numbered_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.strip_suffix('\r').unwrap_or(line)))
}

/// [`Error::BadFile`] for `path` with `message`.
pub(crate) fn bad_file(path: &Path, message: impl Into<String>) -> Error {
    Error::BadFile {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// [`Error::BadFile`] naming the 1-based `line` of `path`.
pub(crate) fn bad_line(path: &Path, line: usize, message: impl std::fmt::Display) -> Error {
    bad_file(path, format!("line {line}: {message}"))
}

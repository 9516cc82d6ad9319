//! Parquet and Arrow files (the HF hub's and the `datasets` cache's formats) read into
//! [`Record`]s: each row's columns become JSON values (strings, numbers, booleans, nulls, lists
//! and structs, dictionary-encoded columns decoded), so that every reader downstream works on
//! one representation whatever the file format.
//!
//! Parquet reads only the requested columns (a projection on the file's root columns). Arrow
//! files are the IPC *stream* format that `datasets` writes (`*.arrow` in its cache and in
//! `save_to_disk` folders); the IPC *file* format (magic `ARROW1`) is read too.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type,
    UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{ArrowError, DataType, SchemaRef};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Map, Number, Value};

use super::record::{Place, ReadOptions, Record};
use super::source::bad_file;
use crate::{Error, Result};

/// Up to `limit` rows of the parquet file `path`, only `columns` when given, and the file's
/// column names.
pub(crate) fn read_parquet(
    path: &Path,
    options: &ReadOptions,
    limit: usize,
) -> Result<(Vec<String>, Vec<Record>)> {
    let file = open(path)?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| bad_file(path, format!("not a readable parquet file: {e}")))?;
    let schema = builder.schema().clone();
    let names = column_names(&schema);
    let mut builder = builder.with_batch_size(4096).with_limit(limit);
    if let Some(indices) = projection(path, &names, options)? {
        let mask = ProjectionMask::roots(builder.parquet_schema(), indices);
        builder = builder.with_projection(mask);
    }
    let reader = builder
        .build()
        .map_err(|e| bad_file(path, format!("cannot read: {e}")))?;
    let batches = reader.map(|batch| batch.map_err(|e| parquet_error(path, e)));
    let rows = to_records(path, batches, limit)?;
    Ok((names, rows))
}

/// Up to `limit` rows of the Arrow IPC file `path` (stream or file format), only `columns` when
/// given, and the file's column names.
pub(crate) fn read_arrow(
    path: &Path,
    options: &ReadOptions,
    limit: usize,
) -> Result<(Vec<String>, Vec<Record>)> {
    let mut magic = [0u8; 6];
    let is_file_format = open(path)?.read_exact(&mut magic).is_ok() && &magic == b"ARROW1";
    let not_arrow = |e: ArrowError| bad_file(path, format!("not a readable Arrow IPC file: {e}"));
    type Batches = Box<dyn Iterator<Item = std::result::Result<RecordBatch, ArrowError>>>;
    let (schema, batches): (SchemaRef, Batches) = if is_file_format {
        let reader =
            arrow_ipc::reader::FileReader::try_new(open(path)?, None).map_err(not_arrow)?;
        (reader.schema(), Box::new(reader))
    } else {
        let reader = arrow_ipc::reader::StreamReader::try_new(BufReader::new(open(path)?), None)
            .map_err(not_arrow)?;
        (reader.schema(), Box::new(reader))
    };
    let names = column_names(&schema);
    let indices = projection(path, &names, options)?;
    let batches = batches.map(|batch| {
        let batch = batch.map_err(|e| bad_file(path, format!("cannot read: {e}")))?;
        match &indices {
            Some(indices) => batch
                .project(indices)
                .map_err(|e| bad_file(path, e.to_string())),
            None => Ok(batch),
        }
    });
    let rows = to_records(path, batches, limit)?;
    Ok((names, rows))
}

fn open(path: &Path) -> Result<File> {
    File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        cause: source,
    })
}

/// A parquet read error; a codec left out of this build gets a hint.
fn parquet_error(path: &Path, e: ArrowError) -> Error {
    let message = e.to_string();
    let hint = if message.contains("Disabled feature") {
        " (this build reads snappy-compressed and uncompressed parquet; rebuild with \
         `--features zstd` for zstd, or re-save the file with snappy)"
    } else {
        ""
    };
    bad_file(path, format!("cannot read: {message}{hint}"))
}

fn column_names(schema: &SchemaRef) -> Vec<String> {
    schema.fields().iter().map(|f| f.name().clone()).collect()
}

/// Positions among `names` of the columns `options` asks for (`None`: all); a missing required
/// column is an error listing the file's columns.
fn projection(path: &Path, names: &[String], options: &ReadOptions) -> Result<Option<Vec<usize>>> {
    let Some(wanted) = options.columns else {
        return Ok(None);
    };
    let mut indices = wanted
        .iter()
        .map(|w| {
            names.iter().position(|n| n == w).ok_or_else(|| {
                bad_file(
                    path,
                    format!("no column `{w}` (the file has: {})", names.join(", ")),
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    indices.extend(
        options
            .optional_columns
            .iter()
            .filter_map(|o| names.iter().position(|n| n == o)),
    );
    indices.sort_unstable();
    indices.dedup();
    Ok(Some(indices))
}

/// Every row of `batches` (up to `limit`) as a record numbered from 0.
fn to_records(
    path: &Path,
    batches: impl Iterator<Item = Result<RecordBatch>>,
    limit: usize,
) -> Result<Vec<Record>> {
    let file: Arc<Path> = Arc::from(path);
    let mut rows = Vec::new();
    for batch in batches {
        let batch = batch?;
        let take = batch.num_rows().min(limit - rows.len());
        let schema = batch.schema();
        let mut columns = Vec::with_capacity(batch.num_columns());
        for (field, column) in schema.fields().iter().zip(batch.columns()) {
            let values = column_values(column.as_ref(), take).map_err(|message| {
                bad_file(path, format!("column `{}`: {message}", field.name()))
            })?;
            columns.push((field.name(), values.into_iter()));
        }
        for _ in 0..take {
            let mut fields = Map::new();
            for (name, values) in &mut columns {
                fields.insert((*name).clone(), values.next().expect("one value per row"));
            }
            rows.push(Record {
                file: file.clone(),
                place: Place::Row(rows.len()),
                fields,
            });
        }
        if rows.len() == limit {
            break;
        }
    }
    Ok(rows)
}

/// The first `n` values of a column; a dictionary's values are converted once.
fn column_values(array: &dyn Array, n: usize) -> std::result::Result<Vec<Value>, String> {
    if let DataType::Dictionary(..) = array.data_type() {
        let dict = array.as_any_dictionary();
        let values = column_values(dict.values().as_ref(), dict.values().len())?;
        let keys = dict.normalized_keys();
        return Ok((0..n)
            .map(|i| {
                if array.is_null(i) {
                    Value::Null
                } else {
                    values[keys[i]].clone()
                }
            })
            .collect());
    }
    (0..n).map(|i| json_value(array, i)).collect()
}

/// The value at `row` of `array` as JSON; an unsupported type is an error message.
fn json_value(array: &dyn Array, row: usize) -> std::result::Result<Value, String> {
    if array.is_null(row) {
        return Ok(Value::Null);
    }
    let float = |v: f64| Number::from_f64(v).map_or(Value::Null, Value::Number);
    Ok(match array.data_type() {
        DataType::Null => Value::Null,
        DataType::Boolean => Value::Bool(array.as_boolean().value(row)),
        DataType::Int8 => array.as_primitive::<Int8Type>().value(row).into(),
        DataType::Int16 => array.as_primitive::<Int16Type>().value(row).into(),
        DataType::Int32 => array.as_primitive::<Int32Type>().value(row).into(),
        DataType::Int64 => array.as_primitive::<Int64Type>().value(row).into(),
        DataType::UInt8 => array.as_primitive::<UInt8Type>().value(row).into(),
        DataType::UInt16 => array.as_primitive::<UInt16Type>().value(row).into(),
        DataType::UInt32 => array.as_primitive::<UInt32Type>().value(row).into(),
        DataType::UInt64 => array.as_primitive::<UInt64Type>().value(row).into(),
        DataType::Float16 => float(array.as_primitive::<Float16Type>().value(row).to_f64()),
        DataType::Float32 => float(f64::from(array.as_primitive::<Float32Type>().value(row))),
        DataType::Float64 => float(array.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 => array.as_string::<i32>().value(row).into(),
        DataType::LargeUtf8 => array.as_string::<i64>().value(row).into(),
        DataType::Utf8View => array.as_string_view().value(row).into(),
        DataType::List(_) => list(array.as_list::<i32>().value(row).as_ref())?,
        DataType::LargeList(_) => list(array.as_list::<i64>().value(row).as_ref())?,
        DataType::FixedSizeList(..) => list(array.as_fixed_size_list().value(row).as_ref())?,
        DataType::Struct(fields) => {
            let s = array.as_struct();
            let mut object = Map::new();
            for (field, column) in fields.iter().zip(s.columns()) {
                object.insert(field.name().clone(), json_value(column.as_ref(), row)?);
            }
            Value::Object(object)
        }
        DataType::Dictionary(..) => {
            let dict = array.as_any_dictionary();
            let key = dict.normalized_keys()[row];
            json_value(dict.values().as_ref(), key)?
        }
        other => return Err(format!("values of type {other} are not supported")),
    })
}

fn list(values: &dyn Array) -> std::result::Result<Value, String> {
    (0..values.len())
        .map(|i| json_value(values, i))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map(Value::Array)
}

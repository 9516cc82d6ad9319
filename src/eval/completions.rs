//! Completions produced elsewhere (another framework, an API) for scoring without a model:
//! jsonl rows `{"task_id": …, "completion": …}` or `{"index": …, "completion": …}`. Several rows
//! for one task are several samples (HumanEval pass@k).

use std::path::Path;

use serde::Deserialize;

use super::jsonl;
use crate::Result;

#[derive(Deserialize)]
struct Row {
    #[serde(default)]
    task_id: Option<serde_json::Value>,
    #[serde(default)]
    index: Option<usize>,
    completion: String,
}

/// Reads `path` and groups the completions by example: `ids[i]` is the task id of example `i`
/// (HumanEval's `HumanEval/3`, or the row index for GSM-8K / MATH). A row may name its example by
/// `index` (0-based, in the data file) or by `task_id`; one naming no known example is an error
/// naming the file and line.
pub fn read_grouped(path: &Path, ids: &[String]) -> Result<Vec<Vec<String>>> {
    let mut samples = vec![Vec::new(); ids.len()];
    for jsonl::Line { line, row } in jsonl::read::<Row>(path)? {
        let index = match (&row.index, &row.task_id) {
            (Some(index), _) => *index,
            (None, Some(serde_json::Value::String(id))) => ids
                .iter()
                .position(|known| known == id)
                .ok_or_else(|| jsonl::bad_line(path, line, format!("unknown task_id `{id}`")))?,
            (None, Some(serde_json::Value::Number(n))) => n
                .as_u64()
                .map(|n| n as usize)
                .ok_or_else(|| jsonl::bad_line(path, line, format!("bad task_id {n}")))?,
            _ => {
                return Err(jsonl::bad_line(
                    path,
                    line,
                    "needs an `index` (0-based row of the data file) or a `task_id`",
                ));
            }
        };
        let slot = samples.get_mut(index).ok_or_else(|| {
            jsonl::bad_line(
                path,
                line,
                format!("index {index} is past the {} evaluated examples", ids.len()),
            )
        })?;
        slot.push(row.completion);
    }
    Ok(samples)
}

//! GLUE TSV files as the GLUE distribution ships them (the layouts transformers' GLUE processors
//! read), for the train and dev splits of CoLA, SST-2, MRPC, RTE, QNLI, WNLI and STS-B.
//!
//! Column layouts (0-based) and label conventions, as in transformers' `glue_processors`:
//! - CoLA, no header: source, label (0/1), original mark, sentence.
//! - SST-2: sentence, label (0/1).
//! - MRPC: Quality (label 0/1), #1 ID, #2 ID, #1 String, #2 String.
//! - RTE, QNLI: index, sentence1 | question, sentence2 | sentence, label with entailment = 0,
//!   not_entailment = 1.
//! - WNLI: index, sentence1, sentence2, label (0/1).
//! - STS-B: index, genre, filename, year, old_index, source1, source2, sentence1, sentence2,
//!   score (a float in [0, 5]; regression).
//!
//! Cells are taken literally (GLUE's TSVs use no quoting: `"` is text). A row must have exactly
//! its task's number of columns: a stray tab inside a sentence would otherwise shift the label
//! column silently. Blank lines are skipped; a leading byte-order mark is ignored. The GLUE test
//! splits have other layouts (no labels) and are not read here.
//!
//! Any other file (parquet as the HF hub's `nyu-mll/glue` ships it, `datasets` Arrow files,
//! JSON lines) is read by column name: `sentence` (CoLA, SST-2), `sentence1` / `sentence2`
//! (MRPC, RTE, WNLI, STS-B), `question` / `sentence` (QNLI) and `label` (a class index, STS-B's
//! score), or the names `data.columns` gives. Labels are the same as the TSVs' (HF's
//! `ClassLabel` order); the test splits' `-1` is an error.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde_json::Value;

use super::columns::Columns;
use super::record::{ReadOptions, Record, json_kind};
use super::records::read_records;
use super::source::{bad_line, numbered_lines, read_text};
use crate::{Error, Result};

/// A GLUE task with shipped data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GlueTask {
    Cola,
    Sst2,
    Mrpc,
    Rte,
    Qnli,
    Wnli,
    Stsb,
}

/// How a task's label column is written.
#[derive(Clone, Copy, Debug)]
enum LabelKind {
    /// `0` or `1`.
    Binary,
    /// `entailment` (0) or `not_entailment` (1).
    Entailment,
    /// A float score (STS-B).
    Score,
}

/// Where a task's fields sit in a row.
#[derive(Clone, Copy, Debug)]
struct Layout {
    header: bool,
    columns: usize,
    text_a: usize,
    text_b: Option<usize>,
    label: usize,
    label_kind: LabelKind,
}

impl GlueTask {
    pub const ALL: [GlueTask; 7] = [
        GlueTask::Cola,
        GlueTask::Sst2,
        GlueTask::Mrpc,
        GlueTask::Rte,
        GlueTask::Qnli,
        GlueTask::Wnli,
        GlueTask::Stsb,
    ];

    /// The folder name in the GLUE distribution (`CoLA`, `SST-2`, `STS-B`, …).
    pub fn dir_name(self) -> &'static str {
        match self {
            GlueTask::Cola => "CoLA",
            GlueTask::Sst2 => "SST-2",
            GlueTask::Mrpc => "MRPC",
            GlueTask::Rte => "RTE",
            GlueTask::Qnli => "QNLI",
            GlueTask::Wnli => "WNLI",
            GlueTask::Stsb => "STS-B",
        }
    }

    /// `glue_dir/<Task>/<split>.tsv`, e.g. `datasets/glue/RTE/dev.tsv`.
    pub fn split_path(self, glue_dir: &Path, split: &str) -> PathBuf {
        glue_dir.join(self.dir_name()).join(format!("{split}.tsv"))
    }

    /// STS-B is a regression task (one output, mean-squared error).
    pub fn is_regression(self) -> bool {
        self == GlueTask::Stsb
    }

    /// Outputs of the classifier head, as transformers' `glue_tasks_num_labels`.
    pub fn num_labels(self) -> usize {
        if self.is_regression() { 1 } else { 2 }
    }

    /// Whether examples carry a second sentence.
    pub fn is_pair(self) -> bool {
        self.layout().text_b.is_some()
    }

    fn layout(self) -> Layout {
        let pair = |label_kind| Layout {
            header: true,
            columns: 4,
            text_a: 1,
            text_b: Some(2),
            label: 3,
            label_kind,
        };
        match self {
            GlueTask::Cola => Layout {
                header: false,
                columns: 4,
                text_a: 3,
                text_b: None,
                label: 1,
                label_kind: LabelKind::Binary,
            },
            GlueTask::Sst2 => Layout {
                header: true,
                columns: 2,
                text_a: 0,
                text_b: None,
                label: 1,
                label_kind: LabelKind::Binary,
            },
            GlueTask::Mrpc => Layout {
                header: true,
                columns: 5,
                text_a: 3,
                text_b: Some(4),
                label: 0,
                label_kind: LabelKind::Binary,
            },
            GlueTask::Rte | GlueTask::Qnli => pair(LabelKind::Entailment),
            GlueTask::Wnli => pair(LabelKind::Binary),
            GlueTask::Stsb => Layout {
                header: true,
                columns: 10,
                text_a: 7,
                text_b: Some(8),
                label: 9,
                label_kind: LabelKind::Score,
            },
        }
    }
}

impl fmt::Display for GlueTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.dir_name())
    }
}

impl FromStr for GlueTask {
    type Err = Error;

    /// Case-insensitive, with or without the dash: `cola`, `SST-2`, `sst2`, `sts-b`, `stsb`, …
    fn from_str(s: &str) -> Result<Self> {
        let key = |name: &str| name.to_ascii_lowercase().replace(['-', '_'], "");
        let wanted = key(s);
        Self::ALL
            .into_iter()
            .find(|task| key(task.dir_name()) == wanted)
            .ok_or_else(|| {
                Error::invalid(
                    "task",
                    s,
                    "expected one of CoLA, SST-2, MRPC, RTE, QNLI, WNLI, STS-B",
                )
            })
    }
}

/// The target of one example.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GlueLabel {
    /// Class index (all tasks but STS-B).
    Class(usize),
    /// Similarity score (STS-B).
    Score(f32),
}

/// One labelled GLUE example.
#[derive(Clone, Debug, PartialEq)]
pub struct GlueExample {
    pub text_a: String,
    /// The second sentence of pair tasks.
    pub text_b: Option<String>,
    pub label: GlueLabel,
}

impl GlueTask {
    /// The HF `glue` dataset's column names: (first sentence, second sentence, label).
    fn hf_columns(self) -> (&'static str, Option<&'static str>, &'static str) {
        match self {
            GlueTask::Cola | GlueTask::Sst2 => ("sentence", None, "label"),
            GlueTask::Qnli => ("question", Some("sentence"), "label"),
            GlueTask::Mrpc | GlueTask::Rte | GlueTask::Wnli | GlueTask::Stsb => {
                ("sentence1", Some("sentence2"), "label")
            }
        }
    }
}

/// Every example of a `task` file in file order: a GLUE TSV (train or dev layout), or any
/// file [`read_records`] reads, with the HF `glue` column names.
pub fn load_glue(task: GlueTask, path: &Path) -> Result<Vec<GlueExample>> {
    load_glue_with(task, path, &Columns::default())
}

/// As [`load_glue`], with column names from `columns` where set (not for TSV files, whose
/// layouts are fixed).
pub fn load_glue_with(task: GlueTask, path: &Path, columns: &Columns) -> Result<Vec<GlueExample>> {
    columns.reject(&["prompt", "input", "response", "messages"], "GLUE")?;
    if path.extension().is_some_and(|e| e == "tsv") {
        if let Some(name) = [&columns.text_a, &columns.text_b, &columns.label]
            .into_iter()
            .flatten()
            .next()
        {
            return Err(Error::invalid(
                "data.columns",
                name,
                "GLUE TSV files have fixed layouts; columns apply to parquet, Arrow and JSON files",
            ));
        }
        return load_glue_tsv(task, path);
    }
    let (a, b, label) = task.hf_columns();
    let text_a = columns.text_a.clone().unwrap_or_else(|| a.into());
    let text_b = columns.text_b.clone().or_else(|| b.map(Into::into));
    let label = columns.label.clone().unwrap_or_else(|| label.into());
    if task.is_pair() != text_b.is_some() {
        return Err(Error::invalid(
            "data.columns.text_b",
            text_b.as_deref().unwrap_or("unset"),
            format!(
                "{task} is a {} task",
                if task.is_pair() {
                    "sentence-pair"
                } else {
                    "single-sentence"
                }
            ),
        ));
    }
    let mut wanted = vec![text_a.clone(), label.clone()];
    wanted.extend(text_b.clone());
    let records = read_records(
        path,
        &ReadOptions {
            columns: Some(&wanted),
            ..ReadOptions::default()
        },
    )?;
    let kind = task.layout().label_kind;
    records
        .rows
        .iter()
        .map(|r| {
            Ok(GlueExample {
                text_a: r.string(&text_a)?.to_owned(),
                text_b: match &text_b {
                    Some(b) => Some(r.string(b)?.to_owned()),
                    None => None,
                },
                label: record_label(r, &label, kind)?,
            })
        })
        .collect()
}

/// The label in `column` of a row: a number (class index or score) or the TSV spelling.
fn record_label(record: &Record, column: &str, kind: LabelKind) -> Result<GlueLabel> {
    let value = record.value(column)?;
    let bad = |reason: String| record.error(format!("label `{column}`: {reason}"));
    match (value, kind) {
        (Value::String(raw), _) => parse_label(kind, raw.trim()).map_err(bad),
        (Value::Number(n), LabelKind::Score) => match n.as_f64() {
            Some(score) if score.is_finite() => Ok(GlueLabel::Score(score as f32)),
            _ => Err(bad(format!("score {n} is not a finite number"))),
        },
        (Value::Number(n), _) => match n.as_i64() {
            Some(c @ (0 | 1)) => Ok(GlueLabel::Class(c as usize)),
            Some(-1) => Err(bad(
                "-1 marks an unlabelled row (the GLUE test splits have no labels)".into(),
            )),
            _ => Err(bad(format!("{n} is not a class index (0 or 1)"))),
        },
        (other, _) => Err(bad(format!(
            "expected a number or a string, found {}",
            json_kind(other)
        ))),
    }
}

/// A label written as text, as the TSVs have them.
fn parse_label(kind: LabelKind, raw: &str) -> Result<GlueLabel, String> {
    Ok(match kind {
        LabelKind::Binary => match raw {
            "0" => GlueLabel::Class(0),
            "1" => GlueLabel::Class(1),
            _ => return Err(format!("label `{raw}` is not 0 or 1")),
        },
        LabelKind::Entailment => match raw {
            "entailment" => GlueLabel::Class(0),
            "not_entailment" => GlueLabel::Class(1),
            _ => return Err(format!("label `{raw}` is not entailment or not_entailment")),
        },
        LabelKind::Score => match raw.parse::<f32>() {
            Ok(score) if score.is_finite() => GlueLabel::Score(score),
            _ => return Err(format!("score `{raw}` is not a finite number")),
        },
    })
}

/// Every example of a `task` TSV file (train or dev layout), in file order.
fn load_glue_tsv(task: GlueTask, path: &Path) -> Result<Vec<GlueExample>> {
    let layout = task.layout();
    let text = read_text(path)?;
    let skip = usize::from(layout.header);
    numbered_lines(&text)
        .skip(skip)
        .filter(|(_, line)| !line.is_empty())
        .map(|(n, line)| parse_row(task, layout, line).map_err(|m| bad_line(path, n, m)))
        .collect()
}

/// One data row; the error is the message without the location.
fn parse_row(task: GlueTask, layout: Layout, line: &str) -> Result<GlueExample, String> {
    let cells: Vec<&str> = line.split('\t').collect();
    if cells.len() != layout.columns {
        return Err(format!(
            "expected {} tab-separated columns ({task} layout), found {}",
            layout.columns,
            cells.len()
        ));
    }
    let label = parse_label(layout.label_kind, cells[layout.label].trim())?;
    Ok(GlueExample {
        text_a: cells[layout.text_a].to_owned(),
        text_b: layout.text_b.map(|i| cells[i].to_owned()),
        label,
    })
}

//! Datasets: prompt templates, instruction / text / GLUE readers, tokenisation and batching.
//!
//! Files are JSON / JSON lines, parquet (single or sharded, as the HF hub stores datasets) or the
//! `datasets` library's Arrow files ([`read_records`]); `data.columns` maps their columns.
//!
//! The pipeline for instruction tuning: [`load_training_rows`] (file → prompt/response text, or
//! conversations) → [`InstructionTokenizer`] (→ ids and −100-masked labels; chat templates for
//! conversations) → [`split_held_out`] / [`shuffle`] →
//! [`LmBatcher`] (→ right-padded tensors). Plain text: [`load_documents`] →
//! [`chunk_documents`] → [`LmBatcher`]. GLUE: [`load_glue`] → [`PairEncoder`] →
//! [`ClassificationBatcher`].

pub mod batch;
pub mod chat;
pub mod classification;
mod columnar;
pub mod columns;
pub mod example;
pub mod glue;
pub mod hf_files;
pub mod instruction;
pub mod prompt;
pub mod record;
pub mod records;
pub mod sampling;
mod source;
pub mod text;
pub mod tokenize;

pub use batch::{
    ClassificationBatch, ClassificationBatcher, ClassificationTargets, LmBatch, LmBatcher,
};
/// Burn's in-memory dataset, the container for tokenized examples.
pub use burn::data::dataset::{Dataset, InMemDataset};
pub use classification::{ClassificationExample, PAIR_SEPARATOR, PairEncoder};
pub use columns::Columns;
pub use example::TokenizedExample;
pub use glue::{GlueExample, GlueLabel, GlueTask, load_glue, load_glue_with};
pub use instruction::{
    InstructionFormat, InstructionRow, TrainingRow, load_instructions, load_training_rows,
};
pub use record::Record;
pub use records::{Records, read_records};
pub use sampling::{HeldOut, SeededShuffle, permutation, seeded_subset, shuffle, split_held_out};
pub use text::{chunk_documents, load_documents};
pub use tokenize::{InstructionTokenizer, TruncationLimits};

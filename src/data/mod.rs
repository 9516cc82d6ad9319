//! Datasets: prompt templates, instruction / text / GLUE readers, tokenisation and batching.
//!
//! The pipeline for instruction tuning: [`load_instructions`] (file → prompt/response text) →
//! [`InstructionTokenizer`] (→ ids and −100-masked labels) → [`split_held_out`] / [`shuffle`] →
//! [`LmBatcher`] (→ right-padded tensors). Plain text: [`load_documents`] →
//! [`chunk_documents`] → [`LmBatcher`]. GLUE: [`load_glue`] → [`PairEncoder`] →
//! [`ClassificationBatcher`].

pub mod batch;
pub mod classification;
pub mod glue;
pub mod instruction;
pub mod prompt;
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
pub use glue::{GlueExample, GlueLabel, GlueTask, load_glue};
pub use instruction::{InstructionFormat, InstructionRow, load_instructions};
pub use sampling::{HeldOut, SeededShuffle, permutation, shuffle, split_held_out};
pub use text::{chunk_documents, load_documents};
pub use tokenize::{InstructionTokenizer, TokenizedExample, TruncationLimits};

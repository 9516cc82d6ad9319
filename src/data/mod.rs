//! Datasets: prompt templates, instruction / text / GLUE readers, batching.

pub mod prompt;

//! Training: the default recipe, every method's save / reload / merge round trip, resume,
//! the SORSA regularizer's behaviour and bad input.

#[path = "train/common.rs"]
mod common;

#[path = "train/classification.rs"]
mod classification;
#[path = "train/distributed.rs"]
mod distributed;
#[path = "train/errors.rs"]
mod errors;
#[path = "train/hf_data.rs"]
mod hf_data;
#[path = "train/killed.rs"]
mod killed;
#[path = "train/methods.rs"]
mod methods;
#[path = "train/precision.rs"]
mod precision;
#[path = "train/recipe_run.rs"]
mod recipe_run;
#[path = "train/resume.rs"]
mod resume;
#[path = "train/rwkv6.rs"]
mod rwkv6;

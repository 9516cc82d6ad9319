//! Which linear layers get adapters, with HF PEFT's semantics for `target_modules`:
//! a list of names matches a module whose full name equals an entry or ends with `.entry`;
//! a single string is a regular expression that must match the whole name; `"all-linear"`
//! selects every linear layer except the output head.

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// `targets` in a recipe (`target_modules` in PEFT).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Targets {
    /// Module names, e.g. `["q_proj", "v_proj"]`.
    Names(Vec<String>),
    /// `"all-linear"`, or a regular expression matched against the full module name.
    Pattern(String),
}

pub const ALL_LINEAR: &str = "all-linear";

/// A compiled [`Targets`].
#[derive(Debug, Clone)]
pub enum TargetMatcher {
    Names(Vec<String>),
    Regex(Regex),
    AllLinear,
}

impl Targets {
    pub fn compile(&self) -> Result<TargetMatcher> {
        match self {
            Targets::Names(names) if names.is_empty() => Err(Error::invalid(
                "adapter.targets",
                "[]",
                "name at least one module",
            )),
            Targets::Names(names) => Ok(TargetMatcher::Names(names.clone())),
            Targets::Pattern(p) if p == ALL_LINEAR => Ok(TargetMatcher::AllLinear),
            Targets::Pattern(p) => Regex::new(&format!("^(?:{p})$"))
                .map(TargetMatcher::Regex)
                .map_err(|e| {
                    Error::invalid(
                        "adapter.targets",
                        p,
                        format!("not a valid regular expression: {e}"),
                    )
                }),
        }
    }
}

impl TargetMatcher {
    /// Whether the module `name` (full dotted HF name) is a target. `is_head` marks output heads,
    /// which `all-linear` leaves out.
    pub fn matches(&self, name: &str, is_head: bool) -> bool {
        match self {
            TargetMatcher::Names(names) => names
                .iter()
                .any(|n| name == n || name.ends_with(&format!(".{n}"))),
            TargetMatcher::Regex(re) => re.is_match(name),
            TargetMatcher::AllLinear => !is_head,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peft_matching_rules() {
        let names = Targets::Names(vec!["q_proj".into(), "v_proj".into()])
            .compile()
            .unwrap();
        assert!(names.matches("model.layers.0.self_attn.q_proj", false));
        assert!(!names.matches("model.layers.0.self_attn.qq_proj", false));
        assert!(!names.matches("model.layers.0.self_attn.o_proj", false));
        let re = Targets::Pattern(r".*\.[0-1]\.self_attn\.(q|k)_proj".into())
            .compile()
            .unwrap();
        assert!(re.matches("model.layers.1.self_attn.k_proj", false));
        assert!(!re.matches("model.layers.2.self_attn.k_proj", false));
        let all = Targets::Pattern("all-linear".into()).compile().unwrap();
        assert!(all.matches("model.layers.0.mlp.up_proj", false));
        assert!(!all.matches("lm_head", true));
        assert!(Targets::Pattern("(".into()).compile().is_err());
    }
}

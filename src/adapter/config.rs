//! The adapter configuration: one flat, serde-(de)serialisable struct as in HF PEFT, validated
//! per method. In TOML recipes it is the `[adapter]` table.

use serde::{Deserialize, Serialize};

use super::targets::Targets;
use crate::linalg::{SvdMode, SvdOptions};
use crate::{Error, Result};

/// The adapter method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// LoRA: kaiming A, zero B.
    Lora,
    /// PiSSA: principal singular triplets split into A and B, residual base.
    Pissa,
    /// SORSA: trainable A = V_rᵀ, S = σ_r, B = U_r; residual base; orthonormal regularizer.
    Sorsa,
    /// LoRA-FA: frozen A, trainable B.
    LoraFa,
    /// LoTR: factors L, R shared across a group of layers, one core per layer.
    Lotr,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Lora => "lora",
            Method::Pissa => "pissa",
            Method::Sorsa => "sorsa",
            Method::LoraFa => "lora_fa",
            Method::Lotr => "lotr",
        }
    }

    /// Methods whose initialisation runs an SVD of the base weight (for some `init`).
    pub fn may_use_svd(self) -> bool {
        !matches!(self, Method::Lora)
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How the adapter factors are initialised, for methods that offer a choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Init {
    /// LoRA-FA: kaiming-uniform A with orthonormalised rows, B = 0.
    Kaiming,
    /// LoRA-FA: A = V_rᵀ, B = 0 (base unchanged). LoTR: Tucker-2 factors of the stacked group.
    Svd,
    /// LoRA-FA: A = V_rᵀ, B = U_r diag(σ_r)/scale, residual base (PiSSA-style split).
    SvdSplit,
    /// LoTR: L, R ~ N(0, 1), cores = 0.
    Normal,
}

impl Init {
    fn name(self) -> &'static str {
        match self {
            Init::Kaiming => "kaiming",
            Init::Svd => "svd",
            Init::SvdSplit => "svd-split",
            Init::Normal => "normal",
        }
    }
}

/// How the SORSA regularizer enters the optimizer step (METHODS.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegularizerMode {
    /// The reference implementation: after clipping the task gradient, add ∇((γ/η₀)·L_reg) and
    /// take one AdamW step.
    #[default]
    Reference,
    /// The paper's formula: a separate plain step `W ← W − γ ∇L_reg`.
    Separate,
}

fn default_power_iterations() -> usize {
    SvdOptions::DEFAULT_POWER_ITERATIONS
}

/// Configuration of one adapter method (`[adapter]` in a recipe).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdapterConfig {
    /// `lora`, `pissa`, `sorsa`, `lora_fa` or `lotr`.
    pub method: Method,
    /// Rank r of the update.
    pub rank: usize,
    /// Scale numerator: `scale = alpha / r` (`alpha / √r` with `rslora`). Default: `alpha = r`
    /// (scale 1; SORSA's reference) for all methods except LoTR, where it is 1 (METHODS.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// Dropout on the adapter's input (training only).
    #[serde(default)]
    pub dropout: f64,
    /// rsLoRA scaling `alpha / √r`.
    #[serde(default)]
    pub rslora: bool,
    /// Initialisation: LoRA-FA `kaiming | svd | svd-split` (default svd), LoTR `normal | svd`
    /// (default normal). Other methods have one initialisation and reject this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<Init>,
    /// SVD engine: `exact` or `randomized`.
    #[serde(default)]
    pub svd: SvdMode,
    /// Randomized SVD: sketch columns beyond the rank (default `max(16, rank/2)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oversampling: Option<usize>,
    /// Randomized SVD: power iterations.
    #[serde(default = "default_power_iterations")]
    pub power_iterations: usize,
    /// Seed of random initialisers and the randomized SVD.
    #[serde(default)]
    pub seed: u64,
    /// SORSA: regularizer weight γ (0 disables it).
    #[serde(default)]
    pub gamma: f64,
    /// SORSA: `reference` (default) or `separate`.
    #[serde(default)]
    pub regularizer_mode: RegularizerMode,
    /// SORSA, reference mode: also divide the regularizer gradient by the number of gradient
    /// accumulation steps, as the reference training script does through its accumulation
    /// machinery. Off by default.
    #[serde(default)]
    pub regularizer_divide_by_accumulation: bool,
    /// LoRA-FA: precondition B's gradient with `(1/scale²)(A Aᵀ + 1e-8 I)⁻¹` (LoRA-FA v2).
    #[serde(default)]
    pub grad_correction: bool,
    /// Which linear layers get adapters (PEFT's `target_modules`): a list of module names, a
    /// regular expression, or `"all-linear"`. Default: the architecture's (q and v projections).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<Targets>,
    /// Modules trained fully alongside the adapters (PEFT's `modules_to_save`), e.g.
    /// `["classifier"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modules_to_save: Vec<String>,
}

impl AdapterConfig {
    /// A configuration with every optional field at its default.
    pub fn new(method: Method, rank: usize) -> Self {
        Self {
            method,
            rank,
            alpha: None,
            dropout: 0.0,
            rslora: false,
            init: None,
            svd: SvdMode::Exact,
            oversampling: None,
            power_iterations: default_power_iterations(),
            seed: 0,
            gamma: 0.0,
            regularizer_mode: RegularizerMode::Reference,
            regularizer_divide_by_accumulation: false,
            grad_correction: false,
            targets: None,
            modules_to_save: Vec::new(),
        }
    }

    pub fn with_alpha(mut self, alpha: f64) -> Self {
        self.alpha = Some(alpha);
        self
    }

    pub fn with_init(mut self, init: Init) -> Self {
        self.init = Some(init);
        self
    }

    pub fn with_svd(mut self, mode: SvdMode) -> Self {
        self.svd = mode;
        self
    }

    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    pub fn with_gamma(mut self, gamma: f64) -> Self {
        self.gamma = gamma;
        self
    }

    /// `alpha` with the method's default filled in.
    pub fn alpha(&self) -> f64 {
        match (self.alpha, self.method) {
            (Some(alpha), _) => alpha,
            (None, Method::Lotr) => 1.0,
            (None, _) => self.rank as f64,
        }
    }

    /// The factor multiplying the adapter's output.
    pub fn scale(&self) -> f64 {
        let rank = self.rank as f64;
        if self.rslora {
            self.alpha() / rank.sqrt()
        } else {
            self.alpha() / rank
        }
    }

    /// The initialisation with the method's default filled in (`None` for single-init methods).
    pub fn resolved_init(&self) -> Option<Init> {
        match self.method {
            Method::LoraFa => Some(self.init.unwrap_or(Init::Svd)),
            Method::Lotr => Some(self.init.unwrap_or(Init::Normal)),
            _ => None,
        }
    }

    /// SVD options derived from this config.
    pub fn svd_options(&self) -> SvdOptions {
        SvdOptions {
            mode: self.svd,
            oversampling: self
                .oversampling
                .unwrap_or_else(|| SvdOptions::auto_oversampling(self.rank)),
            power_iterations: self.power_iterations,
            seed: self.seed,
        }
    }

    /// Checks ranges and method-specific fields. Errors name the field as `adapter.<field>`.
    pub fn validate(&self) -> Result<()> {
        let field = |name: &str| format!("adapter.{name}");
        if self.rank == 0 {
            return Err(Error::invalid(
                field("rank"),
                self.rank,
                "must be at least 1",
            ));
        }
        if let Some(alpha) = self.alpha
            && !(alpha.is_finite() && alpha > 0.0)
        {
            return Err(Error::invalid(
                field("alpha"),
                alpha,
                "must be a positive number",
            ));
        }
        if !(self.dropout.is_finite() && (0.0..1.0).contains(&self.dropout)) {
            return Err(Error::invalid(
                field("dropout"),
                self.dropout,
                "must be in [0, 1)",
            ));
        }
        if let Some(init) = self.init {
            let allowed: &[Init] = match self.method {
                Method::LoraFa => &[Init::Kaiming, Init::Svd, Init::SvdSplit],
                Method::Lotr => &[Init::Normal, Init::Svd],
                _ => &[],
            };
            if !allowed.contains(&init) {
                let reason = if allowed.is_empty() {
                    format!(
                        "method {} has a single initialisation; remove the field",
                        self.method
                    )
                } else {
                    let names: Vec<_> = allowed.iter().map(|i| i.name()).collect();
                    format!("method {} accepts {}", self.method, names.join(", "))
                };
                return Err(Error::invalid(field("init"), init.name(), reason));
            }
        }
        if !(self.gamma.is_finite() && self.gamma >= 0.0) {
            return Err(Error::invalid(field("gamma"), self.gamma, "must be >= 0"));
        }
        if self.gamma > 0.0 && self.method != Method::Sorsa {
            return Err(Error::invalid(
                field("gamma"),
                self.gamma,
                format!(
                    "the orthonormal regularizer applies to sorsa, not {}",
                    self.method
                ),
            ));
        }
        if self.grad_correction && self.method != Method::LoraFa {
            return Err(Error::invalid(
                field("grad_correction"),
                true,
                format!("applies to lora_fa, not {}", self.method),
            ));
        }
        if let Some(targets) = &self.targets {
            targets.compile()?;
        }
        if self.svd == SvdMode::Randomized && !self.method.may_use_svd() {
            return Err(Error::invalid(
                field("svd"),
                "randomized",
                "lora does not run an SVD",
            ));
        }
        Ok(())
    }

    /// Validates the config against one layer's weight shape `[out, in]`.
    pub fn validate_for_shape(&self, out_features: usize, in_features: usize) -> Result<()> {
        self.validate()?;
        let max = out_features.min(in_features);
        if self.rank > max {
            return Err(Error::invalid(
                "adapter.rank",
                self.rank,
                format!("exceeds min(out, in) = {max} of a [{out_features}, {in_features}] weight"),
            ));
        }
        Ok(())
    }
}

/// Parses a value of a serde string enum (`"sorsa"`, `"svd-split"`, …) as written in configs.
fn parse_name<T: serde::de::DeserializeOwned>(field: &str, s: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(s.to_string()))
        .map_err(|e| Error::invalid(field, s, e.to_string()))
}

impl std::str::FromStr for Method {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        parse_name("adapter.method", s)
    }
}

impl std::str::FromStr for Init {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        parse_name("adapter.init", s)
    }
}

impl std::str::FromStr for SvdMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        parse_name("adapter.svd", s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_in() {
        let cfg: AdapterConfig = toml::from_str("method = \"lotr\"\nrank = 4").unwrap();
        assert_eq!(cfg.alpha(), 1.0);
        assert_eq!(cfg.resolved_init(), Some(Init::Normal));
        let cfg: AdapterConfig = toml::from_str("method = \"sorsa\"\nrank = 4").unwrap();
        assert_eq!(cfg.scale(), 1.0);
    }
}

//! Trainable-parameter accounting, printed the way HF PEFT's `print_trainable_parameters` does.

use std::fmt;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Tensor, backend::AutodiffBackend};

/// One parameter tensor of a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamEntry {
    /// Dotted module path, e.g. `layers.0.q_proj.adapter.a`.
    pub path: String,
    pub shape: Vec<usize>,
    pub count: usize,
    pub trainable: bool,
}

/// Trainable vs frozen parameters of a module.
#[derive(Debug, Clone, Default)]
pub struct ParamReport {
    pub entries: Vec<ParamEntry>,
}

impl ParamReport {
    /// Walks every float parameter of `module`. Trainability is read from the autodiff graph
    /// (`require_grad`), so the module must live on an autodiff backend.
    pub fn of<B: AutodiffBackend, M: Module<B>>(module: &M) -> Self {
        let mut visitor = Collect {
            path: Vec::new(),
            report: ParamReport::default(),
        };
        module.visit(&mut visitor);
        visitor.report
    }

    pub fn trainable(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.trainable)
            .map(|e| e.count)
            .sum()
    }

    pub fn total(&self) -> usize {
        self.entries.iter().map(|e| e.count).sum()
    }

    pub fn frozen(&self) -> usize {
        self.total() - self.trainable()
    }

    /// Trainable share in percent.
    pub fn trainable_percent(&self) -> f64 {
        match self.total() {
            0 => 0.0,
            total => 100.0 * self.trainable() as f64 / total as f64,
        }
    }

    /// The table of trainable tensors, one per line.
    pub fn trainable_table(&self) -> String {
        let mut out = String::new();
        for e in self.entries.iter().filter(|e| e.trainable) {
            out.push_str(&format!(
                "  {:<48} {:>14?} {:>12}\n",
                e.path,
                e.shape,
                group_digits(e.count)
            ));
        }
        out
    }
}

impl fmt::Display for ParamReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "trainable params: {} || all params: {} || trainable%: {:.4}",
            group_digits(self.trainable()),
            group_digits(self.total()),
            self.trainable_percent()
        )
    }
}

/// `1234567` → `1,234,567`.
pub fn group_digits(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

struct Collect {
    path: Vec<String>,
    report: ParamReport,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Collect {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let tensor = param.val();
        let shape = tensor.dims().to_vec();
        self.report.entries.push(ParamEntry {
            path: self.path.join("."),
            count: shape.iter().product(),
            shape,
            trainable: tensor.is_require_grad(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::group_digits;

    #[test]
    fn digits_are_grouped() {
        assert_eq!(group_digits(0), "0");
        assert_eq!(group_digits(999), "999");
        assert_eq!(group_digits(1000), "1,000");
        assert_eq!(group_digits(6_738_415_616), "6,738,415,616");
    }
}

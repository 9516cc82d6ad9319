//! Prompt templates of METHODS.md (SORSA's math and code training and evaluation).

/// The MetaMathQA / GSM8K training prompt; BOS is added by the tokenizer, the response
/// (`{response}` + EOS) is the target.
pub fn math_train_prompt(query: &str) -> String {
    format!(
        "Below is an instruction that describes a task. Write a response that appropriately \
         completes the request.\n\n### Instruction:\n{query}\n\n### Response:"
    )
}

/// The evaluation prompt for GSM-8K and MATH: the training prompt ending in
/// `### Response: Let's think step by step.`
pub fn math_eval_prompt(query: &str) -> String {
    format!("{} Let's think step by step.", math_train_prompt(query))
}

/// The HumanEval instruction prompt (the format example really uses ''' quotes).
pub fn humaneval_prompt(code: &str) -> String {
    format!(
        "@@ Instruction\nHere is the given code to do completion:\n```python\n{code}\n```\n\n\
         Please continue to complete the function with python programming language. You are not \
         allowed to modify the given code and do the completion only.\n\nPlease return all \
         completed codes in one code block.\nThis code block should be in the following \
         format:\n'''python\n# Your codes here\n'''\n\n@@ Response\n"
    )
}

/// Alpaca's prompt with an optional input, the same instruction template as training.
pub fn alpaca_prompt(instruction: &str, input: &str) -> String {
    if input.trim().is_empty() {
        math_train_prompt(instruction)
    } else {
        format!(
            "Below is an instruction that describes a task, paired with an input that provides \
             further context. Write a response that appropriately completes the request.\n\n\
             ### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_exact() {
        assert_eq!(
            math_eval_prompt("1+1?"),
            "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\n1+1?\n\n### Response: Let's think step by step."
        );
        assert!(humaneval_prompt("def f():").starts_with("@@ Instruction\nHere is the given code to do completion:\n```python\ndef f():\n```\n\nPlease continue"));
        assert!(
            humaneval_prompt("x").ends_with("'''python\n# Your codes here\n'''\n\n@@ Response\n")
        );
    }
}

//! Instruction rows to token ids and loss labels (METHODS.md, "Prompts and scoring"):
//! `input_ids = BOS + prompt + response + EOS`, `labels = −100 over BOS + prompt, the ids over
//! response + EOS`. Labels are aligned with `input_ids` (not shifted): [`causal_lm_loss`] shifts
//! them, as transformers does.
//!
//! Truncation follows what `tokenizer(text, truncation=True, max_length=n)` does in the reference
//! scripts, separately for the two parts:
//! - the prompt is encoded with the tokenizer's special tokens (BOS) and cut from the right to
//!   `max_prompt_length` tokens, so BOS always survives and the end of the prompt (usually
//!   `### Response:`) is what is lost;
//! - the response is encoded without special tokens, EOS is appended, and the whole is cut from
//!   the right to `max_response_length` tokens. A response that does not fit therefore loses its
//!   EOS: the model is not taught to stop in the middle of an answer.
//!
//!
//! Conversations ([`TrainingRow::Chat`]) go through the tokenizer's chat template instead
//! ([`super::chat`]), cut to `max_prompt_length + max_response_length` tokens.
//!
//! [`causal_lm_loss`]: crate::model::loss::causal_lm_loss

use std::cell::OnceCell;

pub use super::example::TokenizedExample;

use super::chat::tokenize_conversation;
use super::instruction::{InstructionRow, TrainingRow};
use crate::model::chat_template::{ChatMessage, ChatTemplate};
use crate::model::loss::IGNORE_INDEX;
use crate::model::tokenizer::TextTokenizer;
use crate::{Error, Result};

/// Separate token budgets for the two parts of an instruction example.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TruncationLimits {
    /// Tokens of BOS + prompt.
    pub max_prompt_length: usize,
    /// Tokens of response + EOS.
    pub max_response_length: usize,
}

impl TruncationLimits {
    /// Both limits must be at least 1: a prompt keeps its BOS, a response at least one target.
    pub fn validate(&self) -> Result<()> {
        for (field, value) in [
            ("max_prompt_length", self.max_prompt_length),
            ("max_response_length", self.max_response_length),
        ] {
            if value == 0 {
                return Err(Error::invalid(field, value, "must be at least 1"));
            }
        }
        Ok(())
    }
}

/// Tokenizes instruction rows with fixed limits; checks once that the tokenizer can do it.
pub struct InstructionTokenizer<'a> {
    tokenizer: &'a TextTokenizer,
    limits: TruncationLimits,
    eos: u32,
    /// The tokenizer's chat template, compiled at the first conversation.
    chat: OnceCell<ChatTemplate>,
}

impl<'a> InstructionTokenizer<'a> {
    /// Fails when a limit is 0 or the tokenizer names no EOS token: every response must end in one, or the
    /// model never learns to stop.
    pub fn new(tokenizer: &'a TextTokenizer, limits: TruncationLimits) -> Result<Self> {
        limits.validate()?;
        let eos = tokenizer.eos_token_id.ok_or_else(|| {
            Error::invalid(
                "eos_token",
                "none",
                "instruction tuning appends EOS to every response; the tokenizer's \
                 tokenizer_config.json names no eos_token",
            )
        })?;
        Ok(Self {
            tokenizer,
            limits,
            eos,
            chat: OnceCell::new(),
        })
    }

    /// `input_ids` and `labels` of one row.
    pub fn tokenize(&self, row: &InstructionRow) -> Result<TokenizedExample> {
        let mut prompt = self.tokenizer.encode_with_bos(&row.prompt)?;
        prompt.truncate(self.limits.max_prompt_length);

        let mut response = self.tokenizer.encode(&row.response, false)?;
        response.push(self.eos);
        response.truncate(self.limits.max_response_length);

        let labels = std::iter::repeat_n(IGNORE_INDEX, prompt.len())
            .chain(response.iter().map(|&id| i64::from(id)))
            .collect();
        prompt.extend(response);
        Ok(TokenizedExample {
            input_ids: prompt,
            labels,
        })
    }

    /// Every row, in order.
    pub fn tokenize_all(&self, rows: &[InstructionRow]) -> Result<Vec<TokenizedExample>> {
        rows.iter().map(|row| self.tokenize(row)).collect()
    }

    /// A conversation's ids and labels (loss on assistant turns); `None` when no assistant
    /// token fits in the length limit.
    pub fn tokenize_chat(&self, messages: &[ChatMessage]) -> Result<Option<TokenizedExample>> {
        let max_length = self.limits.max_prompt_length + self.limits.max_response_length;
        tokenize_conversation(self.tokenizer, self.chat_template()?, messages, max_length)
    }

    /// Every training row, in order. Conversations without an assistant token within the
    /// length limit are left out, with a warning, as they carry nothing to learn.
    pub fn tokenize_rows(&self, rows: &[TrainingRow]) -> Result<Vec<TokenizedExample>> {
        let mut examples = Vec::with_capacity(rows.len());
        let mut skipped = 0;
        for row in rows {
            match row {
                TrainingRow::Instruction(row) => examples.push(self.tokenize(row)?),
                TrainingRow::Chat(messages) => match self.tokenize_chat(messages)? {
                    Some(example) => examples.push(example),
                    None => skipped += 1,
                },
            }
        }
        if skipped > 0 {
            eprintln!(
                "warning: {skipped} conversations have no assistant token within the {}-token \
                 limit (data.max_prompt_length + data.max_response_length) and are left out",
                self.limits.max_prompt_length + self.limits.max_response_length
            );
        }
        Ok(examples)
    }

    fn chat_template(&self) -> Result<&ChatTemplate> {
        if let Some(template) = self.chat.get() {
            return Ok(template);
        }
        let template = self.tokenizer.chat_template(None)?;
        Ok(self.chat.get_or_init(|| template))
    }
}

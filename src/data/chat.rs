//! Chat data: conversations (`[{role, content}, …]`) rendered with the tokenizer's chat template
//! and tokenized with the loss on assistant turns only, as TRL's `assistant_only_loss` and
//! torchtune's chat datasets train.
//!
//! The rendered text is encoded as transformers' `apply_chat_template(tokenize=True)` does it:
//! without the tokenizer's own special tokens (the template writes BOS and end-of-turn tokens
//! itself) and without an EOS appended. A token is a target when its text overlaps an assistant
//! message's span ([`ChatTemplate::assistant_spans`]): the message and what the template
//! closes it with (e.g. `<|im_end|>`), so the model learns to end its turn. The conversation is
//! cut from the right to the length limit.

use serde_json::Value;

use super::example::TokenizedExample;
use super::record::{Record, json_kind};
use crate::Result;
use crate::model::chat_template::{ChatMessage, ChatTemplate};
use crate::model::loss::IGNORE_INDEX;
use crate::model::tokenizer::TextTokenizer;

/// The messages in `record`'s `column`: a list of objects with string `role` and `content`.
pub fn parse_messages(record: &Record, column: &str) -> Result<Vec<ChatMessage>> {
    let Value::Array(items) = record.value(column)? else {
        return Err(record.error(format!(
            "`{column}` must be a list of {{role, content}} messages, found {}",
            json_kind(record.value(column)?)
        )));
    };
    if items.is_empty() {
        return Err(record.error(format!("`{column}` holds no messages")));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let field = |name: &str| -> Result<String> {
                match item.get(name) {
                    Some(Value::String(s)) => Ok(s.clone()),
                    Some(other) => Err(record.error(format!(
                        "`{column}` message {i}: `{name}` must be a string, found {}",
                        json_kind(other)
                    ))),
                    None => Err(record.error(format!("`{column}` message {i}: missing `{name}`"))),
                }
            };
            if !item.is_object() {
                return Err(record.error(format!(
                    "`{column}` message {i} must be an object with role and content, found {}",
                    json_kind(item)
                )));
            }
            Ok(ChatMessage::new(field("role")?, field("content")?))
        })
        .collect()
}

/// `input_ids` and `labels` of a conversation: −100 everywhere but assistant turns, at most
/// `max_length` tokens. `None` when no assistant token is left within the limit.
pub fn tokenize_conversation(
    tokenizer: &TextTokenizer,
    template: &ChatTemplate,
    messages: &[ChatMessage],
    max_length: usize,
) -> Result<Option<TokenizedExample>> {
    let (text, spans) = template.assistant_spans(messages)?;
    let (mut input_ids, offsets) = tokenizer.encode_with_offsets(&text, false)?;
    let mut labels: Vec<i64> = input_ids
        .iter()
        .zip(&offsets)
        .map(|(&id, &(start, end))| {
            let inside = spans.iter().any(|s| start < s.end && end > s.start);
            if inside { i64::from(id) } else { IGNORE_INDEX }
        })
        .collect();
    input_ids.truncate(max_length);
    labels.truncate(max_length);
    let example = TokenizedExample { input_ids, labels };
    Ok((example.target_count() > 0).then_some(example))
}

/// The ids of `text` as the prompt of one user turn: rendered with the chat template and the
/// generation prompt (no special tokens added: the template writes them) when `chat`, else in
/// METHODS.md's instruction template after BOS, as training saw it.
pub fn prompt_ids(tokenizer: &TextTokenizer, text: &str, chat: bool) -> Result<Vec<u32>> {
    if chat {
        let template = tokenizer.chat_template(None)?;
        let rendered = template.render(&[ChatMessage::new("user", text)], true)?;
        tokenizer.encode(&rendered, false)
    } else {
        tokenizer.encode_with_bos(&super::prompt::math_train_prompt(text))
    }
}

//! Chat templates: the Jinja template an instruct model's tokenizer carries
//! (`tokenizer_config.json`'s `chat_template`, or `chat_template.jinja`), rendered as
//! transformers' `apply_chat_template` renders it.
//!
//! transformers renders with Jinja2's sandbox, `trim_blocks` and `lstrip_blocks` on, the loop
//! controls extension, a `tojson` filter that writes Python's `json.dumps` (no HTML escaping),
//! and the globals `raise_exception(message)` and `strftime_now(format)`; the variables are
//! `messages`, `add_generation_prompt`, `tools` / `documents` (none here) and the special tokens
//! (`bos_token`, `eos_token`, `unk_token`, `pad_token`). Here minijinja does the same, with
//! minijinja-contrib's Python string methods (`.strip()`, `.startswith()`, …) that HF templates
//! call. `strftime_now` formats the current UTC time (transformers uses local time).
//!
//! [`ChatTemplate::assistant_spans`] finds where each assistant message lies in the rendered
//! conversation, so training can take the loss on assistant turns only: it renders the
//! conversation up to each assistant turn with the generation prompt, and up to and including
//! it without; the difference is the turn's text (its content and end-of-turn marker). This
//! needs no `{% generation %}` markers in the template, only that a conversation's rendering
//! extends its prefixes' renderings, which holds for the usual templates; one that rewrites
//! earlier turns is reported as an error.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use minijinja::value::{Kwargs, Serde, Value};
use minijinja::{Environment, ErrorKind};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// One message of a conversation, as HF's `messages` lists them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` (or whatever the template accepts).
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// The role whose turns are trained on.
pub const ASSISTANT: &str = "assistant";

/// A compiled chat template with the tokenizer's special tokens.
pub struct ChatTemplate {
    env: Environment<'static>,
    /// The file the template came from (for errors).
    origin: PathBuf,
    /// The template's name when the tokenizer lists several.
    name: Option<String>,
    special_tokens: BTreeMap<String, String>,
}

const TEMPLATE: &str = "chat_template";

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("origin", &self.origin)
            .field("name", &self.name)
            .finish()
    }
}

impl ChatTemplate {
    /// Compiles `source`; `special_tokens` maps `bos_token`, `eos_token`, … to their text.
    pub fn new(
        source: String,
        origin: &Path,
        name: Option<String>,
        special_tokens: BTreeMap<String, String>,
    ) -> Result<Self> {
        let mut env = Environment::new();
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .expect("default delimiters are valid");
        env.set_syntax(syntax);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson);
        let mut template = Self {
            env,
            origin: origin.to_path_buf(),
            name,
            special_tokens,
        };
        template
            .env
            .add_template_owned(TEMPLATE, source)
            .map_err(|e| template.error(&e))?;
        Ok(template)
    }

    /// The file the template was read from.
    pub fn origin(&self) -> &Path {
        &self.origin
    }

    /// The template's name, when the tokenizer offers several.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The conversation as the model sees it; `add_generation_prompt` appends the start of an
    /// assistant turn for the model to complete.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        let mut context: BTreeMap<String, Value> = self
            .special_tokens
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        context.insert("messages".into(), Value::from(Serde(messages)));
        context.insert(
            "add_generation_prompt".into(),
            Value::from(add_generation_prompt),
        );
        // transformers passes these as None when unused, which `is none` tests rely on.
        context.insert("tools".into(), Value::from(()));
        context.insert("documents".into(), Value::from(()));
        let template = self
            .env
            .get_template(TEMPLATE)
            .expect("added at construction");
        template
            .render(Value::from_object(context))
            .map_err(|e| self.error(&e))
    }

    /// The rendered conversation and the byte range of each assistant message in it (content
    /// and whatever the template puts after it, such as an end-of-turn token).
    pub fn assistant_spans(&self, messages: &[ChatMessage]) -> Result<(String, Vec<Range<usize>>)> {
        let full = self.render(messages, false)?;
        let mut spans = Vec::new();
        for (i, message) in messages.iter().enumerate() {
            if message.role != ASSISTANT {
                continue;
            }
            let before = self.render(&messages[..i], true)?;
            let through = self.render(&messages[..=i], false)?;
            if !through.starts_with(&before) || !full.starts_with(&through) {
                return Err(self.error_text(format!(
                    "renders message {i} differently depending on the messages after it, so \
                     its assistant turn cannot be located for the loss mask"
                )));
            }
            if through.len() > before.len() {
                spans.push(before.len()..through.len());
            }
        }
        Ok((full, spans))
    }

    fn error(&self, e: &minijinja::Error) -> Error {
        let message = match e.kind() {
            // `raise_exception` carries the template author's message.
            ErrorKind::InvalidOperation if e.detail().is_some() => {
                e.detail().unwrap_or_default().to_string()
            }
            _ => e.to_string(),
        };
        self.error_text(message)
    }

    fn error_text(&self, message: String) -> Error {
        let which = match &self.name {
            Some(name) => format!("chat template `{name}`"),
            None => "chat template".to_string(),
        };
        Error::BadFile {
            path: self.origin.clone(),
            message: format!("{which}: {message}"),
        }
    }
}

/// HF's `raise_exception(message)`: stops rendering with the template's message.
fn raise_exception(message: String) -> std::result::Result<Value, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
}

/// HF's `strftime_now(format)`, in UTC.
fn strftime_now(format: String) -> std::result::Result<Value, minijinja::Error> {
    use std::fmt::Write;
    let now = chrono::Utc::now();
    let mut out = String::new();
    write!(out, "{}", now.format(&format)).map_err(|_| {
        minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("strftime_now: invalid format `{format}`"),
        )
    })?;
    Ok(Value::from(out))
}

/// HF's `tojson`: Python's `json.dumps(value, ensure_ascii=False, indent=indent)`, keys in
/// insertion order, nothing HTML-escaped.
fn tojson(value: Value, kwargs: Kwargs) -> std::result::Result<Value, minijinja::Error> {
    use serde::Serialize as _;
    let indent: Option<usize> = kwargs.get("indent")?;
    let ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    kwargs.assert_all_used()?;
    if ensure_ascii == Some(true) {
        return Err(minijinja::Error::new(
            ErrorKind::InvalidOperation,
            "tojson: ensure_ascii=True is not supported",
        ));
    }
    let mut out = Vec::new();
    let result = match indent {
        Some(n) => {
            let spaces = vec![b' '; n];
            let formatter = serde_json::ser::PrettyFormatter::with_indent(&spaces);
            value.serialize(&mut serde_json::Serializer::with_formatter(
                &mut out, formatter,
            ))
        }
        None => value.serialize(&mut serde_json::Serializer::with_formatter(
            &mut out,
            PythonCompact,
        )),
    };
    result.map_err(|e| {
        minijinja::Error::new(ErrorKind::InvalidOperation, "tojson: cannot serialise")
            .with_source(e)
    })?;
    Ok(Value::from_safe_string(
        String::from_utf8(out).expect("serde_json writes UTF-8"),
    ))
}

/// `json.dumps`'s default separators: `", "` between items, `": "` after keys.
struct PythonCompact;

impl serde_json::ser::Formatter for PythonCompact {
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
    ) -> std::io::Result<()> {
        writer.write_all(b": ")
    }
}

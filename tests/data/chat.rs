//! Chat templates rendered as transformers' `apply_chat_template` renders them (expected
//! strings, ids and assistant masks generated with transformers by
//! tests/fixtures/make_hf_fixtures.py), and conversations trained on assistant turns only.

use std::path::PathBuf;

use burn_peft::data::chat::prompt_ids;
use burn_peft::data::*;
use burn_peft::model::chat_template::ChatMessage;
use burn_peft::model::tokenizer::TextTokenizer;
use serde::Deserialize;

use super::{assert_error_names, limits, repo};

#[derive(Deserialize)]
struct Expected {
    cases: Vec<Case>,
    llama2_error: ErrorCase,
}

#[derive(Deserialize)]
struct Case {
    template: String,
    messages: Vec<ChatMessage>,
    add_generation_prompt: bool,
    text: String,
    #[serde(default)]
    input_ids: Option<Vec<u32>>,
    #[serde(default)]
    assistant_masks: Option<Vec<u8>>,
}

#[derive(Deserialize)]
struct ErrorCase {
    messages: Vec<ChatMessage>,
    message: String,
}

fn fixture_dir() -> PathBuf {
    repo("tests/fixtures/chat-stories260K")
}

fn expected() -> Expected {
    let text = std::fs::read_to_string(fixture_dir().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn chat_tokenizer() -> TextTokenizer {
    TextTokenizer::load(&fixture_dir()).unwrap()
}

#[test]
fn chat_templates_render_as_transformers() {
    let tokenizer = chat_tokenizer();
    assert!(tokenizer.has_chat_template());
    let expected = expected();
    assert_eq!(expected.cases.len(), 48);
    for case in &expected.cases {
        let template = tokenizer.chat_template(Some(&case.template)).unwrap();
        let text = template
            .render(&case.messages, case.add_generation_prompt)
            .unwrap();
        assert_eq!(
            text, case.text,
            "template {}, generation prompt {}",
            case.template, case.add_generation_prompt
        );
        if let Some(ids) = &case.input_ids {
            assert_eq!(&tokenizer.encode(&text, false).unwrap(), ids);
        }
    }
    // The list's `default` entry is the template when none is named.
    let default = tokenizer.chat_template(None).unwrap();
    assert_eq!(default.name(), Some("default"));
    let case = &expected.cases[3];
    assert_eq!(case.template, "default");
    assert_eq!(
        default
            .render(&case.messages, case.add_generation_prompt)
            .unwrap(),
        case.text
    );
    let err = tokenizer.chat_template(Some("tool_use")).unwrap_err();
    assert!(
        err.to_string().contains("default, llama2, summary"),
        "{err}"
    );
}

#[test]
fn chat_template_jinja_file_and_missing_templates() {
    let dir = std::env::temp_dir().join(format!("burn-peft-chat-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        fixture_dir().join("tokenizer.json"),
        dir.join("tokenizer.json"),
    )
    .unwrap();
    std::fs::copy(
        repo("models/stories260K/hf/tokenizer_config.json"),
        dir.join("tokenizer_config.json"),
    )
    .unwrap();
    // No template anywhere: the error says where one was looked for.
    let plain = TextTokenizer::load(&dir).unwrap();
    assert!(!plain.has_chat_template());
    let err = plain.chat_template(None).unwrap_err();
    assert_error_names(err, &dir.join("tokenizer_config.json"), "no chat template");

    // chat_template.jinja, as transformers saves templates now.
    let expected = expected();
    let chatml: &str = r#"{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"#;
    std::fs::write(dir.join("chat_template.jinja"), chatml).unwrap();
    let tokenizer = TextTokenizer::load(&dir).unwrap();
    let template = tokenizer.chat_template(None).unwrap();
    for case in expected.cases.iter().filter(|c| c.template == "default") {
        assert_eq!(
            template
                .render(&case.messages, case.add_generation_prompt)
                .unwrap(),
            case.text
        );
    }

    // A syntax error names the file.
    std::fs::write(dir.join("chat_template.jinja"), "{% for m in messages %}").unwrap();
    let err = TextTokenizer::load(&dir)
        .unwrap()
        .chat_template(None)
        .unwrap_err();
    assert_error_names(err, &dir.join("chat_template.jinja"), "chat template");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn raise_exception_reports_the_templates_message() {
    let expected = expected();
    let template = chat_tokenizer().chat_template(Some("llama2")).unwrap();
    let err = template
        .render(&expected.llama2_error.messages, false)
        .unwrap_err();
    let message = assert_error_names(
        err,
        &fixture_dir().join("tokenizer_config.json"),
        &expected.llama2_error.message,
    );
    assert!(message.contains("`llama2`"), "{message}");
}

#[test]
fn training_masks_everything_but_assistant_turns() {
    let tokenizer = chat_tokenizer();
    let encoder = InstructionTokenizer::new(&tokenizer, limits(512, 512)).unwrap();
    let mut checked = 0;
    for case in expected().cases {
        let Some(mask) = case.assistant_masks else {
            continue;
        };
        let ids = case.input_ids.unwrap();
        let example = encoder.tokenize_chat(&case.messages).unwrap().unwrap();
        assert_eq!(example.input_ids, ids);
        // transformers' return_assistant_tokens_mask on the same template with
        // {% generation %} around each assistant turn.
        let expected_labels: Vec<i64> = ids
            .iter()
            .zip(&mask)
            .map(|(&id, &m)| if m == 1 { i64::from(id) } else { -100 })
            .collect();
        assert_eq!(example.labels, expected_labels, "{:?}", case.messages);
        assert!(example.target_count() > 0);
        checked += 1;
    }
    assert_eq!(checked, 8);

    // The assistant text (and its end marker) is what the targets decode to.
    let messages = vec![
        ChatMessage::new("user", "Say hello."),
        ChatMessage::new("assistant", "Hello!"),
    ];
    let example = encoder.tokenize_chat(&messages).unwrap().unwrap();
    let targets: Vec<u32> = example
        .input_ids
        .iter()
        .zip(&example.labels)
        .filter(|(_, l)| **l != -100)
        .map(|(&id, _)| id)
        .collect();
    assert_eq!(tokenizer.decode(&targets).unwrap(), "Hello!<|im_end|>\n");

    // Cut to max_prompt_length + max_response_length; nothing left to learn: no example.
    let short = InstructionTokenizer::new(&tokenizer, limits(4, 4)).unwrap();
    assert!(short.tokenize_chat(&messages).unwrap().is_none());
    let rows = vec![TrainingRow::Chat(messages.clone()); 2];
    assert!(short.tokenize_rows(&rows).unwrap().is_empty());

    // A template that renders earlier turns differently cannot locate them.
    let summary = tokenizer.chat_template(Some("summary")).unwrap();
    let err = summary.assistant_spans(&messages).unwrap_err();
    assert!(err.to_string().contains("cannot be located"), "{err}");
}

#[test]
fn chat_prompts_encode_as_apply_chat_template() {
    // generate --chat and eval --chat: one user turn with the generation prompt.
    let tokenizer = chat_tokenizer();
    let case = expected()
        .cases
        .into_iter()
        .find(|c| c.template == "default" && c.add_generation_prompt && c.messages.len() == 1)
        .unwrap();
    let ids = prompt_ids(&tokenizer, &case.messages[0].content, true).unwrap();
    assert_eq!(ids, case.input_ids.unwrap());
    // Without chat: METHODS.md's template after BOS.
    let plain = prompt_ids(&tokenizer, "2+3?", false).unwrap();
    assert_eq!(
        plain,
        tokenizer
            .encode(&prompt::math_train_prompt("2+3?"), true)
            .unwrap()
    );
}

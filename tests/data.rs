//! Data layer: instruction files (GSM8K, Alpaca), tokenisation with prompt masking and separate
//! truncation, batching, seeded order and splits, GLUE TSVs, plain text, and errors that name
//! the file and line.

use std::path::{Path, PathBuf};

use burn::data::dataloader::batcher::Batcher;
use burn::tensor::{Int, Tensor};
use burn_peft::data::prompt::math_train_prompt;
use burn_peft::data::*;
use burn_peft::model::tokenizer::TextTokenizer;
use tokenizers::processors::template::TemplateProcessing;

type B = burn_peft::backend::Cpu;

const BOS: u32 = 1;
const EOS: u32 = 2;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn stories_tokenizer() -> TextTokenizer {
    TextTokenizer::load(&repo("models/stories260K/hf")).unwrap()
}

fn limits(max_prompt_length: usize, max_response_length: usize) -> TruncationLimits {
    TruncationLimits {
        max_prompt_length,
        max_response_length,
    }
}

/// A file under the system temp folder, unique to this process and `name`.
fn temp_file(name: &str, contents: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("burn-peft-data-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

fn ints<const D: usize>(t: Tensor<B, D, Int>) -> Vec<i64> {
    t.into_data().convert::<i64>().to_vec().unwrap()
}

/// The message of an error, which must name `path` and `place` (e.g. "line 3").
fn assert_error_names(err: burn_peft::Error, path: &Path, place: &str) -> String {
    let message = err.to_string();
    assert!(
        message.contains(&path.display().to_string()),
        "{message:?} does not name {}",
        path.display()
    );
    assert!(message.contains(place), "{message:?} does not name {place}");
    message
}

// ---------------------------------------------------------------- instruction files

fn gsm8k_train() -> Vec<InstructionRow> {
    load_instructions(&repo("datasets/gsm8k/train.jsonl"), InstructionFormat::Auto).unwrap()
}

#[test]
fn gsm8k_loads_every_row_with_the_training_template() {
    let rows = gsm8k_train();
    assert_eq!(rows.len(), 7473);
    let test = load_instructions(
        &repo("datasets/gsm8k/test.jsonl"),
        InstructionFormat::QuestionAnswer,
    )
    .unwrap();
    assert_eq!(test.len(), 1319);

    let first: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(repo("datasets/gsm8k/train.jsonl"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let question = first["question"].as_str().unwrap();
    assert_eq!(
        rows[0].prompt,
        format!(
            "Below is an instruction that describes a task. Write a response that appropriately \
             completes the request.\n\n### Instruction:\n{question}\n\n### Response:"
        )
    );
    assert_eq!(rows[0].response, first["answer"].as_str().unwrap());
    assert!(rows[0].response.ends_with("#### 72"));
}

#[test]
fn alpaca_loads_with_and_without_input() {
    let rows = load_instructions(
        &repo("datasets/alpaca/alpaca_small.json"),
        InstructionFormat::Auto,
    )
    .unwrap();
    assert_eq!(rows.len(), 2000);
    assert_eq!(
        rows[0].prompt,
        "Below is an instruction that describes a task, paired with an input that provides \
         further context. Write a response that appropriately completes the request.\n\n\
         ### Instruction:\nCheck if the following Facebook post is appropriate\n\n\
         ### Input:\nI think my boss is the meanest person ever.\n\n### Response:"
    );
    assert_eq!(rows[0].response, "no");
    assert_eq!(
        rows[1].prompt,
        "Below is an instruction that describes a task. Write a response that appropriately \
         completes the request.\n\n### Instruction:\nConstruct a riddle about the outdoors.\n\n\
         ### Response:"
    );
    assert_eq!(
        rows[1].response,
        "What lies under the shade of a big tree, yet is seen in the sky?\nAnswer: A kite."
    );
}

#[test]
fn query_response_jsonl_and_explicit_formats() {
    let path = temp_file(
        "metamath.jsonl",
        "{\"query\": \"What is 2+3?\", \"response\": \"2+3=5. The answer is: 5\", \"type\": \"x\"}\n\
         \n\
         {\"query\": \"And 1+1?\", \"response\": \"The answer is: 2\"}\n",
    );
    let rows = load_instructions(&path, InstructionFormat::Auto).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].prompt, math_train_prompt("What is 2+3?"));
    assert_eq!(rows[1].response, "The answer is: 2");
    assert_eq!(
        load_instructions(&path, InstructionFormat::QueryResponse).unwrap(),
        rows
    );
    // The wrong explicit format reports the field it looked for.
    let err = load_instructions(&path, InstructionFormat::Alpaca).unwrap_err();
    let message = assert_error_names(err, &path, "line 1");
    assert!(message.contains("`instruction`"), "{message}");

    assert_eq!(
        "query_response".parse::<InstructionFormat>().unwrap(),
        InstructionFormat::QueryResponse
    );
    assert!("metamath".parse::<InstructionFormat>().is_err());
}

#[test]
fn bad_instruction_rows_name_file_line_and_field() {
    let path = temp_file(
        "missing.jsonl",
        "{\"question\": \"q1\", \"answer\": \"a1\"}\n\
         {\"question\": \"q2\", \"answer\": \"a2\"}\n\
         {\"question\": \"q3\"}\n",
    );
    let err = load_instructions(&path, InstructionFormat::Auto).unwrap_err();
    let message = assert_error_names(err, &path, "line 3");
    assert!(message.contains("missing field `answer`"), "{message}");

    let path = temp_file(
        "number.jsonl",
        "{\"question\": \"q1\", \"answer\": \"a1\"}\n{\"question\": 7, \"answer\": \"a2\"}\n",
    );
    let err = load_instructions(&path, InstructionFormat::QuestionAnswer).unwrap_err();
    let message = assert_error_names(err, &path, "line 2");
    assert!(message.contains("`question` must be a string"), "{message}");

    let path = temp_file(
        "broken.jsonl",
        "{\"question\": \"q1\", \"answer\": \"a1\"}\n{oops\n",
    );
    let err = load_instructions(&path, InstructionFormat::Auto).unwrap_err();
    assert_error_names(err, &path, "line 2");

    let path = temp_file(
        "array.json",
        "[{\"instruction\": \"i\", \"output\": \"o\"}, {\"instruction\": \"i\"}]",
    );
    let err = load_instructions(&path, InstructionFormat::Auto).unwrap_err();
    let message = assert_error_names(err, &path, "element 1");
    assert!(message.contains("`output`"), "{message}");

    let path = temp_file("unknown.jsonl", "{\"text\": \"hello\"}\n");
    let err = load_instructions(&path, InstructionFormat::Auto).unwrap_err();
    assert_error_names(err, &path, "line 1");

    let path = temp_file("empty.jsonl", "\n\n");
    let err = load_instructions(&path, InstructionFormat::Auto).unwrap_err();
    assert_error_names(err, &path, "no rows");

    let missing = repo("datasets/nope.jsonl");
    let err = load_instructions(&missing, InstructionFormat::Auto).unwrap_err();
    assert_error_names(err, &missing, "");
}

// ---------------------------------------------------------------- tokenisation

#[test]
fn gsm8k_row_is_masked_over_the_prompt_and_ends_in_eos() {
    let tokenizer = stories_tokenizer();
    let rows = gsm8k_train();
    let row = &rows[0];
    let encoder = InstructionTokenizer::new(&tokenizer, limits(512, 512)).unwrap();
    let example = encoder.tokenize(row).unwrap();

    let prompt_ids = tokenizer.encode(&row.prompt, true).unwrap();
    let response_ids = tokenizer.encode(&row.response, false).unwrap();
    let p = prompt_ids.len();
    assert_eq!(example.input_ids[0], BOS);
    assert_eq!(&example.input_ids[..p], &prompt_ids[..]);
    assert_eq!(
        &example.input_ids[p..example.input_ids.len() - 1],
        &response_ids[..]
    );
    assert_eq!(*example.input_ids.last().unwrap(), EOS);
    assert_eq!(example.labels.len(), example.input_ids.len());
    assert!(example.labels[..p].iter().all(|&l| l == -100));
    let response_labels: Vec<i64> = example.input_ids[p..]
        .iter()
        .map(|&i| i64::from(i))
        .collect();
    assert_eq!(&example.labels[p..], &response_labels[..]);
    assert_eq!(example.target_count(), response_ids.len() + 1);

    // The response part decodes back to the answer (EOS is a special token, skipped).
    assert_eq!(
        tokenizer.decode(&example.input_ids[p..]).unwrap(),
        row.response
    );
    assert_eq!(
        tokenizer.decode(&example.input_ids[..p]).unwrap(),
        row.prompt
    );
}

#[test]
fn prompt_and_response_are_truncated_separately() {
    let tokenizer = stories_tokenizer();
    let rows = gsm8k_train();
    let row = &rows[1];
    let full_prompt = tokenizer.encode(&row.prompt, true).unwrap();
    let full_response = tokenizer.encode(&row.response, false).unwrap();
    assert!(full_prompt.len() > 16 && full_response.len() > 8);

    let example = InstructionTokenizer::new(&tokenizer, limits(16, 8))
        .unwrap()
        .tokenize(row)
        .unwrap();
    assert_eq!(example.input_ids.len(), 24);
    // BOS survives; the prompt loses its end, the response its end and its EOS.
    assert_eq!(&example.input_ids[..16], &full_prompt[..16]);
    assert_eq!(example.input_ids[0], BOS);
    assert_eq!(&example.input_ids[16..], &full_response[..8]);
    assert!(!example.input_ids[16..].contains(&EOS));
    assert!(example.labels[..16].iter().all(|&l| l == -100));
    assert!(example.labels[16..].iter().all(|&l| l >= 0));

    // A response that fits keeps its EOS even when the prompt is cut.
    let short = InstructionRow {
        prompt: row.prompt.clone(),
        response: "5".into(),
    };
    let n = tokenizer.encode("5", false).unwrap().len();
    let example = InstructionTokenizer::new(&tokenizer, limits(4, 64))
        .unwrap()
        .tokenize(&short)
        .unwrap();
    assert_eq!(example.input_ids.len(), 4 + n + 1);
    assert_eq!(*example.input_ids.last().unwrap(), EOS);

    // Every row of GSM8K respects both limits.
    let encoder = InstructionTokenizer::new(&tokenizer, limits(32, 48)).unwrap();
    for example in encoder.tokenize_all(&rows[..200]).unwrap() {
        let prompt = example.labels.iter().filter(|&&l| l == -100).count();
        assert!(prompt <= 32 && example.input_ids.len() - prompt <= 48);
    }

    for bad in [limits(0, 8), limits(8, 0)] {
        assert!(InstructionTokenizer::new(&tokenizer, bad).is_err());
    }
}

// ---------------------------------------------------------------- batching

fn example(ids: &[u32], prompt: usize) -> TokenizedExample {
    let labels = ids
        .iter()
        .enumerate()
        .map(|(i, &id)| if i < prompt { -100 } else { i64::from(id) })
        .collect();
    TokenizedExample {
        input_ids: ids.to_vec(),
        labels,
    }
}

#[test]
fn lm_batches_pad_right_with_mask_and_ignored_labels() {
    let items = vec![
        example(&[1, 10, 11, 12, 2], 2),
        example(&[1, 20, 2], 1),
        example(&[1, 30, 31, 32, 33, 34, 2], 3),
    ];
    let batch: LmBatch<B> = LmBatcher { pad_token_id: 0 }.batch(items, &Default::default());
    assert_eq!(batch.input_ids.dims(), [3, 7]);
    assert_eq!(batch.attention_mask.dims(), [3, 7]);
    assert_eq!(batch.labels.dims(), [3, 7]);
    assert_eq!(batch.num_targets, 3 + 2 + 4);
    #[rustfmt::skip]
    assert_eq!(ints(batch.input_ids), vec![
        1, 10, 11, 12, 2, 0, 0,
        1, 20, 2, 0, 0, 0, 0,
        1, 30, 31, 32, 33, 34, 2,
    ]);
    #[rustfmt::skip]
    assert_eq!(ints(batch.attention_mask), vec![
        1, 1, 1, 1, 1, 0, 0,
        1, 1, 1, 0, 0, 0, 0,
        1, 1, 1, 1, 1, 1, 1,
    ]);
    #[rustfmt::skip]
    assert_eq!(ints(batch.labels), vec![
        -100, -100, 11, 12, 2, -100, -100,
        -100, 20, 2, -100, -100, -100, -100,
        -100, -100, -100, 32, 33, 34, 2,
    ]);

    // An empty batch is empty tensors, not a panic.
    let empty: LmBatch<B> = LmBatcher { pad_token_id: 0 }.batch(Vec::new(), &Default::default());
    assert_eq!(empty.input_ids.dims(), [0, 0]);
    assert_eq!(empty.num_targets, 0);

    // Real tokenized rows batch to the longest row, with a configurable pad id.
    let tokenizer = stories_tokenizer();
    let encoder = InstructionTokenizer::new(&tokenizer, limits(64, 64)).unwrap();
    let examples = encoder.tokenize_all(&gsm8k_train()[..4]).unwrap();
    let longest = examples.iter().map(|e| e.input_ids.len()).max().unwrap();
    let lengths: Vec<usize> = examples.iter().map(|e| e.input_ids.len()).collect();
    let batch: LmBatch<B> = LmBatcher { pad_token_id: 7 }.batch(examples, &Default::default());
    assert_eq!(batch.input_ids.dims(), [4, longest]);
    let ids = ints(batch.input_ids);
    let mask = ints(batch.attention_mask);
    for (row, &len) in lengths.iter().enumerate() {
        let cells = row * longest..(row + 1) * longest;
        let mask_row = &mask[cells.clone()];
        assert_eq!(mask_row.iter().sum::<i64>() as usize, len);
        assert!(ids[cells][len..].iter().all(|&id| id == 7));
    }
}

#[test]
fn classification_batches_carry_classes_or_scores() {
    let item = |ids: &[u32], types: &[u32], label| ClassificationExample {
        input_ids: ids.to_vec(),
        token_type_ids: types.to_vec(),
        label,
    };
    let batcher = ClassificationBatcher { pad_token_id: 1 };
    let batch: ClassificationBatch<B> = batcher.batch(
        vec![
            item(&[0, 5, 2, 6, 2], &[0, 0, 0, 1, 1], GlueLabel::Class(1)),
            item(&[0, 7, 2], &[0, 0, 0], GlueLabel::Class(0)),
        ],
        &Default::default(),
    );
    assert_eq!(ints(batch.input_ids), vec![0, 5, 2, 6, 2, 0, 7, 2, 1, 1]);
    assert_eq!(
        ints(batch.attention_mask),
        vec![1, 1, 1, 1, 1, 1, 1, 1, 0, 0]
    );
    assert_eq!(
        ints(batch.token_type_ids),
        vec![0, 0, 0, 1, 1, 0, 0, 0, 0, 0]
    );
    match batch.targets {
        ClassificationTargets::Classes(t) => assert_eq!(ints(t), vec![1, 0]),
        ClassificationTargets::Scores(_) => panic!("class labels batched as scores"),
    }

    let batch: ClassificationBatch<B> = batcher.batch(
        vec![
            item(&[0, 5, 2], &[0, 0, 0], GlueLabel::Score(3.8)),
            item(&[0, 2], &[0, 0], GlueLabel::Score(0.5)),
        ],
        &Default::default(),
    );
    assert_eq!(batch.input_ids.dims(), [2, 3]);
    match batch.targets {
        ClassificationTargets::Scores(t) => {
            assert_eq!(t.into_data().to_vec::<f32>().unwrap(), vec![3.8, 0.5])
        }
        ClassificationTargets::Classes(_) => panic!("scores batched as classes"),
    }
}

// ---------------------------------------------------------------- order and splits

#[test]
fn shuffling_is_deterministic_per_seed() {
    let a = permutation(1000, 42);
    assert_eq!(a, permutation(1000, 42));
    assert_ne!(a, permutation(1000, 43));
    let mut sorted = a.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
    assert_ne!(a, sorted, "seed 42 left the data in order");
    assert!(permutation(0, 1).is_empty());
    assert_eq!(permutation(1, 1), vec![0]);

    let items: Vec<String> = (0..50).map(|i| format!("row {i}")).collect();
    let shuffled = shuffle(items.clone(), 7);
    let order = permutation(50, 7);
    assert_eq!(
        shuffled,
        order.iter().map(|&i| items[i].clone()).collect::<Vec<_>>()
    );
    assert_ne!(shuffled, shuffle(items.clone(), 8));

    let dataset = SeededShuffle::new(InMemDataset::new(items.clone()), 7);
    assert_eq!(dataset.len(), 50);
    assert_eq!(dataset.iter().collect::<Vec<_>>(), shuffled);
    assert_eq!(dataset.get(50), None);
}

#[test]
fn held_out_split_is_deterministic_and_disjoint() {
    let items: Vec<usize> = (0..100).collect();
    let (train, held) = split_held_out(items.clone(), HeldOut::Count(10), 3).unwrap();
    assert_eq!((train.len(), held.len()), (90, 10));
    assert!(
        train.windows(2).all(|w| w[0] < w[1]),
        "train keeps file order"
    );
    assert!(
        held.windows(2).all(|w| w[0] < w[1]),
        "held-out keeps file order"
    );
    let mut all: Vec<usize> = train.iter().chain(&held).copied().collect();
    all.sort_unstable();
    assert_eq!(all, items);
    let mut expected: Vec<usize> = permutation(100, 3).into_iter().take(10).collect();
    expected.sort_unstable();
    assert_eq!(held, expected);

    assert_eq!(
        split_held_out(items.clone(), HeldOut::Count(10), 3).unwrap(),
        (train, held.clone())
    );
    let (_, other) = split_held_out(items.clone(), HeldOut::Count(10), 4).unwrap();
    assert_ne!(held, other);

    // A fraction rounds up, as `datasets`' train_test_split.
    let (train, held) = split_held_out(items.clone(), HeldOut::Fraction(0.055), 3).unwrap();
    assert_eq!((train.len(), held.len()), (94, 6));
    let (train, held) = split_held_out(items.clone(), HeldOut::Fraction(0.0), 3).unwrap();
    assert_eq!((train.len(), held.len()), (100, 0));

    for bad in [
        HeldOut::Count(100),
        HeldOut::Fraction(1.0),
        HeldOut::Fraction(-0.1),
        HeldOut::Fraction(f64::NAN),
    ] {
        assert!(split_held_out(items.clone(), bad, 3).is_err(), "{bad:?}");
    }
}

// ---------------------------------------------------------------- GLUE

#[test]
fn every_shipped_glue_file_loads_with_its_row_count_and_labels() {
    // Data rows = `wc -l` minus the header (CoLA has none; its dev.tsv lacks a final newline,
    // so `wc -l` says 1042 for 1043 rows). Class counts are [label 0, label 1].
    let cases: [(GlueTask, &str, usize, [usize; 2]); 12] = [
        (GlueTask::Cola, "train", 8551, [2528, 6023]),
        (GlueTask::Cola, "dev", 1043, [322, 721]),
        (GlueTask::Sst2, "train", 67349, [29780, 37569]),
        (GlueTask::Sst2, "dev", 872, [428, 444]),
        (GlueTask::Mrpc, "train", 3668, [1194, 2474]),
        (GlueTask::Mrpc, "dev", 408, [129, 279]),
        (GlueTask::Rte, "train", 2490, [1249, 1241]),
        (GlueTask::Rte, "dev", 277, [146, 131]),
        (GlueTask::Qnli, "dev", 5463, [2702, 2761]),
        (GlueTask::Wnli, "train", 635, [323, 312]),
        (GlueTask::Wnli, "dev", 71, [40, 31]),
        (GlueTask::Stsb, "train", 5749, [0, 0]),
    ];
    let glue = repo("datasets/glue");
    for (task, split, rows, classes) in cases {
        let path = task.split_path(&glue, split);
        let examples = load_glue(task, &path).unwrap();
        assert_eq!(examples.len(), rows, "{}", path.display());
        assert_eq!(examples.iter().all(|e| e.text_b.is_some()), task.is_pair());
        if task.is_regression() {
            continue;
        }
        let mut counts = [0; 2];
        for e in &examples {
            match e.label {
                GlueLabel::Class(c) => counts[c] += 1,
                GlueLabel::Score(_) => panic!("{task}: score label"),
            }
        }
        assert_eq!(counts, classes, "{}", path.display());
    }

    let stsb = load_glue(GlueTask::Stsb, &glue.join("STS-B/dev.tsv")).unwrap();
    assert_eq!(stsb.len(), 1500);
    let scores: Vec<f32> = stsb
        .iter()
        .map(|e| match e.label {
            GlueLabel::Score(s) => s,
            GlueLabel::Class(_) => panic!("STS-B class label"),
        })
        .collect();
    assert!(scores.iter().all(|s| (0.0..=5.0).contains(s)));
    assert_eq!(stsb[0].text_a, "A man with a hard hat is dancing.");
    assert_eq!(
        stsb[0].text_b.as_deref(),
        Some("A man wearing a hard hat is dancing.")
    );
    assert_eq!(stsb[0].label, GlueLabel::Score(5.0));

    // Fields land in the right columns (MRPC dev.tsv starts with a byte-order mark; RTE labels
    // are words).
    let mrpc = load_glue(GlueTask::Mrpc, &glue.join("MRPC/dev.tsv")).unwrap();
    assert_eq!(mrpc[0].label, GlueLabel::Class(1));
    assert!(
        mrpc[0]
            .text_a
            .starts_with("He said the foodservice pie business")
    );
    let rte = load_glue(GlueTask::Rte, &glue.join("RTE/dev.tsv")).unwrap();
    assert_eq!(
        rte[0].label,
        GlueLabel::Class(1),
        "not_entailment is class 1"
    );
    assert_eq!(
        rte[0].text_b.as_deref(),
        Some("Christopher Reeve had an accident.")
    );
    let cola = load_glue(GlueTask::Cola, &glue.join("CoLA/dev.tsv")).unwrap();
    assert_eq!(
        cola[0].text_a,
        "The sailors rode the breeze clear of the rocks."
    );
    assert_eq!(cola[0].text_b, None);

    assert_eq!(GlueTask::ALL.map(|t| t.num_labels()), [2, 2, 2, 2, 2, 2, 1]);
    for (name, task) in [
        ("cola", GlueTask::Cola),
        ("SST-2", GlueTask::Sst2),
        ("sst2", GlueTask::Sst2),
        ("sts-b", GlueTask::Stsb),
        ("QNLI", GlueTask::Qnli),
    ] {
        assert_eq!(name.parse::<GlueTask>().unwrap(), task);
    }
    assert!("mnli".parse::<GlueTask>().is_err());
}

#[test]
fn bad_glue_rows_name_file_and_line() {
    let path = temp_file(
        "stsb.tsv",
        "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n\
         0\tg\tf\t2012\t0\tn\tn\tA man.\tA man!\t5.000\n\
         1\tg\tf\t2012\t1\tn\tn\tA dog.\tA cat.\tabout three\n",
    );
    let err = load_glue(GlueTask::Stsb, &path).unwrap_err();
    let message = assert_error_names(err, &path, "line 3");
    assert!(message.contains("about three"), "{message}");

    let path = temp_file(
        "cola.tsv",
        "gj04\t1\t\tGood sentence.\ngj04\t0\t*\ngj04\t1\t\tAnother.\n",
    );
    let err = load_glue(GlueTask::Cola, &path).unwrap_err();
    let message = assert_error_names(err, &path, "line 2");
    assert!(
        message.contains("expected 4 tab-separated columns"),
        "{message}"
    );
    assert!(message.contains("found 3"), "{message}");

    let path = temp_file(
        "rte.tsv",
        "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\ta\tb\tcontradiction\n",
    );
    let err = load_glue(GlueTask::Rte, &path).unwrap_err();
    assert_error_names(err, &path, "line 3");

    let path = temp_file("sst2.tsv", "sentence\tlabel\ngood\t1\nbad\t2\n");
    let err = load_glue(GlueTask::Sst2, &path).unwrap_err();
    assert_error_names(err, &path, "line 3");
}

// ---------------------------------------------------------------- classification tokenisation

/// The stories260K tokenizer with a RoBERTa-style template (`<s> A </s> </s> B </s>`) or a
/// BERT-style one (second segment typed 1), to test pair encoding without shipping another
/// tokenizer.
fn pair_tokenizer(bert_segments: bool) -> tokenizers::Tokenizer {
    let mut tokenizer =
        tokenizers::Tokenizer::from_file(repo("models/stories260K/hf/tokenizer.json")).unwrap();
    let pair = if bert_segments {
        "<s> $A </s> $B:1 </s>:1"
    } else {
        "<s> $A </s> </s> $B </s>"
    };
    let template = TemplateProcessing::builder()
        .try_single("<s> $A </s>")
        .unwrap()
        .try_pair(pair)
        .unwrap()
        .special_tokens(vec![("<s>", BOS), ("</s>", EOS)])
        .build()
        .unwrap();
    tokenizer.with_post_processor(Some(template));
    tokenizer
}

#[test]
fn pairs_use_the_template_and_truncate_longest_first() {
    let tokenizer = pair_tokenizer(false);
    let glue = repo("datasets/glue");
    let rte = load_glue(GlueTask::Rte, &glue.join("RTE/dev.tsv")).unwrap();
    let e = &rte[0];
    let b = e.text_b.as_deref().unwrap();
    let plain = |text: &str| tokenizer.encode(text, false).unwrap().get_ids().to_vec();
    let (a_ids, b_ids) = (plain(&e.text_a), plain(b));

    let encoder = PairEncoder::new(&tokenizer, 512).unwrap();
    let tokenized = encoder.tokenize(e).unwrap();
    let expected: Vec<u32> = [
        vec![BOS],
        a_ids.clone(),
        vec![EOS, EOS],
        b_ids.clone(),
        vec![EOS],
    ]
    .concat();
    assert_eq!(tokenized.input_ids, expected);
    assert_eq!(tokenized.label, GlueLabel::Class(1));

    // Longest first: the longer sentence is cut, the shorter one kept whole.
    let long = GlueExample {
        text_a: "Once upon a time, there was a little girl named Lily. She loved to play \
                 outside in the park with her big red ball."
            .into(),
        text_b: Some("Lily had a ball.".into()),
        label: GlueLabel::Class(0),
    };
    let (a_ids, b_ids) = (plain(&long.text_a), plain("Lily had a ball."));
    assert!(
        a_ids.len() > 2 * b_ids.len() + 8,
        "{} vs {}",
        a_ids.len(),
        b_ids.len()
    );
    let budget = 2 * b_ids.len() + 8;
    let short = PairEncoder::new(&tokenizer, budget)
        .unwrap()
        .tokenize(&long)
        .unwrap();
    assert_eq!(short.input_ids.len(), budget);
    let kept = budget - 4 - b_ids.len();
    let expected: Vec<u32> = [
        vec![BOS],
        a_ids[..kept].to_vec(),
        vec![EOS, EOS],
        b_ids,
        vec![EOS],
    ]
    .concat();
    assert_eq!(short.input_ids, expected);

    // Single sentences use the single template.
    let sst = load_glue(GlueTask::Sst2, &glue.join("SST-2/dev.tsv")).unwrap();
    let one = encoder.tokenize(&sst[0]).unwrap();
    assert_eq!(
        one.input_ids,
        [vec![BOS], plain(&sst[0].text_a), vec![EOS]].concat()
    );
    assert!(one.token_type_ids.iter().all(|&t| t == 0));

    // BERT-style segment ids mark the second sentence.
    let bert = PairEncoder::new(&pair_tokenizer(true), 64).unwrap();
    let typed = bert.tokenize(e).unwrap();
    assert_eq!(typed.input_ids.len(), 64);
    assert_eq!(typed.token_type_ids.len(), 64);
    assert_eq!(*typed.token_type_ids.first().unwrap(), 0);
    assert_eq!(*typed.token_type_ids.last().unwrap(), 1);

    // Too small a budget for the special tokens is an error, not a panic inside the tokenizer.
    assert!(PairEncoder::new(&tokenizer, 4).is_err());
}

#[test]
fn pairs_are_joined_as_text_without_a_pair_template() {
    let mut tokenizer =
        tokenizers::Tokenizer::from_file(repo("models/stories260K/hf/tokenizer.json")).unwrap();
    tokenizer.with_post_processor(None::<TemplateProcessing>);
    let encoder = PairEncoder::new(&tokenizer, 32).unwrap();
    let (ids, _) = encoder.encode("The cat sat.", Some("A cat sat.")).unwrap();
    let joined = tokenizer
        .encode(format!("The cat sat.{PAIR_SEPARATOR}A cat sat."), true)
        .unwrap();
    assert_eq!(ids, joined.get_ids());
    let (long, _) = encoder.encode(&"word ".repeat(100), Some("tail")).unwrap();
    assert_eq!(long.len(), 32);
}

// ---------------------------------------------------------------- plain text

#[test]
fn text_documents_are_packed_into_windows() {
    let path = temp_file(
        "stories.txt",
        "Once upon a time, there was a cat.\nThe cat was happy.\n\n\n\
         Lily saw a big, red ball.\r\n\r\nThe end.\n",
    );
    let documents = load_documents(&path).unwrap();
    assert_eq!(
        documents,
        [
            "Once upon a time, there was a cat.\nThe cat was happy.",
            "Lily saw a big, red ball.",
            "The end.",
        ]
    );

    let tokenizer = stories_tokenizer();
    let windows = chunk_documents(&tokenizer, &documents, 8).unwrap();
    let stream: Vec<u32> = documents
        .iter()
        .flat_map(|d| {
            let mut ids = tokenizer.encode(d, true).unwrap();
            ids.push(EOS);
            ids
        })
        .collect();
    let packed: Vec<u32> = windows.iter().flat_map(|w| w.input_ids.clone()).collect();
    assert!(
        stream.len() % 8 != 1,
        "pick text whose last window is not a lone token"
    );
    assert_eq!(packed, stream);
    assert!(
        windows
            .iter()
            .all(|w| w.input_ids.len() <= 8 && w.input_ids.len() >= 2)
    );
    assert!(
        windows[..windows.len() - 1]
            .iter()
            .all(|w| w.input_ids.len() == 8)
    );
    for w in &windows {
        assert_eq!(w.target_count(), w.input_ids.len());
    }
    assert_eq!(windows[0].input_ids[0], BOS);

    assert!(chunk_documents(&tokenizer, &documents, 1).is_err());
    let empty = temp_file("empty.txt", "\n \n");
    let err = load_documents(&empty).unwrap_err();
    assert_error_names(err, &empty, "no text");
}

// ---------------------------------------------------------------- HF files and chat templates

#[path = "data/chat.rs"]
mod chat;
#[path = "data/hf_files.rs"]
mod hf_files;

//! GLUE: metrics against hand-computed values, the shipped dev files, label conventions and
//! malformed files.

use burn_peft::eval::glue::{GlueLabel, GlueTask, label_name, load_glue, predict, task_metrics};
use burn_peft::eval::metrics::{accuracy, average_ranks, f1_positive, matthews, pearson, spearman};

use crate::common::repo;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

// Predictions vs labels with TP = 4 (indices 0, 3, 5, 8), FP = 2 (2, 9), FN = 1 (6), TN = 3.
const PREDICTIONS: [usize; 10] = [1, 0, 1, 1, 0, 1, 0, 0, 1, 1];
const LABELS: [usize; 10] = [1, 0, 0, 1, 0, 1, 1, 0, 1, 0];

#[test]
fn classification_metrics_match_hand_computation() {
    // (TP + TN) / n = 7 / 10.
    assert!(close(accuracy(&PREDICTIONS, &LABELS), 0.7));
    // 2·TP / (2·TP + FP + FN) = 8 / 11.
    assert!(close(f1_positive(&PREDICTIONS, &LABELS), 8.0 / 11.0));
    // (TP·TN − FP·FN) / √((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = (12 − 2) / √(6·5·5·4) = 10 / √600.
    let mcc = matthews(&PREDICTIONS, &LABELS);
    assert!(close(mcc, 0.408248290463863), "{mcc}");
    // Three classes: p = [0,1,2,2,1,0,2], l = [0,1,1,2,1,2,2]: 5 correct of 7, true counts
    // (1,3,3), predicted counts (2,2,3): (5·7 − 17) / √((49 − 17)(49 − 19)) = 18 / √960.
    let mcc3 = matthews(&[0, 1, 2, 2, 1, 0, 2], &[0, 1, 1, 2, 1, 2, 2]);
    assert!(close(mcc3, 0.5809475019311126), "{mcc3}");
    // Degenerate: constant predictions give 0, as scikit-learn.
    assert_eq!(matthews(&[1, 1, 1], &[0, 1, 1]), 0.0);
    assert_eq!(f1_positive(&[0, 0], &[0, 0]), 0.0);
    // Perfect and inverted predictions.
    assert!(close(matthews(&LABELS, &LABELS), 1.0));
    let inverted: Vec<usize> = LABELS.iter().map(|l| 1 - l).collect();
    assert!(close(matthews(&inverted, &LABELS), -1.0));
}

#[test]
fn correlations_match_hand_computation() {
    let x = [1.0, 2.0, 2.0, 3.0, 5.0];
    let y = [2.0, 1.0, 4.0, 4.0, 5.0];
    // Means 2.6 and 3.2: Σdx·dy = 7.4, Σdx² = 9.2, Σdy² = 10.8; 7.4 / √(9.2 · 10.8).
    let r = pearson(&x, &y);
    assert!(close(r, 0.7423794273622434), "{r}");
    // Ties share the average rank.
    assert_eq!(average_ranks(&x), vec![1.0, 2.5, 2.5, 4.0, 5.0]);
    assert_eq!(average_ranks(&y), vec![2.0, 1.0, 3.5, 3.5, 5.0]);
    // Pearson of the ranks: Σ = 7.25, 9.5, 9.5 → 7.25 / 9.5 = 29 / 38.
    let rho = spearman(&x, &y);
    assert!(close(rho, 29.0 / 38.0), "{rho}");
    assert!(close(pearson(&x, &x), 1.0));
    assert_eq!(pearson(&x, &[1.0; 5]), 0.0);
}

#[test]
fn task_metrics_pick_the_glue_ones() {
    let classes = |v: &[usize]| v.iter().map(|&c| GlueLabel::Class(c)).collect::<Vec<_>>();
    let (p, l) = (classes(&PREDICTIONS), classes(&LABELS));
    let cola = task_metrics(GlueTask::Cola, &p, &l);
    assert!(close(cola["matthews_correlation"], 10.0 / 600f64.sqrt()));
    let mrpc = task_metrics(GlueTask::Mrpc, &p, &l);
    assert!(close(mrpc["f1"], 8.0 / 11.0) && close(mrpc["accuracy"], 0.7));
    assert_eq!(task_metrics(GlueTask::Rte, &p, &l).len(), 1);
    let scores = |v: &[f32]| v.iter().map(|&s| GlueLabel::Score(s)).collect::<Vec<_>>();
    let stsb = task_metrics(
        GlueTask::Stsb,
        &scores(&[1.0, 2.0, 2.0, 3.0, 5.0]),
        &scores(&[2.0, 1.0, 4.0, 4.0, 5.0]),
    );
    assert!(close(stsb["pearson"], 0.7423794273622434));
    assert!(close(stsb["spearman"], 29.0 / 38.0));
}

#[test]
fn shipped_dev_files_read_with_hf_labels() {
    let expected = [
        (GlueTask::Cola, 1043),
        (GlueTask::Sst2, 872),
        (GlueTask::Mrpc, 408),
        (GlueTask::Qnli, 5463),
        (GlueTask::Rte, 277),
        (GlueTask::Stsb, 1500),
        (GlueTask::Wnli, 71),
    ];
    for (task, rows) in expected {
        let path = repo(&format!("datasets/glue/{}/dev.tsv", task.dir_name()));
        let examples = load_glue(task, &path).unwrap();
        assert_eq!(examples.len(), rows, "{task:?}");
        assert_eq!(
            examples[0].text_b.is_some(),
            !matches!(task, GlueTask::Cola | GlueTask::Sst2)
        );
    }
    let rte = load_glue(GlueTask::Rte, &repo("datasets/glue/RTE/dev.tsv")).unwrap();
    // Row 0 is `not_entailment`: 1 in the HF convention (entailment = 0).
    assert_eq!(rte[0].label, GlueLabel::Class(1));
    assert!(rte[0].text_a.starts_with("Dana Reeve"));
    let mrpc = load_glue(GlueTask::Mrpc, &repo("datasets/glue/MRPC/dev.tsv")).unwrap();
    assert_eq!(mrpc[0].label, GlueLabel::Class(1));
    assert!(mrpc[0].text_a.starts_with("He said the foodservice"));
    let stsb = load_glue(GlueTask::Stsb, &repo("datasets/glue/STS-B/dev.tsv")).unwrap();
    assert_eq!(stsb[0].label, GlueLabel::Score(5.0));
    assert_eq!(stsb[1].label, GlueLabel::Score(4.75));
    let cola = load_glue(GlueTask::Cola, &repo("datasets/glue/CoLA/dev.tsv")).unwrap();
    assert_eq!(cola[0].label, GlueLabel::Class(1));
    assert_eq!(
        cola[0].text_a,
        "The sailors rode the breeze clear of the rocks."
    );
}

#[test]
fn predictions_and_label_names_follow_the_hf_convention() {
    assert_eq!(predict(GlueTask::Rte, &[0.1, 0.7]), GlueLabel::Class(1));
    // Ties go to the first class, as torch.argmax.
    assert_eq!(predict(GlueTask::Sst2, &[0.5, 0.5]), GlueLabel::Class(0));
    assert_eq!(predict(GlueTask::Stsb, &[3.25]), GlueLabel::Score(3.25));
    assert_eq!(label_name(GlueTask::Rte, GlueLabel::Class(0)), "entailment");
    assert_eq!(
        label_name(GlueTask::Wnli, GlueLabel::Class(0)),
        "not_entailment"
    );
    assert_eq!(
        label_name(GlueTask::Cola, GlueLabel::Class(1)),
        "acceptable"
    );
    assert_eq!(
        label_name(GlueTask::Mrpc, GlueLabel::Class(1)),
        "equivalent"
    );
}

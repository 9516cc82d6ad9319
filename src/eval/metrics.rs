//! The GLUE metrics: accuracy, F1 of the positive class (MRPC, QQP), Matthews correlation (CoLA),
//! Pearson and Spearman correlation (STS-B), as scikit-learn and scipy define them. Degenerate
//! inputs (no positives, a constant vector) give 0 rather than NaN, as scikit-learn does for
//! F1 and MCC.

/// Fraction of equal pairs (0 for empty input).
pub fn accuracy(predictions: &[usize], labels: &[usize]) -> f64 {
    let n = predictions.len().min(labels.len());
    if n == 0 {
        return 0.0;
    }
    let correct = predictions
        .iter()
        .zip(labels)
        .filter(|(p, l)| p == l)
        .count();
    correct as f64 / n as f64
}

/// F1 of class 1: 2·TP / (2·TP + FP + FN).
pub fn f1_positive(predictions: &[usize], labels: &[usize]) -> f64 {
    let (mut tp, mut fp, mut fn_) = (0usize, 0usize, 0usize);
    for (&p, &l) in predictions.iter().zip(labels) {
        match (p == 1, l == 1) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, true) => fn_ += 1,
            (false, false) => {}
        }
    }
    let denominator = 2 * tp + fp + fn_;
    if denominator == 0 {
        return 0.0;
    }
    2.0 * tp as f64 / denominator as f64
}

/// Matthews correlation coefficient, the multiclass form scikit-learn uses (for two classes it
/// is (TP·TN − FP·FN) / √((TP+FP)(TP+FN)(TN+FP)(TN+FN))).
pub fn matthews(predictions: &[usize], labels: &[usize]) -> f64 {
    let classes = predictions
        .iter()
        .chain(labels)
        .copied()
        .max()
        .map_or(0, |m| m + 1);
    let mut true_counts = vec![0f64; classes];
    let mut predicted_counts = vec![0f64; classes];
    let mut correct = 0f64;
    let mut samples = 0f64;
    for (&p, &l) in predictions.iter().zip(labels) {
        true_counts[l] += 1.0;
        predicted_counts[p] += 1.0;
        if p == l {
            correct += 1.0;
        }
        samples += 1.0;
    }
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let covariance = correct * samples - dot(&true_counts, &predicted_counts);
    let predicted_spread = samples * samples - dot(&predicted_counts, &predicted_counts);
    let true_spread = samples * samples - dot(&true_counts, &true_counts);
    let denominator = (predicted_spread * true_spread).sqrt();
    if denominator == 0.0 {
        return 0.0;
    }
    covariance / denominator
}

/// Pearson correlation (0 when either vector is constant).
pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len().min(y.len());
    if n == 0 {
        return 0.0;
    }
    let mean = |v: &[f64]| v[..n].iter().sum::<f64>() / n as f64;
    let (mx, my) = (mean(x), mean(y));
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x[..n].iter().zip(&y[..n]) {
        let (dx, dy) = (a - mx, b - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if sxx == 0.0 || syy == 0.0 {
        return 0.0;
    }
    sxy / (sxx * syy).sqrt()
}

/// Spearman rank correlation: Pearson of the ranks, ties sharing their average rank (scipy's
/// `spearmanr`).
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    pearson(&average_ranks(x), &average_ranks(y))
}

/// 1-based ranks; tied values get the mean of the ranks they span.
pub fn average_ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        // Positions start..end hold ranks start+1 ..= end; their mean:
        let rank = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
}

//! Analyses: SORSA's ΔΣ / ΔD on hand-built weights with known answers and on an untrained
//! adapter; `analyze` and `compare` on two short real runs, their outputs and their errors.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use burn_peft::adapter::{AdapterConfig, Method};
use burn_peft::analysis::plot::PLOT_SIZE;
use burn_peft::analysis::{AnalyzeOptions, analyze, compare, layer_shifts, spectral_shift};
use burn_peft::linalg::gaussian;
use burn_peft::linalg::orthonormalize_columns;
use burn_peft::model::any::load_model;
use burn_peft::model::inject_adapters;
use burn_peft::train::recipe::Recipe;
use burn_peft::train::{TrainOptions, train_decoder};
use faer::Mat;

type B = burn_peft::backend::Cpu;
type Train = burn_peft::backend::Train<B>;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn temp(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("burn-peft-analysis-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Orthonormal columns `[rows, cols]` from a seeded Gaussian matrix.
fn orthonormal(rows: usize, cols: usize, seed: u64) -> Mat<f32> {
    orthonormalize_columns(gaussian::standard_normal(&mut gaussian::rng(seed), rows, cols).as_ref())
}

/// `U diag(s) Vᵀ`.
fn compose(u: &Mat<f32>, s: &[f32], v: &Mat<f32>) -> Mat<f32> {
    let scaled = Mat::from_fn(u.nrows(), s.len(), |i, j| u[(i, j)] * s[j]);
    &scaled * v.transpose()
}

/// Distinct, well-separated singular values, so the SVD's vectors are unique up to sign.
const SIGMA: [f32; 5] = [5.0, 4.0, 3.0, 2.0, 1.0];

fn factors() -> (Mat<f32>, Mat<f32>) {
    (
        orthonormal(8, SIGMA.len(), 1),
        orthonormal(5, SIGMA.len(), 2),
    )
}

#[test]
fn identical_weights_do_not_move() {
    let (u, v) = factors();
    let w = compose(&u, &SIGMA, &v);
    let (ds, dd) = spectral_shift(w.as_ref(), w.as_ref()).unwrap();
    // Same SVD, so σ match exactly; ⟨u_i, u_i⟩ is 1 only to f32 rounding of the vectors' norms.
    assert!(ds == 0.0 && dd.abs() < 1e-6, "ΔΣ {ds:e}, ΔD {dd:e}");
}

#[test]
fn one_singular_value_moved_by_delta_gives_delta_over_n() {
    let (u, v) = factors();
    let delta = 0.5; // σ_2: 4 → 4.5 keeps the descending order, so the index matching holds.
    let mut moved = SIGMA;
    moved[1] += delta;
    let (ds, dd) = spectral_shift(
        compose(&u, &SIGMA, &v).as_ref(),
        compose(&u, &moved, &v).as_ref(),
    )
    .unwrap();
    let want = f64::from(delta) / SIGMA.len() as f64;
    assert!((ds - want).abs() < 1e-5, "ΔΣ {ds} != δ/n = {want}");
    assert!(dd.abs() < 1e-5, "directions did not move, ΔD = {dd:e}");
}

#[test]
fn a_sign_flipped_singular_pair_keeps_delta_d_zero() {
    // W_t = W − 2σ_1 u_1 v_1ᵀ is a different matrix whose SVD has -u_1 (or -v_1): the absolute
    // value in ΔD must make it count as no rotation, and σ_1 stays positive.
    let (u, v) = factors();
    let mut flipped = u.clone();
    for i in 0..flipped.nrows() {
        flipped[(i, 0)] = -flipped[(i, 0)];
    }
    let w0 = compose(&u, &SIGMA, &v);
    let wt = compose(&flipped, &SIGMA, &v);
    assert!(
        (&wt - &w0).norm_max() > 1.0,
        "the flip must change the matrix"
    );
    let (ds, dd) = spectral_shift(w0.as_ref(), wt.as_ref()).unwrap();
    assert!(ds.abs() < 1e-5 && dd.abs() < 1e-5, "ΔΣ {ds:e}, ΔD {dd:e}");
}

#[test]
fn rotating_two_left_vectors_gives_the_closed_form_delta_d() {
    // U' = U R with R a rotation by θ in the (u_1, u_2) plane: u_1' = cos θ u_1 + sin θ u_2,
    // u_2' = −sin θ u_1 + cos θ u_2, V and Σ unchanged (distinct σ, so U' is W_t's exact SVD).
    // Then |⟨u_1',u_1⟩| = |⟨u_2',u_2⟩| = |cos θ| and every other product is 1, so
    // ΔD = 1 − (2|cos θ| + (n − 2) + n) / 2n = (1 − |cos θ|) / n.
    let (u, v) = factors();
    let n = SIGMA.len();
    let theta = 0.3f32;
    let rotation = Mat::from_fn(n, n, |i, j| match (i, j) {
        (0, 0) | (1, 1) => theta.cos(),
        (1, 0) => theta.sin(),
        (0, 1) => -theta.sin(),
        _ if i == j => 1.0,
        _ => 0.0,
    });
    let rotated = &u * &rotation;
    let (ds, dd) = spectral_shift(
        compose(&u, &SIGMA, &v).as_ref(),
        compose(&rotated, &SIGMA, &v).as_ref(),
    )
    .unwrap();

    // The expectation from the inner products themselves, then the closed form.
    let products: f64 = (0..n)
        .map(|i| {
            (0..u.nrows())
                .map(|r| f64::from(u[(r, i)]) * f64::from(rotated[(r, i)]))
                .sum::<f64>()
                .abs()
                + 1.0
        })
        .sum();
    let from_products = 1.0 - products / (2.0 * n as f64);
    let closed_form = (1.0 - f64::from(theta).cos()) / n as f64;
    assert!(
        (from_products - closed_form).abs() < 1e-6,
        "{from_products} vs {closed_form}"
    );
    assert!(
        (dd - closed_form).abs() < 1e-5,
        "ΔD {dd} != (1 − cos θ)/n = {closed_form}"
    );
    assert!(ds.abs() < 1e-5, "a rotation keeps σ: ΔΣ {ds:e}");
}

#[test]
fn mismatched_shapes_are_an_error() {
    let a = Mat::<f32>::identity(3, 3);
    let b = Mat::<f32>::identity(3, 4);
    assert!(
        spectral_shift(a.as_ref(), b.as_ref())
            .unwrap_err()
            .to_string()
            .contains("shape mismatch")
    );
}

#[test]
fn an_untrained_sorsa_adapter_does_not_move_stories260k() {
    let device = Default::default();
    let (base, _) = load_model::<B>(&root().join("models/stories260K/hf"), &device).unwrap();
    let base = base.decoder().unwrap();
    let (injected, injection) =
        inject_adapters(base.clone(), &AdapterConfig::new(Method::Sorsa, 8)).unwrap();
    let shifts = layer_shifts(&base, &injected).unwrap();
    assert_eq!(shifts.len(), injection.adapted.len());
    for s in &shifts {
        // residual + U_r Σ_r V_rᵀ reproduces W_0 to f32 rounding.
        assert!(
            s.delta_sigma < 1e-6 && s.delta_d < 1e-5,
            "{}: ΔΣ {:e}, ΔD {:e}",
            s.module,
            s.delta_sigma,
            s.delta_d
        );
    }
}

/// Two short runs (SORSA and LoRA) shared by the tests below, trained once.
fn runs() -> &'static [PathBuf; 2] {
    static RUNS: OnceLock<[PathBuf; 2]> = OnceLock::new();
    RUNS.get_or_init(|| {
        let train = |tag: &str, method: &[&str]| {
            let dir = temp(tag);
            let mut sets: Vec<String> = vec![
                format!(
                    "model.path=\"{}\"",
                    root().join("models/stories260K/hf").display()
                ),
                format!(
                    "data.train=\"{}\"",
                    root().join("datasets/gsm8k/train.jsonl").display()
                ),
                format!("run.output_dir=\"{}\"", dir.display()),
                "data.limit=16".into(),
                "data.eval_rows=4".into(),
                "data.max_prompt_length=32".into(),
                "data.max_response_length=32".into(),
                "optim.batch_size=4".into(),
                "optim.max_steps=4".into(),
                "adapter.rank=4".into(),
                "run.checkpoint_every=2".into(),
                "run.log_every=100".into(),
            ];
            sets.extend(method.iter().map(|s| s.to_string()));
            let recipe = Recipe::load(None, &sets).unwrap();
            train_decoder::<Train>(
                &recipe,
                &Default::default(),
                &TrainOptions {
                    quiet: true,
                    ..Default::default()
                },
            )
            .unwrap();
            dir
        };
        [
            train("sorsa", &[]),
            train("lora", &["adapter.method=\"lora\"", "adapter.gamma=0"]),
        ]
    })
}

/// Width and height from a PNG's IHDR chunk, after checking the signature.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        path.display()
    );
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}

#[test]
fn compare_plots_and_tabulates_both_runs() {
    let out = temp("compare");
    let written = compare(runs(), &out).unwrap();
    assert_eq!(png_size(&written.plots[0]), PLOT_SIZE);
    let svg = std::fs::read_to_string(&written.plots[1]).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("burn-peft-analysis-lora"),
        "SVG with the legend text"
    );
    let table = std::fs::read_to_string(&written.table).unwrap();
    let rows: Vec<&str> = table
        .lines()
        .filter(|l| l.starts_with("| burn-peft-analysis-"))
        .collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert!(
        rows[0].contains("sorsa γ=0.0004") && rows[1].contains("| lora |"),
        "{table}"
    );
    // Every column filled: 4 steps, a held-out loss and a trainable count from summary.json.
    assert!(
        rows.iter().all(|r| r.contains("| 4 |") && !r.contains('–')),
        "{table}"
    );
}

#[test]
fn compare_names_the_run_without_metrics_or_with_another_base() {
    let [sorsa, _] = runs();
    let copy = |tag: &str, edit: &dyn Fn(&Path)| {
        let dir = temp(tag);
        std::fs::create_dir_all(&dir).unwrap();
        for file in ["config.toml", "metrics.jsonl", "summary.json"] {
            std::fs::copy(sorsa.join(file), dir.join(file)).unwrap();
        }
        edit(&dir);
        dir
    };
    let no_metrics = copy("no-metrics", &|d| {
        std::fs::remove_file(d.join("metrics.jsonl")).unwrap()
    });
    let err = compare(&[sorsa.clone(), no_metrics.clone()], &temp("cmp-err1"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&no_metrics.display().to_string()) && err.contains("metrics.jsonl"),
        "{err}"
    );

    let other_base = copy("other-base", &|d| {
        let config = std::fs::read_to_string(d.join("config.toml")).unwrap();
        let changed = config.replace("models/stories260K/hf", "models/another-model");
        assert_ne!(config, changed);
        std::fs::write(d.join("config.toml"), changed).unwrap();
    });
    let err = compare(&[sorsa.clone(), other_base.clone()], &temp("cmp-err2"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&other_base.display().to_string()) && err.contains("another-model"),
        "{err}"
    );
}

#[test]
fn analyze_measures_every_checkpoint_and_the_final_adapter() {
    let [sorsa, lora] = runs();
    let out = temp("analyze");
    let options = AnalyzeOptions {
        base: root().join("models/stories260K/hf"),
        adapters: vec![sorsa.join("adapter"), lora.join("adapter")],
        checkpoints: true,
        out: out.clone(),
        precision: Default::default(),
    };
    let rows = analyze::<Train>(&options, &Default::default()).unwrap();
    // stories260K: 5 blocks x 7 linears, at steps 2 (checkpoint) and 4 (final adapter), 2 runs.
    assert_eq!(rows.len(), 35 * 2 * 2);
    for method in ["sorsa γ=0.0004", "lora"] {
        let steps: std::collections::BTreeSet<usize> = rows
            .iter()
            .filter(|r| r.method == method)
            .map(|r| r.step)
            .collect();
        assert_eq!(
            steps.into_iter().collect::<Vec<_>>(),
            vec![2, 4],
            "{method}"
        );
    }
    // Training moved the weights, and further at step 4 than at step 2 on average.
    let mean = |step: usize| {
        rows.iter()
            .filter(|r| r.method == "lora" && r.step == step)
            .map(|r| r.shift.delta_sigma)
            .sum::<f64>()
    };
    assert!(
        mean(2) > 0.0 && mean(4) > mean(2),
        "ΔΣ sums {} then {}",
        mean(2),
        mean(4)
    );
    let csv = std::fs::read_to_string(out.join("spectral.csv")).unwrap();
    assert!(csv.starts_with("method,step,layer,module,delta_sigma,delta_d\n"));
    assert_eq!(csv.lines().count(), rows.len() + 1);
    for stem in ["delta_sigma", "delta_d"] {
        assert_eq!(png_size(&out.join(format!("{stem}.png"))), PLOT_SIZE);
        assert!(out.join(format!("{stem}.svg")).is_file());
    }
}

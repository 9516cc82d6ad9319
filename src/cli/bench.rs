//! `burn-peft bench …`: measurements quoted in the README and issue notes.

use std::time::Instant;

use burn_peft::linalg::{SvdOptions, gaussian, svd};

#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// SVD initialisation time (exact vs randomized) and the randomized top-r error.
    Svd(SvdBenchArgs),
}

#[derive(clap::Args, Debug)]
pub struct SvdBenchArgs {
    /// Matrix shapes ROWSxCOLS, comma separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1024x1024,4096x4096,4096x11008"
    )]
    pub shapes: Vec<String>,
    /// Ranks, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "16,128")]
    pub ranks: Vec<usize>,
    /// Randomized SVD oversampling.
    #[arg(long, default_value_t = SvdOptions::DEFAULT_OVERSAMPLING)]
    pub oversampling: usize,
    /// Randomized SVD power iterations.
    #[arg(long, default_value_t = SvdOptions::DEFAULT_POWER_ITERATIONS)]
    pub power_iterations: usize,
    /// Skip the exact SVD (and the error column) for speed.
    #[arg(long)]
    pub no_exact: bool,
    /// Spectrum of the test matrices: `weight` (a trained-weight-like power-law decay
    /// σ_i ∝ (i+1)^-0.5 over a Gaussian basis) or `gaussian` (i.i.d. entries: the flat
    /// Marchenko–Pastur spectrum, the hardest case for a randomized SVD).
    #[arg(long, default_value = "weight")]
    pub spectrum: String,
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Svd(args) => svd_bench(args),
    }
}

fn parse_shape(s: &str) -> anyhow::Result<(usize, usize)> {
    let (r, c) = s
        .split_once('x')
        .ok_or_else(|| anyhow::anyhow!("shape `{s}`: expected ROWSxCOLS"))?;
    Ok((r.trim().parse()?, c.trim().parse()?))
}

fn test_matrix(rows: usize, cols: usize, spectrum: &str) -> anyhow::Result<faer::Mat<f32>> {
    let mut rng = gaussian::rng(7);
    let g = gaussian::standard_normal(&mut rng, rows, cols);
    match spectrum {
        "gaussian" => Ok(g),
        "weight" => {
            // Random orthonormal bases via QR of Gaussian matrices, power-law singular values.
            let n = rows.min(cols);
            let u = burn_peft::linalg::orthonormalize_columns(g.subcols(0, n));
            let h = gaussian::standard_normal(&mut rng, cols, n);
            let v = burn_peft::linalg::orthonormalize_columns(h.as_ref());
            let scaled =
                faer::Mat::from_fn(rows, n, |i, j| u[(i, j)] * ((j + 1) as f32).powf(-0.5));
            Ok(scaled * v.transpose())
        }
        other => anyhow::bail!("--spectrum `{other}`: expected weight or gaussian"),
    }
}

fn svd_bench(args: SvdBenchArgs) -> anyhow::Result<()> {
    println!("threads: {}", rayon_threads());
    println!("| shape | exact thin SVD (s) | rank | randomized (s) | max rel. error of top-r σ |");
    println!("|---|---|---|---|---|");
    for shape in &args.shapes {
        let (rows, cols) = parse_shape(shape)?;
        let w = test_matrix(rows, cols, &args.spectrum)?;
        let exact = if args.no_exact {
            None
        } else {
            let started = Instant::now();
            let full = svd::exact_svd(w.as_ref())?;
            Some((full, started.elapsed().as_secs_f64()))
        };
        for &rank in &args.ranks {
            let options = SvdOptions {
                oversampling: args.oversampling,
                power_iterations: args.power_iterations,
                ..SvdOptions::randomized()
            };
            let started = Instant::now();
            let approx = svd::truncated_svd(w.as_ref(), rank, &options)?;
            let randomized = started.elapsed().as_secs_f64();
            let (exact_time, error) = match &exact {
                Some((full, t)) => {
                    let err = approx
                        .s
                        .iter()
                        .zip(&full.s)
                        .map(|(a, e)| ((a - e) / e).abs())
                        .fold(0.0f32, f32::max);
                    (format!("{t:.2}"), format!("{:.3} %", 100.0 * err))
                }
                None => ("-".into(), "-".into()),
            };
            println!("| {rows}x{cols} | {exact_time} | {rank} | {randomized:.3} | {error} |");
        }
    }
    Ok(())
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

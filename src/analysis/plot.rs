//! Line plots written twice, as PNG and SVG, with plotters. Text is drawn with the embedded
//! DejaVu Sans Mono (ab_glyph), so plotting needs no system fonts and no C libraries.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::{Error, Result};

/// Pixel size of every plot (the PNG's width and height; the SVG's viewport).
pub const PLOT_SIZE: (u32, u32) = (960, 600);

/// The embedded font (Bitstream Vera licence: assets/DejaVuSansMono-LICENSE.txt).
const FONT: &[u8] = include_bytes!("../../assets/DejaVuSansMono.ttf");

/// Distinct, colour-blind-friendly line colours (Okabe–Ito), reused cyclically.
const COLORS: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
    RGBColor(240, 228, 66),
];

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// A connected line.
    Line,
    /// A thin line with a dot on every point (sparse measurements such as eval loss).
    Dots,
}

/// One legend entry: `(x, y)` points and, optionally, a shaded `(x, low, high)` band.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub band: Vec<(f64, f64, f64)>,
    pub mark: Mark,
    /// Index into the colour cycle, so related series (a run's loss and eval loss) share a colour.
    pub color: usize,
}

/// Titles of a plot.
#[derive(Debug, Clone)]
pub struct Labels<'a> {
    pub title: &'a str,
    pub x: &'a str,
    pub y: &'a str,
}

/// Writes `<stem>.png` and `<stem>.svg`; returns both paths.
pub fn write_line_plot(
    stem: &Path,
    labels: &Labels<'_>,
    series: &[Series],
) -> Result<[PathBuf; 2]> {
    register_font()?;
    let png = stem.with_extension("png");
    let svg = stem.with_extension("svg");
    let fail = |path: &Path, message: String| Error::BadFile {
        path: path.to_path_buf(),
        message: format!("cannot draw plot: {message}"),
    };
    draw(
        BitMapBackend::new(&png, PLOT_SIZE).into_drawing_area(),
        labels,
        series,
    )
    .map_err(|m| fail(&png, m))?;
    draw(
        SVGBackend::new(&svg, PLOT_SIZE).into_drawing_area(),
        labels,
        series,
    )
    .map_err(|m| fail(&svg, m))?;
    Ok([png, svg])
}

fn register_font() -> Result<()> {
    static REGISTERED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
                .map_err(|_| "the embedded font is not a valid TrueType file".to_string())
        })
        .clone()
        .map_err(|message| Error::BadFile {
            path: "assets/DejaVuSansMono.ttf".into(),
            message,
        })
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    labels: &Labels<'_>,
    series: &[Series],
) -> std::result::Result<(), String> {
    let text = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(text)?;
    let (x_range, y_range) = ranges(series);
    let mut chart = ChartBuilder::on(&root)
        .caption(labels.title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(80)
        .build_cartesian_2d(x_range, y_range)
        .map_err(text)?;
    chart
        .configure_mesh()
        .x_desc(labels.x)
        .y_desc(labels.y)
        .label_style(("sans-serif", 14))
        .x_label_formatter(&|x| {
            if x.fract() == 0.0 {
                format!("{x:.0}")
            } else {
                format!("{x:.1}")
            }
        })
        .y_label_formatter(&|y| format_tick(*y))
        .draw()
        .map_err(text)?;
    // Bands first, so every line stays visible on top of every band.
    for s in series.iter().filter(|s| !s.band.is_empty()) {
        let outline: Vec<(f64, f64)> = s
            .band
            .iter()
            .map(|&(x, _, hi)| (x, hi))
            .chain(s.band.iter().rev().map(|&(x, lo, _)| (x, lo)))
            .collect();
        chart
            .draw_series(std::iter::once(Polygon::new(
                outline,
                color(s).mix(0.18).filled(),
            )))
            .map_err(text)?;
    }
    for s in series {
        let c = color(s);
        let width = if s.mark == Mark::Line { 2 } else { 1 };
        chart
            .draw_series(LineSeries::new(
                s.points.iter().copied(),
                c.stroke_width(width),
            ))
            .map_err(text)?
            .label(s.label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        if s.mark == Mark::Dots {
            chart
                .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, c.filled())))
                .map_err(text)?;
        }
    }
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(text)?;
    root.present().map_err(text)
}

fn color(series: &Series) -> RGBColor {
    COLORS[series.color % COLORS.len()]
}

/// Axis ranges covering every point and band, padded 5% so lines do not sit on the frame; a
/// degenerate range (one step, or a constant value) is widened so the chart can still be drawn.
fn ranges(series: &[Series]) -> (std::ops::Range<f64>, std::ops::Range<f64>) {
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let ys = series.iter().flat_map(|s| {
        s.points
            .iter()
            .map(|p| p.1)
            .chain(s.band.iter().flat_map(|b| [b.1, b.2]))
    });
    (padded(xs), padded(ys))
}

fn padded(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        return 0.0..1.0;
    }
    let span = hi - lo;
    let pad = if span > 0.0 {
        span * 0.05
    } else {
        lo.abs().max(1e-6) * 0.05
    };
    (lo - pad)..(hi + pad)
}

/// Ticks of quantities spanning 1e-7 (ΔD after a few steps) to 10 (loss) stay readable.
fn format_tick(y: f64) -> String {
    if y == 0.0 || (1e-2..1e4).contains(&y.abs()) {
        format!("{y:.3}")
    } else {
        format!("{y:.2e}")
    }
}

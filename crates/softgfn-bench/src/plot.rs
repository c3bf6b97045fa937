//! Line plots with bands (plotters), written as SVG and PNG.
//!
//! Every plot has a title, axis labels with units, a legend, and a logarithmic y axis when the
//! values span more than two decades. Text is rendered with an embedded DejaVu Sans font, so PNGs
//! need no system fonts.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

use crate::error::{BenchError, Result};

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

fn register_font() {
    REGISTER.call_once(|| {
        // The font is embedded and valid; a failure would only lose text in PNGs.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// One line of a plot: the mean over seeds and a min-max band.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    /// Legend name.
    pub name: String,
    /// x values.
    pub x: Vec<f64>,
    /// Mean y.
    pub mean: Vec<f64>,
    /// Lower band.
    pub lo: Vec<f64>,
    /// Upper band.
    pub hi: Vec<f64>,
}

const COLORS: &[RGBColor] = &[
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Whether values span more than two decades (and are positive).
pub fn spans_decades(series: &[Series]) -> bool {
    let ys = series
        .iter()
        .flat_map(|s| s.lo.iter().chain(&s.hi).chain(&s.mean));
    let (mut lo, mut hi) = (f64::INFINITY, 0.0f64);
    for &y in ys {
        if y <= 0.0 {
            return false;
        }
        lo = lo.min(y);
        hi = hi.max(y);
    }
    hi / lo > 100.0
}

fn draw<DB, Y>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    xlabel: &str,
    ylabel: &str,
    series: &[Series],
    x_range: std::ops::Range<f64>,
    y_range: Y,
) -> std::result::Result<(), String>
where
    DB: DrawingBackend,
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size(78)
        .build_cartesian_2d(x_range, y_range)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc(xlabel)
        .y_desc(ylabel)
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .x_label_formatter(&|v| crate::report::fmt_num(*v))
        .draw()
        .map_err(|e| e.to_string())?;
    for (k, s) in series.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        if s.x.len() > 1 && s.lo.iter().zip(&s.hi).any(|(a, b)| a != b) {
            let mut band: Vec<(f64, f64)> = s.x.iter().copied().zip(s.hi.iter().copied()).collect();
            band.extend(s.x.iter().copied().zip(s.lo.iter().copied()).rev());
            chart
                .draw_series(std::iter::once(Polygon::new(
                    band,
                    color.mix(0.18).filled(),
                )))
                .map_err(|e| e.to_string())?;
        }
        chart
            .draw_series(LineSeries::new(
                s.x.iter().copied().zip(s.mean.iter().copied()),
                color.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(s.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 22, y)], color.stroke_width(3))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}

fn ranges(series: &[Series], log_y: bool) -> (std::ops::Range<f64>, std::ops::Range<f64>) {
    let xs = series.iter().flat_map(|s| s.x.iter().copied());
    let (mut x0, mut x1) = (f64::INFINITY, f64::NEG_INFINITY);
    for x in xs {
        x0 = x0.min(x);
        x1 = x1.max(x);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let ys = series
        .iter()
        .flat_map(|s| s.lo.iter().chain(&s.hi).chain(&s.mean).copied());
    let (mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY);
    for y in ys {
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if log_y {
        (x0..x1, (y0 / 1.5)..(y1 * 1.5))
    } else {
        let pad = ((y1 - y0) * 0.05).max(1e-12);
        (x0..x1, (y0 - pad)..(y1 + pad))
    }
}

fn render<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    xlabel: &str,
    ylabel: &str,
    series: &[Series],
) -> std::result::Result<(), String> {
    let log_y = spans_decades(series);
    let (xr, yr) = ranges(series, log_y);
    if log_y {
        draw(
            &root,
            title,
            xlabel,
            &format!("{ylabel} (log scale)"),
            series,
            xr,
            yr.log_scale(),
        )
    } else {
        draw(&root, title, xlabel, ylabel, series, xr, yr)
    }
}

/// Draws one metric as `DIR/STEM.svg` (and `DIR/STEM.png` when `png`).
pub fn plot_metric(
    dir: &Path,
    stem: &str,
    title: &str,
    xlabel: &str,
    ylabel: &str,
    series: &[Series],
    png: bool,
) -> Result<Vec<PathBuf>> {
    register_font();
    let mut out = Vec::new();
    let svg = dir.join(format!("{stem}.svg"));
    render(
        SVGBackend::new(&svg, (900, 560)).into_drawing_area(),
        title,
        xlabel,
        ylabel,
        series,
    )
    .map_err(|message| BenchError::Plot {
        path: svg.display().to_string(),
        message,
    })?;
    out.push(svg);
    if png {
        let path = dir.join(format!("{stem}.png"));
        render(
            BitMapBackend::new(&path, (900, 560)).into_drawing_area(),
            title,
            xlabel,
            ylabel,
            series,
        )
        .map_err(|message| BenchError::Plot {
            path: path.display().to_string(),
            message,
        })?;
        out.push(path);
    }
    Ok(out)
}

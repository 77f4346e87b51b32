//! `runner plot`: training loss and test accuracy against step, one line per run, as SVG or PNG.

use super::compare::differing_keys;
use super::runs::Run;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 900;
/// Right-hand panel for the legend, so that it never covers a curve.
const LEGEND_WIDTH: u32 = 330;
const FONT: &str = "sans-serif";

/// Tableau's ten colours: distinct, colour-blind friendlier than pure RGB.
const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

#[derive(Debug, Clone, Copy)]
pub struct PlotOptions {
    /// EMA weight of the newest step for the loss curve; 1 plots the raw loss.
    pub smoothing: f64,
    pub log_loss: bool,
}

struct Series {
    label: String,
    loss: Vec<(f64, f64)>,
    accuracy: Vec<(f64, f64)>,
}

/// Writes the plot to `out` (format from its extension: .svg or .png), atomically.
pub fn plot(runs: &[Run], out: &Path, opts: PlotOptions) -> Result<(), String> {
    let ext = out
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    if !matches!(ext.as_deref(), Some("svg" | "png")) {
        return Err(format!(
            "{}: the output must end in .svg or .png",
            out.display()
        ));
    }
    if !(opts.smoothing > 0.0 && opts.smoothing <= 1.0) {
        return Err(format!(
            "--smooth {}: expected a number in (0, 1]",
            opts.smoothing
        ));
    }
    // The embedded font makes text identical on every machine, fonts installed or not.
    let _ = plotters::style::register_font(
        FONT,
        FontStyle::Normal,
        include_bytes!("../../assets/fonts/DejaVuSans.ttf"),
    );
    let series = build_series(runs, opts);
    // Same extension for the temporary file: the PNG encoder picks the format from it.
    let tmp = out.with_file_name(format!(
        ".{}-{}.{}",
        out.file_stem().and_then(|s| s.to_str()).unwrap_or("plot"),
        std::process::id(),
        ext.as_deref().unwrap_or("svg")
    ));
    let drawn = if ext.as_deref() == Some("svg") {
        draw(
            SVGBackend::new(&tmp, (WIDTH, HEIGHT)).into_drawing_area(),
            &series,
            opts,
        )
    } else {
        draw(
            BitMapBackend::new(&tmp, (WIDTH, HEIGHT)).into_drawing_area(),
            &series,
            opts,
        )
    };
    match drawn.and_then(|()| {
        std::fs::rename(&tmp, out).map_err(|e| format!("cannot write {}: {e}", out.display()))
    }) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

fn build_series(runs: &[Run], opts: PlotOptions) -> Vec<Series> {
    let refs: Vec<&Run> = runs.iter().collect();
    let keys = differing_keys(&refs);
    runs.iter()
        .map(|run| {
            let label = if keys.is_empty() {
                run.id.clone()
            } else {
                keys.iter()
                    .map(|k| {
                        format!(
                            "{k}={}",
                            run.config.get(k).map_or("-", |v| v.trim_matches('"'))
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let mut ema: Option<f64> = None;
            let loss = run
                .steps(None)
                .iter()
                .filter(|r| r.loss.is_finite())
                .map(|r| {
                    let e = ema.map_or(r.loss, |e| {
                        (1.0 - opts.smoothing) * e + opts.smoothing * r.loss
                    });
                    ema = Some(e);
                    (r.step as f64, e)
                })
                .collect();
            let accuracy = run
                .evals
                .iter()
                .map(|e| (e.step as f64, 100.0 * e.test_accuracy))
                .collect();
            Series {
                label,
                loss,
                accuracy,
            }
        })
        .collect()
}

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("cannot draw the plot: {e:?}")
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    series: &[Series],
    opts: PlotOptions,
) -> Result<(), String> {
    root.fill(&WHITE).map_err(err)?;
    let (charts, legend) = root.split_horizontally(WIDTH - LEGEND_WIDTH);
    let (top, bottom) = charts.split_vertically(HEIGHT / 2);
    let max_step = series
        .iter()
        .flat_map(|s| s.loss.iter().chain(&s.accuracy))
        .map(|p| p.0)
        .fold(1.0f64, f64::max);
    draw_loss(&top, series, opts, max_step)?;
    draw_accuracy(&bottom, series, max_step)?;
    draw_legend(&legend, series)?;
    root.present().map_err(err)
}

/// The loss panel; a log scale is drawn as log10 values with 10^y tick labels.
fn draw_loss<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    series: &[Series],
    opts: PlotOptions,
    max_step: f64,
) -> Result<(), String> {
    let tf = |y: f64| {
        if opts.log_loss {
            y.max(1e-12).log10()
        } else {
            y
        }
    };
    let ys: Vec<f64> = series
        .iter()
        .flat_map(|s| s.loss.iter().map(|p| tf(p.1)))
        .collect();
    let (lo, hi) = padded_range(&ys, !opts.log_loss);
    let smoothing = if opts.smoothing >= 1.0 {
        "raw".to_string()
    } else {
        format!("EMA alpha {}", opts.smoothing)
    };
    let mut chart = panel(
        area,
        &format!("Training loss ({smoothing})"),
        max_step,
        lo..hi,
    )?;
    let log = opts.log_loss;
    let y_fmt = move |y: &f64| {
        if log {
            format!("{:.3}", 10f64.powf(*y))
        } else {
            format!("{y:.2}")
        }
    };
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc(if log {
            "cross-entropy (nats, log scale)"
        } else {
            "cross-entropy (nats)"
        })
        .y_label_formatter(&y_fmt)
        .x_label_formatter(&step_label)
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 17))
        .draw()
        .map_err(err)?;
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                s.loss.iter().map(|&(x, y)| (x, tf(y))),
                color.stroke_width(2),
            ))
            .map_err(err)?;
    }
    Ok(())
}

fn step_label(x: &f64) -> String {
    format!("{x:.0}")
}

/// The test accuracy panel: lines through the evaluations, a dot at each.
fn draw_accuracy<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    series: &[Series],
    max_step: f64,
) -> Result<(), String> {
    let accs: Vec<f64> = series
        .iter()
        .flat_map(|s| s.accuracy.iter().map(|p| p.1))
        .collect();
    let (alo, ahi) = padded_range(&accs, false);
    let mut chart = panel(
        area,
        "Test accuracy",
        max_step,
        alo.max(0.0)..ahi.min(100.0),
    )?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("test accuracy (%)")
        .x_label_formatter(&step_label)
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 17))
        .draw()
        .map_err(err)?;
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                s.accuracy.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(err)?;
        chart
            .draw_series(
                s.accuracy
                    .iter()
                    .map(|&p| Circle::new(p, 3, color.filled())),
            )
            .map_err(err)?;
    }
    Ok(())
}

/// The legend, in its own panel.
fn draw_legend<DB: DrawingBackend>(
    legend: &DrawingArea<DB, Shift>,
    series: &[Series],
) -> Result<(), String> {
    legend
        .draw(&Text::new("runs", (10, 20), (FONT, 18)))
        .map_err(err)?;
    for (i, s) in series.iter().enumerate() {
        let y = 50 + 24 * i as i32;
        let color = COLORS[i % COLORS.len()];
        legend
            .draw(&PathElement::new(
                vec![(10, y), (40, y)],
                color.stroke_width(3),
            ))
            .map_err(err)?;
        let label: String = s.label.chars().take(40).collect();
        legend
            .draw(&Text::new(label, (48, y - 8), (FONT, 14)))
            .map_err(err)?;
    }
    Ok(())
}

/// One chart panel: caption, margins and axis areas shared by both panels.
fn panel<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    caption: &str,
    max_step: f64,
    y: std::ops::Range<f64>,
) -> Result<ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>, String> {
    ChartBuilder::on(area)
        .caption(caption, (FONT, 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..max_step, y)
        .map_err(err)
}

/// The data range with 5 % headroom; `from_zero` anchors linear loss axes at 0.
fn padded_range(ys: &[f64], from_zero: bool) -> (f64, f64) {
    let lo = ys.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = ys.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    let lo = if from_zero { lo.min(0.0) } else { lo };
    let pad = ((hi - lo) * 0.05).max(1e-6);
    (lo - pad, hi + pad)
}

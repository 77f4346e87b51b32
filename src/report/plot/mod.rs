//! `runner plot`: training loss and test accuracy against step, one line per run, as SVG or PNG.

use super::runs::Run;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

mod groups;

use groups::{Band, Group};
use plotters::coord::ranged1d::{Ranged, ValueFormatter};

const WIDTH: u32 = 1400;
/// The height of a row of panels.
const ROW_HEIGHT: u32 = 450;
/// Right-hand panel for the legend, so that it never covers a curve.
const LEGEND_WIDTH: u32 = 360;
/// Characters of a legend line before it wraps (at 14 px in the legend's width).
const LEGEND_CHARS: usize = 40;
const LEGEND_LINE: i32 = 18;
const FONT: &str = "sans-serif";

/// Tableau's twenty colours: the ten strong ones first, then their light partners, so up to
/// ten groups get the most distinct colours and up to twenty distinct ones.
const COLORS: [RGBColor; 20] = [
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
    RGBColor(174, 199, 232),
    RGBColor(255, 187, 120),
    RGBColor(152, 223, 138),
    RGBColor(255, 152, 150),
    RGBColor(197, 176, 213),
    RGBColor(196, 156, 148),
    RGBColor(247, 182, 210),
    RGBColor(199, 199, 199),
    RGBColor(219, 219, 141),
    RGBColor(158, 218, 229),
];

/// The panels a plot can have, in the order they are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Panel {
    /// Training loss (smoothed).
    Loss,
    /// Test loss, and validation loss dashed.
    EvalLoss,
    /// Test accuracy, and validation accuracy dashed.
    Accuracy,
    /// The learning rate of each step.
    Lr,
}

#[derive(Debug, Clone)]
pub struct PlotOptions {
    /// EMA weight of the newest step for the loss curve; 1 plots the raw loss.
    pub smoothing: f64,
    pub log_loss: bool,
    pub panels: Vec<Panel>,
    /// Config keys whose values label the curves (default: the keys that differ).
    pub label: Vec<String>,
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
        include_bytes!("../../../assets/fonts/DejaVuSans.ttf"),
    );
    if opts.panels.is_empty() {
        return Err("--panels: name at least one of loss, eval-loss, accuracy, lr".into());
    }
    if let Some(key) = opts
        .label
        .iter()
        .find(|k| !runs.iter().any(|r| r.config.contains_key(*k)))
    {
        return Err(format!("--label {key}: not a config key of these runs"));
    }
    let groups = groups::groups(runs, opts.smoothing, &opts.label);
    let (width, height) = size(&groups, &opts);
    // Same extension for the temporary file: the PNG encoder picks the format from it.
    let tmp = out.with_file_name(format!(
        ".{}-{}.{}",
        out.file_stem().and_then(|s| s.to_str()).unwrap_or("plot"),
        std::process::id(),
        ext.as_deref().unwrap_or("svg")
    ));
    let drawn = if ext.as_deref() == Some("svg") {
        draw(
            SVGBackend::new(&tmp, (width, height)).into_drawing_area(),
            &groups,
            &opts,
        )
    } else {
        draw(
            BitMapBackend::new(&tmp, (width, height)).into_drawing_area(),
            &groups,
            &opts,
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

/// The image size: two panels side by side per row, and tall enough for the whole legend.
fn size(groups: &[Group], opts: &PlotOptions) -> (u32, u32) {
    let rows = if opts.panels.len() <= 2 {
        opts.panels.len()
    } else {
        opts.panels.len().div_ceil(2)
    } as u32;
    let legend_lines: usize = groups.iter().map(|g| wrap(&g.label).len()).sum();
    let legend = 60 + legend_lines as u32 * LEGEND_LINE as u32 + groups.len() as u32 * 8 + 40;
    (WIDTH, (rows * ROW_HEIGHT).max(legend))
}

/// A label cut into lines of at most [`LEGEND_CHARS`] at spaces (a longer word is split).
fn wrap(label: &str) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in label.split(' ') {
        let mut word = word.to_string();
        while word.chars().count() > LEGEND_CHARS {
            let head: String = word.chars().take(LEGEND_CHARS).collect();
            word = word.chars().skip(LEGEND_CHARS).collect();
            lines.push(head);
            lines.push(String::new());
        }
        let last = lines.last_mut().expect("one line at least");
        if last.is_empty() {
            *last = word;
        } else if last.chars().count() + 1 + word.chars().count() <= LEGEND_CHARS {
            last.push(' ');
            last.push_str(&word);
        } else {
            lines.push(word);
        }
    }
    lines.retain(|l| !l.is_empty());
    lines
}

fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

fn err<E: std::fmt::Display>(e: E) -> String {
    format!("cannot draw the plot: {e}")
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    groups: &[Group],
    opts: &PlotOptions,
) -> Result<(), String> {
    root.fill(&WHITE).map_err(err)?;
    let (w, _) = root.dim_in_pixel();
    let (charts, legend) = root.split_horizontally(w - LEGEND_WIDTH);
    let areas = match opts.panels.len() {
        1 => vec![charts.clone()],
        2 => charts.split_evenly((2, 1)),
        _ => charts.split_evenly((opts.panels.len().div_ceil(2), 2)),
    };
    let max_step = groups
        .iter()
        .flat_map(|g| g.train_loss.points.iter().chain(&g.test_accuracy.points))
        .map(|p| p.step)
        .fold(1.0f64, f64::max);
    for (panel, area) in opts.panels.iter().zip(&areas) {
        let smoothing = if opts.smoothing >= 1.0 {
            "raw".to_string()
        } else {
            format!("EMA alpha {}", opts.smoothing)
        };
        let spec = match panel {
            Panel::Loss => PanelSpec {
                caption: format!("Training loss ({smoothing})"),
                y_desc: "cross-entropy (nats)",
                pick: |g| (&g.train_loss, None),
                log: opts.log_loss,
                dots: false,
            },
            Panel::EvalLoss => PanelSpec {
                caption: "Test loss (validation dashed)".into(),
                y_desc: "cross-entropy (nats)",
                pick: |g| (&g.test_loss, Some(&g.val_loss)),
                log: opts.log_loss,
                dots: true,
            },
            Panel::Accuracy => PanelSpec {
                caption: "Test accuracy (validation dashed)".into(),
                y_desc: "accuracy (%)",
                pick: |g| (&g.test_accuracy, Some(&g.val_accuracy)),
                log: false,
                dots: true,
            },
            Panel::Lr => PanelSpec {
                caption: "Learning rate".into(),
                y_desc: "lr",
                pick: |g| (&g.lr, None),
                log: false,
                dots: false,
            },
        };
        draw_panel(area, groups, &spec, max_step)?;
    }
    draw_legend(&legend, groups)?;
    root.present().map_err(err)
}

/// What one panel shows.
struct PanelSpec {
    caption: String,
    y_desc: &'static str,
    /// The group's main band and, dashed, its second one (validation).
    pick: fn(&Group) -> (&Band, Option<&Band>),
    log: bool,
    /// A dot at each point (evaluations are sparse).
    dots: bool,
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    groups: &[Group],
    spec: &PanelSpec,
    max_step: f64,
) -> Result<(), String> {
    let values: Vec<f64> = groups
        .iter()
        .flat_map(|g| {
            let (a, b) = (spec.pick)(g);
            a.values()
                .chain(b.into_iter().flat_map(Band::values))
                .collect::<Vec<_>>()
        })
        .filter(|v| v.is_finite() && (!spec.log || *v > 0.0))
        .collect();
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if lo.is_finite() && hi > lo {
        (lo, hi)
    } else if lo.is_finite() {
        (lo * 0.9 - 1e-9, hi * 1.1 + 1e-9)
    } else {
        (0.1, 1.0)
    };
    let builder = |area| {
        let mut b = ChartBuilder::on(area);
        b.caption(&spec.caption, (FONT, 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(75);
        b
    };
    if spec.log {
        // Round ticks (0.1, 0.2, ... 1, 2, ...), not evenly spaced logarithms: plotters places
        // them from the first power of ten in the range, so the range starts at one.
        // (Just below it: ln(0.1) / ln(10) rounds to above -1.)
        let (lo, hi) = (10f64.powf(lo.log10().floor()) * 0.999, hi * 1.15);
        let chart = builder(area)
            .build_cartesian_2d(0.0..max_step, (lo..hi).log_scale())
            .map_err(err)?;
        fill_panel(chart, groups, spec, &format!("{} (log scale)", spec.y_desc))
    } else {
        let pad = (hi - lo) * 0.05;
        let chart = builder(area)
            .build_cartesian_2d(0.0..max_step, (lo - pad)..(hi + pad))
            .map_err(err)?;
        fill_panel(chart, groups, spec, spec.y_desc)
    }
}

/// The mesh, then each group's band (min-max, translucent) and mean line.
fn fill_panel<DB, Y>(
    mut chart: ChartContext<'_, DB, Cartesian2d<RangedCoordf64, Y>>,
    groups: &[Group],
    spec: &PanelSpec,
    y_desc: &str,
) -> Result<(), String>
where
    DB: DrawingBackend,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc(y_desc)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| tick_label(*y))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .draw()
        .map_err(err)?;
    for (i, g) in groups.iter().enumerate() {
        let c = color(i);
        let (main, second) = (spec.pick)(g);
        for (band, dashed) in [(main, false), (second.unwrap_or(&Band::default()), true)] {
            if band.is_empty() {
                continue;
            }
            if band.points.iter().any(|p| p.max > p.min) {
                let outline: Vec<(f64, f64)> = band
                    .points
                    .iter()
                    .map(|p| (p.step, p.min))
                    .chain(band.points.iter().rev().map(|p| (p.step, p.max)))
                    .collect();
                chart
                    .draw_series(std::iter::once(Polygon::new(outline, c.mix(0.18).filled())))
                    .map_err(err)?;
            }
            let line = band.points.iter().map(|p| (p.step, p.mean));
            if dashed {
                chart
                    .draw_series(DashedLineSeries::new(line, 6, 4, c.stroke_width(2)))
                    .map_err(err)?;
            } else {
                chart
                    .draw_series(LineSeries::new(line, c.stroke_width(2)))
                    .map_err(err)?;
            }
            if spec.dots {
                chart
                    .draw_series(
                        band.points
                            .iter()
                            .map(|p| Circle::new((p.step, p.mean), 3, c.filled())),
                    )
                    .map_err(err)?;
            }
        }
    }
    Ok(())
}

/// A tick value with as few digits as it needs: 0.2, 0.05, 1e-4, 3.
fn tick_label(y: f64) -> String {
    if y != 0.0 && (y.abs() < 1e-3 || y.abs() >= 1e5) {
        // Three significant digits, trailing zeros dropped: 1.04e-4, 1e-4.
        let s = format!("{y:.2e}");
        let (mantissa, exponent) = s.split_once('e').unwrap_or((&s, "0"));
        let mantissa = mantissa.trim_end_matches('0').trim_end_matches('.');
        return format!("{mantissa}e{exponent}");
    }
    let s = format!("{y:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The legend, in its own panel: each group's colour and its label, wrapped, never cut.
fn draw_legend<DB: DrawingBackend>(
    legend: &DrawingArea<DB, Shift>,
    groups: &[Group],
) -> Result<(), String> {
    legend
        .draw(&Text::new("runs", (10, 20), (FONT, 18)))
        .map_err(err)?;
    let mut y = 50;
    for (i, g) in groups.iter().enumerate() {
        legend
            .draw(&PathElement::new(
                vec![(10, y + 7), (40, y + 7)],
                color(i).stroke_width(3),
            ))
            .map_err(err)?;
        for line in wrap(&g.label) {
            legend
                .draw(&Text::new(line, (48, y), (FONT, 14)))
                .map_err(err)?;
            y += LEGEND_LINE;
        }
        y += 8;
    }
    if groups.len() > COLORS.len() {
        let note = format!(
            "{} groups: colours repeat after {}",
            groups.len(),
            COLORS.len()
        );
        legend
            .draw(&Text::new(note, (10, y + 10), (FONT, 14)))
            .map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_wrap_at_spaces_and_nothing_is_cut() {
        let label = "train.steps=1000 optimizer.lr=0.001 model.hidden=[512, 256] seed=3 \
                     a_very_long_key_name_that_goes_past_the_legend_width=1";
        let lines = wrap(label);
        assert!(
            lines.iter().all(|l| l.chars().count() <= LEGEND_CHARS),
            "{lines:?}"
        );
        assert_eq!(lines.join(" ").replace(' ', ""), label.replace(' ', ""));
        assert_eq!(wrap("short"), ["short"]);
    }

    #[test]
    fn ticks_are_short() {
        assert_eq!(tick_label(0.2), "0.2");
        assert_eq!(tick_label(0.05), "0.05");
        assert_eq!(tick_label(3.0), "3");
        assert_eq!(tick_label(1e-4), "1e-4");
        assert_eq!(tick_label(1.04e-4), "1.04e-4");
        assert_eq!(tick_label(9.6e-5), "9.6e-5");
    }
}

//! Axes: padded ranges (refusing spans too wide to draw), tick labels with as many decimals as a
//! span needs, the mesh (axis titles, ticks, a light grid) and lines with a dot on each point.

use super::render::DrawResult;
use super::style::{font, DESC_PX, TICK_PX};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use std::ops::Range;

/// A chart with `f64` coordinates on both axes.
pub(super) type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// `lo..hi` widened by 5% each side, or by `min_pad` when the data is one value.
pub(super) fn padded(lo: f64, hi: f64, min_pad: f64) -> Range<f64> {
    let pad = if hi > lo {
        (hi - lo) * 0.05
    } else {
        (lo.abs() * 0.05).max(min_pad)
    };
    (lo - pad)..(hi + pad)
}

/// Min and max of some values (never called on an empty iterator).
pub(super) fn min_max(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    })
}

/// Values so far apart that the padded axis range would overflow cannot be drawn.
pub(super) fn check_span(axis: &str, (lo, hi): (f64, f64)) -> std::result::Result<(), String> {
    let range = padded(lo, hi, 1.0);
    if (range.end - range.start).is_finite() {
        Ok(())
    } else {
        Err(format!(
            "{axis} values from {lo} to {hi} span too far to plot"
        ))
    }
}

/// Axis labels, tick labels and a light grid, as the seed's `ax.grid(True, alpha=0.3)`.
pub(super) fn draw_mesh<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    x_desc: &str,
    y_desc: &str,
    (x_fmt, x_ticks): (&dyn Fn(&f64) -> String, usize),
    y_fmt: &dyn Fn(&f64) -> String,
) -> DrawResult<DB> {
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style(font(TICK_PX))
        .axis_desc_style(font(DESC_PX))
        .bold_line_style(BLACK.mix(0.15))
        .light_line_style(TRANSPARENT)
        .x_label_formatter(x_fmt)
        .x_labels(x_ticks)
        .y_label_formatter(y_fmt)
        .draw()
}

/// A polyline through `points` with a filled dot on each (matplotlib's `marker='o'`).
pub(super) fn draw_line_with_dots<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    points: impl Iterator<Item = (f64, f64)> + Clone,
    c: RGBColor,
    radius: u32,
) -> DrawResult<DB> {
    chart.draw_series(LineSeries::new(points.clone(), c.stroke_width(2)))?;
    chart.draw_series(points.map(|p| Circle::new(p, radius, c.filled())))?;
    Ok(())
}

/// Tick labels with enough decimals for an axis spanning `span`, without trailing zeros.
pub(super) fn tick_label(span: f64) -> impl Fn(&f64) -> String {
    let decimals = decimals_for(span);
    move |v| {
        let s = format!("{v:.decimals$}");
        let s = if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        };
        if s == "-0" {
            "0".into()
        } else {
            s
        }
    }
}

/// Decimals that show a span's values to about three significant digits.
pub(super) fn decimals_for(span: f64) -> usize {
    if span > 0.0 {
        (2.0 - span.log10().floor()).clamp(0.0, 8.0) as usize
    } else {
        3
    }
}

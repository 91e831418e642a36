//! Validation Acc@1 against meta-iteration: one line with dots per model, the legend beside the
//! plot.

use super::axes::{check_span, draw_line_with_dots, draw_mesh, min_max, padded, tick_label};
use super::legend::{draw_legend, Glyph, GLYPH_PX, LEGEND_ROW_PX};
use super::render::{write_figure, DrawResult, Figure};
use super::style::{color, font, LEGEND_PX, TITLE_PX};
use crate::error::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// One line of a line chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// The legend text.
    pub label: String,
    /// `(x, y)` points, drawn in the given order.
    pub points: Vec<(f64, f64)>,
}

/// Validation Acc@1 against meta-iteration, one line (with markers) per model; the legend is
/// drawn beside the plot so it never covers a line.
pub fn val_curves(base: &Path, title: &str, series: &[Series]) -> Result<()> {
    let what = |msg: String| Error::Other(format!("plot {} ({title:?}): {msg}", base.display()));
    if series.is_empty() {
        return Err(what("no series to draw".into()));
    }
    for s in series {
        if s.points.is_empty() {
            return Err(what(format!("series {:?} has no points", s.label)));
        }
        if let Some((i, (x, y))) = s
            .points
            .iter()
            .enumerate()
            .find(|(_, (x, y))| !(x.is_finite() && y.is_finite()))
        {
            return Err(what(format!(
                "series {:?}, point {i}: non-finite value ({x}, {y})",
                s.label
            )));
        }
    }
    let points = || series.iter().flat_map(|s| s.points.iter());
    check_span("x", min_max(points().map(|p| p.0))).map_err(what)?;
    check_span("y", min_max(points().map(|p| p.1))).map_err(what)?;
    write_figure(base, &ValCurves { title, series })
}

struct ValCurves<'a> {
    title: &'a str,
    series: &'a [Series],
}

impl Figure for ValCurves<'_> {
    fn size(&self) -> (u32, u32) {
        let rows = self.series.len() as u32;
        (1500, 800.max(140 + LEGEND_ROW_PX * rows))
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let mut widest = 0;
        for s in self.series {
            widest = widest.max(root.estimate_text_size(&s.label, &font(LEGEND_PX))?.0);
        }
        let (w, _) = self.size();
        let legend_w = (widest + GLYPH_PX as u32 + 40).min(w / 2);
        let (plot_area, legend_area) = root.split_horizontally(w - legend_w);

        let points = || self.series.iter().flat_map(|s| s.points.iter());
        let (x0, x1) = min_max(points().map(|p| p.0));
        let (y0, y1) = min_max(points().map(|p| p.1));
        let mut chart = ChartBuilder::on(&plot_area)
            .caption(self.title, font(TITLE_PX))
            .margin(14)
            .x_label_area_size(60)
            .y_label_area_size(90)
            .build_cartesian_2d(padded(x0, x1, 1.0), padded(y0, y1, 0.01))?;
        let (x_fmt, y_fmt) = (tick_label(x1 - x0), tick_label(y1 - y0));
        draw_mesh(
            &mut chart,
            "Meta-iteration",
            "Val Acc@1",
            (&x_fmt, 10),
            &y_fmt,
        )?;
        for (i, s) in self.series.iter().enumerate() {
            draw_line_with_dots(&mut chart, s.points.iter().copied(), color(i), 3)?;
        }

        // The legend beside the plot, level with the plot's top.
        let top = chart.plotting_area().get_base_pixel().1 - legend_area.get_base_pixel().1;
        let entries: Vec<_> = self
            .series
            .iter()
            .enumerate()
            .map(|(i, s)| (s.label.as_str(), Glyph::Line(color(i))))
            .collect();
        draw_legend(&legend_area, (0, top), &entries, false)
    }
}

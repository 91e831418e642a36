//! A mean with its interval per row (the comparison matrix's few-shot Acc@1): a dot and whiskers
//! per row, the row's label on the left and its numbers on the right.

use super::axes::{check_span, decimals_for, min_max, padded, tick_label, Chart};
use super::render::{write_figure, DrawResult, Figure};
use super::style::{color, font, DESC_PX, LEGEND_PX, TICK_PX, TITLE_PX};
use crate::error::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::ops::Range;
use std::path::Path;

/// One row of an interval chart: a mean with its 95% interval. The interval is drawn as given
/// (it need not contain the mean: a mean over seeds may fall outside an interval over episodes).
#[derive(Clone, Debug, PartialEq)]
pub struct RowInterval {
    /// The row's name, written left of the plot.
    pub label: String,
    /// The point estimate.
    pub mean: f64,
    /// Lower end of the interval.
    pub lo: f64,
    /// Upper end of the interval (`lo <= hi`).
    pub hi: f64,
}

/// One horizontal interval per row (a dot at the mean, whiskers from `lo` to `hi`), rows top to
/// bottom in the given order, each row's label on the left and its numbers on the right.
pub fn row_intervals(base: &Path, title: &str, x_label: &str, rows: &[RowInterval]) -> Result<()> {
    let what = |msg: String| Error::Other(format!("plot {} ({title:?}): {msg}", base.display()));
    if rows.is_empty() {
        return Err(what("no rows to draw".into()));
    }
    for r in rows {
        if !(r.mean.is_finite() && r.lo.is_finite() && r.hi.is_finite()) {
            return Err(what(format!(
                "row {:?}: non-finite value (mean {}, interval [{}, {}])",
                r.label, r.mean, r.lo, r.hi
            )));
        }
        if r.lo > r.hi {
            return Err(what(format!(
                "row {:?}: interval [{}, {}] has lo > hi",
                r.label, r.lo, r.hi
            )));
        }
    }
    let values = rows.iter().flat_map(|r| [r.lo, r.mean, r.hi]);
    check_span("x", min_max(values)).map_err(what)?;
    write_figure(
        base,
        &RowIntervals {
            title,
            x_label,
            rows,
        },
    )
}

struct RowIntervals<'a> {
    title: &'a str,
    x_label: &'a str,
    rows: &'a [RowInterval],
}

/// Height of one row in pixels.
const ROW_PX: u32 = 44;

type AreaResult<T, DB> =
    std::result::Result<T, DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

impl RowIntervals<'_> {
    fn numbers(&self, r: &RowInterval, decimals: usize) -> String {
        format!("{:.d$} [{:.d$}, {:.d$}]", r.mean, r.lo, r.hi, d = decimals)
    }

    /// The widths of the label column (left) and the numbers column (right), each at most a
    /// third of the figure.
    fn column_widths<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        decimals: usize,
    ) -> AreaResult<(u32, u32), DB> {
        let text = font(LEGEND_PX);
        let (mut label_w, mut number_w) = (0, 0);
        for r in self.rows {
            label_w = label_w.max(root.estimate_text_size(&r.label, &text)?.0);
            let numbers = self.numbers(r, decimals);
            number_w = number_w.max(root.estimate_text_size(&numbers, &text)?.0);
        }
        let (w, _) = self.size();
        Ok(((label_w + 24).min(w / 3), (number_w + 24).min(w / 3)))
    }

    /// The x axis (ticks, title, grid) and a line at 0 when the range spans it.
    fn draw_axis<DB: DrawingBackend>(
        &self,
        chart: &mut Chart<'_, DB>,
        x_range: &Range<f64>,
        span: f64,
    ) -> DrawResult<DB> {
        let n = self.rows.len();
        let x_fmt = tick_label(span);
        chart
            .configure_mesh()
            .x_label_formatter(&x_fmt)
            .x_desc(self.x_label)
            .label_style(font(TICK_PX))
            .axis_desc_style(font(DESC_PX))
            .bold_line_style(BLACK.mix(0.15))
            .light_line_style(TRANSPARENT)
            .disable_y_mesh()
            .y_labels(0)
            .draw()?;
        if x_range.start < 0.0 && 0.0 < x_range.end {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(0.0, -0.5), (0.0, n as f64 - 0.5)],
                BLACK.mix(0.5).stroke_width(1),
            )))?;
        }
        Ok(())
    }

    /// Row `i`: whiskers, the dot at the mean, the label left and the numbers right of the plot.
    fn draw_row<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        chart: &mut Chart<'_, DB>,
        i: usize,
        x_range: &Range<f64>,
        decimals: usize,
    ) -> DrawResult<DB> {
        let r = &self.rows[i];
        let c = color(0);
        let line = c.stroke_width(2);
        let y = (self.rows.len() - 1 - i) as f64;
        let cap = 0.18;
        chart.draw_series([
            PathElement::new(vec![(r.lo, y), (r.hi, y)], line),
            PathElement::new(vec![(r.lo, y - cap), (r.lo, y + cap)], line),
            PathElement::new(vec![(r.hi, y - cap), (r.hi, y + cap)], line),
        ])?;
        chart.draw_series(std::iter::once(Circle::new((r.mean, y), 6, c.filled())))?;

        let (left, py) = chart.backend_coord(&(x_range.start, y));
        let (right, _) = chart.backend_coord(&(x_range.end, y));
        let at = |h| font(LEGEND_PX).pos(Pos::new(h, VPos::Center));
        root.draw(&Text::new(
            r.label.clone(),
            (left - 12, py),
            at(HPos::Right),
        ))?;
        root.draw(&Text::new(
            self.numbers(r, decimals),
            (right + 12, py),
            at(HPos::Left),
        ))
    }
}

impl Figure for RowIntervals<'_> {
    fn size(&self) -> (u32, u32) {
        (1500, 300.max(170 + ROW_PX * self.rows.len() as u32))
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let n = self.rows.len();
        let values = || self.rows.iter().flat_map(|r| [r.lo, r.mean, r.hi]);
        let (x0, x1) = min_max(values());
        let decimals = decimals_for(x1 - x0);
        let (label_w, number_w) = self.column_widths(root, decimals)?;
        let x_range = padded(x0, x1, 0.01);
        let mut chart = ChartBuilder::on(root)
            .caption(self.title, font(TITLE_PX))
            .margin(14)
            .x_label_area_size(60)
            .y_label_area_size(label_w)
            .right_y_label_area_size(number_w)
            .build_cartesian_2d(x_range.clone(), -0.5..n as f64 - 0.5)?;
        self.draw_axis(&mut chart, &x_range, x1 - x0)?;
        for i in 0..n {
            self.draw_row(root, &mut chart, i, &x_range, decimals)?;
        }
        Ok(())
    }
}

//! The seed's cell 09-05: the recency weighting schemes over K support pairs in three panels
//! (exponential curves, linear against equal as bars, softmax curves).

use super::axes::{draw_line_with_dots, draw_mesh, min_max, tick_label, Chart};
use super::legend::{corner_legend, Glyph};
use super::render::{write_figure, DrawResult, Figure};
use super::style::{color, font, TITLE_PX};
use crate::error::{Error, Result};
use crate::model::Recency;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// The seed's cell 09-05: exponential weights for λ in {0.1, 0.3, 0.5, 1.0, 2.0}, linear against
/// equal weights as bars, and softmax weights for τ in {0.5, 1, 2, 5}, over `k` support pairs,
/// computed by [`Recency::weights`].
pub fn weight_schemes(base: &Path, k: usize) -> Result<()> {
    if k == 0 {
        return Err(Error::Other(format!(
            "plot {}: the weighting schemes need K >= 1 support pairs, got 0",
            base.display()
        )));
    }
    let curves = |schemes: &[(String, Recency)]| -> Result<Vec<(String, Vec<f64>)>> {
        schemes
            .iter()
            .map(|(label, r)| Ok((label.clone(), r.weights(k, None)?)))
            .collect()
    };
    let exponential: Vec<_> = [0.1, 0.3, 0.5, 1.0, 2.0]
        .iter()
        .map(|&lambda| (format!("λ={lambda:?}"), Recency::Exponential { lambda }))
        .collect();
    let softmax: Vec<_> = [0.5, 1.0, 2.0, 5.0]
        .iter()
        .map(|&temperature| {
            (
                format!("τ={temperature:?}"),
                Recency::Softmax { temperature },
            )
        })
        .collect();
    let bars = [
        ("Equal".to_string(), Recency::Equal),
        ("Linear".to_string(), Recency::Linear),
    ];
    let fig = WeightSchemes {
        k,
        exponential: curves(&exponential)?,
        bars: curves(&bars)?,
        softmax: curves(&softmax)?,
    };
    write_figure(base, &fig)
}

struct WeightSchemes {
    k: usize,
    exponential: Vec<(String, Vec<f64>)>,
    bars: Vec<(String, Vec<f64>)>,
    softmax: Vec<(String, Vec<f64>)>,
}

const SUPPORT_INDEX: &str = "Support Pair Index (0=oldest)";

impl Figure for WeightSchemes {
    fn size(&self) -> (u32, u32) {
        // The seed's figsize=(12, 4) at dpi=150.
        (1800, 600)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let panels = root.split_evenly((1, 3));
        self.line_panel(&panels[0], "Exponential Weighting", &self.exponential)?;
        self.bar_panel(&panels[1], "Linear vs Equal Weighting", &self.bars)?;
        self.line_panel(&panels[2], "Softmax Weighting", &self.softmax)
    }
}

/// Tick labels at whole support indices only.
fn index_label(x: &f64) -> String {
    if (x - x.round()).abs() < 1e-9 {
        format!("{}", x.round() as i64)
    } else {
        String::new()
    }
}

impl WeightSchemes {
    fn panel<'a, DB: DrawingBackend>(
        &self,
        area: &'a DrawingArea<DB, Shift>,
        title: &str,
        curves: &[(String, Vec<f64>)],
    ) -> std::result::Result<Chart<'a, DB>, DrawingAreaErrorKind<DB::ErrorType>> {
        let (_, top) = min_max(curves.iter().flat_map(|(_, w)| w.iter().copied()));
        let mut chart = ChartBuilder::on(area)
            .caption(title, font(TITLE_PX))
            .margin(14)
            .x_label_area_size(60)
            .y_label_area_size(80)
            .build_cartesian_2d(-0.5..self.k as f64 - 0.5, 0.0..top * 1.1)?;
        let y_fmt = tick_label(top);
        let x_ticks = self.k.clamp(2, 10);
        draw_mesh(
            &mut chart,
            SUPPORT_INDEX,
            "Weight",
            (&index_label, x_ticks),
            &y_fmt,
        )?;
        Ok(chart)
    }

    fn line_panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        title: &str,
        curves: &[(String, Vec<f64>)],
    ) -> DrawResult<DB> {
        let mut chart = self.panel(area, title, curves)?;
        for (i, (_, w)) in curves.iter().enumerate() {
            let points = w.iter().enumerate().map(|(j, &v)| (j as f64, v));
            draw_line_with_dots(&mut chart, points, color(i), 4)?;
        }
        let entries: Vec<_> = curves
            .iter()
            .enumerate()
            .map(|(i, (label, _))| (label.as_str(), Glyph::Line(color(i))))
            .collect();
        corner_legend(&chart, &entries)
    }

    fn bar_panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        title: &str,
        bars: &[(String, Vec<f64>)],
    ) -> DrawResult<DB> {
        let mut chart = self.panel(area, title, bars)?;
        for (i, (_, w)) in bars.iter().enumerate() {
            // matplotlib's bar(width=0.8, alpha=0.5), later bars over earlier ones.
            let style = color(i).mix(0.5).filled();
            chart.draw_series(w.iter().enumerate().map(|(j, &v)| {
                let x = j as f64;
                Rectangle::new([(x - 0.4, 0.0), (x + 0.4, v)], style)
            }))?;
        }
        let entries: Vec<_> = bars
            .iter()
            .enumerate()
            .map(|(i, (label, _))| (label.as_str(), Glyph::Bar(color(i).mix(0.5))))
            .collect();
        corner_legend(&chart, &entries)
    }
}

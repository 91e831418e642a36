//! The report's figures, each written as `<base>.png` and `<base>.svg`: the seed's three-panel
//! picture of the recency weighting schemes (cell 09-05), validation Acc@1 against meta-iteration
//! (one line per model) and a mean with its 95% interval per row of the comparison matrix.
//!
//! Drawn with `plotters` and no system libraries: PNG text uses the DejaVu Sans font embedded from
//! `assets/fonts/` (licence beside it), and the PNG is encoded in memory with the `png` crate. Both
//! files are rendered completely before either is written, and each is written atomically.

use crate::error::{Error, Result};
use crate::model::Recency;
use crate::util::atomic_write;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// One line of a line chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// The legend text.
    pub label: String,
    /// `(x, y)` points, drawn in the given order.
    pub points: Vec<(f64, f64)>,
}

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

/// The family name the embedded font is registered under.
const FONT: &str = "sans-serif";
/// DejaVu Sans, see `assets/fonts/LICENSE-DejaVu.txt`.
static FONT_BYTES: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");

/// Text sizes in pixels.
const TITLE_PX: u32 = 26;
const DESC_PX: u32 = 20;
const TICK_PX: u32 = 17;
const LEGEND_PX: u32 = 17;

/// matplotlib's default colour cycle ("tab10"), then its lighter companions, so that up to 20
/// lines are told apart.
const PALETTE: [RGBColor; 20] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xbc, 0xbd, 0x22),
    RGBColor(0x17, 0xbe, 0xcf),
    RGBColor(0xae, 0xc7, 0xe8),
    RGBColor(0xff, 0xbb, 0x78),
    RGBColor(0x98, 0xdf, 0x8a),
    RGBColor(0xff, 0x98, 0x96),
    RGBColor(0xc5, 0xb0, 0xd5),
    RGBColor(0xc4, 0x9c, 0x94),
    RGBColor(0xf7, 0xb6, 0xd2),
    RGBColor(0xc7, 0xc7, 0xc7),
    RGBColor(0xdb, 0xdb, 0x8d),
    RGBColor(0x9e, 0xda, 0xe5),
];

fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

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

// ---------------------------------------------------------------------------------------------
// Rendering: one figure, two backends.

type DrawResult<DB> =
    std::result::Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// A figure that can be drawn on any plotters backend.
trait Figure {
    /// Width and height in pixels (the SVG uses the same user units).
    fn size(&self) -> (u32, u32);
    /// Draws the whole figure on `root` (already filled white).
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB>;
}

/// `<base>.<ext>`, keeping any dots already in `base`'s file name.
fn with_ext(base: &Path, ext: &str) -> PathBuf {
    let mut s = base.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

fn write_figure(base: &Path, fig: &impl Figure) -> Result<()> {
    register_font()?;
    let fail = |fmt: &str, e: String| {
        Error::Other(format!("plot {}: drawing the {fmt}: {e}", base.display()))
    };
    let svg = render_svg(fig).map_err(|e| fail("SVG", e))?;
    let png = render_png(fig).map_err(|e| fail("PNG", e))?;
    atomic_write(&with_ext(base, "png"), &png)?;
    atomic_write(&with_ext(base, "svg"), svg.as_bytes())
}

fn register_font() -> Result<()> {
    static OK: OnceLock<bool> = OnceLock::new();
    let ok = *OK.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(Error::Other(
            "the embedded plot font (assets/fonts/DejaVuSans.ttf) is not a valid font".into(),
        ))
    }
}

fn draw_on<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    fig: &impl Figure,
) -> std::result::Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    fig.draw(&root).map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

fn render_svg(fig: &impl Figure) -> std::result::Result<String, String> {
    let mut svg = String::new();
    draw_on(
        SVGBackend::with_string(&mut svg, fig.size()).into_drawing_area(),
        fig,
    )?;
    Ok(svg)
}

fn render_png(fig: &impl Figure) -> std::result::Result<Vec<u8>, String> {
    let (w, h) = fig.size();
    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    draw_on(
        BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area(),
        fig,
    )?;
    encode_png(&rgb, w, h).map_err(|e| e.to_string())
}

fn encode_png(rgb: &[u8], w: u32, h: u32) -> std::result::Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Shared pieces.

type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// `lo..hi` widened by 5% each side, or by `min_pad` when the data is one value.
fn padded(lo: f64, hi: f64, min_pad: f64) -> Range<f64> {
    let pad = if hi > lo {
        (hi - lo) * 0.05
    } else {
        (lo.abs() * 0.05).max(min_pad)
    };
    (lo - pad)..(hi + pad)
}

/// Min and max of some values (never called on an empty iterator).
fn min_max(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    })
}

/// Values so far apart that the padded axis range would overflow cannot be drawn.
fn check_span(axis: &str, (lo, hi): (f64, f64)) -> std::result::Result<(), String> {
    let range = padded(lo, hi, 1.0);
    if (range.end - range.start).is_finite() {
        Ok(())
    } else {
        Err(format!(
            "{axis} values from {lo} to {hi} span too far to plot"
        ))
    }
}

fn font(px: u32) -> TextStyle<'static> {
    TextStyle::from((FONT, px).into_font()).color(&BLACK)
}

/// Axis labels, tick labels and a light grid, as the seed's `ax.grid(True, alpha=0.3)`.
fn draw_mesh<DB: DrawingBackend>(
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
fn draw_line_with_dots<DB: DrawingBackend>(
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
fn tick_label(span: f64) -> impl Fn(&f64) -> String {
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

/// What a legend entry shows: a line with a dot (matplotlib's `marker='o'`) or a bar's colour.
#[derive(Clone, Copy)]
enum Glyph {
    Line(RGBColor),
    Bar(RGBAColor),
}

const LEGEND_ROW_PX: u32 = 28;
const GLYPH_PX: i32 = 24;

/// A legend with its top-left corner at `at` (pixels of `area`), optionally on a white box.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    at: (i32, i32),
    entries: &[(&str, Glyph)],
    boxed: bool,
) -> DrawResult<DB> {
    let text = font(LEGEND_PX);
    let mut widest = 0;
    for (label, _) in entries {
        widest = widest.max(area.estimate_text_size(label, &text)?.0 as i32);
    }
    let row = LEGEND_ROW_PX as i32;
    let (x, y) = at;
    if boxed {
        let corner = (
            x + GLYPH_PX + 24 + widest,
            y + row * entries.len() as i32 + 8,
        );
        area.draw(&Rectangle::new([at, corner], WHITE.mix(0.85).filled()))?;
        area.draw(&Rectangle::new([at, corner], BLACK.mix(0.3)))?;
    }
    for (i, (label, glyph)) in entries.iter().enumerate() {
        let (gx, gy) = (x + 8, y + 4 + row / 2 + row * i as i32);
        match *glyph {
            Glyph::Line(c) => {
                area.draw(&PathElement::new(
                    vec![(gx, gy), (gx + GLYPH_PX, gy)],
                    c.stroke_width(2),
                ))?;
                area.draw(&Circle::new((gx + GLYPH_PX / 2, gy), 4, c.filled()))?;
            }
            Glyph::Bar(c) => {
                area.draw(&Rectangle::new(
                    [(gx, gy - 7), (gx + GLYPH_PX, gy + 7)],
                    c.filled(),
                ))?;
            }
        }
        let style = text.pos(Pos::new(HPos::Left, VPos::Center));
        area.draw(&Text::new(
            label.to_string(),
            (gx + GLYPH_PX + 8, gy),
            style,
        ))?;
    }
    Ok(())
}

/// The legend in the plot's top-left corner, as the seed's `ax.legend()` puts it where the
/// weights (which grow with recency) leave room.
fn corner_legend<DB: DrawingBackend>(
    chart: &Chart<'_, DB>,
    entries: &[(&str, Glyph)],
) -> DrawResult<DB> {
    draw_legend(
        &chart.plotting_area().strip_coord_spec(),
        (10, 10),
        entries,
        true,
    )
}

// ---------------------------------------------------------------------------------------------
// Cell 09-05.

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

// ---------------------------------------------------------------------------------------------
// Validation curves.

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

// ---------------------------------------------------------------------------------------------
// Row intervals.

struct RowIntervals<'a> {
    title: &'a str,
    x_label: &'a str,
    rows: &'a [RowInterval],
}

const ROW_PX: u32 = 44;

/// Decimals that show a span's values to about three significant digits.
fn decimals_for(span: f64) -> usize {
    if span > 0.0 {
        (2.0 - span.log10().floor()).clamp(0.0, 8.0) as usize
    } else {
        3
    }
}

impl RowIntervals<'_> {
    fn numbers(&self, r: &RowInterval, decimals: usize) -> String {
        format!("{:.d$} [{:.d$}, {:.d$}]", r.mean, r.lo, r.hi, d = decimals)
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
        let text = font(LEGEND_PX);
        let (mut label_w, mut number_w) = (0, 0);
        for r in self.rows {
            label_w = label_w.max(root.estimate_text_size(&r.label, &text)?.0);
            let numbers = self.numbers(r, decimals);
            number_w = number_w.max(root.estimate_text_size(&numbers, &text)?.0);
        }
        let (w, _) = self.size();
        let label_w = (label_w + 24).min(w / 3);
        let number_w = (number_w + 24).min(w / 3);

        let x_range = padded(x0, x1, 0.01);
        let mut chart = ChartBuilder::on(root)
            .caption(self.title, font(TITLE_PX))
            .margin(14)
            .x_label_area_size(60)
            .y_label_area_size(label_w)
            .right_y_label_area_size(number_w)
            .build_cartesian_2d(x_range.clone(), -0.5..n as f64 - 0.5)?;
        let x_fmt = tick_label(x1 - x0);
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

        let c = color(0);
        let line = c.stroke_width(2);
        for (i, r) in self.rows.iter().enumerate() {
            let y = (n - 1 - i) as f64;
            let cap = 0.18;
            chart.draw_series([
                PathElement::new(vec![(r.lo, y), (r.hi, y)], line),
                PathElement::new(vec![(r.lo, y - cap), (r.lo, y + cap)], line),
                PathElement::new(vec![(r.hi, y - cap), (r.hi, y + cap)], line),
            ])?;
            chart.draw_series(std::iter::once(Circle::new((r.mean, y), 6, c.filled())))?;

            let (left, py) = chart.backend_coord(&(x_range.start, y));
            let (right, _) = chart.backend_coord(&(x_range.end, y));
            let at = |h| text.pos(Pos::new(h, VPos::Center));
            root.draw(&Text::new(
                r.label.clone(),
                (left - 12, py),
                at(HPos::Right),
            ))?;
            root.draw(&Text::new(
                self.numbers(r, decimals),
                (right + 12, py),
                at(HPos::Left),
            ))?;
        }
        Ok(())
    }
}

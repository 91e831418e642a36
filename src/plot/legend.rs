//! Legends: one row per entry (a line with a dot, or a bar's colour, then the label), beside a
//! plot or boxed in its top-left corner.

use super::axes::Chart;
use super::render::DrawResult;
use super::style::{font, LEGEND_PX};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// What a legend entry shows: a line with a dot (matplotlib's `marker='o'`) or a bar's colour.
#[derive(Clone, Copy)]
pub(super) enum Glyph {
    Line(RGBColor),
    Bar(RGBAColor),
}

/// Height of one legend row in pixels.
pub(super) const LEGEND_ROW_PX: u32 = 28;
/// Width of an entry's glyph in pixels.
pub(super) const GLYPH_PX: i32 = 24;

/// A legend with its top-left corner at `at` (pixels of `area`), optionally on a white box.
pub(super) fn draw_legend<DB: DrawingBackend>(
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
        draw_glyph(area, (gx, gy), *glyph)?;
        let style = text.pos(Pos::new(HPos::Left, VPos::Center));
        area.draw(&Text::new(
            label.to_string(),
            (gx + GLYPH_PX + 8, gy),
            style,
        ))?;
    }
    Ok(())
}

/// One entry's glyph, starting at `(gx, gy)` (its left end, vertically centred).
fn draw_glyph<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    (gx, gy): (i32, i32),
    glyph: Glyph,
) -> DrawResult<DB> {
    match glyph {
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
    Ok(())
}

/// The legend in the plot's top-left corner, as the seed's `ax.legend()` puts it where the
/// weights (which grow with recency) leave room.
pub(super) fn corner_legend<DB: DrawingBackend>(
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

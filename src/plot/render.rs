//! One [`Figure`], two backends: rendered to an SVG string and to an RGB buffer encoded as PNG,
//! both before either file is written, then `<base>.png` and `<base>.svg` written atomically.

use super::style::register_font;
use crate::error::{Error, Result};
use crate::util::atomic_write;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

pub(super) type DrawResult<DB> =
    std::result::Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// A figure that can be drawn on any plotters backend.
pub(super) trait Figure {
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

/// Renders `fig` as SVG and PNG, then writes `<base>.png` and `<base>.svg`.
pub(super) fn write_figure(base: &Path, fig: &impl Figure) -> Result<()> {
    register_font()?;
    let fail = |fmt: &str, e: String| {
        Error::Other(format!("plot {}: drawing the {fmt}: {e}", base.display()))
    };
    let svg = render_svg(fig).map_err(|e| fail("SVG", e))?;
    let png = render_png(fig).map_err(|e| fail("PNG", e))?;
    atomic_write(&with_ext(base, "png"), &png)?;
    atomic_write(&with_ext(base, "svg"), svg.as_bytes())
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

//! The figures' look: the embedded font (registered once), text sizes, and matplotlib's colours.

use crate::error::{Error, Result};
use plotters::prelude::*;
use std::sync::OnceLock;

/// The family name the embedded font is registered under.
const FONT: &str = "sans-serif";
/// DejaVu Sans, see `assets/fonts/LICENSE-DejaVu.txt`.
static FONT_BYTES: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// Text sizes in pixels.
pub(super) const TITLE_PX: u32 = 26;
pub(super) const DESC_PX: u32 = 20;
pub(super) const TICK_PX: u32 = 17;
pub(super) const LEGEND_PX: u32 = 17;

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

/// The colour of line `i`.
pub(super) fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Black text of `px` pixels in the embedded font.
pub(super) fn font(px: u32) -> TextStyle<'static> {
    TextStyle::from((FONT, px).into_font()).color(&BLACK)
}

/// Registers the embedded font with plotters (once per process).
pub(super) fn register_font() -> Result<()> {
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

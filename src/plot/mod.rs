//! The report's figures, each written as `<base>.png` and `<base>.svg`: the seed's three-panel
//! picture of the recency weighting schemes (cell 09-05), validation Acc@1 against meta-iteration
//! (one line per model) and a mean with its 95% interval per row of the comparison matrix.
//!
//! Drawn with `plotters` and no system libraries: PNG text uses the DejaVu Sans font embedded from
//! `assets/fonts/` (licence beside it), and the PNG is encoded in memory with the `png` crate. Both
//! files are rendered completely before either is written, and each is written atomically.
//!
//! - `render`: a `Figure` drawn on both backends and written as PNG and SVG.
//! - `style`: the embedded font, text sizes and colours.
//! - `axes`: axis ranges, ticks, the grid and lines with dots.
//! - `legend`: legends, beside a plot or in its corner.
//! - `weights`, `val_curves`, `intervals`: one figure each.

mod axes;
mod intervals;
mod legend;
mod render;
mod style;
mod val_curves;
mod weights;

pub use intervals::{row_intervals, RowInterval};
pub use val_curves::{val_curves, Series};
pub use weights::weight_schemes;

//! # landermt-plot — figures a person can read without the code
//!
//! Three kinds of chart, each written twice, atomically: `{stem}.csv` for anyone who wants to
//! replot it, and `{stem}.svg` drawn with plotters.
//! - [`LineChart`]: named series of (x, y) points (awareness per layer, loss curves);
//! - [`BarChart`]: grouped bars, one bar per series in each group (forgetting);
//! - [`Heatmap`]: a labelled matrix with its values printed in the cells (transfer).

mod bar;
mod heatmap;
mod line;

pub use bar::BarChart;
pub use heatmap::Heatmap;
pub use line::{LineChart, Series};

use std::path::Path;

/// A CSV field, quoted when it holds a comma or a quote.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

/// Writes `{dir}/{stem}.csv` and `{dir}/{stem}.svg`.
fn write_pair(dir: &Path, stem: &str, csv: &str, svg: &str) -> landermt_model::Result<()> {
    landermt_model::atomic::write_atomic(&dir.join(format!("{stem}.csv")), |w| w.write_all(csv.as_bytes()))?;
    landermt_model::atomic::write_atomic(&dir.join(format!("{stem}.svg")), |w| w.write_all(svg.as_bytes()))
}

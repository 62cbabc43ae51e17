//! Heatmaps: a matrix with labelled rows and columns, each cell coloured by its value and
//! showing it (the transfer matrix: fine-tuned on a row, evaluated on a column).

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Heatmap {
    pub title: String,
    /// What the rows and the columns are.
    pub row_label: String,
    pub column_label: String,
    pub rows: Vec<String>,
    pub columns: Vec<String>,
    /// `values[r][c]`; NaN for a cell without a value.
    pub values: Vec<Vec<f64>>,
    /// Colour by sign: white at zero, blue above, red below, both scaled by the largest
    /// magnitude (for gains over a baseline); otherwise white (lowest) to blue (highest).
    pub diverging: bool,
}

/// The largest figure; one with few rows is as tall as its cells need.
const SIZE: (u32, u32) = (900, 560);
/// Margins around the cells: left (row labels), top (title, column labels), right, bottom.
const MARGIN: (i32, i32, i32, i32) = (190, 110, 30, 30);

impl Heatmap {
    /// `{row},{column},{value}` per cell, under a header naming the axes.
    pub fn csv(&self) -> String {
        let mut out = format!("{},{},value\n", crate::csv_field(&self.row_label), crate::csv_field(&self.column_label));
        for (r, row) in self.rows.iter().zip(&self.values) {
            for (c, v) in self.columns.iter().zip(row) {
                out.push_str(&format!("{},{},{v}\n", crate::csv_field(r), crate::csv_field(c)));
            }
        }
        out
    }

    pub fn svg(&self) -> String {
        let mut text = String::new();
        {
            let (_, height) = self.layout();
            let root = SVGBackend::with_string(&mut text, (SIZE.0, height as u32)).into_drawing_area();
            self.draw(&root).expect("drawing into a string cannot fail");
            root.present().expect("drawing into a string cannot fail");
        }
        text
    }

    /// Writes `{dir}/{stem}.csv` and `{dir}/{stem}.svg`.
    pub fn write(&self, dir: &Path, stem: &str) -> landermt_model::Result<()> {
        crate::write_pair(dir, stem, &self.csv(), &self.svg())
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, plotters::coord::Shift>) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        root.fill(&WHITE)?;
        let font = |size: i32, h: HPos, v: VPos| ("sans-serif", size).into_font().color(&BLACK).pos(Pos::new(h, v));
        root.draw(&Text::new(self.title.clone(), (SIZE.0 as i32 / 2, 16), font(22, HPos::Center, VPos::Top)))?;
        let (left, top, _, _) = MARGIN;
        let nc = self.columns.len().max(1) as i32;
        let (cell, _) = self.layout();
        // A small matrix sits in the middle rather than against the row labels.
        let left = left.max((SIZE.0 as i32 - cell * nc) / 2);
        root.draw(&Text::new(self.column_label.clone(), (left + cell * nc / 2, 52), font(15, HPos::Center, VPos::Top)))?;
        root.draw(&Text::new(self.row_label.clone(), (left - 10, top - 24), font(15, HPos::Right, VPos::Bottom)))?;
        let finite = self.values.iter().flatten().copied().filter(|v| v.is_finite());
        let (lo, hi) = finite.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
        for (c, name) in self.columns.iter().enumerate() {
            root.draw(&Text::new(name.clone(), (left + cell * c as i32 + cell / 2, top - 8), font(14, HPos::Center, VPos::Bottom)))?;
        }
        for (r, name) in self.rows.iter().enumerate() {
            let y = top + cell * r as i32;
            root.draw(&Text::new(name.clone(), (left - 10, y + cell / 2), font(14, HPos::Right, VPos::Center)))?;
            for (c, &v) in self.values.get(r).into_iter().flatten().enumerate() {
                let x = left + cell * c as i32;
                let (colour, t) = self.colour(v, lo, hi);
                root.draw(&Rectangle::new([(x, y), (x + cell, y + cell)], colour.filled()))?;
                root.draw(&Rectangle::new([(x, y), (x + cell, y + cell)], WHITE.stroke_width(2)))?;
                let label = match (v.is_finite(), self.diverging) {
                    (false, _) => "–".into(),
                    (true, true) => format!("{v:+.2}"),
                    (true, false) => format!("{v:.2}"),
                };
                let ink = if t > 0.55 && v.is_finite() { WHITE } else { BLACK };
                root.draw(&Text::new(label, (x + cell / 2, y + cell / 2), ("sans-serif", 16).into_font().color(&ink).pos(Pos::new(HPos::Center, VPos::Center))))?;
            }
        }
        Ok(())
    }
}

impl Heatmap {
    /// A cell's colour and how dark it is (0 to 1; dark cells get white ink); grey for no
    /// value.
    fn colour(&self, v: f64, lo: f64, hi: f64) -> (RGBColor, f64) {
        if !v.is_finite() {
            return (RGBColor(220, 220, 220), 0.0);
        }
        if self.diverging {
            let reach = lo.abs().max(hi.abs());
            let t = if reach > 0.0 { v.abs() / reach } else { 0.0 };
            let colour = if v >= 0.0 { RGBColor(lerp(255, 8, t), lerp(255, 48, t), lerp(255, 107, t)) } else { RGBColor(lerp(255, 103, t), lerp(255, 0, t), lerp(255, 13, t)) };
            return (colour, t);
        }
        // White (the lowest value) to dark blue (the highest).
        let t = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
        (RGBColor(lerp(247, 8, t), lerp(251, 48, t), lerp(255, 107, t)), t)
    }

    /// The side of a cell and the figure's height.
    fn layout(&self) -> (i32, i32) {
        let (left, top, right, bottom) = MARGIN;
        let (nr, nc) = (self.rows.len().max(1) as i32, self.columns.len().max(1) as i32);
        let cell = ((SIZE.0 as i32 - left - right) / nc).min((SIZE.1 as i32 - top - bottom) / nr).min(140);
        (cell, top + cell * nr + bottom)
    }
}

fn lerp(a: u8, b: u8, t: f64) -> u8 {
    (a as f64 + (b as f64 - a as f64) * t.clamp(0.0, 1.0)).round() as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> Heatmap {
        Heatmap {
            title: "Transfer, BLEU".into(),
            row_label: "fine-tuned on".into(),
            column_label: "evaluated on".into(),
            rows: vec!["none".into(), "en-fr".into()],
            columns: vec!["en-fr".into(), "en-de".into()],
            values: vec![vec![10.0, 5.5], vec![20.25, f64::NAN]],
            diverging: false,
        }
    }

    #[test]
    fn csv_has_a_row_per_cell() {
        assert_eq!(map().csv(), "fine-tuned on,evaluated on,value\nnone,en-fr,10\nnone,en-de,5.5\nen-fr,en-fr,20.25\nen-fr,en-de,NaN\n");
    }

    #[test]
    fn svg_labels_rows_columns_and_cells() {
        let svg = map().svg();
        for text in ["Transfer, BLEU", "fine-tuned on", "evaluated on", "none", "en-fr", "en-de", "10.00", "5.50", "20.25", "–"] {
            assert!(svg.contains(&format!(">\n{text}\n</text>")), "`{text}` is not drawn");
        }
        // Two rows of 140-pixel cells: as tall as they need, not the largest size.
        assert!(svg.contains("height=\"420\""), "{}", &svg[..200]);
        // The highest value is darkest, the lowest white.
        assert!(svg.contains("#08306B") && svg.contains("#F7FBFF"), "colour scale");
    }

    #[test]
    fn a_diverging_map_is_coloured_by_sign() {
        let map = Heatmap { values: vec![vec![2.0, 0.0], vec![-1.0, -2.0]], diverging: true, ..map() };
        let svg = map.svg();
        // +2 darkest blue, -2 darkest red, -1 halfway to red.
        for colour in ["#08306B", "#67000D", "#B38086"] {
            assert!(svg.contains(colour), "{colour} missing");
        }
        assert!(!svg.contains("#F7FBFF"), "the sequential scale's white");
        for text in ["+2.00", "-1.00", "+0.00"] {
            assert!(svg.contains(&format!(">\n{text}\n</text>")), "`{text}` is not drawn with its sign");
        }
    }
}

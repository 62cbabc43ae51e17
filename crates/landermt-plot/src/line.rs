//! Line charts: named series of (x, y) points.

use std::path::Path;

use plotters::prelude::*;

/// One named line.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// A line chart: title, axis labels, series, and optional notes under the title.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// Vertical markers (x positions) with a legend entry, e.g. the selected layers.
    pub markers: Option<(String, Vec<f64>)>,
}

impl LineChart {
    pub fn new(title: impl Into<String>, x_label: impl Into<String>, y_label: impl Into<String>) -> Self {
        Self { title: title.into(), x_label: x_label.into(), y_label: y_label.into(), ..Self::default() }
    }

    pub fn series(mut self, name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        self.series.push(Series { name: name.into(), points });
        self
    }

    pub fn markers(mut self, name: impl Into<String>, xs: Vec<f64>) -> Self {
        self.markers = Some((name.into(), xs));
        self
    }

    /// The CSV text: a header, then `series,x,y` per point (names with commas are quoted).
    pub fn csv(&self) -> String {
        let mut out = String::from("series,x,y\n");
        for s in &self.series {
            let name = crate::csv_field(&s.name);
            for (x, y) in &s.points {
                out.push_str(&format!("{name},{x},{y}\n"));
            }
        }
        out
    }

    /// The SVG text.
    pub fn svg(&self) -> String {
        let mut text = String::new();
        {
            let root = SVGBackend::with_string(&mut text, (900, 560)).into_drawing_area();
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
        let points = self.series.iter().flat_map(|s| s.points.iter().copied()).filter(|(x, y)| x.is_finite() && y.is_finite());
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for (x, y) in points {
            (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
        }
        if x0 > x1 {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        // Some air around the data, and a non-empty range when every value is equal.
        let pad = |lo: f64, hi: f64| {
            let d = if hi > lo { (hi - lo) * 0.05 } else { lo.abs().max(1.0) * 0.05 };
            (lo - d)..(hi + d)
        };
        let mut chart = ChartBuilder::on(root).caption(&self.title, ("sans-serif", 22)).margin(16).x_label_area_size(48).y_label_area_size(80).build_cartesian_2d(pad(x0, x1), pad(y0, y1))?;
        // Whole numbers (layers, steps) without a trailing ".0".
        let x_fmt = |x: &f64| if x.fract() == 0.0 { format!("{x:.0}") } else { format!("{x}") };
        chart.configure_mesh().x_desc(&self.x_label).y_desc(&self.y_label).x_label_formatter(&x_fmt).label_style(("sans-serif", 14)).light_line_style(WHITE).draw()?;
        if let Some((name, xs)) = &self.markers {
            let (lo, hi) = (pad(y0, y1).start, pad(y0, y1).end);
            // Broad translucent bands: visible behind the lines without hiding them.
            let style = RGBColor(255, 170, 60).mix(0.35).stroke_width(10);
            for (i, &x) in xs.iter().enumerate() {
                let drawn = chart.draw_series(LineSeries::new([(x, lo), (x, hi)], style))?;
                if i == 0 {
                    drawn.label(name.as_str()).legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], style));
                }
            }
        }
        for (i, s) in self.series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let style = color.stroke_width(2);
            chart.draw_series(LineSeries::new(s.points.iter().copied(), style).point_size(3))?.label(s.name.as_str()).legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], style));
        }
        chart.configure_series_labels().background_style(WHITE.mix(0.7)).border_style(BLACK).label_font(("sans-serif", 14)).draw()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart() -> LineChart {
        LineChart::new("Mean awareness, ffn_act", "layer", "S per sentence")
            .series("en", vec![(0.0, 1.0), (1.0, 2.5)])
            .series("zh, simplified", vec![(0.0, 0.5), (1.0, 0.25)])
            .markers("selected layers", vec![1.0])
    }

    #[test]
    fn csv_has_a_row_per_point_and_quotes_names_with_commas() {
        assert_eq!(chart().csv(), "series,x,y\nen,0,1\nen,1,2.5\n\"zh, simplified\",0,0.5\n\"zh, simplified\",1,0.25\n");
    }

    #[test]
    fn svg_carries_the_title_axis_labels_and_legend() {
        let svg = chart().svg();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
        for text in ["Mean awareness, ffn_act", "layer", "S per sentence", "en", "zh, simplified", "selected layers"] {
            assert!(svg.contains(&format!(">\n{text}\n</text>")), "`{text}` is not drawn");
        }
    }

    #[test]
    fn write_puts_both_files_in_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        chart().write(&dir.path().join("figures"), "awareness").unwrap();
        assert!(dir.path().join("figures/awareness.csv").exists());
        assert!(dir.path().join("figures/awareness.svg").exists());
    }
}

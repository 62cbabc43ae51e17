//! Grouped bar charts: for each group (a language, a direction), one bar per series (a method).

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Groups along the x axis, and per series one value for each group (NaN: no bar).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BarChart {
    pub title: String,
    pub y_label: String,
    pub groups: Vec<String>,
    pub series: Vec<(String, Vec<f64>)>,
}

impl BarChart {
    pub fn new(title: impl Into<String>, y_label: impl Into<String>, groups: Vec<String>) -> Self {
        Self { title: title.into(), y_label: y_label.into(), groups, series: Vec::new() }
    }

    /// A series with one value per group, in the order of the groups.
    pub fn series(mut self, name: impl Into<String>, values: Vec<f64>) -> Self {
        assert_eq!(values.len(), self.groups.len(), "one value per group");
        self.series.push((name.into(), values));
        self
    }

    /// `group,series,value` per bar.
    pub fn csv(&self) -> String {
        let mut out = String::from("group,series,value\n");
        for (name, values) in &self.series {
            for (g, v) in self.groups.iter().zip(values) {
                out.push_str(&format!("{},{},{v}\n", crate::csv_field(g), crate::csv_field(name)));
            }
        }
        out
    }

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
        let values = self.series.iter().flat_map(|(_, v)| v.iter().copied()).filter(|v| v.is_finite());
        let (lo, hi) = values.fold((0f64, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let hi = if hi > lo { hi + (hi - lo) * 0.12 } else { 1.0 };
        let n = self.groups.len().max(1) as f64;
        let mut chart = ChartBuilder::on(root).caption(&self.title, ("sans-serif", 22)).margin(16).x_label_area_size(40).y_label_area_size(80).build_cartesian_2d(0f64..n, lo..hi)?;
        // Group names are drawn under the groups' centres below, not at plotters' tick positions.
        chart.configure_mesh().y_desc(&self.y_label).disable_x_mesh().x_labels(0).label_style(("sans-serif", 14)).light_line_style(WHITE).draw()?;
        let m = self.series.len().max(1) as f64;
        let width = 0.8 / m;
        for (j, (name, values)) in self.series.iter().enumerate() {
            let color = Palette99::pick(j).to_rgba();
            let bars = values.iter().enumerate().filter(|(_, v)| v.is_finite()).map(|(g, &v)| {
                let x0 = g as f64 + 0.1 + j as f64 * width;
                Rectangle::new([(x0, 0.0), (x0 + width * 0.92, v)], color.filled())
            });
            chart.draw_series(bars)?.label(name.as_str()).legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
            // The value above each bar: the differences that matter are often small.
            let labels = values.iter().enumerate().filter(|(_, v)| v.is_finite()).map(|(g, &v)| {
                let x = g as f64 + 0.1 + (j as f64 + 0.46) * width;
                Text::new(format!("{v:.2}"), (x, v.max(0.0)), ("sans-serif", 11).into_font().color(&BLACK).pos(Pos::new(HPos::Center, VPos::Bottom)))
            });
            chart.draw_series(labels)?;
        }
        let style = ("sans-serif", 15).into_font().color(&BLACK).pos(Pos::new(HPos::Center, VPos::Top));
        for (g, name) in self.groups.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(g as f64 + 0.5, lo));
            root.draw(&Text::new(name.clone(), (px, py + 8), style.clone()))?;
        }
        chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).label_font(("sans-serif", 14)).draw()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart() -> BarChart {
        BarChart::new("LM loss on held-out text", "nats", vec!["de".into(), "zh".into()]).series("none", vec![2.5, 3.25]).series("landermt, r=8", vec![2.75, f64::NAN])
    }

    #[test]
    fn csv_has_a_row_per_bar() {
        assert_eq!(chart().csv(), "group,series,value\nde,none,2.5\nzh,none,3.25\nde,\"landermt, r=8\",2.75\nzh,\"landermt, r=8\",NaN\n");
    }

    #[test]
    fn svg_names_the_groups_and_series_and_prints_the_values() {
        let svg = chart().svg();
        for text in ["LM loss on held-out text", "nats", "de", "zh", "none", "landermt, r=8", "3.25", "2.75"] {
            assert!(svg.contains(&format!(">\n{text}\n</text>")), "`{text}` is not drawn");
        }
        assert!(!svg.contains(">\nNaN\n</text>"));
    }
}

//! The SVG drawing of one line-chart panel, by hand (no plotting dependency): frame, title, a
//! "nice" y scale with ticks, the x labels and one polyline per series. [`super::chart`] decides
//! what goes into the panels and where they sit.

use std::fmt::Write as _;

pub const PANEL_W: f64 = 440.0;
pub const PANEL_H: f64 = 250.0;
const MARGIN_L: f64 = 64.0;
const MARGIN_R: f64 = 16.0;
const MARGIN_T: f64 = 30.0;
const MARGIN_B: f64 = 40.0;

/// One line of a panel: its name (the tooltip), colour, dash pattern and a value per x label.
pub struct Series {
    pub name: String,
    pub color: &'static str,
    pub dash: &'static str,
    pub values: Vec<Option<f64>>,
}

/// One chart: a title, the x axis (title and labels) and its lines.
pub struct Panel {
    pub title: String,
    pub x_title: &'static str,
    pub x_labels: Vec<String>,
    pub series: Vec<Series>,
}

/// A "nice" axis maximum and tick step covering `max`.
fn nice_scale(max: f64) -> (f64, f64) {
    if max.is_nan() || max <= 0.0 {
        return (1.0, 0.2);
    }
    let raw = max / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| s * 5.0 >= max)
        .unwrap_or(10.0 * magnitude);
    ((max / step).ceil() * step, step)
}

fn fmt_tick(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 1000.0 {
        format!("{:.1}k", v / 1000.0)
    } else if v >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// `text` safe inside an SVG element.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Where a panel's plot area lies and how values map into it.
struct Frame {
    left: f64,
    top: f64,
    plot_w: f64,
    plot_h: f64,
    y_max: f64,
    points: usize,
}

impl Frame {
    fn x_at(&self, i: usize) -> f64 {
        if self.points <= 1 {
            self.left + self.plot_w / 2.0
        } else {
            self.left + 20.0 + (self.plot_w - 40.0) * i as f64 / (self.points - 1) as f64
        }
    }

    fn y_at(&self, value: f64) -> f64 {
        self.top + self.plot_h - value / self.y_max * self.plot_h
    }
}

/// Draws `panel` with its top-left corner at (`x0`, `y0`).
pub fn draw_panel(svg: &mut String, panel: &Panel, x0: f64, y0: f64) {
    let max = panel
        .series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .fold(0.0f64, |a, &b| a.max(b));
    let (y_max, step) = nice_scale(max);
    let frame = Frame {
        left: x0 + MARGIN_L,
        top: y0 + MARGIN_T,
        plot_w: PANEL_W - MARGIN_L - MARGIN_R,
        plot_h: PANEL_H - MARGIN_T - MARGIN_B,
        y_max,
        points: panel.x_labels.len().max(1),
    };
    let _ = writeln!(
        svg,
        r##"<rect x="{x0}" y="{y0}" width="{PANEL_W}" height="{PANEL_H}" fill="#fff" stroke="#dadce0"/>"##
    );
    let _ = writeln!(
        svg,
        r##"<text x="{}" y="{}" font-size="14" font-weight="bold" text-anchor="middle">{}</text>"##,
        x0 + PANEL_W / 2.0,
        y0 + 20.0,
        escape(&panel.title)
    );
    draw_y_ticks(svg, &frame, step);
    draw_x_axis(svg, &frame, panel);
    for series in &panel.series {
        draw_series(svg, &frame, series);
    }
}

fn draw_y_ticks(svg: &mut String, f: &Frame, step: f64) {
    let mut tick = 0.0;
    while tick <= f.y_max + step / 2.0 {
        let y = f.y_at(tick);
        let _ = writeln!(
            svg,
            r##"<line x1="{}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end" fill="#555">{}</text>"##,
            f.left,
            f.left + f.plot_w,
            f.left - 6.0,
            y + 4.0,
            fmt_tick(tick)
        );
        tick += step;
    }
}

fn draw_x_axis(svg: &mut String, f: &Frame, panel: &Panel) {
    let bottom = f.top + f.plot_h;
    for (i, label) in panel.x_labels.iter().enumerate() {
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle" fill="#555">{}</text>"##,
            f.x_at(i),
            bottom + 16.0,
            escape(label)
        );
    }
    let _ = writeln!(
        svg,
        r##"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle" fill="#555">{}</text>"##,
        f.left + f.plot_w / 2.0,
        bottom + 32.0,
        panel.x_title
    );
    let (left, top) = (f.left, f.top);
    let _ = writeln!(
        svg,
        r##"<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom:.1}" stroke="#999"/><line x1="{left}" y1="{bottom:.1}" x2="{:.1}" y2="{bottom:.1}" stroke="#999"/>"##,
        left + f.plot_w,
    );
}

fn draw_series(svg: &mut String, f: &Frame, series: &Series) {
    let points: Vec<(f64, f64)> = series
        .values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|v| (f.x_at(i), f.y_at(v))))
        .collect();
    if points.is_empty() {
        return;
    }
    let path: Vec<String> = points
        .iter()
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect();
    let _ = writeln!(
        svg,
        r##"<polyline points="{}" fill="none" stroke="{}" stroke-width="2.2" stroke-dasharray="{}"><title>{}</title></polyline>"##,
        path.join(" "),
        series.color,
        series.dash,
        escape(&series.name)
    );
    for (x, y) in points {
        let _ = writeln!(
            svg,
            r##"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{}"/>"##,
            series.color
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_scales_cover_the_maximum() {
        for max in [0.7, 3.2, 9.9, 10.0, 42.0, 1234.0, 56_789.0] {
            let (top, step) = nice_scale(max);
            assert!(top >= max && top <= max * 2.5 + step, "{max}: {top} {step}");
            assert!(top / step <= 10.0);
        }
        assert_eq!(nice_scale(0.0), (1.0, 0.2));
    }

    #[test]
    fn labels_are_escaped() {
        assert_eq!(escape("a<b>&c"), "a&lt;b&gt;&amp;c");
    }
}

//! `--plot out.png`: the per-second timeline as two charts, throughput above and p50/p99 latency
//! below. Text is drawn with DejaVu Sans compiled into the binary (plotters' `ab_glyph`), so
//! no fontconfig and no system fonts are needed.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{anyhow, Context};
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::live::{Second, Units};

const SIZE: (u32, u32) = (1200, 800);
const FONT: &str = "sans-serif";

/// Draws `timeline` into a PNG at `path`; `title` names the run.
pub fn draw(path: &Path, title: &str, units: Units, timeline: &[Second]) -> anyhow::Result<()> {
    register_fonts()?;
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let root = root.titled(title, (FONT, 24)).map_err(|e| anyhow!("{e}"))?;
    let (top, bottom) = root.split_vertically(SIZE.1 / 2 - 20);
    let x_max = timeline.last().map_or(1.0, |s| s.t_s).max(1.0);

    let rates = [
        (
            format!("{}/s", units.completed),
            BLUE,
            rate(timeline, |s| s.completed),
        ),
        (
            format!("{}/s", units.sent),
            GREEN,
            rate(timeline, |s| s.sent),
        ),
        ("errors/s".to_owned(), RED, rate(timeline, |s| s.errors)),
    ];
    let y_max = peak(rates.iter().flat_map(|(_, _, points)| points));
    chart(&top, "per second", x_max, y_max, &rates).map_err(|e| anyhow!("{e}"))?;

    let latencies = [
        (
            format!("{} p50 (ms)", units.latency),
            BLUE,
            latency(timeline, |s| s.p50_ms),
        ),
        (
            format!("{} p99 (ms)", units.latency),
            RED,
            latency(timeline, |s| s.p99_ms),
        ),
    ];
    let y_max = peak(latencies.iter().flat_map(|(_, _, points)| points));
    chart(&bottom, "latency, ms", x_max, y_max, &latencies).map_err(|e| anyhow!("{e}"))?;
    root.present()
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("writing {}", path.display()))
}

type Points = Vec<(f64, f64)>;

fn rate(timeline: &[Second], count: impl Fn(&Second) -> u64) -> Points {
    series(timeline, |s| count(s) as f64 / s.seconds.max(1e-9))
}

fn series(timeline: &[Second], value: impl Fn(&Second) -> f64) -> Points {
    timeline.iter().map(|s| (s.t_s, value(s))).collect()
}

/// Latency of the seconds in which something completed (an empty second has none, not 0).
fn latency(timeline: &[Second], value: impl Fn(&Second) -> f64) -> Points {
    let busy: Vec<Second> = timeline
        .iter()
        .filter(|s| s.completed > 0)
        .cloned()
        .collect();
    series(&busy, value)
}

fn peak<'a>(points: impl Iterator<Item = &'a (f64, f64)>) -> f64 {
    (points.map(|&(_, y)| y).fold(0.0, f64::max) * 1.1).max(1.0)
}

fn chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    y_label: &str,
    x_max: f64,
    y_max: f64,
    lines: &[(String, RGBColor, Points)],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let mut chart = ChartBuilder::on(area)
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc("seconds since start")
        .y_desc(y_label)
        .label_style((FONT, 14))
        .draw()?;
    for (name, color, points) in lines {
        let color = *color;
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
}

/// Registers the embedded font once per process.
fn register_fonts() -> anyhow::Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED
        .get_or_init(|| register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok());
    ok.then_some(())
        .ok_or_else(|| anyhow!("the embedded DejaVu Sans font did not load"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn second(t_s: f64, completed: u64, p99_ms: f64) -> Second {
        Second {
            t_s,
            seconds: 1.0,
            sent: completed,
            stored: completed,
            completed,
            errors: 0,
            completed_per_second: completed as f64,
            p50_ms: p99_ms / 2.0,
            p90_ms: p99_ms,
            p99_ms,
            max_ms: p99_ms,
        }
    }

    #[test]
    fn draws_a_png_with_text() {
        let dir = std::env::temp_dir().join(format!("chat-load-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("plot.png");
        let timeline: Vec<Second> = (1..=5u32)
            .map(|i| second(f64::from(i), 1000 * u64::from(i), 2.0 * f64::from(i)))
            .collect();
        let units = Units {
            sent: "sent",
            completed: "delivered",
            latency: "send->deliver",
        };
        draw(&path, "direct: test", units, &timeline).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        // An empty run still draws its axes.
        draw(&path, "idle", units, &[]).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

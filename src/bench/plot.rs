//! `tradehook bench --plot`: the latency distribution of a run as an SVG file.
//!
//! Latency by percentile, with the percentiles spaced in "nines" (0 %, 90 %, 99 %, 99.9 % …
//! equally far apart), the usual way to show a tail: the median and the slowest thousandth are
//! both visible on one chart.

use std::path::Path;

use plotters::prelude::*;

use super::BenchReport;

/// Width and height of the chart, in pixels.
const SIZE: (u32, u32) = (900, 540);

/// Writes `report`'s latency by percentile to `path` as SVG, titled `title`.
pub fn write_svg(report: &BenchReport, title: &str, path: &Path) -> anyhow::Result<()> {
    let mut points: Vec<(f64, f64)> = Vec::with_capacity(report.latency_by_percentile.len());
    for &(percentile, micros) in &report.latency_by_percentile {
        let last = points.last().map_or(0.0, |p: &(f64, f64)| p.0);
        let x = if percentile >= 100.0 { last + 0.5 } else { nines(percentile) };
        points.push((x, micros as f64 / 1000.0));
    }
    if points.is_empty() {
        anyhow::bail!("no request was answered ok, so there is no latency to plot");
    }
    let x_max = points.iter().map(|p| p.0).fold(1.0, f64::max);
    let y_max = points.iter().map(|p| p.1).fold(0.001, f64::max) * 1.05;
    let failed = |e: &dyn std::fmt::Display| anyhow::anyhow!("cannot draw the plot {}: {e}", path.display());
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| failed(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(|e| failed(&e))?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .x_labels(x_max as usize + 1)
        .x_label_formatter(&|x| percentile_label(*x))
        .draw()
        .map_err(|e| failed(&e))?;
    chart.draw_series(LineSeries::new(points, &BLUE)).map_err(|e| failed(&e))?;
    root.present().map_err(|e| failed(&e))?;
    Ok(())
}

/// A percentile below 100 as "nines": 0 % → 0, 90 % → 1, 99 % → 2, 99.9 % → 3. (100 %, the
/// slowest request, is drawn half a nine past the point before it.)
fn nines(percentile: f64) -> f64 {
    -(1.0 - percentile / 100.0).log10()
}

/// The axis label at `x` nines: "0%", "90%", "99%", "99.9%", …
fn percentile_label(x: f64) -> String {
    let percentile = 100.0 * (1.0 - 10f64.powf(-x));
    let decimals = (x.round() as usize).saturating_sub(2);
    format!("{percentile:.decimals$}%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_spaced_in_nines_and_labelled_as_percent() {
        assert!(nines(0.0).abs() < 1e-12);
        assert!((nines(90.0) - 1.0).abs() < 1e-9);
        assert!((nines(99.9) - 3.0).abs() < 1e-9);
        assert_eq!(percentile_label(0.0), "0%");
        assert_eq!(percentile_label(1.0), "90%");
        assert_eq!(percentile_label(2.0), "99%");
        assert_eq!(percentile_label(4.0), "99.99%");
    }
}

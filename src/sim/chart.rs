//! The staffing chart: service level and ASA against the number of agents, one line per
//! queue/channel, with each target as a dashed line. SVG, so it needs no fonts installed.

use std::path::Path;

use plotters::prelude::*;

use super::report::SweepReport;
use super::SimError;

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Writes the chart of `sweep` to `path` (SVG).
pub fn staffing_chart(sweep: &SweepReport, title: &str, path: &Path) -> Result<(), SimError> {
    draw(sweep, title, path).map_err(|e| SimError::Chart(e.to_string()))
}

fn draw(sweep: &SweepReport, title: &str, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let (Some(first), Some(last)) = (sweep.runs.first(), sweep.runs.last()) else {
        return Err("no runs to chart".into());
    };
    let (lo, hi) = (first.agents, last.agents.max(first.agents + 1));
    let root = SVGBackend::new(path, (960, 760)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 22))?;
    let (top, bottom) = root.split_vertically(380);

    let series = |q: &str, c: &str, f: &dyn Fn(&crate::engine::SlaFigures) -> Option<f64>| {
        sweep
            .runs
            .iter()
            .filter_map(|r| {
                let row = r.rows.iter().find(|x| x.queue == q && x.channel == c)?;
                f(&row.figures).map(|v| (r.agents, v))
            })
            .collect::<Vec<(u32, f64)>>()
    };

    let mut sl = ChartBuilder::on(&top)
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .caption("Service level vs agents", ("sans-serif", 16))
        .build_cartesian_2d(lo..hi, 0.0..100.0)?;
    sl.configure_mesh()
        .x_desc("agents")
        .y_desc("service level %")
        .draw()?;
    for (i, m) in sweep.minimum.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let pts: Vec<(u32, f64)> = series(&m.queue, &m.channel, &|f| f.service_level)
            .into_iter()
            .map(|(x, y)| (x, y * 100.0))
            .collect();
        sl.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
            .label(format!("{}/{}", m.queue, m.channel))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2)));
        sl.draw_series(pts.iter().map(|p| Circle::new(*p, 3, color.filled())))?;
        let target = m.target * 100.0;
        // Dashed target line: short segments along the x range.
        let dashes = (lo..hi).map(move |x| {
            PathElement::new(
                [(x, target), (x + 1, target)],
                color.mix(0.8).stroke_width(2),
            )
        });
        sl.draw_series(dashes.step_by(2))?
            .label(format!("target {}/{} {:.0}%", m.queue, m.channel, target))
            .legend(move |(x, y)| {
                PathElement::new([(x, y), (x + 6, y)], color.mix(0.8).stroke_width(2))
            });
    }
    sl.configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;

    // Log scale: chat seconds and email hours share one chart. Values below the floor (an
    // instant answer) are drawn at the floor.
    const ASA_FLOOR: f64 = 0.1;
    let max_asa = sweep
        .minimum
        .iter()
        .flat_map(|m| series(&m.queue, &m.channel, &|f| f.asa_seconds))
        .map(|(_, v)| v)
        .fold(1.0_f64, f64::max);
    let mut asa = ChartBuilder::on(&bottom)
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .caption("Average speed of answer vs agents", ("sans-serif", 16))
        .build_cartesian_2d(lo..hi, (ASA_FLOOR..max_asa * 1.5).log_scale())?;
    asa.configure_mesh()
        .x_desc("agents")
        .y_desc("ASA seconds (log)")
        .draw()?;
    for (i, m) in sweep.minimum.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let pts: Vec<(u32, f64)> = series(&m.queue, &m.channel, &|f| f.asa_seconds)
            .into_iter()
            .map(|(x, y)| (x, y.max(ASA_FLOOR)))
            .collect();
        asa.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
            .label(format!("{}/{}", m.queue, m.channel))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2)));
        asa.draw_series(pts.iter().map(|p| Circle::new(*p, 3, color.filled())))?;
    }
    asa.configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

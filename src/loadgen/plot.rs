//! `loadgen plot`: latency (p50, p99) against offered load, as SVG, from `live --csv` rows.

use std::path::PathBuf;

use plotters::prelude::*;

use super::BenchError;

#[derive(Debug, clap::Args)]
pub struct PlotArgs {
    /// CSV written by `loadgen live --csv`.
    #[arg(long)]
    pub csv: PathBuf,
    /// SVG to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Title line (machine, broker, date).
    #[arg(long, default_value = "omniroute: latency vs. offered load")]
    pub title: String,
}

/// One row: offered input records/s, p50 and p99 in ms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Point {
    pub(crate) load: f64,
    pub(crate) p50: f64,
    pub(crate) p99: f64,
}

/// Parses the CSV rows (header first); rows that do not parse are skipped.
pub(crate) fn parse(text: &str) -> Vec<Point> {
    let mut points: Vec<Point> = text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<f64> = l
                .split(',')
                .map(|x| x.trim().parse().ok())
                .collect::<Option<_>>()?;
            // input_records_per_s, …, p50_ms (3), …, p99_ms (5)
            (f.len() >= 6).then(|| Point {
                load: f[1],
                p50: f[3],
                p99: f[5],
            })
        })
        .collect();
    points.sort_by(|a, b| a.load.total_cmp(&b.load));
    points
}

pub(super) fn run(a: &PlotArgs) -> Result<(), BenchError> {
    let text = std::fs::read_to_string(&a.csv).map_err(|source| BenchError::Io {
        path: a.csv.clone(),
        source,
    })?;
    let points = parse(&text);
    if points.is_empty() {
        return Err(BenchError::Plot(format!("no rows in {}", a.csv.display())));
    }
    draw(&points, &a.out, &a.title).map_err(|e| BenchError::Plot(e.to_string()))?;
    println!("plot: {} points -> {}", points.len(), a.out.display());
    Ok(())
}

fn draw(
    points: &[Point],
    out: &std::path::Path,
    title: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(out, (800, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let max_x = points.iter().map(|p| p.load).fold(0.0, f64::max) * 1.05;
    let max_y = points.iter().map(|p| p.p99).fold(0.0, f64::max).max(1.0) * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max_x.max(1.0), 0.0..max_y)?;
    chart
        .configure_mesh()
        .x_desc("offered input load (records/s)")
        .y_desc("created -> offer received (ms)")
        .draw()?;
    chart
        .draw_series(LineSeries::new(
            points.iter().map(|p| (p.load, p.p50)),
            &BLUE,
        ))?
        .label("p50")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    chart.draw_series(
        points
            .iter()
            .map(|p| Circle::new((p.load, p.p50), 3, BLUE.filled())),
    )?;
    chart
        .draw_series(LineSeries::new(
            points.iter().map(|p| (p.load, p.p99)),
            &RED,
        ))?
        .label("p99")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    chart.draw_series(
        points
            .iter()
            .map(|p| Circle::new((p.load, p.p99), 3, RED.filled())),
    )?;
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rows_sorted_by_load_and_draws_them() {
        let csv = "contacts_per_s,input_records_per_s,measured,p50_ms,p90_ms,p99_ms,max_ms\n\
                   500,2000,100,3.0,4.0,9.5,12\n\
                   100,400,50,2.0,2.5,5.0,6\n\
                   bad,row\n";
        let pts = parse(csv);
        assert_eq!(
            pts,
            vec![
                Point {
                    load: 400.0,
                    p50: 2.0,
                    p99: 5.0
                },
                Point {
                    load: 2000.0,
                    p50: 3.0,
                    p99: 9.5
                },
            ]
        );
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("p.svg");
        draw(&pts, &out, "t").unwrap();
        let svg = std::fs::read_to_string(&out).unwrap();
        assert!(svg.contains("<svg") && svg.contains("p99"));
    }
}

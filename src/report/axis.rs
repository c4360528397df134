//! A final held-out metric against a numeric axis of the grid — the chart of a learning-rate
//! sweep (Xiong et al. 2020, Figure 2's shape): one line per setting of the other axes, the
//! mean over seeds with min–max whiskers, and a cross at the top edge where runs did not
//! finish (diverged: a non-finite loss stops a run unless `training.on_divergence` rolls it
//! back). Drawn when the grid has an axis (besides the seed) with three or more numeric values.

use super::charts::{colour, drawable, font, legend, padded, png_and_svg, within, SIZE};

use super::runs::{mean_std, ReportError, Run};
use plotters::prelude::*;
use std::fmt::Write as _;
use std::path::Path;

/// One setting of the other axes, across the values of the swept axis.
pub struct Series {
    pub label: String,
    /// `(axis value, finished values, runs that did not finish)` in axis order.
    pub points: Vec<(f64, Vec<f64>, usize)>,
}

fn parts(variant: &str) -> Vec<(&str, &str)> {
    variant
        .split(',')
        .filter_map(|p| p.split_once('='))
        .collect()
}

/// The first axis of the grid with three or more distinct numeric values (not the seed).
pub fn numeric_axis(runs: &[Run]) -> Option<String> {
    let first = runs.first()?;
    parts(&first.variant)
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| *k != "seed")
        .find(|k| {
            let mut values: Vec<f64> = Vec::new();
            for r in runs {
                match parts(&r.variant).into_iter().find(|(key, _)| key == k) {
                    Some((_, v)) => match v.parse::<f64>() {
                        Ok(x) if !values.contains(&x) => values.push(x),
                        Ok(_) => {}
                        Err(_) => return false,
                    },
                    None => return false,
                }
            }
            values.len() >= 3
        })
        .map(str::to_string)
}

/// The runs grouped by the other axes (seed aside), each a line over `axis`.
pub fn series(runs: &[Run], axis: &str, key: &str) -> Vec<Series> {
    let mut out: Vec<Series> = Vec::new();
    for r in runs {
        let p = parts(&r.variant);
        let Some(x) = p
            .iter()
            .find(|(k, _)| *k == axis)
            .and_then(|(_, v)| v.parse::<f64>().ok())
        else {
            continue;
        };
        let label: Vec<String> = p
            .iter()
            .filter(|(k, _)| *k != axis && *k != "seed")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let label = if label.is_empty() {
            "base".to_string()
        } else {
            label.join(",")
        };
        let value = r.last("eval", key).filter(|v| v.is_finite() && r.finished);
        let s = match out.iter_mut().position(|s| s.label == label) {
            Some(i) => &mut out[i],
            None => {
                out.push(Series {
                    label,
                    points: Vec::new(),
                });
                out.last_mut().expect("just pushed")
            }
        };
        let i = match s.points.iter().position(|(px, ..)| *px == x) {
            Some(i) => i,
            None => {
                s.points.push((x, Vec::new(), 0));
                s.points.len() - 1
            }
        };
        match value {
            Some(v) => s.points[i].1.push(v),
            None => s.points[i].2 += 1,
        }
    }
    for s in &mut out {
        s.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

/// The Markdown table of `series`: mean ± std and how many runs did not finish, per value.
pub fn table(md: &mut String, axis: &str, key: &str, series: &[Series]) {
    let xs: Vec<f64> = {
        let mut v: Vec<f64> = series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .collect();
        v.sort_by(f64::total_cmp);
        v.dedup();
        v
    };
    let head: Vec<String> = xs.iter().map(|x| format!("{axis} = {x}")).collect();
    let _ = writeln!(md, "Final held-out `{key}` (mean ± std over the runs that finished; ✗ n: runs that did not finish — diverged, or still running):\n");
    let _ = writeln!(md, "| setting | {} |", head.join(" | "));
    let _ = writeln!(md, "|---|{}", "---|".repeat(xs.len()));
    for s in series {
        let cells: Vec<String> = xs
            .iter()
            .map(|x| match s.points.iter().find(|p| p.0 == *x) {
                None => "".into(),
                Some((_, vals, failed)) => {
                    let m = if vals.is_empty() {
                        "–".to_string()
                    } else {
                        let (m, sd) = mean_std(vals);
                        format!("{m:.3} ± {sd:.3}")
                    };
                    if *failed > 0 {
                        format!("{m} ✗ {failed}")
                    } else {
                        m
                    }
                }
            })
            .collect();
        let _ = writeln!(md, "| {} | {} |", s.label, cells.join(" | "));
    }
    md.push('\n');
}

/// Draws `series` as `<stem>.png` and `<stem>.svg`, the axis on a log scale when it spans a
/// factor of ten or more.
pub fn chart(
    stem: &Path,
    title: &str,
    axis: &str,
    y_desc: &str,
    series: &[Series],
) -> Result<(), ReportError> {
    png_and_svg!(stem, |area| draw(area, title, axis, y_desc, series))
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    axis: &str,
    y_desc: &str,
    series: &[Series],
) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (plot, side) = root.split_horizontally(SIZE.0 as i32 * 72 / 100);
    let points = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, vals, _) in points {
        x0 = x0.min(*x);
        x1 = x1.max(*x);
        for v in vals {
            y0 = y0.min(*v);
            y1 = y1.max(*v);
        }
    }
    let (x0, x1) = drawable(x0, x1);
    let (y0, y1) = drawable(y0, y1);
    let log = x0 > 0.0 && x1 / x0 >= 10.0;
    let t = |x: f64| if log { x.log10() } else { x };
    let ys = padded(y0, y1, 0.08, 1e-6);
    // The crosses of failed runs sit one padding above the highest value.
    let top = ys.end;
    let (xs, ys) = (
        padded(t(x0), t(x1), 0.06, 1e-9),
        ys.start..(top + (top - y1)),
    );
    let at = |x: f64, y: f64| (within(t(x), &xs), within(y, &ys));
    let mut chart = ChartBuilder::on(&plot)
        .caption(title, ("sans-serif", 22).into_font())
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(70)
        .build_cartesian_2d(xs.clone(), ys.clone())
        .map_err(|e| e.to_string())?;
    let fmt_x = |v: &f64| {
        if log {
            format!("{:.1e}", 10f64.powf(*v))
        } else {
            format!("{v}")
        }
    };
    chart
        .configure_mesh()
        .x_desc(if log {
            format!("{axis} (log scale)")
        } else {
            axis.to_string()
        })
        .y_desc(y_desc)
        .x_label_formatter(&fmt_x)
        .light_line_style(RGBColor(242, 242, 242))
        .label_style(("sans-serif", 14).into_font())
        .axis_desc_style(("sans-serif", 16).into_font())
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, s) in series.iter().enumerate() {
        let c = colour(i);
        let means: Vec<(f64, f64)> = s
            .points
            .iter()
            .filter(|p| !p.1.is_empty())
            .map(|(x, v, _)| at(*x, mean_std(v).0))
            .collect();
        chart
            .draw_series(LineSeries::new(means.iter().copied(), c.stroke_width(2)))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(means.iter().map(|&p| Circle::new(p, 4, c.filled())))
            .map_err(|e| e.to_string())?;
        for (x, v, failed) in &s.points {
            if let (Some(lo), Some(hi)) = (
                v.iter().copied().reduce(f64::min),
                v.iter().copied().reduce(f64::max),
            ) {
                chart
                    .draw_series(LineSeries::new([at(*x, lo), at(*x, hi)], c.stroke_width(1)))
                    .map_err(|e| e.to_string())?;
            }
            if *failed > 0 {
                chart
                    .draw_series([Cross::new(at(*x, top), 7, c.stroke_width(3))])
                    .map_err(|e| e.to_string())?;
            }
        }
    }
    let entries: Vec<(String, usize)> = series
        .iter()
        .enumerate()
        .map(|(i, s)| (s.label.clone(), i))
        .collect();
    legend(&side, &entries)?;
    root.present().map_err(|e| e.to_string())
}

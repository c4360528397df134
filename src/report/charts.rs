//! Charts with plotters, as PNG and SVG. The font ships with the project (DejaVu Sans, in
//! assets/fonts) so charts render on machines without system fonts. Legends sit in a panel
//! beside the plot, never over the data; a group keeps its colour across every chart.

use super::runs::ReportError;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};
use std::path::Path;
use std::sync::Once;

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

pub(crate) fn font() {
    REGISTER.call_once(|| {
        // Registering a static, valid TTF cannot fail; if it did, text would be missing, not
        // the chart.
        let _ = register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// Labels like `objectives=mlm+sop` share their axis name: say it once, as the legend's title.
fn legend_title(entries: &[(String, usize)]) -> (String, Vec<(String, usize)>) {
    let prefix = entries
        .first()
        .and_then(|(l, _)| l.split_once('='))
        .map(|(k, _)| format!("{k}="));
    match prefix {
        Some(p)
            if !p.contains(',')
                && entries
                    .iter()
                    .all(|(l, _)| l.starts_with(&p) && !l[p.len()..].contains('=')) =>
        {
            (
                format!("{}:", p.trim_end_matches('=')),
                entries
                    .iter()
                    .map(|(l, c)| (l[p.len()..].to_string(), *c))
                    .collect(),
            )
        }
        _ => ("variant:".into(), entries.to_vec()),
    }
}

/// Splits a label into lines of at most `width` characters, after `+` or `,` where possible.
fn wrap(label: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    let mut piece = String::new();
    for ch in label.chars().chain(std::iter::once('\0')) {
        if ch != '\0' {
            piece.push(ch);
        }
        if ch == '+' || ch == ',' || ch == '\0' {
            let last = lines.last_mut().expect("never empty");
            if !last.is_empty() && last.chars().count() + piece.chars().count() > width {
                lines.push(String::new());
            }
            lines.last_mut().expect("never empty").push_str(&piece);
            piece.clear();
        }
    }
    lines
}

/// Twenty distinguishable colours: Tableau 10, then ten darker ones for grids with more groups
/// (a recipe axis easily has a dozen); group `i` always gets `PALETTE[i % 20]`.
pub const PALETTE: [RGBColor; 20] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(0, 0, 128),
    RGBColor(128, 0, 0),
    RGBColor(0, 100, 0),
    RGBColor(0, 0, 0),
    RGBColor(204, 85, 0),
    RGBColor(0, 128, 128),
    RGBColor(128, 0, 128),
    RGBColor(128, 128, 0),
    RGBColor(72, 61, 139),
    RGBColor(218, 165, 32),
];

pub fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// One group's curves on a line chart.
pub struct Line {
    pub label: String,
    pub colour: usize,
    /// Drawn solid.
    pub main: Vec<(u64, f64)>,
    /// Drawn faint underneath (the raw curve behind a smoothed one, or single seeds).
    pub faint: Vec<Vec<(u64, f64)>>,
}

pub struct MeanStd {
    pub label: String,
    pub colour: usize,
    pub mean: f64,
    pub std: f64,
    pub n: usize,
}

pub(crate) const SIZE: (u32, u32) = (1000, 520);

/// `<stem>.<ext>`: the extension appended, never put in place of what follows a dot already
/// in the stem, as `Path::with_extension` would (a variant such as `lr=0.0001` made
/// `…lr_0.png` of every chart of its group, one over the other, and left the Markdown's links
/// to `…lr_0.0001_….png` pointing at nothing).
pub(crate) fn file(stem: &Path, ext: &str) -> std::path::PathBuf {
    let mut name = stem.as_os_str().to_owned();
    name.push(".");
    name.push(ext);
    name.into()
}

/// Runs one drawing function on a PNG and on an SVG backend: `<stem>.png`, `<stem>.svg`.
macro_rules! png_and_svg {
    ($stem:expr, |$area:ident| $draw:expr) => {{
        font();
        let png = $crate::report::charts::file($stem, "png");
        let svg = $crate::report::charts::file($stem, "svg");
        let chart_err = |p: &Path| {
            let path = p.to_path_buf();
            move |reason: String| ReportError::Chart {
                path: path.clone(),
                reason,
            }
        };
        {
            let $area = BitMapBackend::new(&png, SIZE).into_drawing_area();
            $draw.map_err(chart_err(&png))?;
        }
        let $area = SVGBackend::new(&svg, SIZE).into_drawing_area();
        $draw.map_err(chart_err(&svg))
    }};
}

pub(crate) use png_and_svg;

/// A line chart of `lines`, written as `<stem>.png` and `<stem>.svg`.
pub fn line_chart(
    stem: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    lines: &[Line],
) -> Result<(), ReportError> {
    png_and_svg!(stem, |area| draw_lines(
        area, title, x_label, y_label, lines
    ))
}

/// Mean ± std per variant as points with whiskers, written as `<stem>.png` and `<stem>.svg`.
pub fn mean_std_chart(
    stem: &Path,
    title: &str,
    y_label: &str,
    points: &[MeanStd],
) -> Result<(), ReportError> {
    png_and_svg!(stem, |area| draw_mean_std(area, title, y_label, points))
}

pub(crate) fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    entries: &[(String, usize)],
) -> Result<(), String> {
    let (title, entries) = legend_title(entries);
    area.draw(&Text::new(title, (8, 30), ("sans-serif", 15).into_font()))
        .map_err(|e| e.to_string())?;
    let mut y = 60;
    for (label, c) in &entries {
        area.draw(&PathElement::new(
            vec![(8, y), (34, y)],
            colour(*c).stroke_width(3),
        ))
        .map_err(|e| e.to_string())?;
        let lines = wrap(label, 30);
        for (k, line) in lines.iter().enumerate() {
            area.draw(&Text::new(
                line.clone(),
                (42, y - 8 + 17 * k as i32),
                ("sans-serif", 15).into_font(),
            ))
            .map_err(|e| e.to_string())?;
        }
        y += 26 + 17 * (lines.len() as i32 - 1);
    }
    Ok(())
}

/// `(lo, hi)` as values plotters can put on an axis: its search for tick marks never ends on
/// an infinite or a zero width (`tests/fuzz_report.rs` found a report that hung on logged
/// values of ±1e308), so the values are held within ±f64::MAX / 4, where no width built from
/// them overflows, and an empty or NaN range becomes 0 to 1.
pub(crate) fn drawable(lo: f64, hi: f64) -> (f64, f64) {
    const LIMIT: f64 = f64::MAX / 4.0;
    if lo <= hi {
        (lo.clamp(-LIMIT, LIMIT), hi.clamp(-LIMIT, LIMIT))
    } else {
        (0.0, 1.0)
    }
}

/// [`drawable`]'s range widened on each side by `share` of its width, by `least` at the
/// least, and by more than float rounding at its magnitude (so that a constant series at
/// 1e300 still has a width).
pub(crate) fn padded(lo: f64, hi: f64, share: f64, least: f64) -> std::ops::Range<f64> {
    let (lo, hi) = drawable(lo, hi);
    let pad = ((hi - lo) * share)
        .max(least)
        .max(lo.abs().max(hi.abs()) * 1e-9);
    (lo - pad)..(hi + pad)
}

/// `v` held inside the chart's range `r`: plotters maps a value far outside its range to a
/// pixel past `i32`'s reach and overflows (a hand-edited metrics.jsonl with 1e308 in it), so a
/// value off the chart is drawn at its edge. NaN stays NaN (plotters draws it at the origin
/// without overflowing; the statistics never give one for finite logs).
pub(crate) fn within(v: f64, r: &std::ops::Range<f64>) -> f64 {
    if v.is_nan() {
        v
    } else {
        v.clamp(r.start, r.end)
    }
}

fn draw_lines<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    lines: &[Line],
) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (plot, side) = root.split_horizontally(SIZE.0 as i32 * 72 / 100);
    let all = lines
        .iter()
        .flat_map(|l| l.main.iter().chain(l.faint.iter().flatten()));
    let (mut x1, mut y0, mut y1) = (1u64, f64::INFINITY, f64::NEG_INFINITY);
    for &(s, v) in all {
        if v.is_finite() {
            x1 = x1.max(s);
            y0 = y0.min(v);
            y1 = y1.max(v);
        }
    }
    let ys = padded(y0, y1, 0.05, 1e-9);
    let at = |&(s, v): &(u64, f64)| (s, within(v, &ys));
    let mut chart = ChartBuilder::on(&plot)
        .caption(title, ("sans-serif", 22).into_font())
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(70)
        .build_cartesian_2d(0u64..x1, ys.clone())
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .light_line_style(RGBColor(242, 242, 242))
        .label_style(("sans-serif", 14).into_font())
        .axis_desc_style(("sans-serif", 16).into_font())
        .draw()
        .map_err(|e| e.to_string())?;
    for l in lines {
        // Faint curves first, so the solid one of the same colour is drawn over them.
        for f in &l.faint {
            chart
                .draw_series(LineSeries::new(
                    f.iter().map(at),
                    colour(l.colour).mix(0.25).stroke_width(1),
                ))
                .map_err(|e| e.to_string())?;
        }
        chart
            .draw_series(LineSeries::new(
                l.main.iter().map(at),
                colour(l.colour).stroke_width(2),
            ))
            .map_err(|e| e.to_string())?;
    }
    legend(
        &side,
        &lines
            .iter()
            .map(|l| (l.label.clone(), l.colour))
            .collect::<Vec<_>>(),
    )?;
    root.present().map_err(|e| e.to_string())
}

fn draw_mean_std<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    y_label: &str,
    points: &[MeanStd],
) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (plot, side) = root.split_horizontally(SIZE.0 as i32 * 72 / 100);
    // Mean ± std as points and whiskers on an axis zoomed to the data: bars from zero would
    // hide differences of hundredths, and truncated bars would mislead.
    let hi = points
        .iter()
        .map(|b| b.mean + b.std)
        .fold(f64::MIN, f64::max);
    let lo = points
        .iter()
        .map(|b| b.mean - b.std)
        .fold(f64::MAX, f64::min);
    let (lo, hi) = drawable(lo, hi);
    let pad = ((hi - lo) * 0.15).max(hi.abs().max(1.0) * 1e-3);
    let ys = (lo - pad)..(hi + pad);
    let mut chart = ChartBuilder::on(&plot)
        .caption(title, ("sans-serif", 22).into_font())
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..points.len() as f64, ys.clone())
        .map_err(|e| e.to_string())?;
    let ns: Vec<String> = points.iter().map(|b| b.n.to_string()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(RGBColor(242, 242, 242))
        .x_labels(0)
        .y_desc(y_label)
        .x_desc(format!(
            "variant (see legend): mean ± 1 sample std over seeds (n = {})",
            ns.join(", ")
        ))
        .label_style(("sans-serif", 14).into_font())
        .axis_desc_style(("sans-serif", 15).into_font())
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, b) in points.iter().enumerate() {
        let x = i as f64 + 0.5;
        let c = colour(b.colour).stroke_width(3);
        let (low, mean, high) = [b.mean - b.std, b.mean, b.mean + b.std]
            .map(|v| within(v, &ys))
            .into();
        if b.n > 1 {
            chart
                .draw_series([
                    PathElement::new(vec![(x, low), (x, high)], c),
                    PathElement::new(vec![(x - 0.12, low), (x + 0.12, low)], c),
                    PathElement::new(vec![(x - 0.12, high), (x + 0.12, high)], c),
                ])
                .map_err(|e| e.to_string())?;
        }
        chart
            .draw_series(std::iter::once(Circle::new(
                (x, mean),
                7,
                colour(b.colour).filled(),
            )))
            .map_err(|e| e.to_string())?;
    }
    legend(
        &side,
        &points
            .iter()
            .map(|b| (b.label.clone(), b.colour))
            .collect::<Vec<_>>(),
    )?;
    root.present().map_err(|e| e.to_string())
}

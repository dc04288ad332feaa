//! Δ with its confidence interval per suite: a forest plot.

use plotters::prelude::*;

use super::chart::{
    centred, drawn, left, range, right, shorten, signed, text_style, text_width, tick, title_style,
    FAIL, GRID, INK, MARGIN, NEUTRAL, PASS, WIDTH, ZERO,
};

/// One row of the forest plot. All numbers are in points (percentage points: 100 × the
/// difference of mean scores), oriented so that a drop (the fine-tune worse) is negative.
#[derive(Debug, Clone, PartialEq)]
pub struct DeltaRow {
    /// the suite (or `fine-tune: suite`)
    pub label: String,
    pub delta: f64,
    /// lower end of the interval (a non-finite bound draws the point alone)
    pub lower: f64,
    pub upper: f64,
    /// `Some(true)` red: fails the gate; `Some(false)` green: passes; `None` blue: not gated
    pub fails: Option<bool>,
}

/// Options of [`delta_ci_svg_with`].
#[derive(Debug, Clone, PartialEq)]
pub struct DeltaChartOptions {
    pub title: String,
    /// the interval's confidence, for the axis title (e.g. 0.95)
    pub confidence: f64,
    /// a non-inferiority margin δ in points: a dashed line at −δ (a suite passes when its lower
    /// bound lies right of it)
    pub margin: Option<f64>,
}

impl Default for DeltaChartOptions {
    fn default() -> Self {
        DeltaChartOptions {
            title: "Fine-tune − base per suite".into(),
            confidence: 0.95,
            margin: None,
        }
    }
}

const ROW: u32 = 34;
const TOP: u32 = 70;
const BOTTOM: u32 = 100;
const LABEL_CHARS: usize = 40;
const RIGHT_AREA: u32 = 150;

/// [`delta_ci_svg_with`] with the default title, 95% intervals and no margin line.
pub fn delta_ci_svg(rows: &[DeltaRow]) -> String {
    delta_ci_svg_with(rows, &DeltaChartOptions::default())
}

/// A forest plot: one row per entry of `rows` (first on top) with the point estimate, its
/// interval as a bar with end caps, the value printed on the right, a solid line at Δ = 0 and,
/// with `opts.margin`, a dashed line at −margin. Deterministic SVG text.
pub fn delta_ci_svg_with(rows: &[DeltaRow], opts: &DeltaChartOptions) -> String {
    let n = rows.len().max(1);
    let height = TOP + ROW * n as u32 + BOTTOM;
    let longest = rows
        .iter()
        .map(|r| shorten(&r.label, LABEL_CHARS).chars().count())
        .max()
        .unwrap_or(0);
    let label_area = text_width(longest, 14).clamp(60, 300) + 16;
    let (lo, hi) = range(
        rows.iter()
            .flat_map(|r| [r.delta, r.lower, r.upper])
            .chain([0.0])
            .chain(opts.margin.map(|m| -m)),
        2.0,
    );
    let y_of = |i: usize| (n - 1 - i) as f64;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        drawn(root.fill(&WHITE));
        let mut chart = drawn(
            ChartBuilder::on(&root)
                .caption(&opts.title, title_style())
                .margin(14)
                .margin_bottom(44)
                .x_label_area_size(BOTTOM - 44)
                .y_label_area_size(label_area)
                .right_y_label_area_size(RIGHT_AREA)
                .build_cartesian_2d(lo..hi, -0.5..(n as f64 - 0.5)),
        );
        drawn(
            chart
                .configure_mesh()
                .disable_y_mesh()
                .y_labels(0)
                .x_labels(8)
                .bold_line_style(GRID)
                .light_line_style(TRANSPARENT)
                .axis_style(INK)
                .x_label_formatter(&|v| tick(*v))
                .label_style(text_style(13))
                .x_desc(format!(
                    "Δ in points (negative = worse), {}% interval",
                    super::percent(opts.confidence)
                ))
                .axis_desc_style(text_style(14))
                .draw(),
        );
        let (y_bottom, y_top) = (-0.5, n as f64 - 0.5);
        drawn(chart.draw_series(std::iter::once(PathElement::new(
            vec![(0.0, y_bottom), (0.0, y_top)],
            ZERO.stroke_width(1),
        ))));
        if let Some(m) = opts.margin.filter(|m| m.is_finite()) {
            drawn(chart.draw_series(DashedLineSeries::new(
                [(-m, y_bottom), (-m, y_top)],
                6,
                4,
                MARGIN.stroke_width(2),
            )));
        }
        for (i, r) in rows.iter().enumerate() {
            let y = y_of(i);
            let colour = match r.fails {
                Some(true) => FAIL,
                Some(false) => PASS,
                None => NEUTRAL,
            };
            if r.lower.is_finite() && r.upper.is_finite() {
                drawn(chart.draw_series([
                    PathElement::new(vec![(r.lower, y), (r.upper, y)], colour.stroke_width(2)),
                    PathElement::new(
                        vec![(r.lower, y - 0.18), (r.lower, y + 0.18)],
                        colour.stroke_width(2),
                    ),
                    PathElement::new(
                        vec![(r.upper, y - 0.18), (r.upper, y + 0.18)],
                        colour.stroke_width(2),
                    ),
                ]));
            }
            if r.delta.is_finite() {
                drawn(chart.draw_series(std::iter::once(Circle::new(
                    (r.delta, y),
                    5,
                    colour.filled(),
                ))));
            }
            let (x0, py) = chart.backend_coord(&(lo, y));
            let (x1, _) = chart.backend_coord(&(hi, y));
            drawn(root.draw(&Text::new(
                shorten(&r.label, LABEL_CHARS),
                (x0 - 10, py),
                right(14),
            )));
            let value = if r.lower.is_finite() && r.upper.is_finite() {
                format!(
                    "{} [{}, {}]",
                    signed(r.delta),
                    signed(r.lower),
                    signed(r.upper)
                )
            } else {
                signed(r.delta)
            };
            drawn(root.draw(&Text::new(value, (x1 + 10, py), left(13))));
        }
        if rows.is_empty() {
            let (x, y) = chart.backend_coord(&((lo + hi) / 2.0, 0.0));
            drawn(root.draw(&Text::new("no suites to show", (x, y), centred(14))));
        }
        // legend, under the axis title
        let mut x = 20;
        let y = height as i32 - 18;
        let mut item = |colour: RGBColor, dashed: bool, text: &str| {
            if dashed {
                for k in 0..3 {
                    drawn(root.draw(&PathElement::new(
                        vec![(x + 7 * k, y), (x + 7 * k + 4, y)],
                        colour.stroke_width(2),
                    )));
                }
            } else {
                drawn(root.draw(&Circle::new((x + 9, y), 5, colour.filled())));
            }
            drawn(root.draw(&Text::new(text.to_string(), (x + 24, y), left(13))));
            x += 24 + text_width(text.chars().count(), 13) as i32 + 18;
        };
        let gated = rows.iter().any(|r| r.fails.is_some());
        if gated {
            item(PASS, false, "passes the gate");
            item(FAIL, false, "fails the gate");
        }
        if rows.iter().any(|r| r.fails.is_none()) {
            item(
                NEUTRAL,
                false,
                if gated {
                    "not gated"
                } else {
                    "Δ with its interval"
                },
            );
        }
        if let Some(m) = opts.margin {
            item(MARGIN, true, &format!("margin −{}", tick(m)));
        }
    }
    svg
}

#[cfg(test)]
mod tests {
    use super::super::chart::testing::*;
    use super::*;

    fn row(label: &str, delta: f64, lower: f64, upper: f64, fails: Option<bool>) -> DeltaRow {
        DeltaRow {
            label: label.into(),
            delta,
            lower,
            upper,
            fails,
        }
    }

    #[test]
    fn a_zero_delta_lies_on_the_zero_line() {
        let svg = delta_ci_svg(&[
            row("same", 0.0, -1.0, 1.0, None),
            row("worse", -5.0, -8.0, -2.0, None),
        ]);
        let doc = parse(&svg);
        let zero = polylines(&doc, &hex(ZERO));
        assert_eq!(zero.len(), 1, "{svg}");
        let zx = zero[0][0].0;
        assert_eq!(zero[0][1].0, zx, "the zero line is vertical");
        let pts = circles(&doc, &hex(NEUTRAL));
        // two rows + one legend marker
        assert_eq!(pts.len(), 3, "{svg}");
        assert_eq!(pts[0].0, zx, "Δ = 0 sits on the zero line");
        assert!(pts[1].0 < zx, "a drop is left of zero");
        assert!(pts[0].1 < pts[1].1, "the first row is on top");
    }

    #[test]
    fn intervals_and_margin_land_at_their_values() {
        let svg = delta_ci_svg_with(
            &[row("a", -3.0, -6.0, 0.0, Some(true))],
            &DeltaChartOptions {
                margin: Some(2.0),
                ..Default::default()
            },
        );
        let doc = parse(&svg);
        let zx = polylines(&doc, &hex(ZERO))[0][0].0;
        let bars = polylines(&doc, &hex(FAIL));
        // the bar and its two caps
        assert_eq!(bars.len(), 3, "{svg}");
        let (l, u) = (bars[0][0].0, bars[0][1].0);
        assert_eq!(u, zx, "an upper bound of 0 ends on the zero line");
        let p = circles(&doc, &hex(FAIL))[0].0;
        assert!(
            (p - (l + u) / 2.0).abs() <= 1.0,
            "Δ = −3 is midway in [−6, 0]"
        );
        // the margin line at −2: between the point (−3) and zero
        let m: Vec<f64> = polylines(&doc, &hex(MARGIN))
            .iter()
            .flatten()
            .map(|p| p.0)
            .filter(|x| *x > 30.0)
            .collect();
        assert!(!m.is_empty());
        let mx = m[0];
        assert!(p < mx && mx < zx, "{p} < {mx} < {zx}");
        assert!((mx - (zx - (zx - l) / 3.0)).abs() <= 1.5);
        let t = texts(&doc);
        assert!(t.iter().any(|s| s == "-3.0 [-6.0, +0.0]"), "{t:?}");
        assert!(t.iter().any(|s| s == "fails the gate"));
    }

    #[test]
    fn text_is_escaped_and_output_is_deterministic() {
        let rows = [row("<b>&\"x\"", 1.0, f64::NAN, f64::NAN, Some(false))];
        let svg = delta_ci_svg(&rows);
        assert_eq!(svg, delta_ci_svg(&rows));
        let doc = parse(&svg);
        assert!(texts(&doc).iter().any(|s| s == "<b>&\"x\""));
        // an empty chart is still a chart
        let empty = delta_ci_svg(&[]);
        let doc = parse(&empty);
        assert!(texts(&doc).iter().any(|s| s == "no suites to show"));
    }
}

//! New-task gain against forgetting, one point per fine-tune.

use plotters::prelude::*;

use super::chart::{centred, drawn, left, palette, range, shorten, xy_chart, WIDTH, ZERO};

/// One fine-tune. All numbers are in points (percentage points).
#[derive(Debug, Clone, PartialEq)]
pub struct GainPoint {
    pub label: String,
    /// mean drop on the suites other than the new task (positive = forgot)
    pub forgetting: f64,
    /// interval of `forgetting`, drawn as a horizontal bar when both ends are given
    pub forgetting_lower: Option<f64>,
    pub forgetting_upper: Option<f64>,
    /// gain on the new task (positive = learned)
    pub gain: f64,
}

const HEIGHT: u32 = 560;

/// A scatter plot: forgetting on x (right = forgot more), new-task gain on y (up = learned
/// more), dashed lines at zero on both axes, each point labelled and, when its interval is given,
/// with a horizontal bar. Up and to the left is better. Deterministic SVG text.
pub fn gain_vs_forgetting_svg(points: &[GainPoint]) -> String {
    let (xlo, xhi) = range(
        points
            .iter()
            .flat_map(|p| [Some(p.forgetting), p.forgetting_lower, p.forgetting_upper])
            .flatten()
            .chain([0.0]),
        2.0,
    );
    let (ylo, yhi) = range(points.iter().map(|p| p.gain).chain([0.0]), 2.0);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        drawn(root.fill(&WHITE));
        let mut chart = xy_chart(
            &root,
            "New-task gain vs forgetting",
            (xlo, xhi),
            (ylo, yhi),
            "forgetting: mean drop on the other suites (points)",
            "new-task gain (points)",
        );
        drawn(chart.draw_series(DashedLineSeries::new(
            [(0.0, ylo), (0.0, yhi)],
            6,
            4,
            ZERO.stroke_width(1),
        )));
        drawn(chart.draw_series(DashedLineSeries::new(
            [(xlo, 0.0), (xhi, 0.0)],
            6,
            4,
            ZERO.stroke_width(1),
        )));
        let (cx, cy) = chart.backend_coord(&(xlo, yhi));
        drawn(root.draw(&Text::new(
            "↖ better: gain without forgetting",
            (cx + 8, cy + 12),
            left(12),
        )));
        for (i, p) in points.iter().enumerate() {
            let colour = palette(i);
            if !(p.forgetting.is_finite() && p.gain.is_finite()) {
                continue;
            }
            if let (Some(l), Some(u)) = (p.forgetting_lower, p.forgetting_upper) {
                if l.is_finite() && u.is_finite() {
                    drawn(chart.draw_series([PathElement::new(
                        vec![(l, p.gain), (u, p.gain)],
                        colour.stroke_width(2),
                    )]));
                }
            }
            drawn(chart.draw_series(std::iter::once(Circle::new(
                (p.forgetting, p.gain),
                6,
                colour.filled(),
            ))));
            let (px, py) = chart.backend_coord(&(p.forgetting, p.gain));
            drawn(root.draw(&Text::new(
                shorten(&p.label, 40),
                (px + 9, py - 12),
                left(13),
            )));
        }
        if points.is_empty() {
            let (x, y) = chart.backend_coord(&((xlo + xhi) / 2.0, (ylo + yhi) / 2.0));
            drawn(root.draw(&Text::new("no fine-tunes to show", (x, y), centred(14))));
        }
    }
    svg
}

#[cfg(test)]
mod tests {
    use super::super::chart::testing::*;
    use super::*;

    fn point(label: &str, forgetting: f64, gain: f64) -> GainPoint {
        GainPoint {
            label: label.into(),
            forgetting,
            forgetting_lower: Some(forgetting - 1.0),
            forgetting_upper: Some(forgetting + 1.0),
            gain,
        }
    }

    #[test]
    fn points_land_where_their_values_say() {
        let pts = [point("lora", 0.0, 10.0), point("full & fast", 6.0, 20.0)];
        let svg = gain_vs_forgetting_svg(&pts);
        assert_eq!(svg, gain_vs_forgetting_svg(&pts));
        let doc = parse(&svg);
        let zero = polylines(&doc, &hex(ZERO));
        // the vertical zero line's x, from its dash segments
        let vx = zero
            .iter()
            .find(|l| l[0].0 == l[1].0)
            .map(|l| l[0].0)
            .unwrap();
        let a = circles(&doc, &hex(palette(0)))[0];
        let b = circles(&doc, &hex(palette(1)))[0];
        assert_eq!(a.0, vx, "no forgetting sits on the vertical zero line");
        assert!(b.0 > a.0, "more forgetting is further right");
        assert!(b.1 < a.1, "more gain is higher up (smaller SVG y)");
        let bar = &polylines(&doc, &hex(palette(1)))[0];
        assert!(bar[0].0 < b.0 && b.0 < bar[1].0 && bar[0].1 == b.1);
        let t = texts(&doc);
        assert!(t.iter().any(|s| s == "full & fast"), "{t:?}");
        assert!(t.iter().any(|s| s == "new-task gain (points)"));
    }

    #[test]
    fn empty_and_non_finite_inputs_still_draw() {
        let empty = gain_vs_forgetting_svg(&[]);
        let doc = parse(&empty);
        assert!(texts(&doc).iter().any(|s| s == "no fine-tunes to show"));
        let svg = gain_vs_forgetting_svg(&[point("nan", f64::NAN, 1.0)]);
        parse(&svg);
    }
}

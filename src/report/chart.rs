//! What the charts share: size, fonts, colours, axis ranges and tick labels.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

pub(crate) const WIDTH: u32 = 800;
pub(crate) const FONT: &str = "sans-serif";

pub(crate) const INK: RGBColor = RGBColor(0x24, 0x29, 0x2f);
pub(crate) const GRID: RGBColor = RGBColor(0xd0, 0xd7, 0xde);
pub(crate) const ZERO: RGBColor = RGBColor(0x57, 0x60, 0x6a);
pub(crate) const MARGIN: RGBColor = RGBColor(0xbf, 0x87, 0x00);
pub(crate) const PASS: RGBColor = RGBColor(0x1a, 0x7f, 0x37);
pub(crate) const FAIL: RGBColor = RGBColor(0xcf, 0x22, 0x2e);
pub(crate) const NEUTRAL: RGBColor = RGBColor(0x09, 0x69, 0xda);

/// Line and point colours for series (Tableau 10, which stays readable for most colour vision).
pub(crate) const PALETTE: [RGBColor; 10] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xbc, 0xbd, 0x22),
    RGBColor(0x17, 0xbe, 0xcf),
];

pub(crate) fn palette(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

pub(crate) fn title_style() -> TextStyle<'static> {
    (FONT, 22).into_font().color(&INK)
}

pub(crate) fn text_style(size: u32) -> TextStyle<'static> {
    (FONT, size).into_font().color(&INK)
}

/// Text anchored at its left end, vertically centred.
pub(crate) fn left(size: u32) -> TextStyle<'static> {
    text_style(size).pos(Pos::new(HPos::Left, VPos::Center))
}

/// Text anchored at its right end, vertically centred.
pub(crate) fn right(size: u32) -> TextStyle<'static> {
    text_style(size).pos(Pos::new(HPos::Right, VPos::Center))
}

/// Text centred on its point.
pub(crate) fn centred(size: u32) -> TextStyle<'static> {
    text_style(size).pos(Pos::new(HPos::Center, VPos::Center))
}

/// Drawing into a `String` only fails on `fmt::Error`, which `String` never returns, or on a
/// layout too small for its label areas, which the fixed sizes here rule out.
pub(crate) fn drawn<T, E: std::fmt::Debug>(r: Result<T, E>) -> T {
    r.expect("drawing an SVG into a String does not fail")
}

/// An axis range covering every finite value in `values`, padded by 8% on each side and at least
/// `min_span` wide.
pub(crate) fn range(values: impl IntoIterator<Item = f64>, min_span: f64) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.into_iter().filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (-min_span / 2.0, min_span / 2.0);
    }
    if hi - lo < min_span {
        let mid = (lo + hi) / 2.0;
        lo = mid - min_span / 2.0;
        hi = mid + min_span / 2.0;
    }
    let pad = 0.08 * (hi - lo);
    (lo - pad, hi + pad)
}

/// A tick label: at most three decimals, trailing zeros dropped, never `-0`.
pub(crate) fn tick(v: f64) -> String {
    if v.abs() < 5e-4 {
        return "0".into();
    }
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// A signed number of points with one decimal, `+0.0` for zero.
pub(crate) fn signed(v: f64) -> String {
    if v.abs() < 0.05 {
        "+0.0".into()
    } else {
        format!("{v:+.1}")
    }
}

/// Shorten a label to `max` characters, ending with `…` when cut.
pub(crate) fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Estimated width in pixels of `chars` characters of sans-serif at `size`.
pub(crate) fn text_width(chars: usize, size: u32) -> u32 {
    (chars as u32 * size * 3).div_ceil(5)
}

/// A chart with f64 axes over `x` and `y`, its title, grid, ticks and axis descriptions drawn:
/// the frame the scatter and line charts share.
pub(crate) fn xy_chart<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    title: &str,
    x: (f64, f64),
    y: (f64, f64),
    x_desc: &str,
    y_desc: &str,
) -> ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
> {
    let mut chart = drawn(
        ChartBuilder::on(root)
            .caption(title, title_style())
            .margin(14)
            .x_label_area_size(56)
            .y_label_area_size(72)
            .build_cartesian_2d(x.0..x.1, y.0..y.1),
    );
    drawn(
        chart
            .configure_mesh()
            .x_labels(8)
            .y_labels(8)
            .bold_line_style(GRID)
            .light_line_style(TRANSPARENT)
            .axis_style(INK)
            .x_label_formatter(&|v| tick(*v))
            .y_label_formatter(&|v| tick(*v))
            .label_style(text_style(13))
            .x_desc(x_desc)
            .y_desc(y_desc)
            .axis_desc_style(text_style(14))
            .draw(),
    );
    chart
}

#[cfg(test)]
pub(crate) mod testing {
    //! Reading charts back in tests.

    /// Parse as XML (panics with the parser's message otherwise) and check the root is `<svg>`.
    pub fn parse(svg: &str) -> roxmltree::Document<'_> {
        let doc = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        doc
    }

    pub fn num(n: roxmltree::Node, attr: &str) -> f64 {
        n.attribute(attr)
            .unwrap_or_else(|| panic!("no {attr} on {n:?}"))
            .parse()
            .unwrap()
    }

    /// `#RRGGBB` as plotters writes it.
    pub fn hex(c: plotters::style::RGBColor) -> String {
        format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
    }

    /// Every `<text>`'s content, trimmed.
    pub fn texts(doc: &roxmltree::Document) -> Vec<String> {
        doc.descendants()
            .filter(|n| n.has_tag_name("text"))
            .map(|n| n.text().unwrap_or("").trim().to_string())
            .collect()
    }

    /// The points of every `<polyline>` drawn in `stroke`.
    pub fn polylines(doc: &roxmltree::Document, stroke: &str) -> Vec<Vec<(f64, f64)>> {
        doc.descendants()
            .filter(|n| n.has_tag_name("polyline") && n.attribute("stroke") == Some(stroke))
            .map(|n| {
                n.attribute("points")
                    .unwrap()
                    .split_whitespace()
                    .map(|p| {
                        let (x, y) = p.split_once(',').unwrap();
                        (x.parse().unwrap(), y.parse().unwrap())
                    })
                    .collect()
            })
            .collect()
    }

    /// `(cx, cy)` of every `<circle>` filled with `fill`.
    pub fn circles(doc: &roxmltree::Document, fill: &str) -> Vec<(f64, f64)> {
        doc.descendants()
            .filter(|n| n.has_tag_name("circle") && n.attribute("fill") == Some(fill))
            .map(|n| (num(n, "cx"), num(n, "cy")))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_values_and_survive_degenerate_input() {
        let (lo, hi) = range([-3.0, 2.0, f64::NAN], 1.0);
        assert!(lo < -3.0 && hi > 2.0);
        assert_eq!(range([], 2.0), (-1.0, 1.0));
        let (lo, hi) = range([5.0, 5.0], 2.0);
        assert!(lo < 4.0 && hi > 6.0);
    }

    #[test]
    fn ticks_and_numbers_read_well() {
        assert_eq!(tick(0.30000000000000004), "0.3");
        assert_eq!(tick(-0.0), "0");
        assert_eq!(tick(-2.5), "-2.5");
        assert_eq!(tick(10.0), "10");
        assert_eq!(signed(-0.01), "+0.0");
        assert_eq!(signed(-3.33), "-3.3");
        assert_eq!(shorten("abcdef", 4), "abc…");
        assert_eq!(shorten("abc", 4), "abc");
    }
}

//! Loss curves of training runs, and reading them from a run's `log.jsonl`.

use std::path::Path;

use plotters::prelude::*;

use super::chart::{centred, drawn, palette, range, text_style, xy_chart, GRID, WIDTH};
use super::ReportError;

/// One curve: `(step, loss)` points in step order.
#[derive(Debug, Clone, PartialEq)]
pub struct LossSeries {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// What a training run's `log.jsonl` holds: the training loss of every optimizer step and the
/// evaluation loss of every evaluation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LossLog {
    pub train: Vec<(f64, f64)>,
    pub eval: Vec<(f64, f64)>,
}

impl LossLog {
    /// The training curve labelled `label`, then the evaluation curve labelled `label (eval)`
    /// when the run evaluated.
    pub fn into_series(self, label: &str) -> Vec<LossSeries> {
        let mut out = vec![LossSeries {
            label: label.to_string(),
            points: self.train,
        }];
        if !self.eval.is_empty() {
            out.push(LossSeries {
                label: format!("{label} (eval)"),
                points: self.eval,
            });
        }
        out
    }
}

/// Read a `log.jsonl` written by `sft-eval train`: per line a JSON object with `step` and either
/// `loss` (a training step) or `eval_loss` (an evaluation). A `null` loss (NaN when written) is
/// skipped, as are blank lines. Anything else is an error naming the file and the 1-based line.
pub fn read_loss_log(path: &Path) -> Result<LossLog, ReportError> {
    let text = std::fs::read_to_string(path).map_err(super::io(path))?;
    let mut log = LossLog::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |reason: String| ReportError::Log {
            path: path.to_path_buf(),
            line: i + 1,
            reason,
        };
        if let Some(reason) = crate::data::line_too_long(line) {
            return Err(bad(reason));
        }
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad(format!("not JSON ({e})")))?;
        let obj = v
            .as_object()
            .ok_or_else(|| bad("not a JSON object".into()))?;
        let step = obj
            .get("step")
            .and_then(serde_json::Value::as_f64)
            .ok_or_else(|| bad("no numeric `step`".into()))?;
        if obj.contains_key("watch") {
            // a capability watch (`train --watch`): read by `read_watch_log`
            continue;
        }
        let (key, to) = if obj.contains_key("loss") {
            ("loss", &mut log.train)
        } else if obj.contains_key("eval_loss") {
            ("eval_loss", &mut log.eval)
        } else {
            return Err(bad("neither `loss` nor `eval_loss`".into()));
        };
        match &obj[key] {
            serde_json::Value::Null => {}
            serde_json::Value::Number(n) => {
                to.push((step, n.as_f64().expect("a JSON number is an f64")));
            }
            other => return Err(bad(format!("`{key}` is {other}, not a number"))),
        }
    }
    Ok(log)
}

/// The training-loss curve of the `log.jsonl` at `path`, labelled `label`.
pub fn loss_series_from_log(path: &Path, label: &str) -> Result<LossSeries, ReportError> {
    Ok(LossSeries {
        label: label.to_string(),
        points: read_loss_log(path)?.train,
    })
}

const HEIGHT: u32 = 480;

/// Loss against step, one coloured line per series (with point markers when a series has at most
/// 40 points), and a legend. Deterministic SVG text.
pub fn loss_curves_svg(series: &[LossSeries]) -> String {
    let finite = |s: &LossSeries| {
        s.points
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect::<Vec<_>>()
    };
    let all: Vec<(f64, f64)> = series.iter().flat_map(finite).collect();
    let (xlo, xhi) = range(all.iter().map(|p| p.0), 2.0);
    let (ylo, yhi) = range(all.iter().map(|p| p.1), 0.1);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        drawn(root.fill(&WHITE));
        let mut chart = xy_chart(
            &root,
            "Training loss",
            (xlo, xhi),
            (ylo, yhi),
            "optimizer step",
            "loss (nats per supervised token)",
        );
        for (i, s) in series.iter().enumerate() {
            let colour = palette(i);
            let pts = finite(s);
            drawn(chart.draw_series(LineSeries::new(pts.clone(), colour.stroke_width(2))))
                .label(s.label.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                });
            if pts.len() <= 40 {
                drawn(chart.draw_series(pts.iter().map(|p| Circle::new(*p, 3, colour.filled()))));
            }
        }
        if series.is_empty() || all.is_empty() {
            let (x, y) = chart.backend_coord(&((xlo + xhi) / 2.0, (ylo + yhi) / 2.0));
            drawn(root.draw(&Text::new("no loss values to show", (x, y), centred(14))));
        }
        if !series.is_empty() {
            drawn(
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::UpperRight)
                    .background_style(WHITE.mix(0.9))
                    .border_style(GRID)
                    .label_font(text_style(13))
                    .draw(),
            );
        }
    }
    svg
}

#[cfg(test)]
mod tests {
    use super::super::chart::testing::*;
    use super::*;

    #[test]
    fn reads_train_and_eval_losses_and_names_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log.jsonl");
        std::fs::write(
            &p,
            "{\"step\":0,\"loss\":2.5,\"lr\":0.1}\n{\"step\":1,\"loss\":null}\n\n{\"step\":1,\"eval_loss\":2.0,\"probe_kl\":null}\n{\"step\":2,\"loss\":1.5}\n",
        )
        .unwrap();
        let log = read_loss_log(&p).unwrap();
        assert_eq!(log.train, vec![(0.0, 2.5), (2.0, 1.5)]);
        assert_eq!(log.eval, vec![(1.0, 2.0)]);
        let s = log.into_series("run");
        assert_eq!(s[1].label, "run (eval)");
        assert_eq!(loss_series_from_log(&p, "r").unwrap().points.len(), 2);

        std::fs::write(&p, "{\"step\":0,\"loss\":2.5}\n{\"step\":1,\"loss\":2.").unwrap();
        let e = read_loss_log(&p).unwrap_err().to_string();
        assert!(e.contains("log.jsonl:2: not JSON"), "{e}");
        std::fs::write(&p, "{\"loss\":2.5}\n").unwrap();
        let e = read_loss_log(&p).unwrap_err().to_string();
        assert!(e.ends_with("log.jsonl:1: no numeric `step`"), "{e}");
        std::fs::write(&p, "{\"step\":3,\"loss\":\"x\"}\n").unwrap();
        assert!(read_loss_log(&p)
            .unwrap_err()
            .to_string()
            .contains("`loss` is \"x\", not a number"));
        let e = read_loss_log(&dir.path().join("nope.jsonl")).unwrap_err();
        assert!(e.to_string().contains("nope.jsonl"));
    }

    #[test]
    fn curves_go_down_when_the_loss_does() {
        let s = [
            LossSeries {
                label: "run-a".into(),
                points: vec![(0.0, 3.0), (1.0, 2.0), (2.0, 1.0)],
            },
            LossSeries {
                label: "run-b <eval>".into(),
                points: vec![(0.0, 2.5), (2.0, f64::NAN)],
            },
        ];
        let svg = loss_curves_svg(&s);
        assert_eq!(svg, loss_curves_svg(&s));
        let doc = parse(&svg);
        let line = polylines(&doc, &hex(palette(0)))
            .into_iter()
            .find(|l| l.len() == 3)
            .expect("run-a's line");
        assert!(line[0].0 < line[1].0 && line[1].0 < line[2].0);
        assert!(line[0].1 < line[1].1 && line[1].1 < line[2].1, "loss falls");
        let t = texts(&doc);
        assert!(t.iter().any(|s| s == "run-b <eval>"), "{t:?}");
        parse(&loss_curves_svg(&[]));
    }
}

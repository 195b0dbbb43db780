//! `strata train-model --report DIR`: a plot of predicted against actual accesses on the
//! evaluation split (SVG, written by hand: a scatter plot is a few dozen elements, not
//! worth a plotting crate) and a short summary in Markdown.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::Model;

/// Points drawn at most; a larger evaluation split is thinned evenly, so the file stays
/// small enough to open in a browser.
const MAX_POINTS: usize = 4000;

/// Side of the square plot area, in SVG units.
const PLOT: f64 = 480.0;
/// Room for the axes' labels.
const MARGIN: f64 = 60.0;

/// Writes `predicted-vs-actual.svg` and `summary.md` into `dir` (created if missing)
/// for `pairs` of (actual, predicted) accesses. Returns the two paths.
pub fn write(dir: &Path, model: &Model, pairs: &[(f64, f64)]) -> std::io::Result<[PathBuf; 2]> {
    std::fs::create_dir_all(dir)?;
    let plot = dir.join("predicted-vs-actual.svg");
    std::fs::write(&plot, svg(model, pairs))?;
    let summary = dir.join("summary.md");
    std::fs::write(&summary, markdown(model, pairs.len()))?;
    Ok([plot, summary])
}

/// Position of `n` accesses on an axis of `PLOT` units whose top is `max`: a log scale
/// (`ln(1 + n)`), since counts run from none to thousands.
fn scale(n: f64, max: f64) -> f64 {
    n.max(0.0).ln_1p() / max.ln_1p().max(f64::MIN_POSITIVE) * PLOT
}

/// The scatter plot: one dot per held-out example, and the diagonal where a perfect
/// model's dots would lie.
fn svg(model: &Model, pairs: &[(f64, f64)]) -> String {
    let max = pairs
        .iter()
        .flat_map(|&(a, p)| [a, p])
        .fold(1.0_f64, f64::max);
    let step = pairs.len().div_ceil(MAX_POINTS).max(1);
    let side = PLOT + 2.0 * MARGIN;
    let mut out = String::new();
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{side}" height="{side}" viewBox="0 0 {side} {side}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{MARGIN}" y="24" font-size="14">{name} v{version}: predicted vs actual accesses per {horizon} h (evaluation split, log scale)</text>
<g transform="translate({MARGIN},{top})">
<rect width="{PLOT}" height="{PLOT}" fill="none" stroke="#888"/>
<line x1="0" y1="{PLOT}" x2="{PLOT}" y2="0" stroke="#c33" stroke-dasharray="4 3"/>
"##,
        name = xml_escape(&model.name),
        version = model.version,
        horizon = model.horizon_hours,
        top = MARGIN,
    );
    for &(actual, predicted) in pairs.iter().step_by(step) {
        let _ = writeln!(
            out,
            r##"<circle cx="{:.1}" cy="{:.1}" r="1.6" fill="#36c" fill-opacity="0.35"/>"##,
            scale(actual, max),
            PLOT - scale(predicted, max),
        );
    }
    let mut tick = 1.0;
    while tick <= max {
        let at = scale(tick, max);
        let _ = writeln!(
            out,
            r##"<text x="{at:.1}" y="{below}" text-anchor="middle">{tick}</text><text x="-6" y="{y:.1}" text-anchor="end">{tick}</text>"##,
            below = PLOT + 16.0,
            y = PLOT - at + 4.0,
        );
        tick *= 10.0;
    }
    let _ = write!(
        out,
        r##"<text x="{half}" y="{label}" text-anchor="middle">actual</text>
<text transform="translate(-42,{half}) rotate(-90)" text-anchor="middle">predicted</text>
</g>
</svg>
"##,
        half = PLOT / 2.0,
        label = PLOT + 36.0,
    );
    out
}

/// The summary: what was trained on, and the scores against the baselines.
fn markdown(model: &Model, eval_rows: usize) -> String {
    let e = &model.evaluation;
    let mut out = format!(
        "# {} v{}\n\nTrained {} on {} examples (hours {} to {}), evaluated on the latest {} \
         (horizon {} h).\n\n| predictor | MAE | RMSE | R² |\n|---|---|---|---|\n",
        model.name,
        model.version,
        model.trained_at,
        model.training.train_rows,
        model.training.from_hour,
        model.training.to_hour,
        eval_rows,
        model.horizon_hours,
    );
    for (label, s) in [
        ("model", e.model),
        ("persistence (last hour)", e.persistence),
        ("moving average (last day)", e.moving_average),
    ] {
        let _ = writeln!(
            out,
            "| {label} | {:.3} | {:.3} | {:.3} |",
            s.mae, s.rmse, s.r2
        );
    }
    out.push_str(if e.beats_baselines() {
        "\nThe model beats both naive baselines on MAE and RMSE.\n"
    } else {
        "\n**The model does not beat both naive baselines.**\n"
    });
    out.push_str("\n`predicted-vs-actual.svg` plots each held-out example; a perfect model's dots lie on the dashed diagonal.\n");
    out
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forecast::model::toy_examples;

    #[test]
    fn the_report_plots_every_pair_up_to_the_limit_and_summarises_the_scores() {
        let examples = toy_examples(200);
        let model = Model::train("plot<&>", &examples, 1, 0.25, 7).unwrap();
        let pairs = model.evaluation_pairs(&examples, 0.25);
        assert_eq!(pairs.len(), model.training.eval_rows);

        let dir = tempfile::tempdir().unwrap();
        let [plot, summary] = write(&dir.path().join("report"), &model, &pairs).unwrap();
        let plot = std::fs::read_to_string(plot).unwrap();
        assert!(plot.starts_with("<svg"));
        assert!(plot.contains("plot&lt;&amp;&gt;"), "names are escaped");
        assert_eq!(plot.matches("<circle").count(), pairs.len());
        let summary = std::fs::read_to_string(summary).unwrap();
        assert!(summary.contains(&format!("{:.3}", model.evaluation.model.mae)));

        let many = vec![(3.0, 2.0); 3 * MAX_POINTS + 1];
        assert!(svg(&model, &many).matches("<circle").count() <= MAX_POINTS);
    }
}

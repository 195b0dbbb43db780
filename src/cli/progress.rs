//! Progress shown on stderr while a long step runs; nothing is drawn when stderr is not
//! a terminal (scripts and CI logs stay clean).

use indicatif::{ProgressBar, ProgressStyle};
use std::time::Duration;

/// A bar over `total` bytes.
pub fn bytes(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total).with_message(what.to_string());
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)",
    ) {
        bar.set_style(style);
    }
    bar
}

/// A spinner for a step of unknown length.
pub fn spinner(what: &str) -> ProgressBar {
    let spinner = ProgressBar::new_spinner().with_message(what.to_string());
    spinner.enable_steady_tick(Duration::from_millis(120));
    spinner
}

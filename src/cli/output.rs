//! What the client subcommands print: a table or a sentence for people, JSON lines with
//! `--json`.

use serde_json::Value;

/// One line saying what the server predicts for object `id`, and why.
pub(super) fn prediction_line(id: &str, answer: &serde_json::Value) -> String {
    let features: Vec<String> = answer["top_features"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            format!(
                "{} {:+.2}",
                f["name"].as_str().unwrap_or("?"),
                f["contribution"].as_f64().unwrap_or_default()
            )
        })
        .collect();
    format!(
        "{id}: {:.1} accesses predicted over the next {} h -> {} (now on {}{}); model {} v{}; top features: {}",
        answer["predicted_accesses"].as_f64().unwrap_or_default(),
        answer["horizon_hours"],
        answer["predicted_tier"].as_str().unwrap_or("?"),
        answer["tier"].as_str().unwrap_or("?"),
        answer["proactive_move"]
            .as_str()
            .map(|t| format!(", would move to {t}"))
            .unwrap_or_default(),
        answer["model"]["name"].as_str().unwrap_or("?"),
        answer["model"]["version"],
        features.join(", "),
    )
}

/// What a client subcommand prints.
pub(super) enum Output {
    /// Objects, one table row each.
    Objects(Vec<Value>),
    /// A list page with its cursor.
    Page(Value, Table),
    /// One answer summed up in a sentence.
    Line(Value, String),
    /// Prometheus text.
    Metrics(String),
}

/// Which columns a page has.
#[derive(Clone, Copy)]
pub(super) enum Table {
    Objects,
    Migrations,
    Rules,
}

impl Output {
    pub(super) fn render(self, json: bool) -> String {
        match self {
            Output::Objects(items) if json => json_lines(&items),
            Output::Page(page, _) | Output::Line(page, _) if json => json_lines(&[page]),
            Output::Metrics(text) if json => json_lines(&[metrics_json(&text)]),
            Output::Objects(items) => table(Table::Objects, &items),
            Output::Page(page, kind) => {
                let items = page["items"].as_array().cloned().unwrap_or_default();
                let mut out = table(kind, &items);
                if let Some(next) = page["next"].as_str() {
                    out.push_str(&format!("more: --after {next}\n"));
                }
                out
            }
            Output::Line(_, line) => format!("{line}\n"),
            // Histograms show as their count and sum; their buckets are for Prometheus.
            Output::Metrics(text) => text
                .lines()
                .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                .filter(|l| {
                    !l.split(['{', ' '])
                        .next()
                        .is_some_and(|n| n.ends_with("_bucket"))
                })
                .map(|l| format!("{l}\n"))
                .collect(),
        }
    }
}

fn json_lines(values: &[Value]) -> String {
    values.iter().map(|v| format!("{v}\n")).collect()
}

/// Prometheus samples as `{"name{labels}": value}`.
fn metrics_json(text: &str) -> Value {
    let samples = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(name, value)| Some((name.to_string(), value.parse::<f64>().ok()?.into())))
        .collect::<serde_json::Map<_, _>>();
    Value::Object(samples)
}

/// Rows under a header, columns padded to their widest cell.
fn table(kind: Table, items: &[Value]) -> String {
    let columns: &[&str] = match kind {
        Table::Objects => &[
            "id",
            "key",
            "tier",
            "size",
            "version",
            "access.total",
            "access.last_hour",
        ],
        Table::Migrations => &[
            "id",
            "object_id",
            "from_tier",
            "to_tier",
            "reason",
            "status",
            "bytes_copied",
            "created_at",
        ],
        Table::Rules => &[
            "id",
            "action",
            "tier",
            "after_days",
            "filter.prefix",
            "filter.content_type",
            "in_force",
        ],
    };
    let cell = |item: &Value, column: &str| {
        let value = column.split('.').fold(item, |v, part| &v[part]);
        match value {
            Value::String(s) => s.clone(),
            Value::Null => "-".into(),
            other => other.to_string(),
        }
    };
    let mut rows = vec![columns.iter().map(|c| c.to_uppercase()).collect::<Vec<_>>()];
    rows.extend(
        items
            .iter()
            .map(|item| columns.iter().map(|c| cell(item, c)).collect()),
    );
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|row| {
            let line = row
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect::<Vec<_>>()
                .join("  ");
            format!("{}\n", line.trim_end())
        })
        .collect()
}

/// A bulk move's plan in a few lines.
pub(super) fn batch_plan_line(plan: &Value) -> String {
    let mut line = format!(
        "would move {} objects, {} bytes to {} (about {:.0} s of copying); {} bytes there after, {}",
        plan["objects"],
        plan["bytes"],
        plan["to_tier"].as_str().unwrap_or("?"),
        plan["estimated_seconds"].as_f64().unwrap_or_default(),
        plan["capacity"]["after_bytes"],
        match plan["capacity"]["capacity_bytes"].as_u64() {
            Some(capacity) if plan["capacity"]["fits"] == true =>
                format!("within its {capacity} bytes"),
            Some(capacity) => format!("MORE than its {capacity} bytes"),
            None => "no capacity set".into(),
        }
    );
    line.push_str(&format!(
        "\nmonthly storage cost {:.2} now, {:.2} after",
        plan["monthly_cost_before"].as_f64().unwrap_or_default(),
        plan["monthly_cost_after"].as_f64().unwrap_or_default()
    ));
    line.push_str(&format!(
        "\nleft out: {} already there, {} moving, held by rules: {}",
        plan["already_there"], plan["moving"], plan["held_by_rules"]
    ));
    line
}

/// A bulk move's progress in a line.
pub(super) fn batch_line(batch: &Value) -> String {
    let amount = |name: &str| {
        format!(
            "{} {} ({} bytes)",
            batch[name]["objects"], name, batch[name]["bytes"]
        )
    };
    format!(
        "batch {}: {} queued to {}; {}, {}, {}, {}",
        batch["id"].as_str().unwrap_or("?"),
        batch["queued"]["objects"],
        batch["request"]["to_tier"].as_str().unwrap_or("?"),
        amount("done"),
        amount("failed"),
        amount("cancelled"),
        amount("remaining"),
    )
}

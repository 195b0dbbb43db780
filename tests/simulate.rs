//! `strata simulate` on traces from `scripts/gen-trace.py`: the policies rank as they
//! should on daily cycles at equal capacity, a backup scan promotes nothing, and
//! malformed traces are one-line errors naming the line. Outcomes only, no timings.
//!
//! Each run gets an empty environment and working directory, so neither a `.env` nor
//! the test stack's variables change the tiers it simulates.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Runs `strata` in `dir` with only `env` set; (success, stdout, stderr).
fn strata(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("RUST_LOG", "off")
        .envs(env.iter().copied())
        .output()
        .expect("run strata");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes `scripts/gen-trace.py ARGS` to `dir/name`.
fn generate(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let out = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/gen-trace.py"))
        .args(args)
        .output()
        .expect("run gen-trace.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = dir.join(name);
    std::fs::write(&path, out.stdout).unwrap();
    path
}

/// Two days of five daily-cycle objects and twenty Zipf ones, in `dir/t.csv`.
fn small_trace(dir: &Path, seed: &str) -> PathBuf {
    generate(
        dir,
        "t.csv",
        &["--shapes", "daily=5,zipf=20", "--days", "2", "--seed", seed],
    )
}

/// The JSON report of `strata simulate ARGS --json`.
fn simulate(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.extend(["--json"]);
    let (ok, out, err) = strata(dir, env, &[&["simulate"], &args[..]].concat());
    assert!(ok, "{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn policy<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["policies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["policy"] == name)
        .unwrap_or_else(|| panic!("no {name} in {report}"))
}

/// A hot tier that holds a few of the busiest objects but far from all.
const CAPACITY: [(&str, &str); 1] = [("TIER_ONPREM_CAPACITY_BYTES", "150000000")];

#[test]
fn on_daily_cycles_combined_beats_reactive_beats_static() {
    let dir = tempfile::tempdir().unwrap();
    let trace = generate(
        dir.path(),
        "daily.csv",
        &[
            "--shapes",
            "daily=30,burst=10,zipf=150",
            "--days",
            "7",
            "--seed",
            "7",
        ],
    );
    let moves = dir.path().join("moves.csv");
    let report = simulate(
        dir.path(),
        &CAPACITY,
        &[
            "--trace",
            trace.to_str().unwrap(),
            "--moves-out",
            moves.to_str().unwrap(),
        ],
    );
    let hit = |name| policy(&report, name)["hot_hit_ratio"].as_f64().unwrap();
    let (fixed, reactive, combined) = (hit("static"), hit("reactive"), hit("combined"));
    assert!(
        combined > reactive && reactive > fixed,
        "combined {combined}, reactive {reactive}, static {fixed}"
    );
    assert_eq!(fixed, 0.0, "static leaves everything on the default tier");
    // Every policy is scored on the same accesses, and so are the references.
    let scored = report["scored_accesses"].as_u64().unwrap();
    assert!(scored > 0 && scored < report["accesses"].as_u64().unwrap());
    for p in report["policies"].as_array().unwrap() {
        assert_eq!(p["accesses"].as_u64(), Some(scored), "{p}");
        let served: u64 = p["tiers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["accesses"].as_u64().unwrap())
            .sum();
        assert_eq!(served, scored);
    }
    let perfect = &report["references"][2];
    assert_eq!(perfect["name"], "perfect foresight");
    for r in report["references"].as_array().unwrap() {
        assert_eq!(r["accesses"].as_u64(), Some(scored), "{r}");
        assert!(r["hot_hit_ratio"].as_f64().unwrap() <= perfect["hot_hit_ratio"].as_f64().unwrap());
    }
    let of_perfect = policy(&report, "combined")["of_perfect"].as_f64().unwrap();
    assert!(of_perfect > 0.0 && of_perfect < 1.0, "{of_perfect}");
    assert!(report["model"]["trained_here"].as_bool().unwrap());

    // Proactive moves follow the daily cycle, not the clock: while the hour in progress
    // counted as a quiet last hour, predictions dipped at the top of every hour, and one
    // proactive move in ten undid the object's previous move within half an hour.
    let moves = std::fs::read_to_string(&moves).unwrap();
    // (A promotion back after a capacity_rebalance is the ranking at work, not an undo.)
    let mut last_move: HashMap<&str, (i64, &str, &str, &str)> = HashMap::new();
    let (mut proactive, mut undone) = (0, 0);
    for row in moves.lines().filter(|r| r.starts_with("combined,")) {
        let f: Vec<&str> = row.split(',').collect();
        let (ts, object, from, to): (i64, _, _, _) = (f[1].parse().unwrap(), f[2], f[3], f[4]);
        if f[5] == "proactive_prediction" {
            proactive += 1;
            if let Some((before, before_from, before_to, before_reason)) = last_move.get(object)
                && *before_reason == "proactive_prediction"
                && (*before_from, *before_to) == (to, from)
                && ts - before < 30 * 60_000
            {
                undone += 1;
            }
        }
        last_move.insert(object, (ts, from, to, f[5]));
    }
    assert!(proactive > 100, "{proactive} proactive moves");
    assert!(
        undone * 50 < proactive,
        "{undone} of {proactive} proactive moves undid a move made less than 30 min before"
    );
}

#[test]
fn a_backup_scan_promotes_nothing_it_scanned() {
    let dir = tempfile::tempdir().unwrap();
    let trace = generate(
        dir.path(),
        "scan.csv",
        &[
            "--shapes",
            "scan=400,daily=10,zipf=100",
            "--days",
            "6",
            "--seed",
            "11",
        ],
    );
    let moves = dir.path().join("moves.csv");
    let (ok, table, err) = strata(
        dir.path(),
        &[],
        &[
            "simulate",
            "--trace",
            trace.to_str().unwrap(),
            "--moves-out",
            moves.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    for name in [
        "static",
        "reactive",
        "proactive",
        "combined",
        "perfect foresight",
    ] {
        assert!(table.contains(name), "{table}");
    }
    let moves = std::fs::read_to_string(&moves).unwrap();
    let mut lines = moves.lines();
    assert_eq!(
        lines.next(),
        Some("policy,ts_ms,object_id,from_tier,to_tier,reason,size_bytes")
    );
    let rows: Vec<&str> = lines.collect();
    assert!(
        rows.iter().any(|r| r.contains(",daily-")),
        "the daily objects are moved: {moves}"
    );
    let scanned: Vec<&&str> = rows.iter().filter(|r| r.contains(",scan-")).collect();
    assert!(scanned.is_empty(), "{scanned:?}");
}

#[test]
fn a_given_model_scores_the_whole_trace() {
    let dir = tempfile::tempdir().unwrap();
    let trace = small_trace(dir.path(), "2");
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/models");
    let model = std::fs::read_dir(model)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .expect("a shipped model");
    let report = simulate(
        dir.path(),
        &[],
        &[
            "--trace",
            trace.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "--policy",
            "proactive",
        ],
    );
    assert_eq!(report["scored_accesses"], report["accesses"]);
    assert_eq!(report["policies"].as_array().unwrap().len(), 1);
    assert_eq!(report["model"]["trained_here"], false);
}

#[test]
fn a_tiers_file_overrides_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let trace = small_trace(dir.path(), "3");
    let trace = trace.to_str().unwrap();
    let tiers = dir.path().join("tiers.env");
    std::fs::write(
        &tiers,
        "# what if the hot tier were bigger and dearer?\n\
         TIER_ONPREM_CAPACITY_BYTES=150000000\nTIER_ONPREM_COST_GB_MONTH=0.5\n",
    )
    .unwrap();
    let env = [("TIER_ONPREM_CAPACITY_BYTES", "1000")];
    let args = ["--trace", trace, "--policy", "reactive"];
    let plain = simulate(dir.path(), &env, &args);
    assert_eq!(plain["hot_capacity_bytes"], 1000);
    let tiers_arg = tiers.to_str().unwrap();
    let overridden = simulate(
        dir.path(),
        &env,
        &[&args[..], &["--tiers", tiers_arg]].concat(),
    );
    assert_eq!(overridden["hot_capacity_bytes"], 150_000_000);

    let (ok, _, err) = strata(
        dir.path(),
        &[],
        &["simulate", "--trace", trace, "--tiers", "missing.env"],
    );
    assert!(!ok && err.contains("missing.env"), "{err}");
    std::fs::write(&tiers, "TIER_ONPREM_CAPACITY_BYTES=lots\n").unwrap();
    let (ok, _, err) = strata(
        dir.path(),
        &[],
        &["simulate", "--trace", trace, "--tiers", tiers_arg],
    );
    assert!(!ok && err.contains("TIER_ONPREM_CAPACITY_BYTES"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn malformed_traces_are_one_line_errors_with_the_line_number() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, content: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path.display().to_string()
    };
    let h = "ts_ms,object_id,size_bytes\n";
    let cases = [
        (write("empty.csv", ""), "line 1"),
        (write("header.csv", "time,id,size\n1,a,1\n"), "line 1"),
        (write("no-rows.csv", h), "no accesses"),
        (write("ts.csv", &format!("{h}1,a,1\nsoon,a,1\n")), "line 3"),
        (write("size.csv", &format!("{h}1,a,1\n2,a,big\n")), "line 3"),
        (write("fields.csv", &format!("{h}1,a\n")), "line 2"),
        (
            write("backwards.csv", &format!("{h}1,a,1\n7,a,1\n\n5,b,1\n")),
            "line 5",
        ),
        (
            write("op.csv", "ts_ms,object_id,size_bytes,op\n1,a,1,erase\n"),
            "line 2",
        ),
        (
            dir.path().join("missing.csv").display().to_string(),
            "missing.csv",
        ),
    ];
    for (trace, needle) in cases {
        let (ok, out, err) = strata(dir.path(), &[], &["simulate", "--trace", &trace]);
        assert!(!ok, "{trace} was accepted: {out}");
        assert!(
            err.starts_with("strata: ") && err.contains(needle),
            "{trace}: {err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    let good = write("good.csv", &format!("{h}1,a,1\n"));
    for bad in [
        &["--train-fraction", "1"][..],
        &["--bandwidth", "0"],
        &["--model", "nowhere.json"],
    ] {
        let (ok, _, err) = strata(
            dir.path(),
            &[],
            &[&["simulate", "--trace", &good], bad].concat(),
        );
        assert!(!ok && err.starts_with("strata: "), "{bad:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}

#[test]
fn a_trace_too_short_to_train_on_says_how_many_hours_the_training_part_spans() {
    let dir = tempfile::tempdir().unwrap();
    // Four hours of accesses: the first quarter, one hour, holds no hour with a whole
    // horizon after it.
    let mut trace = String::from("ts_ms,object_id,size_bytes\n");
    for minute in 0..=240 {
        trace.push_str(&format!("{},o{},100\n", minute * 60_000, minute % 7));
    }
    let path = dir.path().join("short.csv");
    std::fs::write(&path, trace).unwrap();
    let path = path.display().to_string();
    let (ok, _, err) = strata(dir.path(), &[], &["simulate", "--trace", &path]);
    assert!(!ok);
    assert!(
        err.contains("first 25 % of the trace, 1.0 hours") && err.contains("--train-fraction"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // The reactive policy trains nothing, so the same trace replays.
    let (ok, _, err) = strata(
        dir.path(),
        &[],
        &["simulate", "--trace", &path, "--policy", "reactive"],
    );
    assert!(ok, "{err}");
}

/// Bytes of all the objects of a trace, each counted once.
fn trace_bytes(trace: &Path) -> u64 {
    let text = std::fs::read_to_string(trace).unwrap();
    let mut sizes: HashMap<&str, u64> = HashMap::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        sizes.entry(f[1]).or_insert_with(|| f[2].parse().unwrap());
    }
    sizes.values().sum()
}

#[test]
fn ranked_placement_beats_the_references_within_capacity_and_never_promotes_a_scan() {
    let dir = tempfile::tempdir().unwrap();
    let trace = generate(
        dir.path(),
        "mix.csv",
        &[
            "--shapes",
            "zipf=150,daily=20,burst=20,decay=20,scan=100",
            "--days",
            "3",
            "--seed",
            "5",
            "--peak",
            "120",
            "--zipf-rate",
            "600",
        ],
    );
    let total = trace_bytes(&trace);
    for share in [0.02, 0.10] {
        let hot = (total as f64 * share) as u64;
        let (hot, private) = (hot.to_string(), (hot * 5).to_string());
        let moves = dir.path().join("moves.csv");
        let report = simulate(
            dir.path(),
            &[
                ("TIER_ONPREM_CAPACITY_BYTES", &hot),
                ("TIER_PRIVATE_CAPACITY_BYTES", &private),
            ],
            &[
                "--trace",
                trace.to_str().unwrap(),
                "--moves-out",
                moves.to_str().unwrap(),
            ],
        );
        let combined = policy(&report, "combined");
        let hit = combined["hot_hit_ratio"].as_f64().unwrap();
        let reference = |i: usize| &report["references"][i];
        let (best_static, lru, perfect) = (reference(0), reference(1), reference(2));
        for r in [best_static, lru] {
            assert!(
                hit >= r["hot_hit_ratio"].as_f64().unwrap(),
                "{share}: {hit} against {r}"
            );
        }
        assert!(
            combined["of_perfect"].as_f64().unwrap() >= 0.85,
            "{share}: {combined}"
        );
        let moved: u64 = combined["moves"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["bytes"].as_u64().unwrap())
            .sum();
        assert!(
            moved <= 2 * perfect["bytes_moved"].as_u64().unwrap(),
            "{share}: {moved}"
        );
        // The demotions that make room run before the promotions waiting for it.
        assert_eq!(combined["refused_moves"], 0, "{share}: {combined}");
        let moves = std::fs::read_to_string(&moves).unwrap();
        let scanned: Vec<&str> = moves.lines().filter(|r| r.contains(",scan-")).collect();
        assert!(scanned.is_empty(), "{share}: {scanned:?}");
        assert!(
            moves.contains(",capacity_rebalance,"),
            "{share}: rooms were made"
        );
    }
}

#[test]
fn rules_are_replayed_beside_the_same_policy_without_them() {
    let dir = tempfile::tempdir().unwrap();
    let trace = small_trace(dir.path(), "5");
    let rules = |name: &str, yaml: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, yaml).unwrap();
        path
    };
    let run = |policy_name: &str, file: &Path| {
        simulate(
            dir.path(),
            &CAPACITY,
            &[
                "--trace",
                trace.to_str().unwrap(),
                "--policy",
                policy_name,
                "--rules",
                file.to_str().unwrap(),
            ],
        )
    };

    // Everything pinned to the hot tier: nothing stays on the default tier for long.
    let pinned = rules(
        "pin.yaml",
        "- id: hot\n  filter: {all: true}\n  action: pin\n  tier: onprem\n",
    );
    let report = run("static", &pinned);
    let (without, with) = (policy(&report, "static"), policy(&report, "static+rules"));
    assert_eq!(without["hot_hit_ratio"], 0.0, "{report:#}");
    // Moved at the first rules pass, before the scored part begins.
    assert!(with["hot_hit_ratio"].as_f64().unwrap() > 0.9, "{report:#}");

    // A ceiling below the hot tier: the combined policy places nothing there.
    let capped = rules(
        "ceiling.yaml",
        "- id: cap\n  filter: {all: true}\n  action: ceiling\n  tier: private\n",
    );
    let report = run("combined", &capped);
    let (without, with) = (
        policy(&report, "combined"),
        policy(&report, "combined+rules"),
    );
    assert!(
        without["hot_hit_ratio"].as_f64().unwrap() > 0.0,
        "{report:#}"
    );
    assert_eq!(with["hot_hit_ratio"], 0.0, "{report:#}");

    let bad = rules(
        "bad.yaml",
        "- id: x\n  filter: {all: true}\n  action: pin\n  tier: tape\n",
    );
    let (ok, _, err) = strata(
        dir.path(),
        &[],
        &[
            "simulate",
            "--trace",
            trace.to_str().unwrap(),
            "--rules",
            bad.to_str().unwrap(),
        ],
    );
    assert!(!ok);
    assert!(
        err.contains("--rules") && err.contains("unknown tier"),
        "{err}"
    );
}

#[test]
fn the_heading_says_what_the_unscored_part_was_for_and_warns_when_little_is_scored() {
    let dir = tempfile::tempdir().unwrap();
    let trace = small_trace(dir.path(), "5");
    let heading = |args: &[&str]| {
        let (ok, out, err) = strata(
            dir.path(),
            &[],
            &[&["simulate", "--trace", trace.to_str().unwrap()], args].concat(),
        );
        assert!(ok, "{err}");
        out.lines().take(4).collect::<Vec<_>>().join("\n")
    };
    let trained = heading(&["--policy", "proactive"]);
    assert!(
        trained.contains("(the part before trained the model)"),
        "{trained}"
    );
    let reactive = heading(&["--policy", "reactive"]);
    assert!(
        reactive.contains("(the part before warmed the policies up)"),
        "{reactive}"
    );
    assert!(!reactive.contains("warning"), "{reactive}");
    // One access a week after the rest moves the training cut past all the others.
    let mut text = std::fs::read_to_string(&trace).unwrap();
    let last: i64 = text
        .lines()
        .last()
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    text.push_str(&format!("{},straggler,1\n", last + 7 * 24 * 3_600_000));
    std::fs::write(&trace, text).unwrap();
    let stretched = heading(&["--policy", "reactive"]);
    assert!(stretched.contains("warning: under a tenth"), "{stretched}");
}

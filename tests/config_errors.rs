//! Start-up with a malformed setting: the binary stops with one line naming the variable,
//! the value and what is expected, and a failure exit code; never a panic.

use std::process::Command;

fn serve_with(var: &str, value: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap(); // no stray .env is picked up
    strata_in(dir.path(), &["serve"], &[(var, value)])
}

#[test]
fn malformed_values_stop_start_up_with_a_named_error() {
    for (var, value, expected) in [
        ("S3_PART_CONCURRENCY", "lots", "a whole number from 1 to 64"),
        (
            "TIER_PUBLIC_URL",
            "ftp://bucket",
            "s3://BUCKET or file:///DIR",
        ),
        ("DEFAULT_TIER", "glacier", "one of the tiers in TIERS"),
        (
            "TIER_ONPREM_CAPACITY_BYTES",
            "10GB",
            "a whole number of bytes",
        ),
    ] {
        let (ok, stderr) = serve_with(var, value);
        assert!(!ok, "{var}={value} was accepted");
        assert!(
            !stderr.contains("panicked"),
            "{var}={value} panicked: {stderr}"
        );
        let line = format!("invalid value {value:?} for {var}: expected {expected}");
        assert!(
            stderr.contains(&line),
            "{var}={value}: expected {line:?} in {stderr:?}"
        );
    }
}

/// `strata` in `dir` with nothing in its environment but PATH and `vars`.
fn strata_in(dir: &std::path::Path, args: &[&str], vars: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(vars.iter().copied())
        .output()
        .expect("run strata");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `.env` is read before the log filter and the command line's own environment
/// defaults, not only by the service's settings.
#[test]
fn dot_env_sets_the_log_filter_and_the_clients_server() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "RUST_LOG=sqlx=debug\nDATA_DIR=./data\nSTRATA_URL=http://127.0.0.1:9\n",
    )
    .unwrap();
    // A check of the empty embedded catalogue: its statements are logged at debug.
    let (_, stderr) = strata_in(dir.path(), &["check"], &[]);
    assert!(
        stderr.contains("sqlx::query"),
        "no sqlx debug log: {stderr}"
    );
    let (ok, stderr) = strata_in(dir.path(), &["objects"], &[]);
    assert!(!ok);
    assert!(stderr.contains("127.0.0.1:9"), "{stderr}");
}

#[test]
fn a_malformed_dot_env_stops_every_command_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), "RUST_LOG=info\nnot a setting\n").unwrap();
    for args in [&["serve"][..], &["objects"]] {
        let (ok, stderr) = strata_in(dir.path(), args, &[]);
        assert!(!ok, "{args:?} ran with a malformed .env");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(stderr.contains(".env"), "{args:?}: {stderr}");
    }
}

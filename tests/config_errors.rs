//! Start-up with a malformed setting: the binary stops with one line naming the variable,
//! the value and what is expected, and a failure exit code; never a panic.

use std::process::Command;

fn serve_with(var: &str, value: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("serve")
        .current_dir(dir.path()) // no stray .env is picked up
        .env_clear()
        .env(var, value)
        .output()
        .expect("run strata");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
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

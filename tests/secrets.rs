//! Secrets from files, as Docker and Kubernetes mount them: every secret variable may be
//! given as `<NAME>_FILE`; the service and the CLI read them, never log them, and refuse
//! a secret given both ways.

mod common;

use std::path::Path;
use std::process::Command;

use common::{StrataServer, TestDb, curl, stack_env};

/// Writes `value` (with a trailing newline, as `echo` would) to `dir/name`; its path.
fn secret_file(dir: &Path, name: &str, value: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("{value}\n")).unwrap();
    path.display().to_string()
}

/// Runs the CLI's `strata migrate ID --to TIER` with `env`; (success, stderr).
fn migrate(server: &StrataServer, id: &str, env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["migrate", id, "--to", "onprem", "--server", &server.url("")])
        .env_remove("API_TOKEN")
        .env_remove("API_TOKEN_FILE")
        .envs(env.iter().copied())
        .env("RUST_LOG", "off")
        .output()
        .expect("run strata");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_and_the_cli_read_secrets_from_files() {
    let db = TestDb::postgres().await;
    let dir = tempfile::tempdir().unwrap();
    let stack = stack_env();
    let token = "file-token-4f1c";
    let mut secrets = vec![
        ("DATABASE_URL".to_string(), db.url.clone()),
        ("API_TOKEN".to_string(), token.to_string()),
    ];
    for tier in ["ONPREM", "PRIVATE", "PUBLIC"] {
        let var = format!("TIER_{tier}_SECRET_ACCESS_KEY");
        secrets.push((var.clone(), stack[&var].clone()));
    }
    // Each secret only in its file; a blank value counts as unset.
    let mut env = Vec::new();
    for (var, value) in &secrets {
        env.push((format!("{var}_FILE"), secret_file(dir.path(), var, value)));
        env.push((var.clone(), String::new()));
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = StrataServer::start(&db, &env).await;

    // The catalogue and the tier were reached with the files' secrets, and the token
    // guards writes.
    let body = dir.path().join("body");
    std::fs::write(&body, "hello").unwrap();
    let form = format!("file=@{}", body.display());
    let target = server.url("/api/v1/objects?key=secrets/one");
    curl(&["-F", &form, &target]).assert_error(401, "unauthorized");
    let auth = format!("Authorization: Bearer {token}");
    let created = curl(&["-H", &auth, "-F", &form, &target]);
    assert_eq!(
        created.status,
        201,
        "{:?}",
        String::from_utf8_lossy(&created.body)
    );
    let id = created.json()["id"].as_str().unwrap().to_string();
    // In the PostgreSQL database the file names (not an embedded SQLite default).
    let rows = Command::new("psql")
        .args([db.url.as_str(), "-tAc", "SELECT object_key FROM objects"])
        .output()
        .expect("run psql");
    assert_eq!(String::from_utf8_lossy(&rows.stdout).trim(), "secrets/one");

    // The CLI: the token from its file; both ways at once is refused.
    let token_file = dir.path().join("API_TOKEN").display().to_string();
    let (ok, stderr) = migrate(&server, &id, &[]);
    assert!(!ok, "migrate without the token: {stderr}");
    let (ok, stderr) = migrate(
        &server,
        &id,
        &[("API_TOKEN_FILE", &token_file), ("API_TOKEN", token)],
    );
    assert!(!ok, "both ways accepted");
    assert!(
        stderr.contains("API_TOKEN (--token) and API_TOKEN_FILE (--token-file) are both set"),
        "{stderr}"
    );
    let (ok, stderr) = migrate(&server, &id, &[("API_TOKEN_FILE", &token_file)]);
    assert!(ok, "migrate with API_TOKEN_FILE: {stderr}");

    let log = server.log();
    for secret in [token, stack["TIER_PUBLIC_SECRET_ACCESS_KEY"].as_str()] {
        assert!(!log.contains(secret), "a secret is in the log");
    }
}

#[test]
fn a_secret_given_both_ways_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let file = secret_file(dir.path(), "token", "t");
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("serve")
        .current_dir(dir.path())
        .env_clear()
        .env("API_TOKEN", "t")
        .env("API_TOKEN_FILE", &file)
        .output()
        .expect("run strata");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("API_TOKEN and API_TOKEN_FILE are both set"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_malformed_database_url_is_reported_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("serve")
        .current_dir(dir.path())
        .env_clear()
        .env("DATABASE_URL", "mysql://strata:hunter2@db/strata")
        .output()
        .expect("run strata");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("mysql://strata:***@db/strata"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

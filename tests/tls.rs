//! TLS to managed services, against real TLS endpoints on this machine: the catalogue
//! on a PostgreSQL that accepts only TLS (`sslmode=verify-full` with a private CA), an S3
//! tier behind stunnel with a private CA, and the CLI against Strata behind stunnel.

mod common;

use std::process::Command;

use common::{EmbeddedServer, Pki, Stunnel, TlsPostgres, chunks, stack_config, stack_tier};
use futures_util::StreamExt;
use strata::config::BackendConfig;
use strata::db::Catalogue;
use strata::storage::{Declared, Store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalogue_connects_to_postgres_over_verified_tls() {
    strata::tls::install_provider();
    let pki = Pki::new();
    let postgres = TlsPostgres::start(&pki);
    let url = |mode: &str, ca: &str| {
        format!(
            "postgres://postgres@localhost:{}/postgres?sslmode={mode}&sslrootcert={}",
            postgres.port,
            pki.file(ca).display()
        )
    };

    let catalogue = Catalogue::connect(&url("verify-full", "ca.pem"))
        .await
        .expect("verify-full with the right CA");
    assert!(catalogue.tier_usage(0).await.unwrap().is_empty());
    catalogue.close().await;

    let Err(wrong) = Catalogue::connect(&url("verify-full", "other-ca.pem")).await else {
        panic!("a server certificate from another CA was accepted");
    };
    let wrong = wrong.to_string();
    assert!(
        wrong.to_lowercase().contains("certificate"),
        "the error does not say what is wrong: {wrong}"
    );

    let Err(plain) = Catalogue::connect(&url("disable", "ca.pem")).await else {
        panic!("a plaintext connection was accepted");
    };
    let plain = plain.to_string();
    assert!(plain.contains("no encryption"), "{plain}");
}

/// Runs `strata objects --json` against `server` with `args` and `env`; (ok, stdout,
/// stderr).
fn list_objects(server: &str, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["objects", "--json", "--server", server])
        .args(args)
        .env_remove("STRATA_CA_CERT")
        .env_remove("API_TOKEN")
        .envs(env.iter().copied())
        .env("RUST_LOG", "off")
        .output()
        .expect("run strata");
    common::outcome(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_talks_https_with_a_private_ca() {
    let server = EmbeddedServer::start().await;
    let pki = Pki::new();
    let target = server.url("").trim_start_matches("http://").to_string();
    let tunnel = Stunnel::start(&pki, &target);
    let https = format!("https://localhost:{}", tunnel.port);
    let ca = pki.file("ca.pem").display().to_string();

    let (ok, out, err) = list_objects(&https, &["--ca-cert", &ca], &[]);
    assert!(ok, "--ca-cert: {err}");
    assert!(out.contains("\"items\""), "{out}");
    let (ok, _, err) = list_objects(&https, &[], &[("STRATA_CA_CERT", &ca)]);
    assert!(ok, "STRATA_CA_CERT: {err}");

    let (ok, _, err) = list_objects(&https, &[], &[]);
    assert!(!ok, "a server signed by an unknown CA was trusted");
    assert!(err.contains("cannot reach"), "{err}");
    let other = pki.file("other-ca.pem").display().to_string();
    let (ok, _, _) = list_objects(&https, &["--ca-cert", &other], &[]);
    assert!(!ok, "a server signed by another CA was trusted");
}

/// A store on the stack's `public` S3 server reached through `tunnel` at `https://localhost`,
/// trusting `ca` (a PEM file) when given.
async fn store_through(tunnel: &Stunnel, ca: Option<&std::path::Path>) -> Store {
    let mut tier = stack_tier("public");
    let BackendConfig::S3(s3) = &mut tier.backend else {
        panic!("the stack's public tier is not S3");
    };
    s3.endpoint = Some(format!("https://localhost:{}", tunnel.port));
    s3.ca_certificates = ca.map(|path| std::fs::read(path).unwrap());
    Store::open(&tier.backend, stack_config().transfer)
        .await
        .expect("open the store")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_tier_behind_tls_with_a_private_ca() {
    strata::tls::install_provider();
    let pki = Pki::new();
    let BackendConfig::S3(s3) = stack_tier("public").backend else {
        panic!("the stack's public tier is not S3");
    };
    let server = s3.endpoint.unwrap();
    let tunnel = Stunnel::start(&pki, server.trim_start_matches("http://"));

    let store = store_through(&tunnel, Some(&pki.file("ca.pem"))).await;
    let key = format!("tls/{}", uuid::Uuid::now_v7().simple());
    store
        .put(
            &key,
            chunks(&b"over TLS"[..]),
            "text/plain",
            Declared::default(),
        )
        .await
        .expect("put through TLS with the private CA");
    let mut stream = store.get(&key, None, None).await.unwrap();
    let mut read = Vec::new();
    while let Some(chunk) = stream.next().await {
        read.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(read, b"over TLS");
    store.delete(&key).await.unwrap();

    let untrusting = store_through(&tunnel, None).await;
    assert!(
        untrusting
            .put(&key, chunks(&b"x"[..]), "text/plain", Declared::default())
            .await
            .is_err(),
        "a server signed by an unknown CA was trusted"
    );
}

//! The Kubernetes manifests in `deploy/kubernetes/`: valid against the Kubernetes API
//! schemas (kubernetes-validate, offline, strict: no unknown fields), probing the
//! service's own health routes, and naming only settings the service reads.

use std::path::{Path, PathBuf};
use std::process::Command;

fn manifests() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in {}", dir.display());
    files
}

#[test]
fn manifests_validate_against_the_kubernetes_schemas() {
    let out = Command::new("kubernetes-validate")
        .arg("--strict")
        .args(manifests())
        .output()
        .expect("run kubernetes-validate (scripts/test.sh installs it)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    for kind in ["deployment", "service", "poddisruptionbudget", "configmap"] {
        assert!(
            said.contains(&format!("passed for resource {kind}/")),
            "no {kind}: {said}"
        );
    }
}

#[test]
fn manifests_probe_health_and_name_only_known_settings() {
    let documented =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.env.example")).unwrap();
    for file in manifests() {
        let text = std::fs::read_to_string(&file).unwrap();
        for path in ["path: /readyz", "path: /healthz"] {
            assert!(
                text.contains(path),
                "{}: no probe on {path}",
                file.display()
            );
        }
        // Settings: ConfigMap keys (`  NAME: "…"`) and container env names.
        let settings = text.lines().filter_map(|line| {
            let line = line.trim_start();
            let name = line
                .strip_prefix("- name: ")
                .or_else(|| line.split_once(": ").map(|(k, _)| k))?;
            let upper = name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            (upper && name.len() > 2).then(|| name.to_string())
        });
        for name in settings {
            let base = name.strip_suffix("_FILE").unwrap_or(&name);
            // A tier's settings are documented once, as TIER_<NAME>_….
            let known = match base.strip_prefix("TIER_").and_then(|r| r.split_once('_')) {
                Some((_, setting)) => documented.contains(&format!("TIER_<NAME>_{setting}")),
                None => documented.contains(&format!("{base}=")),
            };
            assert!(
                known,
                "{}: {name} is not a setting .env.example documents",
                file.display()
            );
        }
    }
}

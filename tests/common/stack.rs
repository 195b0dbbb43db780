//! The local stack: the settings `scripts/stack.sh up` wrote, its tiers and stores, and
//! where its tools are.

use std::collections::HashMap;
use std::path::PathBuf;
use strata::config::{Config, TierConfig};
use strata::storage::Store;

/// The settings `scripts/stack.sh up` wrote to `.stack/stack.env` (or `$STRATA_STACK_ENV`).
pub fn stack_env() -> HashMap<String, String> {
    let path = std::env::var("STRATA_STACK_ENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".stack/stack.env"));
    let vars = dotenvy::from_path_iter(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}. Start the local stack first: scripts/stack.sh up",
            path.display()
        )
    });
    vars.map(|item| item.expect("malformed line in the stack env file"))
        .collect()
}

/// The service configuration for the local stack.
pub fn stack_config() -> Config {
    let env = stack_env();
    Config::from_lookup(|k| env.get(k).cloned()).expect("stack env file is a valid configuration")
}

/// The stack's configuration of tier `name`.
pub fn stack_tier(name: &str) -> TierConfig {
    stack_config()
        .tier(name)
        .unwrap_or_else(|| panic!("no tier {name} in the stack configuration"))
        .clone()
}

/// A store on the stack's S3 server of tier `name`.
pub async fn s3_store(name: &str) -> Store {
    let config = stack_config();
    Store::open(&stack_tier(name).backend, config.transfer)
        .await
        .expect("open S3 store")
}

/// Directory where the stack's S3 server for tier `name` keeps bucket `strata-<name>`.
pub fn s3_bucket_dir(name: &str) -> PathBuf {
    let env = stack_env();
    PathBuf::from(&env["STACK_S3_ROOT"])
        .join(name)
        .join(format!("strata-{name}"))
}

/// Path of an installed tool: on PATH, or in cargo's bin directory.
pub fn which(tool: &str) -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain(std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin")))
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{tool} not found; run scripts/stack.sh up"))
}

/// A name no other test uses, for topics and consumer groups.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::now_v7().simple())
}

/// A finished command's (success, stdout, stderr).
pub fn outcome(out: std::process::Output) -> (bool, String, String) {
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

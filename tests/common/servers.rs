//! `strata serve` processes: on the local stack, and embedded with no configuration.

use std::collections::HashMap;
use std::path::PathBuf;

use super::*;

/// A `strata serve` process on the local stack with its own topic, consumer group and
/// working directory, logging to `strata.log` there; killed when dropped (its log
/// printed when the test failed).
pub struct StrataServer {
    child: ServerProcess,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The working directory (its `data/` holds embedded-mode state).
    pub workdir: tempfile::TempDir,
}

impl StrataServer {
    /// Starts a server on the stack with catalogue `db`; `extra` variables override the
    /// stack's and the test defaults.
    pub async fn start(db: &TestDb, extra: &[(&str, &str)]) -> StrataServer {
        let topic = unique_name("access");
        create_topic(&topic, 3).await;
        create_topic(&format!("{topic}.dlq"), 1).await;
        let workdir = tempfile::tempdir().unwrap();
        let mut env: HashMap<String, String> = stack_env();
        for (k, v) in [
            ("DATABASE_URL", db.url.clone()),
            (
                "DATA_DIR",
                workdir.path().join("data").display().to_string(),
            ),
            ("LISTEN_ADDR", "127.0.0.1:0".into()),
            ("KAFKA_BROKERS", kafka_brokers()),
            ("KAFKA_ACCESS_TOPIC", topic),
            ("KAFKA_GROUP_ID", unique_name("group")),
            ("EVENTS_FLUSH_MS", "50".into()),
            ("MOVER_POLL_MS", "50".into()),
            // The shipped default model, as a fresh deployment has it.
            (
                "MODELS_DIR",
                concat!(env!("CARGO_MANIFEST_DIR"), "/models").into(),
            ),
            ("RUST_LOG", "strata=info".into()),
        ] {
            env.insert(k.into(), v);
        }
        for (k, v) in extra {
            env.insert(k.to_string(), v.to_string());
        }
        let (child, base) = serve(workdir.path(), env, std::time::Duration::from_secs(30)).await;
        StrataServer {
            child,
            base,
            workdir,
        }
    }

    /// The full URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Ingests `body` under `key` over REST; the new object's id.
    pub fn ingest(&self, key: &str, body: &str) -> String {
        ingest_at(&self.base, key, body)["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The value of one Prometheus sample, `name` including its labels.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let (_, page) = http("GET", &self.url("/metrics"), None);
        page.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.workdir.path().join("strata.log")).unwrap_or_default()
    }

    /// `http://ADDRESS` of the S3 endpoint (started with `S3_LISTEN_ADDR`).
    pub fn s3_endpoint(&self) -> String {
        s3_endpoint_in(&self.log())
    }

    /// How the server exited, waiting at most `timeout`; `None` while it still runs.
    pub fn exit_within(
        &mut self,
        timeout: std::time::Duration,
    ) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// The names of the server's threads, as the kernel keeps them (15 bytes at most).
    pub fn thread_names(&self) -> Vec<String> {
        std::fs::read_dir(format!("/proc/{}/task", self.child.id()))
            .expect("the server process is running")
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .map(|name| name.trim_end().to_string())
            .collect()
    }

    /// The server's peak resident set size so far (`VmHWM`), in bytes.
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the server process is running");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmHWM in /proc/PID/status")
            * 1024
    }
}

impl Drop for StrataServer {
    /// Shows the log of a failed test's server; the server is killed when `child` drops.
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("strata serve's log:\n{}", self.log());
        }
    }
}

/// `strata serve` with no configuration at all, as a newcomer starts it: the environment
/// cleared but for `PATH`, `HOME` and `LISTEN_ADDR` on a port it binds itself (8080 may
/// be taken on a test machine), in a working directory of its own that holds a copy of the repository's
/// `models/`, so that `./data` is fresh and the shipped model is found. Killed when
/// dropped; [`EmbeddedServer::stop`] shuts it down gracefully.
pub struct EmbeddedServer {
    child: Option<ServerProcess>,
    extra: Vec<(String, String)>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The working directory; its `data/` holds the catalogue and the tiers.
    pub workdir: tempfile::TempDir,
}

impl EmbeddedServer {
    /// Starts a server in a fresh working directory.
    pub async fn start() -> EmbeddedServer {
        EmbeddedServer::start_with(&[]).await
    }

    /// Starts a server in a fresh working directory with `extra` variables set (and no
    /// others), on every start.
    pub async fn start_with(extra: &[(&str, &str)]) -> EmbeddedServer {
        let workdir = tempfile::tempdir().unwrap();
        let models = workdir.path().join("models");
        std::fs::create_dir(&models).unwrap();
        for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/models")).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), models.join(entry.file_name())).unwrap();
        }
        let mut server = EmbeddedServer {
            child: None,
            extra: extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            base: String::new(),
            workdir,
        };
        server.restart().await;
        server
    }

    /// Starts the server (again) in the same working directory, the first time on a port
    /// it binds itself, then on the same port; its log is appended to `strata.log` there.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "the server is running");
        let mut env: HashMap<String, String> = ["PATH", "HOME"]
            .into_iter()
            .filter_map(|var| Some((var.to_string(), std::env::var(var).ok()?)))
            .collect();
        // The address of the first run, once there was one.
        let listen = self.base.strip_prefix("http://").unwrap_or("127.0.0.1:0");
        env.insert("LISTEN_ADDR".into(), listen.to_string());
        env.extend(self.extra.iter().cloned());
        let (child, base) =
            serve(self.workdir.path(), env, std::time::Duration::from_secs(60)).await;
        self.child = Some(child);
        self.base = base;
    }

    /// Stops the server with SIGTERM and waits for it to exit; asserts a clean exit.
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("the server is running");
        let signal = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(signal.success(), "kill -TERM failed");
        let status = child.wait().unwrap();
        assert!(
            status.success(),
            "strata serve exited with {status}; log:\n{}",
            self.log()
        );
    }

    /// The full URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Where the server's log goes.
    pub fn log_path(&self) -> PathBuf {
        self.workdir.path().join("strata.log")
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// `http://ADDRESS` of the S3 endpoint (started with `S3_LISTEN_ADDR`).
    pub fn s3_endpoint(&self) -> String {
        s3_endpoint_in(&self.log())
    }
}

/// `strata serve` started in `workdir` with exactly the variables `env`, its output
/// going to `stdout` and `stderr`; killed when dropped.
pub fn spawn_serve(
    workdir: &std::path::Path,
    env: HashMap<String, String>,
    stdout: impl Into<std::process::Stdio>,
    stderr: impl Into<std::process::Stdio>,
) -> ServerProcess {
    ServerProcess::of(
        std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("serve")
            .current_dir(workdir)
            .env_clear()
            .envs(env)
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("start strata serve"),
    )
}

/// Starts `strata serve` in `workdir` with exactly the variables `env`, its output
/// appended to `strata.log` there, and waits up to `patience` until it answers; the
/// process and its base URL (`LISTEN_ADDR` may ask for port 0).
async fn serve(
    workdir: &std::path::Path,
    env: HashMap<String, String>,
    patience: std::time::Duration,
) -> (ServerProcess, String) {
    let log_path = workdir.join("strata.log");
    let logged = std::fs::metadata(&log_path).map_or(0, |m| m.len() as usize);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .unwrap();
    let mut child = spawn_serve(workdir, env, log.try_clone().unwrap(), log);
    let base = format!(
        "http://{}",
        listen_address(&log_path, logged, &mut child).await
    );
    eventually(patience, "strata serve to answer", || async {
        http("GET", &format!("{base}/healthz"), None).0 == 200
    })
    .await;
    (child, base)
}

/// `http://ADDRESS` of the S3 endpoint a server's log says it started last.
fn s3_endpoint_in(log: &str) -> String {
    let address = log
        .lines()
        .rev()
        .filter(|l| l.contains("S3 endpoint is listening"))
        .find_map(|l| l.split("listen=").nth(1)?.split_whitespace().next())
        .unwrap_or_else(|| panic!("the server has no S3 endpoint:\n{log}"));
    format!("http://{address}")
}

/// The address a server started with `LISTEN_ADDR` port 0 says it listens on, read from
/// its log past the first `from` bytes (what earlier runs logged).
pub async fn listen_address(
    log: &std::path::Path,
    from: usize,
    child: &mut std::process::Child,
) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let address = text
            .get(from..)
            .unwrap_or_default()
            .lines()
            .find(|l| l.contains("strata is running"))
            .and_then(|l| l.split("listen=").nth(1))
            .and_then(|a| a.split_whitespace().next());
        if let Some(address) = address {
            return address.to_string();
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("strata serve exited with {status} before it listened:\n{text}");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "strata serve never said where it listens:\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A server process a test started itself (a broker, an S3 server, `strata serve`);
/// killed when dropped, so that a failing test leaves none running.
pub struct ServerProcess {
    child: std::process::Child,
}

impl ServerProcess {
    /// Takes charge of `child`.
    pub fn of(child: std::process::Child) -> ServerProcess {
        ServerProcess { child }
    }

    /// Starts `command`, its output discarded, and waits up to `patience` until `port` on
    /// loopback takes connections (blocking: only a process of its own is awaited).
    pub fn listening(
        mut command: std::process::Command,
        port: u16,
        patience: std::time::Duration,
    ) -> ServerProcess {
        let child = command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {command:?}: {e}"));
        let server = ServerProcess { child };
        let deadline = std::time::Instant::now() + patience;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "{command:?} did not listen on port {port} within {patience:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        server
    }
}

impl std::ops::Deref for ServerProcess {
    type Target = std::process::Child;

    fn deref(&self) -> &std::process::Child {
        &self.child
    }
}

impl std::ops::DerefMut for ServerProcess {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.child
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

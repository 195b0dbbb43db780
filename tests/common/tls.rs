//! Real TLS endpoints for the connectivity tests: a private certificate authority made
//! with the `openssl` command, a PostgreSQL cluster of its own with `ssl=on` that
//! refuses plaintext, and `stunnel` in front of a plain HTTP server.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::http::free_port;
use super::servers::ServerProcess;
use super::stack::which;

/// A private certificate authority and a server certificate it signed for `localhost`
/// and `127.0.0.1`; and an unrelated authority, which must not be trusted for it.
pub struct Pki {
    /// Holds the files (removed on drop).
    pub dir: tempfile::TempDir,
}

impl Pki {
    /// Makes the authorities and the server's key and certificate.
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .expect("run openssl");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        for ca in ["ca", "other-ca"] {
            openssl(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN=Strata test {ca}"),
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
            ]);
        }
        std::fs::write(
            dir.path().join("san.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .unwrap();
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ]);
        Pki { dir }
    }

    /// The path of one of its files (`ca.pem`, `other-ca.pem`, `server.pem`, `server.key`).
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A PostgreSQL cluster of its own on a free port that accepts only TLS connections
/// (user `postgres`, trust authentication once the TLS handshake is done).
pub struct TlsPostgres {
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

impl TlsPostgres {
    /// Creates and starts the cluster with `pki`'s server certificate.
    pub fn start(pki: &Pki) -> TlsPostgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's server binaries under /usr/lib/postgresql")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .find(|bin| bin.join("initdb").is_file())
            .expect("initdb");
        // The server refuses to run as root, and wants its files its own.
        let dir = std::env::temp_dir().join(format!("strata-pg-tls-{}", free_port()));
        let data = dir.join("data");
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["server.pem", "server.key"] {
            std::fs::copy(pki.file(name), dir.join(name)).unwrap();
        }
        let as_postgres = |program: &Path, args: &[&str]| {
            let out = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(program)
                .args(args)
                .output()
                .expect("run as postgres");
            assert!(
                out.status.success(),
                "{} {args:?}: {}",
                program.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let chown = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(chown.success());
        std::fs::set_permissions(
            dir.join("server.key"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        let data_arg = data.display().to_string();
        as_postgres(
            &bin.join("initdb"),
            &[
                "-D",
                &data_arg,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ],
        );
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\n\
             hostssl all all 127.0.0.1/32 trust\n\
             hostnossl all all 127.0.0.1/32 reject\n",
        )
        .unwrap();
        let port = free_port();
        let conf = format!(
            "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
            dir.display(),
            dir.join("server.pem").display(),
            dir.join("server.key").display()
        );
        let mut config = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
        config.push_str(&conf);
        std::fs::write(data.join("postgresql.conf"), config).unwrap();
        let log = dir.join("log").display().to_string();
        as_postgres(
            &bin.join("pg_ctl"),
            &["-D", &data_arg, "-l", &log, "-w", "-t", "30", "start"],
        );
        TlsPostgres { port, dir, bin }
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &self.dir.join("data").display().to_string()])
            .args(["-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `stunnel` accepting TLS on a free port with `pki`'s server certificate and passing
/// the plaintext to `target` (HOST:PORT).
pub struct Stunnel {
    /// Its port on 127.0.0.1.
    pub port: u16,
    _process: ServerProcess,
    _dir: tempfile::TempDir,
}

impl Stunnel {
    /// Starts it on a free port and waits until it accepts connections.
    pub fn start(pki: &Pki, target: &str) -> Stunnel {
        Stunnel::start_on(pki, free_port(), target)
    }

    /// [`Stunnel::start`] on `port`.
    pub fn start_on(pki: &Pki, port: u16, target: &str) -> Stunnel {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("stunnel.conf");
        std::fs::write(
            &conf,
            format!(
                "foreground = yes\npid =\n[strata]\naccept = 127.0.0.1:{port}\n\
                 connect = {target}\ncert = {}\nkey = {}\n",
                pki.file("server.pem").display(),
                pki.file("server.key").display()
            ),
        )
        .unwrap();
        let mut command = Command::new(which("stunnel4"));
        command.arg(&conf);
        Stunnel {
            port,
            _process: ServerProcess::listening(command, port, Duration::from_secs(10)),
            _dir: dir,
        }
    }
}

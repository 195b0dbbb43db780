//! S3 servers of a test's own: one it can stop and start, and a proxy that damages
//! bytes on the way in.

use strata::config::TierConfig;

use super::*;

/// An s3s-fs server of the test's own, on a free loopback port, that the test can stop
/// and start again (the stack's shared servers must stay up for other tests).
pub struct OwnS3Server {
    pub port: u16,
    pub root: tempfile::TempDir,
    child: Option<std::process::Child>,
}

impl OwnS3Server {
    /// Starts a server with bucket `bucket`, using the stack's credentials.
    pub fn start(bucket: &str) -> OwnS3Server {
        let port = free_port();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join(bucket)).unwrap();
        let mut server = OwnS3Server {
            port,
            root,
            child: None,
        };
        server.resume();
        server
    }

    /// Starts the server again on the same port and directory.
    pub fn resume(&mut self) {
        let env = stack_env();
        let binary = which("s3s-fs");
        let child = std::process::Command::new(binary)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", &env["TIER_PUBLIC_ACCESS_KEY_ID"]])
            .args(["--secret-key", &env["TIER_PUBLIC_SECRET_ACCESS_KEY"]])
            .arg(self.root.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start s3s-fs");
        self.child = Some(child);
        for _ in 0..500 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("s3s-fs did not start on port {}", self.port);
    }

    /// Stops the server (SIGKILL): connections are refused until [`OwnS3Server::resume`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A tier named `name` on this server's bucket `bucket`.
    pub fn tier(&self, name: &str, bucket: &str) -> TierConfig {
        let mut tier = stack_tier("public");
        tier.name = name.into();
        if let strata::config::BackendConfig::S3(s3) = &mut tier.backend {
            s3.bucket = bucket.into();
            s3.endpoint = Some(format!("http://127.0.0.1:{}", self.port));
        }
        tier
    }
}

impl Drop for OwnS3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A TCP proxy in front of an S3 server that flips one bit in the middle of the body of
/// every PUT it forwards (objects and parts): a network or server that damages bytes on
/// the way in. Requests go through head first, so `Expect: 100-continue` still works.
pub struct BitFlipProxy {
    pub port: u16,
    accepting: tokio::task::JoinHandle<()>,
}

impl BitFlipProxy {
    pub async fn start(upstream_port: u16) -> BitFlipProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepting = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(flip_put_bodies(client, upstream_port));
            }
        });
        BitFlipProxy { port, accepting }
    }
}

impl BitFlipProxy {
    /// A tier named `name` on `server`'s bucket `name`, reached through a new proxy
    /// (kept with it), its payloads signed or not.
    pub async fn tier(
        server: &OwnS3Server,
        name: &str,
        sign_payload: bool,
    ) -> (TierConfig, BitFlipProxy) {
        let proxy = BitFlipProxy::start(server.port).await;
        let mut tier = server.tier(name, name);
        if let strata::config::BackendConfig::S3(s3) = &mut tier.backend {
            s3.endpoint = Some(format!("http://127.0.0.1:{}", proxy.port));
            s3.sign_payload = sign_payload;
        }
        (tier, proxy)
    }
}

impl Drop for BitFlipProxy {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

/// Forwards one client connection to the server, request by request.
async fn flip_put_bodies(client: tokio::net::TcpStream, upstream_port: u16) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream_port)).await else {
        return;
    };
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let answers =
        tokio::spawn(async move { tokio::io::copy(&mut from_server, &mut to_client).await });
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    'requests: loop {
        let head_len = loop {
            if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match from_client.read(&mut chunk).await {
                Ok(0) | Err(_) => break 'requests,
                Ok(n) => pending.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&pending[..head_len]).to_ascii_lowercase();
        let body_len: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let flip_at = head.starts_with("put ").then_some(body_len / 2);
        if to_server.write_all(&pending[..head_len]).await.is_err() {
            break;
        }
        pending.drain(..head_len);
        let mut forwarded = 0;
        while forwarded < body_len {
            if pending.is_empty() {
                match from_client.read(&mut chunk).await {
                    Ok(0) | Err(_) => break 'requests,
                    Ok(n) => pending.extend_from_slice(&chunk[..n]),
                }
            }
            let take = pending.len().min(body_len - forwarded);
            let mut piece: Vec<u8> = pending.drain(..take).collect();
            if let Some(at) = flip_at
                && (forwarded..forwarded + take).contains(&at)
            {
                piece[at - forwarded] ^= 0x01;
            }
            if to_server.write_all(&piece).await.is_err() {
                break 'requests;
            }
            forwarded += take;
        }
    }
    answers.abort();
}

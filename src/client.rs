//! The REST client behind the CLI's client subcommands (`strata ingest`, `objects`, …):
//! one method per API call, answers as JSON values, API errors as one readable line.

use std::path::Path;

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::Value;
use tokio_util::io::ReaderStream;

/// A failed client call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server URL is unusable.
    #[error("invalid server URL {url:?}: {why}")]
    Url {
        /// The URL given.
        url: String,
        /// Why it is unusable.
        why: String,
    },
    /// The server could not be reached or the connection broke.
    #[error("cannot reach {url}: {source}")]
    Connect {
        /// The server.
        url: String,
        /// What happened.
        source: reqwest::Error,
    },
    /// The server answered with an error.
    #[error("{status}: {message}")]
    Api {
        /// HTTP status.
        status: StatusCode,
        /// The error message of the body, or the body itself.
        message: String,
    },
    /// A local file could not be read.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: String,
        /// What happened.
        source: std::io::Error,
    },
}

/// A Strata server and the token to present.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    /// A client of the server at `server` (`http://host:port`), presenting `token`.
    pub fn new(
        server: &str,
        token: Option<String>,
        ca_cert: Option<&Path>,
    ) -> Result<Client, ClientError> {
        let base = server.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::Url {
                url: server.into(),
                why: "expected http://HOST:PORT or https://HOST:PORT".into(),
            });
        }
        crate::tls::install_provider();
        let mut builder = reqwest::Client::builder();
        if let Some(path) = ca_cert {
            let pem = std::fs::read(path).map_err(|source| ClientError::File {
                path: path.display().to_string(),
                source,
            })?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem)
                .ok()
                .filter(|certificates| !certificates.is_empty())
                .ok_or_else(|| ClientError::Url {
                    url: server.into(),
                    why: format!("{} holds no PEM certificate", path.display()),
                })?;
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder.build().map_err(|source| ClientError::Connect {
            url: base.clone(),
            source,
        })?;
        Ok(Client { http, base, token })
    }

    /// Uploads `file` (streamed), under `key` or its file name.
    pub async fn ingest(
        &self,
        file: &Path,
        key: Option<&str>,
        overwrite: bool,
    ) -> Result<Value, ClientError> {
        let file_error = |source| ClientError::File {
            path: file.display().to_string(),
            source,
        };
        let opened = tokio::fs::File::open(file).await.map_err(file_error)?;
        let length = opened.metadata().await.map_err(file_error)?.len();
        let key = key.map(str::to_string).unwrap_or_else(|| {
            file.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        let mut query = vec![("key", key)];
        if overwrite {
            query.push(("overwrite", "true".into()));
        }
        let request = self
            .request(Method::POST, "/api/v1/objects")
            .query(&query)
            .header(reqwest::header::CONTENT_TYPE, content_type_of(file))
            .header(reqwest::header::CONTENT_LENGTH, length)
            .body(reqwest::Body::wrap_stream(ReaderStream::new(opened)));
        self.send(request).await
    }

    /// A page of objects.
    pub async fn objects(&self, query: &[(&str, String)]) -> Result<Value, ClientError> {
        self.send(self.request(Method::GET, "/api/v1/objects").query(query))
            .await
    }

    /// Publishes `count` simulated reads of object `id`.
    pub async fn access(&self, id: &str, count: u64) -> Result<Value, ClientError> {
        let path = format!("/api/v1/objects/{}/access", segment(id));
        self.send(
            self.request(Method::POST, &path)
                .json(&serde_json::json!({ "count": count })),
        )
        .await
    }

    /// A page of migrations.
    pub async fn migrations(&self, query: &[(&str, String)]) -> Result<Value, ClientError> {
        self.send(self.request(Method::GET, "/api/v1/migrations").query(query))
            .await
    }

    /// Queues a manual move of object `id` to `tier`.
    pub async fn migrate(&self, id: &str, tier: &str) -> Result<Value, ClientError> {
        let path = format!("/api/v1/objects/{}/migrations", segment(id));
        self.send(
            self.request(Method::POST, &path)
                .json(&serde_json::json!({ "to_tier": tier })),
        )
        .await
    }

    /// Plans (`dry_run`) or queues a bulk move: `request` as `POST /migrations/batches`
    /// takes it.
    pub async fn batch(&self, request: &Value) -> Result<Value, ClientError> {
        self.send(
            self.request(Method::POST, "/api/v1/migrations/batches")
                .json(request),
        )
        .await
    }

    /// A bulk move's progress, or, with `cancel`, cancels what of it has not started.
    pub async fn batch_status(&self, id: &str, cancel: bool) -> Result<Value, ClientError> {
        let path = format!("/api/v1/migrations/batches/{}", segment(id));
        let request = if cancel {
            self.request(Method::POST, &format!("{path}/cancel"))
        } else {
            self.request(Method::GET, &path)
        };
        self.send(request).await
    }

    /// Every rule.
    pub async fn rules(&self) -> Result<Value, ClientError> {
        self.send(self.request(Method::GET, "/api/v1/rules")).await
    }

    /// Stores `rule` as rule `id`.
    pub async fn put_rule(&self, id: &str, rule: &Value) -> Result<Value, ClientError> {
        let path = format!("/api/v1/rules/{}", segment(id));
        self.send(self.request(Method::PUT, &path).json(rule)).await
    }

    /// Deletes rule `id`.
    pub async fn delete_rule(&self, id: &str) -> Result<(), ClientError> {
        let path = format!("/api/v1/rules/{}", segment(id));
        self.execute(self.request(Method::DELETE, &path)).await?;
        Ok(())
    }

    /// The prediction for object `id`.
    pub async fn predict(&self, id: &str) -> Result<Value, ClientError> {
        let path = format!("/api/v1/objects/{}/prediction", segment(id));
        self.send(self.request(Method::GET, &path)).await
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> Result<String, ClientError> {
        let response = self.execute(self.request(Method::GET, "/metrics")).await?;
        response.text().await.map_err(|source| self.connect(source))
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn execute(&self, request: RequestBuilder) -> Result<reqwest::Response, ClientError> {
        let response = request
            .send()
            .await
            .map_err(|source| self.connect(source))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
            .unwrap_or(body);
        Err(ClientError::Api { status, message })
    }

    async fn send(&self, request: RequestBuilder) -> Result<Value, ClientError> {
        let response = self.execute(request).await?;
        response.json().await.map_err(|source| self.connect(source))
    }

    fn connect(&self, source: reqwest::Error) -> ClientError {
        ClientError::Connect {
            url: self.base.clone(),
            source,
        }
    }
}

/// `id` made safe as one URL path segment.
fn segment(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A Content-Type guessed from the file extension; unknown ones are plain bytes.
fn content_type_of(file: &Path) -> &'static str {
    let extension = file
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "txt" | "log" | "md" => "text/plain",
        "csv" => "text/csv",
        "json" => "application/json",
        "html" | "htm" => "text/html",
        "xml" => "application/xml",
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "gz" | "tgz" => "application/gzip",
        "zip" => "application/zip",
        "parquet" => "application/vnd.apache.parquet",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_escaped_as_one_path_segment() {
        assert_eq!(segment("0190-ab_c.d~"), "0190-ab_c.d~");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn http_and_https_servers_are_accepted() {
        assert!(Client::new("http://127.0.0.1:8080/", None, None).is_ok());
        assert!(Client::new("https://strata.example", None, None).is_ok());
        assert!(matches!(
            Client::new("127.0.0.1:8080", None, None),
            Err(ClientError::Url { .. })
        ));
        let dir = tempfile::tempdir().unwrap();
        let not_pem = dir.path().join("ca.pem");
        std::fs::write(&not_pem, "not a certificate").unwrap();
        assert!(matches!(
            Client::new("https://strata.example", None, Some(&not_pem)),
            Err(ClientError::Url { .. })
        ));
        assert!(matches!(
            Client::new(
                "https://strata.example",
                None,
                Some(&dir.path().join("absent"))
            ),
            Err(ClientError::File { .. })
        ));
    }

    #[test]
    fn content_type_follows_the_extension() {
        assert_eq!(content_type_of(Path::new("a/report.CSV")), "text/csv");
        assert_eq!(
            content_type_of(Path::new("blob")),
            "application/octet-stream"
        );
    }
}

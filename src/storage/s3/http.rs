//! The HTTP client S3 stores send their requests with: the AWS SDK's own (hyper over
//! rustls), except that every connection acknowledges what it receives at once.
//!
//! A server that leaves Nagle's algorithm on (s3s-fs does) sends the last segment of an
//! answer only once the segments before it are acknowledged, and a Linux client delays
//! that acknowledgement by up to 40 ms: a 100 KiB GET on a kept-alive connection took
//! 44 ms instead of 0.3. The SDK's client cannot set `TCP_QUICKACK` before its reads,
//! so this one, built from the same parts, does. Against servers that send at once
//! (AWS S3, MinIO) it changes nothing but a system call per read.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use hyper::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector as TcpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::CertificateDer;
use tokio::net::TcpStream;

use crate::tcp;

/// The SDK's HTTP client for one S3 store: plain HTTP or TLS with the system's roots
/// plus any certificates the tier's settings add.
#[derive(Debug)]
pub struct QuickAckClient {
    tls: rustls::ClientConfig,
    /// One connection pool per timeout setting (the SDK asks per operation).
    connectors: RwLock<HashMap<Timeouts, SharedHttpConnector>>,
}

/// The SDK's connect and read timeouts.
type Timeouts = (Option<Duration>, Option<Duration>);

impl QuickAckClient {
    /// A client trusting the system's roots and the PEM certificates in `extra_roots`.
    pub fn new(extra_roots: Option<&[u8]>) -> Result<QuickAckClient, rustls::Error> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(system_roots().iter().cloned());
        if let Some(pem) = extra_roots {
            use rustls::pki_types::pem::PemObject;
            for certificate in CertificateDer::pem_slice_iter(pem) {
                let certificate = certificate.map_err(|e| {
                    rustls::Error::General(format!("a CA certificate could not be read: {e}"))
                })?;
                roots.add(certificate)?;
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(QuickAckClient {
            tls,
            connectors: RwLock::default(),
        })
    }

    fn connector(&self, settings: &HttpConnectorSettings) -> SharedHttpConnector {
        let mut tcp = TcpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(settings.connect_timeout());
        let https = HttpsConnectorBuilder::new()
            .with_tls_config(self.tls.clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(QuickAckConnector(tcp));
        let client = Client::builder(TokioExecutor::new())
            // Without a timer the pool never closes idle connections.
            .pool_timer(TokioTimer::new())
            .build(https);
        SharedHttpConnector::new(PooledConnector {
            client,
            read_timeout: settings.read_timeout(),
        })
    }
}

/// The system's trusted certificates, read once per process; unreadable ones are left
/// out, as the SDK's client leaves them.
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| rustls_native_certs::load_native_certs().certs)
}

impl HttpClient for QuickAckClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let key = (settings.connect_timeout(), settings.read_timeout());
        if let Some(connector) = self
            .connectors
            .read()
            .ok()
            .and_then(|c| c.get(&key).cloned())
        {
            return connector;
        }
        let mut connectors = self.connectors.write().unwrap_or_else(|e| e.into_inner());
        connectors
            .entry(key)
            .or_insert_with(|| self.connector(settings))
            .clone()
    }
}

/// Sends the SDK's requests through one pool of connections.
#[derive(Debug, Clone)]
struct PooledConnector {
    client: Client<HttpsConnector<QuickAckConnector>, SdkBody>,
    /// How long an answer's head may take, when the SDK sets it.
    read_timeout: Option<Duration>,
}

impl HttpConnector for PooledConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        let answer = self.client.request(request);
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let answer = match read_timeout {
                Some(limit) => tokio::time::timeout(limit, answer)
                    .await
                    .map_err(|e| ConnectorError::timeout(e.into()))?,
                None => answer.await,
            };
            let answer = answer.map_err(connector_error)?.map(SdkBody::from_body_1_x);
            HttpResponse::try_from(answer).map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// Sorts a failed exchange as the SDK's retry rules expect: a connection that could not
/// be made or broke is an I/O error (retried), a timeout a timeout, anything else other.
fn connector_error(error: hyper_util::client::legacy::Error) -> ConnectorError {
    let timed_out = std::error::Error::source(&error)
        .and_then(|source| source.downcast_ref::<hyper::Error>())
        .is_some_and(hyper::Error::is_timeout);
    if timed_out {
        ConnectorError::timeout(error.into())
    } else if error.is_connect() || has_io_source(&error) {
        ConnectorError::io(error.into())
    } else {
        ConnectorError::other(error.into(), None)
    }
}

fn has_io_source(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = error.source();
    while let Some(source) = next {
        if source.is::<io::Error>()
            || source
                .downcast_ref::<hyper::Error>()
                .is_some_and(|e| e.is_closed() || e.is_canceled() || e.is_incomplete_message())
        {
            return true;
        }
        next = source.source();
    }
    false
}

/// Opens TCP connections that acknowledge at once ([`QuickAckStream`]).
#[derive(Debug, Clone)]
struct QuickAckConnector(TcpConnector);

impl tower_service::Service<Uri> for QuickAckConnector {
    type Response = QuickAckStream;
    type Error = <TcpConnector as tower_service::Service<Uri>>::Error;
    type Future = Pin<Box<dyn Future<Output = Result<QuickAckStream, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.0.call(uri);
        Box::pin(async move { connecting.await.map(QuickAckStream) })
    }
}

/// A TCP connection that asks for immediate acknowledgements before every read.
#[derive(Debug)]
struct QuickAckStream(TokioIo<TcpStream>);

impl Read for QuickAckStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        tcp::acknowledge_at_once(self.0.inner());
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl Write for QuickAckStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
}

impl Connection for QuickAckStream {
    fn connected(&self) -> Connected {
        self.0.connected()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_ca_certificate_is_refused_not_skipped() {
        let damaged =
            b"-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n";
        let error = QuickAckClient::new(Some(damaged)).unwrap_err();
        assert!(error.to_string().contains("CA certificate"), "{error}");
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_tier_connection_acknowledges_what_it_reads_at_once() {
        use std::io::{Read as _, Write as _};

        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tower_service::Service;

        use crate::tcp::tests::acknowledges_at_once;

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut server, _) = listener.accept().unwrap();
            let mut request = [0; 7];
            for _ in 0..4 {
                server.read_exact(&mut request).unwrap();
                server.write_all(b"answer").unwrap();
            }
        });
        let uri = format!("http://{address}").parse().unwrap();
        let stream = QuickAckConnector(TcpConnector::new())
            .call(uri)
            .await
            .unwrap();
        let mut stream = TokioIo::new(stream);
        for exchange in 0..4 {
            stream.write_all(b"request").await.unwrap();
            let mut answer = [0; 6];
            stream.read_exact(&mut answer).await.unwrap();
            // After the first exchanges Linux would delay acknowledgements.
            assert!(
                acknowledges_at_once(stream.inner().0.inner()),
                "exchange {exchange}"
            );
        }
        server.join().unwrap();
    }
}

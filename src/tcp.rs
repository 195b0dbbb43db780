//! TCP options for request-response traffic, where neither end should wait on a timer of
//! the other's: a server that leaves Nagle's algorithm on holds the last segment of an
//! answer until the client acknowledges the ones before, and a client that delays its
//! acknowledgements (Linux does, up to 40 ms) keeps it waiting that long per answer.

use std::os::fd::AsRawFd;

use axum::serve::{ListenerExt, TapIo};
use tokio::net::{TcpListener, TcpStream};

/// `listener`, its accepted connections sending each answer whole at once
/// (`TCP_NODELAY`).
pub fn without_delay(listener: TcpListener) -> TapIo<TcpListener, fn(&mut TcpStream)> {
    listener.tap_io(send_at_once)
}

fn send_at_once(stream: &mut TcpStream) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "could not set TCP_NODELAY on an accepted connection");
    }
}

/// Asks the kernel to acknowledge what `socket` receives at once rather than delay the
/// acknowledgement. Linux resets this after some segments, so a reader calls it before
/// every read. Elsewhere it does nothing.
pub fn acknowledge_at_once(socket: &impl AsRawFd) {
    #[cfg(target_os = "linux")]
    {
        let on: libc::c_int = 1;
        // SAFETY: a valid descriptor, and a pointer to an int with its size. A failure
        // (a socket already closed, say) leaves the read itself to report it.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_QUICKACK,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = socket;
}

#[cfg(test)]
pub(crate) mod tests {
    use axum::serve::Listener;

    use super::*;

    #[tokio::test]
    async fn accepted_connections_send_without_delay() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let mut listener = without_delay(listener);
        let client = tokio::spawn(tokio::net::TcpStream::connect(address));
        let (accepted, _) = listener.accept().await;
        assert!(accepted.nodelay().unwrap());
        client.await.unwrap().unwrap();
    }

    /// Whether `socket` acknowledges at once (Linux reports 0 once it delays them).
    #[cfg(target_os = "linux")]
    pub(crate) fn acknowledges_at_once(socket: &impl AsRawFd) -> bool {
        let mut on: libc::c_int = 0;
        let mut size = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: a valid descriptor, and an int with its size to write to.
        let result = unsafe {
            libc::getsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_QUICKACK,
                (&mut on as *mut libc::c_int).cast(),
                &mut size,
            )
        };
        assert_eq!(result, 0, "{}", std::io::Error::last_os_error());
        on != 0
    }

    /// A connection that has exchanged requests and answers, at which Linux starts
    /// delaying its acknowledgements: the client's end and the server's.
    #[cfg(target_os = "linux")]
    fn interactive_pair() -> (std::net::TcpStream, std::net::TcpStream) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        let mut buf = [0; 64];
        for _ in 0..3 {
            client.write_all(b"request").unwrap();
            server.read_exact(&mut buf[..7]).unwrap();
            server.write_all(b"answer").unwrap();
            client.read_exact(&mut buf[..6]).unwrap();
        }
        (client, server)
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_socket_that_delays_acknowledgements_is_made_to_acknowledge_at_once() {
        let (client, _server) = interactive_pair();
        assert!(
            !acknowledges_at_once(&client),
            "the kernel delays acknowledgements"
        );
        acknowledge_at_once(&client);
        assert!(acknowledges_at_once(&client));
    }
}

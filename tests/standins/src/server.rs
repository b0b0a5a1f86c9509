//! The HTTP plumbing every stand-in shares: a loopback listener, one hyper connection task
//! per client and an axum router behind it.
//!
//! The stand-ins do not use `axum::serve` because the function app must be able to close a
//! connection without answering, the way a crashed host or a cut network does. A handler asks
//! for that by putting [`DropConnection`] into its response's extensions; the connection task
//! then fails the request, and hyper closes the socket without writing a byte.

use std::net::{Ipv4Addr, SocketAddr};

use axum::Router;
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tower::ServiceExt as _;

use crate::StartError;

/// A marker in a response's extensions: close the connection instead of sending it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DropConnection;

impl DropConnection {
    /// A response that is never sent: the connection closes instead.
    pub(crate) fn response() -> Response {
        let mut response = ().into_response();
        response.extensions_mut().insert(DropConnection);
        response
    }
}

/// The error a connection's service returns to make hyper close the socket.
#[derive(Debug)]
struct DroppedOnPurpose;

impl std::fmt::Display for DroppedOnPurpose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped on purpose by a stand-in")
    }
}

impl std::error::Error for DroppedOnPurpose {}

/// A running HTTP server on `127.0.0.1`; dropping it stops the server and its connections.
#[derive(Debug)]
pub(crate) struct HttpServer {
    base_url: String,
    accept_task: JoinHandle<()>,
}

impl HttpServer {
    /// Binds `127.0.0.1:0` and serves `router` on the current tokio runtime.
    pub(crate) async fn start(name: &'static str, router: Router) -> Result<Self, StartError> {
        Ok(BoundListener::bind(name).await?.serve(router))
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub(crate) fn base_url(&self) -> &str {
        &self.base_url
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every open connection.
        self.accept_task.abort();
    }
}

/// A listener bound to a loopback port but not serving yet, for servers whose routes need to
/// know their own URL (an issuer names itself in its tokens).
#[derive(Debug)]
pub(crate) struct BoundListener {
    name: &'static str,
    listener: TcpListener,
    base_url: String,
}

impl BoundListener {
    /// Binds `127.0.0.1:0`.
    pub(crate) async fn bind(name: &'static str) -> Result<Self, StartError> {
        let bind_error = |source| StartError::Bind {
            server: name,
            source,
        };
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .map_err(bind_error)?;
        let address = listener.local_addr().map_err(bind_error)?;
        Ok(Self {
            name,
            listener,
            base_url: format!("http://{address}"),
        })
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub(crate) fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Starts serving `router` on the current tokio runtime.
    pub(crate) fn serve(self, router: Router) -> HttpServer {
        tracing::debug!(server = self.name, base_url = %self.base_url, "stand-in listening");
        let accept_task = tokio::spawn(accept_loop(self.name, self.listener, router));
        HttpServer {
            base_url: self.base_url,
            accept_task,
        }
    }
}

async fn accept_loop(name: &'static str, listener: TcpListener, router: Router) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(name, stream, router.clone()));
                }
                Err(error) => {
                    // Running out of descriptors is transient; back off instead of spinning.
                    tracing::warn!(server = name, %error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(name: &'static str, stream: TcpStream, router: Router) {
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let router = router.clone();
        async move {
            let response = match router.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            if response.extensions().get::<DropConnection>().is_some() {
                return Err(DroppedOnPurpose);
            }
            Ok(response)
        }
    });

    if let Err(error) = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(server = name, %error, "connection ended with an error");
    }
}

//! The trainconsole server: the event store, the live hub, and the HTTP API with its
//! WebSocket stream (docs/api.md).
//!
//! * [`store`]: SQLite event store under the runs directory.
//! * [`hub`]: producers → one writer thread → store → summaries and live broadcast.
//! * [`http`]: axum router for the API, the stream and the embedded page.
//! * [`ingest`]: reading event batches posted by external trainers (JSON lines or an array,
//!   Python's bare NaN/Infinity), stopping at the first bad line with its number.

pub mod http;
pub mod hub;
pub mod ingest;
pub mod store;

pub use axum::Router;
pub use http::{AllowedHosts, Assets, router, router_for_hosts};
pub use hub::{Hub, HubError, IngestAnswer, Publisher, Refusal, Refused, RunEntry};

use std::net::SocketAddr;
use tokio::net::TcpListener;

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Bind { addr: String, reason: String },
}

/// Bind `host:port` (port 0 takes a free port). Errors name the address and, when the port
/// is taken, say how to pick another.
pub async fn bind(host: &str, port: u16) -> Result<TcpListener, ServeError> {
    let addr = format!("{host}:{port}");
    TcpListener::bind(&addr).await.map_err(|err| {
        let reason = if err.kind() == std::io::ErrorKind::AddrInUse {
            format!("port {port} is already in use; choose another with --port, or --port 0 for any free port")
        } else {
            err.to_string()
        };
        ServeError::Bind { addr, reason }
    })
}

/// The address a listener is bound to, as a browser should use it (`http://127.0.0.1:PORT`).
pub fn console_url(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("http://127.0.0.1:{}", addr.port())
    } else if addr.is_ipv6() {
        format!("http://[{}]:{}", addr.ip(), addr.port())
    } else {
        format!("http://{addr}")
    }
}

/// Serve `router` on `listener` until `shutdown` resolves.
pub async fn serve(listener: TcpListener, router: axum::Router, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}

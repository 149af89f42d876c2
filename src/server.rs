//! The connection loop: accepts TCP connections and serves each with hyper.
//!
//! Written here rather than using `axum::serve`, which offers no way to bound how long a
//! client may take over its request headers, how large they may be, or how many
//! connections are open (issue #5: the slowloris defence). hyper's HTTP/1 connection
//! builder has those settings, and hyper-util's `GracefulShutdown` gives the SIGTERM
//! drain of API.md §8: stop accepting, let every open connection finish its in-flight
//! request, then return.
//!
//! HTTP/1.1 only: it is what browsers, API clients and reverse proxies (nginx's
//! `proxy_pass`) speak to an upstream, and HTTP/2's connection preface and pings would
//! each need a slow-client defence of their own.

use crate::config::RequestLimits;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;
use tower_http::normalize_path::NormalizePath;

/// hyper's read buffer: what it reads of a request head at most. Requests over
/// `GATEHOUSE_MAX_HEADER_BYTES` but under this get a 431 in DRF's shape from the
/// router; bigger ones are cut off by hyper itself.
fn read_buffer_bytes(limits: &RequestLimits) -> usize {
    (limits.max_header_bytes * 2).max(16 * 1024)
}

/// Serves `app` on `listener` until `shutdown` completes, then drains.
pub async fn serve(
    listener: TcpListener,
    app: NormalizePath<Router>,
    limits: RequestLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // The whole request head must arrive within the client timeout, counted from
        // when hyper starts waiting for it: so this also closes a connection that sends
        // nothing at all, or sits idle between keep-alive requests.
        .header_read_timeout(limits.client_timeout)
        .max_buf_size(read_buffer_bytes(&limits));

    // Past the cap, new connections wait in the kernel's backlog until one closes.
    let open_connections = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let serve_connection = |stream: TcpStream,
                            peer: SocketAddr,
                            slot: Option<OwnedSemaphorePermit>| {
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(request)
        });
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _slot = slot;
            // Errors here are the client's doing (reset, garbage, timeout): not ours to log
            // above debug.
            if let Err(error) = connection.await {
                tracing::debug!(error = %error, "connection ended with an error");
            }
        });
    };
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer, slot) = tokio::select! {
            slot = open_connections.clone().acquire_owned() => {
                let Ok(slot) = slot else { break };
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, peer)) => (stream, peer, slot),
                        Err(error) => {
                            // Out of file descriptors and the like: wait a little, go on.
                            tracing::warn!(error = %error, "accepting a connection failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                    () = &mut shutdown => break,
                }
            }
            () = &mut shutdown => break,
        };
        serve_connection(stream, peer, Some(slot));
    }
    // Connections the kernel has completed but we have not accepted yet would be reset
    // when the listener closes, and a proxy that had already sent a POST on one cannot
    // retry it elsewhere. So take them all in first, then close: from then on a new
    // connection is refused, which a proxy retries on another instance (issue #9).
    for (stream, peer) in accept_pending(listener) {
        serve_connection(stream, peer, None);
    }
    graceful.shutdown().await;
    tracing::info!("every request finished; stopping");
    Ok(())
}

/// Accepts, without waiting, every connection already queued on `listener`, and closes it.
fn accept_pending(listener: TcpListener) -> Vec<(TcpStream, SocketAddr)> {
    let Ok(listener) = listener.into_std() else {
        return Vec::new();
    };
    let mut pending = Vec::new();
    // The socket is still non-blocking: `accept` answers WouldBlock once the queue is empty.
    while let Ok((stream, peer)) = listener.accept() {
        let stream = stream
            .set_nonblocking(true)
            .and_then(|()| TcpStream::from_std(stream));
        if let Ok(stream) = stream {
            pending.push((stream, peer));
        }
    }
    pending
}

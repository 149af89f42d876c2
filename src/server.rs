//! The connection loop: accepts TCP connections and serves each with hyper.
//!
//! Written here rather than using `axum::serve`, which offers no way to bound how long a
//! client may take over its request headers or how large they may be (issue #5: the
//! slowloris defence). hyper-util's connection builder has those settings, and its
//! `GracefulShutdown` gives the SIGTERM drain of API.md §8: stop accepting, let every
//! open connection finish its in-flight request, then return.

use crate::config::RequestLimits;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpListener;
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
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // The whole request head must arrive within the client timeout; this is also
        // how long an idle keep-alive connection waits for its next request.
        .header_read_timeout(limits.client_timeout)
        .max_buf_size(read_buffer_bytes(&limits));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(read_buffer_bytes(&limits) as u32)
        .keep_alive_interval(Some(limits.client_timeout))
        .keep_alive_timeout(limits.client_timeout);

    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(connection) => connection,
                Err(error) => {
                    // Out of file descriptors and the like: wait a little, go on.
                    tracing::warn!(error = %error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let first_byte_wait = limits.client_timeout;
        tokio::spawn(async move {
            // hyper's header timeout starts with the first byte of a request: a client
            // that connects and sends nothing would hold the connection for ever.
            let mut probe = [0u8; 1];
            match tokio::time::timeout(first_byte_wait, stream.peek(&mut probe)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return,
            }
            let service =
                hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    app.clone().oneshot(request)
                });
            let connection = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            // Errors here are the client's doing (reset, garbage, timeout): not ours to log
            // above debug.
            if let Err(error) = watcher.watch(connection).await {
                tracing::debug!(error = %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

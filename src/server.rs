//! The connection loop: accepts TCP connections and serves each with hyper.
//!
//! Written here rather than using `axum::serve`, which offers no way to bound how long a
//! client may take over its request headers, how large they may be, or how many
//! connections are open (issue #5: the slowloris defence). hyper's HTTP/1 connection
//! builder has those settings.
//!
//! The SIGTERM drain of API.md §8 is here too: stop accepting, let every open connection
//! finish its in-flight request, then return. hyper-util's `GracefulShutdown` is not
//! enough for it: hyper closes a connection that has not sent a byte yet the moment it is
//! asked to shut down, so a request that was on its way (queued in the kernel, or just
//! accepted) would go unanswered, and a proxy cannot safely resend a POST (issue #9).
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
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;
use tower_http::normalize_path::NormalizePath;

/// At shutdown, how long a connection that has sent nothing yet may take to send its
/// request before it is closed (at most the client timeout). A proxy writes its request
/// right after connecting, so this is only ever waited out by an idle client.
const FIRST_REQUEST_GRACE: Duration = Duration::from_secs(1);

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
    let grace = FIRST_REQUEST_GRACE.min(limits.client_timeout);

    // Past the cap, new connections wait in the kernel's backlog until one closes.
    let open_connections = Arc::new(Semaphore::new(limits.max_connections));
    // `true` once the drain has begun. Every connection task holds a receiver, so
    // `closed()` on the sender resolves when the last of them has finished.
    let (draining, drain_watch) = watch::channel(false);
    let serve_connection = |stream: TcpStream,
                            peer: SocketAddr,
                            slot: Option<OwnedSemaphorePermit>| {
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(request)
        });
        let (stream, first_read) = FirstRead::new(stream);
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let mut drain_watch = drain_watch.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                biased;
                result = connection.as_mut() => result,
                () = drain_begun(&mut drain_watch) => {
                    if !first_read.seen() {
                        tokio::select! {
                            biased;
                            result = connection.as_mut() => return log_end(result),
                            () = first_read.wait() => {}
                            () = tokio::time::sleep(grace) => {}
                        }
                    }
                    // Finishes the request in flight, answers it with
                    // `Connection: close`, then ends.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            log_end(result);
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
    drop(drain_watch);
    let _ = draining.send(true);
    draining.closed().await;
    tracing::info!("every request finished; stopping");
    Ok(())
}

async fn drain_begun(drain_watch: &mut watch::Receiver<bool>) {
    // An error means the sender is gone: the server has stopped, so drain too.
    let _ = drain_watch.wait_for(|draining| *draining).await;
}

fn log_end(result: Result<(), hyper::Error>) {
    // Errors here are the client's doing (reset, garbage, timeout): not ours to log
    // above debug.
    if let Err(error) = result {
        tracing::debug!(error = %error, "connection ended with an error");
    }
}

/// Accepts, without waiting, every connection already queued on `listener`, and closes it.
fn accept_pending(listener: TcpListener) -> Vec<(TcpStream, SocketAddr)> {
    let Ok(listener) = listener.into_std() else {
        return Vec::new();
    };
    let mut pending = Vec::new();
    // The socket is still non-blocking: `accept` answers WouldBlock once the queue is empty.
    loop {
        match listener.accept() {
            Ok((stream, peer)) => {
                let stream = stream
                    .set_nonblocking(true)
                    .and_then(|()| TcpStream::from_std(stream));
                if let Ok(stream) = stream {
                    pending.push((stream, peer));
                }
            }
            // A client that gave up while queued, or a signal: the next one may be fine.
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return pending,
        }
    }
}

/// A connection that tells when its client has sent the first bytes.
struct FirstRead {
    stream: TcpStream,
    seen: Arc<FirstReadSeen>,
}

#[derive(Default)]
struct FirstReadSeen {
    seen: AtomicBool,
    notify: Notify,
}

impl FirstRead {
    fn new(stream: TcpStream) -> (FirstRead, Arc<FirstReadSeen>) {
        let seen = Arc::new(FirstReadSeen::default());
        let wrapped = FirstRead {
            stream,
            seen: Arc::clone(&seen),
        };
        (wrapped, seen)
    }
}

impl FirstReadSeen {
    fn seen(&self) -> bool {
        self.seen.load(Ordering::Acquire)
    }

    async fn wait(&self) {
        // `notify_one` keeps its permit until this waits, so no wake-up is missed.
        self.notify.notified().await;
    }
}

impl AsyncRead for FirstRead {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before && !this.seen.seen.swap(true, Ordering::AcqRel) {
            this.seen.notify.notify_one();
        }
        poll
    }
}

impl AsyncWrite for FirstRead {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

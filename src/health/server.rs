//! The health endpoint's accept loop, hardened: a task on the host network can reach the port
//! (it is loopback, not private), so a flood of idle connections must not take the file
//! descriptors nodewarden's Docker and AWS calls need, nor keep `/healthz` from answering.
//!
//! - At most [`MAX_CONNECTIONS`] connections are served at once (a semaphore's permits). When
//!   all are taken, the one idle the longest (no request in flight) is closed to make room; when
//!   none is idle, the new connection is closed at once. A flood of idle connections thus
//!   churns through old idle ones while a probe, which sends its request at once, is served.
//! - Request headers must arrive within [`HEADER_READ_TIMEOUT`] (hyper's timer, which also
//!   runs while a kept-alive connection waits for its next request), and a connection with no
//!   request in flight and no bytes moving either way (a client that stopped reading its
//!   response) is closed after [`IDLE_TIMEOUT`].
//! - Accept errors (EMFILE when the process is out of descriptors) back off instead of spinning.
//!
//! The unit's `LimitNOFILE=` bounds the process; this cap is far below it.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::Service as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};

/// Connections served at once: plenty for monitoring (a scrape, `nodewarden status`, probes).
/// nodewarden's own descriptors (Docker, AWS, IMDS, the journal, state files, the footprint
/// sampler) are a dozen at rest and well under a hundred busy; the unit allows 512.
pub const MAX_CONNECTIONS: usize = 64;
/// A client must send its request headers within this.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection with no request in flight and no bytes either way for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an accepted connection waits for an evicted one's permit before it is refused.
const EVICTION_WAIT: Duration = Duration::from_millis(200);
/// After an accept error (out of descriptors, say), wait this long before the next accept.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// How long open connections get to finish their requests at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// One served connection, as the accept loop sees it.
struct Connection {
    /// Requests whose response is not complete yet.
    in_flight: AtomicUsize,
    /// Milliseconds since `epoch` of the last byte read or written.
    last_active_ms: AtomicU64,
    epoch: Instant,
    /// Told to close (evicted to make room).
    close: Notify,
}

impl Connection {
    fn new() -> Connection {
        Connection {
            in_flight: AtomicUsize::new(0),
            last_active_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            close: Notify::new(),
        }
    }

    fn touch(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.last_active_ms.fetch_max(now, Ordering::Relaxed);
    }

    fn last_active(&self) -> Instant {
        self.epoch + Duration::from_millis(self.last_active_ms.load(Ordering::Relaxed))
    }

    fn idle(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0
    }
}

/// The connections being served, to pick one to close when all permits are taken.
#[derive(Default)]
struct Registry {
    next: AtomicU64,
    open: Mutex<BTreeMap<u64, Arc<Connection>>>,
}

impl Registry {
    fn add(&self, connection: Arc<Connection>) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.open.lock().expect("the registry lock is never poisoned").insert(id, connection);
        id
    }

    fn remove(&self, id: u64) {
        self.open.lock().expect("the registry lock is never poisoned").remove(&id);
    }

    /// Tells the connection idle the longest to close; false when none is idle.
    fn evict_longest_idle(&self) -> bool {
        let open = self.open.lock().expect("the registry lock is never poisoned");
        match open.values().filter(|c| c.idle()).min_by_key(|c| c.last_active()) {
            Some(victim) => {
                victim.close.notify_one();
                true
            }
            None => false,
        }
    }
}

/// A TCP stream that notes when bytes last moved, for the idle timeout and eviction.
struct Tracked {
    stream: TcpStream,
    connection: Arc<Connection>,
}

impl AsyncRead for Tracked {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.connection.touch();
        }
        result
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.stream).poll_write(cx, data);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.connection.touch();
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Counts a request in flight until its response future is done.
struct InFlight(Arc<Connection>);

impl InFlight {
    fn enter(connection: &Arc<Connection>) -> InFlight {
        connection.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(connection.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves `router` on `listener` until `shutdown` turns true.
pub async fn serve(listener: TcpListener, router: Router, mut shutdown: watch::Receiver<bool>) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let registry = Arc::new(Registry::default());
    let mut failing_since: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = wait_true(&mut shutdown) => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => {
                if failing_since.take().is_some() {
                    tracing::info!("the health endpoint accepts connections again");
                }
                stream
            }
            Err(error) => {
                if failing_since.is_none() {
                    tracing::warn!(%error, "the health endpoint cannot accept connections; backing off");
                    failing_since = Some(Instant::now());
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Some(permit) = permit_for_new(&permits, &registry).await else {
            // Every slot is busy with a request in flight: refuse this one (closing it).
            drop(stream);
            continue;
        };
        tokio::spawn(serve_connection(stream, router.clone(), permit, registry.clone(), shutdown.clone()));
    }
}

/// A permit for a new connection: a free one, else one freed by closing the longest-idle.
async fn permit_for_new(permits: &Arc<Semaphore>, registry: &Registry) -> Option<OwnedSemaphorePermit> {
    if let Ok(permit) = permits.clone().try_acquire_owned() {
        return Some(permit);
    }
    if !registry.evict_longest_idle() {
        return None;
    }
    tokio::time::timeout(EVICTION_WAIT, permits.clone().acquire_owned()).await.ok()?.ok()
}

async fn serve_connection(
    stream: TcpStream,
    router: Router,
    permit: OwnedSemaphorePermit,
    registry: Arc<Registry>,
    mut shutdown: watch::Receiver<bool>,
) {
    let connection = Arc::new(Connection::new());
    connection.touch();
    let id = registry.add(connection.clone());
    let service = TowerToHyperService::new(router);
    let counting = connection.clone();
    let counted = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let in_flight = InFlight::enter(&counting);
        let response = service.call(request);
        async move {
            let response: Result<_, Infallible> = response.await;
            drop(in_flight);
            response
        }
    });
    let io = TokioIo::new(Tracked { stream, connection: connection.clone() });
    let served = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(io, counted);
    tokio::pin!(served);
    let mut idle_check = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            result = served.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "a health endpoint connection ended with an error");
                }
                break;
            }
            _ = connection.close.notified() => break,
            _ = idle_check.tick() => {
                if connection.idle() && connection.last_active().elapsed() >= IDLE_TIMEOUT {
                    break;
                }
            }
            _ = wait_true(&mut shutdown) => {
                served.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(SHUTDOWN_GRACE, served.as_mut()).await;
                break;
            }
        }
    }
    registry.remove(id);
    drop(permit);
}

/// Resolves once `shutdown` is true (or its sender is gone).
async fn wait_true(shutdown: &mut watch::Receiver<bool>) {
    while !*shutdown.borrow_and_update() {
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_idle_connection_is_the_one_evicted_never_one_with_a_request_in_flight() {
        let registry = Registry::default();
        let make = |active_ms: u64, in_flight: usize| {
            let connection = Arc::new(Connection::new());
            connection.last_active_ms.store(active_ms, Ordering::Relaxed);
            connection.in_flight.store(in_flight, Ordering::Relaxed);
            connection
        };
        let busy_oldest = make(0, 1);
        let idle_old = make(10, 0);
        let idle_new = make(20, 0);
        for connection in [&busy_oldest, &idle_old, &idle_new] {
            registry.add(connection.clone());
        }
        assert!(registry.evict_longest_idle());
        let told = |c: &Arc<Connection>| {
            let notified = c.close.notified();
            tokio::pin!(notified);
            // A stored permit makes the first poll ready.
            let waker = futures_util::task::noop_waker();
            notified.as_mut().poll(&mut Context::from_waker(&waker)).is_ready()
        };
        assert!(told(&idle_old), "the longest-idle connection is told to close");
        assert!(!told(&idle_new) && !told(&busy_oldest));
        let all_busy = Registry::default();
        all_busy.add(make(0, 2));
        assert!(!all_busy.evict_longest_idle(), "a connection with a request in flight is never evicted");
    }

    async fn started() -> (std::net::SocketAddr, watch::Sender<bool>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let address = listener.local_addr().expect("its address");
        let router = Router::new().route("/healthz", axum::routing::get(|| async { "ok\n" }));
        let (stop, shutdown) = watch::channel(false);
        tokio::spawn(serve(listener, router, shutdown));
        (address, stop)
    }

    /// Sends `request` on `stream` and reads until the server closes it or `within` passes.
    async fn exchange(stream: &mut TcpStream, request: &[u8], within: Duration) -> (String, bool) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream.write_all(request).await.expect("writing to the server");
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&seen).into_owned(), true),
                Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
                Err(_) => return (String::from_utf8_lossy(&seen).into_owned(), false),
            }
        }
    }

    #[tokio::test]
    async fn a_client_that_never_finishes_its_headers_is_cut_off_and_a_flood_past_the_cap_still_lets_a_probe_in() {
        let (address, _stop) = started().await;
        // Slowloris: a request line, then nothing.
        let mut slow = TcpStream::connect(address).await.expect("connecting");
        let started = Instant::now();
        let (_, closed) = exchange(&mut slow, b"GET /healthz HTTP/1.1\r\n", HEADER_READ_TIMEOUT * 2).await;
        assert!(closed, "a connection that never finished its headers stayed open");
        let took = started.elapsed();
        assert!(took >= HEADER_READ_TIMEOUT - Duration::from_millis(100), "closed after {took:?}");

        // Idle connections past the cap: each new one sheds the longest idle, and a probe is served.
        let mut idle = Vec::new();
        for _ in 0..MAX_CONNECTIONS + 20 {
            idle.push(TcpStream::connect(address).await.expect("connecting"));
        }
        let mut probe = TcpStream::connect(address).await.expect("connecting");
        let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        let (answer, _) = exchange(&mut probe, request, Duration::from_secs(2)).await;
        assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok\n"), "{answer:?}");
        // The first idle ones were closed to make room.
        let (_, closed) = exchange(&mut idle[0], b"", Duration::from_secs(1)).await;
        assert!(closed, "the longest-idle connection is still open past the cap");
    }
}

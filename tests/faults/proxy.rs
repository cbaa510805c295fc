//! A TCP proxy that sits between promgate and a real backend and misbehaves on request.
//!
//! It speaks just enough HTTP/1.1 to find where each request and each response ends
//! (Content-Length, chunked, or close-delimited), so a kept-alive connection carries many
//! exchanges and the fault is chosen per request, from whatever [`Fault`] is set when the
//! request arrives: switching the fault affects connections already in promgate's pool too.
//! The proxy runs on its own tokio runtime and counts the client connections it holds open,
//! so a test can tell whether promgate closes what it abandons.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does to the next request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Forward the request, relay the response.
    Pass,
    /// Relay the response after this long.
    Delay(Duration),
    /// Read the request and never answer (the connection stays open until the client closes
    /// it).
    Hang,
    /// Read the request, then reset the connection (SO_LINGER 0 and close: an RST).
    Reset,
    /// Relay only the first half of the response bytes (the head and part of the body, or
    /// less), then close.
    Truncate,
    /// Answer with bytes that are not HTTP, then close.
    Garbage,
    /// Answer `HTTP/1.1 200` with a body that is no answer of the backend's (an HTML page,
    /// as a misconfigured load balancer or captive portal sends); the backend is not asked.
    NotTheBackend,
    /// Answer `HTTP/1.1 503` with a plain-text body, as a load balancer in front of a dead
    /// backend would; the backend is not asked.
    Http5xx,
    /// Relay the response `chunk` bytes at a time with `pause` between chunks.
    SlowDrip { chunk: usize, pause: Duration },
}

struct Shared {
    fault: Mutex<Fault>,
    /// Client connections accepted and not yet closed.
    open: AtomicUsize,
    accepted: AtomicU64,
    /// Requests received from clients, whatever was done with them.
    requests: AtomicU64,
}

/// The proxy, listening on a free loopback port until dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl FaultProxy {
    /// A proxy to `upstream` (`host:port`), passing everything through at first.
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("proxy runtime");
        let shared = Arc::new(Shared {
            fault: Mutex::new(Fault::Pass),
            open: AtomicUsize::new(0),
            accepted: AtomicU64::new(0),
            requests: AtomicU64::new(0),
        });
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("proxy listener");
        let addr = listener.local_addr().expect("proxy address");
        let accepting = shared.clone();
        runtime.spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let shared = accepting.clone();
                shared.accepted.fetch_add(1, Ordering::SeqCst);
                let open = OpenConnection::new(shared.clone());
                tokio::spawn(async move {
                    let _open = open;
                    serve(client, upstream, &shared).await;
                });
            }
        });
        FaultProxy {
            addr,
            shared,
            runtime: Some(runtime),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, fault: Fault) {
        *self.shared.fault.lock().unwrap() = fault;
    }

    /// Client connections open right now.
    pub fn open_connections(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Counts one client connection as open while it lives.
struct OpenConnection(Arc<Shared>);

impl OpenConnection {
    fn new(shared: Arc<Shared>) -> Self {
        shared.open.fetch_add(1, Ordering::SeqCst);
        OpenConnection(shared)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One client connection: request by request, the fault set at its arrival decides.
async fn serve(mut client: TcpStream, upstream: SocketAddr, shared: &Shared) {
    let mut from_client = Vec::new();
    let mut backend: Option<Upstream> = None;
    loop {
        let request = match read_message(&mut client, &mut from_client, Side::Request).await {
            Ok(Some(request)) => request,
            _ => return,
        };
        shared.requests.fetch_add(1, Ordering::SeqCst);
        let fault = *shared.fault.lock().unwrap();
        match fault {
            Fault::Hang => {
                // Never answer; notice when the client gives up and closes.
                let mut sink = [0u8; 4096];
                while matches!(client.read(&mut sink).await, Ok(n) if n > 0) {}
                return;
            }
            Fault::Reset => {
                // Deprecated because a lingering close blocks the thread; a zero linger
                // does not linger: the close sends an RST at once.
                #[allow(deprecated)]
                let _ = client.set_linger(Some(Duration::ZERO));
                return;
            }
            Fault::Garbage => {
                let _ = client.write_all(&garbage(512)).await;
                return;
            }
            Fault::Http5xx => {
                let body = "upstream connect error or disconnect/reset before headers\n";
                if client
                    .write_all(&response("503 Service Unavailable", "text/plain", body))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Fault::NotTheBackend => {
                let body = "<html><body>Please sign in to continue</body></html>\n";
                if client
                    .write_all(&response("200 OK", "text/html", body))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Fault::Pass | Fault::Delay(_) | Fault::Truncate | Fault::SlowDrip { .. } => {
                let Some((response, reusable)) = exchange(&mut backend, upstream, &request).await
                else {
                    return;
                };
                match fault {
                    Fault::Delay(d) => tokio::time::sleep(d).await,
                    Fault::Truncate => {
                        let _ = client.write_all(&response[..response.len() / 2]).await;
                        return;
                    }
                    Fault::SlowDrip { chunk, pause } => {
                        for piece in response.chunks(chunk.max(1)) {
                            if client.write_all(piece).await.is_err() {
                                return;
                            }
                            tokio::time::sleep(pause).await;
                        }
                        if !reusable {
                            return;
                        }
                        continue;
                    }
                    _ => {}
                }
                if client.write_all(&response).await.is_err() || !reusable {
                    return;
                }
            }
        }
    }
}

/// A whole response of the proxy's own.
fn response(status: &str, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The upstream connection of one client connection, with bytes read past the last
/// response.
struct Upstream {
    stream: TcpStream,
    buffered: Vec<u8>,
}

/// Sends `request` upstream (on the kept connection, or a new one when it is gone) and reads
/// the whole response; the flag says whether the connection can carry another exchange.
async fn exchange(
    backend: &mut Option<Upstream>,
    upstream: SocketAddr,
    request: &[u8],
) -> Option<(Vec<u8>, bool)> {
    for _ in 0..2 {
        let up = match backend {
            Some(up) => up,
            None => backend.insert(Upstream {
                stream: TcpStream::connect(upstream).await.ok()?,
                buffered: Vec::new(),
            }),
        };
        let sent = up.stream.write_all(request).await.is_ok();
        let response = if sent {
            read_message(&mut up.stream, &mut up.buffered, Side::Response).await
        } else {
            Ok(None)
        };
        match response {
            Ok(Some(response)) => {
                let reusable = !closes(&response);
                if !reusable {
                    *backend = None;
                }
                return Some((response, reusable));
            }
            // The kept connection was closed by the backend meanwhile: once more on a new
            // one.
            _ => *backend = None,
        }
    }
    None
}

#[derive(Clone, Copy, PartialEq)]
enum Side {
    Request,
    Response,
}

/// Reads one whole HTTP/1.1 message, keeping what follows it in `buf`; `None` when the
/// peer closed before sending one.
async fn read_message(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    side: Side,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match message_len(buf, side) {
            Length::Complete(n) => return Ok(Some(buf.drain(..n).collect())),
            Length::Incomplete | Length::UntilClose => {}
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return match message_len(buf, side) {
                Length::UntilClose => Ok(Some(std::mem::take(buf))),
                _ if buf.is_empty() => Ok(None),
                _ => Err(std::io::Error::other("connection closed inside a message")),
            };
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

enum Length {
    Complete(usize),
    Incomplete,
    /// A response without length: it ends when the connection does.
    UntilClose,
}

/// Where the message at the start of `buf` ends, as far as its framing tells.
fn message_len(buf: &[u8], side: Side) -> Length {
    let Some(head_end) = find(buf, b"\r\n\r\n").map(|i| i + 4) else {
        return Length::Incomplete;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let header = |name: &str| {
        head.lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim().to_string())
    };
    if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        return chunked_len(buf, head_end);
    }
    if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        let end = head_end + len;
        return if buf.len() >= end {
            Length::Complete(end)
        } else {
            Length::Incomplete
        };
    }
    let no_body = head.starts_with("http/1.1 204") || head.starts_with("http/1.1 304");
    match side {
        Side::Request => Length::Complete(head_end),
        Side::Response if no_body => Length::Complete(head_end),
        Side::Response => Length::UntilClose,
    }
}

/// The end of a chunked body starting at `pos`.
fn chunked_len(buf: &[u8], mut pos: usize) -> Length {
    loop {
        let Some(line_end) = find(&buf[pos..], b"\r\n").map(|i| pos + i) else {
            return Length::Incomplete;
        };
        let line = String::from_utf8_lossy(&buf[pos..line_end]);
        let Ok(size) = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
        else {
            // Not chunked framing after all: relay what there is once the peer closes.
            return Length::UntilClose;
        };
        pos = line_end + 2;
        if size == 0 {
            // Trailers (usually none), then the empty line.
            return match find(&buf[pos..], b"\r\n") {
                Some(0) => Length::Complete(pos + 2),
                Some(_) => match find(&buf[pos..], b"\r\n\r\n") {
                    Some(i) => Length::Complete(pos + i + 4),
                    None => Length::Incomplete,
                },
                None => Length::Incomplete,
            };
        }
        if buf.len() < pos + size + 2 {
            return Length::Incomplete;
        }
        pos += size + 2;
    }
}

/// Whether the response says the connection closes after it.
fn closes(response: &[u8]) -> bool {
    let head_end = find(response, b"\r\n\r\n").unwrap_or(response.len());
    let head = String::from_utf8_lossy(&response[..head_end]).to_ascii_lowercase();
    matches!(message_len(response, Side::Response), Length::UntilClose)
        || head
            .lines()
            .any(|l| l.starts_with("connection:") && l.contains("close"))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `n` bytes of noise (xorshift; no need for a random generator), never starting like HTTP.
fn garbage(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out: Vec<u8> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    out[0] = 0xff;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_finds_the_end_of_each_kind_of_message() {
        let get = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b";
        assert!(matches!(
            message_len(get, Side::Request),
            Length::Complete(28)
        ));
        let sized = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP";
        assert!(matches!(
            message_len(sized, Side::Response),
            Length::Complete(41)
        ));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        assert!(
            matches!(message_len(chunked, Side::Response), Length::Complete(n) if n == chunked.len())
        );
        assert!(matches!(
            message_len(&chunked[..chunked.len() - 1], Side::Response),
            Length::Incomplete
        ));
        let close_delimited = b"HTTP/1.1 200 OK\r\n\r\nabc";
        assert!(matches!(
            message_len(close_delimited, Side::Response),
            Length::UntilClose
        ));
    }
}

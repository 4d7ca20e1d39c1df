//! A WebSocket connection's bytes, under the protocol: the upgrade (done here rather than by
//! axum, whose `WebSocket` hides the socket), the frames the server writes, reading client
//! frames through tungstenite, and the [`Wire`] every sender of a connection writes through.
//!
//! Server frames are not masked, so a published frame's bytes are the same for every
//! subscriber: fanout encodes it once ([`Encoded`], header and payload in one buffer, built on
//! the first direct write) and writes those bytes straight to each plain-TCP socket with one
//! non-blocking `send` (`try_write`) — no task wakeup, no queue, no copy per subscriber. (A
//! `writev` of a stack-built header and the shared payload spares the one copy, but the kernel's
//! `writev` path costs more than `send`'s.) The connection's queue and writer task are for
//! backpressure, under one rule kept by [`Wire`]'s lock: a sender
//! writes to the socket itself only while the writer owns nothing (`busy` is false, so nothing
//! is queued or half written). A write the socket does not take whole makes the writer the
//! owner: the unwritten rest of the frame becomes the first bytes it writes, then the queue in
//! order; it gives the socket back once it finds nothing left. Control frames (tungstenite's
//! pongs) follow the same rule, so every frame reaches the client whole and in order. Other
//! streams (TLS) are always written by the writer task.

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::ws::Utf8Bytes;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::task::AtomicWaker;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tungstenite::protocol::{Message, Role, WebSocketConfig, WebSocketContext};

use crate::state::Shared;

/// Opcodes of the frames the server writes.
pub const TEXT: u8 = 0x1;
pub const CLOSE: u8 = 0x8;
/// Most control-frame bytes (pongs) waiting for a client that does not read; more is a slow
/// reader, as a full queue is.
const MAX_CONTROL_BYTES: usize = 64 * 1024;

/// The header of a server frame (final, unmasked) with `len` payload bytes: its first
/// `.1` bytes.
pub fn header(opcode: u8, len: usize) -> ([u8; 10], usize) {
    let mut head = [0u8; 10];
    head[0] = 0x80 | opcode;
    let used = if len < 126 {
        head[1] = len as u8;
        2
    } else if let Ok(len) = u16::try_from(len) {
        head[1] = 126;
        head[2..4].copy_from_slice(&len.to_be_bytes());
        4
    } else {
        head[1] = 127;
        head[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    };
    (head, used)
}

/// A text frame as it goes on the wire, header and payload in one buffer: built once for a
/// publish, on its first direct write, and written as is to every subscriber.
pub struct Encoded(Vec<u8>);

/// A publish's [`Encoded`] frame, built on first use (never, when every subscriber queues).
pub type Lazy = std::cell::OnceCell<Encoded>;

impl Encoded {
    pub fn text(frame: &str) -> Encoded {
        let mut out = Vec::with_capacity(frame.len() + 10);
        encode(&mut out, TEXT, frame.as_bytes());
        Encoded(out)
    }
}

/// Appends one server frame to `out`.
pub fn encode(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    let (head, used) = header(opcode, payload.len());
    out.extend_from_slice(&head[..used]);
    out.extend_from_slice(payload);
}

/// Appends a close frame with `code` and `reason` (at most 123 bytes, as control frames allow).
pub fn encode_close(out: &mut Vec<u8>, code: u16, reason: &str) {
    let reason = &reason.as_bytes()[..reason.len().min(123)];
    let mut payload = Vec::with_capacity(2 + reason.len());
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(reason);
    encode(out, CLOSE, &payload);
}

/// Checks a WebSocket handshake (RFC 6455: GET, `Connection: upgrade`, `Upgrade: websocket`,
/// version 13, a key) and returns the 101 answer and the upgrade to await, or the refusal
/// axum's `WebSocketUpgrade` gave (405, 400, 426).
pub fn accept(request: &mut Request) -> Result<(Response, OnUpgrade), Refusal> {
    let refuse = |status: StatusCode, why: &'static str| Refusal(status, why);
    if request.method() != Method::GET {
        return Err(refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "Request method must be `GET`",
        ));
    }
    let headers = request.headers();
    if !has_token(headers, header::CONNECTION, "upgrade") {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "Connection header did not include 'upgrade'",
        ));
    }
    if !has_token(headers, header::UPGRADE, "websocket") {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "`Upgrade` header did not include 'websocket'",
        ));
    }
    if !has_token(headers, header::SEC_WEBSOCKET_VERSION, "13") {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "`Sec-WebSocket-Version` header did not include '13'",
        ));
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "`Sec-WebSocket-Key` header missing",
        ));
    };
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let Some(upgrade) = request.extensions_mut().remove::<OnUpgrade>() else {
        return Err(refuse(
            StatusCode::UPGRADE_REQUIRED,
            "WebSocket request couldn't be upgraded since no upgrade state was present",
        ));
    };
    let response = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, HeaderValue::from_static("upgrade"))
        .header(header::UPGRADE, HeaderValue::from_static("websocket"))
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .body(Body::empty())
        .expect("a valid 101 response");
    Ok((response, upgrade))
}

/// A handshake request that cannot be upgraded: the status and why.
#[derive(Debug)]
pub struct Refusal(StatusCode, &'static str);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, self.1).into_response()
    }
}

/// Whether a comma-separated header holds `token` (case-insensitive).
fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .as_bytes()
            .split(|&b| b == b',')
            .any(|part| part.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

/// An upgraded connection: a plain TCP socket (with what hyper read past the handshake), or
/// any other stream (TLS) through hyper.
pub enum Socket {
    Tcp(TcpStream, Vec<u8>),
    Stream(TokioIo<Upgraded>),
}

impl Socket {
    /// The stream under `upgraded`: [`crate::listener`] hands hyper a `TokioIo<TcpStream>`
    /// for plain TCP, which comes back as it was.
    pub fn new(upgraded: Upgraded) -> Socket {
        match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => Socket::Tcp(parts.io.into_inner(), parts.read_buf.to_vec()),
            Err(upgraded) => Socket::Stream(TokioIo::new(upgraded)),
        }
    }

    /// Writes `bytes` and drops the connection (a refusal before the connection runs).
    pub async fn write_and_drop(self, bytes: &[u8]) {
        let _ = match self {
            Socket::Tcp(mut tcp, _) => tcp.write_all(bytes).await,
            Socket::Stream(mut io) => io.write_all(bytes).await,
        };
    }

    /// Splits the connection into its reader, the writer task's sink and the [`Wire`] (which
    /// writes plain TCP directly).
    pub fn split(self, config: WebSocketConfig, shared: Shared) -> (Reader, Sink, Arc<Wire>) {
        let (read, sink, wire, unread): (Box<dyn AsyncRead + Send + Unpin>, Sink, _, _) = match self
        {
            Socket::Tcp(tcp, unread) => {
                let (read, write) = tcp.into_split();
                (Box::new(read), Sink::Direct, Some(write), unread)
            }
            Socket::Stream(io) => {
                let (read, write) = tokio::io::split(io);
                (
                    Box::new(read),
                    Sink::Stream(Box::new(write)),
                    None,
                    Vec::new(),
                )
            }
        };
        let wire = Arc::new(Wire {
            socket: wire,
            state: Mutex::default(),
            writer: AtomicWaker::new(),
            shared: Some(shared),
        });
        let reader = Reader {
            io: read,
            context: WebSocketContext::from_partially_read(unread, Role::Server, Some(config)),
            out: Vec::new(),
            wire: wire.clone(),
        };
        (reader, sink, wire)
    }
}

/// Where the writer task writes: the [`Wire`]'s own socket, or the write half of a stream.
pub enum Sink {
    Direct,
    Stream(Box<dyn AsyncWrite + Send + Unpin>),
}

impl Sink {
    /// Writes all of `bytes` (the writer task's; for [`Sink::Direct`] while it owns the socket).
    pub async fn write_all(&mut self, wire: &Wire, bytes: &[u8]) -> io::Result<()> {
        match self {
            Sink::Stream(io) => {
                io.write_all(bytes).await?;
                io.flush().await
            }
            Sink::Direct => {
                let socket = wire.socket.as_ref().expect("a direct sink has a socket");
                let mut rest = bytes;
                while !rest.is_empty() {
                    socket.writable().await?;
                    match socket.try_write(rest) {
                        Ok(n) => rest = &rest[n..],
                        Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                        Err(err) => return Err(err),
                    }
                }
                Ok(())
            }
        }
    }
}

/// The writing side of one connection, shared by everyone who sends to it (the registry's
/// fanout, the read loop's replies and pongs) and its writer task.
pub struct Wire {
    /// Plain TCP: the socket, written directly while the writer owns nothing.
    socket: Option<OwnedWriteHalf>,
    state: Mutex<State>,
    /// The writer task, woken when `pending` gets bytes.
    writer: AtomicWaker,
    /// For counting frames written directly ([`Wire::count_written`]; None in tests without
    /// a server).
    shared: Option<Shared>,
}

#[derive(Default)]
struct State {
    /// The writer owns the socket: something is queued or half written. Set when a direct
    /// write does not finish, cleared by the writer when it finds nothing left, and set for
    /// good once it sends the close.
    busy: bool,
    /// Bytes the writer writes before anything queued, each starting at a frame boundary: the
    /// rest of a frame a direct write left half done, and control frames (pongs).
    pending: Vec<u8>,
    /// How many of `pending`'s bytes are control frames.
    control: usize,
}

/// What [`Wire::send`] did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Written to the socket (whole, or the rest left to the writer).
    Written,
    /// Queued for the writer task.
    Queued,
    /// Not taken: the queue was full (the connection is being closed with 4100) or closed.
    Refused,
}

impl Sent {
    /// What a queueing that took the frame or not did.
    pub fn queued_if(taken: bool) -> Sent {
        match taken {
            true => Sent::Queued,
            false => Sent::Refused,
        }
    }
}

/// What a direct write did.
enum Written {
    /// The whole frame: nothing left to do.
    All,
    /// Part of it: the rest is pending, the writer woken.
    Part,
    /// Nothing (the socket is full or broken): the frame is the writer's to send.
    Nothing,
}

impl Wire {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends a text frame: written straight to the socket (as `encoded`, built here if it is
    /// not yet) if the writer owns nothing, else (or if the socket takes none of it, or with no
    /// `encoded`: the caller wants it queued) handed to `queue`, which holds it for the writer.
    /// `queue` runs under the lock, so what it queues goes before any later direct write. A
    /// frame written here is not counted: the caller counts them ([`Wire::count_written`]).
    pub fn send(
        &self,
        frame: &Utf8Bytes,
        encoded: Option<&Lazy>,
        queue: impl FnOnce(Utf8Bytes) -> bool,
    ) -> Sent {
        let Some(socket) = &self.socket else {
            return Sent::queued_if(queue(frame.clone()));
        };
        let mut state = self.lock();
        let Some(encoded) = encoded.filter(|_| !state.busy) else {
            // Queued: the writer owns the socket until it finds the queue empty.
            state.busy = true;
            return Sent::queued_if(queue(frame.clone()));
        };
        let bytes = &encoded.get_or_init(|| Encoded::text(frame)).0;
        match self.write_now(socket, &mut state, bytes) {
            Written::All | Written::Part => Sent::Written,
            Written::Nothing => Sent::queued_if(queue(frame.clone())),
        }
    }

    /// Counts `frames` text frames (`bytes` of payload) written by [`Wire::send`]: once per
    /// publish for all its subscribers, rather than two shared atomics bumped per frame.
    pub fn count_written(&self, frames: usize, bytes: usize) {
        if let Some(shared) = &self.shared {
            shared.metrics().sent(frames, bytes);
        }
    }

    /// Sends control-frame bytes (whole frames, tungstenite's pongs): directly if the writer
    /// owns nothing, else before the next queued frame. False when too many already wait.
    pub fn control(&self, bytes: &[u8]) -> bool {
        let mut state = self.lock();
        if let (Some(socket), false) = (&self.socket, state.busy) {
            if let Written::All | Written::Part = self.write_now(socket, &mut state, bytes) {
                return true;
            }
        }
        if state.control + bytes.len() > MAX_CONTROL_BYTES {
            return false;
        }
        state.control += bytes.len();
        state.pending.extend_from_slice(bytes);
        drop(state);
        self.writer.wake();
        true
    }

    /// One non-blocking `send` of one whole frame; on anything short of all of it the writer
    /// owns the socket, with the rest of the frame pending.
    fn write_now(&self, socket: &OwnedWriteHalf, state: &mut State, frame: &[u8]) -> Written {
        // An error (the client is gone) is the writer's to meet: it then closes the connection.
        let written = socket.try_write(frame).unwrap_or(0);
        if written == frame.len() {
            return Written::All;
        }
        state.busy = true;
        if written == 0 {
            return Written::Nothing;
        }
        state.pending.extend_from_slice(&frame[written..]);
        self.writer.wake();
        Written::Part
    }

    /// The writer task's wait: whether pending bytes are there, else wakes it when they come.
    pub fn poll_pending(&self, cx: &mut Context<'_>) -> bool {
        self.writer.register(cx.waker());
        !self.lock().pending.is_empty()
    }

    /// The writer's next burst, appended to `out` (empty: nothing left, and the socket is
    /// given back): pending bytes first, then `first` and what else is queued, up to `max`
    /// frames. Returns the frames and payload bytes taken.
    pub fn next_burst(
        &self,
        first: Option<Utf8Bytes>,
        queued: &mut mpsc::Receiver<Utf8Bytes>,
        max: usize,
        out: &mut Vec<u8>,
    ) -> (usize, usize) {
        let mut state = self.lock();
        out.append(&mut state.pending);
        state.control = 0;
        let (mut frames, mut bytes) = (0, 0);
        let mut next = first;
        while frames < max {
            let Some(frame) = next.take().or_else(|| queued.try_recv().ok()) else {
                break;
            };
            encode(out, TEXT, frame.as_bytes());
            frames += 1;
            bytes += frame.len();
        }
        // Under the lock, after the queue was found empty: no sender is between its check of
        // `busy` and its queueing.
        if out.is_empty() {
            state.busy = false;
        }
        (frames, bytes)
    }

    /// The writer takes the socket for good to send the close; returns what must go before it
    /// (the rest of a half-written frame, pongs).
    pub fn closing(&self) -> Vec<u8> {
        let mut state = self.lock();
        state.busy = true;
        state.control = 0;
        std::mem::take(&mut state.pending)
    }
}

/// Reads client frames through tungstenite's protocol (masking, fragments, UTF-8, control
/// frames, size limits); the answers it owes (pongs) go out through the [`Wire`].
pub struct Reader {
    io: Box<dyn AsyncRead + Send + Unpin>,
    context: WebSocketContext,
    /// What tungstenite wrote during one read: whole control frames.
    out: Vec<u8>,
    wire: Arc<Wire>,
}

impl Reader {
    /// The next message; None once the connection is closed. Pongs the client does not read
    /// pile up to [`MAX_CONTROL_BYTES`], then `WriteBufferFull`.
    pub async fn next(&mut self) -> Option<Result<Message, tungstenite::Error>> {
        use tungstenite::Error;
        let read = std::future::poll_fn(|cx| {
            let mut io = Polled {
                io: &mut self.io,
                cx,
                out: &mut self.out,
            };
            let read = self.context.read(&mut io);
            // tungstenite replies to a client's close itself; the writer sends ours instead.
            let answers = std::mem::take(&mut self.out);
            if !answers.is_empty() && self.context.can_write() && !self.wire.control(&answers) {
                return Poll::Ready(Err(Error::WriteBufferFull(Box::new(Message::Pong(
                    Default::default(),
                )))));
            }
            match read {
                Err(Error::Io(err)) if err.kind() == io::ErrorKind::WouldBlock => Poll::Pending,
                read => Poll::Ready(read),
            }
        })
        .await;
        match read {
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => None,
            read => Some(read),
        }
    }
}

/// An async stream as the blocking `Read + Write` tungstenite's context wants: a read that
/// would wait is `WouldBlock` (the task is woken when data comes), writes are collected.
struct Polled<'a, 'b> {
    io: &'a mut Box<dyn AsyncRead + Send + Unpin>,
    cx: &'a mut Context<'b>,
    out: &'a mut Vec<u8>,
}

impl Read for Polled<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut buf = ReadBuf::new(buf);
        match Pin::new(&mut *self.io).poll_read(self.cx, &mut buf) {
            Poll::Ready(Ok(())) => Ok(buf.filled().len()),
            Poll::Ready(Err(err)) => Err(err),
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl Write for Polled<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::routing::get;
    use axum::Router;
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpSocket};
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::listener::{self, Deadlines};

    #[test]
    fn headers_take_the_shortest_length_form() {
        let used = |len| header(TEXT, len).1;
        assert_eq!([used(0), used(125), used(126), used(65_535)], [2, 2, 4, 4]);
        assert_eq!(used(65_536), 10);
        assert_eq!(&header(TEXT, 300).0[..4], &[0x81, 126, 1, 44]);
        let mut close = Vec::new();
        encode_close(&mut close, 4100, "slow");
        assert_eq!(close, [0x88, 6, 16, 4, b's', b'l', b'o', b'w']);
    }

    /// Without the downcast, every connection would still work, through the writer task
    /// alone: only this shows the direct path is taken behind the real listener.
    #[tokio::test]
    async fn the_listeners_plain_tcp_comes_back_as_its_socket() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let router = Router::new().route(
            "/ws",
            get(move |mut request: Request| async move {
                let (response, upgrading) = accept(&mut request).unwrap();
                tokio::spawn(async move {
                    let socket = Socket::new(upgrading.await.unwrap());
                    tx.send(matches!(socket, Socket::Tcp(..))).unwrap();
                });
                response
            }),
        );
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let deadlines = Deadlines::default();
        tokio::spawn(listener::serve(
            tcp,
            router,
            deadlines,
            None,
            shutdown.clone(),
        ));
        let (_client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
            .await
            .unwrap();
        assert_eq!(rx.recv().await, Some(true));
        shutdown.cancel();
    }

    /// A loopback connection with small kernel buffers, so writes come back short: the server
    /// end's [`Wire`] (no writer task: tests play its part) and the client end.
    async fn wire_and_client() -> (Wire, TcpStream) {
        let listener = TcpSocket::new_v4().unwrap();
        // The accepted socket inherits the listener's buffer size.
        listener.set_send_buffer_size(4096).unwrap();
        listener.bind(([127, 0, 0, 1], 0).into()).unwrap();
        let listener = listener.listen(1).unwrap();
        let client = TcpSocket::new_v4().unwrap();
        client.set_recv_buffer_size(4096).unwrap();
        let (client, accepted) = tokio::join!(
            client.connect(listener.local_addr().unwrap()),
            listener.accept()
        );
        let (_, write) = accepted.unwrap().0.into_split();
        let wire = Wire {
            socket: Some(write),
            state: Mutex::default(),
            writer: AtomicWaker::new(),
            shared: None,
        };
        (wire, client.unwrap())
    }

    /// Frame `n`, padded to `len` bytes.
    fn numbered(n: usize, len: usize) -> Utf8Bytes {
        let mut frame = n.to_string();
        frame.extend(std::iter::repeat_n(' ', len - frame.len()));
        frame.into()
    }

    /// The writer's part played step by step: it takes a burst, the socket takes some of it,
    /// then room comes. Till the writer finds nothing left, a pong and a text frame must go
    /// behind its burst (written now, they would land inside a half-written frame); then the
    /// socket is given back.
    #[tokio::test]
    async fn the_writer_keeps_the_socket_till_its_burst_is_written() {
        let (wire, mut client) = wire_and_client().await;
        let socket = wire.socket.as_ref().unwrap();
        let (queue, mut queued) = mpsc::channel(64);
        // Every byte the client must get, in order.
        let mut expected = Vec::new();
        let send = |expected: &mut Vec<u8>, n: usize, len: usize| {
            let frame = numbered(n, len);
            expected.extend_from_slice(&Encoded::text(&frame).0);
            wire.send(&frame, Some(&Lazy::new()), |frame| {
                queue.try_send(frame).is_ok()
            })
        };
        // The client reads nothing: direct writes fill the socket till one is left to the
        // writer, then more than the socket holds queues behind it.
        let mut n = 0;
        while send(&mut expected, n, 3_000) != Sent::Queued {
            n += 1;
            assert!(n < 1_000, "the socket never filled");
        }
        for n in n + 1..n + 5 {
            assert_eq!(
                send(&mut expected, n, 70_000),
                Sent::Queued,
                "behind the writer"
            );
        }
        let mut burst = Vec::new();
        wire.next_burst(None, &mut queued, 64, &mut burst);
        let mut written = 0;
        while written < burst.len() {
            match socket.try_write(&burst[written..]) {
                Ok(taken) => written += taken,
                Err(_) => break,
            }
        }
        assert!(written < burst.len(), "the socket took the whole burst");
        // Room: the client reads all the socket took.
        let mut received = vec![0; expected.len() - (burst.len() - written)];
        client.read_exact(&mut received).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), socket.writable())
            .await
            .expect("room in the socket")
            .unwrap();
        let mut pong = Vec::new();
        encode(&mut pong, 0xA, b"pong");
        assert!(wire.control(&pong));
        expected.extend_from_slice(&pong);
        send(&mut expected, n + 5, 10);
        let writer = async {
            let mut sink = Sink::Direct;
            let mut rest = burst.split_off(written);
            while !rest.is_empty() {
                sink.write_all(&wire, &rest).await.unwrap();
                rest.clear();
                wire.next_burst(None, &mut queued, 64, &mut rest);
            }
        };
        let mut rest = vec![0; expected.len() - received.len()];
        let (_, read) = tokio::join!(
            writer,
            tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut rest))
        );
        read.expect("every byte in time").unwrap();
        received.extend_from_slice(&rest);
        if let Some(at) = received.iter().zip(&expected).position(|(a, b)| a != b) {
            panic!(
                "byte {at} of {} differs: a frame written past the writer's burst",
                expected.len()
            );
        }
        assert!(!wire.lock().busy, "the socket is given back");
    }
}

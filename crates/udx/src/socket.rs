//! The tokio driver for UDX: UDP sockets that multiplex UDX streams and raw datagrams.
//!
//! As in libudx, streams belong to a [`Udx`] instance (their ids are unique within it) and are carried by one of
//! its sockets at a time: a stream connects through a socket and [`UdxStream::change_remote_via`] can move it to
//! another (HyperDHT's holepunch upgrade). [`UdxSocket::bind`] makes a socket with an instance of its own, which
//! is all most uses need.
//!
//! The instance's streams and the routing of its datagrams are a sans-IO [`Endpoint`]; this module adds the I/O.
//! One driver task per socket hands the endpoint what the socket receives and sends what the endpoint produces
//! for the streams that socket carries: it owns the socket, the clock and the timer. Application handles share
//! the instance's state (the endpoint, the wakers, the raw queues) behind one mutex: a write copies bytes into
//! the stream's send buffer and wakes the driver, a read copies bytes out; there is no per-packet channel hop.
//! The driver receives with `recvmmsg` + GRO (through quinn-udp, in the private `io` module) and sends each GSO
//! batch with one `sendmsg` whose iovecs point at the packet headers and straight into the streams' send rings,
//! under the lock (see the private `batch` module): a payload is copied once on its way out, by the kernel. A
//! writer can also fill the send ring in place ([`UdxStream::poll_write_with`]) and a reader take bytes from
//! the receive ring in place ([`UdxStream::poll_read_with`]): the secret stream encrypts and decrypts there.
//!
//! Datagram dispatch matches libudx (see [`super::endpoint`]): a datagram that is not a UDX packet, or a UDX
//! packet for a stream id the instance does not know (or a closed one), goes to the socket's raw queue read by
//! [`UdxSocket::recv_from`] (the DHT shares the socket). A packet for a stream that is not connected, or that is
//! carried by another socket, is offered to the stream's firewall, which rejects by default (as udx-native does).

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::batch::TxBatch;
use super::endpoint::{Endpoint, EndpointError, Event, Outgoing, RoutedStream, StreamChange};
use super::io::{is_gso_error, link_mtu, RecvBuffers, UdpIo, MAX_GSO_BYTES};
use super::packet;
use super::stream::{StreamConfig, StreamError, StreamStats};

/// At most this many raw (non-UDX) datagrams wait in a socket's queue; more are dropped, as a full socket
/// buffer would.
const RAW_QUEUE_MAX: usize = 1024;
/// Bytes of packets the driver prepares per lock before sending them.
const TX_BATCH_BYTES: usize = 512 * 1024;
/// Driver loop iterations before yielding to other tasks.
const DRIVER_BUDGET: usize = 64;

pub use super::endpoint::FirewallVerdict;

/// A UDX instance: the namespace of stream ids, shared by the sockets bound from it (libudx's `udx_t`,
/// udx-native's `UDX`). Cheap to clone.
pub struct Udx {
    shared: Arc<Shared>,
}

/// A UDP socket carrying UDX streams and raw datagrams. Cheap to clone; the socket closes once every clone is
/// dropped and no stream uses it any more.
pub struct UdxSocket {
    shared: Arc<Shared>,
    sock: Arc<SocketIo>,
}

/// One UDX stream: a reliable, ordered byte stream ([`AsyncRead`] + [`AsyncWrite`], also on `&UdxStream`) plus
/// unreliable messages.
///
/// `poll_shutdown` sends END after all written bytes; a read returning 0 bytes is the remote's END.
/// Dropping the handle finishes the stream gracefully (like closing a TCP socket); use
/// [`UdxStream::destroy`] to abort.
pub struct UdxStream {
    shared: Arc<Shared>,
    id: u32,
}

/// The state of one instance.
struct Shared {
    inner: Mutex<Inner>,
    /// Live [`Udx`] and [`UdxStream`] handles.
    handles: AtomicUsize,
}

/// One bound socket's I/O, shared by its handles (raw sends) and its driver.
struct SocketIo {
    io: UdpIo,
    id: usize,
    local_addr: SocketAddr,
}

/// The instance's state under its lock: the sans-IO [`Endpoint`] (streams and routing) plus what the tokio side
/// adds, the wakers and the sockets' raw queues.
struct Inner {
    endpoint: Endpoint,
    /// The wakers of each stream's application handles, by stream id.
    wakers: foldhash::HashMap<u32, StreamWakers>,
    sockets: foldhash::HashMap<usize, SocketState>,
    next_socket: usize,
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            endpoint: Endpoint::new(path_mtu),
            wakers: foldhash::HashMap::default(),
            sockets: foldhash::HashMap::default(),
            next_socket: 0,
        }
    }
}

/// Per-socket state under the instance lock.
struct SocketState {
    local_addr: SocketAddr,
    raw: VecDeque<(Vec<u8>, SocketAddr)>,
    raw_waker: Option<Waker>,
    driver_waker: Option<Waker>,
    /// Live [`UdxSocket`] handles of this socket.
    handles: usize,
    /// Set when the driver stopped on a socket error; operations on this socket then fail with it.
    fatal: Option<(io::ErrorKind, String)>,
}

/// The tasks waiting on one stream.
#[derive(Default)]
struct StreamWakers {
    read: Option<Waker>,
    write: Option<Waker>,
    message: Option<Waker>,
    close: Option<Waker>,
    remote_changed: Option<Waker>,
}

impl StreamWakers {
    fn wake_all(&mut self, wake: &mut Vec<Waker>) {
        wake.extend(self.read.take());
        wake.extend(self.write.take());
        wake.extend(self.message.take());
        wake.extend(self.close.take());
        wake.extend(self.remote_changed.take());
    }
}

/// The error a closed stream's operations fail with.
/// Stream `id`'s slot and the wakers, when the stream can be written to; else the error a write gives (the
/// instance failed, no such stream, closed or failed, shut down).
fn writable(
    inner: &mut Inner,
    id: u32,
) -> io::Result<(&mut RoutedStream, &mut foldhash::HashMap<u32, StreamWakers>)> {
    if let Some(e) = inner.fatal_for(id) {
        return Err(e);
    }
    let Inner {
        endpoint, wakers, ..
    } = inner;
    let slot = endpoint.stream_mut(id).ok_or_else(|| no_stream(id))?;
    if let Some(e) = closed_error(slot) {
        return Err(e);
    }
    if slot.is_finished() {
        return Err(io::Error::new(
            io::ErrorKind::BrokenPipe,
            "udx stream was shut down",
        ));
    }
    Ok((slot, wakers))
}

fn closed_error(slot: &RoutedStream) -> Option<io::Error> {
    match slot.close_state()? {
        Some(e) => Some(stream_error(e)),
        None => Some(io::Error::new(
            io::ErrorKind::BrokenPipe,
            "udx stream closed",
        )),
    }
}

fn stream_error(e: &StreamError) -> io::Error {
    io::Error::new(error_kind(e), e.to_string())
}

/// The `io::Error` of an endpoint operation's error.
fn endpoint_error(e: EndpointError) -> io::Error {
    let kind = match &e {
        EndpointError::UnknownStream(_) | EndpointError::NotConnected => {
            io::ErrorKind::NotConnected
        }
        EndpointError::IdInUse(_) => io::ErrorKind::AddrInUse,
        EndpointError::AlreadyConnected => io::ErrorKind::AlreadyExists,
        EndpointError::NoSocket => io::ErrorKind::InvalidInput,
        EndpointError::Stream(e) => return stream_error(e),
    };
    io::Error::new(kind, e.to_string())
}

impl Inner {
    /// The error of the socket carrying stream `id`, if that socket failed.
    fn fatal_for(&self, id: u32) -> Option<io::Error> {
        let socket = self.endpoint.stream(id)?.socket()?;
        self.sockets.get(&socket)?.fatal.as_ref().map(fatal_error)
    }

    /// The driver waker of the socket carrying stream `id` (taken: the driver re-registers each round).
    fn take_driver_waker(&mut self, id: u32) -> Option<Waker> {
        let socket = self.endpoint.stream(id)?.socket()?;
        self.sockets.get_mut(&socket)?.driver_waker.take()
    }

    /// Acts on the endpoint's events: raw datagrams to their socket's queue, wakers to call into `wake`.
    fn process_events(&mut self, wake: &mut Vec<Waker>) {
        while let Some(event) = self.endpoint.poll_event() {
            match event {
                Event::PassThrough {
                    socket,
                    from,
                    datagram,
                } => {
                    if let Some(state) = self.sockets.get_mut(&socket) {
                        if state.raw.len() < RAW_QUEUE_MAX {
                            state.raw.push_back((datagram, from));
                            wake.extend(state.raw_waker.take());
                        }
                    }
                }
                Event::Transmit { socket } => {
                    wake.extend(
                        self.sockets
                            .get_mut(&socket)
                            .and_then(|s| s.driver_waker.take()),
                    );
                }
                Event::Stream { id, change } => {
                    let Some(w) = self.wakers.get_mut(&id) else {
                        continue;
                    };
                    match change {
                        StreamChange::Readable => wake.extend(w.read.take()),
                        StreamChange::Writable => wake.extend(w.write.take()),
                        StreamChange::Message => wake.extend(w.message.take()),
                        StreamChange::RemoteChanged => wake.extend(w.remote_changed.take()),
                        StreamChange::Closed => w.wake_all(wake),
                    }
                }
            }
        }
    }

    /// Moves the streams the endpoint retired into `graveyard` and forgets their wakers.
    fn retire(&mut self, graveyard: &mut Vec<(u32, RoutedStream)>) {
        let from = graveyard.len();
        self.endpoint.take_retired(graveyard);
        for (id, _) in &graveyard[from..] {
            self.wakers.remove(id);
        }
    }
}

impl Shared {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Inner::default()),
            handles: AtomicUsize::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent-enough state for a network stack: keep going.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn release_handle(&self) {
        if self.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Let every driver re-check whether it may stop.
            let wakers: Vec<Waker> = self
                .lock()
                .sockets
                .values_mut()
                .filter_map(|s| s.driver_waker.take())
                .collect();
            for w in wakers {
                w.wake();
            }
        }
    }

    fn bind(self: &Arc<Self>, addr: SocketAddr, config: SocketConfig) -> io::Result<UdxSocket> {
        let io = UdpIo::bind(addr, config.gro)?;
        let local_addr = io.local_addr()?;
        let id = {
            let mut inner = self.lock();
            let id = inner.next_socket;
            inner.next_socket += 1;
            inner.sockets.insert(
                id,
                SocketState {
                    local_addr,
                    raw: VecDeque::new(),
                    raw_waker: None,
                    driver_waker: None,
                    handles: 1,
                    fatal: None,
                },
            );
            id
        };
        let sock = Arc::new(SocketIo { io, id, local_addr });
        tokio::spawn(Driver::new(Arc::clone(self), Arc::clone(&sock), config.gso));
        Ok(UdxSocket {
            shared: Arc::clone(self),
            sock,
        })
    }

    fn create_stream(
        self: &Arc<Self>,
        local_id: u32,
        config: StreamConfig,
        socket: Option<usize>,
    ) -> io::Result<UdxStream> {
        let mut inner = self.lock();
        inner
            .endpoint
            .create_stream(local_id, config, socket, Instant::now())
            .map_err(endpoint_error)?;
        inner.wakers.insert(local_id, StreamWakers::default());
        self.handles.fetch_add(1, Ordering::AcqRel);
        Ok(UdxStream {
            shared: Arc::clone(self),
            id: local_id,
        })
    }
}

/// The `io::ErrorKind` matching a stream error.
fn error_kind(e: &StreamError) -> io::ErrorKind {
    match e {
        StreamError::NotConnected => io::ErrorKind::NotConnected,
        StreamError::Closed => io::ErrorKind::BrokenPipe,
        StreamError::MessageTooLarge { .. } => io::ErrorKind::InvalidInput,
        StreamError::TimedOut => io::ErrorKind::TimedOut,
        StreamError::Reset => io::ErrorKind::ConnectionReset,
        _ => io::ErrorKind::Other,
    }
}

fn fatal_error(fatal: &(io::ErrorKind, String)) -> io::Error {
    io::Error::new(fatal.0, fatal.1.clone())
}

fn no_stream(id: u32) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        format!("udx stream {id} is gone"),
    )
}

fn socket_gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "udx socket is closed")
}

/// Options of a [`UdxSocket`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketConfig {
    /// Send batches of datagrams with UDP GSO where the kernel supports it (default true).
    pub gso: bool,
    /// Receive coalesced datagrams with UDP GRO where the kernel supports it (default true).
    pub gro: bool,
}

impl Default for SocketConfig {
    fn default() -> Self {
        Self {
            gso: true,
            gro: true,
        }
    }
}

impl Udx {
    /// A new instance, with no sockets and no streams.
    pub fn new() -> Self {
        let shared = Shared::new();
        shared.handles.fetch_add(1, Ordering::AcqRel);
        Self { shared }
    }

    /// Binds a UDP socket of this instance to `addr` and starts its driver. Needs a tokio runtime.
    pub async fn bind(&self, addr: SocketAddr) -> io::Result<UdxSocket> {
        self.shared.bind(addr, SocketConfig::default())
    }

    /// [`Udx::bind`] with options.
    pub async fn bind_with(&self, addr: SocketAddr, config: SocketConfig) -> io::Result<UdxSocket> {
        self.shared.bind(addr, config)
    }

    /// Makes every connected stream of this instance send a HEARTBEAT now ([`Endpoint::probe_all`]): after
    /// this machine's addresses changed, peers that follow a stream to a new address
    /// ([`UdxStream::set_migration`]) learn ours.
    pub fn probe_streams(&self) {
        let mut wake = Vec::new();
        {
            let mut inner = self.shared.lock();
            let sockets = inner.endpoint.probe_all(Instant::now());
            for s in sockets {
                if let Some(w) = inner
                    .sockets
                    .get_mut(&s)
                    .and_then(|s| s.driver_waker.take())
                {
                    wake.push(w);
                }
            }
        }
        for w in wake {
            w.wake();
        }
    }

    /// Creates stream `local_id`, not yet carried by any socket: connect it with [`UdxStream::connect_via`], or
    /// let its firewall connect it. Fails if the id is in use in this instance.
    pub fn create_stream(&self, local_id: u32) -> io::Result<UdxStream> {
        self.shared
            .create_stream(local_id, StreamConfig::default(), None)
    }

    /// [`Udx::create_stream`] with a configuration.
    pub fn create_stream_with(&self, local_id: u32, config: StreamConfig) -> io::Result<UdxStream> {
        self.shared.create_stream(local_id, config, None)
    }
}

impl Default for Udx {
    fn default() -> Self {
        Self::new()
    }
}

impl Clone for Udx {
    fn clone(&self) -> Self {
        self.shared.handles.fetch_add(1, Ordering::AcqRel);
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for Udx {
    fn drop(&mut self) {
        self.shared.release_handle();
    }
}

impl fmt::Debug for Udx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.shared.lock();
        f.debug_struct("Udx")
            .field("sockets", &inner.sockets.len())
            .field("streams", &inner.endpoint.len())
            .finish()
    }
}

impl UdxSocket {
    /// Binds a UDP socket, with a UDX instance of its own, to `addr` and starts its driver task. Must be called
    /// within a tokio runtime.
    pub async fn bind(addr: SocketAddr) -> io::Result<Self> {
        Self::bind_sync(addr, SocketConfig::default())
    }

    /// [`UdxSocket::bind`] with options.
    pub async fn bind_with(addr: SocketAddr, config: SocketConfig) -> io::Result<Self> {
        Self::bind_sync(addr, config)
    }

    /// [`UdxSocket::bind_with`] without the `async`; still needs a tokio runtime context.
    pub fn bind_sync(addr: SocketAddr, config: SocketConfig) -> io::Result<Self> {
        Shared::new().bind(addr, config)
    }

    /// The instance this socket belongs to (to bind more sockets or create streams in it).
    pub fn udx(&self) -> Udx {
        self.shared.handles.fetch_add(1, Ordering::AcqRel);
        Udx {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The bound local address.
    pub fn local_addr(&self) -> SocketAddr {
        self.sock.local_addr
    }

    /// Sends one raw datagram (not part of any UDX stream), e.g. a DHT message.
    pub async fn send_to(&self, data: &[u8], addr: SocketAddr) -> io::Result<usize> {
        self.sock.io.send_to(data, addr).await
    }

    /// Sends one raw datagram with IP TTL `ttl` (HyperDHT's low-TTL holepunch packets open a NAT mapping
    /// without reaching the far NAT).
    pub async fn send_to_ttl(&self, data: &[u8], addr: SocketAddr, ttl: u32) -> io::Result<usize> {
        self.sock.io.send_to_ttl(data, addr, ttl).await
    }

    /// Receives the next raw datagram: one that is not a UDX packet, or a UDX packet for a stream id the
    /// instance does not know. Returns its length (truncated to `buf`) and source. With several concurrent
    /// callers, only the last one to wait is woken.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        std::future::poll_fn(|cx| self.poll_recv_from(cx, buf)).await
    }

    /// Polling form of [`UdxSocket::recv_from`].
    pub fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, SocketAddr)>> {
        let mut inner = self.shared.lock();
        let Some(state) = inner.sockets.get_mut(&self.sock.id) else {
            return Poll::Ready(Err(socket_gone()));
        };
        if let Some((data, from)) = state.raw.pop_front() {
            let n = data.len().min(buf.len());
            buf[..n].copy_from_slice(&data[..n]);
            return Poll::Ready(Ok((n, from)));
        }
        if let Some(fatal) = &state.fatal {
            return Poll::Ready(Err(fatal_error(fatal)));
        }
        state.raw_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Creates stream `local_id` carried by this socket, with the default configuration. Fails if the id is in
    /// use in the instance.
    pub fn create_stream(&self, local_id: u32) -> io::Result<UdxStream> {
        self.create_stream_with(local_id, StreamConfig::default())
    }

    /// Creates stream `local_id` carried by this socket, with `config`.
    pub fn create_stream_with(&self, local_id: u32, config: StreamConfig) -> io::Result<UdxStream> {
        if let Some(fatal) = self
            .shared
            .lock()
            .sockets
            .get(&self.sock.id)
            .and_then(|s| s.fatal.clone())
        {
            return Err(fatal_error(&fatal));
        }
        self.shared
            .create_stream(local_id, config, Some(self.sock.id))
    }

    /// Counters of stream `local_id` of the instance, if it exists.
    pub fn stream_stats(&self, local_id: u32) -> Option<StreamStats> {
        self.shared
            .lock()
            .endpoint
            .stream(local_id)
            .map(|slot| slot.stream().stats())
    }

    /// How many streams this socket carries (including closing ones whose handle was dropped).
    pub fn stream_count(&self) -> usize {
        self.shared.lock().endpoint.stream_count(self.sock.id)
    }
}

impl Clone for UdxSocket {
    fn clone(&self) -> Self {
        if let Some(state) = self.shared.lock().sockets.get_mut(&self.sock.id) {
            state.handles += 1;
        }
        Self {
            shared: Arc::clone(&self.shared),
            sock: Arc::clone(&self.sock),
        }
    }
}

impl Drop for UdxSocket {
    fn drop(&mut self) {
        let waker = {
            let mut inner = self.shared.lock();
            inner.sockets.get_mut(&self.sock.id).and_then(|state| {
                state.handles = state.handles.saturating_sub(1);
                if state.handles == 0 {
                    state.driver_waker.take()
                } else {
                    None
                }
            })
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl fmt::Debug for UdxSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdxSocket")
            .field("local_addr", &self.sock.local_addr)
            .finish()
    }
}

impl UdxStream {
    /// This stream's local id.
    pub fn local_id(&self) -> u32 {
        self.id
    }

    /// The local address of the socket carrying this stream, if any.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        let inner = self.shared.lock();
        let socket = inner.endpoint.stream(self.id)?.socket()?;
        inner.sockets.get(&socket).map(|s| s.local_addr)
    }

    /// Runs `f` on the instance's endpoint, then wakes the driver of the socket carrying this stream (outside
    /// the lock) so it sends what `f` queued and re-arms its timers.
    fn with_endpoint<R>(
        &self,
        f: impl FnOnce(&mut Endpoint, Instant) -> io::Result<R>,
    ) -> io::Result<R> {
        with_endpoint_of(&self.shared, self.id, f)
    }

    /// Runs `f` on this stream's slot, as [`UdxStream::with_endpoint`].
    fn with_slot<R>(&self, f: impl FnOnce(&mut RoutedStream) -> io::Result<R>) -> io::Result<R> {
        let id = self.id;
        self.with_endpoint(|ep, _| f(ep.stream_mut(id).ok_or_else(|| no_stream(id))?))
    }

    /// Offers the packets the firewall held ([`FirewallVerdict::Hold`]) to the firewall again, now (for when
    /// what it decides on changed, e.g. the remote's stream id became known: it can then connect the stream
    /// with them instead of waiting for the remote to send again). Packets it holds again stay held.
    pub fn retry_held(&self) -> io::Result<()> {
        let mut wake = Vec::new();
        {
            let mut inner = self.shared.lock();
            inner
                .endpoint
                .retry_held(self.id, Instant::now())
                .map_err(endpoint_error)?;
            inner.process_events(&mut wake);
            wake.extend(inner.take_driver_waker(self.id));
        }
        for w in wake {
            w.wake();
        }
        Ok(())
    }

    /// Connects to stream `remote_id` at `addr` through the socket the stream was created on.
    pub fn connect(&self, remote_id: u32, addr: SocketAddr) -> io::Result<()> {
        let id = self.id;
        self.with_endpoint(|ep, now| {
            ep.connect(id, None, remote_id, addr, now)
                .map_err(endpoint_error)
        })
    }

    /// Connects to stream `remote_id` at `addr` through `socket` (of the same instance).
    pub fn connect_via(
        &self,
        socket: &UdxSocket,
        remote_id: u32,
        addr: SocketAddr,
    ) -> io::Result<()> {
        self.check_same_instance(socket)?;
        let (id, via) = (self.id, socket.sock.id);
        self.with_endpoint(|ep, now| {
            ep.connect(id, Some(via), remote_id, addr, now)
                .map_err(endpoint_error)
        })
    }

    /// Connects to stream `remote_id` through the socket carrying the stream `other` controls, at that
    /// stream's remote address (hyperdht's `connectRawStream`): how a peer reaches its blind-relay stream
    /// along the path of its connection to the relay. Fails if `other` is gone or not connected, belongs to
    /// another instance, or this stream is connected.
    pub fn connect_alongside(&self, other: &UdxStreamControl, remote_id: u32) -> io::Result<()> {
        let same = other
            .shared
            .upgrade()
            .is_some_and(|s| Arc::ptr_eq(&s, &self.shared));
        if !same {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the other stream is gone or belongs to another Udx instance",
            ));
        }
        let id = self.id;
        self.with_endpoint(|ep, now| {
            let slot = ep.stream(other.id).ok_or_else(|| no_stream(other.id))?;
            let (socket, addr) = match (slot.socket(), slot.stream().remote()) {
                (Some(s), Some((_, a))) => (s, a),
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::NotConnected,
                        "the other udx stream is not connected",
                    ))
                }
            };
            ep.connect(id, Some(socket), remote_id, addr, now)
                .map_err(endpoint_error)
        })
    }

    /// Moves the stream to another remote (id and address), keeping its state. New packets go to the new
    /// remote; packets already sent to the old one are retransmitted there until acknowledged (as libudx does),
    /// so keep the old path up until [`UdxStream::remote_changed`] completes.
    pub fn change_remote(&self, remote_id: u32, addr: SocketAddr) -> io::Result<()> {
        let id = self.id;
        self.with_endpoint(|ep, now| {
            ep.change_remote(id, None, remote_id, addr, now)
                .map_err(endpoint_error)
        })
    }

    /// [`UdxStream::change_remote`], also moving the stream onto `socket` (of the same instance), as
    /// udx-native's `changeRemote(socket, ...)`. Packets arriving on the old socket then go through the firewall.
    pub fn change_remote_via(
        &self,
        socket: &UdxSocket,
        remote_id: u32,
        addr: SocketAddr,
    ) -> io::Result<()> {
        change_remote_via_of(&self.shared, self.id, socket, remote_id, addr)
    }

    fn check_same_instance(&self, socket: &UdxSocket) -> io::Result<()> {
        if Arc::ptr_eq(&self.shared, &socket.shared) {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the socket belongs to another Udx instance",
            ))
        }
    }

    /// Turns this stream into a blind relay to `destination` (udx-native `relayTo`): every datagram this stream
    /// receives is forwarded, with its stream id rewritten, to `destination`'s remote through the socket carrying
    /// `destination`. This stream no longer reads or writes; it is destroyed when `destination` closes. Relay
    /// both streams to each other for a two-way relay (what blind-relay does).
    pub fn relay_to(&self, destination: &UdxStream) -> io::Result<()> {
        if !Arc::ptr_eq(&self.shared, &destination.shared) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the streams belong to different Udx instances",
            ));
        }
        let (id, to) = (self.id, destination.id);
        self.with_endpoint(|ep, _| ep.relay_to(id, to).map_err(endpoint_error))
    }

    /// Waits until the last [`UdxStream::change_remote`] has completed: everything sent to the old remote was
    /// acknowledged (udx-native's `remote-changed` event). Returns at once if no change is under way.
    pub async fn remote_changed(&self) -> io::Result<()> {
        std::future::poll_fn(|cx| poll_remote_changed_of(&self.shared, self.id, cx)).await
    }

    /// The remote stream id and address, once connected.
    pub fn remote(&self) -> Option<(u32, SocketAddr)> {
        self.with_slot(|slot| Ok(slot.stream().remote()))
            .ok()
            .flatten()
    }

    /// Follows the peer to a new address (off by default, as udx-native): a plausible packet of this stream
    /// from another address on its socket moves the stream there ([`Endpoint::set_migration`]). HyperDHT
    /// turns it on for direct connections, so an open connection survives the peer's network change.
    pub fn set_migration(&self, on: bool) -> io::Result<()> {
        let id = self.id;
        self.with_endpoint(|ep, _| ep.set_migration(id, on).map_err(endpoint_error))
    }

    /// Also consults the firewall for packets that arrive on the carrying socket from an address other than
    /// the remote's (off by default: udx takes those as the stream's own). HyperDHT's server sets it on a
    /// stream running through a blind relay, whose client may reach it directly on the same socket: the
    /// firewall then sees that packet and can move the stream there ([`FirewallVerdict::Connect`]).
    pub fn set_firewall_off_path(&self, on: bool) -> io::Result<()> {
        let id = self.id;
        self.with_endpoint(|ep, _| ep.set_firewall_off_path(id, on).map_err(endpoint_error))
    }

    /// Sets the firewall consulted for packets that arrive while the stream is not connected, or on a socket
    /// other than the one carrying it. It gets the packet's source and the receiving socket's local address.
    ///
    /// It runs on the driver with the instance's state locked: it must decide quickly and must not call into
    /// this module's API (record what it saw and act on it elsewhere, or answer [`FirewallVerdict::Connect`]).
    pub fn set_firewall(
        &self,
        firewall: impl FnMut(SocketAddr, SocketAddr) -> FirewallVerdict + Send + 'static,
    ) -> io::Result<()> {
        let id = self.id;
        // The previous firewall (and whatever it captured) is dropped after the lock is released.
        let _previous = self.with_endpoint(|ep, _| {
            ep.set_firewall(id, Box::new(firewall))
                .map_err(endpoint_error)
        })?;
        Ok(())
    }

    /// Sends a HEARTBEAT after this long without traffic (udx-native `setKeepalive`); `None` turns it off.
    pub fn set_keepalive(&self, interval: Option<Duration>) -> io::Result<()> {
        self.with_endpoint(|ep, now| {
            let slot = ep.stream_mut(self.id).ok_or_else(|| no_stream(self.id))?;
            slot.stream_mut().set_keepalive(interval, now);
            Ok(())
        })
    }

    /// Sends an unordered, unreliable message (UDX MESSAGE) of at most [`UdxStream::max_message_len`] bytes.
    pub fn send_message(&self, data: &[u8]) -> io::Result<()> {
        send_message_of(&self.shared, self.id, data)
    }

    /// The largest message [`UdxStream::send_message`] accepts now.
    pub fn max_message_len(&self) -> usize {
        self.with_slot(|slot| Ok(slot.stream().max_message_len()))
            .unwrap_or(0)
    }

    /// Receives the next message sent with `send_message` by the remote.
    pub async fn recv_message(&self) -> io::Result<Vec<u8>> {
        std::future::poll_fn(|cx| self.poll_recv_message(cx)).await
    }

    /// Polling form of [`UdxStream::recv_message`].
    pub fn poll_recv_message(&self, cx: &mut Context<'_>) -> Poll<io::Result<Vec<u8>>> {
        poll_recv_message_of(&self.shared, self.id, cx)
    }

    /// Aborts the stream: sends DESTROY and closes it now.
    pub fn destroy(&self) {
        let id = self.id;
        let _ = self.with_endpoint(|ep, _| ep.destroy(id).map_err(endpoint_error));
    }

    /// Waits until the stream has closed: both sides ended and everything acknowledged, destroyed, or
    /// failed. Returns the error it failed with, if any.
    pub async fn closed(&self) -> io::Result<()> {
        std::future::poll_fn(|cx| poll_closed_of(&self.shared, self.id, cx)).await
    }

    /// Bytes written and not yet acknowledged by the remote (0 once everything written was acknowledged).
    pub fn unacked_len(&self) -> io::Result<usize> {
        self.with_slot(|slot| Ok(slot.stream().unacked_len()))
    }

    /// Counters and estimates of the underlying state machine.
    pub fn stats(&self) -> io::Result<StreamStats> {
        self.with_slot(|slot| Ok(slot.stream().stats()))
    }

    fn poll_read_ref(&self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let mut inner = self.shared.lock();
        if let Some(e) = inner.fatal_for(self.id) {
            return Poll::Ready(Err(e));
        }
        let Inner {
            endpoint, wakers, ..
        } = &mut *inner;
        let Some(slot) = endpoint.stream_mut(self.id) else {
            return Poll::Ready(Err(no_stream(self.id)));
        };
        let n = slot.stream_mut().read(buf.initialize_unfilled());
        if n > 0 {
            buf.advance(n);
            // Reading opened the receive window: let the driver advertise it if it needs to.
            let waker = inner.take_driver_waker(self.id);
            drop(inner);
            if let Some(w) = waker {
                w.wake();
            }
            return Poll::Ready(Ok(()));
        }
        if slot.is_remote_ended() {
            return Poll::Ready(Ok(()));
        }
        match slot.close_state() {
            Some(Some(e)) => return Poll::Ready(Err(stream_error(e))),
            Some(None) => return Poll::Ready(Ok(())),
            None => {}
        }
        wakers.entry(self.id).or_default().read = Some(cx.waker().clone());
        Poll::Pending
    }

    fn poll_write_ref(&self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut inner = self.shared.lock();
        let (slot, wakers) = match writable(&mut inner, self.id) {
            Ok(w) => w,
            Err(e) => return Poll::Ready(Err(e)),
        };
        let n = slot.stream_mut().write(data);
        if n == 0 {
            wakers.entry(self.id).or_default().write = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let waker = inner.take_driver_waker(self.id);
        drop(inner);
        if let Some(w) = waker {
            w.wake();
        }
        Poll::Ready(Ok(n))
    }

    /// Writes in place: once the send buffer has room for at least `min` bytes (at least 1, at most
    /// [`HIGH_WATERMARK`]), calls `f` with it, under the instance's lock, and returns what `f` returned. `f`
    /// appends bytes with [`WriteRoom::reserve`] and fills them where the packets are sent from (no copy
    /// through a `write` buffer). Fails as [`AsyncWrite::poll_write`] does on a closed, failed or shut down
    /// stream.
    ///
    /// `min` is capped at [`HIGH_WATERMARK`] because that much room is certain once everything written was
    /// acknowledged: beyond it, room depends on the send window, which only grows while data flows, so a
    /// writer waiting for more than the stream offers with nothing in flight would wait forever. `f` must
    /// therefore check [`WriteRoom::capacity`] when it asked for more.
    ///
    /// [`HIGH_WATERMARK`]: super::stream::HIGH_WATERMARK
    pub fn poll_write_with<R>(
        &self,
        cx: &mut Context<'_>,
        min: usize,
        f: impl FnOnce(&mut WriteRoom<'_>) -> R,
    ) -> Poll<io::Result<R>> {
        let mut inner = self.shared.lock();
        let (slot, wakers) = match writable(&mut inner, self.id) {
            Ok(w) => w,
            Err(e) => return Poll::Ready(Err(e)),
        };
        let stream = slot.stream_mut();
        if stream.write_in_place_capacity() < min.clamp(1, super::stream::HIGH_WATERMARK) {
            stream.want_writable();
            wakers.entry(self.id).or_default().write = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let queued = stream.unacked_len();
        let r = f(&mut WriteRoom { stream });
        let wrote = slot.stream().unacked_len() != queued;
        let waker = if wrote {
            inner.take_driver_waker(self.id)
        } else {
            None
        };
        drop(inner);
        if let Some(w) = waker {
            w.wake();
        }
        Poll::Ready(Ok(r))
    }

    /// Reads in place: calls `f` under the instance's lock with the received bytes not yet read (see
    /// [`Readable`]); `f` returns how many of them to consume and a result, or `None` to wait for more bytes
    /// (then `Pending`, woken when more arrive). `f` is not called while nothing is buffered and more may come;
    /// once no more can come it is called, with [`Readable::ended`] set, and must not return `None` then (that
    /// is an `UnexpectedEof` error). A stream that failed with nothing buffered returns its error.
    pub fn poll_read_with<R>(
        &self,
        cx: &mut Context<'_>,
        f: impl FnOnce(Readable<'_>) -> Option<(usize, R)>,
    ) -> Poll<io::Result<R>> {
        let mut inner = self.shared.lock();
        if let Some(e) = inner.fatal_for(self.id) {
            return Poll::Ready(Err(e));
        }
        let Inner {
            endpoint, wakers, ..
        } = &mut *inner;
        let Some(slot) = endpoint.stream_mut(self.id) else {
            return Poll::Ready(Err(no_stream(self.id)));
        };
        let ended = slot.is_remote_ended() || slot.close_state().is_some();
        let (first, second) = slot.stream().readable();
        if first.is_empty() {
            if let Some(Some(e)) = slot.close_state() {
                return Poll::Ready(Err(stream_error(e)));
            }
            if !ended {
                slot.stream_mut().want_readable();
                wakers.entry(self.id).or_default().read = Some(cx.waker().clone());
                return Poll::Pending;
            }
        }
        let window = slot.stream().recv_window_max();
        match f(Readable {
            first,
            second,
            ended,
            window,
        }) {
            Some((n, r)) => {
                slot.stream_mut().consume(n);
                let waker = if n > 0 {
                    // Reading opened the receive window: let the driver advertise it if it needs to.
                    inner.take_driver_waker(self.id)
                } else {
                    None
                };
                drop(inner);
                if let Some(w) = waker {
                    w.wake();
                }
                Poll::Ready(Ok(r))
            }
            None if ended => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "udx stream ended while the reader waited for more bytes",
            ))),
            None => {
                slot.stream_mut().want_readable();
                wakers.entry(self.id).or_default().read = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    fn poll_flush_ref(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown_ref(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let id = self.id;
        Poll::Ready(self.with_endpoint(|ep, _| ep.finish(id).map_err(endpoint_error)))
    }
}

impl AsyncRead for UdxStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.poll_read_ref(cx, buf)
    }
}

impl AsyncWrite for UdxStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_ref(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush_ref(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_shutdown_ref(cx)
    }
}

/// Reading and writing through shared references, so one task can read while another writes (and both can
/// still call [`UdxStream::change_remote`] and friends) without `tokio::io::split`.
impl AsyncRead for &UdxStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        (**self).poll_read_ref(cx, buf)
    }
}

impl AsyncWrite for &UdxStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        (**self).poll_write_ref(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        (**self).poll_flush_ref(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        (**self).poll_shutdown_ref(cx)
    }
}

impl Drop for UdxStream {
    fn drop(&mut self) {
        let id = self.id;
        // A stream no socket carries has no driver to retire it: the endpoint hands it back at once, and it is
        // dropped after the lock is released.
        let _retired = self.with_endpoint(|ep, _| Ok(ep.detach(id)));
        if matches!(_retired, Ok(Some(_))) {
            self.shared.lock().wakers.remove(&id);
        }
        self.shared.release_handle();
    }
}

impl fmt::Debug for UdxStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdxStream").field("id", &self.id).finish()
    }
}

/// The send buffer's room, handed to the callback of [`UdxStream::poll_write_with`].
pub struct WriteRoom<'a> {
    stream: &'a mut super::stream::Stream,
}

impl WriteRoom<'_> {
    /// How many more bytes the send buffer takes now ([`Stream::write_in_place_capacity`]).
    ///
    /// [`Stream::write_in_place_capacity`]: super::stream::Stream::write_in_place_capacity
    pub fn capacity(&self) -> usize {
        self.stream.write_in_place_capacity()
    }

    /// Appends `n` bytes (at most [`WriteRoom::capacity`]) to the stream, returned as up to two slices (the
    /// second non-empty when the space wraps around the end of the send ring) that the caller must fill
    /// entirely: they hold stale bytes, and go out as they are. `None` when `n` is 0 or too large.
    pub fn reserve(&mut self, n: usize) -> Option<(&mut [u8], &mut [u8])> {
        self.stream.write_in_place(n)
    }
}

impl fmt::Debug for WriteRoom<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteRoom")
            .field("capacity", &self.capacity())
            .finish()
    }
}

/// The received bytes not yet read, handed to the callback of [`UdxStream::poll_read_with`].
#[derive(Debug, Clone, Copy)]
pub struct Readable<'a> {
    /// The bytes, in order: `first` then `second` (non-empty when they wrap around the end of the ring).
    pub first: &'a [u8],
    /// See `first`.
    pub second: &'a [u8],
    /// No more bytes will arrive (the remote ended, or the stream closed).
    pub ended: bool,
    /// The receive window: how many bytes the stream buffers unread at most. A reader must not wait for more
    /// bytes while it leaves this many unread: they would never come.
    pub window: usize,
}

/// Datagrams the socket refused (its buffer was full) when they were sent from a [`TxBatch`], copied out of
/// the streams' rings to go out without the lock: one contiguous buffer, cut into GSO sends.
struct TxQueue {
    buf: Vec<u8>,
    /// Each send, in order.
    sends: Vec<Outgoing>,
    /// Index of the next send to issue.
    next: usize,
}

impl TxQueue {
    fn is_empty(&self) -> bool {
        self.next >= self.sends.len()
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.sends.clear();
        self.next = 0;
    }
}

/// The per-socket driver task.
struct Driver {
    shared: Arc<Shared>,
    sock: Arc<SocketIo>,
    rx: RecvBuffers,
    /// Prepared under the lock and sent before it is released, payloads straight from the send rings.
    batch: TxBatch,
    /// What the socket refused of a batch: sent first in the next round.
    tx: TxQueue,
    sleep: Pin<Box<tokio::time::Sleep>>,
    deadline: Option<Instant>,
    wake: Vec<Waker>,
    gso_segments: usize,
    /// Streams retired under the lock, dropped after it is released.
    graveyard: Vec<(u32, RoutedStream)>,
}

impl Driver {
    fn new(shared: Arc<Shared>, sock: Arc<SocketIo>, gso: bool) -> Self {
        let rx = RecvBuffers::new(&sock.io);
        let gso_segments = if gso {
            sock.io
                .max_gso_segments()
                .clamp(1, MAX_GSO_BYTES / packet::MTU_MAX)
        } else {
            1
        };
        Self {
            shared,
            sock,
            rx,
            batch: TxBatch::default(),
            tx: TxQueue {
                buf: Vec::new(),
                sends: Vec::new(),
                next: 0,
            },
            sleep: Box::pin(tokio::time::sleep(Duration::from_secs(3600))),
            deadline: None,
            wake: Vec::new(),
            gso_segments,
            graveyard: Vec::new(),
        }
    }

    /// Sends the prepared batch, under the lock (its payloads are in the streams' send rings, which `inner`
    /// holds still): one `sendmsg` per GSO send, with iovecs pointing at the headers and into the rings. When
    /// the socket is full, copies what is left into the queue for [`Driver::poll_flush`].
    fn send_batch(&mut self, inner: &Inner) {
        let endpoint = &inner.endpoint;
        let batch = &self.batch;
        let mut iov: Vec<io::IoSlice<'_>> = Vec::new();
        for (i, send) in batch.sends.iter().enumerate() {
            iov.clear();
            let mut len = 0;
            for d in batch.datagrams.get(send.first..send.end).unwrap_or(&[]) {
                let head = batch.bytes.get(d.start..d.end).unwrap_or(&[]);
                let (a, b) = endpoint.batch_payload(d);
                for part in [head, a, b] {
                    if !part.is_empty() {
                        iov.push(io::IoSlice::new(part));
                        len += part.len();
                    }
                }
            }
            if len == 0 {
                continue;
            }
            match self
                .sock
                .io
                .try_send_iov(send.destination, &iov, len, send.segment_size)
            {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Copy the rest out of the rings: they may change once the lock is released.
                    for send in batch.sends.get(i..).unwrap_or(&[]) {
                        let start = self.tx.buf.len();
                        for d in batch.datagrams.get(send.first..send.end).unwrap_or(&[]) {
                            let (a, b) = endpoint.batch_payload(d);
                            self.tx
                                .buf
                                .extend_from_slice(batch.bytes.get(d.start..d.end).unwrap_or(&[]));
                            self.tx.buf.extend_from_slice(a);
                            self.tx.buf.extend_from_slice(b);
                        }
                        self.tx.sends.push(Outgoing {
                            destination: send.destination,
                            segment_size: send.segment_size,
                            start,
                            end: self.tx.buf.len(),
                        });
                    }
                    break;
                }
                Err(e) => {
                    // UDP is lossy: what did not go out is retransmitted like any lost packet.
                    if len > send.segment_size && is_gso_error(&e) && self.gso_segments > 1 {
                        tracing::info!(
                            "udx: sendmsg failed with {e}; sending without segmentation offload"
                        );
                        self.gso_segments = 1;
                    } else {
                        tracing::debug!("udx: send to {} failed: {e}", send.destination);
                    }
                }
            }
        }
        drop(iov);
        self.batch.clear();
    }

    /// Issues queued sends until done or the socket is full. Returns `Pending` if blocked on the socket.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(&send) = self.tx.sends.get(self.tx.next) {
            let contents = self.tx.buf.get(send.start..send.end).unwrap_or(&[]);
            match self
                .sock
                .io
                .try_send(send.destination, contents, send.segment_size)
            {
                Ok(()) => self.tx.next += 1,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.sock.io.poll_send_ready(cx))?;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        self.tx.clear();
        Poll::Ready(Ok(()))
    }

    /// Hands received datagrams to the endpoint.
    fn dispatch(&mut self, inner: &mut Inner, count: usize, now: Instant) {
        for i in 0..count {
            let (from, datagrams) = self.rx.datagrams(i);
            let from = normalize(from);
            for datagram in datagrams {
                inner
                    .endpoint
                    .handle(now, self.sock.id, self.sock.local_addr, from, datagram);
            }
        }
    }

    /// Runs due timers, collects packets to send and events of the streams this socket carries, and registers
    /// the driver's waker. Returns whether the driver may stop (no handle and no stream left).
    fn service(&mut self, inner: &mut Inner, cx: &mut Context<'_>, now: Instant) -> bool {
        let me = self.sock.id;
        self.deadline = inner.endpoint.service_batch(
            now,
            me,
            &mut self.batch,
            self.gso_segments,
            TX_BATCH_BYTES,
        );
        self.send_batch(inner);
        inner.process_events(&mut self.wake);
        // Retired slots are dropped after the lock is released: a firewall may own handles whose drop locks.
        inner.retire(&mut self.graveyard);
        let carries_streams = inner.endpoint.streams_on(me).next().is_some();
        let Some(state) = inner.sockets.get_mut(&me) else {
            return true;
        };
        match &state.driver_waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => state.driver_waker = Some(cx.waker().clone()),
        }
        let done = state.handles == 0 && !carries_streams;
        if done {
            inner.sockets.remove(&me);
            inner.endpoint.remove_socket(me);
        }
        done
    }

    /// Drains events only (used while blocked on a full socket).
    fn drain(&mut self, inner: &mut Inner) {
        inner.endpoint.drain_events(self.sock.id);
        inner.process_events(&mut self.wake);
    }

    fn fail(&mut self, e: io::Error) {
        let me = self.sock.id;
        let mut inner = self.shared.lock();
        if let Some(state) = inner.sockets.get_mut(&me) {
            state.fatal = Some((e.kind(), format!("udx socket failed: {e}")));
            self.wake.extend(state.raw_waker.take());
        }
        let Inner {
            endpoint, wakers, ..
        } = &mut *inner;
        for id in endpoint.streams_on(me) {
            if let Some(w) = wakers.get_mut(&id) {
                w.wake_all(&mut self.wake);
            }
        }
        drop(inner);
        for w in self.wake.drain(..) {
            w.wake();
        }
    }
}

/// Runs `f` on the endpoint of `shared` (failing if stream `id` is gone or its socket failed), surfaces what
/// it changed, then wakes the driver of the socket carrying stream `id` (outside the lock) so it sends what `f`
/// queued and re-arms its timers.
fn with_endpoint_of<R>(
    shared: &Arc<Shared>,
    id: u32,
    f: impl FnOnce(&mut Endpoint, Instant) -> io::Result<R>,
) -> io::Result<R> {
    let mut wake = Vec::new();
    let r = {
        let mut inner = shared.lock();
        if let Some(e) = inner.fatal_for(id) {
            return Err(e);
        }
        if inner.endpoint.stream(id).is_none() {
            return Err(no_stream(id));
        }
        let now = Instant::now();
        let r = f(&mut inner.endpoint, now);
        inner.endpoint.settle(id, now);
        inner.process_events(&mut wake);
        wake.extend(inner.take_driver_waker(id));
        r
    };
    for w in wake {
        w.wake();
    }
    r
}

/// `send_message` of stream `id`, for [`UdxStream`] and [`UdxStreamControl`].
fn send_message_of(shared: &Arc<Shared>, id: u32, data: &[u8]) -> io::Result<()> {
    with_endpoint_of(shared, id, |ep, _| {
        let slot = ep.stream_mut(id).ok_or_else(|| no_stream(id))?;
        if let Some(e) = closed_error(slot) {
            return Err(e);
        }
        slot.stream_mut()
            .send_message(data)
            .map_err(|e| stream_error(&e))
    })
}

/// The next message of stream `id`, or a wake-up when one arrives.
fn poll_recv_message_of(
    shared: &Arc<Shared>,
    id: u32,
    cx: &mut Context<'_>,
) -> Poll<io::Result<Vec<u8>>> {
    let mut inner = shared.lock();
    if let Some(e) = inner.fatal_for(id) {
        return Poll::Ready(Err(e));
    }
    let Inner {
        endpoint, wakers, ..
    } = &mut *inner;
    let Some(slot) = endpoint.stream_mut(id) else {
        return Poll::Ready(Err(no_stream(id)));
    };
    if let Some(msg) = slot.pop_message() {
        return Poll::Ready(Ok(msg));
    }
    if let Some(e) = closed_error(slot) {
        return Poll::Ready(Err(e));
    }
    wakers.entry(id).or_default().message = Some(cx.waker().clone());
    Poll::Pending
}

/// Ready once stream `id` has closed (with its error, if any) or no longer exists.
fn poll_closed_of(shared: &Arc<Shared>, id: u32, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    let mut inner = shared.lock();
    if let Some(e) = inner.fatal_for(id) {
        return Poll::Ready(Err(e));
    }
    let Some(slot) = inner.endpoint.stream(id) else {
        return Poll::Ready(Ok(()));
    };
    match slot.close_state() {
        Some(Some(e)) => Poll::Ready(Err(stream_error(e))),
        Some(None) => Poll::Ready(Ok(())),
        None => {
            inner.wakers.entry(id).or_default().close = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

/// Ready once the last remote change of stream `id` completed (at once if none is under way).
fn poll_remote_changed_of(
    shared: &Arc<Shared>,
    id: u32,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    let mut inner = shared.lock();
    if let Some(e) = inner.fatal_for(id) {
        return Poll::Ready(Err(e));
    }
    let Some(slot) = inner.endpoint.stream(id) else {
        return Poll::Ready(Err(no_stream(id)));
    };
    if !slot.is_remote_changing() {
        return Poll::Ready(Ok(()));
    }
    if let Some(e) = closed_error(slot) {
        return Poll::Ready(Err(e));
    }
    inner.wakers.entry(id).or_default().remote_changed = Some(cx.waker().clone());
    Poll::Pending
}

/// [`UdxStream::change_remote_via`] for stream `id` of `shared`.
fn change_remote_via_of(
    shared: &Arc<Shared>,
    id: u32,
    socket: &UdxSocket,
    remote_id: u32,
    addr: SocketAddr,
) -> io::Result<()> {
    if !Arc::ptr_eq(shared, &socket.shared) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the socket belongs to another Udx instance",
        ));
    }
    let old_driver = {
        let mut inner = shared.lock();
        let old = inner.endpoint.stream(id).and_then(|s| s.socket());
        old.and_then(|o| inner.sockets.get_mut(&o))
            .and_then(|s| s.driver_waker.take())
    };
    if let Some(w) = old_driver {
        w.wake();
    }
    let via = socket.sock.id;
    with_endpoint_of(shared, id, |ep, now| {
        ep.change_remote(id, Some(via), remote_id, addr, now)
            .map_err(endpoint_error)
    })
}

/// The MTU cap for a path, as libudx picks it: what the OS reports, at most `MTU_MAX` (also when unknown).
fn path_mtu(addr: SocketAddr) -> usize {
    link_mtu(addr)
        .unwrap_or(packet::MTU_MAX)
        .min(packet::MTU_MAX)
}

/// IPv4-mapped IPv6 sources are reported as IPv4, as libudx does.
fn normalize(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

impl Future for Driver {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        for _ in 0..DRIVER_BUDGET {
            // 1. Finish sending what was prepared; if the socket is full, still receive (acks free room).
            let blocked = match this.poll_flush(cx) {
                Poll::Ready(Ok(())) => false,
                Poll::Ready(Err(e)) => {
                    this.fail(e);
                    return Poll::Ready(());
                }
                Poll::Pending => true,
            };

            // 2. Receive one batch.
            let received = match this.rx.poll_recv(&this.sock.io, cx) {
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => {
                    this.fail(e);
                    return Poll::Ready(());
                }
                Poll::Pending => 0,
            };

            // 3. Under the lock: dispatch, timers, prepare packets, collect events.
            let now = Instant::now();
            let exit = {
                let shared = Arc::clone(&this.shared);
                let mut inner = shared.lock();
                if received > 0 {
                    this.dispatch(&mut inner, received, now);
                }
                if blocked {
                    this.drain(&mut inner);
                    false
                } else {
                    this.service(&mut inner, cx, now)
                }
            };
            for w in this.wake.drain(..) {
                w.wake();
            }
            this.graveyard.clear();
            if exit {
                return Poll::Ready(());
            }

            let has_tx = !this.tx.is_empty();
            if received > 0 || (has_tx && !blocked) {
                continue;
            }

            // 4. Idle: arm the timer for the earliest stream deadline. While blocked on a full socket, timers
            // wait: the socket's readiness wakes us and the next round handles them.
            if let Some(deadline) = this.deadline.filter(|_| !blocked) {
                let deadline = tokio::time::Instant::from_std(deadline);
                if this.sleep.deadline() != deadline {
                    this.sleep.as_mut().reset(deadline);
                }
                if this.sleep.as_mut().poll(cx).is_ready() {
                    continue;
                }
            }
            return Poll::Pending;
        }
        // Out of budget: let other tasks run, then continue.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{flags, Header};
    use std::net::{Ipv4Addr, SocketAddrV4};

    const LOOPBACK: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));
    const LIMIT: Duration = Duration::from_secs(10);

    fn udx_packet(remote_id: u32, type_flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        Header {
            type_flags,
            data_offset: 0,
            remote_id,
            recv_window: 1 << 20,
            seq: 0,
            ack: 0,
        }
        .encode(&mut out);
        out.extend_from_slice(payload);
        out
    }

    async fn recv_raw(socket: &UdxSocket) -> (Vec<u8>, SocketAddr) {
        let mut buf = [0u8; 2048];
        let (n, from) = tokio::time::timeout(LIMIT, socket.recv_from(&mut buf))
            .await
            .expect("raw datagram within the time limit")
            .expect("recv_from");
        (buf[..n].to_vec(), from)
    }

    #[tokio::test]
    async fn non_udx_and_unknown_stream_datagrams_reach_the_raw_queue() {
        let a = UdxSocket::bind(LOOPBACK).await.expect("bind a");
        let b = UdxSocket::bind(LOOPBACK).await.expect("bind b");
        let _known = b.create_stream(7).expect("stream 7");

        a.send_to(b"hello dht", b.local_addr()).await.expect("send");
        // Magic and version right but too short: not UDX.
        a.send_to(&[0xff, 0x01, 0, 0], b.local_addr())
            .await
            .expect("send");
        // A UDX packet for a stream id `b` does not have.
        let unknown = udx_packet(99, flags::MESSAGE, b"for nobody");
        a.send_to(&unknown, b.local_addr()).await.expect("send");

        assert_eq!(recv_raw(&b).await, (b"hello dht".to_vec(), a.local_addr()));
        assert_eq!(recv_raw(&b).await.0, vec![0xff, 0x01, 0, 0]);
        assert_eq!(recv_raw(&b).await.0, unknown);
    }

    #[tokio::test]
    async fn connect_alongside_uses_the_socket_and_peer_of_another_stream() {
        let a = UdxSocket::bind(LOOPBACK).await.expect("bind a");
        let b = UdxSocket::bind(LOOPBACK).await.expect("bind b");
        let (ua, ub) = (a.udx(), b.udx());
        // Streams created without a socket, connected through one (as hyperdht's connections).
        let sa = ua.create_stream(1).expect("stream 1");
        let sb = ub.create_stream(2).expect("stream 2");
        sa.connect_via(&a, 2, b.local_addr()).expect("connect a");
        sb.connect_via(&b, 1, a.local_addr()).expect("connect b");
        // Second streams beside them.
        let ta = ua.create_stream(11).expect("stream 11");
        let tb = ub.create_stream(12).expect("stream 12");
        ta.connect_alongside(&sa.control(), 12).expect("beside a");
        tb.connect_alongside(&sb.control(), 11).expect("beside b");
        assert_eq!(ta.remote(), Some((12, b.local_addr())));
        assert!(
            ta.connect_alongside(&sa.control(), 12).is_err(),
            "already connected"
        );
        ta.send_message(b"beside").expect("send");
        let got = tokio::time::timeout(LIMIT, tb.recv_message())
            .await
            .expect("in time")
            .expect("message");
        assert_eq!(got, b"beside".to_vec());
        // Beside an unconnected stream, or a stream of another instance: refused.
        let lone = ua.create_stream(21).expect("stream 21");
        let other = ua.create_stream(22).expect("stream 22");
        assert!(other.connect_alongside(&lone.control(), 5).is_err());
        assert!(other.connect_alongside(&sb.control(), 5).is_err());
    }

    #[tokio::test]
    async fn messages_flow_between_connected_streams() {
        let a = UdxSocket::bind(LOOPBACK).await.expect("bind a");
        let b = UdxSocket::bind(LOOPBACK).await.expect("bind b");
        let sa = a.create_stream(1).expect("stream 1");
        let sb = b.create_stream(2).expect("stream 2");
        assert!(a.create_stream(1).is_err(), "duplicate ids are refused");
        sa.connect(2, b.local_addr()).expect("connect a");
        sb.connect(1, a.local_addr()).expect("connect b");
        for i in 0..10u8 {
            sa.send_message(&[i; 100]).expect("send_message");
            let got = tokio::time::timeout(LIMIT, sb.recv_message())
                .await
                .expect("in time")
                .expect("message");
            assert_eq!(got, vec![i; 100]);
        }
        sb.send_message(b"back").expect("send back");
        let got = tokio::time::timeout(LIMIT, sa.recv_message())
            .await
            .expect("in time")
            .expect("message");
        assert_eq!(got, b"back".to_vec());
    }

    #[tokio::test]
    async fn driver_exits_when_everything_is_dropped() {
        let a = UdxSocket::bind(LOOPBACK).await.expect("bind a");
        let weak = Arc::downgrade(&a.shared);
        let s = a.create_stream(5).expect("stream");
        s.destroy();
        drop(s);
        drop(a);
        tokio::time::timeout(LIMIT, async {
            while weak.upgrade().is_some() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("driver released the socket");
    }
}

#[cfg(test)]
mod close_tests {
    use super::*;
    use std::net::{Ipv4Addr, SocketAddrV4};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const LOOPBACK: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));
    const LIMIT: Duration = Duration::from_secs(10);

    async fn pair() -> (UdxSocket, UdxStream, UdxSocket, UdxStream) {
        let a = UdxSocket::bind(LOOPBACK).await.expect("bind a");
        let b = UdxSocket::bind(LOOPBACK).await.expect("bind b");
        let sa = a.create_stream(1).expect("stream a");
        let sb = b.create_stream(2).expect("stream b");
        sa.connect(2, b.local_addr()).expect("connect a");
        sb.connect(1, a.local_addr()).expect("connect b");
        (a, sa, b, sb)
    }

    #[tokio::test]
    async fn destroy_resets_the_remote() {
        let (_a, mut sa, _b, mut sb) = pair().await;
        sa.write_all(b"before").await.expect("write");
        let mut buf = [0u8; 6];
        tokio::time::timeout(LIMIT, sb.read_exact(&mut buf))
            .await
            .expect("in time")
            .expect("read");
        assert_eq!(&buf, b"before");
        sa.destroy();
        let err = tokio::time::timeout(LIMIT, sb.read(&mut buf))
            .await
            .expect("in time")
            .expect_err("reset");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        let err = sb.closed().await.expect_err("closed with an error");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        assert!(
            sa.write(b"after").await.is_err(),
            "a destroyed stream refuses writes"
        );
    }

    #[tokio::test]
    async fn shutdown_is_a_read_of_zero_and_both_close_cleanly() {
        let (_a, mut sa, _b, mut sb) = pair().await;
        sa.write_all(b"hello").await.expect("write");
        sa.shutdown().await.expect("end a");
        assert!(sa.write(b"late").await.is_err(), "no writes after shutdown");
        let mut got = Vec::new();
        tokio::time::timeout(LIMIT, sb.read_to_end(&mut got))
            .await
            .expect("in time")
            .expect("read");
        assert_eq!(got, b"hello");
        sb.shutdown().await.expect("end b");
        let mut rest = Vec::new();
        tokio::time::timeout(LIMIT, sa.read_to_end(&mut rest))
            .await
            .expect("in time")
            .expect("read a");
        assert!(rest.is_empty());
        tokio::time::timeout(LIMIT, sa.closed())
            .await
            .expect("in time")
            .expect("a clean");
        tokio::time::timeout(LIMIT, sb.closed())
            .await
            .expect("in time")
            .expect("b clean");
    }

    #[tokio::test]
    async fn dropped_streams_are_removed_once_closed() {
        let a = UdxSocket::bind(LOOPBACK).await.expect("bind a");
        let b = UdxSocket::bind(LOOPBACK).await.expect("bind b");
        let config = StreamConfig {
            linger: Duration::ZERO,
            ..StreamConfig::default()
        };
        let sa = a.create_stream_with(1, config.clone()).expect("stream a");
        let sb = b.create_stream_with(2, config).expect("stream b");
        sa.connect(2, b.local_addr()).expect("connect a");
        sb.connect(1, a.local_addr()).expect("connect b");
        drop(sa); // finishes gracefully
        drop(sb);
        tokio::time::timeout(LIMIT, async {
            while a.stream_count() + b.stream_count() > 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("both streams closed and were removed");
    }
}

#[cfg(test)]
mod instance_tests {
    use super::*;
    use std::net::{Ipv4Addr, SocketAddrV4};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const LOOPBACK: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));
    const LIMIT: Duration = Duration::from_secs(20);

    /// HyperDHT's server side: a stream with no socket yet is connected by its firewall through the socket the
    /// first packet arrives on.
    #[tokio::test]
    async fn firewall_connects_a_socketless_stream_through_the_receiving_socket() {
        let udx = Udx::new();
        let s1 = udx.bind(LOOPBACK).await.expect("bind s1");
        let s2 = udx.bind(LOOPBACK).await.expect("bind s2");
        let server = udx.create_stream(5).expect("stream 5");
        assert_eq!(server.local_addr(), None);
        let s2_addr = s2.local_addr();
        server
            .set_firewall(move |_from, local| {
                if local == s2_addr {
                    FirewallVerdict::Connect { remote_id: 9 }
                } else {
                    FirewallVerdict::Reject
                }
            })
            .expect("firewall");

        let peer = UdxSocket::bind(LOOPBACK).await.expect("bind peer");
        let mut client = peer.create_stream(9).expect("stream 9");
        client.connect(5, s2.local_addr()).expect("connect");
        client.write_all(b"hello over s2").await.expect("write");
        client.shutdown().await.expect("end");

        let mut got = Vec::new();
        tokio::time::timeout(LIMIT, (&server).read_to_end(&mut got))
            .await
            .expect("in time")
            .expect("read");
        assert_eq!(got, b"hello over s2");
        assert_eq!(server.local_addr(), Some(s2.local_addr()));
        assert_eq!(server.remote(), Some((9, peer.local_addr())));
        (&server).write_all(b"reply").await.expect("reply");
        (&server).shutdown().await.expect("end server");
        let mut reply = Vec::new();
        tokio::time::timeout(LIMIT, client.read_to_end(&mut reply))
            .await
            .expect("in time")
            .expect("read reply");
        assert_eq!(reply, b"reply");
        drop(s1);
    }

    /// udx-native's `changeRemote(socket, ...)`: a stream moves to another socket of its instance mid-transfer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stream_moves_to_another_socket_mid_transfer() {
        let udx = Udx::new();
        let s1 = udx.bind(LOOPBACK).await.expect("bind s1");
        let s2 = udx.bind(LOOPBACK).await.expect("bind s2");
        let ours = udx.create_stream(1).expect("stream 1");
        // Like HyperDHT's firewall: accept the old path while the change completes.
        ours.set_firewall(|_, _| FirewallVerdict::Accept)
            .expect("firewall");
        let peer = UdxSocket::bind(LOOPBACK).await.expect("bind peer");
        let theirs = peer.create_stream(2).expect("stream 2");
        ours.connect_via(&s1, 2, peer.local_addr())
            .expect("connect via s1");
        theirs.connect(1, s1.local_addr()).expect("connect peer");
        assert_eq!(ours.local_addr(), Some(s1.local_addr()));

        let size = 8usize << 20;
        let data: Vec<u8> = (0..size).map(|i| (i * 7 + i / 4096) as u8).collect();
        let send = async {
            (&ours).write_all(&data).await.expect("write");
            (&ours).shutdown().await.expect("end");
        };
        let switch = async {
            while theirs.stats().expect("stats").bytes_received < 1 << 20 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            ours.change_remote_via(&s2, 2, peer.local_addr())
                .expect("move to s2");
            theirs
                .change_remote(1, s2.local_addr())
                .expect("peer follows");
            ours.remote_changed().await.expect("our change completes");
            theirs
                .remote_changed()
                .await
                .expect("their change completes");
        };
        let receive = async {
            let mut got = Vec::with_capacity(size);
            (&theirs).read_to_end(&mut got).await.expect("read");
            got
        };
        let (_, _, got) =
            tokio::time::timeout(LIMIT, async { tokio::join!(send, switch, receive) })
                .await
                .expect("transfer in time");
        assert!(
            got == data,
            "bytes differ after the move ({} of {} received)",
            got.len(),
            size
        );
        assert_eq!(ours.local_addr(), Some(s2.local_addr()));
        assert_eq!(s1.stream_count(), 0);
        assert_eq!(s2.stream_count(), 1);
    }

    /// A blind relay (udx-native `relayTo`, what blind-relay does): two peers talk end to end through a pair of
    /// relay streams that rewrite stream ids; closing one side tears the relay down.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn relay_streams_forward_end_to_end() {
        let relay_socket = UdxSocket::bind(LOOPBACK).await.expect("bind relay");
        let a_socket = UdxSocket::bind(LOOPBACK).await.expect("bind a");
        let b_socket = UdxSocket::bind(LOOPBACK).await.expect("bind b");
        let r1 = relay_socket.create_stream(101).expect("r1");
        let r2 = relay_socket.create_stream(102).expect("r2");
        let a = a_socket.create_stream(1).expect("a");
        let b = b_socket.create_stream(2).expect("b");
        r1.connect(1, a_socket.local_addr()).expect("r1 -> a");
        r2.connect(2, b_socket.local_addr()).expect("r2 -> b");
        r1.relay_to(&r2).expect("relay r1 -> r2");
        r2.relay_to(&r1).expect("relay r2 -> r1");
        assert!(r1.relay_to(&r2).is_err(), "a stream relays once");
        a.connect(101, relay_socket.local_addr()).expect("a -> r1");
        b.connect(102, relay_socket.local_addr()).expect("b -> r2");

        let size = 4usize << 20;
        let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let work = async {
            let send_a = async {
                (&a).write_all(&data).await.expect("a write");
                (&a).shutdown().await.expect("a end");
            };
            let send_b = async {
                (&b).write_all(&data[..size / 2]).await.expect("b write");
                (&b).shutdown().await.expect("b end");
            };
            let recv_b = async {
                let mut got = Vec::new();
                (&b).read_to_end(&mut got).await.expect("b read");
                got
            };
            let recv_a = async {
                let mut got = Vec::new();
                (&a).read_to_end(&mut got).await.expect("a read");
                got
            };
            tokio::join!(send_a, send_b, recv_b, recv_a)
        };
        let (_, _, at_b, at_a) = tokio::time::timeout(LIMIT, work)
            .await
            .expect("relayed transfer in time");
        assert!(
            at_b == data,
            "a -> b through the relay: {} of {} bytes, or different",
            at_b.len(),
            size
        );
        assert!(at_a == data[..size / 2], "b -> a through the relay");
        tokio::time::timeout(LIMIT, a.closed())
            .await
            .expect("in time")
            .expect("a closed cleanly");
        tokio::time::timeout(LIMIT, b.closed())
            .await
            .expect("in time")
            .expect("b closed cleanly");

        // A DESTROY passes through and takes both relay streams down.
        let c = a_socket.create_stream(3).expect("c");
        let d = b_socket.create_stream(4).expect("d");
        let r3 = relay_socket.create_stream(103).expect("r3");
        let r4 = relay_socket.create_stream(104).expect("r4");
        r3.connect(3, a_socket.local_addr()).expect("r3 -> c");
        r4.connect(4, b_socket.local_addr()).expect("r4 -> d");
        r3.relay_to(&r4).expect("relay");
        r4.relay_to(&r3).expect("relay");
        c.connect(103, relay_socket.local_addr()).expect("c -> r3");
        d.connect(104, relay_socket.local_addr()).expect("d -> r4");
        (&c).write_all(b"ping").await.expect("c write");
        let mut buf = [0u8; 4];
        tokio::time::timeout(LIMIT, (&d).read_exact(&mut buf))
            .await
            .expect("in time")
            .expect("d read");
        assert_eq!(&buf, b"ping");
        c.destroy();
        let err = tokio::time::timeout(LIMIT, d.closed())
            .await
            .expect("in time")
            .expect_err("d reset");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        tokio::time::timeout(LIMIT, r3.closed())
            .await
            .expect("in time")
            .expect_err("r3 reset by the DESTROY");
        // Destroyed locally (no error of its own), as libudx destroys streams relaying to a closed stream.
        let _ = tokio::time::timeout(LIMIT, r4.closed())
            .await
            .expect("r4 torn down with r3");
    }

    /// A dual-stack IPv6 socket talks to an IPv4 peer (sending to IPv4-mapped addresses, as libudx does) and
    /// reports IPv4 sources as IPv4.
    #[tokio::test]
    async fn dual_stack_socket_talks_to_ipv4() {
        // IPv6 is required, as by the ::1 tests of tests/it/udx_ipv6.rs: a host without it fails here.
        let v6 = UdxSocket::bind("[::]:0".parse().expect("addr"))
            .await
            .expect("bind [::]:0 (this test needs IPv6)");
        let v4 = UdxSocket::bind(LOOPBACK).await.expect("bind v4");
        let port = v6.local_addr().port();
        let x = v6.create_stream(1).expect("x");
        let y = v4.create_stream(2).expect("y");
        x.connect(2, v4.local_addr()).expect("x -> v4");
        y.connect(1, SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port))
            .expect("y -> v6 socket via 127.0.0.1");
        (&x).write_all(b"over dual stack").await.expect("write");
        (&x).shutdown().await.expect("end");
        let mut got = Vec::new();
        tokio::time::timeout(LIMIT, (&y).read_to_end(&mut got))
            .await
            .expect("in time")
            .expect("read");
        assert_eq!(got, b"over dual stack");
        v4.send_to(b"raw", SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port))
            .await
            .expect("raw send");
        let mut buf = [0u8; 16];
        let (n, from) = tokio::time::timeout(LIMIT, v6.recv_from(&mut buf))
            .await
            .expect("in time")
            .expect("raw");
        assert_eq!(&buf[..n], b"raw");
        assert_eq!(
            from,
            v4.local_addr(),
            "IPv4-mapped sources are reported as IPv4"
        );
    }

    /// Many streams multiplexed on one socket pair, all transferring both ways at once: every byte arrives on the
    /// right stream (no lost wakeups, no cross-talk).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_streams_share_a_socket_pair() {
        let a = UdxSocket::bind(LOOPBACK).await.expect("bind a");
        let b = UdxSocket::bind(LOOPBACK).await.expect("bind b");
        let mut tasks = Vec::new();
        for i in 0..32u32 {
            let x = a.create_stream(1000 + i).expect("x");
            let y = b.create_stream(2000 + i).expect("y");
            x.connect(2000 + i, b.local_addr()).expect("connect x");
            y.connect(1000 + i, a.local_addr()).expect("connect y");
            let len = 64 * 1024 + i as usize * 4099;
            let payload =
                |tag: u8| -> Vec<u8> { (0..len).map(|j| (j as u8).wrapping_mul(tag)).collect() };
            let (px, py) = (payload(i as u8 * 2 + 1), payload(i as u8 * 2 + 2));
            tasks.push(tokio::spawn(async move {
                let (rx, ry) = tokio::join!(
                    async {
                        (&x).write_all(&px).await.expect("x write");
                        (&x).shutdown().await.expect("x end");
                        let mut got = Vec::new();
                        (&x).read_to_end(&mut got).await.expect("x read");
                        got
                    },
                    async {
                        (&y).write_all(&py).await.expect("y write");
                        (&y).shutdown().await.expect("y end");
                        let mut got = Vec::new();
                        (&y).read_to_end(&mut got).await.expect("y read");
                        got
                    }
                );
                assert!(rx == py, "stream {i}: x got the wrong bytes");
                assert!(ry == px, "stream {i}: y got the wrong bytes");
            }));
        }
        for t in tasks {
            tokio::time::timeout(LIMIT, t)
                .await
                .expect("in time")
                .expect("stream task");
        }
    }

    /// An idle stream with a keepalive sends heartbeats on its own timer, which the peer answers.
    #[tokio::test]
    async fn keepalive_heartbeats_flow_while_idle() {
        let a = UdxSocket::bind(LOOPBACK).await.expect("bind a");
        let b = UdxSocket::bind(LOOPBACK).await.expect("bind b");
        let x = a.create_stream(1).expect("x");
        let y = b.create_stream(2).expect("y");
        x.connect(2, b.local_addr()).expect("connect x");
        y.connect(1, a.local_addr()).expect("connect y");
        x.set_keepalive(Some(Duration::from_millis(20)))
            .expect("keepalive");
        let before = y.stats().expect("stats").packets_received;
        tokio::time::timeout(LIMIT, async {
            while y.stats().expect("stats").packets_received < before + 3 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("heartbeats arrive while idle");
        assert!(
            x.stats().expect("stats").packets_received > 0,
            "heartbeats are answered"
        );
    }

    /// A firewall may own handles (here a socket clone); retiring its stream must not deadlock on their drop.
    #[tokio::test]
    async fn retiring_a_stream_whose_firewall_owns_a_handle_does_not_deadlock() {
        let a = UdxSocket::bind(LOOPBACK).await.expect("bind a");
        let b = UdxSocket::bind(LOOPBACK).await.expect("bind b");
        let config = StreamConfig {
            linger: Duration::ZERO,
            ..StreamConfig::default()
        };
        let x = a.create_stream_with(1, config.clone()).expect("x");
        let y = b.create_stream_with(2, config).expect("y");
        let owned = a.clone();
        x.set_firewall(move |_, _| {
            let _keep = &owned;
            FirewallVerdict::Reject
        })
        .expect("firewall");
        let owned_too = a.clone();
        x.set_firewall(move |_, _| {
            let _keep = &owned_too;
            FirewallVerdict::Reject
        })
        .expect("replacing a firewall drops the old one outside the lock");
        x.connect(2, b.local_addr()).expect("connect x");
        y.connect(1, a.local_addr()).expect("connect y");
        drop(x);
        drop(y);
        tokio::time::timeout(LIMIT, async {
            while a.stream_count() + b.stream_count() > 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("streams retired without deadlock");
        // The driver is still alive.
        let z = a.create_stream(3).expect("z");
        let w = b.create_stream(4).expect("w");
        z.connect(4, b.local_addr()).expect("connect z");
        w.connect(3, a.local_addr()).expect("connect w");
        z.send_message(b"alive").expect("message");
        let got = tokio::time::timeout(LIMIT, w.recv_message())
            .await
            .expect("in time")
            .expect("message");
        assert_eq!(got, b"alive");
    }
}

/// A handle on a stream that does not own it: it can abort the stream and wait for its close while someone
/// else reads and writes it (a swarm handing connections to the application keeps one per connection). It does
/// not keep the stream or the instance alive; once the stream is gone, [`UdxStreamControl::destroy`] does
/// nothing and [`UdxStreamControl::closed`] returns at once.
#[derive(Clone)]
pub struct UdxStreamControl {
    shared: std::sync::Weak<Shared>,
    id: u32,
}

impl fmt::Debug for UdxStreamControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdxStreamControl")
            .field("id", &self.id)
            .finish()
    }
}

impl UdxStream {
    /// A [`UdxStreamControl`] for this stream.
    pub fn control(&self) -> UdxStreamControl {
        UdxStreamControl {
            shared: Arc::downgrade(&self.shared),
            id: self.id,
        }
    }
}

impl UdxStreamControl {
    /// Aborts the stream as [`UdxStream::destroy`] does, if it still exists.
    pub fn destroy(&self) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let id = self.id;
        let _ = with_endpoint_of(&shared, id, |ep, _| ep.destroy(id).map_err(endpoint_error));
    }

    /// [`UdxStream::change_remote_via`] on the controlled stream: moves it to another path while someone
    /// else reads and writes it (HyperDHT moving a relayed connection to a punched path).
    pub fn change_remote_via(
        &self,
        socket: &UdxSocket,
        remote_id: u32,
        addr: SocketAddr,
    ) -> io::Result<()> {
        let shared = self.shared.upgrade().ok_or_else(|| no_stream(self.id))?;
        change_remote_via_of(&shared, self.id, socket, remote_id, addr)
    }

    /// [`UdxStream::remote_changed`] on the controlled stream: waits until everything sent to the old
    /// remote before the last change was acknowledged.
    pub async fn remote_changed(&self) -> io::Result<()> {
        std::future::poll_fn(|cx| match self.shared.upgrade() {
            Some(shared) => poll_remote_changed_of(&shared, self.id, cx),
            None => Poll::Ready(Err(no_stream(self.id))),
        })
        .await
    }

    /// [`UdxStream::send_message`] on the controlled stream.
    pub fn send_message(&self, data: &[u8]) -> io::Result<()> {
        let shared = self.shared.upgrade().ok_or_else(|| no_stream(self.id))?;
        send_message_of(&shared, self.id, data)
    }

    /// [`UdxStream::recv_message`] on the controlled stream (for whoever owns the stream's messages: a
    /// secret stream does not read them).
    pub async fn recv_message(&self) -> io::Result<Vec<u8>> {
        std::future::poll_fn(|cx| match self.shared.upgrade() {
            Some(shared) => poll_recv_message_of(&shared, self.id, cx),
            None => Poll::Ready(Err(no_stream(self.id))),
        })
        .await
    }

    /// [`UdxStream::stats`] of the controlled stream.
    pub fn stats(&self) -> io::Result<StreamStats> {
        let shared = self.shared.upgrade().ok_or_else(|| no_stream(self.id))?;
        let id = self.id;
        with_endpoint_of(&shared, id, |ep, _| {
            Ok(ep.stream(id).ok_or_else(|| no_stream(id))?.stream().stats())
        })
    }

    /// The remote stream id and address of the controlled stream, once connected.
    pub fn remote(&self) -> Option<(u32, SocketAddr)> {
        let shared = self.shared.upgrade()?;
        let id = self.id;
        with_endpoint_of(&shared, id, |ep, _| {
            Ok(ep
                .stream(id)
                .ok_or_else(|| no_stream(id))?
                .stream()
                .remote())
        })
        .ok()
        .flatten()
    }

    /// Waits until the stream has closed (as [`UdxStream::closed`]) or no longer exists.
    pub async fn closed(&self) -> io::Result<()> {
        std::future::poll_fn(|cx| match self.shared.upgrade() {
            Some(shared) => poll_closed_of(&shared, self.id, cx),
            None => Poll::Ready(Ok(())),
        })
        .await
    }
}

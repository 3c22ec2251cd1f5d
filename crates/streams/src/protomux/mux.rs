//! The async protomux API: a driver task owns the transport and a [`MuxCore`]; [`Mux`], [`Channel`] and
//! [`Pairing`] handles talk to it through shared state.

use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use super::core::{ChannelKey, ChannelOptions, Event, MuxCore, PairRequest};
use super::ProtomuxError;
#[cfg(doc)]
use crate::compact_encoding::Decode;
use crate::compact_encoding::Encode;
use crate::secret_stream::SecretStream;

/// Bytes written but not yet flushed (plus frames not yet handed to the transport) above which
/// [`Channel::send`] waits.
const WRITE_HIGH_WATER: usize = 256 * 1024;
/// Bytes queued in channels' receive queues above which the driver stops reading the transport until
/// the channels are read. (The JS hands messages to callbacks at once; the queues stand in for them.)
const RECV_HIGH_WATER: usize = 4 * 1024 * 1024;
/// Frames handled per driver poll before it yields.
const FRAME_BUDGET: usize = 64;

/// A message transport protomux runs over: it keeps message boundaries (one frame = one message).
pub trait FrameTransport: Send + 'static {
    /// The next received frame; `None` when the remote ended the stream.
    fn poll_recv_frame(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Vec<u8>>>>;
    /// Queues one frame for sending without waiting ([`FrameTransport::poll_flush`] pushes it out).
    fn send_frame(&mut self, frame: &[u8]) -> io::Result<()>;
    /// Writes out every queued frame.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Flushes and ends our direction of the stream.
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

impl<IO: AsyncRead + AsyncWrite + Unpin + Send + 'static> FrameTransport for SecretStream<IO> {
    fn poll_recv_frame(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Vec<u8>>>> {
        self.poll_recv_message(cx).map_err(io::Error::from)
    }

    fn send_frame(&mut self, frame: &[u8]) -> io::Result<()> {
        self.queue_message(frame).map_err(io::Error::from)
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        AsyncWrite::poll_flush(std::pin::Pin::new(self), cx)
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        AsyncWrite::poll_shutdown(std::pin::Pin::new(self), cx)
    }
}

/// One end of an in-memory frame transport (see [`memory_pair`]).
#[derive(Debug)]
pub struct MemoryTransport {
    tx: Option<mpsc::UnboundedSender<Vec<u8>>>,
    rx: mpsc::UnboundedReceiver<Vec<u8>>,
}

/// Two connected in-memory transports, for tests and for muxes in one process.
pub fn memory_pair() -> (MemoryTransport, MemoryTransport) {
    let (atx, brx) = mpsc::unbounded_channel();
    let (btx, arx) = mpsc::unbounded_channel();
    (
        MemoryTransport {
            tx: Some(atx),
            rx: arx,
        },
        MemoryTransport {
            tx: Some(btx),
            rx: brx,
        },
    )
}

impl FrameTransport for MemoryTransport {
    fn poll_recv_frame(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Vec<u8>>>> {
        self.rx.poll_recv(cx).map(Ok)
    }

    fn send_frame(&mut self, frame: &[u8]) -> io::Result<()> {
        self.tx
            .as_ref()
            .and_then(|tx| tx.send(frame.to_vec()).ok())
            .ok_or_else(|| io::ErrorKind::BrokenPipe.into())
    }

    fn poll_flush(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tx = None;
        Poll::Ready(Ok(()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CloseReason {
    Local,
    Remote,
    Rejected,
}

#[derive(Debug, Default)]
struct ChanSlot {
    handshake: Option<Vec<u8>>,
    closed: Option<CloseReason>,
    queue: VecDeque<(u64, Vec<u8>)>,
    wakers: Vec<Waker>,
}

#[derive(Debug, Default)]
struct PairSlot {
    queue: VecDeque<PairRequest>,
    wakers: Vec<Waker>,
}

#[derive(Debug, Default)]
struct Inner {
    core: MuxCore,
    chans: HashMap<ChannelKey, ChanSlot>,
    pairs: HashMap<String, PairSlot>,
    driver: Option<Waker>,
    /// Bytes handed to the transport since its last completed flush.
    unflushed: usize,
    write_waiters: Vec<Waker>,
    /// Bytes in channel receive queues.
    queued: usize,
    /// Wakers of [`Mux::closed`].
    close_waiters: Vec<Waker>,
    destroy: bool,
    /// The driver stopped reading (buffers full) and waits to be woken.
    read_paused: bool,
    finished: Option<Option<String>>,
    handles: usize,
}

fn wake_all(wakers: &mut Vec<Waker>) {
    for w in wakers.drain(..) {
        w.wake();
    }
}

fn register(wakers: &mut Vec<Waker>, cx: &Context<'_>) {
    if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
        wakers.push(cx.waker().clone());
    }
}

impl Inner {
    /// Routes the core's events to the handles and wakes the driver if there is output.
    fn dispatch(&mut self) {
        while let Some(ev) = self.core.poll_event() {
            match ev {
                Event::Opened { channel, handshake } => {
                    if let Some(s) = self.chans.get_mut(&channel) {
                        s.handshake = Some(handshake);
                        wake_all(&mut s.wakers);
                    }
                }
                Event::Message {
                    channel,
                    kind,
                    payload,
                } => {
                    if let Some(s) = self.chans.get_mut(&channel) {
                        self.queued += payload.len();
                        s.queue.push_back((kind, payload));
                        wake_all(&mut s.wakers);
                    }
                }
                Event::Closed { channel, remote } => {
                    if let Some(s) = self.chans.get_mut(&channel) {
                        s.closed = Some(if remote {
                            CloseReason::Remote
                        } else {
                            CloseReason::Local
                        });
                        wake_all(&mut s.wakers);
                    }
                }
                Event::Rejected { channel } => {
                    if let Some(s) = self.chans.get_mut(&channel) {
                        s.closed = Some(CloseReason::Rejected);
                        wake_all(&mut s.wakers);
                    }
                }
                Event::PairRequest(req) => match self.pairs.get_mut(&req.pair_key) {
                    Some(p) => {
                        p.queue.push_back(req);
                        wake_all(&mut p.wakers);
                    }
                    None => self.core.pair_done(&req.token),
                },
            }
        }
        if self.core.outbox_bytes() > 0
            || (self.read_paused && !self.core.should_pause() && self.queued <= RECV_HIGH_WATER)
        {
            if let Some(w) = &self.driver {
                w.wake_by_ref();
            }
        }
    }

    fn error(&self) -> ProtomuxError {
        match &self.finished {
            Some(Some(e)) => ProtomuxError::Destroyed(e.clone()),
            _ => ProtomuxError::Destroyed("stream closed".into()),
        }
    }

    /// Ends the mux: every channel closes, every waiter wakes.
    fn finish(&mut self, error: Option<String>) {
        if self.finished.is_some() {
            return;
        }
        self.core.shutdown();
        self.dispatch();
        self.finished = Some(error);
        for s in self.chans.values_mut() {
            wake_all(&mut s.wakers);
        }
        for p in self.pairs.values_mut() {
            wake_all(&mut p.wakers);
        }
        wake_all(&mut self.write_waiters);
        wake_all(&mut self.close_waiters);
    }
}

#[derive(Debug)]
struct Shared {
    inner: Mutex<Inner>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A counted reference to the mux: the driver ends the stream once none is left.
#[derive(Debug)]
struct Handle(Arc<Shared>);

impl Handle {
    fn new(shared: &Arc<Shared>) -> Self {
        shared.lock().handles += 1;
        Self(Arc::clone(shared))
    }
}

impl Clone for Handle {
    fn clone(&self) -> Self {
        Self::new(&self.0)
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let mut g = self.0.lock();
        g.handles -= 1;
        if g.handles == 0 {
            if let Some(w) = &g.driver {
                w.wake_by_ref();
            }
        }
    }
}

/// A protomux over one stream. Cloning gives another handle to the same mux.
///
/// The stream is driven by a task spawned on the current tokio runtime; it runs until the remote ends
/// the stream, an error, [`Mux::destroy`], or until every handle ([`Mux`], [`Channel`], [`Pairing`],
/// [`Incoming`]) is dropped, and then ends our side of the stream.
#[derive(Debug, Clone)]
pub struct Mux {
    handle: Handle,
}

impl Mux {
    /// Starts protomux on `transport` (must be called inside a tokio runtime).
    ///
    /// The stream is read from the moment the driver task runs: a remote open that arrives before a
    /// matching [`Mux::pair`] or [`Mux::create_channel`] is rejected, as in JS. Use [`Mux::new_with`] to
    /// register pairings and channels before anything is read.
    pub fn new<T: FrameTransport>(transport: T) -> Self {
        Self::new_with(transport, |_| ()).0
    }

    /// [`Mux::new`], running `setup` (create pairings and channels) before the driver starts.
    pub fn new_with<T: FrameTransport, R>(
        transport: T,
        setup: impl FnOnce(&Mux) -> R,
    ) -> (Self, R) {
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner::default()),
        });
        let mux = Self {
            handle: Handle::new(&shared),
        };
        let r = setup(&mux);
        tokio::spawn(drive(transport, shared));
        (mux, r)
    }

    fn shared(&self) -> &Shared {
        &self.handle.0
    }

    /// Creates a channel (`createChannel`); `None` if the mux is closed, or if `unique` is set and a
    /// channel of this protocol and id is open. Call [`Channel::open`] to open it. The channel takes
    /// effect in the shared state before this returns: a remote open of its protocol and id that the
    /// driver handles from then on pairs with it, even before [`Channel::open`].
    pub fn create_channel(&self, opts: ChannelOptions) -> Option<Channel> {
        create_channel(&self.handle, &opts)
    }

    /// Receives the remote's opens of `protocol` (with `id`, or any id for `None`) that no local
    /// channel waited for (`pair`). Each [`Incoming`] must be accepted or dropped; dropping rejects.
    /// Keep one [`Pairing`] per protocol and id: dropping it unregisters the pair.
    pub fn pair(&self, protocol: &str, id: Option<&[u8]>) -> Pairing {
        let mut g = self.shared().lock();
        let key = g.core.pair(protocol, id);
        g.pairs.entry(key.clone()).or_default();
        drop(g);
        Pairing {
            handle: self.handle.clone(),
            key,
            protocol: protocol.to_owned(),
            id: id.map(<[u8]>::to_vec),
        }
    }

    /// Whether a channel of `protocol`/`id` is open locally.
    pub fn opened(&self, protocol: &str, id: Option<&[u8]>) -> bool {
        self.shared().lock().core.opened(protocol, id)
    }

    /// Whether no channel uses a local id.
    pub fn is_idle(&self) -> bool {
        self.shared().lock().core.is_idle()
    }

    /// Starts batching everything sent into one frame, until the matching [`Mux::uncork`].
    pub fn cork(&self) {
        self.shared().lock().core.cork();
    }

    /// Ends a [`Mux::cork`]; the outermost sends the batch.
    pub fn uncork(&self) {
        let mut g = self.shared().lock();
        g.core.uncork();
        g.dispatch();
    }

    /// Closes every channel and ends the stream (after sending what is queued).
    pub fn destroy(&self) {
        let mut g = self.shared().lock();
        g.destroy = true;
        if let Some(w) = &g.driver {
            w.wake_by_ref();
        }
    }

    /// Waits until the mux has ended; the error that ended it, if any.
    pub async fn closed(&self) -> Option<String> {
        poll_fn(|cx| {
            let mut g = self.shared().lock();
            match &g.finished {
                Some(e) => Poll::Ready(e.clone()),
                None => {
                    register(&mut g.close_waiters, cx);
                    Poll::Pending
                }
            }
        })
        .await
    }
}

fn create_channel(handle: &Handle, opts: &ChannelOptions) -> Option<Channel> {
    let mut g = handle.0.lock();
    if g.finished.is_some() {
        return None;
    }
    let key = g.core.create_channel(opts)?;
    g.chans.insert(key, ChanSlot::default());
    g.dispatch();
    drop(g);
    Some(Channel {
        handle: handle.clone(),
        key,
        protocol: opts.protocol.clone(),
        id: opts.id.clone(),
        messages: Mutex::new(opts.messages),
    })
}

/// One channel. Dropping it closes it.
#[derive(Debug)]
pub struct Channel {
    handle: Handle,
    key: ChannelKey,
    protocol: String,
    id: Option<Vec<u8>>,
    messages: Mutex<Option<u64>>,
}

impl Channel {
    fn shared(&self) -> &Shared {
        &self.handle.0
    }

    /// The protocol name.
    pub fn protocol(&self) -> &str {
        &self.protocol
    }

    /// The channel id.
    pub fn id(&self) -> Option<&[u8]> {
        self.id.as_deref()
    }

    /// Our wire id (0 before [`Channel::open`] or after close).
    pub fn local_id(&self) -> u64 {
        let g = self.shared().lock();
        g.core.channel(self.key).map_or(0, |c| c.local_id)
    }

    /// The remote's wire id (0 until paired).
    pub fn remote_id(&self) -> u64 {
        let g = self.shared().lock();
        g.core.channel(self.key).map_or(0, |c| c.remote_id)
    }

    /// Registers one more message type (`addMessage`) and returns its number. The first call switches
    /// the channel from accepting every type to accepting only registered ones.
    pub fn add_message(&self) -> u64 {
        let mut m = self.messages.lock().unwrap_or_else(PoisonError::into_inner);
        let kind = m.unwrap_or(0);
        *m = Some(kind + 1);
        self.shared().lock().core.set_messages(self.key, *m);
        kind
    }

    /// Sends our open with `handshake` (encoded by the caller; empty for none).
    pub fn open(&self, handshake: &[u8]) -> Result<(), ProtomuxError> {
        let mut g = self.shared().lock();
        if g.finished.is_some() {
            return Err(g.error());
        }
        let r = g.core.open(self.key, handshake);
        g.dispatch();
        r
    }

    /// Waits until the remote opened too (`fullyOpened`) and returns its handshake; fails if the
    /// channel was rejected or closed first.
    pub async fn opened(&self) -> Result<Vec<u8>, ProtomuxError> {
        poll_fn(|cx| {
            let mut g = self.shared().lock();
            let Some(s) = g.chans.get_mut(&self.key) else {
                return Poll::Ready(Err(ProtomuxError::UnknownChannel));
            };
            if let Some(h) = &s.handshake {
                return Poll::Ready(Ok(h.clone()));
            }
            match s.closed {
                Some(CloseReason::Rejected) => Poll::Ready(Err(ProtomuxError::Rejected)),
                Some(_) => Poll::Ready(Err(ProtomuxError::ChannelClosed)),
                None => {
                    register(&mut s.wakers, cx);
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Whether the channel is fully open and not closed.
    pub fn is_open(&self) -> bool {
        let g = self.shared().lock();
        g.chans
            .get(&self.key)
            .is_some_and(|s| s.handshake.is_some() && s.closed.is_none())
    }

    /// Whether the channel is closed.
    pub fn is_closed(&self) -> bool {
        let g = self.shared().lock();
        g.chans.get(&self.key).is_none_or(|s| s.closed.is_some())
    }

    /// Queues a message of type `kind` without waiting. Returns whether the mux is below its write
    /// high-water mark (the JS `drained`).
    pub fn try_send(&self, kind: u64, payload: &[u8]) -> Result<bool, ProtomuxError> {
        let mut g = self.shared().lock();
        if g.finished.is_some() {
            return Err(g.error());
        }
        g.core.send(self.key, kind, payload)?;
        g.dispatch();
        Ok(g.unflushed + g.core.outbox_bytes() <= WRITE_HIGH_WATER)
    }

    /// Sends a message of type `kind`, waiting while the stream is backed up.
    pub async fn send(&self, kind: u64, payload: &[u8]) -> Result<(), ProtomuxError> {
        if self.try_send(kind, payload)? {
            return Ok(());
        }
        poll_fn(|cx| {
            let mut g = self.shared().lock();
            if g.finished.is_some() || g.unflushed + g.core.outbox_bytes() <= WRITE_HIGH_WATER {
                Poll::Ready(())
            } else {
                register(&mut g.write_waiters, cx);
                Poll::Pending
            }
        })
        .await;
        Ok(())
    }

    /// Sends `value` in its compact encoding as a message of type `kind` (the JS `messages[kind].send`
    /// with that encoding); decode received ones with [`Decode::from_bytes`].
    pub async fn send_encoded<T: Encode>(&self, kind: u64, value: &T) -> Result<(), ProtomuxError> {
        self.send(kind, &value.to_bytes()).await
    }

    /// The next message `(type, payload)`; `None` once the channel is closed and every message that
    /// came before the close was read.
    pub async fn recv(&self) -> Option<(u64, Vec<u8>)> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Poll form of [`Channel::recv`].
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<(u64, Vec<u8>)>> {
        let mut g = self.shared().lock();
        let g = &mut *g;
        let Some(s) = g.chans.get_mut(&self.key) else {
            return Poll::Ready(None);
        };
        if let Some(m) = s.queue.pop_front() {
            g.queued -= m.1.len();
            if g.read_paused && g.queued <= RECV_HIGH_WATER {
                if let Some(w) = &g.driver {
                    w.wake_by_ref();
                }
            }
            return Poll::Ready(Some(m));
        }
        if s.closed.is_some() {
            return Poll::Ready(None);
        }
        register(&mut s.wakers, cx);
        Poll::Pending
    }

    /// Waits until the channel is closed; true if the remote (or the end of the stream) closed it.
    pub async fn closed(&self) -> bool {
        poll_fn(|cx| {
            let mut g = self.shared().lock();
            let Some(s) = g.chans.get_mut(&self.key) else {
                return Poll::Ready(false);
            };
            match s.closed {
                Some(r) => Poll::Ready(r != CloseReason::Local),
                None => {
                    register(&mut s.wakers, cx);
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Closes the channel (sends `close`). Messages already received can still be read.
    pub fn close(&self) {
        let mut g = self.shared().lock();
        let _ = g.core.close(self.key);
        g.dispatch();
    }

    /// [`Mux::cork`].
    pub fn cork(&self) {
        self.shared().lock().core.cork();
    }

    /// [`Mux::uncork`].
    pub fn uncork(&self) {
        let mut g = self.shared().lock();
        g.core.uncork();
        g.dispatch();
    }

    /// The mux this channel belongs to.
    pub fn mux(&self) -> Mux {
        Mux {
            handle: self.handle.clone(),
        }
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        let mut g = self.shared().lock();
        let _ = g.core.close(self.key);
        g.core.release(self.key);
        if let Some(s) = g.chans.remove(&self.key) {
            g.queued -= s.queue.iter().map(|(_, p)| p.len()).sum::<usize>();
        }
        g.dispatch();
        if let Some(w) = &g.driver {
            w.wake_by_ref();
        }
    }
}

/// Remote opens of a protocol, from [`Mux::pair`]. Dropping it unregisters (`unpair`).
#[derive(Debug)]
pub struct Pairing {
    handle: Handle,
    key: String,
    protocol: String,
    id: Option<Vec<u8>>,
}

impl Pairing {
    /// The next remote open waiting for a channel; `None` once the mux has ended.
    pub async fn next(&mut self) -> Option<Incoming> {
        let req = poll_fn(|cx| {
            let mut g = self.handle.0.lock();
            let finished = g.finished.is_some();
            let Some(p) = g.pairs.get_mut(&self.key) else {
                return Poll::Ready(None);
            };
            if let Some(r) = p.queue.pop_front() {
                return Poll::Ready(Some(r));
            }
            if finished {
                return Poll::Ready(None);
            }
            register(&mut p.wakers, cx);
            Poll::Pending
        })
        .await?;
        Some(Incoming {
            handle: self.handle.clone(),
            request: req,
        })
    }
}

impl Drop for Pairing {
    fn drop(&mut self) {
        let mut g = self.handle.0.lock();
        g.core.unpair(&self.protocol, self.id.as_deref());
        if let Some(p) = g.pairs.remove(&self.key) {
            for r in p.queue {
                g.core.pair_done(&r.token);
            }
        }
        g.dispatch();
    }
}

/// A remote open waiting for a local channel ([`Pairing::next`]). Dropping it without
/// [`Incoming::accept`] rejects the open (unless a channel of the protocol was created meanwhile).
#[derive(Debug)]
pub struct Incoming {
    handle: Handle,
    request: PairRequest,
}

impl Incoming {
    /// The protocol the remote opened.
    pub fn protocol(&self) -> &str {
        &self.request.protocol
    }

    /// The channel id the remote opened.
    pub fn id(&self) -> Option<&[u8]> {
        self.request.id.as_deref()
    }

    /// Creates the channel, which pairs with the waiting open (it is fully open at once; call
    /// [`Channel::open`] to answer). `opts` must name the protocol and id (or an alias); `None` as from
    /// [`Mux::create_channel`].
    pub fn accept(self, opts: ChannelOptions) -> Option<Channel> {
        create_channel(&self.handle, &opts)
    }

    /// [`Incoming::accept`] with the protocol and id of the request.
    pub fn accept_default(self) -> Option<Channel> {
        let mut opts = ChannelOptions::new(self.request.protocol.clone());
        opts.id = self.request.id.clone();
        self.accept(opts)
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        let mut g = self.handle.0.lock();
        g.core.pair_done(&self.request.token);
        g.dispatch();
    }
}

enum DriverState {
    Running,
    ShuttingDown,
}

async fn drive<T: FrameTransport>(mut transport: T, shared: Arc<Shared>) {
    let mut state = DriverState::Running;
    poll_fn(|cx| {
        let mut g = shared.lock();
        g.driver = Some(cx.waker().clone());
        let mut budget = FRAME_BUDGET;
        loop {
            if g.finished.is_some() {
                return Poll::Ready(());
            }
            // 1. output
            while let Some(frame) = g.core.poll_transmit() {
                if let Err(e) = transport.send_frame(&frame) {
                    g.finish(Some(e.to_string()));
                    return Poll::Ready(());
                }
                g.unflushed += frame.len();
            }
            if g.unflushed > 0 {
                match transport.poll_flush(cx) {
                    Poll::Ready(Ok(())) => {
                        g.unflushed = 0;
                        wake_all(&mut g.write_waiters);
                    }
                    Poll::Ready(Err(e)) => {
                        g.finish(Some(e.to_string()));
                        return Poll::Ready(());
                    }
                    Poll::Pending => {}
                }
            }
            // 2. the end
            if matches!(state, DriverState::Running) && (g.destroy || g.handles == 0) {
                state = DriverState::ShuttingDown;
            }
            if matches!(state, DriverState::ShuttingDown) {
                return match transport.poll_shutdown(cx) {
                    Poll::Ready(r) => {
                        g.finish(r.err().map(|e| e.to_string()));
                        Poll::Ready(())
                    }
                    Poll::Pending => Poll::Pending,
                };
            }
            // 3. input
            g.read_paused = g.core.should_pause() || g.queued > RECV_HIGH_WATER;
            if g.read_paused {
                return Poll::Pending;
            }
            match transport.poll_recv_frame(cx) {
                Poll::Ready(Ok(Some(frame))) => {
                    let r = g.core.recv_frame(&frame);
                    g.dispatch();
                    if let Err(e) = r {
                        g.finish(Some(e.to_string()));
                        return Poll::Ready(());
                    }
                    budget -= 1;
                    if budget == 0 {
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                }
                Poll::Ready(Ok(None)) => {
                    // the remote ended: close every channel, then end our side (the JS ends too)
                    g.core.shutdown();
                    g.dispatch();
                    state = DriverState::ShuttingDown;
                }
                Poll::Ready(Err(e)) => {
                    g.finish(Some(e.to_string()));
                    return Poll::Ready(());
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await;
}

//! UDX datagram routing, sans-IO: the streams of one UDX instance (libudx's `udx_t`) and what becomes of each
//! datagram its sockets receive.
//!
//! The [`Endpoint`] owns every stream's state machine ([`Stream`]) keyed by local id, the socket carrying
//! each, its firewall, the packets it holds, its relay destination and what its application handle has yet
//! to pick up (messages, end, close). It never touches a socket, a clock or a waker. A driver:
//! 1. hands every datagram a socket receives to [`Endpoint::handle`], with the time, the socket and its local
//!    address, and the source;
//! 2. calls [`Endpoint::service`] for each socket when woken, when a deadline it returned passes, and after
//!    `handle`: it runs due timers and appends the packets to send through that socket (relayed datagrams
//!    first) to a buffer;
//! 3. after each call drains [`Endpoint::poll_event`]: datagrams for the socket's other user (the DHT),
//!    sockets with relayed datagrams to send, and stream changes to wake the application for; then takes the
//!    streams to drop with [`Endpoint::take_retired`].
//!
//! # Routing (as libudx)
//! - A datagram that is not a UDX packet ([`packet::is_udx`]), or a UDX packet for a stream id the endpoint
//!   does not know or a stream that has closed, passes through ([`Event::PassThrough`]).
//! - A packet for a stream that is not connected, that another socket carries, or (with
//!   [`Endpoint::set_firewall_off_path`]) from an address other than its remote's, is offered to the stream's
//!   firewall, which rejects by default (as udx-native does). [`FirewallVerdict::Hold`] keeps it until the
//!   stream connects, [`FirewallVerdict::Connect`] connects (or moves) the stream to the packet's source
//!   through the socket it came in on.
//! - A relay stream ([`Endpoint::relay_to`]) forwards what it receives, with the stream id rewritten, to the
//!   remote of its destination stream through the socket carrying that stream; streams relaying to a stream
//!   that closes are destroyed.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::batch::{Datagram, Emit, TxBatch};
use super::packet;
use super::stream::{Stream, StreamConfig, StreamError, StreamEvent};

/// A driver's name for one of its sockets.
pub type SocketId = usize;

/// At most this many messages wait for a stream's application, and this many relayed datagrams for a socket;
/// more are dropped, as a full socket buffer would.
pub const QUEUE_MAX: usize = 1024;

/// Most packets a stream keeps for [`FirewallVerdict::Hold`] until it connects.
pub const HELD_MAX: usize = 32;

/// What a stream's firewall decides about a packet that arrives while the stream is not connected, or on a
/// socket other than the one carrying it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirewallVerdict {
    /// Drop the packet (udx-native's default firewall).
    Reject,
    /// Hand the packet to the stream as it is.
    Accept,
    /// Connect the stream (or, if connected, change its remote) to the packet's source with this remote
    /// stream id, through the socket the packet came in on, then hand it the packet (HyperDHT's holepunch).
    Connect {
        /// The remote stream id.
        remote_id: u32,
    },
    /// Keep the packet and hand it to the stream once it connects (locally, or by a later `Connect`): how
    /// libudx keeps what an accepting firewall lets into a stream that is not connected yet. HyperDHT's client
    /// uses it for the server's first packets when they outrun the handshake reply that names the server's
    /// stream. At most [`HELD_MAX`] packets are kept; more are dropped.
    Hold,
}

/// A firewall callback: gets the packet's source address and the local address of the socket it came in on.
pub type Firewall = Box<dyn FnMut(SocketAddr, SocketAddr) -> FirewallVerdict + Send>;

/// What [`Endpoint::handle`] did with a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routing {
    /// Not for a live stream: an [`Event::PassThrough`] carries it to the socket's other user.
    PassThrough,
    /// Handed to this stream.
    Stream(u32),
    /// Forwarded by relay stream `from` to the remote of stream `to` (an [`Event::Transmit`] names the socket).
    Relayed {
        /// The relay stream that received it.
        from: u32,
        /// The stream whose remote it goes to.
        to: u32,
    },
    /// Kept by this stream's firewall until the stream connects.
    Held(u32),
    /// Refused by this stream's firewall.
    Rejected(u32),
    /// Addressed to this stream but dropped: too many held packets, or a relay whose destination is gone.
    Dropped(u32),
}

/// Something changed for a stream's application handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamChange {
    /// Bytes are ready to read, or the remote ended.
    Readable,
    /// The send buffer has room again.
    Writable,
    /// A message waits ([`RoutedStream::pop_message`]).
    Message,
    /// The last remote change completed.
    RemoteChanged,
    /// The stream closed ([`RoutedStream::close_state`]): everything waiting on it should look again.
    Closed,
}

/// What the driver must act on, from [`Endpoint::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A datagram for the socket's other user (the DHT): not a UDX packet, or for no live stream.
    PassThrough {
        /// The socket it came in on.
        socket: SocketId,
        /// Its source.
        from: SocketAddr,
        /// The datagram.
        datagram: Vec<u8>,
    },
    /// Relayed datagrams wait to go out through this socket: call [`Endpoint::service`] for it.
    Transmit {
        /// The socket.
        socket: SocketId,
    },
    /// A stream's application has something to look at.
    Stream {
        /// The stream's local id.
        id: u32,
        /// What changed.
        change: StreamChange,
    },
}

/// A batch of datagrams [`Endpoint::service`] appended to the output buffer, all for one destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outgoing {
    /// Where to send them.
    pub destination: SocketAddr,
    /// Size of every datagram except possibly the last (UDP GSO segment size).
    pub segment_size: usize,
    /// Where they start in the buffer.
    pub start: usize,
    /// Where they end in the buffer.
    pub end: usize,
}

/// Errors of the endpoint's stream operations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// No stream has this id.
    #[error("udx stream {0} is gone")]
    UnknownStream(u32),
    /// A stream with this id exists.
    #[error("udx stream id {0} is in use")]
    IdInUse(u32),
    /// The stream is not connected.
    #[error("udx stream is not connected")]
    NotConnected,
    /// The stream is connected already.
    #[error("udx stream is already connected")]
    AlreadyConnected,
    /// The stream has no socket to connect through.
    #[error("udx stream has no socket: use connect_via")]
    NoSocket,
    /// The stream refused.
    #[error(transparent)]
    Stream(#[from] StreamError),
}

/// After a stream follows its peer to a new address, packets from the old one (sent before the move, still on
/// their way) do not move it back for this long.
pub const MIGRATION_HOLD: Duration = Duration::from_secs(2);

/// A packet kept by [`FirewallVerdict::Hold`].
struct Held {
    socket: SocketId,
    local: SocketAddr,
    from: SocketAddr,
    datagram: Vec<u8>,
}

/// One stream of an [`Endpoint`] and its routing state.
pub struct RoutedStream {
    stream: Stream,
    /// The socket carrying the stream (the one it was created on, then the one it connected through).
    socket: Option<SocketId>,
    firewall: Option<Firewall>,
    /// Also offer the firewall packets from addresses other than the remote's on the carrying socket.
    firewall_off_path: bool,
    /// A `change_remote` is waiting for everything sent to the old remote to be acknowledged.
    remote_changing: bool,
    /// Follow the peer to a new address ([`Endpoint::set_migration`]).
    migrate: bool,
    /// The address the stream last moved away from, and when: packets from it still on their way do not move
    /// the stream back for [`MIGRATION_HOLD`].
    migrated_from: Option<(SocketAddr, Instant)>,
    messages: VecDeque<Vec<u8>>,
    remote_ended: bool,
    finished: bool,
    /// `Some` once closed: `None` inside for a clean close, else the error.
    closed: Option<Option<StreamError>>,
    /// An application handle refers to the stream: while not, what arrives is discarded and the stream is
    /// retired once closed.
    attached: bool,
    /// This stream blindly relays what it receives to the remote of that stream (libudx `relay_to`).
    relay_to: Option<u32>,
    held: Vec<Held>,
}

impl std::fmt::Debug for RoutedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoutedStream")
            .field("id", &self.stream.local_id())
            .field("socket", &self.socket)
            .field("remote", &self.stream.remote())
            .field("relay_to", &self.relay_to)
            .field("held", &self.held.len())
            .field("closed", &self.closed)
            .finish()
    }
}

impl RoutedStream {
    fn new(stream: Stream, socket: Option<SocketId>) -> Self {
        Self {
            stream,
            socket,
            firewall: None,
            firewall_off_path: false,
            remote_changing: false,
            migrate: false,
            migrated_from: None,
            messages: VecDeque::new(),
            remote_ended: false,
            finished: false,
            closed: None,
            attached: true,
            relay_to: None,
            held: Vec::new(),
        }
    }

    /// The state machine.
    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    /// The state machine, to read, write or send messages (connect and change its remote through the
    /// [`Endpoint`], which keeps the routing in step).
    pub fn stream_mut(&mut self) -> &mut Stream {
        &mut self.stream
    }

    /// The socket carrying the stream, if any.
    pub fn socket(&self) -> Option<SocketId> {
        self.socket
    }

    /// The remote ended its side.
    pub fn is_remote_ended(&self) -> bool {
        self.remote_ended
    }

    /// [`Endpoint::finish`] was called.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// A remote change is waiting for everything sent to the old remote to be acknowledged.
    pub fn is_remote_changing(&self) -> bool {
        self.remote_changing
    }

    /// `Some` once closed: `Some(None)` for a clean close, else the error.
    pub fn close_state(&self) -> Option<Option<&StreamError>> {
        self.closed.as_ref().map(Option::as_ref)
    }

    /// The next message the remote sent.
    pub fn pop_message(&mut self) -> Option<Vec<u8>> {
        self.messages.pop_front()
    }

    /// How many packets the firewall holds for the stream.
    pub fn held_len(&self) -> usize {
        self.held.len()
    }

    /// Moves the stream's pending events into its state, telling the driver what changed.
    fn drain(&mut self, id: u32, events: &mut VecDeque<Event>) {
        let mut notify = |change| events.push_back(Event::Stream { id, change });
        while let Some(event) = self.stream.poll_event() {
            match event {
                StreamEvent::Readable => notify(StreamChange::Readable),
                StreamEvent::Writable => notify(StreamChange::Writable),
                StreamEvent::RemoteEnded => {
                    self.remote_ended = true;
                    notify(StreamChange::Readable);
                }
                StreamEvent::Message(data) => {
                    if self.messages.len() < QUEUE_MAX {
                        self.messages.push_back(data);
                    }
                    notify(StreamChange::Message);
                }
                StreamEvent::RemoteChanged => {
                    self.remote_changing = false;
                    notify(StreamChange::RemoteChanged);
                }
                StreamEvent::Closed { error } => {
                    self.closed = Some(error);
                    notify(StreamChange::Closed);
                }
            }
        }
        if self.closed.is_none() && self.stream.is_closed() {
            self.closed = Some(None);
            notify(StreamChange::Closed);
        }
    }
}

/// Where [`Endpoint::service`] puts what the streams send.
trait ServiceSink {
    /// Wire bytes prepared so far.
    fn wire_len(&self) -> usize;
    /// Adds a relayed datagram.
    fn relayed(&mut self, to: SocketAddr, packet: &[u8]);
    /// Adds the next batch of stream `id`; false when it has nothing to send now.
    fn poll(&mut self, stream: &mut Stream, id: u32, now: Instant, max_segments: usize) -> bool;
}

/// Whole datagrams appended to a buffer, each batch recorded as an [`Outgoing`].
struct Plain<'a> {
    buf: &'a mut Vec<u8>,
    out: &'a mut Vec<Outgoing>,
}

impl ServiceSink for Plain<'_> {
    fn wire_len(&self) -> usize {
        self.buf.len()
    }

    fn relayed(&mut self, to: SocketAddr, packet: &[u8]) {
        let start = self.buf.len();
        self.buf.extend_from_slice(packet);
        self.out.push(Outgoing {
            destination: to,
            segment_size: packet.len(),
            start,
            end: self.buf.len(),
        });
    }

    fn poll(&mut self, stream: &mut Stream, _id: u32, now: Instant, max_segments: usize) -> bool {
        let start = self.buf.len();
        let Some(t) = stream.poll_transmit(now, self.buf, max_segments) else {
            return false;
        };
        let end = (start + t.len).min(self.buf.len());
        if end > start {
            self.out.push(Outgoing {
                destination: t.destination,
                segment_size: t.segment_size,
                start,
                end,
            });
        }
        true
    }
}

impl ServiceSink for TxBatch {
    fn wire_len(&self) -> usize {
        Emit::wire_len(self)
    }

    fn relayed(&mut self, to: SocketAddr, packet: &[u8]) {
        self.push_datagram(to, packet);
    }

    fn poll(&mut self, stream: &mut Stream, id: u32, now: Instant, max_segments: usize) -> bool {
        self.set_stream(id);
        let first = self.datagrams.len();
        let Some(t) = stream.poll_transmit_batch(now, self, max_segments) else {
            return false;
        };
        self.push_send(t.destination, t.segment_size, first);
        true
    }
}

/// The streams of one UDX instance and the routing of its datagrams; see the module documentation.
pub struct Endpoint {
    /// Hashed with foldhash (randomly seeded per map), not SipHash: every received datagram looks its stream
    /// up, and SipHash was about 1% of a receiver's CPU. The keys are ids this side assigned; a remote only
    /// chooses which key to look up, which cannot make the table degrade.
    streams: foldhash::HashMap<u32, RoutedStream>,
    /// Relayed datagrams each socket must send.
    relay_out: foldhash::HashMap<SocketId, VecDeque<(Vec<u8>, SocketAddr)>>,
    events: VecDeque<Event>,
    retired: Vec<(u32, RoutedStream)>,
    /// The MTU cap of a path.
    path_mtu: fn(SocketAddr) -> usize,
    /// Scratch space for draining streams no application reads.
    discard: Vec<u8>,
}

impl Default for Endpoint {
    fn default() -> Self {
        Self::new(|_| packet::MTU_MAX)
    }
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("streams", &self.streams.len())
            .finish()
    }
}

impl Endpoint {
    /// An endpoint with no streams. `path_mtu` caps the MTU of the path to an address (libudx asks the OS;
    /// at most [`packet::MTU_MAX`]).
    pub fn new(path_mtu: fn(SocketAddr) -> usize) -> Self {
        Self {
            streams: foldhash::HashMap::default(),
            relay_out: foldhash::HashMap::default(),
            events: VecDeque::new(),
            retired: Vec::new(),
            path_mtu,
            discard: vec![0; 64 * 1024],
        }
    }

    /// How many streams the endpoint has.
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    /// True when the endpoint has no stream.
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// Stream `id`, if it exists.
    pub fn stream(&self, id: u32) -> Option<&RoutedStream> {
        self.streams.get(&id)
    }

    /// Stream `id`, if it exists.
    pub fn stream_mut(&mut self, id: u32) -> Option<&mut RoutedStream> {
        self.streams.get_mut(&id)
    }

    fn get(&mut self, id: u32) -> Result<&mut RoutedStream, EndpointError> {
        self.streams
            .get_mut(&id)
            .ok_or(EndpointError::UnknownStream(id))
    }

    /// The ids of the streams `socket` carries.
    pub fn streams_on(&self, socket: SocketId) -> impl Iterator<Item = u32> + '_ {
        self.streams
            .iter()
            .filter(move |(_, s)| s.socket == Some(socket))
            .map(|(id, _)| *id)
    }

    /// How many streams `socket` carries (including closing ones no application refers to).
    pub fn stream_count(&self, socket: SocketId) -> usize {
        self.streams_on(socket).count()
    }

    /// Forgets what was queued for `socket` (it is closed).
    pub fn remove_socket(&mut self, socket: SocketId) {
        self.relay_out.remove(&socket);
    }

    /// Creates stream `id`, carried by `socket` if given. Fails if the id is in use.
    pub fn create_stream(
        &mut self,
        id: u32,
        config: StreamConfig,
        socket: Option<SocketId>,
        now: Instant,
    ) -> Result<(), EndpointError> {
        if self.streams.contains_key(&id) {
            return Err(EndpointError::IdInUse(id));
        }
        let stream = Stream::new(id, config, now);
        self.streams.insert(id, RoutedStream::new(stream, socket));
        Ok(())
    }

    /// Connects stream `id` to stream `remote_id` at `addr`, through `via` if given (else the socket it was
    /// created on), with the path's MTU cap. Fails when the stream is connected, or has no socket and none is
    /// given.
    pub fn connect(
        &mut self,
        id: u32,
        via: Option<SocketId>,
        remote_id: u32,
        addr: SocketAddr,
        now: Instant,
    ) -> Result<(), EndpointError> {
        let path_mtu = self.path_mtu;
        let slot = self.get(id)?;
        if via.is_none() && slot.socket.is_none() {
            return Err(EndpointError::NoSocket);
        }
        if slot.stream.remote().is_some() {
            return Err(EndpointError::AlreadyConnected);
        }
        if via.is_some() {
            slot.socket = via;
        }
        slot.stream.connect(remote_id, addr, now);
        slot.stream.set_max_mtu(path_mtu(addr));
        Ok(())
    }

    /// Whether stream `id` follows its peer to a new address (off by default, as libudx, which keeps sending
    /// to the address it connected to). On, a packet on the stream's socket from another address that
    /// [`Stream::is_plausible_from_peer`] moves the stream there at once ([`Stream::migrate`]): the peer's
    /// network changed or a NAT rebound its port. Not while a [`Endpoint::change_remote`] is under way, for a
    /// relay stream, or with [`Endpoint::set_firewall_off_path`] (the firewall decides those).
    pub fn set_migration(&mut self, id: u32, on: bool) -> Result<(), EndpointError> {
        self.get(id)?.migrate = on;
        Ok(())
    }

    /// Makes every connected stream send a HEARTBEAT ([`Stream::probe`]), after this machine's addresses
    /// changed: a peer with migration on follows us to the new address. Returns the sockets carrying them
    /// (to service).
    pub fn probe_all(&mut self, now: Instant) -> Vec<SocketId> {
        let mut sockets = Vec::new();
        for slot in self.streams.values_mut() {
            if slot.relay_to.is_some() || slot.closed.is_some() || slot.stream.remote().is_none() {
                continue;
            }
            slot.stream.probe(now);
            if let Some(s) = slot.socket {
                if !sockets.contains(&s) {
                    sockets.push(s);
                }
            }
        }
        sockets
    }

    /// Moves connected stream `id` to another remote (id and address), and onto socket `via` if given,
    /// keeping its state (udx-native's `changeRemote`). Packets already sent to the old remote are
    /// retransmitted there until acknowledged; [`StreamChange::RemoteChanged`] comes once they are. Packets
    /// arriving on the old socket then go through the firewall.
    pub fn change_remote(
        &mut self,
        id: u32,
        via: Option<SocketId>,
        remote_id: u32,
        addr: SocketAddr,
        now: Instant,
    ) -> Result<(), EndpointError> {
        let path_mtu = self.path_mtu;
        let slot = self.get(id)?;
        if slot.stream.remote().is_none() {
            return Err(EndpointError::NotConnected);
        }
        if via.is_some() {
            slot.socket = via;
        }
        slot.remote_changing = true;
        slot.stream.change_remote(remote_id, addr, now);
        slot.stream.set_max_mtu(path_mtu(addr));
        Ok(())
    }

    /// Makes stream `id` a blind relay to stream `to` (udx-native `relayTo`): every datagram it receives is
    /// forwarded, with its stream id rewritten, to `to`'s remote through the socket carrying `to`. It is
    /// destroyed when `to` closes.
    pub fn relay_to(&mut self, id: u32, to: u32) -> Result<(), EndpointError> {
        let slot = self.get(id)?;
        slot.stream.relay_to()?;
        slot.relay_to = Some(to);
        Ok(())
    }

    /// Sets the firewall of stream `id`; returns the previous one (drop it where that is safe).
    pub fn set_firewall(
        &mut self,
        id: u32,
        firewall: Firewall,
    ) -> Result<Option<Firewall>, EndpointError> {
        Ok(self.get(id)?.firewall.replace(firewall))
    }

    /// Also offer stream `id`'s firewall packets that arrive on the carrying socket from an address other than
    /// the remote's (off by default: they are the stream's own).
    pub fn set_firewall_off_path(&mut self, id: u32, on: bool) -> Result<(), EndpointError> {
        self.get(id)?.firewall_off_path = on;
        Ok(())
    }

    /// Ends stream `id`'s writing side (END after everything written), once.
    pub fn finish(&mut self, id: u32) -> Result<(), EndpointError> {
        let slot = self.get(id)?;
        if !slot.finished && slot.closed.is_none() {
            slot.finished = true;
            slot.stream.finish();
        }
        Ok(())
    }

    /// Aborts stream `id`: it sends DESTROY and closes.
    pub fn destroy(&mut self, id: u32) -> Result<(), EndpointError> {
        self.get(id)?.stream.destroy();
        self.settle_events(id);
        Ok(())
    }

    /// The application let go of stream `id`: it finishes gracefully, what arrives is discarded, and it is
    /// retired once closed. A stream no socket carries is removed at once and returned.
    pub fn detach(&mut self, id: u32) -> Option<RoutedStream> {
        let slot = self.streams.get_mut(&id)?;
        slot.attached = false;
        if !slot.finished && slot.closed.is_none() {
            slot.finished = true;
            slot.stream.finish();
        }
        if slot.socket.is_none() {
            self.streams.remove(&id)
        } else {
            None
        }
    }

    /// After the application changed stream `id`: surfaces the events of a stream no socket carries (no
    /// [`Endpoint::service`] runs it) and hands its held packets to it if it is now connected.
    pub fn settle(&mut self, id: u32, now: Instant) {
        self.settle_events(id);
        self.replay_held(id, now);
    }

    fn settle_events(&mut self, id: u32) {
        if let Some(slot) = self.streams.get_mut(&id) {
            if slot.socket.is_none() {
                slot.drain(id, &mut self.events);
            }
        }
    }

    /// Offers the packets stream `id`'s firewall held to it again (for when what it decides on changed). Those
    /// it holds again stay held.
    pub fn retry_held(&mut self, id: u32, now: Instant) -> Result<(), EndpointError> {
        let held = std::mem::take(&mut self.get(id)?.held);
        for h in held {
            self.handle(now, h.socket, h.local, h.from, &h.datagram);
        }
        self.settle_events(id);
        Ok(())
    }

    /// Routes one datagram received at `now` by socket `socket` (bound to `local`) from `from`. What to send
    /// and what changed come from [`Endpoint::service`] and [`Endpoint::poll_event`]. Any bytes are fine.
    pub fn handle(
        &mut self,
        now: Instant,
        socket: SocketId,
        local: SocketAddr,
        from: SocketAddr,
        datagram: &[u8],
    ) -> Routing {
        let Some(id) = packet::destination_id(datagram) else {
            return self.pass_through(socket, from, datagram);
        };
        let path_mtu = self.path_mtu;
        let Some(slot) = self.streams.get_mut(&id) else {
            tracing::debug!("udx: packet from {from} for unknown stream {id}");
            return self.pass_through(socket, from, datagram);
        };
        if slot.stream.is_closed() {
            // libudx forgets closed streams at once, so their packets reach the socket's raw handler.
            return self.pass_through(socket, from, datagram);
        }
        let off_path =
            slot.firewall_off_path && slot.stream.remote().is_some_and(|(_, addr)| addr != from);
        if slot.socket != Some(socket) || slot.stream.remote().is_none() || off_path {
            let verdict = match slot.firewall.as_mut() {
                Some(firewall) => firewall(from, local),
                None => FirewallVerdict::Reject,
            };
            match verdict {
                FirewallVerdict::Hold => {
                    if slot.held.len() >= HELD_MAX {
                        return Routing::Dropped(id);
                    }
                    slot.held.push(Held {
                        socket,
                        local,
                        from,
                        datagram: datagram.to_vec(),
                    });
                    return Routing::Held(id);
                }
                FirewallVerdict::Reject => {
                    tracing::debug!("udx: stream {id} firewall rejected a packet from {from}");
                    return Routing::Rejected(id);
                }
                FirewallVerdict::Accept => {}
                FirewallVerdict::Connect { remote_id } => {
                    slot.socket = Some(socket);
                    if slot.stream.remote().is_some() {
                        slot.remote_changing = true;
                        slot.stream.change_remote(remote_id, from, now);
                    } else {
                        slot.stream.connect(remote_id, from, now);
                    }
                    slot.stream.set_max_mtu(path_mtu(from));
                }
            }
        }
        if let Some(to) = slot.relay_to {
            return self.relay(id, to, now, datagram);
        }
        if slot.migrate && !slot.remote_changing && !slot.firewall_off_path {
            if let Some((_, addr)) = slot.stream.remote() {
                let stale = slot
                    .migrated_from
                    .is_some_and(|(old, at)| old == from && now < at + MIGRATION_HOLD);
                if addr != from && !stale && slot.stream.is_plausible_from_peer(datagram) {
                    tracing::debug!("udx: stream {id}: the peer moved from {addr} to {from}");
                    slot.migrated_from = Some((addr, now));
                    slot.stream.migrate(from, now);
                    slot.stream.set_max_mtu(path_mtu(from));
                }
            }
        }
        slot.stream.handle_datagram(now, from, datagram);
        if !slot.held.is_empty() {
            self.replay_held(id, now);
        }
        Routing::Stream(id)
    }

    fn pass_through(&mut self, socket: SocketId, from: SocketAddr, datagram: &[u8]) -> Routing {
        self.events.push_back(Event::PassThrough {
            socket,
            from,
            datagram: datagram.to_vec(),
        });
        Routing::PassThrough
    }

    /// Hands the packets stream `id` held to it once it is connected.
    fn replay_held(&mut self, id: u32, now: Instant) {
        let held = match self.streams.get_mut(&id) {
            Some(slot) if !slot.held.is_empty() && slot.stream.remote().is_some() => {
                std::mem::take(&mut slot.held)
            }
            _ => return,
        };
        for h in held {
            self.handle(now, h.socket, h.local, h.from, &h.datagram);
        }
    }

    /// Forwards a datagram received by relay stream `id` to the remote of stream `to` (libudx `relay_packet`).
    fn relay(&mut self, id: u32, to: u32, now: Instant, datagram: &[u8]) -> Routing {
        let Some((to_socket, (to_remote_id, to_addr))) = self
            .streams
            .get(&to)
            .filter(|dest| !dest.stream.is_closed())
            .and_then(|dest| Some((dest.socket?, dest.stream.remote()?)))
        else {
            return Routing::Dropped(id);
        };
        let mut packet = datagram.to_vec();
        let forward = self
            .streams
            .get_mut(&id)
            .is_some_and(|slot| slot.stream.relay_datagram(now, &mut packet, to_remote_id));
        if !forward {
            return Routing::Dropped(id);
        }
        let queue = self.relay_out.entry(to_socket).or_default();
        if queue.len() < QUEUE_MAX {
            queue.push_back((packet, to_addr));
        }
        self.events.push_back(Event::Transmit { socket: to_socket });
        Routing::Relayed { from: id, to }
    }

    /// Runs the streams `socket` carries at `now`: appends the relayed datagrams waiting for it, then runs due
    /// timers and appends each stream's packets (up to `max_segments` per batch) to `buf` while it holds less
    /// than `budget` bytes, recording each batch in `out`. Tears down relays to closed streams and retires
    /// closed streams no application refers to. Returns when to call again at the latest.
    pub fn service(
        &mut self,
        now: Instant,
        socket: SocketId,
        buf: &mut Vec<u8>,
        max_segments: usize,
        budget: usize,
        out: &mut Vec<Outgoing>,
    ) -> Option<Instant> {
        self.service_into(now, socket, &mut Plain { buf, out }, max_segments, budget)
    }

    /// [`Endpoint::service`] into a [`TxBatch`], whose data packets refer to their payload in the streams'
    /// send rings: send it (see [`Endpoint::batch_payload`]) before anything else changes the endpoint.
    pub(crate) fn service_batch(
        &mut self,
        now: Instant,
        socket: SocketId,
        batch: &mut TxBatch,
        max_segments: usize,
        budget: usize,
    ) -> Option<Instant> {
        self.service_into(now, socket, batch, max_segments, budget)
    }

    /// The payload of a datagram of a [`TxBatch`] from [`Endpoint::service_batch`], as up to two slices (empty
    /// when the stream is gone or released those bytes).
    pub(crate) fn batch_payload(&self, d: &Datagram) -> (&[u8], &[u8]) {
        if d.len == 0 {
            return (&[], &[]);
        }
        match self.streams.get(&d.stream) {
            Some(slot) => slot.stream.send_payload(d.offset, d.len),
            None => (&[], &[]),
        }
    }

    fn service_into(
        &mut self,
        now: Instant,
        socket: SocketId,
        sink: &mut impl ServiceSink,
        max_segments: usize,
        budget: usize,
    ) -> Option<Instant> {
        if let Some(queue) = self.relay_out.get_mut(&socket) {
            while let Some((packet, to)) = queue.pop_front() {
                sink.relayed(to, &packet);
            }
        }
        let mut deadline: Option<Instant> = None;
        let mut any_closed = false;
        for (id, slot) in self
            .streams
            .iter_mut()
            .filter(|(_, s)| s.socket == Some(socket))
        {
            if slot.stream.poll_timeout().is_some_and(|t| t <= now) {
                slot.stream.handle_timeout(now);
            }
            if !slot.attached {
                // Nobody will read a dropped stream: discard what arrives so it can reach the remote's END.
                while slot.stream.read(&mut self.discard) > 0 {}
            }
            while sink.wire_len() < budget && sink.poll(&mut slot.stream, *id, now, max_segments) {}
            slot.drain(*id, &mut self.events);
            any_closed |= slot.closed.is_some();
            if let Some(t) = slot.stream.poll_timeout() {
                deadline = Some(deadline.map_or(t, |d| d.min(t)));
            }
        }
        if any_closed {
            // libudx destroys the streams relaying to a stream that closes.
            let closed: Vec<u32> = self
                .streams
                .iter()
                .filter(|(_, s)| s.socket == Some(socket) && s.closed.is_some())
                .map(|(id, _)| *id)
                .collect();
            for (id, slot) in self.streams.iter_mut() {
                if slot.relay_to.is_some_and(|to| closed.contains(&to)) && slot.closed.is_none() {
                    slot.relay_to = None;
                    slot.stream.destroy();
                    slot.drain(*id, &mut self.events);
                }
            }
            let retired: Vec<u32> = self
                .streams
                .iter()
                .filter(|(_, s)| s.socket == Some(socket) && !s.attached && s.stream.is_closed())
                .map(|(id, _)| *id)
                .collect();
            for id in retired {
                if let Some(slot) = self.streams.remove(&id) {
                    self.retired.push((id, slot));
                }
            }
        }
        deadline
    }

    /// When [`Endpoint::service`] must next run for `socket` at the latest.
    pub fn poll_timeout(&self, socket: SocketId) -> Option<Instant> {
        self.streams
            .values()
            .filter(|s| s.socket == Some(socket))
            .filter_map(|s| s.stream.poll_timeout())
            .min()
    }

    /// Surfaces the events of the streams `socket` carries without running them (for a driver blocked on a
    /// full socket).
    pub fn drain_events(&mut self, socket: SocketId) {
        for (id, slot) in self
            .streams
            .iter_mut()
            .filter(|(_, s)| s.socket == Some(socket))
        {
            slot.drain(*id, &mut self.events);
        }
    }

    /// The next thing the driver must act on.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Moves the streams [`Endpoint::service`] retired into `into`, to drop where that is safe (a firewall may
    /// own handles whose drop needs the driver's lock).
    pub fn take_retired(&mut self, into: &mut Vec<(u32, RoutedStream)>) {
        into.append(&mut self.retired);
    }
}

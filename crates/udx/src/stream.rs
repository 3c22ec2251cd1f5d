//! One UDX stream's protocol state machine, sans-IO, following libudx (`udx.c`, `udx_rate.c`, `udx_bbr.c`).
//!
//! The [`Stream`] never touches a socket or a clock. The driver:
//! 1. feeds every datagram addressed to the stream (see [`super::packet::destination_id`]) to
//!    [`Stream::handle_datagram`], and calls [`Stream::handle_timeout`] when [`Stream::poll_timeout`] expires;
//! 2. after each of those (and after `write`, `finish`, `read`, `send_message`, `destroy`) calls
//!    [`Stream::poll_transmit`] until it returns `None`, sending what it produced, and then re-reads
//!    [`Stream::poll_timeout`];
//! 3. drains [`Stream::poll_event`], and drops the stream once [`Stream::is_closed`].
//!
//! Time is kept in microseconds (libudx: whole milliseconds, `uv_now`): RTT, RTO, pacing and BBR follow
//! libudx's rules at a finer clock (see "Where this differs"). The wire format does not carry time.
//!
//! This file holds the state, the public API and the packet lists; the parts live beside it: `send.rs`
//! (pacing, packetizing, retransmission, acks out, MTU search, `poll_transmit`), `recv.rs` (datagrams in,
//! delivery, messages, END/DESTROY), `recovery.rs` (timers, RACK-TLP, SACK and ack processing, rate
//! sampling). Congestion control sits behind the [`super::cc::CongestionController`] trait, whose one
//! implementation is BBR ([`super::bbr`]): the stream tells it about sends, acks (with a delivery-rate
//! sample), RTOs and recovery exits, and asks it for the congestion window and pacing rate.
//!
//! # What follows libudx
//! - Header fields and flags; DATA and END consume a sequence number, MESSAGE, HEARTBEAT and acks do not
//!   (they carry the current `seq`); DESTROY carries `seq` and increments it.
//! - Acks: one per received DATA/END datagram, duplicates and out-of-window packets included, with SACK
//!   ranges `[start, end)` scanned from `ack + 1` as `send_ack` does (how many: see below); HEARTBEAT is
//!   answered by an ack and nothing else of it is processed; a datagram whose data offset points past its end
//!   is ignored.
//! - "Final state" ack when the remote acks our END; remote END surfaces (after the ack) only once every
//!   earlier sequence number arrived; the stream closes when both sides ended; data after the remote END is
//!   dropped; a DESTROY at or after our ack closes with [`StreamError::Reset`].
//! - Send window: `min(cwnd, rwnd / payload)` packets (at least 1 while rwnd > 0), rwnd ignored for
//!   retransmissions, TCP's `wl1`/`wl2` rule for window updates, rwnd = max (4 MiB) minus unread bytes.
//! - RTT/RTO: RFC 6298 with 1/8 and 1/4 gains, RTO floor 1 s and cap 30 s, RTT samples only from never
//!   retransmitted packets, clamping of outliers above 5 s; after an RTO the timer restarts at `2 * rto`;
//!   6 RTOs of one packet close the stream with [`StreamError::TimedOut`].
//! - RACK-TLP (RFC 8985) as libudx: send-time ordered in-flight queue, reordering window `min_rtt / 4`
//!   (0 in recovery or after 3 SACKs unless reordering was seen), reordering timer, fast recovery entry and
//!   exit at `high_seq`, tail loss probe after `2 * srtt` (+2 ms with one packet out, 1 s without RTT sample),
//!   a new packet or the last one re-sent, TLP loss-repair detection. No dupack counting (libudx has none).
//! - BBR v1 (`udx_bbr.c`): startup/drain/probe-bw/probe-rtt, the same gains, windowed max bandwidth over 10
//!   rounds in packets/ms, min RTT over 10 s, ack aggregation, packet conservation in recovery;
//!   delivery-rate sampling (`udx_rate.c`) with app-limited marking; token-bucket pacing refilled per ms.
//! - Keepalive (HEARTBEAT after `keepalive` idle) and zero-window probes (HEARTBEAT while the peer's window is
//!   0 and data waits, one at once when writing into an idle zero window; timing: see below).
//! - change_remote: new packets and acks go to the new remote at once, packets in flight keep their original
//!   destination and remote id on retransmit, sequence numbers continue, the MTU search restarts, and
//!   [`StreamEvent::RemoteChanged`] comes once everything sent before the change is acked.
//! - MTU: 1200 base, probes up by 32 to 1500 (capped by [`Stream::set_max_mtu`]), zero padding announced in
//!   the data offset, three lost probes of a size end the search; lost probes are re-sent without padding.
//!
//! # Where this differs
//! - Acks for all datagrams handled before one `poll_transmit` are coalesced into one (libudx acks each).
//! - libudx's probe check (`wanted_size > pkt->size`) rejects every packet, so libudx never actually sends
//!   MTU probes; we apply the evident intent (pad a full packet up to the probed size). Receivers of any
//!   version handle the padding. Disable with [`StreamConfig::mtu_probing`].
//! - After a clean close the stream lingers ([`StreamConfig::linger`]) to re-ack a retransmitted END.
//! - Reading frees receive window at once and, when the advertised window had dropped below one packet, an
//!   ack announces the reopened window (libudx waits for the sender's zero-window probe).
//! - Out-of-order packets more than 16384 sequence numbers ahead are dropped (libudx buffers any distance).
//! - Relaying (`udx_stream_relay_to`) is split: [`Stream::relay_datagram`] rewrites and accounts, the
//!   driver forwards; the firewall hook belongs to the driver.
//!
//! Loss recovery, where libudx stalls under random loss (a 1 s RTO where RACK-TLP should have recovered);
//! all of it local, the wire format is unchanged:
//! - Acks carry up to [`super::packet::MAX_SACK_RANGES`] SACK ranges (libudx sends 50 and reads any number);
//!   when they run out before the highest received packet, the last 16 report the highest ranges. With 50
//!   lowest ranges only, under 5-10% loss the packets sent last are never SACKed, the sender cannot tell the
//!   holes before them lost, and its window fills with delivered-but-unreported packets until the RTO.
//! - RACK orders transmissions by a counter, not by `(time_sent, seq)`: in whole milliseconds a
//!   retransmission ties with the newer packets sent in the same millisecond and would be declared lost again
//!   at once (on sub-millisecond paths, again and again).
//! - Probes beyond the tail loss probe: in fast recovery, after an RTO, and after a lost TLP, a probe timeout
//!   (`2 * srtt`, at least 4 ms, doubling per probe without an ack) re-sends the first packet waiting for
//!   retransmission, else the earliest sent in flight, regardless of the window. A probe never comes after the
//!   RTO would; with no RTT sample yet, the RTO stays the only timer, as in libudx.
//! - Zero-window probes start at the probe timeout and double up to libudx's `2 * rto` (libudx: the first
//!   after one RTO, then every `2 * rto`): the ack that reopens the window is a single datagram, and when it
//!   is lost the transfer would otherwise stall for a second.
//! - BBR saves its window on entering recovery and on an RTO, and restores it when recovery ends (Linux BBR);
//!   libudx sets the window to `ssthresh` (one BDP from the end of startup) at every recovery exit.
//! - The clock counts microseconds, not milliseconds: on sub-millisecond paths (LAN, veth, loopback) RTTs,
//!   delivery-rate intervals and BBR's gain-cycle phases no longer round to 0 or 1 ms (see [`super::bbr`]).
//!   The pacing token bucket accumulates microseconds' worth of tokens between calls (libudx refills it with
//!   one millisecond's worth per tick), and its timer waits for one packet's worth of tokens, not a whole
//!   tick. Timers (RTO floor 1 s, probe timeouts of at least 4 ms) keep libudx's values.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::bbr::Bbr;
use super::cc::{CongestionController, Path, RateSample};
use super::packet::{
    encode_sack_range, flags, seq, Header, HEADER_LEN, IPV4_HEADER_OVERHEAD, IPV6_HEADER_OVERHEAD,
    MAX_SACK_RANGES, MAX_SACK_RANGES_IN, MTU_BASE, MTU_MAX, MTU_MAX_PROBES, MTU_STEP,
};
use super::ring::ByteRing;
use super::win_filter::WinFilter;

// The stream's parts: child modules (they share its private state) whose files sit beside this one in `udx/`.
#[path = "recovery.rs"]
mod recovery;
#[path = "recv.rs"]
mod recv;
#[path = "send.rs"]
mod send;

/// Our microsecond clock starts here, so that 0 can mean "unset" as in libudx.
const CLOCK_OFFSET_US: u64 = 1 << 30;
/// The pacing token bucket's initial fill, bytes.
const INIT_PACING_RATE: i64 = 25_000;
/// libudx refills its pacing token bucket once per millisecond: at most this much time's worth of tokens
/// accumulates while the sender keeps up.
const PACING_TICK_US: u64 = 1_000;
const MAX_RTO_TIMEOUTS: u8 = 6;
const RTO_MAX_US: u32 = 30_000_000;
/// The shortest RTO (libudx: 1 s).
const RTO_MIN_US: u32 = 1_000_000;
const RTT_MAX_US: u64 = 30_000_000;
const RTT_MIN_WINDOW_US: u64 = 300_000_000;
/// libudx `UDX_DEFAULT_RWND_MAX`.
pub const DEFAULT_RWND_MAX: u32 = 4 * 1024 * 1024;
/// libudx `UDX_HIGH_WATERMARK`: writes beyond this plus the send window apply backpressure.
pub const HIGH_WATERMARK: usize = 262_144;
/// [`Stream::write_in_place`] keeps at most this many bytes written but not yet sent: bytes written in place
/// (encrypted, say) go out while they are still in the CPU's cache, instead of a send window later.
pub const IN_PLACE_UNSENT_MAX: usize = 512 * 1024;
const TLP_MAX_ACK_DELAY_US: u32 = 2_000;
/// The shortest probe timeout: a peer's ack may wait for its event loop (and the drivers' timers tick in
/// milliseconds).
const PTO_MIN_US: u32 = 4_000;
/// The probe timeout before the first RTT sample (then doubling per probe, while below the RTO).
const PTO_NO_RTT_US: u32 = 200_000;
/// How many of an ack's SACK ranges report the highest received packets when the ranges run out.
const SACK_TOP_RANGES: usize = 16;
/// Out-of-order packets further than this ahead of the cumulative ack are dropped (bounds memory).
const MAX_INCOMING_AHEAD: usize = 16_384;

/// Stream settings.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// The receive window advertised when the read buffer is empty (libudx default 4 MiB). The advertised
    /// window shrinks by the bytes received but not yet [`Stream::read`].
    pub recv_window_max: u32,
    /// Keepalive interval: a HEARTBEAT goes out after this much idle time. `None` disables it (the default).
    pub keepalive: Option<Duration>,
    /// Probe the path MTU upwards from 1200 bytes (default true).
    pub mtu_probing: bool,
    /// Initial sequence number (libudx `udx_stream_set_seq`, udx-native `opts.seq`).
    pub initial_seq: u32,
    /// Initial cumulative ack (libudx `udx_stream_set_ack`, udx-native `connect(.., { ack })`).
    pub initial_ack: u32,
    /// After a clean close (both sides ended), keep answering retransmissions of the remote's END or data
    /// with an ack for this long, in case our last ack was lost (default 3 s). libudx forgets the stream at
    /// once, and the remote then times out; `Duration::ZERO` restores that behaviour. A non-zero linger lasts at
    /// least three retransmission timeouts.
    pub linger: Duration,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            recv_window_max: DEFAULT_RWND_MAX,
            keepalive: None,
            mtu_probing: true,
            initial_seq: 0,
            initial_ack: 0,
            linger: Duration::from_secs(3),
        }
    }
}

/// Errors of a stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// The operation needs a connected stream.
    #[error("stream is not connected")]
    NotConnected,
    /// The stream is closed.
    #[error("stream is closed")]
    Closed,
    /// A message longer than [`Stream::max_message_len`].
    #[error("message of {len} bytes exceeds the maximum of {max}")]
    MessageTooLarge {
        /// Length given.
        len: usize,
        /// Maximum allowed.
        max: usize,
    },
    /// A packet went unacknowledged through 6 retransmission timeouts (libudx `UV_ETIMEDOUT`).
    #[error("connection timed out")]
    TimedOut,
    /// The remote destroyed the stream (libudx `UV_ECONNRESET`).
    #[error("connection reset by peer")]
    Reset,
    /// [`Stream::relay_to`] on a stream that already relays.
    #[error("stream is already relaying")]
    AlreadyRelaying,
}

/// A batch of datagrams [`Stream::poll_transmit`] appended to the output buffer, all for one destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send them.
    pub destination: SocketAddr,
    /// Size of every datagram except possibly the last, which may be shorter (UDP GSO segment size).
    pub segment_size: usize,
    /// Total bytes appended.
    pub len: usize,
}

/// Something the application should know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// Bytes are ready for [`Stream::read`] (edge-triggered: comes again after a read drained the buffer).
    Readable,
    /// The send buffer has room again after a short [`Stream::write`].
    Writable,
    /// The remote half-closed: no bytes will arrive beyond what is, or was, readable.
    RemoteEnded,
    /// An unordered datagram ([`super::packet::flags::MESSAGE`]).
    Message(Vec<u8>),
    /// A [`Stream::change_remote`] completed: everything sent to the previous remote was acked.
    RemoteChanged,
    /// The stream closed: `None` after both sides ended cleanly or a local destroy.
    Closed {
        /// Why, if abnormally.
        error: Option<StreamError>,
    },
}

/// Counters and estimates of a stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamStats {
    /// Smoothed RTT.
    pub srtt: Duration,
    /// Current retransmission timeout.
    pub rto: Duration,
    /// Congestion window, packets.
    pub cwnd: u32,
    /// Packets in flight.
    pub inflight_packets: u32,
    /// Bytes in flight (header + payload).
    pub inflight_bytes: usize,
    /// Current path MTU estimate.
    pub mtu: usize,
    /// Pacing rate, bytes per millisecond.
    pub pacing_bytes_per_ms: u32,
    /// BBR bottleneck bandwidth estimate, payload bytes per second.
    pub bandwidth_bytes_per_sec: u64,
    /// Delivery-rate samples BBR's bandwidth estimate took (libudx, in whole milliseconds, drops every sample
    /// whose interval rounds to 0, the rule on sub-millisecond paths).
    pub bandwidth_samples: u64,
    /// BBR bandwidth probes: probe-bw gain cycles that entered their 1.25x phase.
    pub bandwidth_probes: u64,
    /// BBR state: 0 startup, 1 drain, 2 probe-bw, 3 probe-rtt (as libudx).
    pub bbr_state: u8,
    /// Datagram bytes sent.
    pub bytes_sent: u64,
    /// Datagram bytes received.
    pub bytes_received: u64,
    /// Datagrams sent.
    pub packets_sent: u64,
    /// Datagrams received.
    pub packets_received: u64,
    /// Data packets retransmitted.
    pub packets_retransmitted: u64,
    /// Retransmission timeouts.
    pub rto_count: u32,
    /// Tail loss probes and recovery probes sent.
    pub probes: u32,
    /// Fast recoveries entered.
    pub fast_recoveries: u32,
    /// Zero-window probes sent.
    pub zero_window_probes: u32,
    /// Stream bytes delivered to the reader so far.
    pub bytes_read_total: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum CaState {
    Open = 1,
    Recovery = 2,
    Loss = 3,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimerKind {
    None,
    Rto,
    RackReo,
    Tlp,
    Zwp,
    Keepalive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MtuState {
    Base,
    Search,
    SearchComplete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListId {
    Inflight,
    Retransmit,
}

#[derive(Debug, Clone, Copy, Default)]
struct List {
    head: Option<u32>,
    tail: Option<u32>,
    len: u32,
}

/// A data/END packet sent and not yet cumulatively acked.
#[derive(Debug, Clone)]
struct SentPacket {
    seq: u32,
    /// Selectively acked (libudx removes it from `outgoing`; we keep the slot until the cumulative ack).
    acked: bool,
    /// In the retransmit queue.
    lost: bool,
    retransmitted: bool,
    transmits: u8,
    rto_timeouts: u8,
    is_mtu_probe: bool,
    type_flags: u8,
    padding: u8,
    remote_id: u32,
    destination: SocketAddr,
    /// Absolute offset of the payload in the send ring.
    offset: u64,
    len: u16,
    /// Header + payload, without probe padding (libudx `pkt->size`).
    size: u32,
    time_sent: u64,
    /// The stream's transmission counter at the last (re)transmission: orders sends within one clock tick,
    /// where `time_sent` ties (RACK and rate sampling need the true send order; a retransmission of an old
    /// sequence number is sent after newer ones).
    xmit: u64,
    /// The last retransmission went out while the packet was not marked lost (a probe): an ack of it may be
    /// for an earlier transmission, still on its way when the probe left. RACK then only credits the earlier
    /// transmission (`rack_xmit`/`rack_time_sent`), else the ack of a merely delayed original would mark
    /// everything sent between it and the probe lost (with millisecond clocks on a sub-millisecond path,
    /// RACK's `rtt < min_rtt` test cannot tell them apart).
    ambiguous: bool,
    /// The transmission RACK credits when an ack of this packet arrives (see `ambiguous`).
    rack_xmit: u64,
    rack_time_sent: u64,
    first_sent_ts: u64,
    delivered_ts: u64,
    delivered: u32,
    is_app_limited: bool,
    prev: Option<u32>,
    next: Option<u32>,
}

#[derive(Debug)]
struct InPacket {
    type_flags: u8,
    data: Vec<u8>,
}

#[derive(Debug)]
struct Pending {
    bytes: Vec<u8>,
    destination: SocketAddr,
}

/// One UDX stream: reliable ordered bytes, half-close, unordered messages, congestion control. See the
/// module documentation for how a driver runs it.
#[derive(Debug)]
pub struct Stream {
    epoch: Instant,
    now: u64,
    local_id: u32,
    remote_id: u32,
    remote_addr: Option<SocketAddr>,
    config: StreamConfig,

    // status
    connected: bool,
    relaying: bool,
    ending: bool,
    ended: bool,
    ending_remote: bool,
    ended_remote: bool,
    destroying: bool,
    closed: bool,

    ca_state: CaState,
    high_seq: u32,
    hit_high_watermark: bool,
    rto_count: u32,
    zwp_count: u32,
    fast_recovery_count: u32,
    retransmit_count: u64,
    writes_queued_bytes: usize,

    ack_pending: bool,
    heartbeat_pending: bool,
    readable_armed: bool,
    last_advertised_rwnd: u32,
    reordering_seen: bool,

    remote_changing: bool,
    seq_on_remote_changed: u32,

    // mtu
    mtu_state: MtuState,
    mtu_probe_wanted: bool,
    mtu_probe_count: u32,
    mtu_probe_size: usize,
    mtu_max: usize,
    link_mtu: usize,
    mtu: usize,

    seq: u32,
    ack: u32,
    remote_acked: u32,
    remote_ended: u32,

    // rate sampling
    delivered: u32,
    lost: u32,
    app_limited: u32,
    first_sent_ts: u64,
    delivered_ts: u64,
    rate_delivered: u32,
    rate_interval_us: u32,
    rate_sample_is_app_limited: bool,

    pending_timer: TimerKind,
    timer_at: Option<u64>,
    next_rto_ts: u64,
    srtt: u32,
    rttvar: u32,
    rto: u32,
    keepalive_us: u64,
    rtt_min: WinFilter<u32>,

    // rack
    rack_rtt: u32,
    /// Transmission number of the most recently sent packet delivered so far (RACK.xmit_ts's order).
    rack_xmit: u64,
    /// Transmissions so far (numbers [`SentPacket::xmit`]).
    xmit_count: u64,
    rack_fack: u32,

    /// The congestion controller: congestion window and pacing rate.
    cc: Box<dyn CongestionController>,
    /// Pacing tokens, bytes (negative: a packet went out on the last tokens and is being paid off).
    tb_available: i64,
    /// Sending waited for pacing tokens since the last refill (see `update_pacing_time`).
    pacing_limited: bool,
    tb_last_refill_us: u64,
    pacing_timer_at: Option<u64>,

    // tlp
    tlp_is_retrans: bool,
    tlp_in_flight: bool,
    tlp_permitted: bool,
    /// Probes (tail loss and recovery probes) sent since the last ack that delivered something: each doubles
    /// the next probe timeout.
    probe_backoff: u32,
    /// Payload bytes received from the remote since we last sent a packet or the remote's ack last advanced
    /// (see `Stream::unanswered_probe`).
    rx_since_sent: u64,
    /// Probes sent, for stats.
    probe_count: u32,
    /// An RTT sample was taken (`srtt` may be 0 on a path faster than the clock).
    rtt_sampled: bool,
    /// Zero-window probes sent since the window closed: each doubles the next probe's wait.
    zwp_backoff: u32,
    tlp_end_seq: u32,
    /// Packets whose transmission was decided (TLP) but not yet written out.
    tx_queue: VecDeque<u32>,

    inflight_bytes: usize,
    sacks: u32,
    /// The valid SACK ranges of the last ack (absolute sequence numbers): their packets are acked already,
    /// so the next ack's ranges only visit what lies outside them (under random loss an ack's ranges cover
    /// the whole window, and visiting every packet of every range on every ack cost the sender ~15% of its
    /// CPU at 1% loss).
    sacked_prev: Vec<(u32, u32)>,
    send_rwnd: u32,
    send_wl1: u32,
    send_wl2: u32,

    // send side
    send_ring: ByteRing,
    unsent_offset: u64,
    end_offset: Option<u64>,
    end_packetized: bool,
    outgoing: VecDeque<SentPacket>,
    inflight_list: List,
    retransmit_list: List,

    // receive side
    recv_buf: ByteRing,
    incoming: VecDeque<Option<InPacket>>,
    /// The runs of received slots in `incoming` (absolute sequence numbers `[start, end)`, sorted, disjoint,
    /// never adjacent), kept as packets arrive so an ack's SACK ranges come from here instead of a scan of
    /// the whole out-of-order window on every ack (~10-14% of a receiver's CPU under 1% loss). Runs at or
    /// below the cumulative ack are dropped lazily by `build_ack`.
    incoming_runs: Vec<(u32, u32)>,
    out_of_order: u32,
    pool: Vec<Vec<u8>>,
    messages_out: VecDeque<Pending>,
    destroy_packet: Option<Pending>,
    /// Until when a cleanly closed stream still re-acks retransmissions (see [`StreamConfig::linger`]).
    linger_until: Option<u64>,
    /// When the lingering stream last heard a retransmission (or closed): the remote backs off exponentially,
    /// so the next one is expected about twice that gap later.
    linger_last_heard: u64,

    events: VecDeque<StreamEvent>,

    bytes_rx: u64,
    bytes_tx: u64,
    packets_rx: u64,
    packets_tx: u64,
}

/// A duration in whole microseconds, at least 1 (a zero interval means "off" where one is configured).
fn duration_us(d: Duration) -> u64 {
    d.as_micros().clamp(1, u128::from(u32::MAX) * 1000) as u64
}

fn min_u32(a: u32, b: u32) -> u32 {
    a.min(b)
}

impl Stream {
    /// A new, unconnected stream with local id `local_id` (the id remote peers address it by).
    pub fn new(local_id: u32, config: StreamConfig, now: Instant) -> Self {
        let t = CLOCK_OFFSET_US;
        let mut s = Stream {
            epoch: now,
            now: t,
            local_id,
            remote_id: 0,
            remote_addr: None,
            connected: false,
            relaying: false,
            ending: false,
            ended: false,
            ending_remote: false,
            ended_remote: false,
            destroying: false,
            closed: false,
            ca_state: CaState::Open,
            high_seq: config.initial_seq,
            hit_high_watermark: false,
            rto_count: 0,
            zwp_count: 0,
            fast_recovery_count: 0,
            retransmit_count: 0,
            writes_queued_bytes: 0,
            ack_pending: false,
            heartbeat_pending: false,
            readable_armed: true,
            last_advertised_rwnd: config.recv_window_max,
            reordering_seen: false,
            remote_changing: false,
            seq_on_remote_changed: 0,
            mtu_state: MtuState::Base,
            mtu_probe_wanted: false,
            mtu_probe_count: 0,
            mtu_probe_size: MTU_BASE,
            mtu_max: MTU_MAX,
            link_mtu: MTU_MAX,
            mtu: MTU_BASE,
            seq: config.initial_seq,
            ack: config.initial_ack,
            remote_acked: config.initial_seq,
            remote_ended: 0,
            delivered: 0,
            lost: 0,
            app_limited: u32::MAX,
            first_sent_ts: 0,
            delivered_ts: 0,
            rate_delivered: 0,
            rate_interval_us: 0,
            rate_sample_is_app_limited: true,
            pending_timer: TimerKind::None,
            timer_at: None,
            next_rto_ts: 0,
            srtt: 0,
            rttvar: 0,
            rto: RTO_MIN_US,
            keepalive_us: config.keepalive.map(duration_us).unwrap_or(0),
            rtt_min: WinFilter::new(t, u32::MAX),
            rack_rtt: 0,
            rack_xmit: 0,
            xmit_count: 0,
            rack_fack: 0,
            cc: Box::new(Bbr::default()),
            tb_available: INIT_PACING_RATE,
            pacing_limited: false,
            tb_last_refill_us: t,
            pacing_timer_at: None,
            tlp_is_retrans: false,
            tlp_in_flight: false,
            tlp_permitted: false,
            probe_backoff: 0,
            rx_since_sent: 0,
            probe_count: 0,
            rtt_sampled: false,
            zwp_backoff: 0,
            tlp_end_seq: 0,
            tx_queue: VecDeque::new(),
            inflight_bytes: 0,
            sacks: 0,
            sacked_prev: Vec::new(),
            send_rwnd: DEFAULT_RWND_MAX,
            send_wl1: config.initial_ack,
            send_wl2: config.initial_seq,
            send_ring: ByteRing::default(),
            unsent_offset: 0,
            end_offset: None,
            end_packetized: false,
            outgoing: VecDeque::new(),
            inflight_list: List::default(),
            retransmit_list: List::default(),
            recv_buf: ByteRing::default(),
            incoming: VecDeque::new(),
            incoming_runs: Vec::new(),
            out_of_order: 0,
            pool: Vec::new(),
            messages_out: VecDeque::new(),
            destroy_packet: None,
            linger_until: None,
            linger_last_heard: 0,
            events: VecDeque::new(),
            bytes_rx: 0,
            bytes_tx: 0,
            packets_rx: 0,
            packets_tx: 0,
            config,
        };
        if !s.config.mtu_probing {
            s.mtu_state = MtuState::SearchComplete;
        }
        s.with_cc(|cc, path| cc.on_init(path));
        s
    }

    // ---------------------------------------------------------------- clock

    fn to_us(&self, now: Instant) -> u64 {
        CLOCK_OFFSET_US.saturating_add(
            now.saturating_duration_since(self.epoch)
                .as_micros()
                .min(u128::from(u64::MAX / 2)) as u64,
        )
    }

    fn to_instant(&self, us: u64) -> Instant {
        self.epoch + Duration::from_micros(us.saturating_sub(CLOCK_OFFSET_US))
    }

    fn set_now(&mut self, now: Instant) {
        let t = self.to_us(now);
        if t > self.now {
            self.now = t;
        }
    }

    // ---------------------------------------------------------------- public API

    /// The id remote peers address this stream by.
    pub fn local_id(&self) -> u32 {
        self.local_id
    }

    /// The remote stream id and address, once connected.
    pub fn remote(&self) -> Option<(u32, SocketAddr)> {
        self.remote_addr.map(|a| (self.remote_id, a))
    }

    /// True once [`Stream::connect`] was called.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Connects to stream `remote_id` at `addr`. Data written before is sent from now on; datagrams received
    /// before are acked now (libudx `ack_needed`). Ignored when already connected or closed.
    pub fn connect(&mut self, remote_id: u32, addr: SocketAddr, now: Instant) {
        self.set_now(now);
        if self.connected || self.closed {
            return;
        }
        self.connected = true;
        self.remote_id = remote_id;
        self.remote_addr = Some(addr);
        self.apply_link_mtu();
        if self.keepalive_us > 0 && self.seq == self.remote_acked {
            self.timer_start(TimerKind::Keepalive, self.keepalive_us);
        }
    }

    /// Moves the stream to a new remote (holepunching found a better path). As libudx: new packets go to the
    /// new remote at once, packets already in flight (and their retransmits) keep going to the old one, the MTU
    /// search restarts, and [`StreamEvent::RemoteChanged`] comes once everything sent before is acked.
    pub fn change_remote(&mut self, remote_id: u32, addr: SocketAddr, now: Instant) {
        self.set_now(now);
        if self.closed || self.destroying || !self.connected {
            return;
        }
        self.remote_addr = Some(addr);
        self.remote_id = remote_id;
        let seq_of_change = self.seq;
        if seq_of_change != self.remote_acked {
            self.remote_changing = true;
            self.seq_on_remote_changed = seq_of_change;
        } else {
            self.remote_changing = false;
            self.events.push_back(StreamEvent::RemoteChanged);
        }
        self.reset_mtu_state_machine();
        self.apply_link_mtu();
    }

    /// Moves the stream to `addr`, same remote stream id, at once: the peer's address changed (its network
    /// changed, or a NAT on its path rebound). Unlike [`Stream::change_remote`] nothing waits for the old
    /// address: it is gone, so everything from now on, retransmits included, goes to `addr`. The MTU search
    /// restarts. [`super::Endpoint`] calls it for a stream with migration on
    /// ([`super::Endpoint::set_migration`]) when a packet that [`Stream::is_plausible_from_peer`] arrives from
    /// a new address.
    pub fn migrate(&mut self, addr: SocketAddr, now: Instant) {
        self.set_now(now);
        if self.closed || self.destroying || !self.connected || self.relaying {
            return;
        }
        self.remote_addr = Some(addr);
        // What is in flight went to the old address: it is lost. Its retransmits go to the new one (a packet
        // keeps the destination it was sent to).
        self.mark_inflight_lost();
        for p in &mut self.outgoing {
            p.destination = addr;
        }
        self.reset_mtu_state_machine();
        self.apply_link_mtu();
        // Show the peer at once that we follow it.
        self.heartbeat_pending = true;
    }

    /// Whether `datagram` could come from this stream's peer, judged by what only the peer knows besides
    /// the (random) stream id: a UDX header for this stream whose ack lies within what we sent and what was
    /// acknowledged (`remote_acked..=seq`), and whose sequence number is at or after what we acknowledged,
    /// within 65,536 packets. A migration ([`Stream::migrate`]) needs it; the data itself is authenticated
    /// above UDX (the secret stream).
    pub fn is_plausible_from_peer(&self, datagram: &[u8]) -> bool {
        let Ok((h, _)) = Header::decode(datagram) else {
            return false;
        };
        h.remote_id == self.local_id
            && self.connected
            && !self.closed
            && seq::le(self.remote_acked, h.ack)
            && seq::le(h.ack, self.seq)
            && seq::le(self.ack, h.seq)
            && seq::diff(h.seq, self.ack) < 1 << 16
    }

    /// Sends a HEARTBEAT at the next transmit (the peer acks it): after our own address changed, it shows
    /// the peer where we are now. Nothing for a stream that is not connected, closed or relaying.
    pub fn probe(&mut self, now: Instant) {
        self.set_now(now);
        if self.connected && !self.closed && !self.destroying && !self.relaying {
            self.heartbeat_pending = true;
        }
    }

    /// Caps the MTU search at the link MTU the OS reports for the path (libudx asks `IP_MTU`); at or below
    /// 1200 the search is disabled.
    pub fn set_max_mtu(&mut self, mtu: usize) {
        self.link_mtu = mtu;
        if self.connected {
            self.apply_link_mtu();
        }
    }

    /// Sets the keepalive interval (libudx `udx_stream_set_keepalive`); `None` disables it.
    pub fn set_keepalive(&mut self, interval: Option<Duration>, now: Instant) {
        self.set_now(now);
        self.keepalive_us = interval.map(duration_us).unwrap_or(0);
        if self.closed {
            return;
        }
        if self.remote_acked == self.seq && self.connected {
            if self.keepalive_us > 0 {
                self.timer_start(TimerKind::Keepalive, self.keepalive_us);
            } else if self.pending_timer == TimerKind::Keepalive {
                self.timer_stop();
            }
        }
    }

    /// Copies as much of `data` as the send buffer takes and returns the count; 0 means full (wait for
    /// [`StreamEvent::Writable`]), or the stream was finished or closed. Room is libudx's high watermark
    /// (256 KiB) plus the current send window.
    pub fn write(&mut self, data: &[u8]) -> usize {
        if self.closed || self.destroying || self.ending || self.relaying || data.is_empty() {
            return 0;
        }
        let cap = HIGH_WATERMARK + self.send_window_in_bytes() as usize;
        let room = cap.saturating_sub(self.writes_queued_bytes);
        let n = room.min(data.len());
        if n < data.len() {
            self.hit_high_watermark = true;
        }
        if n == 0 {
            return 0;
        }
        let was_idle = self.writes_queued_bytes == 0;
        if was_idle && self.unsent_offset == self.send_ring.end() && self.outgoing.is_empty() {
            // Nothing retained: restart the ring at the current offset.
            self.send_ring.clear();
        }
        self.send_ring.push(&data[..n]);
        self.writes_queued_bytes += n;
        self.on_write_queued(was_idle);
        n
    }

    /// Appends `n` bytes to the send buffer for the caller to fill in place (a writer that produces its bytes,
    /// e.g. encrypts them, straight into the buffer the packets are sent from, instead of copying them in
    /// through [`Stream::write`]). Returns the space as up to two slices (the second non-empty when it wraps
    /// around the end of the ring), which the caller must overwrite entirely before the next call into the
    /// stream: they hold stale bytes. `None` (and nothing appended) when `n` is 0 or exceeds
    /// [`Stream::write_in_place_capacity`]; in the latter case [`StreamEvent::Writable`] comes once there is
    /// room.
    pub fn write_in_place(&mut self, n: usize) -> Option<(&mut [u8], &mut [u8])> {
        if n == 0 || self.relaying {
            return None;
        }
        if n > self.write_in_place_capacity() {
            self.want_writable();
            return None;
        }
        let was_idle = self.writes_queued_bytes == 0;
        if was_idle && self.unsent_offset == self.send_ring.end() && self.outgoing.is_empty() {
            // Nothing retained: restart the ring at the current offset.
            self.send_ring.clear();
        }
        self.writes_queued_bytes += n;
        self.on_write_queued(was_idle);
        Some(self.send_ring.reserve(n))
    }

    /// How many bytes [`Stream::write_in_place`] takes now: [`Stream::write_capacity`], and at most
    /// [`IN_PLACE_UNSENT_MAX`] bytes not yet sent.
    pub fn write_in_place_capacity(&self) -> usize {
        let unsent = (self.send_ring.end() - self.unsent_offset) as usize;
        self.write_capacity()
            .min(IN_PLACE_UNSENT_MAX.saturating_sub(unsent))
    }

    /// Asks for a [`StreamEvent::Writable`] once the send buffer has room again (a writer that found too
    /// little room for what it wants to write in one piece).
    pub fn want_writable(&mut self) {
        self.hit_high_watermark = true;
    }

    /// Half-closes: END goes out after every byte written so far; nothing can be written after.
    pub fn finish(&mut self) {
        if self.closed || self.destroying || self.ending {
            return;
        }
        self.ending = true;
        self.end_offset = Some(self.send_ring.end());
        let was_idle = self.writes_queued_bytes == 0;
        self.on_write_queued(was_idle);
    }

    fn on_write_queued(&mut self, was_idle: bool) {
        // If an idle, zero-window stream has data queued, send a zero-window probe immediately.
        if was_idle && self.send_rwnd == 0 && self.connected {
            self.heartbeat_pending = true;
            self.zwp_backoff = 0;
            self.timer_start(TimerKind::Zwp, u64::from(self.zwp_timeout()));
        }
    }

    /// Queues an unordered, unreliable datagram (UDX MESSAGE) of at most [`Stream::max_message_len`] bytes.
    pub fn send_message(&mut self, data: &[u8]) -> Result<(), StreamError> {
        if self.closed || self.destroying {
            return Err(StreamError::Closed);
        }
        let Some(destination) = self.remote_addr.filter(|_| self.connected) else {
            return Err(StreamError::NotConnected);
        };
        let max = self.max_message_len();
        if data.len() > max {
            return Err(StreamError::MessageTooLarge {
                len: data.len(),
                max,
            });
        }
        let mut bytes = Vec::with_capacity(HEADER_LEN + data.len());
        self.header(flags::MESSAGE).encode(&mut bytes);
        bytes.extend_from_slice(data);
        self.messages_out.push_back(Pending { bytes, destination });
        Ok(())
    }

    /// The largest message [`Stream::send_message`] takes: the payload size of a packet at the current MTU.
    pub fn max_message_len(&self) -> usize {
        self.max_payload()
    }

    /// Sends DESTROY (when connected) and closes the stream at once; unacked data is dropped. A relay stream
    /// closes without sending anything (libudx).
    pub fn destroy(&mut self) {
        if self.closed {
            return;
        }
        if !self.connected || self.relaying {
            self.close_stream(None);
            return;
        }
        self.destroying = true;
        if let Some(destination) = self.remote_addr {
            let mut bytes = Vec::with_capacity(HEADER_LEN);
            self.header(flags::DESTROY).encode(&mut bytes);
            self.destroy_packet = Some(Pending { bytes, destination });
        }
        self.seq = self.seq.wrapping_add(1);
        self.close_internal(None);
    }

    /// Turns this stream into a blind relay (libudx `udx_stream_relay_to`): from now on the driver hands its
    /// datagrams to [`Stream::relay_datagram`] instead of [`Stream::handle_datagram`] and forwards them to the
    /// destination stream's remote. The driver also destroys this stream when the destination closes (libudx
    /// destroys the streams relaying to a stream that closes). Fails when already relaying or closed.
    pub fn relay_to(&mut self) -> Result<(), StreamError> {
        if self.closed || self.destroying {
            return Err(StreamError::Closed);
        }
        if self.relaying {
            return Err(StreamError::AlreadyRelaying);
        }
        self.relaying = true;
        self.timer_stop();
        Ok(())
    }

    /// True once [`Stream::relay_to`] was called.
    pub fn is_relay(&self) -> bool {
        self.relaying
    }

    /// Relays one datagram received by this relay stream (libudx `relay_packet`): rewrites its destination id in
    /// place to `to_remote_id`, the destination stream's remote id, and returns true when the driver must send it
    /// to the destination stream's remote address. The sequence number is tracked; a DESTROY is forwarded and
    /// then closes this stream ([`StreamError::Reset`]). Returns false for non-UDX datagrams, datagrams not
    /// addressed to this stream, or when this stream is closed or not a relay.
    pub fn relay_datagram(&mut self, now: Instant, datagram: &mut [u8], to_remote_id: u32) -> bool {
        self.set_now(now);
        if !self.relaying || self.closed {
            return false;
        }
        let Ok((h, _)) = Header::decode(datagram) else {
            return false;
        };
        if h.remote_id != self.local_id {
            return false;
        }
        self.bytes_rx += datagram.len() as u64;
        self.packets_rx += 1;
        self.seq = seq::max(self.seq, h.seq);
        if let Some(id) = datagram.get_mut(4..8) {
            id.copy_from_slice(&to_remote_id.to_le_bytes());
        }
        if h.type_flags & flags::DESTROY != 0 {
            self.close_stream(Some(StreamError::Reset));
        }
        true
    }

    /// Copies in-order received bytes into `buf`; returns 0 when nothing is readable now.
    pub fn read(&mut self, buf: &mut [u8]) -> usize {
        let n = self.recv_buf.pop_into(buf);
        self.after_read(n);
        n
    }

    /// The in-order received bytes not yet read, as up to two slices (the second non-empty when they wrap
    /// around the end of the receive ring), for a reader that takes them in place (e.g. decrypts them
    /// straight into its caller's buffer) and then calls [`Stream::consume`].
    pub fn readable(&self) -> (&[u8], &[u8]) {
        self.recv_buf
            .slices(self.recv_buf.start(), self.recv_buf.len())
    }

    /// Drops the first `n` readable bytes (at most all of them), as [`Stream::read`] of `n` bytes would.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.recv_buf.len());
        self.recv_buf.consume(n);
        self.after_read(n);
    }

    /// Asks for a [`StreamEvent::Readable`] at the next bytes that arrive, even though bytes are buffered (a
    /// reader waiting for the rest of a record it reads whole).
    pub fn want_readable(&mut self) {
        self.readable_armed = true;
    }

    fn after_read(&mut self, n: usize) {
        if self.recv_buf.is_empty() {
            self.readable_armed = true;
        }
        // Not in libudx (its window never depends on unread bytes in udx-native): tell a sender stalled on
        // our zero window that there is room again, instead of waiting for its next zero-window probe.
        if n > 0
            && self.connected
            && !self.closed
            && self.last_advertised_rwnd < self.max_payload() as u32
            && self.recv_rwnd() >= self.max_payload() as u32
        {
            self.ack_pending = true;
        }
    }

    /// How many bytes [`Stream::write`] would take now.
    pub fn write_capacity(&self) -> usize {
        if self.closed || self.destroying || self.ending {
            return 0;
        }
        let cap = HIGH_WATERMARK + self.send_window_in_bytes() as usize;
        cap.saturating_sub(self.writes_queued_bytes)
    }

    /// The receive window when nothing is unread ([`StreamConfig::recv_window_max`]).
    pub fn recv_window_max(&self) -> usize {
        self.config.recv_window_max as usize
    }

    /// Bytes waiting to be read.
    pub fn readable_len(&self) -> usize {
        self.recv_buf.len()
    }

    /// Bytes written and not yet acknowledged by the remote.
    pub fn unacked_len(&self) -> usize {
        self.writes_queued_bytes
    }

    /// True once the remote's END was reached (all its bytes received).
    pub fn is_remote_ended(&self) -> bool {
        self.ended_remote
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<StreamEvent> {
        self.events.pop_front()
    }

    /// True once closed and nothing is left to transmit: the driver can drop the stream.
    pub fn is_closed(&self) -> bool {
        self.closed && self.destroy_packet.is_none() && self.linger_until.is_none()
    }

    /// When [`Stream::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return self.linger_until.map(|t| self.to_instant(t));
        }
        let t = match (self.timer_at, self.pacing_timer_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }?;
        Some(self.to_instant(t))
    }

    /// Runs the timers that expired by `now` (RTO, RACK reordering, TLP, zero-window probe, keepalive,
    /// pacing).
    fn handle_timeout_inner(&mut self, now: Instant) {
        self.set_now(now);
        if self.closed {
            if self.linger_until.is_some_and(|t| t <= self.now) {
                self.linger_until = None;
                self.ack_pending = false;
            }
            return;
        }
        if let Some(t) = self.pacing_timer_at {
            if t <= self.now {
                self.pacing_timer_at = None;
                self.update_pacing_time();
            }
        }
        if let Some(t) = self.timer_at {
            if t <= self.now {
                self.timer_at = None;
                match self.pending_timer {
                    TimerKind::None => {}
                    TimerKind::Rto => self.on_rto_timeout(),
                    TimerKind::RackReo => self.on_rack_reo_timeout(),
                    TimerKind::Tlp => self.on_tlp_timeout(),
                    TimerKind::Zwp => self.on_zwp_timeout(),
                    TimerKind::Keepalive => self.on_keepalive_timeout(),
                }
            }
        }
    }

    /// Counters and estimates.
    pub fn stats(&self) -> StreamStats {
        StreamStats {
            srtt: Duration::from_micros(u64::from(self.srtt)),
            rto: Duration::from_micros(u64::from(self.rto)),
            cwnd: self.cc.cwnd(),
            inflight_packets: self.inflight_list.len,
            inflight_bytes: self.inflight_bytes,
            mtu: self.mtu,
            pacing_bytes_per_ms: (self.cc.pacing_rate() / 1000).min(u64::from(u32::MAX)) as u32,
            bandwidth_bytes_per_sec: (self.cc.bandwidth() * self.max_payload() as f64) as u64,
            bandwidth_samples: self.cc.bandwidth_samples(),
            bandwidth_probes: self.cc.probe_phases(),
            bbr_state: self.cc.state(),
            bytes_sent: self.bytes_tx,
            bytes_received: self.bytes_rx,
            packets_sent: self.packets_tx,
            packets_received: self.packets_rx,
            packets_retransmitted: self.retransmit_count,
            rto_count: self.rto_count,
            probes: self.probe_count,
            fast_recoveries: self.fast_recovery_count,
            zero_window_probes: self.zwp_count,
            bytes_read_total: self.recv_buf.start(),
        }
    }

    /// Processes one datagram addressed to this stream (`from` is where it came from). Malformed or foreign
    /// datagrams are ignored; nothing here panics on hostile input.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        self.handle_datagram_inner(now, from, datagram);
        self.debug_check();
    }

    /// Runs the timers that expired by `now` (RTO, RACK reordering, TLP, zero-window probe, keepalive,
    /// pacing, linger).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.handle_timeout_inner(now);
        self.debug_check();
    }

    // ---------------------------------------------------------------- helpers

    /// What the congestion controller sees of the stream now.
    fn cc_path(&self) -> Path {
        Path {
            now: self.now,
            srtt: self.srtt,
            rtt_min: self.rtt_min.get(),
            mss: self.max_payload(),
            delivered: self.delivered,
            delivered_ts: self.delivered_ts,
            inflight: self.inflight_len(),
            ca_state: self.ca_state,
            app_limited: self.app_limited,
        }
    }

    /// Calls the congestion controller with the stream's current state (it may mark the stream
    /// application-limited).
    fn with_cc(&mut self, f: impl FnOnce(&mut dyn CongestionController, &mut Path)) {
        let mut path = self.cc_path();
        f(&mut *self.cc, &mut path);
        self.app_limited = path.app_limited;
    }

    fn max_payload(&self) -> usize {
        let overhead = match self.remote_addr {
            Some(SocketAddr::V6(_)) => IPV6_HEADER_OVERHEAD,
            _ => IPV4_HEADER_OVERHEAD,
        };
        self.mtu - overhead
    }

    fn send_window_in_bytes(&self) -> u32 {
        min_u32(
            self.cc.cwnd().saturating_mul(self.max_payload() as u32),
            self.send_rwnd,
        )
    }

    fn send_rwnd_in_packets(&self) -> u32 {
        if self.send_rwnd == 0 {
            return 0;
        }
        (self.send_rwnd / self.max_payload() as u32).max(1)
    }

    fn send_window_in_packets(&self) -> u32 {
        min_u32(self.cc.cwnd(), self.send_rwnd_in_packets())
    }

    fn inflight_len(&self) -> u32 {
        self.inflight_list.len
    }

    fn retransmit_list_len(&self) -> u32 {
        self.retransmit_list.len
    }

    fn recv_rwnd(&self) -> u32 {
        self.config
            .recv_window_max
            .saturating_sub(self.recv_buf.len().min(u32::MAX as usize) as u32)
    }

    fn header(&mut self, type_flags: u8) -> Header {
        let rwnd = self.recv_rwnd();
        self.last_advertised_rwnd = rwnd;
        Header {
            type_flags,
            data_offset: 0,
            remote_id: self.remote_id,
            recv_window: rwnd,
            seq: self.seq,
            ack: self.ack,
        }
    }

    fn apply_link_mtu(&mut self) {
        let mtu = self.link_mtu;
        if mtu > MTU_MAX {
            self.mtu_max = MTU_MAX;
        } else if mtu <= MTU_BASE {
            self.mtu_max = mtu.max(MTU_BASE);
            self.mtu_state = MtuState::SearchComplete;
        } else {
            self.mtu_max = mtu;
        }
        if !self.config.mtu_probing {
            self.mtu_state = MtuState::SearchComplete;
        }
    }

    fn reset_mtu_state_machine(&mut self) {
        self.mtu = MTU_BASE;
        self.mtu_state = if self.config.mtu_probing {
            MtuState::Base
        } else {
            MtuState::SearchComplete
        };
        self.mtu_probe_count = 0;
        self.mtu_probe_size = MTU_BASE;
        self.mtu_max = MTU_MAX;
        self.mtu_probe_wanted = false;
    }

    /// Cheap structural invariants, checked after every entry point in debug builds (tests, fuzzing).
    fn debug_check(&self) {
        if !cfg!(debug_assertions) || self.closed || self.relaying {
            return;
        }
        let out = self.outgoing.len();
        debug_assert!(
            (self.inflight_list.len + self.retransmit_list.len) as usize <= out,
            "lists {} + {} > outgoing {out}",
            self.inflight_list.len,
            self.retransmit_list.len
        );
        if let Some(front) = self.outgoing.front() {
            debug_assert_eq!(
                front.seq, self.remote_acked,
                "outgoing front is not snd.una"
            );
        }
        debug_assert_eq!(
            self.seq.wrapping_sub(self.remote_acked) as usize,
            out,
            "outgoing does not cover [remote_acked, seq)"
        );
        debug_assert_eq!(
            self.inflight_list.len == 0,
            self.inflight_list.head.is_none()
        );
        debug_assert_eq!(
            self.retransmit_list.len == 0,
            self.retransmit_list.head.is_none()
        );
        debug_assert!(self.unsent_offset <= self.send_ring.end());
        debug_assert!(self.send_ring.start() <= self.unsent_offset);
    }

    fn pkt_index(&self, s: u32) -> Option<usize> {
        let front = self.outgoing.front()?.seq;
        let d = seq::diff(s, front);
        if d < 0 {
            return None;
        }
        let i = d as usize;
        (i < self.outgoing.len()).then_some(i)
    }

    fn pkt(&self, s: u32) -> Option<&SentPacket> {
        self.pkt_index(s).and_then(|i| self.outgoing.get(i))
    }

    fn pkt_mut(&mut self, s: u32) -> Option<&mut SentPacket> {
        let i = self.pkt_index(s)?;
        self.outgoing.get_mut(i)
    }

    fn list(&mut self, id: ListId) -> &mut List {
        match id {
            ListId::Inflight => &mut self.inflight_list,
            ListId::Retransmit => &mut self.retransmit_list,
        }
    }

    fn list_push_tail(&mut self, id: ListId, s: u32) {
        let tail = self.list(id).tail;
        if let Some(p) = self.pkt_mut(s) {
            p.prev = tail;
            p.next = None;
        } else {
            return;
        }
        match tail {
            Some(t) => {
                if let Some(tp) = self.pkt_mut(t) {
                    tp.next = Some(s);
                }
            }
            None => self.list(id).head = Some(s),
        }
        let l = self.list(id);
        l.tail = Some(s);
        l.len += 1;
    }

    fn list_unlink(&mut self, id: ListId, s: u32) {
        let Some((prev, next)) = self.pkt_mut(s).map(|p| {
            let r = (p.prev, p.next);
            p.prev = None;
            p.next = None;
            r
        }) else {
            return;
        };
        match prev {
            Some(pv) => {
                if let Some(pp) = self.pkt_mut(pv) {
                    pp.next = next;
                }
            }
            None => self.list(id).head = next,
        }
        match next {
            Some(nx) => {
                if let Some(np) = self.pkt_mut(nx) {
                    np.prev = prev;
                }
            }
            None => self.list(id).tail = prev,
        }
        let l = self.list(id);
        l.len = l.len.saturating_sub(1);
    }

    // ---------------------------------------------------------------- closing

    fn close_stream(&mut self, error: Option<StreamError>) {
        if self.destroying {
            return;
        }
        self.close_internal(error);
    }

    fn close_internal(&mut self, error: Option<StreamError>) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.connected = false;
        self.events.push_back(StreamEvent::Closed { error });
        self.outgoing.clear();
        self.inflight_list = List::default();
        self.retransmit_list = List::default();
        self.tx_queue.clear();
        self.send_ring.clear();
        self.unsent_offset = self.send_ring.end();
        self.writes_queued_bytes = 0;
        self.inflight_bytes = 0;
        self.incoming.clear();
        self.incoming_runs.clear();
        self.out_of_order = 0;
        self.messages_out.clear();
        self.ack_pending = false;
        self.heartbeat_pending = false;
        self.timer_stop();
        self.pacing_timer_at = None;
    }
}

impl SentPacket {
    fn clone_rate(&self) -> RatePkt {
        RatePkt {
            xmit: self.xmit,
            time_sent: self.time_sent,
            first_sent_ts: self.first_sent_ts,
            delivered_ts: self.delivered_ts,
            delivered: self.delivered,
            is_app_limited: self.is_app_limited,
            retransmitted: self.retransmitted,
        }
    }
}

/// The rate-sampling fields of a packet (copied out to satisfy the borrow checker).
#[derive(Debug, Clone, Copy)]
struct RatePkt {
    xmit: u64,
    time_sent: u64,
    first_sent_ts: u64,
    delivered_ts: u64,
    delivered: u32,
    is_app_limited: bool,
    retransmitted: bool,
}

/// RACK: was the transmission numbered `xmit1` sent after `xmit2`? libudx compares `(time_sent, seq)`, which
/// in whole milliseconds takes a retransmission for older than the new packets sent in the same millisecond
/// before it: on a sub-millisecond path that marks it lost again at once, over and over.
fn rack_sent_after(xmit1: u64, xmit2: u64) -> bool {
    xmit1 > xmit2
}

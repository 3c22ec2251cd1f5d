//! The congestion-controller interface of a [`super::stream::Stream`]: what the stream tells its controller
//! (sends, acks with their delivery-rate sample, timeouts, recovery) and what it asks of it (congestion window,
//! pacing rate). BBR v1 ([`super::bbr::Bbr`], as libudx) is the one implementation.

use std::fmt;

use super::stream::CaState;

/// A delivery-rate sample, built while one ack is processed (libudx `udx_rate_sample_t`).
#[derive(Debug, Clone, Copy)]
pub(super) struct RateSample {
    pub(super) prior_timestamp: u64,
    pub(super) prior_delivered: u32,
    pub(super) delivered: i64,
    /// The sample's interval, microseconds (-1: none).
    pub(super) interval_us: i64,
    /// RTT of the sample, microseconds (-1: none).
    pub(super) rtt_us: i64,
    pub(super) losses: i64,
    pub(super) acked_sacked: u32,
    /// Transmission number of the most recently sent packet of the sample.
    pub(super) xmit: u64,
    pub(super) is_app_limited: bool,
    pub(super) is_retrans: bool,
}

impl RateSample {
    pub(super) fn new() -> Self {
        RateSample {
            prior_timestamp: 0,
            prior_delivered: 0,
            delivered: 0,
            interval_us: 0,
            rtt_us: -1,
            losses: 0,
            acked_sacked: 0,
            xmit: 0,
            is_app_limited: false,
            is_retrans: false,
        }
    }
}

/// What a controller sees of its stream when called: a snapshot, except `app_limited`, which it may set.
#[derive(Debug, Clone, Copy)]
pub(super) struct Path {
    /// The stream's clock, in microseconds.
    pub(super) now: u64,
    /// Smoothed RTT, microseconds (0 before the first sample).
    pub(super) srtt: u32,
    /// Windowed minimum RTT, microseconds.
    pub(super) rtt_min: u32,
    /// Payload bytes per packet.
    pub(super) mss: usize,
    /// Packets delivered so far.
    pub(super) delivered: u32,
    /// When the last delivery was acknowledged.
    pub(super) delivered_ts: u64,
    /// Packets in flight.
    pub(super) inflight: u32,
    /// Loss-recovery state.
    pub(super) ca_state: CaState,
    /// The delivered count at which the stream stops being application-limited (0: it is not): the
    /// controller may mark the stream application-limited (BBR's probe-RTT does).
    pub(super) app_limited: u32,
}

/// A congestion controller: windows in packets, pacing in bytes per second, time in microseconds.
pub(super) trait CongestionController: fmt::Debug + Send {
    /// Sets up for a new stream (after the stream's own state is initialised).
    fn on_init(&mut self, path: &mut Path);
    /// A packet goes out while nothing was in flight (the stream restarts after idle).
    fn on_sent(&mut self, path: &mut Path);
    /// An ack delivered (or SACKed, or revealed lost) packets: `rs` samples the delivery rate.
    fn on_ack(&mut self, path: &mut Path, rs: &RateSample);
    /// The retransmission timer fired: everything in flight counts as lost.
    fn on_loss(&mut self, path: &mut Path);
    /// Fast recovery ended (the cumulative ack passed the recovery point).
    fn on_recovery_exit(&mut self, path: &mut Path);
    /// Packets that may be in flight.
    fn cwnd(&self) -> u32;
    /// Bytes that may be sent per second.
    fn pacing_rate(&self) -> u64;
    /// The bottleneck bandwidth estimate, packets per second.
    fn bandwidth(&self) -> f64;
    /// Delivery-rate samples the bandwidth estimate took so far (for stats).
    fn bandwidth_samples(&self) -> u64;
    /// Bandwidth probes (BBR: probe-bw phases at a pacing gain above 1) so far (for stats).
    fn probe_phases(&self) -> u64;
    /// A number for the controller's state, for stats (BBR: 0 startup, 1 drain, 2 probe-bw, 3 probe-rtt).
    fn state(&self) -> u8;
}

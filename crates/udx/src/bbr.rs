//! BBR (v1) congestion control as libudx `udx_bbr.c` runs it, behind the [`CongestionController`] interface:
//! bandwidth in packets per second, time in microseconds (libudx: milliseconds, see below), cwnd in packets,
//! pacing in bytes per second.
//!
//! libudx keeps BBR's time in whole milliseconds. On a path whose round trip is well below a millisecond (a
//! LAN, a veth, loopback) that rounds every RTT to 0 or 1 ms: delivery-rate samples over intervals that round
//! to 0 are discarded, the 1.25x probing phase (one min RTT long) lasts one clock tick, and after a stall the
//! bandwidth estimate climbs back slowly. Microseconds keep the samples and the gain cycle at the path's real
//! time scale. The window is the exception: it is sized for at least [`BDP_MIN_RTT_US`] of RTT, the time
//! scale of the drivers' timers and event loops (a window of a 0.1 ms BDP would drain whenever a peer's process
//! is descheduled for a moment); on slower paths that changes nothing.

use super::cc::{CongestionController, Path, RateSample};
use super::packet::seq;
use super::stream::CaState;
use super::win_filter::WinFilter;

const CYCLE_LEN: u8 = 8;
const BW_FILTER_CYCLES: u64 = CYCLE_LEN as u64 + 2;
const MIN_RTT_INTERVAL_US: u64 = 10_000_000;
const PROBE_RTT_MODE_US: u64 = 200_000;
/// The shortest RTT the window (bandwidth-delay product) is sized for (see the module documentation).
const BDP_MIN_RTT_US: u32 = 1_000;
/// The RTT taken before any sample (libudx uses 1 ms for its initial pacing rate).
const INIT_RTT_US: u32 = 1_000;
const PACING_MARGIN: f64 = 0.99;
const HIGH_GAIN: f64 = 2.88539;
const DRAIN_GAIN: f64 = 1.0 / 2.88539;
const CWND_GAIN: f64 = 2.0;
const PACING_GAINS: [f64; CYCLE_LEN as usize] = [1.25, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
const CWND_MIN_TARGET: u32 = 4;
const FULL_BW_THRESH: f64 = 1.25;
const FULL_BW_COUNT: u8 = 3;
const EXTRA_ACKED_GAIN: f64 = 1.0;
const EXTRA_ACKED_WIN_RTTS: u8 = 5;
/// The longest burst of acks the window makes room for (seconds of the bandwidth estimate).
const EXTRA_ACKED_MAX_SECS: f64 = 0.1;
/// libudx's initial congestion window, packets.
const INITIAL_CWND: u32 = 10;
/// libudx's initial slow-start threshold.
const INITIAL_SSTHRESH: u32 = 0xffff;

/// BBR state machine modes (numbered as libudx).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum BbrState {
    #[default]
    Startup = 0,
    Drain = 1,
    ProbeBw = 2,
    ProbeRtt = 3,
}

/// BBR's state (libudx `stream->bbr`, plus the stream's `cwnd`, `ssthresh` and pacing rate).
#[derive(Debug, Clone)]
pub(super) struct Bbr {
    cwnd: u32,
    ssthresh: u32,
    /// Pacing rate, bytes per second.
    pacing_rate: u64,
    /// Windowed minimum RTT, microseconds.
    min_rtt_us: u32,
    min_rtt_stamp: u64,
    probe_rtt_done_time: u64,
    bw: WinFilter<f64>,
    rtt_count: u32,
    next_rtt_delivered: u32,
    cycle_timestamp: u64,
    state: BbrState,
    prev_ca_state: CaState,
    use_packet_conservation: bool,
    round_start: bool,
    idle_restart: bool,
    probe_rtt_round_done: bool,
    pacing_gain: f64,
    cwnd_gain: f64,
    full_bw_reached: bool,
    full_bw_count: u8,
    cycle_index: u8,
    has_seen_rtt: bool,
    prior_cwnd: u32,
    full_bw: f64,
    ack_epoch_start: u64,
    extra_acked: [u16; 2],
    ack_epoch_acked: u32,
    extra_acked_win_rtts: u8,
    extra_acked_win_index: usize,
    /// Delivery-rate samples that reached the bandwidth filter (stats).
    bw_samples: u64,
    /// Probe-bw phases at 1.25x entered (stats).
    probe_phases: u64,
}

impl Default for Bbr {
    fn default() -> Self {
        Bbr {
            cwnd: INITIAL_CWND,
            ssthresh: INITIAL_SSTHRESH,
            pacing_rate: 0,
            min_rtt_us: u32::MAX,
            min_rtt_stamp: 0,
            probe_rtt_done_time: 0,
            bw: WinFilter::new(0, 0.0),
            rtt_count: 0,
            next_rtt_delivered: 0,
            cycle_timestamp: 0,
            state: BbrState::Startup,
            prev_ca_state: CaState::Open,
            use_packet_conservation: false,
            round_start: false,
            idle_restart: false,
            probe_rtt_round_done: false,
            pacing_gain: HIGH_GAIN,
            cwnd_gain: HIGH_GAIN,
            full_bw_reached: false,
            full_bw_count: 0,
            cycle_index: 0,
            has_seen_rtt: false,
            prior_cwnd: 0,
            full_bw: 0.0,
            ack_epoch_start: 0,
            extra_acked: [0; 2],
            ack_epoch_acked: 0,
            extra_acked_win_rtts: 0,
            extra_acked_win_index: 0,
            bw_samples: 0,
            probe_phases: 0,
        }
    }
}

fn time_delta_us(t1: u64, t0: u64) -> u64 {
    t1.saturating_sub(t0)
}

impl Bbr {
    fn max_bw(&self) -> f64 {
        self.bw.get()
    }

    fn extra_acked(&self) -> u32 {
        u32::from(self.extra_acked[0].max(self.extra_acked[1]))
    }

    /// Bytes per second for a bandwidth in packets per second.
    fn bw_to_pacing_rate(p: &Path, bw: f64, gain: f64) -> u64 {
        let mss = p.mss as f64;
        let bps = (bw * mss * gain * PACING_MARGIN) as u64;
        bps.max(1)
    }

    fn init_pacing_rate_from_rtt(&mut self, p: &Path) {
        let srtt = if p.srtt > 0 {
            self.has_seen_rtt = true;
            p.srtt
        } else {
            INIT_RTT_US
        };
        let bw = f64::from(self.cwnd) * 1e6 / f64::from(srtt);
        self.pacing_rate = Self::bw_to_pacing_rate(p, bw, HIGH_GAIN);
    }

    fn set_pacing_rate(&mut self, p: &Path, bw: f64, gain: f64) {
        let rate = Self::bw_to_pacing_rate(p, bw, gain);
        if !self.has_seen_rtt && p.srtt > 0 {
            self.init_pacing_rate_from_rtt(p);
        }
        if self.full_bw_reached || rate > self.pacing_rate {
            self.pacing_rate = rate;
        }
    }

    fn save_cwnd(&mut self) {
        if self.prev_ca_state < CaState::Recovery && self.state != BbrState::ProbeRtt {
            self.prior_cwnd = self.cwnd;
        } else {
            self.prior_cwnd = self.prior_cwnd.max(self.cwnd);
        }
    }

    fn bdp(&self, bw: f64, gain: f64) -> u32 {
        if self.min_rtt_us == u32::MAX {
            return 10;
        }
        let rtt = self.min_rtt_us.max(BDP_MIN_RTT_US);
        (bw * f64::from(rtt) / 1e6 * gain) as u32
    }

    fn ack_aggregation_cwnd(&self) -> u32 {
        if EXTRA_ACKED_GAIN > 0.0 && self.full_bw_reached {
            let max_aggr = (self.max_bw() * EXTRA_ACKED_MAX_SECS) as u32;
            let aggr = (EXTRA_ACKED_GAIN * f64::from(self.extra_acked())) as u32;
            return aggr.min(max_aggr);
        }
        0
    }

    fn set_cwnd_to_recover_or_restore(
        &mut self,
        p: &Path,
        rs: &RateSample,
        acked: u32,
    ) -> (bool, u32) {
        let prev = self.prev_ca_state;
        let state = p.ca_state;
        let mut cwnd = self.cwnd;
        // Losses cut the window (Linux BBR v1, libudx), but once the bottleneck bandwidth is known, never below
        // one bandwidth-delay product plus the ack aggregation allowance: BBR's model does not depend on loss,
        // and random (non-congestive) loss would otherwise shrink the window far below what the path carries,
        // over and over. Congestion shows in the bandwidth estimate and the RTT, which set this floor.
        let floor = if self.full_bw_reached {
            self.bdp(self.max_bw(), 1.0)
                .saturating_add(self.ack_aggregation_cwnd())
                .max(CWND_MIN_TARGET)
        } else {
            1
        };
        if rs.losses > 0 {
            cwnd = (i64::from(cwnd) - rs.losses).max(i64::from(floor.min(cwnd))) as u32;
        }
        if state == CaState::Recovery && prev != CaState::Recovery {
            // Linux saves the window on entering recovery (`bbr_ssthresh`) to restore it on the way out;
            // libudx does not, and leaves recovery with a window cut to the losses and the conservation.
            self.save_cwnd();
            self.use_packet_conservation = true;
            self.next_rtt_delivered = p.delivered;
            cwnd = (p.inflight + acked).max(floor);
        } else if prev >= CaState::Recovery && state == CaState::Open {
            cwnd = cwnd.max(self.prior_cwnd);
            self.use_packet_conservation = false;
        }
        self.prev_ca_state = state;
        if self.use_packet_conservation {
            return (true, cwnd.max(p.inflight + acked));
        }
        (false, cwnd)
    }

    fn set_cwnd(&mut self, p: &Path, rs: &RateSample, acked: u32, bw: f64, gain: f64) {
        let mut cwnd = self.cwnd;
        if acked > 0 {
            let (done, c) = self.set_cwnd_to_recover_or_restore(p, rs, acked);
            cwnd = c;
            if !done {
                let target = self
                    .bdp(bw, gain)
                    .saturating_add(self.ack_aggregation_cwnd());
                if self.full_bw_reached {
                    cwnd = cwnd.saturating_add(acked).min(target);
                } else if cwnd < target || p.delivered < 10 {
                    cwnd = cwnd.saturating_add(acked);
                }
                cwnd = cwnd.max(CWND_MIN_TARGET);
            }
        }
        self.cwnd = cwnd;
        if self.state == BbrState::ProbeRtt {
            self.cwnd = self.cwnd.min(CWND_MIN_TARGET);
        }
    }

    fn is_next_cycle_phase(&self, p: &Path, rs: &RateSample) -> bool {
        let is_full_length =
            time_delta_us(p.delivered_ts, self.cycle_timestamp) > u64::from(self.min_rtt_us);
        let gain = self.pacing_gain;
        if gain == 1.0 {
            return is_full_length;
        }
        let inflight = p.inflight;
        let bw = self.max_bw();
        if gain > 1.0 {
            return is_full_length && (rs.losses > 0 || inflight > self.bdp(bw, gain));
        }
        is_full_length || inflight <= self.bdp(bw, 1.0)
    }

    fn advance_cycle_phase(&mut self, p: &Path) {
        self.cycle_index = (self.cycle_index + 1) & (CYCLE_LEN - 1);
        if self.cycle_index == 0 {
            self.probe_phases = self.probe_phases.wrapping_add(1);
        }
        self.cycle_timestamp = p.delivered_ts;
    }

    fn reset_probe_bw_mode(&mut self, p: &Path) {
        self.state = BbrState::ProbeBw;
        self.cycle_index = 3;
        self.advance_cycle_phase(p);
    }

    fn reset_mode(&mut self, p: &Path) {
        if !self.full_bw_reached {
            self.state = BbrState::Startup;
        } else {
            self.reset_probe_bw_mode(p);
        }
    }

    fn update_bw(&mut self, p: &Path, rs: &RateSample) {
        self.round_start = false;
        if rs.delivered < 0 || rs.interval_us <= 0 {
            return;
        }
        self.bw_samples = self.bw_samples.wrapping_add(1);
        if seq::diff(rs.prior_delivered, self.next_rtt_delivered) >= 0 {
            self.next_rtt_delivered = p.delivered;
            self.rtt_count = self.rtt_count.wrapping_add(1);
            self.round_start = true;
            self.use_packet_conservation = false;
        }
        let bw = rs.delivered as f64 * 1e6 / rs.interval_us as f64;
        if !rs.is_app_limited || bw >= self.max_bw() {
            let t = u64::from(self.rtt_count);
            self.bw.apply_max(BW_FILTER_CYCLES, t, bw);
        }
    }

    fn update_ack_aggregation(&mut self, p: &Path, rs: &RateSample) {
        if rs.acked_sacked == 0 || rs.delivered < 0 || rs.interval_us <= 0 {
            return;
        }
        if self.round_start {
            self.extra_acked_win_rtts = self.extra_acked_win_rtts.saturating_add(1);
            if self.extra_acked_win_rtts >= EXTRA_ACKED_WIN_RTTS {
                self.extra_acked_win_rtts = 0;
                self.extra_acked_win_index = 1 - self.extra_acked_win_index.min(1);
                self.extra_acked[self.extra_acked_win_index] = 0;
            }
        }
        let epoch_us = time_delta_us(p.delivered_ts, self.ack_epoch_start);
        let mut expected = (self.max_bw() * epoch_us as f64 / 1e6) as u32;
        if self.ack_epoch_acked <= expected
            || u64::from(self.ack_epoch_acked) + u64::from(rs.acked_sacked) >= u64::from(u32::MAX)
        {
            self.ack_epoch_acked = 0;
            self.ack_epoch_start = p.delivered_ts;
            expected = 0;
        }
        self.ack_epoch_acked = self.ack_epoch_acked.saturating_add(rs.acked_sacked);
        let extra = self.ack_epoch_acked.wrapping_sub(expected).min(self.cwnd);
        let idx = self.extra_acked_win_index.min(1);
        if extra > u32::from(self.extra_acked[idx]) {
            self.extra_acked[idx] = extra as u16;
        }
    }

    fn check_full_bw_reached(&mut self, rs: &RateSample) {
        if self.full_bw_reached || !self.round_start || rs.is_app_limited {
            return;
        }
        let thresh = self.full_bw * FULL_BW_THRESH;
        if self.max_bw() >= thresh {
            self.full_bw = self.max_bw();
            self.full_bw_count = 0;
            return;
        }
        self.full_bw_count = self.full_bw_count.saturating_add(1);
        self.full_bw_reached = self.full_bw_count >= FULL_BW_COUNT;
    }

    fn check_drain(&mut self, p: &Path) {
        if self.state == BbrState::Startup && self.full_bw_reached {
            self.state = BbrState::Drain;
            self.ssthresh = self.bdp(self.max_bw(), 1.0);
        }
        if self.state == BbrState::Drain && p.inflight <= self.bdp(self.max_bw(), 1.0) {
            self.reset_probe_bw_mode(p);
        }
    }

    fn check_probe_rtt_done(&mut self, p: &Path, now: u64) {
        if !(self.probe_rtt_done_time != 0 && now > self.probe_rtt_done_time) {
            return;
        }
        self.min_rtt_stamp = now;
        self.cwnd = self.cwnd.max(self.prior_cwnd);
        self.reset_mode(p);
    }

    fn update_min_rtt(&mut self, p: &mut Path, rs: &RateSample) {
        let now = p.now;
        let filter_expired = now > self.min_rtt_stamp + MIN_RTT_INTERVAL_US;
        if rs.rtt_us >= 0 && (rs.rtt_us < i64::from(self.min_rtt_us) || filter_expired) {
            self.min_rtt_us = if rs.rtt_us > 0 {
                rs.rtt_us.min(i64::from(u32::MAX - 1)) as u32
            } else {
                1
            };
            self.min_rtt_stamp = now;
        }
        if filter_expired && !self.idle_restart && self.state != BbrState::ProbeRtt {
            self.state = BbrState::ProbeRtt;
            self.save_cwnd();
            self.probe_rtt_done_time = 0;
        }
        if self.state == BbrState::ProbeRtt {
            let v = p.delivered.wrapping_add(p.inflight);
            p.app_limited = if v == 0 { 1 } else { v };
            if self.probe_rtt_done_time == 0 && p.inflight <= CWND_MIN_TARGET {
                self.probe_rtt_done_time = now + PROBE_RTT_MODE_US;
                self.probe_rtt_round_done = false;
                self.next_rtt_delivered = p.delivered;
            } else if self.probe_rtt_done_time != 0 {
                if self.round_start {
                    self.probe_rtt_round_done = true;
                }
                if self.probe_rtt_round_done {
                    self.check_probe_rtt_done(p, now);
                }
            }
        }
        if rs.delivered > 0 {
            self.idle_restart = false;
        }
    }

    fn update_gains(&mut self) {
        let (pg, cg) = match self.state {
            BbrState::Startup => (HIGH_GAIN, HIGH_GAIN),
            BbrState::Drain => (DRAIN_GAIN, HIGH_GAIN),
            BbrState::ProbeBw => (
                PACING_GAINS[usize::from(self.cycle_index & (CYCLE_LEN - 1))],
                CWND_GAIN,
            ),
            BbrState::ProbeRtt => (1.0, 1.0),
        };
        self.pacing_gain = pg;
        self.cwnd_gain = cg;
    }
}

impl CongestionController for Bbr {
    /// libudx `bbr_init`.
    fn on_init(&mut self, p: &mut Path) {
        let cwnd = self.cwnd;
        *self = Bbr {
            cwnd,
            ..Bbr::default()
        };
        self.ssthresh = INITIAL_SSTHRESH;
        self.next_rtt_delivered = p.delivered;
        self.min_rtt_us = p.rtt_min;
        self.min_rtt_stamp = p.now;
        self.init_pacing_rate_from_rtt(p);
        self.ack_epoch_start = p.now;
    }

    /// libudx `bbr_on_transmit_start`.
    fn on_sent(&mut self, p: &mut Path) {
        if p.app_limited != 0 {
            let now = p.now;
            self.idle_restart = true;
            self.ack_epoch_start = now;
            self.ack_epoch_acked = 0;
            match self.state {
                BbrState::ProbeBw => {
                    let bw = self.max_bw();
                    self.set_pacing_rate(p, bw, 1.0);
                }
                BbrState::ProbeRtt => self.check_probe_rtt_done(p, now),
                _ => {}
            }
        }
    }

    /// libudx `bbr_main`.
    fn on_ack(&mut self, p: &mut Path, rs: &RateSample) {
        self.update_bw(p, rs);
        self.update_ack_aggregation(p, rs);
        if self.state == BbrState::ProbeBw && self.is_next_cycle_phase(p, rs) {
            self.advance_cycle_phase(p);
        }
        self.check_full_bw_reached(rs);
        self.check_drain(p);
        self.update_min_rtt(p, rs);
        self.update_gains();

        let bw = self.max_bw();
        let (pg, cg) = (self.pacing_gain, self.cwnd_gain);
        self.set_pacing_rate(p, bw, pg);
        self.set_cwnd(p, rs, rs.acked_sacked, bw, cg);
    }

    /// A dummy loss sample on RTO (libudx `bbr_on_rto`); the window is saved for after the RTO recovery, as
    /// Linux does.
    fn on_loss(&mut self, _p: &mut Path) {
        self.save_cwnd();
        self.prev_ca_state = CaState::Loss;
        self.full_bw = 0.0;
        self.round_start = true;
    }

    /// libudx sets cwnd = ssthresh here, which BBR's drain left at bw * min_rtt (0 on a sub-millisecond path):
    /// every recovery from a random loss would cut the window to one old BDP. BBR as Linux runs it (whose
    /// recovery exit leaves the window to BBR) restores the window saved on entering recovery instead, which
    /// the next ack does (`set_cwnd_to_recover_or_restore`); here only BBR's floor of 4 is kept.
    fn on_recovery_exit(&mut self, _p: &mut Path) {
        self.cwnd = self.cwnd.max(CWND_MIN_TARGET);
    }

    fn cwnd(&self) -> u32 {
        self.cwnd
    }

    fn pacing_rate(&self) -> u64 {
        self.pacing_rate
    }

    fn bandwidth(&self) -> f64 {
        self.max_bw()
    }

    fn state(&self) -> u8 {
        self.state as u8
    }

    fn bandwidth_samples(&self) -> u64 {
        self.bw_samples
    }

    fn probe_phases(&self) -> u64 {
        self.probe_phases
    }
}

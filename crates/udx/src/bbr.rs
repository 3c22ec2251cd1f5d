//! Delivery-rate sampling and BBR (v1) congestion control as libudx `udx_rate.c` and `udx_bbr.c` run them:
//! bandwidth in packets per millisecond, time in milliseconds, cwnd in packets, pacing in bytes per
//! millisecond.

use super::packet::seq;
use super::stream::{rack_sent_after, CaState, RatePkt, Stream};
use super::win_filter::WinFilter;

const CYCLE_LEN: u8 = 8;
const BW_FILTER_CYCLES: u64 = CYCLE_LEN as u64 + 2;
const MIN_RTT_INTERVAL_MS: u64 = 10_000;
const PROBE_RTT_MODE_MS: u64 = 200;
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
const EXTRA_ACKED_MAX_MS: f64 = 100.0;

/// BBR state machine modes (numbered as libudx).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum BbrState {
    #[default]
    Startup = 0,
    Drain = 1,
    ProbeBw = 2,
    ProbeRtt = 3,
}

/// A delivery-rate sample, built while one ack is processed (libudx `udx_rate_sample_t`).
#[derive(Debug, Clone, Copy)]
pub(super) struct RateSample {
    pub(super) prior_timestamp: u64,
    pub(super) prior_delivered: u32,
    pub(super) delivered: i64,
    pub(super) interval_ms: i64,
    pub(super) rtt_ms: i64,
    pub(super) losses: i64,
    pub(super) acked_sacked: u32,
    pub(super) seq: u32,
    pub(super) is_app_limited: bool,
    pub(super) is_retrans: bool,
}

impl RateSample {
    pub(super) fn new() -> Self {
        RateSample {
            prior_timestamp: 0,
            prior_delivered: 0,
            delivered: 0,
            interval_ms: 0,
            rtt_ms: -1,
            losses: 0,
            acked_sacked: 0,
            seq: 0,
            is_app_limited: false,
            is_retrans: false,
        }
    }
}

/// BBR variables (libudx `stream->bbr`).
#[derive(Debug, Clone)]
pub(super) struct Bbr {
    pub(super) min_rtt_ms: u32,
    min_rtt_stamp: u64,
    probe_rtt_done_time: u64,
    bw: WinFilter<f64>,
    rtt_count: u32,
    next_rtt_delivered: u32,
    cycle_timestamp: u64,
    pub(super) state: BbrState,
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
}

impl Default for Bbr {
    fn default() -> Self {
        Bbr {
            min_rtt_ms: u32::MAX,
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
        }
    }
}

fn time_delta_ms(t1: u64, t0: u64) -> u64 {
    t1.saturating_sub(t0)
}

impl Stream {
    // ------------------------------------------------------------ rate sampling (udx_rate.c)

    pub(super) fn rate_pkt_delivered(&mut self, pkt: &RatePkt, rs: &mut RateSample) {
        if pkt.delivered_ts == 0 {
            return;
        }
        if rs.prior_delivered == 0
            || rack_sent_after(pkt.time_sent, pkt.seq, self.first_sent_ts, rs.seq)
        {
            rs.prior_delivered = pkt.delivered;
            rs.prior_timestamp = pkt.delivered_ts;
            rs.is_app_limited = pkt.is_app_limited;
            rs.is_retrans = pkt.retransmitted;
            rs.seq = pkt.seq;
            self.first_sent_ts = pkt.time_sent;
            rs.interval_ms = time_delta_ms(self.first_sent_ts, pkt.first_sent_ts) as i64;
        }
    }

    pub(super) fn rate_gen(&mut self, delivered: u32, lost: u32, rs: &mut RateSample) {
        let now = self.now;
        if self.app_limited != 0 && seq::diff(self.delivered, self.app_limited) > 0 {
            self.app_limited = 0;
        }
        if delivered > 0 {
            self.delivered_ts = now;
        }
        rs.acked_sacked = delivered;
        rs.losses = i64::from(lost);
        if rs.prior_timestamp == 0 {
            rs.delivered = -1;
            rs.interval_ms = -1;
            return;
        }
        rs.delivered = i64::from(self.delivered.wrapping_sub(rs.prior_delivered));
        let snd_ms = rs.interval_ms.max(0) as u64;
        let ack_ms = time_delta_ms(now, rs.prior_timestamp);
        rs.interval_ms = snd_ms.max(ack_ms) as i64;
        if rs.interval_ms < i64::from(self.rtt_min.get()) {
            rs.interval_ms = -1;
            return;
        }
        if !rs.is_app_limited
            || (rs.delivered as u64).saturating_mul(u64::from(self.rate_interval_ms))
                >= u64::from(self.rate_delivered).saturating_mul(rs.interval_ms as u64)
        {
            self.rate_delivered = rs.delivered as u32;
            self.rate_interval_ms = rs.interval_ms.min(i64::from(u32::MAX)) as u32;
            self.rate_sample_is_app_limited = rs.is_app_limited;
        }
    }

    pub(super) fn rate_check_app_limited(&mut self) {
        if self.writes_queued_bytes < self.max_payload()
            && self.inflight_len() < self.cwnd
            && self.retransmit_list_len() == 0
        {
            let v = self.delivered.wrapping_add(self.inflight_len());
            self.app_limited = if v == 0 { 1 } else { v };
        }
    }

    // ------------------------------------------------------------ BBR (udx_bbr.c)

    fn bbr_max_bw(&self) -> f64 {
        self.bbr.bw.get()
    }

    pub(super) fn bbr_bw(&self) -> f64 {
        self.bbr_max_bw()
    }

    fn bbr_extra_acked(&self) -> u32 {
        u32::from(self.bbr.extra_acked[0].max(self.bbr.extra_acked[1]))
    }

    fn bbr_bw_to_pacing_rate(&self, bw: f64, gain: f64) -> u64 {
        let mss = self.max_payload() as f64;
        let bpms = (bw * mss * gain * PACING_MARGIN) as u64;
        bpms.max(1)
    }

    fn bbr_init_pacing_rate_from_rtt(&mut self) {
        let srtt = if self.srtt > 0 {
            self.bbr.has_seen_rtt = true;
            self.srtt
        } else {
            1
        };
        let bw = f64::from(self.cwnd) / f64::from(srtt);
        self.pacing_bytes_per_ms = self
            .bbr_bw_to_pacing_rate(bw, HIGH_GAIN)
            .min(u64::from(u32::MAX)) as u32;
    }

    fn bbr_set_pacing_rate(&mut self, bw: f64, gain: f64) {
        let rate = self
            .bbr_bw_to_pacing_rate(bw, gain)
            .min(u64::from(u32::MAX)) as u32;
        if !self.bbr.has_seen_rtt && self.srtt > 0 {
            self.bbr_init_pacing_rate_from_rtt();
        }
        if self.bbr.full_bw_reached || rate > self.pacing_bytes_per_ms {
            self.pacing_bytes_per_ms = rate;
        }
    }

    fn bbr_save_cwnd(&mut self) {
        if self.bbr.prev_ca_state < CaState::Recovery && self.bbr.state != BbrState::ProbeRtt {
            self.bbr.prior_cwnd = self.cwnd;
        } else {
            self.bbr.prior_cwnd = self.bbr.prior_cwnd.max(self.cwnd);
        }
    }

    pub(super) fn bbr_on_transmit_start(&mut self, now: u64) {
        if self.app_limited != 0 {
            self.bbr.idle_restart = true;
            self.bbr.ack_epoch_start = now;
            self.bbr.ack_epoch_acked = 0;
            match self.bbr.state {
                BbrState::ProbeBw => {
                    let bw = self.bbr_bw();
                    self.bbr_set_pacing_rate(bw, 1.0);
                }
                BbrState::ProbeRtt => self.bbr_check_probe_rtt_done(now),
                _ => {}
            }
        }
    }

    fn bbr_bdp(&self, bw: f64, gain: f64) -> u32 {
        if self.bbr.min_rtt_ms == u32::MAX {
            return 10;
        }
        (bw * f64::from(self.bbr.min_rtt_ms) * gain) as u32
    }

    fn bbr_ack_aggregation_cwnd(&self) -> u32 {
        if EXTRA_ACKED_GAIN > 0.0 && self.bbr.full_bw_reached {
            let max_aggr = (self.bbr_bw() * EXTRA_ACKED_MAX_MS) as u32;
            let aggr = (EXTRA_ACKED_GAIN * f64::from(self.bbr_extra_acked())) as u32;
            return aggr.min(max_aggr);
        }
        0
    }

    fn bbr_set_cwnd_to_recover_or_restore(&mut self, rs: &RateSample, acked: u32) -> (bool, u32) {
        let prev = self.bbr.prev_ca_state;
        let state = self.ca_state;
        let mut cwnd = self.cwnd;
        if rs.losses > 0 {
            cwnd = (i64::from(cwnd) - rs.losses).max(1) as u32;
        }
        if state == CaState::Recovery && prev != CaState::Recovery {
            self.bbr.use_packet_conservation = true;
            self.bbr.next_rtt_delivered = self.delivered;
            cwnd = self.inflight_len() + acked;
        } else if prev >= CaState::Recovery && state == CaState::Open {
            cwnd = cwnd.max(self.bbr.prior_cwnd);
            self.bbr.use_packet_conservation = false;
        }
        self.bbr.prev_ca_state = state;
        if self.bbr.use_packet_conservation {
            return (true, cwnd.max(self.inflight_len() + acked));
        }
        (false, cwnd)
    }

    fn bbr_set_cwnd(&mut self, rs: &RateSample, acked: u32, bw: f64, gain: f64) {
        let mut cwnd = self.cwnd;
        if acked > 0 {
            let (done, c) = self.bbr_set_cwnd_to_recover_or_restore(rs, acked);
            cwnd = c;
            if !done {
                let target = self
                    .bbr_bdp(bw, gain)
                    .saturating_add(self.bbr_ack_aggregation_cwnd());
                if self.bbr.full_bw_reached {
                    cwnd = cwnd.saturating_add(acked).min(target);
                } else if cwnd < target || self.delivered < 10 {
                    cwnd = cwnd.saturating_add(acked);
                }
                cwnd = cwnd.max(CWND_MIN_TARGET);
            }
        }
        self.cwnd = cwnd;
        if self.bbr.state == BbrState::ProbeRtt {
            self.cwnd = self.cwnd.min(CWND_MIN_TARGET);
        }
    }

    fn bbr_is_next_cycle_phase(&self, rs: &RateSample) -> bool {
        let is_full_length = time_delta_ms(self.delivered_ts, self.bbr.cycle_timestamp)
            > u64::from(self.bbr.min_rtt_ms);
        let gain = self.bbr.pacing_gain;
        if gain == 1.0 {
            return is_full_length;
        }
        let inflight = self.inflight_len();
        let bw = self.bbr_max_bw();
        if gain > 1.0 {
            return is_full_length && (rs.losses > 0 || inflight > self.bbr_bdp(bw, gain));
        }
        is_full_length || inflight <= self.bbr_bdp(bw, 1.0)
    }

    fn bbr_advance_cycle_phase(&mut self) {
        self.bbr.cycle_index = (self.bbr.cycle_index + 1) & (CYCLE_LEN - 1);
        self.bbr.cycle_timestamp = self.delivered_ts;
    }

    fn bbr_reset_probe_bw_mode(&mut self) {
        self.bbr.state = BbrState::ProbeBw;
        self.bbr.cycle_index = 3;
        self.bbr_advance_cycle_phase();
    }

    fn bbr_reset_mode(&mut self) {
        if !self.bbr.full_bw_reached {
            self.bbr.state = BbrState::Startup;
        } else {
            self.bbr_reset_probe_bw_mode();
        }
    }

    fn bbr_update_bw(&mut self, rs: &RateSample) {
        self.bbr.round_start = false;
        if rs.delivered < 0 || rs.interval_ms <= 0 {
            return;
        }
        if seq::diff(rs.prior_delivered, self.bbr.next_rtt_delivered) >= 0 {
            self.bbr.next_rtt_delivered = self.delivered;
            self.bbr.rtt_count = self.bbr.rtt_count.wrapping_add(1);
            self.bbr.round_start = true;
            self.bbr.use_packet_conservation = false;
        }
        let bw = rs.delivered as f64 / rs.interval_ms as f64;
        if !rs.is_app_limited || bw >= self.bbr_max_bw() {
            let t = u64::from(self.bbr.rtt_count);
            self.bbr.bw.apply_max(BW_FILTER_CYCLES, t, bw);
        }
    }

    fn bbr_update_ack_aggregation(&mut self, rs: &RateSample) {
        if rs.acked_sacked == 0 || rs.delivered < 0 || rs.interval_ms <= 0 {
            return;
        }
        if self.bbr.round_start {
            self.bbr.extra_acked_win_rtts = self.bbr.extra_acked_win_rtts.saturating_add(1);
            if self.bbr.extra_acked_win_rtts >= EXTRA_ACKED_WIN_RTTS {
                self.bbr.extra_acked_win_rtts = 0;
                self.bbr.extra_acked_win_index = 1 - self.bbr.extra_acked_win_index.min(1);
                self.bbr.extra_acked[self.bbr.extra_acked_win_index] = 0;
            }
        }
        let epoch_ms = time_delta_ms(self.delivered_ts, self.bbr.ack_epoch_start);
        let mut expected = (self.bbr_bw() * epoch_ms as f64) as u32;
        if self.bbr.ack_epoch_acked <= expected
            || u64::from(self.bbr.ack_epoch_acked) + u64::from(rs.acked_sacked)
                >= u64::from(u32::MAX)
        {
            self.bbr.ack_epoch_acked = 0;
            self.bbr.ack_epoch_start = self.delivered_ts;
            expected = 0;
        }
        self.bbr.ack_epoch_acked = self.bbr.ack_epoch_acked.saturating_add(rs.acked_sacked);
        let extra = self
            .bbr
            .ack_epoch_acked
            .wrapping_sub(expected)
            .min(self.cwnd);
        let idx = self.bbr.extra_acked_win_index.min(1);
        if extra > u32::from(self.bbr.extra_acked[idx]) {
            self.bbr.extra_acked[idx] = extra as u16;
        }
    }

    fn bbr_check_full_bw_reached(&mut self, rs: &RateSample) {
        if self.bbr.full_bw_reached || !self.bbr.round_start || rs.is_app_limited {
            return;
        }
        let thresh = self.bbr.full_bw * FULL_BW_THRESH;
        if self.bbr_max_bw() >= thresh {
            self.bbr.full_bw = self.bbr_max_bw();
            self.bbr.full_bw_count = 0;
            return;
        }
        self.bbr.full_bw_count = self.bbr.full_bw_count.saturating_add(1);
        self.bbr.full_bw_reached = self.bbr.full_bw_count >= FULL_BW_COUNT;
    }

    fn bbr_check_drain(&mut self) {
        if self.bbr.state == BbrState::Startup && self.bbr.full_bw_reached {
            self.bbr.state = BbrState::Drain;
            self.ssthresh = self.bbr_bdp(self.bbr_max_bw(), 1.0);
        }
        if self.bbr.state == BbrState::Drain
            && self.inflight_len() <= self.bbr_bdp(self.bbr_max_bw(), 1.0)
        {
            self.bbr_reset_probe_bw_mode();
        }
    }

    fn bbr_check_probe_rtt_done(&mut self, now: u64) {
        if !(self.bbr.probe_rtt_done_time != 0 && now > self.bbr.probe_rtt_done_time) {
            return;
        }
        self.bbr.min_rtt_stamp = now;
        self.cwnd = self.cwnd.max(self.bbr.prior_cwnd);
        self.bbr_reset_mode();
    }

    fn bbr_update_min_rtt(&mut self, rs: &RateSample) {
        let now = self.now;
        let filter_expired = now > self.bbr.min_rtt_stamp + MIN_RTT_INTERVAL_MS;
        if rs.rtt_ms >= 0 && (rs.rtt_ms < i64::from(self.bbr.min_rtt_ms) || filter_expired) {
            self.bbr.min_rtt_ms = if rs.rtt_ms > 0 {
                rs.rtt_ms.min(i64::from(u32::MAX - 1)) as u32
            } else {
                1
            };
            self.bbr.min_rtt_stamp = now;
        }
        if filter_expired && !self.bbr.idle_restart && self.bbr.state != BbrState::ProbeRtt {
            self.bbr.state = BbrState::ProbeRtt;
            self.bbr_save_cwnd();
            self.bbr.probe_rtt_done_time = 0;
        }
        if self.bbr.state == BbrState::ProbeRtt {
            let v = self.delivered.wrapping_add(self.inflight_len());
            self.app_limited = if v == 0 { 1 } else { v };
            if self.bbr.probe_rtt_done_time == 0 && self.inflight_len() <= CWND_MIN_TARGET {
                self.bbr.probe_rtt_done_time = now + PROBE_RTT_MODE_MS;
                self.bbr.probe_rtt_round_done = false;
                self.bbr.next_rtt_delivered = self.delivered;
            } else if self.bbr.probe_rtt_done_time != 0 {
                if self.bbr.round_start {
                    self.bbr.probe_rtt_round_done = true;
                }
                if self.bbr.probe_rtt_round_done {
                    self.bbr_check_probe_rtt_done(now);
                }
            }
        }
        if rs.delivered > 0 {
            self.bbr.idle_restart = false;
        }
    }

    fn bbr_update_gains(&mut self) {
        let (p, c) = match self.bbr.state {
            BbrState::Startup => (HIGH_GAIN, HIGH_GAIN),
            BbrState::Drain => (DRAIN_GAIN, HIGH_GAIN),
            BbrState::ProbeBw => (
                PACING_GAINS[usize::from(self.bbr.cycle_index & (CYCLE_LEN - 1))],
                CWND_GAIN,
            ),
            BbrState::ProbeRtt => (1.0, 1.0),
        };
        self.bbr.pacing_gain = p;
        self.bbr.cwnd_gain = c;
    }

    /// Runs BBR on the rate sample of one processed ack (libudx `bbr_main`).
    pub(super) fn bbr_main(&mut self, rs: &mut RateSample) {
        self.bbr_update_bw(rs);
        self.bbr_update_ack_aggregation(rs);
        if self.bbr.state == BbrState::ProbeBw && self.bbr_is_next_cycle_phase(rs) {
            self.bbr_advance_cycle_phase();
        }
        self.bbr_check_full_bw_reached(rs);
        self.bbr_check_drain();
        self.bbr_update_min_rtt(rs);
        self.bbr_update_gains();

        let bw = self.bbr_bw();
        let (pg, cg) = (self.bbr.pacing_gain, self.bbr.cwnd_gain);
        self.bbr_set_pacing_rate(bw, pg);
        self.bbr_set_cwnd(rs, rs.acked_sacked, bw, cg);
    }

    pub(super) fn bbr_init(&mut self) {
        let now = self.now;
        self.bbr = Bbr::default();
        self.ssthresh = 0xffff;
        self.bbr.next_rtt_delivered = self.delivered;
        self.bbr.min_rtt_ms = self.rtt_min.get();
        self.bbr.min_rtt_stamp = now;
        self.bbr_init_pacing_rate_from_rtt();
        self.bbr.ack_epoch_start = now;
    }

    /// A dummy loss sample on RTO (libudx `bbr_on_rto`).
    pub(super) fn bbr_on_rto(&mut self) {
        self.bbr.prev_ca_state = CaState::Loss;
        self.bbr.full_bw = 0.0;
        self.bbr.round_start = true;
    }
}

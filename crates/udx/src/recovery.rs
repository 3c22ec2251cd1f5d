//! Loss recovery of a [`Stream`] (a child module of `stream`, kept in its own file): the timers (RTO, tail
//! loss probe, RACK reordering, zero-window probe, keepalive), RACK-TLP loss detection (RFC 8985 as libudx),
//! SACK and cumulative-ack processing of sent packets, and delivery-rate sampling (`udx_rate.c`) for the
//! congestion controller.

use super::*;

fn time_delta_us(t1: u64, t0: u64) -> u64 {
    t1.saturating_sub(t0)
}

impl Stream {
    // ---------------------------------------------------------------- timers

    pub(super) fn timer_start(&mut self, kind: TimerKind, wait_us: u64) {
        let at = self.now.saturating_add(wait_us);
        if kind == TimerKind::Rto {
            self.next_rto_ts = at;
        }
        self.pending_timer = kind;
        self.timer_at = Some(at);
    }

    pub(super) fn timer_stop(&mut self) {
        self.pending_timer = TimerKind::None;
        self.timer_at = None;
    }

    pub(super) fn rearm_rto(&mut self, from_now: bool) {
        if self.seq == self.remote_acked {
            self.timer_stop();
        } else {
            let mut rto = u64::from(self.rto);
            if !from_now {
                let delta = self.next_rto_ts as i64 - self.now as i64;
                rto = if delta <= 0 { 1 } else { delta as u64 };
            }
            self.timer_start(TimerKind::Rto, rto);
        }
    }

    pub(super) fn arm_stream_timers(&mut self, arm_tlp: bool) {
        if matches!(
            self.pending_timer,
            TimerKind::None | TimerKind::Zwp | TimerKind::Keepalive
        ) || self.timer_at.is_none()
        {
            self.timer_start(TimerKind::Rto, u64::from(self.rto));
        }
        if arm_tlp && self.ca_state == CaState::Open && self.sacks == 0 {
            self.schedule_loss_probe(false);
        }
    }

    /// Arms the probe timeout (PTO): libudx's tail loss probe while nothing is known lost (`Open`, no SACKs),
    /// and, unlike libudx, a recovery probe in fast recovery and after an RTO too. Without it, a lost
    /// retransmission with nothing sent after it (or every packet in flight delivered beyond the SACK ranges
    /// while the lost ones wait for congestion window) waits for the 1 s RTO. Successive probes without an ack
    /// back off exponentially; a probe that would come after the RTO is not armed (the RTO fires).
    pub(super) fn schedule_loss_probe(&mut self, advancing_rto: bool) -> bool {
        if self.seq == self.remote_acked {
            return false;
        }
        let tail_probe = self.ca_state == CaState::Open && self.sacks == 0;
        // No RTT sample yet (libudx does not probe then, and waits for the 1 s RTO): a lost ack of the first
        // packets, or a receiver stalled at the start, cost a second. A probe costs one packet.
        let mut timeout = PTO_NO_RTT_US;
        if self.rtt_sampled {
            timeout = self.srtt.saturating_mul(2);
            if self.inflight_list.len + self.retransmit_list.len == 1 {
                timeout = timeout.saturating_add(TLP_MAX_ACK_DELAY_US);
            }
            timeout = timeout.max(PTO_MIN_US);
        }
        timeout = timeout.saturating_mul(1 << self.probe_backoff.min(16));
        let mut rto_delta = self.rto;
        if !advancing_rto {
            let d = self.next_rto_ts as i64 - self.now as i64;
            rto_delta = if d < 0 {
                1
            } else {
                d.min(i64::from(u32::MAX)) as u32
            };
        }
        if tail_probe && self.probe_backoff == 0 {
            // libudx: the first tail loss probe may take the RTO's place.
            timeout = timeout.min(rto_delta);
        } else if timeout >= rto_delta {
            return false;
        }
        self.timer_start(TimerKind::Tlp, u64::from(timeout));
        true
    }

    /// Arms a probe if one fits before the RTO, else leaves (or re-arms) the RTO.
    pub(super) fn schedule_probe_or_rto(&mut self) {
        if !self.schedule_loss_probe(false) {
            self.rearm_rto(false);
        }
    }

    /// The wait before the next zero-window probe: the probe timeout, doubling per probe, up to libudx's
    /// `2 * rto` (the first one: one RTO in libudx, also before any RTT sample here).
    pub(super) fn zwp_timeout(&self) -> u32 {
        let cap = self.rto.saturating_mul(2);
        if !self.rtt_sampled {
            return if self.zwp_backoff == 0 { self.rto } else { cap };
        }
        let base = self.srtt.saturating_mul(2).max(PTO_MIN_US);
        base.saturating_mul(1 << self.zwp_backoff.min(16)).min(cap)
    }

    pub(super) fn on_keepalive_timeout(&mut self) {
        self.heartbeat_pending = true;
        self.timer_start(TimerKind::Keepalive, self.keepalive_us.max(1));
    }

    pub(super) fn on_zwp_timeout(&mut self) {
        if !self.connected || self.send_rwnd != 0 {
            self.pending_timer = TimerKind::None;
            return;
        }
        self.zwp_count += 1;
        self.heartbeat_pending = true;
        self.zwp_backoff = self.zwp_backoff.saturating_add(1);
        self.timer_start(TimerKind::Zwp, u64::from(self.zwp_timeout()));
    }

    pub(super) fn on_tlp_timeout(&mut self) {
        // RACK-TLP 7.3
        if self.remote_acked == self.seq {
            self.pending_timer = TimerKind::None;
            return;
        }
        let tail_probe = self.ca_state == CaState::Open && self.sacks == 0;
        if tail_probe && !self.tlp_in_flight && self.tlp_permitted {
            // First try to send a new packet, ignoring the window.
            if let Some(s) = self.send_new_packet(true) {
                self.tx_queue.push_back(s);
            } else {
                let last = self.seq.wrapping_sub(1);
                let ok =
                    matches!(self.pkt(last), Some(p) if !p.acked && !p.lost && p.transmits > 0);
                if !ok {
                    self.rearm_rto(false);
                    return;
                }
                self.list_unlink(ListId::Inflight, last);
                if let Some(p) = self.pkt(last) {
                    self.inflight_bytes = self.inflight_bytes.saturating_sub(p.size as usize);
                }
                self.retransmit_packet(last);
                self.tx_queue.push_back(last);
                self.tlp_is_retrans = true;
                self.tlp_in_flight = true;
                self.tlp_end_seq = last;
                self.tlp_permitted = false;
            }
            self.probe_count += 1;
            tracing::debug!(
                target: "holepunch_udx::loss",
                stream = self.local_id,
                now = self.now,
                retransmit = self.tlp_is_retrans,
                inflight = self.inflight_list.len,
                srtt = self.srtt,
                "tail loss probe"
            );
            self.rearm_rto(true);
        } else {
            // A recovery probe: no ack came for a PTO. Re-send the packet most likely lost, the first one
            // waiting for retransmission, else the earliest sent still in flight; ignoring the congestion
            // window. Its ack either moves the cumulative ack or, being the most recently sent, lets RACK mark
            // everything sent before it lost.
            let Some(s) = self.retransmit_list.head.or(self.inflight_list.head) else {
                self.rearm_rto(false);
                return;
            };
            if matches!(self.pkt(s), Some(p) if !p.lost) {
                self.list_unlink(ListId::Inflight, s);
                if let Some(p) = self.pkt(s) {
                    self.inflight_bytes = self.inflight_bytes.saturating_sub(p.size as usize);
                }
            }
            // A probe does not push the RTO back.
            let rto_at = self.next_rto_ts;
            self.retransmit_packet(s);
            self.tx_queue.push_back(s);
            self.probe_count += 1;
            self.next_rto_ts = rto_at;
            tracing::debug!(
                target: "holepunch_udx::loss",
                stream = self.local_id,
                now = self.now,
                seq = s,
                backoff = self.probe_backoff,
                ca_state = ?self.ca_state,
                inflight = self.inflight_list.len,
                retransmit_queue = self.retransmit_list.len,
                sacks = self.sacks,
                "recovery probe"
            );
        }
        self.probe_backoff = self.probe_backoff.saturating_add(1);
        self.schedule_probe_or_rto();
    }

    /// Loss detection for a stream with no RTT sample, which has no probe timeout: the receiving side of a
    /// one-way transfer sends nothing but its END (and acks), so it never measures an RTT, and a lost END
    /// waited for the 1 s initial RTO (the stall at the tail of the benches' short transfers). Every packet
    /// the remote sends after our packet reached it acknowledges it, and what the remote can send before
    /// that is bounded by its send window, which our receive window bounds. So once the remote has sent us
    /// twice our largest receive window since our last transmission without acknowledging it, our oldest
    /// unacknowledged packet was lost (or its acknowledgements were): send it again now.
    pub(super) fn unanswered_probe(&mut self) {
        if self.rtt_sampled
            || self.remote_acked == self.seq
            || self.rx_since_sent <= 2 * u64::from(self.config.recv_window_max)
        {
            return;
        }
        self.rx_since_sent = 0;
        let Some(s) = self.inflight_list.head else {
            return;
        };
        let Some(p) = self.pkt(s) else { return };
        let (size, probe) = (p.size as usize, p.is_mtu_probe);
        self.list_unlink(ListId::Inflight, s);
        self.inflight_bytes = self.inflight_bytes.saturating_sub(size);
        if let Some(p) = self.pkt_mut(s) {
            p.lost = true;
        }
        if probe {
            self.mtu_unprobeify(s);
        }
        self.lost = self.lost.wrapping_add(1);
        self.list_push_tail(ListId::Retransmit, s);
        self.probe_count += 1;
        tracing::debug!(
            target: "holepunch_udx::loss",
            stream = self.local_id,
            now = self.now,
            seq = s,
            "no RTT sample and a receive window of data without an ack: resending"
        );
    }

    pub(super) fn on_rack_reo_timeout(&mut self) {
        self.rack_detect_loss();
        let from_now = !matches!(self.pending_timer, TimerKind::RackReo | TimerKind::Tlp);
        if self.pending_timer != TimerKind::Rto || self.timer_at.is_none() {
            self.rearm_rto(from_now);
            if !from_now {
                self.schedule_probe_or_rto();
            }
        }
    }

    pub(super) fn on_rto_timeout(&mut self) {
        self.pending_timer = TimerKind::None;
        if self.remote_acked == self.seq || !self.connected {
            return;
        }
        tracing::debug!(
            "udx stream {}: RTO after {} ms, {} packets unacked",
            self.local_id,
            self.rto,
            self.seq.wrapping_sub(self.remote_acked)
        );
        self.high_seq = self.seq;
        self.rto_count += 1;
        self.ca_state = CaState::Loss;
        self.tlp_in_flight = false;
        self.tlp_is_retrans = false;
        self.timer_start(TimerKind::Rto, u64::from(self.rto.saturating_mul(2)));

        // Rebuild the retransmit queue in sequence order (RACK 6.3).
        while let Some(h) = self.retransmit_list.head {
            self.list_unlink(ListId::Retransmit, h);
        }
        let reo_wnd = self.rack_update_reo_wnd();
        let now = self.now as i64;
        let n = self.outgoing.len();
        for i in 0..n {
            let Some(p) = self.outgoing.get(i) else {
                break;
            };
            if p.acked {
                continue;
            }
            let s = p.seq;
            if p.lost {
                self.list_push_tail(ListId::Retransmit, s);
                continue;
            }
            let remaining =
                p.time_sent as i64 + i64::from(self.rack_rtt) + i64::from(reo_wnd) - now;
            if s == self.remote_acked || remaining < 0 {
                if p.rto_timeouts >= MAX_RTO_TIMEOUTS {
                    self.close_stream(Some(StreamError::TimedOut));
                    return;
                }
                self.lost = self.lost.wrapping_add(1);
                let was_probe = p.is_mtu_probe;
                let size = p.size as usize;
                if let Some(p) = self.outgoing.get_mut(i) {
                    p.rto_timeouts += 1;
                }
                if was_probe {
                    self.mtu_unprobeify(s);
                }
                self.list_unlink(ListId::Inflight, s);
                if let Some(p) = self.outgoing.get_mut(i) {
                    p.lost = true;
                }
                self.list_push_tail(ListId::Retransmit, s);
                self.inflight_bytes = self.inflight_bytes.saturating_sub(size);
            }
        }
        self.with_cc(|cc, path| cc.on_loss(path));
    }

    /// Marks everything in flight lost and queues it for retransmission, with no RTO and no congestion
    /// response: it went to an address the peer left ([`Stream::migrate`]), not into a congested path.
    pub(super) fn mark_inflight_lost(&mut self) {
        let mut cur = self.inflight_list.head;
        while let Some(s) = cur {
            let Some(p) = self.pkt(s) else { break };
            cur = p.next;
            self.mark_lost(s);
        }
    }

    /// Moves in-flight packet `s` to the retransmit queue as lost (counted, its bytes out of flight, an MTU
    /// probe un-probed). Returns whether it was an MTU probe.
    fn mark_lost(&mut self, s: u32) -> bool {
        let Some(p) = self.pkt(s) else { return false };
        let size = p.size as usize;
        let probe = p.is_mtu_probe;
        self.lost = self.lost.wrapping_add(1);
        self.inflight_bytes = self.inflight_bytes.saturating_sub(size);
        self.list_unlink(ListId::Inflight, s);
        if let Some(p) = self.pkt_mut(s) {
            p.lost = true;
        }
        self.list_push_tail(ListId::Retransmit, s);
        if probe {
            self.mtu_unprobeify(s);
        }
        probe
    }

    // ---------------------------------------------------------------- RACK

    pub(super) fn rack_update_reo_wnd(&self) -> u32 {
        if !self.reordering_seen {
            if self.ca_state != CaState::Open {
                return 0;
            }
            if self.sacks >= 3 {
                return 0;
            }
        }
        let r = self.rtt_min.get() / 4;
        r.min(self.srtt)
    }

    pub(super) fn rack_detect_loss(&mut self) -> u64 {
        let mut timeout: u64 = 0;
        let reo_wnd = self.rack_update_reo_wnd();
        let now = self.now as i64;
        let mut resending = 0u32;
        let mut probes_lost = 0u32;
        let mut cur = self.inflight_list.head;
        while let Some(s) = cur {
            let Some(p) = self.pkt(s) else { break };
            let next = p.next;
            // Only packets sent before the most recently sent delivered one can be lost (the list is in
            // send order).
            if !rack_sent_after(self.rack_xmit, p.xmit) {
                break;
            }
            let remaining =
                p.time_sent as i64 + i64::from(self.rack_rtt) + i64::from(reo_wnd) - now;
            if remaining <= 0 {
                if self.mark_lost(s) {
                    probes_lost += 1;
                }
                resending += 1;
            } else if remaining as u64 > timeout {
                timeout = remaining as u64;
            }
            cur = next;
        }
        if resending > 0 {
            tracing::debug!(
                target: "holepunch_udx::loss",
                stream = self.local_id,
                now = self.now,
                lost = resending,
                rack_rtt = self.rack_rtt,
                reo_wnd,
                inflight = self.inflight_list.len,
                cwnd = self.cc.cwnd(),
                pacing = self.cc.pacing_rate(),
                ca_state = ?self.ca_state,
                "RACK marked lost"
            );
        }
        if resending > probes_lost && self.ca_state == CaState::Open {
            self.fast_recovery_count += 1;
            self.ca_state = CaState::Recovery;
            self.high_seq = self.seq;
            self.tlp_in_flight = false;
            self.tlp_is_retrans = false;
        }
        timeout
    }

    pub(super) fn rack_detect_loss_and_arm_timer(&mut self) -> bool {
        let timeout = self.rack_detect_loss();
        if timeout > 0 {
            self.timer_start(TimerKind::RackReo, timeout);
            return true;
        }
        false
    }

    pub(super) fn sack_is_valid(&self, start: u32, end: u32) -> bool {
        !(seq::diff(end, self.seq) > 0
            || seq::diff(start, end) >= 0
            || seq::diff(start, self.seq) >= 0
            || seq::diff(start, self.remote_acked) < 0)
    }

    /// Marks packet `s` acked (libudx `ack_packet`): 0 = nothing to ack, 1 = acked, 2 = acked and our END is
    /// now fully acknowledged.
    pub(super) fn ack_packet(&mut self, s: u32, sack: bool, rs: &mut RateSample) -> u8 {
        let Some(i) = self.pkt_index(s) else {
            return 0;
        };
        let Some(p) = self.outgoing.get(i) else {
            return 0;
        };
        if p.acked {
            if !sack {
                self.sacks = self.sacks.saturating_sub(1);
                if i == 0 {
                    self.outgoing.pop_front();
                }
            }
            return 0;
        }
        let (is_probe, lost, size, len, time_sent, retransmitted) = (
            p.is_mtu_probe,
            p.lost,
            p.size as usize,
            usize::from(p.len),
            p.time_sent,
            p.retransmitted,
        );
        let (ambiguous, rack_xmit, rack_time_sent) = (p.ambiguous, p.rack_xmit, p.rack_time_sent);

        if self.mtu_state == MtuState::Search && self.mtu_probe_count > 0 && is_probe {
            self.mtu_probe_count = 0;
            self.mtu = self.mtu_probe_size;
            if self.mtu_probe_size >= self.mtu_max {
                self.mtu_state = MtuState::SearchComplete;
            } else {
                self.mtu_probe_size = (self.mtu_probe_size + MTU_STEP).min(self.mtu_max);
                self.mtu_probe_wanted = true;
            }
        }
        if self.mtu_state == MtuState::Base {
            self.mtu_state = MtuState::Search;
            self.mtu_probe_wanted = true;
        }
        if sack {
            self.sacks += 1;
        }
        if lost {
            self.list_unlink(ListId::Retransmit, s);
        } else {
            self.list_unlink(ListId::Inflight, s);
            self.inflight_bytes = self.inflight_bytes.saturating_sub(size);
        }
        if let Some(p) = self.outgoing.get(i) {
            let p = p.clone_rate();
            self.rate_pkt_delivered(&p, rs);
        }
        let now = self.now;
        let rtt = self.clamp_rtt(now.saturating_sub(time_sent));
        let next = s.wrapping_add(1);

        if !retransmitted {
            self.rtt_min.apply_min(RTT_MIN_WINDOW_US, now, rtt);
            if self.srtt == 0 {
                self.srtt = rtt;
                self.rttvar = rtt / 2;
            } else {
                let delta = rtt.abs_diff(self.srtt);
                self.rttvar = ((3 * u64::from(self.rttvar) + u64::from(delta)) / 4) as u32;
                self.srtt = ((7 * u64::from(self.srtt) + u64::from(rtt)) / 8) as u32;
            }
            self.tlp_permitted = true;
            self.rtt_sampled = true;
            self.rto = self
                .srtt
                .saturating_add(self.rttvar.saturating_mul(4))
                .clamp(RTO_MIN_US, RTO_MAX_US);
        }

        if ambiguous {
            // Maybe the ack of an earlier transmission (see `SentPacket::ambiguous`): RACK learns only that
            // that one was delivered.
            let rack_rtt = self.clamp_rtt(now.saturating_sub(rack_time_sent));
            if rack_sent_after(rack_xmit, self.rack_xmit) {
                self.rack_rtt = rack_rtt;
                self.rack_xmit = rack_xmit;
            }
        } else if !retransmitted || rtt >= self.rtt_min.get() {
            let xmit = rack_xmit;
            self.rack_rtt = rtt;
            rs.rtt_us = i64::from(rtt);
            if rack_sent_after(xmit, self.rack_xmit) {
                if retransmitted {
                    tracing::trace!(
                        target: "holepunch_udx::loss",
                        stream = self.local_id,
                        now = self.now,
                        seq = s,
                        rtt,
                        sack,
                        "RACK advanced by a retransmitted packet"
                    );
                }
                self.rack_xmit = xmit;
            }
        }
        if seq::gt(next, self.rack_fack) {
            self.rack_fack = next;
        } else if seq::lt(next, self.rack_fack) && !retransmitted {
            self.reordering_seen = true;
        }

        self.writes_queued_bytes = self.writes_queued_bytes.saturating_sub(len);
        if i == 0 && !sack {
            self.outgoing.pop_front();
        } else if let Some(p) = self.outgoing.get_mut(i) {
            p.acked = true;
        }

        if self.ending
            && !self.ended
            && self.inflight_list.len == 0
            && self.retransmit_list.len == 0
            && !self.has_unsent()
        {
            self.ended = true;
            return 2;
        }
        1
    }

    pub(super) fn clamp_rtt(&self, rtt: u64) -> u32 {
        if self.srtt == 0 {
            return rtt.min(RTT_MAX_US) as u32;
        }
        let threshold = u64::from(self.srtt) + 5 * u64::from(self.rttvar);
        if rtt > threshold && rtt > 5_000_000 {
            return threshold.min(RTT_MAX_US) as u32;
        }
        rtt.min(u64::from(u32::MAX)) as u32
    }

    // ------------------------------------------------------------ rate sampling (udx_rate.c)

    pub(super) fn rate_pkt_delivered(&mut self, pkt: &RatePkt, rs: &mut RateSample) {
        if pkt.delivered_ts == 0 {
            return;
        }
        if rs.prior_delivered == 0 || rack_sent_after(pkt.xmit, rs.xmit) {
            rs.prior_delivered = pkt.delivered;
            rs.prior_timestamp = pkt.delivered_ts;
            rs.is_app_limited = pkt.is_app_limited;
            rs.is_retrans = pkt.retransmitted;
            rs.xmit = pkt.xmit;
            self.first_sent_ts = pkt.time_sent;
            rs.interval_us = time_delta_us(self.first_sent_ts, pkt.first_sent_ts) as i64;
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
            rs.interval_us = -1;
            return;
        }
        rs.delivered = i64::from(self.delivered.wrapping_sub(rs.prior_delivered));
        let snd_us = rs.interval_us.max(0) as u64;
        let ack_us = time_delta_us(now, rs.prior_timestamp);
        rs.interval_us = snd_us.max(ack_us) as i64;
        if rs.interval_us < i64::from(self.rtt_min.get()) {
            rs.interval_us = -1;
            return;
        }
        if !rs.is_app_limited
            || (rs.delivered as u64).saturating_mul(u64::from(self.rate_interval_us))
                >= u64::from(self.rate_delivered).saturating_mul(rs.interval_us as u64)
        {
            self.rate_delivered = rs.delivered as u32;
            self.rate_interval_us = rs.interval_us.min(i64::from(u32::MAX)) as u32;
            self.rate_sample_is_app_limited = rs.is_app_limited;
        }
    }

    pub(super) fn rate_check_app_limited(&mut self) {
        if self.writes_queued_bytes < self.max_payload()
            && self.inflight_len() < self.cc.cwnd()
            && self.retransmit_list_len() == 0
        {
            let v = self.delivered.wrapping_add(self.inflight_len());
            self.app_limited = if v == 0 { 1 } else { v };
        }
    }
}
